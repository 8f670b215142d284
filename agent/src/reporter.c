/* reporter.c - statuses, the journal and its delivery (reporter.h). */
#include "reporter.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "mgo/arena.h"
#include "mgo/buf.h"
#include "mgo/log.h"
#include "mgo/problems.h"

#define TAG "agent"

/* Whether a journaled status payload says `removed` (its deployment then has no latest). */
static mgo_err payload_removed(const uint8_t *payload, size_t len, bool *removed)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_MESSAGE_BYTES * 4u);
    struct mgo_problems probs;
    mgo_problems_init(&probs);
    struct mgo_deployment_status s;
    mgo_err err = mgo_deployment_status_decode(payload, len, &arena, &s, &probs);
    if (err == MGO_OK)
        *removed = s.state == MGO_STATE_REMOVED;
    mgo_arena_cleanup(&arena);
    return err;
}

/* restore-pending goes once nothing waits to be restored (latest.h). */
static void restore_check(struct mgo_reporter *r)
{
    mgo_err err = mgo_latest_restore_check(&r->latest);
    if (err != MGO_OK)
        MGO_LOGW(TAG, "restore-pending not cleared: %s (the next start restores again)",
                 mgo_strerror(err));
}

/* Keeps the latest status of a deployment after its journal append: written, or deleted
 * for `removed`. A failure only costs the restore after a new broker session. */
static void keep_latest(struct mgo_reporter *r, const char *dep_id, uint64_t boot, uint64_t seq,
                        const uint8_t *payload, size_t len, bool removed)
{
    mgo_err err = removed ? mgo_latest_forget(&r->latest, dep_id, boot, seq)
                          : mgo_latest_put(&r->latest, dep_id, boot, seq, payload, len);
    if (err != MGO_OK)
        MGO_LOGW(TAG,
                 "%s: latest status %" PRIu64 ".%" PRIu64 " not kept apart: %s (it is "
                 "not restored if the broker loses it)",
                 dep_id, boot, seq, mgo_strerror(err));
    restore_check(r); /* a newer status, or none, replaces one waiting to be restored */
}

static bool mqtt_ready(void *ctx)
{
    return mgo_session_connected(ctx);
}

static mgo_err mqtt_send(void *ctx, enum mgo_topic_kind kind, const char *dep_id,
                         const uint8_t *payload, size_t len, int *token_out)
{
    return mgo_session_publish(ctx, kind, dep_id, payload, len, token_out);
}

struct mgo_reporter_delivery mgo_reporter_delivery_mqtt(struct mgo_session *session)
{
    return (struct mgo_reporter_delivery){.ctx = session,
                                          .ready = mqtt_ready,
                                          .send = mqtt_send,
                                          .max_inflight = MGO_REPORTER_MAX_INFLIGHT,
                                          .ack_is_stored = false};
}

mgo_err mgo_reporter_open(struct mgo_reporter *r, const char *journal_path, const char *latest_dir,
                          const struct mgo_reporter_delivery *delivery, const char *device_id,
                          uint64_t boot)
{
    memset(r, 0, sizeof *r);
    r->delivery = *delivery;
    if (r->delivery.max_inflight == 0 || r->delivery.max_inflight > MGO_REPORTER_MAX_INFLIGHT)
        r->delivery.max_inflight = MGO_REPORTER_MAX_INFLIGHT;
    r->device_id = device_id;
    r->boot = boot;
    mgo_err err = mgo_journal_open(journal_path, &r->journal);
    if (err != MGO_OK)
        return err;
    err = mgo_latest_open(&r->latest, latest_dir);
    if (err != MGO_OK && err != MGO_ERR_LIMIT)
        goto cleanup_journal;
    /* a crash between a journal append and its latest file leaves the journal newer */
    for (size_t i = 0; i < r->journal.pending_len; i++) {
        const struct mgo_journal_entry *e = &r->journal.pending[i];
        bool removed = false;
        if (payload_removed(e->payload, e->payload_len, &removed) != MGO_OK) {
            MGO_LOGW(TAG,
                     "journal entry %" PRIu64 ".%" PRIu64 " does not decode; not kept as "
                     "the latest status",
                     e->boot, e->seq);
            continue;
        }
        keep_latest(r, e->deployment_id, e->boot, e->seq, e->payload, e->payload_len, removed);
    }
    return MGO_OK;

cleanup_journal:
    mgo_journal_close(&r->journal);
    return err;
}

