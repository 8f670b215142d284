/* executor.c - accepting desired state and running the plan on the worker (executor.h). */
#include "executor.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mgo/log.h"
#include "mgo/margo.h"
#include "mgo/plan.h"
#include "metrics.h"
#include "worker.h"

#define TAG "agent"
#define MAX_RECS (2u * MGO_MAX_DEPLOYMENTS)
/* A plan (removals + manifest entries) plus resume, probe and repair items. */
#define MAX_QUEUE (4u * MGO_MAX_DEPLOYMENTS)
#define STORAGE_RETRY_MS 2000
/* A manifest counts as expired only this long after its expiresAt by the device's wall
 * clock: a device clock that is a little ahead does not refuse fresh manifests
 * (protocol.md §8.1). */
#define EXPIRY_TOLERANCE_S 300
/* How often the accepted manifest's expiry is looked at (wall clock, so a loop timer cannot
 * simply be set for it). */
#define EXPIRY_CHECK_MS 60000

enum item_kind { ITEM_APPLY = 1, ITEM_REMOVE, ITEM_PROBE };

struct item {
    enum item_kind kind;
    char id[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    char digest[MGO_DIGEST_STR_SIZE]; /* the document to apply or probe */
    const char *label;                /* static: "install", "update", "resume", "repair"... */
};

/* The loop thread's view of the job the worker runs. */
struct current {
    struct mgo_job *job; /* NULL: the worker is idle */
    const char *label;
    uint64_t adopted; /* manifest the job's document came from */
    struct mgo_arena arena;
    struct mgo_app_deployment dep; /* decoded here too (component names for reports) */
    struct mgo_doc_entry doc;      /* its digests */
    enum mgo_state last_overall;
    bool started;
    uint64_t superseded_by; /* manifest that cancelled it; 0 = not cancelled */
    bool superseded_removes;
};

struct mgo_executor {
    struct mgo_executor_deps d;
    struct mgo_worker *worker;
    struct mgo_dep_record recs[MAX_RECS];
    size_t recs_len;
    struct item queue[MAX_QUEUE];
    size_t q_pos, q_len;
    struct current cur;
    bool prune_due;
    bool closing; /* shutting down: nothing new starts */
    /* the newest manifest received and not accepted yet */
    uint8_t *manifest_bytes;
    size_t manifest_len;
    uint64_t manifest_version;
    uint64_t last_mismatch_version;
    uint64_t storage_error_version; /* manifest whose acceptance the disk refused */
    /* expiry of the accepted manifest (x-margo-mqtt-validity; 0: unknown or none): set at
     * acceptance and by refreshes of the same version; not persisted, the retained manifest
     * sets it again after a restart */
    uint64_t held_expires_at;
    uint64_t expired_event_version; /* manifest-expired already raised for this version */
    uint64_t expiry_timer;
    uint64_t settle_timer;
    struct mgo_plan plan; /* one per executor: large, and agents run side by side in tests */
    struct mgo_plan_doc pdocs[MGO_DOCS_MAX];
    struct mgo_plan_installed installed[MAX_RECS];
};

static void pump(struct mgo_executor *x);

size_t mgo_executor_records(const struct mgo_executor *x)
{
    return x->recs_len;
}

static struct mgo_dep_record *rec_find(struct mgo_executor *x, const char *id)
{
    for (size_t i = 0; i < x->recs_len; i++)
        if (strcmp(x->recs[i].id, id) == 0)
            return &x->recs[i];
    return NULL;
}

static void rec_drop(struct mgo_executor *x, const char *id)
{
    for (size_t i = 0; i < x->recs_len; i++) {
        if (strcmp(x->recs[i].id, id) == 0) {
            x->recs[i] = x->recs[--x->recs_len];
            return;
        }
    }
}

static void enqueue(struct mgo_executor *x, enum item_kind kind, const char *id, const char *digest,
                    const char *label)
{
    if (x->q_pos == x->q_len)
        x->q_pos = x->q_len = 0;
    if (x->q_len == MAX_QUEUE) {
        MGO_LOGE(TAG, "%s: %s not queued: %u items waiting", id, label, MAX_QUEUE);
        return;
    }
    struct item *it = &x->queue[x->q_len++];
    it->kind = kind;
    snprintf(it->id, sizeof it->id, "%s", id);
    snprintf(it->digest, sizeof it->digest, "%s", digest ? digest : "");
    it->label = label;
}

static void report_simple(struct mgo_executor *x, const char *id,
                          const struct mgo_app_deployment *dep, const struct mgo_rt_result *results,
                          size_t n, uint64_t adopted, enum mgo_state state,
                          const struct mgo_rt_error *error)
{
    struct mgo_report rep = {.deployment_id = id,
                             .dep = dep,
                             .results = results,
                             .n = n,
                             .adopted_version = adopted,
                             .state = state,
                             .error = error};
    mgo_reporter_report(x->d.reporter, &rep);
}

/* ---- the running job ------------------------------------------------------------------ */

static void cur_clear(struct mgo_executor *x)
{
    mgo_job_free(x->cur.job);
    mgo_arena_cleanup(&x->cur.arena);
    memset(&x->cur, 0, sizeof x->cur);
}

/* Worker progress: report transitions of the overall state, and each component starting;
 * the final state is reported when the job ends. A cancelled job reports no progress. */
static void on_progress(void *ctx, struct mgo_job *job, const struct mgo_rt_result *results,
                        size_t n)
{
    struct mgo_executor *x = ctx;
    struct current *c = &x->cur;
    if (c->job != job || atomic_load(&job->cancel) != 0)
        return;
    enum mgo_state states[MGO_MAX_COMPONENTS] = {MGO_STATE_PENDING};
    for (size_t i = 0; i < n && i < MGO_MAX_COMPONENTS; i++)
        states[i] = results[i].state;
    enum mgo_state overall =
        mgo_state_overall(states, n < MGO_MAX_COMPONENTS ? n : MGO_MAX_COMPONENTS);
    bool component_started = false;
    for (size_t i = 0; i < n; i++)
        if (results[i].state == MGO_STATE_INSTALLING || results[i].state == MGO_STATE_REMOVING)
            component_started = true;
    if (overall == MGO_STATE_INSTALLED || overall == MGO_STATE_REMOVED ||
        overall == MGO_STATE_FAILED)
        return; /* the final report follows when the job ends */
    if (c->started && overall == c->last_overall && !component_started)
        return;
    c->started = true;
    c->last_overall = overall;
    report_simple(x, job->deployment_id, &c->dep, results, n, c->adopted, overall, NULL);
}

static void finish_apply(struct mgo_executor *x, struct mgo_job *job)
{
    struct current *c = &x->cur;
    struct mgo_dep_record *rec = rec_find(x, job->deployment_id);
    if (rec == NULL)
        return;
    bool cancelled = job->err != MGO_OK && c->superseded_by != 0;
    /* what ran is what is (maybe partly) installed now: a removal or update that follows
     * starts from this document */
    snprintf(rec->installed_digest, sizeof rec->installed_digest, "%s", job->digest);
    snprintf(rec->params_hash, sizeof rec->params_hash, "%s", c->doc.params_hash);
    snprintf(rec->profile_hash, sizeof rec->profile_hash, "%s", c->doc.profile_hash);
    rec->installed_ok = job->err == MGO_OK;
    rec->state = job->err == MGO_OK ? MGO_STATE_INSTALLED : MGO_STATE_FAILED;
    if (mgo_agent_record_save(x->d.st, rec) != MGO_OK)
        MGO_LOGE(TAG, "%s: record not saved; the next start re-applies it", rec->id);
    if (!cancelled) {
        report_simple(x, rec->id, &c->dep, job->results, job->n, rec->adopted_manifest_version,
                      rec->state, NULL);
        return;
    }
    struct mgo_rt_error e;
    snprintf(e.code, sizeof e.code, "CANCELLED");
    snprintf(e.source, sizeof e.source, "%s", c->dep.name ? c->dep.name : rec->id);
    snprintf(e.message, sizeof e.message,
             "%s cancelled: manifestVersion %" PRIu64 " %s this deployment", c->label,
             c->superseded_by, c->superseded_removes ? "removes" : "changes");
    report_simple(x, rec->id, &c->dep, job->results, job->n, c->adopted, MGO_STATE_FAILED, &e);
}

/* The deployment is gone from the runtime: report it, then forget it (unless a newer
 * manifest lists it again meanwhile: then only its installed document is forgotten). */
static void finish_removed(struct mgo_executor *x, struct mgo_dep_record *rec,
                           const struct mgo_app_deployment *dep,
                           const struct mgo_rt_result *results, size_t n)
{
    char id[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    snprintf(id, sizeof id, "%s", rec->id);
    report_simple(x, id, dep, results, n, rec->adopted_manifest_version, MGO_STATE_REMOVED, NULL);
    if (!rec->remove) {
        rec->installed_digest[0] = rec->params_hash[0] = rec->profile_hash[0] = '\0';
        rec->installed_ok = false;
        rec->state = MGO_STATE_PENDING;
        if (mgo_agent_record_save(x->d.st, rec) != MGO_OK)
            MGO_LOGE(TAG, "%s: record not saved", id);
        return;
    }
    if (mgo_agent_record_delete(x->d.st, id) != MGO_OK)
        MGO_LOGE(TAG, "%s: record not deleted", id);
    rec_drop(x, id);
}

static void finish_remove(struct mgo_executor *x, struct mgo_job *job)
{
    struct mgo_dep_record *rec = rec_find(x, job->deployment_id);
    if (rec == NULL)
        return;
    if (job->err != MGO_OK) {
        rec->state = MGO_STATE_FAILED;
        if (mgo_agent_record_save(x->d.st, rec) != MGO_OK)
            MGO_LOGE(TAG, "%s: record not saved", rec->id);
        report_simple(x, rec->id, &x->cur.dep, job->results, job->n, rec->adopted_manifest_version,
                      MGO_STATE_FAILED, NULL);
        return;
    }
    finish_removed(x, rec, &x->cur.dep, job->results, job->n);
}

static void finish_probe(struct mgo_executor *x, struct mgo_job *job)
{
    struct mgo_dep_record *rec = rec_find(x, job->deployment_id);
    if (job->err != MGO_OK || job->healthy || x->cur.superseded_by != 0 || rec == NULL ||
        rec->remove || !rec->installed_ok || strcmp(rec->installed_digest, job->digest) != 0 ||
        strcmp(rec->desired_digest, job->digest) != 0)
        return; /* healthy, or the deployment changed while it was probed */
    MGO_LOGW_FOR(TAG, NULL, rec->id, "%s: drift: %s; repairing", rec->id,
                 job->results[0].has_error ? job->results[0].error.message : "not running");
    enqueue(x, ITEM_APPLY, rec->id, rec->installed_digest, "repair");
}

static void count_job(struct mgo_executor *x, const struct mgo_job *job)
{
    if (x->d.metrics == NULL)
        return;
    enum mgo_am_op op = job->kind == MGO_JOB_APPLY    ? MGO_AM_APPLY
                        : job->kind == MGO_JOB_REMOVE ? MGO_AM_REMOVE
                                                      : MGO_AM_PROBE;
    bool ok = job->err == MGO_OK && (job->kind != MGO_JOB_PROBE || job->healthy);
    enum mgo_am_result result = atomic_load(&job->cancel) ? MGO_AM_CANCELLED
                                : ok                      ? MGO_AM_OK
                                                          : MGO_AM_FAILED;
    mgo_agent_metrics_op(x->d.metrics, op, result, job->duration_ns);
}

static void on_done(void *ctx, struct mgo_job *job)
{
    struct mgo_executor *x = ctx;
    if (x->cur.job != job) {
        mgo_job_free(job); /* cannot happen: one job at a time */
        return;
    }
    count_job(x, job);
    if (job->kind == MGO_JOB_APPLY)
        finish_apply(x, job);
    else if (job->kind == MGO_JOB_REMOVE)
        finish_remove(x, job);
    else
        finish_probe(x, job);
    if (job->kind != MGO_JOB_PROBE)
        x->prune_due = true;
    cur_clear(x);
    pump(x);
}

/* ---- starting queue items ---------------------------------------------------------------- */

/* Decodes the document into cur and hands the job to the worker. false when nothing runs
 * (the item was finished here, or could not start). */
static bool submit(struct mgo_executor *x, enum mgo_job_kind kind, const struct mgo_dep_record *rec,
                   const struct mgo_doc_entry *d, const char *label)
{
    struct current *c = &x->cur;
    mgo_arena_init(&c->arena, MGO_MAX_DOC_ARENA_BYTES);
    char why[512] = "";
    if (mgo_docs_examine(d->bytes, d->len, &c->arena, &c->doc, &c->dep, why, sizeof why) !=
        MGO_OK) {
        mgo_arena_cleanup(&c->arena);
        if (kind != MGO_JOB_APPLY)
            return false;
        struct mgo_rt_error e;
        snprintf(e.code, sizeof e.code, "INVALID_DEPLOYMENT");
        snprintf(e.source, sizeof e.source, "%s", rec->id);
        snprintf(e.message, sizeof e.message, "%s", why);
        report_simple(x, rec->id, NULL, NULL, 0, rec->adopted_manifest_version, MGO_STATE_FAILED,
                      &e);
        return false;
    }
    c->job = mgo_job_new(kind, rec->id, d->digest, d->bytes, d->len);
    if (c->job == NULL || mgo_worker_submit(x->worker, c->job) != MGO_OK) {
        MGO_LOGE(TAG, "%s: %s not started (out of memory or worker busy)", rec->id, label);
        cur_clear(x);
        return false;
    }
    c->label = label;
    c->adopted = rec->adopted_manifest_version;
    c->last_overall = MGO_STATE_PENDING;
    if (kind != MGO_JOB_PROBE)
        MGO_LOGI_FOR(TAG, NULL, rec->id, "%s: %s (%s, %zu components)", rec->id, label,
                     mgo_profile_type_name(c->dep.profile.type), c->dep.profile.components_len);
    return true;
}

static bool start(struct mgo_executor *x, const struct item *it)
{
    struct mgo_dep_record *rec = rec_find(x, it->id);
    if (rec == NULL)
        return false;
    if (it->kind == ITEM_APPLY || it->kind == ITEM_PROBE) {
        const struct mgo_doc_entry *d = mgo_docs_for(x->d.docs, it->id, it->digest);
        if (d == NULL)
            return false; /* logged by the cache; the record keeps it for the next start */
        return submit(x, it->kind == ITEM_APPLY ? MGO_JOB_APPLY : MGO_JOB_PROBE, rec, d, it->label);
    }
    const struct mgo_doc_entry *d = mgo_docs_for(x->d.docs, rec->id, rec->installed_digest);
    if (d != NULL && submit(x, MGO_JOB_REMOVE, rec, d, it->label))
        return true;
    if (rec->installed_digest[0] != '\0')
        MGO_LOGW(TAG, "%s: installed document unavailable; nothing to uninstall", rec->id);
    finish_removed(x, rec, NULL, NULL, 0);
    return false;
}

/* Starts the next queued item when the worker is idle; tidies the documents when all is
 * done. */
static void pump(struct mgo_executor *x)
{
    if (x->closing)
        return;
    while (x->cur.job == NULL && x->q_pos < x->q_len) {
        struct item it = x->queue[x->q_pos++];
        if (start(x, &it))
            return;
    }
    if (x->cur.job == NULL && x->prune_due) {
        x->prune_due = false;
        mgo_docs_prune(x->d.docs, x->recs, x->recs_len, true, NULL);
    }
}

/* ---- desired state ------------------------------------------------------------------------ */

static void drop_manifest(struct mgo_executor *x)
{
    free(x->manifest_bytes);
    x->manifest_bytes = NULL;
    x->manifest_len = 0;
    x->manifest_version = 0;
}

static void try_accept(void *ctx);

static void arm_settle(struct mgo_executor *x, int64_t delay_ms)
{
    mgo_loop_timer_cancel(x->d.loop, x->settle_timer);
    x->settle_timer = 0;
    if (mgo_loop_timer_add(x->d.loop, delay_ms, try_accept, x, &x->settle_timer) != MGO_OK)
        MGO_LOGE(TAG, "settle timer not set: out of memory");
}

/* The state directory refused a write while accepting a manifest (full, read-only, I/O
 * error; state.c logged the path and errno). Nothing was acted on. The manifest stays the
 * candidate and is tried again after STORAGE_RETRY_MS, so the agent recovers by itself once
 * the disk is fixed; one "storage-error" event per manifest version tells the operator. */
static void storage_failed(struct mgo_executor *x, uint64_t version, const char *what)
{
    if (x->storage_error_version != version) {
        x->storage_error_version = version;
        char msg[MGO_AGENT_MAX_PATH + 256];
        snprintf(msg, sizeof msg,
                 "state directory %s: cannot store %s (full, read-only or I/O "
                 "error; see the agent log); manifest %" PRIu64 " not acted on, retrying",
                 x->d.state_dir, what, version);
        mgo_session_event(x->d.session, "storage-error", "error", NULL, true, version, msg);
    }
    arm_settle(x, STORAGE_RETRY_MS + x->d.settle_ms);
}

/* A job the new plan supersedes is cancelled: an install or update of a deployment the
 * manifest removes or gives another document (a probe always). Returns whether the running
 * job goes on (then the plan's item for it is left out: the job does it). */
static bool supersede(struct mgo_executor *x, uint64_t version)
{
    struct current *c = &x->cur;
    if (c->job == NULL)
        return false;
    if (c->job->kind == MGO_JOB_REMOVE)
        return true;
    const struct mgo_dep_record *rec = rec_find(x, c->job->deployment_id);
    bool removes = rec == NULL || rec->remove;
    if (c->job->kind == MGO_JOB_APPLY && !removes &&
        strcmp(rec->desired_digest, c->job->digest) == 0)
        return true;
    c->superseded_by = version;
    c->superseded_removes = removes;
    atomic_store(&c->job->cancel, 1);
    if (c->job->kind == MGO_JOB_APPLY)
        MGO_LOGW_FOR(TAG, NULL, c->job->deployment_id,
                     "%s: %s cancelled: manifest %" PRIu64 " %s it", c->job->deployment_id,
                     c->label, version, removes ? "removes" : "changes");
    return false;
}

/* ---- expiry (protocol.md §3.2, §8.1) -------------------------------------------------- */

static uint64_t wall_now_s(void)
{
    time_t t = time(NULL);
    return t > 0 ? (uint64_t)t : 0;
}

static bool is_expired(uint64_t expires_at, uint64_t now)
{
    return expires_at != 0 && now > expires_at + EXPIRY_TOLERANCE_S;
}

/* One "manifest-expired" event per manifest version: the agent keeps every deployment
 * running as it is and acts on nothing in that manifest. */
static void raise_expired(struct mgo_executor *x, uint64_t version, uint64_t expires_at,
                          uint64_t now, bool accepted)
{
    if (x->expired_event_version == version)
        return;
    x->expired_event_version = version;
    char msg[512];
    snprintf(msg, sizeof msg,
             "manifest %" PRIu64 " expired at %" PRIu64 " (Unix time; device clock %" PRIu64
             ", tolerance %d s): %s; the deployments keep running as they are",
             version, expires_at, now, EXPIRY_TOLERANCE_S,
             accepted ? "no fresh copy of the accepted manifest arrived (manager or broker "
                        "withholding it, or the device clock is wrong)"
                      : "not acted on (an old manifest replayed, or the device clock is wrong)");
    MGO_LOGW(TAG, "%s", msg);
    mgo_session_event(x->d.session, "manifest-expired", "warning", NULL, true, version, msg);
}

static void check_expiry(void *ctx)
{
    struct mgo_executor *x = ctx;
    x->expiry_timer = 0;
    uint64_t now = wall_now_s();
    if (is_expired(x->held_expires_at, now))
        raise_expired(x, x->d.st->manifest_version, x->held_expires_at, now, true);
    if (mgo_loop_timer_add(x->d.loop, EXPIRY_CHECK_MS, check_expiry, x, &x->expiry_timer) != MGO_OK)
        MGO_LOGE(TAG, "expiry check not set: out of memory");
}

/* Whether ds lists exactly the deployments (ids and digests) of the accepted manifest, as
 * the records hold them: every deployment not being removed, with its desired digest. */
static bool same_deployments(const struct mgo_executor *x, const struct mgo_desired_state *ds)
{
    size_t kept = 0;
    for (size_t i = 0; i < x->recs_len; i++)
        kept += !x->recs[i].remove;
    if (kept != ds->deployments_len)
        return false;
    for (size_t i = 0; i < ds->deployments_len; i++) {
        const struct mgo_desired_ref *d = &ds->deployments[i];
        bool found = false;
        for (size_t j = 0; j < x->recs_len && !found; j++) {
            const struct mgo_dep_record *r = &x->recs[j];
            found = !r->remove && strcmp(r->id, d->deployment_id) == 0 &&
                    strcmp(r->desired_digest, d->digest) == 0;
        }
        if (!found)
            return false;
    }
    return true;
}

/* The accepted version again (a retained copy, a duplicate, or the manager's refresh). It
 * never changes what runs; a refresh only moves the accepted manifest's expiry later. */
static void same_version(struct mgo_executor *x, const struct mgo_desired_state *ds)
{
    if (!ds->has_validity || ds->expires_at <= x->held_expires_at) {
        MGO_LOGD(TAG, "manifest %" PRIu64 " already accepted", ds->manifest_version);
        return;
    }
    if (!same_deployments(x, ds)) {
        MGO_LOGW(TAG,
                 "manifest %" PRIu64 " received again with other deployments: ignored "
                 "(an accepted version never changes; its expiry is not extended)",
                 ds->manifest_version);
        return;
    }
    x->held_expires_at = ds->expires_at;
    if (x->expired_event_version == ds->manifest_version)
        x->expired_event_version = 0; /* fresh again: a later expiry is reported again */
    MGO_LOGI(TAG, "manifest %" PRIu64 " refreshed: valid until %" PRIu64 " (Unix time)",
             ds->manifest_version, ds->expires_at);
}

static void try_accept(void *ctx)
{
    struct mgo_executor *x = ctx;
    x->settle_timer = 0;
    if (x->manifest_bytes == NULL)
        return;
    struct mgo_plan *plan = &x->plan;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems probs;
    mgo_problems_init(&probs);
    struct mgo_desired_state ds;
    if (mgo_desired_state_decode(x->manifest_bytes, x->manifest_len, &arena, &ds, &probs) !=
        MGO_OK) {
        drop_manifest(x);
        goto cleanup;
    }
    uint64_t now = wall_now_s();
    if (ds.has_validity && is_expired(ds.expires_at, now)) {
        /* expired while it waited (settle time, documents) */
        raise_expired(x, ds.manifest_version, ds.expires_at, now, false);
        drop_manifest(x);
        goto cleanup;
    }
    /* persisted documents the records still point at take part too */
    for (size_t i = 0; i < x->recs_len; i++)
        (void)mgo_docs_for(x->d.docs, x->recs[i].id, x->recs[i].installed_digest);
    struct mgo_docs *docs = x->d.docs;
    for (size_t i = 0; i < docs->len; i++)
        x->pdocs[i] =
            (struct mgo_plan_doc){docs->items[i].id, docs->items[i].digest,
                                  docs->items[i].params_hash, docs->items[i].profile_hash};
    for (size_t i = 0; i < x->recs_len; i++) {
        const struct mgo_dep_record *r = &x->recs[i];
        struct mgo_plan_installed *in = &x->installed[i];
        snprintf(in->id, sizeof in->id, "%s", r->id);
        snprintf(in->desired_digest, sizeof in->desired_digest, "%s", r->desired_digest);
        snprintf(in->installed_digest, sizeof in->installed_digest, "%s", r->installed_digest);
        snprintf(in->profile_hash, sizeof in->profile_hash, "%s", r->profile_hash);
        in->installed_ok = r->installed_ok;
        in->remove = r->remove;
    }
    mgo_err err = mgo_plan_compute(x->d.st->manifest_version, &ds, x->pdocs, docs->len,
                                   x->installed, x->recs_len, plan);
    if (err == MGO_ERR_NOT_FOUND) {
        MGO_LOGI(TAG, "manifest %" PRIu64 ": waiting for %s (%s)", ds.manifest_version,
                 plan->why_deployment, plan->why);
        goto cleanup;
    }
    if (err == MGO_ERR_CRYPTO) {
        if (x->last_mismatch_version != ds.manifest_version) {
            x->last_mismatch_version = ds.manifest_version;
            mgo_session_event(x->d.session, "digest-mismatch", "warning", plan->why_deployment,
                              true, ds.manifest_version, plan->why);
        }
        goto cleanup;
    }
    if (err != MGO_OK) {
        mgo_session_event(x->d.session, "manifest-refused",
                          err == MGO_ERR_STALE ? "warning" : "error", NULL, true,
                          ds.manifest_version, plan->why);
        drop_manifest(x);
        goto cleanup;
    }

    /* 1. record the plan durably: documents, then records */
    MGO_LOGI(TAG, "accepting manifest %" PRIu64 " (%zu deployments)", ds.manifest_version,
             ds.deployments_len);
    for (size_t i = 0; i < plan->len; i++) {
        const struct mgo_plan_item *it = &plan->items[i];
        struct mgo_dep_record *r = rec_find(x, it->deployment_id);
        if (it->action == MGO_PLAN_REMOVE) {
            r->remove = true;
            r->desired_digest[0] = '\0';
            r->adopted_manifest_version = ds.manifest_version; /* removal statuses carry it */
        } else {
            const struct mgo_doc_entry *d =
                mgo_docs_find(docs, it->doc->deployment_id, it->doc->digest);
            if (d == NULL || mgo_agent_doc_save(x->d.st, d->digest, d->bytes, d->len) != MGO_OK) {
                MGO_LOGE(TAG, "%s: document not stored; manifest not accepted", it->deployment_id);
                storage_failed(x, ds.manifest_version, "its deployment documents");
                goto cleanup;
            }
            if (r == NULL) {
                if (x->recs_len == MAX_RECS) {
                    MGO_LOGE(TAG, "%s: more than %u deployments known", it->deployment_id,
                             MAX_RECS);
                    goto cleanup;
                }
                r = &x->recs[x->recs_len++];
                memset(r, 0, sizeof *r);
                snprintf(r->id, sizeof r->id, "%s", it->deployment_id);
                r->state = MGO_STATE_PENDING;
            }
            r->remove = false;
            if (it->action != MGO_PLAN_NOOP || r->adopted_manifest_version == 0)
                r->adopted_manifest_version = ds.manifest_version;
            snprintf(r->desired_digest, sizeof r->desired_digest, "%s", d->digest);
        }
        if (mgo_agent_record_save(x->d.st, r) != MGO_OK) {
            MGO_LOGE(TAG, "%s: record not stored; manifest not accepted", it->deployment_id);
            storage_failed(x, ds.manifest_version, "its deployment records");
            goto cleanup;
        }
    }
    /* 2. only then the accepted version */
    uint64_t previous = x->d.st->manifest_version;
    x->d.st->manifest_version = ds.manifest_version;
    if (mgo_agent_state_save(x->d.st) != MGO_OK) {
        x->d.st->manifest_version = previous;
        MGO_LOGE(TAG, "manifest %" PRIu64 " not persisted; not acted on", ds.manifest_version);
        storage_failed(x, ds.manifest_version, "the accepted manifestVersion");
        goto cleanup;
    }
    x->held_expires_at = ds.has_validity ? ds.expires_at : 0;
    drop_manifest(x);

    /* 3. what runs now and goes on is left alone; what the manifest changes is cancelled */
    const char *running = x->cur.job ? x->cur.job->deployment_id : NULL;
    bool goes_on = supersede(x, ds.manifest_version);

    /* 4. pending for every deployment the plan installs, updates, reconfigures or retries
     *    (not the one the worker holds: its own reports come first; protocol.md §7.2-7.3),
     *    then the plan replaces whatever was still queued */
    for (size_t i = 0; i < plan->len; i++) {
        const struct mgo_plan_item *it = &plan->items[i];
        if (it->action == MGO_PLAN_NOOP || it->action == MGO_PLAN_REMOVE)
            continue;
        if (running != NULL && strcmp(running, it->deployment_id) == 0)
            continue;
        struct mgo_dep_record *r = rec_find(x, it->deployment_id);
        if (r == NULL)
            continue;
        /* pending, with every component of the new document listed as pending */
        const struct mgo_doc_entry *d =
            mgo_docs_find(docs, it->doc->deployment_id, it->doc->digest);
        struct mgo_arena darena;
        mgo_arena_init(&darena, MGO_MAX_DOC_ARENA_BYTES);
        struct mgo_app_deployment dep;
        struct mgo_doc_entry tmp;
        memset(&tmp, 0, sizeof tmp);
        char why[256];
        struct mgo_rt_result results[MGO_MAX_COMPONENTS];
        memset(results, 0, sizeof results);
        bool ok = d != NULL && mgo_docs_examine(d->bytes, d->len, &darena, &tmp, &dep, why,
                                                sizeof why) == MGO_OK;
        report_simple(x, r->id, ok ? &dep : NULL, results, ok ? dep.profile.components_len : 0,
                      r->adopted_manifest_version, MGO_STATE_PENDING, NULL);
        mgo_arena_cleanup(&darena);
    }
    x->q_pos = x->q_len = 0;
    for (size_t i = 0; i < plan->len; i++) {
        const struct mgo_plan_item *it = &plan->items[i];
        if (it->action == MGO_PLAN_NOOP)
            continue;
        if (goes_on && strcmp(running, it->deployment_id) == 0 &&
            (x->cur.job->kind == MGO_JOB_REMOVE) == (it->action == MGO_PLAN_REMOVE))
            continue; /* the running job does this very step */
        MGO_LOGI_FOR(TAG, NULL, it->deployment_id, "%s: %s", it->deployment_id,
                     mgo_plan_action_name(it->action));
        if (it->action == MGO_PLAN_REMOVE)
            enqueue(x, ITEM_REMOVE, it->deployment_id, NULL, "remove");
        else
            enqueue(x, ITEM_APPLY, it->deployment_id, it->doc->digest,
                    mgo_plan_action_name(it->action));
    }
    /* received documents no record needs any more go, and stored ones */
    mgo_docs_prune(docs, x->recs, x->recs_len, false, x->cur.job ? x->cur.job->digest : NULL);
    pump(x);
cleanup:
    mgo_arena_cleanup(&arena);
}

void mgo_executor_on_desired(struct mgo_executor *x, const uint8_t *payload, size_t len)
{
    if (len == 0)
        return; /* retained manifest cleared: nothing to do (removal needs a manifest) */
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems probs;
    mgo_problems_init(&probs);
    struct mgo_desired_state ds;
    char why[512];
    uint64_t accepted = x->d.st->manifest_version;
    if (mgo_desired_state_decode(payload, len, &arena, &ds, &probs) != MGO_OK) {
        mgo_problems_format(&probs, why, sizeof why);
        mgo_session_event(x->d.session, "manifest-invalid", "error", NULL, false, 0, why);
        goto cleanup;
    }
    if (ds.manifest_version < accepted) {
        snprintf(why, sizeof why,
                 "manifestVersion %" PRIu64 " is older than the accepted %" PRIu64
                 " (anti-rollback)",
                 ds.manifest_version, accepted);
        mgo_session_event(x->d.session, "manifest-refused", "warning", NULL, true,
                          ds.manifest_version, why);
        goto cleanup;
    }
    uint64_t now = wall_now_s();
    if (ds.has_validity && is_expired(ds.expires_at, now)) {
        /* a replayed old manifest (newer than ours, but withheld until it expired), or the
         * accepted one that nobody refreshes: nothing is installed or removed */
        raise_expired(x, ds.manifest_version, ds.expires_at, now, ds.manifest_version == accepted);
        goto cleanup;
    }
    if (ds.manifest_version == accepted) {
        same_version(x, &ds);
        goto cleanup;
    }
    if (x->manifest_bytes != NULL && x->manifest_version >= ds.manifest_version)
        goto cleanup; /* an older one queued while offline */
    uint8_t *copy = malloc(len);
    if (copy == NULL)
        goto cleanup;
    memcpy(copy, payload, len);
    drop_manifest(x);
    x->manifest_bytes = copy;
    x->manifest_len = len;
    x->manifest_version = ds.manifest_version;
    arm_settle(x, x->d.settle_ms);
    MGO_LOGI(TAG, "manifest %" PRIu64 " received (%zu deployments)", ds.manifest_version,
             ds.deployments_len);
cleanup:
    mgo_arena_cleanup(&arena);
}

void mgo_executor_on_deployment(struct mgo_executor *x, const char *dep_id, const uint8_t *payload,
                                size_t len)
{
    if (len == 0) {
        mgo_docs_forget_received(x->d.docs, dep_id);
        return;
    }
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_doc_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.id, sizeof e.id, "%s", dep_id);
    struct mgo_app_deployment dep;
    char why[512] = "";
    if (mgo_docs_examine(payload, len, &arena, &e, &dep, why, sizeof why) != MGO_OK) {
        mgo_session_event(x->d.session, "deployment-invalid", "error", dep_id, false, 0, why);
        goto cleanup;
    }
    if (dep.id == NULL || strcmp(dep.id, dep_id) != 0) {
        snprintf(why, sizeof why, "document id %s does not match its topic's %s",
                 dep.id ? dep.id : "(none)", dep_id);
        mgo_session_event(x->d.session, "deployment-invalid", "error", dep_id, false, 0, why);
        goto cleanup;
    }
    if (mgo_docs_put(x->d.docs, &e, payload, len, true) != MGO_OK) {
        MGO_LOGE(TAG, "%s: document cache full", dep_id);
        goto cleanup;
    }
    MGO_LOGD(TAG, "%s: document %s received", dep_id, e.digest);
    if (x->manifest_bytes != NULL)
        arm_settle(x, x->d.settle_ms);
cleanup:
    mgo_arena_cleanup(&arena);
}

/* ---- resume, drift ------------------------------------------------------------------------ */

void mgo_executor_resume(struct mgo_executor *x)
{
    for (size_t i = 0; i < x->recs_len; i++) {
        const struct mgo_dep_record *r = &x->recs[i];
        if (r->remove)
            enqueue(x, ITEM_REMOVE, r->id, NULL, "resume");
        else if (strcmp(r->desired_digest, r->installed_digest) != 0 ||
                 (r->state != MGO_STATE_INSTALLED && r->state != MGO_STATE_FAILED))
            enqueue(x, ITEM_APPLY, r->id, r->desired_digest, "resume");
    }
    x->prune_due = true;
    pump(x);
}

void mgo_executor_reconcile(struct mgo_executor *x)
{
    if (x->cur.job != NULL || x->q_pos < x->q_len)
        return; /* busy: the next tick looks again */
    for (size_t i = 0; i < x->recs_len; i++) {
        const struct mgo_dep_record *r = &x->recs[i];
        if (r->remove || !r->installed_ok || strcmp(r->installed_digest, r->desired_digest) != 0)
            continue;
        enqueue(x, ITEM_PROBE, r->id, r->installed_digest, "probe");
    }
    pump(x);
}

/* ---- life ---------------------------------------------------------------------------------- */

mgo_err mgo_executor_new(const struct mgo_executor_deps *deps, struct mgo_executor **out)
{
    struct mgo_executor *x = calloc(1, sizeof *x);
    if (x == NULL)
        return MGO_ERR_NOMEM;
    x->d = *deps;
    mgo_err err = mgo_agent_record_load_all(deps->st, x->recs, MAX_RECS, &x->recs_len);
    if (err == MGO_OK)
        err = mgo_worker_new(deps->loop, deps->rt, on_progress, on_done, x, &x->worker);
    if (err != MGO_OK) {
        free(x);
        return err;
    }
    if (mgo_loop_timer_add(deps->loop, EXPIRY_CHECK_MS, check_expiry, x, &x->expiry_timer) !=
        MGO_OK)
        MGO_LOGE(TAG, "expiry check not set: out of memory");
    *out = x;
    return MGO_OK;
}

void mgo_executor_free(struct mgo_executor *x)
{
    if (x == NULL)
        return;
    x->closing = true;
    struct mgo_job *job = NULL;
    mgo_worker_free(x->worker, &job);
    if (job != NULL && job == x->cur.job) {
        if (job->err == MGO_OK && job->kind != MGO_JOB_PROBE) {
            on_done(x, job); /* it completed before the cancel came: keep the result */
        } else {
            if (job->kind != MGO_JOB_PROBE)
                MGO_LOGW(TAG, "%s: interrupted by shutdown; resumed at the next start",
                         job->deployment_id);
            cur_clear(x); /* the record still says desired != installed */
        }
    }
    cur_clear(x);
    mgo_loop_timer_cancel(x->d.loop, x->settle_timer);
    mgo_loop_timer_cancel(x->d.loop, x->expiry_timer);
    drop_manifest(x);
    free(x);
}