void mgo_reporter_close(struct mgo_reporter *r)
{
    mgo_latest_close(&r->latest);
    mgo_journal_close(&r->journal);
}

size_t mgo_reporter_unsent(const struct mgo_reporter *r)
{
    return r->journal.pending_len;
}

static bool is_inflight(const struct mgo_reporter *r, uint64_t boot, uint64_t seq, bool restore)
{
    for (size_t i = 0; i < r->inflight_len; i++)
        if (r->inflight[i].boot == boot && r->inflight[i].seq == seq &&
            r->inflight[i].restore == restore)
            return true;
    return false;
}

/* Whether the newest journal entry of a deployment is not delivered yet: the flush publishes
 * it on the status topic, which restores the deployment's retained status by itself. */
static bool newest_undelivered(const struct mgo_journal *j, const char *dep_id)
{
    for (size_t k = j->pending_len; k > 0; k--)
        if (strcmp(j->pending[k - 1].deployment_id, dep_id) == 0)
            return !j->pending[k - 1].delivered;
    return false;
}

/* Publishes the latest statuses waiting to be restored (after the journal's due entries). */
static void flush_restores(struct mgo_reporter *r)
{
    for (size_t i = 0; i < r->latest.len && r->inflight_len < r->delivery.max_inflight; i++) {
        struct mgo_latest_entry *e = &r->latest.items[i];
        if (!e->restore || is_inflight(r, e->boot, e->seq, true))
            continue;
        if (newest_undelivered(&r->journal, e->deployment_id)) {
            e->restore = false; /* the flush publishes a newer one */
            restore_check(r);
            continue;
        }
        int token = 0;
        if (r->delivery.send(r->delivery.ctx, MGO_TOPIC_STATUS, e->deployment_id, e->payload,
                             e->payload_len, &token) != MGO_OK) {
            MGO_LOGD(TAG, "latest status %" PRIu64 ".%" PRIu64 " not restored yet", e->boot,
                     e->seq);
            return;
        }
        r->inflight[r->inflight_len++] = (struct mgo_reporter_inflight){
            .token = token, .boot = e->boot, .seq = e->seq, .restore = true};
    }
}

/* Publishes what is due, in journal order: entries not delivered yet (on the status topic,
 * or the replay topic when superseded) and entries marked for replay. */
static void flush(struct mgo_reporter *r)
{
    if (!r->delivery.ready(r->delivery.ctx))
        return;
    for (size_t i = mgo_journal_first_due(&r->journal);
         i < r->journal.pending_len && r->inflight_len < r->delivery.max_inflight; i++) {
        const struct mgo_journal_entry *e = &r->journal.pending[i];
        if ((e->delivered && !e->replay) || is_inflight(r, e->boot, e->seq, false))
            continue;
        bool replay = e->replay || mgo_journal_superseded(&r->journal, i);
        if (!replay && !e->sent) {
            /* recorded before the broker can have it; failing costs only the re-send rule */
            mgo_err err = mgo_journal_sent(&r->journal, e->boot, e->seq);
            if (err != MGO_OK)
                MGO_LOGW(TAG, "journal: status %" PRIu64 ".%" PRIu64 " not marked sent: %s",
                         e->boot, e->seq, mgo_strerror(err));
        }
        int token = 0;
        if (r->delivery.send(r->delivery.ctx, replay ? MGO_TOPIC_REPLAY : MGO_TOPIC_STATUS,
                             e->deployment_id, e->payload, e->payload_len, &token) != MGO_OK) {
            MGO_LOGD(TAG, "status %" PRIu64 ".%" PRIu64 " not published yet", e->boot, e->seq);
            return; /* keep order: retry from here later */
        }
        r->inflight[r->inflight_len++] = (struct mgo_reporter_inflight){
            .token = token, .boot = e->boot, .seq = e->seq, .replay = replay};
    }
    flush_restores(r);
}

void mgo_reporter_connected(struct mgo_reporter *r, bool session_present)
{
    r->inflight_len = 0;
    if (!session_present && r->latest.len > 0) {
        /* the broker may have lost its retained store (protocol.md §6.1 step 5) */
        mgo_err err = mgo_latest_restore_all(&r->latest);
        if (err != MGO_OK)
            MGO_LOGW(TAG, "restore not recorded: %s (a restart before it is done skips it)",
                     mgo_strerror(err));
        MGO_LOGI(TAG, "new broker session: restoring the latest status of %zu deployments",
                 r->latest.len);
    }
    flush(r);
}

void mgo_reporter_flush(struct mgo_reporter *r)
{
    flush(r);
}

void mgo_reporter_disconnected(struct mgo_reporter *r)
{
    r->inflight_len = 0;
}

void mgo_reporter_published(struct mgo_reporter *r, int token, bool ok)
{
    for (size_t i = 0; i < r->inflight_len; i++) {
        if (r->inflight[i].token != token)
            continue;
        struct mgo_reporter_inflight f = r->inflight[i];
        memmove(&r->inflight[i], &r->inflight[i + 1], (r->inflight_len - i - 1) * sizeof f);
        r->inflight_len--;
        if (ok && f.restore) {
            struct mgo_latest_entry *e = NULL;
            for (size_t k = 0; k < r->latest.len && e == NULL; k++)
                if (r->latest.items[k].boot == f.boot && r->latest.items[k].seq == f.seq)
                    e = &r->latest.items[k];
            if (e != NULL && e->restore) {
                e->restore = false;
                r->restores++;
                restore_check(r);
            }
        } else if (ok) {
            /* a replay delivered: the entry waits for a receipt like any other */
            if (f.replay)
                mgo_journal_replayed(&r->journal, f.boot, f.seq);
            mgo_err err = mgo_journal_ack(&r->journal, f.boot, f.seq);
            if (err != MGO_OK && err != MGO_ERR_NOT_FOUND)
                MGO_LOGE(TAG, "journal ack %" PRIu64 ".%" PRIu64 ": %s", f.boot, f.seq,
                         mgo_strerror(err));
            /* HTTP: the WFM answered after storing it, and sends are one at a time in journal
             * order, so everything up to this position is stored */
            if (r->delivery.ack_is_stored) {
                err = mgo_journal_settle(&r->journal, f.boot, f.seq, NULL);
                if (err != MGO_OK)
                    MGO_LOGW(TAG,
                             "journal: status %" PRIu64 ".%" PRIu64 " not settled: %s (it is "
                             "sent again after a restart)",
                             f.boot, f.seq, mgo_strerror(err));
            }
        }
        break;
    }
    flush(r);
}

void mgo_reporter_receipt(struct mgo_reporter *r, const struct mgo_receipt *rc)
{
    if (strcmp(rc->epoch, r->epoch) != 0) {
        /* a manager run (or a gap it found) we have not answered yet: whatever it has not
         * stored beyond its position may be lost, so everything delivered goes again */
        snprintf(r->epoch, sizeof r->epoch, "%s", rc->epoch);
        size_t n = mgo_journal_mark_replay(&r->journal, rc->boot, rc->seq);
        r->replays += n;
        if (n > 0)
            MGO_LOGI(TAG,
                     "replaying %zu statuses the manager may not have stored (receipt "
                     "epoch %s, stored up to %" PRIu64 ".%" PRIu64 ")",
                     n, rc->epoch, rc->boot, rc->seq);
    }
    r->receipt_boot = rc->boot;
    r->receipt_seq = rc->seq;
    size_t dropped = 0;
    mgo_err err = mgo_journal_settle(&r->journal, rc->boot, rc->seq, &dropped);
    if (err != MGO_OK)
        MGO_LOGW(TAG,
                 "journal: cannot record the receipt up to %" PRIu64 ".%" PRIu64 ": %s "
                 "(the entries are sent again after a restart)",
                 rc->boot, rc->seq, mgo_strerror(err));
    else if (dropped > 0)
        MGO_LOGD(TAG, "manager stored %zu more statuses (up to %" PRIu64 ".%" PRIu64 ")", dropped,
                 rc->boot, rc->seq);
    flush(r);
}

void mgo_reporter_report(struct mgo_reporter *r, const struct mgo_report *rep)
{
    struct mgo_component_status comps[MGO_MAX_COMPONENTS];
    size_t n = rep->n < MGO_MAX_COMPONENTS ? rep->n : MGO_MAX_COMPONENTS;
    const struct mgo_rt_result *first_err = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct mgo_rt_result *res = &rep->results[i];
        comps[i] = (struct mgo_component_status){
            .name = rep->dep ? rep->dep->profile.components[i].name : "",
            .state = res->state,
            .has_error = res->has_error,
            .error = {res->error.code, res->error.source, res->error.message},
        };
        if (res->has_error && first_err == NULL)
            first_err = res;
    }
    struct mgo_deployment_status s = {
        .deployment_id = rep->deployment_id,
        .device_id = r->device_id,
        .has_adopted_manifest_version = rep->adopted_version > 0,
        .adopted_manifest_version = rep->adopted_version,
        .state = rep->state,
        .components = comps,
        .components_len = n,
        .has_journal = true,
        .boot = r->boot,
        .seq = r->seq + 1,
    };
    /* which app: monitors label the status without reading the document (protocol.md §3.4) */
    if (rep->dep != NULL && rep->dep->application_id != NULL && rep->dep->name != NULL) {
        s.has_app = true;
        s.app = (struct mgo_status_app){rep->dep->application_id, rep->dep->application_version,
                                        rep->dep->name};
    }
    if (rep->error != NULL) {
        s.has_error = true;
        s.error =
            (struct mgo_error_info){rep->error->code, rep->error->source, rep->error->message};
    } else if (s.state == MGO_STATE_FAILED && first_err != NULL) {
        s.has_error = true;
        s.error = (struct mgo_error_info){first_err->error.code,
                                          rep->dep ? rep->dep->name : first_err->error.source,
                                          first_err->error.message};
    }
    struct mgo_buf buf;
    mgo_buf_init(&buf, MGO_MAX_MESSAGE_BYTES);
    mgo_err err = mgo_deployment_status_encode(&s, &buf);
    if (err == MGO_OK)
        err = mgo_journal_append(&r->journal, r->boot, r->seq + 1, rep->deployment_id, buf.data,
                                 buf.len);
    if (err != MGO_OK) {
        MGO_LOGE_FOR(TAG, r->device_id, rep->deployment_id, "%s: status %s not journaled: %s",
                     rep->deployment_id, mgo_state_name(s.state), mgo_strerror(err));
    } else {
        r->seq++;
        MGO_LOGI_FOR(TAG, r->device_id, rep->deployment_id, "%s: %s (seq %" PRIu64 ")",
                     rep->deployment_id, mgo_state_name(s.state), r->seq);
        keep_latest(r, rep->deployment_id, r->boot, r->seq, buf.data, buf.len,
                    s.state == MGO_STATE_REMOVED);
    }
    mgo_buf_cleanup(&buf);
    flush(r);
}
