/* journal.c - append-only status journal with ACK and STORED frames, torn-tail recovery,
 * compaction. */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "le.h"
#include "mgo/buf.h"
#include "mgo/log.h"
#include "state.h"

#define TAG "agent.journal"
#define MAGIC 0x314A474Du /* "MGJ1" little endian */
#define T_STATUS 1u
#define T_ACK 2u
#define T_STORED 3u
#define T_SENT 4u
#define HDR_LEN (4u + 1u + 8u + 8u + 1u + 4u)
#define MAX_FRAME_PAYLOAD MGO_MAX_MESSAGE_BYTES

uint32_t mgo_journal__crc32(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* Builds one frame into buf. */
static mgo_err frame_build(struct mgo_buf *buf, unsigned type, uint64_t boot, uint64_t seq,
                           const char *id, const void *payload, size_t payload_len)
{
    size_t id_len = id ? strlen(id) : 0;
    if (id_len > MGO_MAX_DEPLOYMENT_ID_LEN || payload_len > MAX_FRAME_PAYLOAD)
        return MGO_ERR_LIMIT;
    uint8_t hdr[HDR_LEN];
    mgo_le_put_u32(hdr, MAGIC);
    hdr[4] = (uint8_t)type;
    mgo_le_put_u64(hdr + 5, boot);
    mgo_le_put_u64(hdr + 13, seq);
    hdr[21] = (uint8_t)id_len;
    mgo_le_put_u32(hdr + 22, (uint32_t)payload_len);
    mgo_buf_reset(buf);
    mgo_err err = mgo_buf_append(buf, hdr, sizeof hdr);
    if (err == MGO_OK && id_len > 0)
        err = mgo_buf_append(buf, id, id_len);
    if (err == MGO_OK && payload_len > 0)
        err = mgo_buf_append(buf, payload, payload_len);
    if (err != MGO_OK)
        return err;
    uint8_t crc[4];
    mgo_le_put_u32(crc, mgo_journal__crc32(buf->data, buf->len));
    return mgo_buf_append(buf, crc, sizeof crc);
}

static mgo_err write_all(int fd, const uint8_t *p, size_t len, const char *path, bool sync)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            MGO_LOGE(TAG, "write %s: %s", path, strerror(errno));
            return MGO_ERR_IO;
        }
        p += w;
        len -= (size_t)w;
    }
    if (sync && fdatasync(fd) != 0) {
        MGO_LOGE(TAG, "fdatasync %s: %s", path, strerror(errno));
        return MGO_ERR_IO;
    }
    return MGO_OK;
}

static void entry_free(struct mgo_journal_entry *e)
{
    free(e->payload);
    e->payload = NULL;
}

/* The bytes a compaction writes for an entry: its STATUS frame and an ACK or SENT frame. */
static uint64_t entry_bytes(const struct mgo_journal_entry *e)
{
    return 2u * (HDR_LEN + 4u) + strlen(e->deployment_id) + e->payload_len;
}

/* ---- the bookkeeping that keeps delivery linear (struct mgo_journal) ---------------------- */

/* Raises the deployment's mark to (boot, seq). */
static void mark_update(struct mgo_journal *j, const char *id, uint64_t boot, uint64_t seq)
{
    for (size_t i = 0; i < j->marks_len; i++) {
        struct mgo_journal_mark *m = &j->marks[i];
        if (strcmp(m->deployment_id, id) == 0) {
            if (mgo_pos_before(m->boot, m->seq, boot, seq)) {
                m->boot = boot;
                m->seq = seq;
            }
            return;
        }
    }
    if (j->marks_len == j->marks_cap) {
        size_t cap = j->marks_cap ? j->marks_cap * 2 : 8;
        struct mgo_journal_mark *p = realloc(j->marks, cap * sizeof *p);
        if (p == NULL) {
            j->marks_ok = false;
            return;
        }
        j->marks = p;
        j->marks_cap = cap;
    }
    struct mgo_journal_mark *m = &j->marks[j->marks_len++];
    snprintf(m->deployment_id, sizeof m->deployment_id, "%s", id);
    m->boot = boot;
    m->seq = seq;
}

/* Marks from the entries (after some were dropped: a dropped entry is older than every
 * pending one, so it never supersedes one). */
static void marks_rebuild(struct mgo_journal *j)
{
    j->marks_len = 0;
    j->marks_ok = true;
    for (size_t i = 0; i < j->pending_len; i++) {
        const struct mgo_journal_entry *e = &j->pending[i];
        if (e->delivered || e->sent)
            mark_update(j, e->deployment_id, e->boot, e->seq);
    }
}

static void extend_done(struct mgo_journal *j)
{
    while (j->done < j->pending_len && j->pending[j->done].delivered && !j->pending[j->done].replay)
        j->done++;
}

size_t mgo_journal_first_due(const struct mgo_journal *j)
{
    return j->done;
}

bool mgo_journal_superseded(const struct mgo_journal *j, size_t i)
{
    const struct mgo_journal_entry *e = &j->pending[i];
    if (!j->marks_ok) {
        for (size_t k = i + 1; k < j->pending_len; k++)
            if ((j->pending[k].delivered || j->pending[k].sent) &&
                strcmp(j->pending[k].deployment_id, e->deployment_id) == 0)
                return true;
        return false;
    }
    for (size_t k = 0; k < j->marks_len; k++)
        if (strcmp(j->marks[k].deployment_id, e->deployment_id) == 0)
            return mgo_pos_before(e->boot, e->seq, j->marks[k].boot, j->marks[k].seq);
    return false;
}

static mgo_err pending_push(struct mgo_journal *j, uint64_t boot, uint64_t seq, const char *id,
                            size_t id_len, const void *payload, size_t payload_len)
{
    if (j->pending_len == j->pending_cap) {
        size_t cap = j->pending_cap ? j->pending_cap * 2 : 16;
        struct mgo_journal_entry *p = realloc(j->pending, cap * sizeof *p);
        if (p == NULL)
            return MGO_ERR_NOMEM;
        j->pending = p;
        j->pending_cap = cap;
    }
    struct mgo_journal_entry *e = &j->pending[j->pending_len];
    memset(e, 0, sizeof *e);
    e->payload = malloc(payload_len ? payload_len : 1);
    if (e->payload == NULL)
        return MGO_ERR_NOMEM;
    if (payload_len > 0)
        memcpy(e->payload, payload, payload_len);
    e->payload_len = payload_len;
    memcpy(e->deployment_id, id, id_len);
    e->deployment_id[id_len] = '\0';
    e->boot = boot;
    e->seq = seq;
    j->pending_len++;
    j->live_bytes += entry_bytes(e);
    return MGO_OK;
}

/* Entries are in position order: a binary search. */
static struct mgo_journal_entry *find(struct mgo_journal *j, uint64_t boot, uint64_t seq)
{
    size_t lo = 0, hi = j->pending_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct mgo_journal_entry *e = &j->pending[mid];
        if (mgo_pos_before(e->boot, e->seq, boot, seq))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < j->pending_len && j->pending[lo].boot == boot && j->pending[lo].seq == seq)
        return &j->pending[lo];
    return NULL;
}

/* Drops the first n entries. */
static void drop_head(struct mgo_journal *j, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        j->live_bytes -= entry_bytes(&j->pending[i]);
        entry_free(&j->pending[i]);
    }
    memmove(&j->pending[0], &j->pending[n], (j->pending_len - n) * sizeof j->pending[0]);
    j->pending_len -= n;
    j->done = j->done > n ? j->done - n : 0;
    extend_done(j);
    /* the marks stay right: a dropped entry is older than every pending one, so a mark it
     * left never makes a pending entry superseded. Rebuilding only bounds their number
     * (deployments that have no entry left), amortized: when they doubled since the last. */
    if (j->marks_len > j->marks_limit) {
        marks_rebuild(j);
        j->marks_limit = j->marks_len * 2 > 64 ? j->marks_len * 2 : 64;
    }
}

/* Leading entries at or before (boot, seq); with skip_replay, stops at one marked replay. */
static size_t settled_prefix(const struct mgo_journal *j, uint64_t boot, uint64_t seq,
                             bool skip_replay)
{
    size_t n = 0;
    while (n < j->pending_len &&
           !mgo_pos_before(boot, seq, j->pending[n].boot, j->pending[n].seq) &&
           !(skip_replay && j->pending[n].replay))
        n++;
    return n;
}

/* Reads the file, fills pending, returns the length of the valid prefix. */
static mgo_err scan(struct mgo_journal *j, const uint8_t *data, size_t len, size_t *valid_out)
{
    size_t pos = 0;
    while (len - pos >= HDR_LEN + 4) {
        const uint8_t *h = data + pos;
        if (mgo_le_get_u32(h) != MAGIC)
            break;
        unsigned type = h[4];
        size_t id_len = h[21];
        size_t pl = mgo_le_get_u32(h + 22);
        if ((type != T_STATUS && type != T_ACK && type != T_STORED && type != T_SENT) ||
            id_len > MGO_MAX_DEPLOYMENT_ID_LEN || pl > MAX_FRAME_PAYLOAD)
            break;
        size_t flen = HDR_LEN + id_len + pl + 4;
        if (len - pos < flen)
            break;
        if (mgo_le_get_u32(h + flen - 4) != mgo_journal__crc32(h, flen - 4))
            break;
        uint64_t boot = mgo_le_get_u64(h + 5), seq = mgo_le_get_u64(h + 13);
        if (type == T_STATUS) {
            if (j->pending_len == MGO_JOURNAL_MAX_PENDING)
                drop_head(j, 1); /* it was dropped to make room when this one was added */
            mgo_err err = pending_push(j, boot, seq, (const char *)h + HDR_LEN, id_len,
                                       h + HDR_LEN + id_len, pl);
            if (err != MGO_OK)
                return err;
        } else if (type == T_ACK) {
            struct mgo_journal_entry *e = find(j, boot, seq);
            if (e != NULL)
                e->delivered = e->sent = true;
        } else if (type == T_SENT) {
            struct mgo_journal_entry *e = find(j, boot, seq);
            if (e != NULL)
                e->sent = true;
        } else {
            drop_head(j, settled_prefix(j, boot, seq, false));
        }
        pos += flen;
    }
    *valid_out = pos;
    return MGO_OK;
}

mgo_err mgo_journal_open(const char *path, struct mgo_journal *j)
{
    memset(j, 0, sizeof *j);
    j->fd = -1;
    size_t pl = strlen(path);
    if (pl + 1 > sizeof j->path)
        return MGO_ERR_LIMIT;
    memcpy(j->path, path, pl + 1);

    mgo_err err = MGO_OK;
    struct mgo_buf buf;
    mgo_buf_init(&buf, (size_t)MGO_JOURNAL_COMPACT_BYTES * 64u);
    if (access(path, F_OK) == 0) {
        err = mgo_buf_read_file(&buf, path);
        if (err != MGO_OK) {
            MGO_LOGE(TAG, "%s: cannot read: %s", path, mgo_strerror(err));
            goto cleanup;
        }
    }
    size_t valid = 0;
    err = scan(j, buf.data, buf.len, &valid);
    if (err != MGO_OK)
        goto cleanup;
    j->done = 0;
    extend_done(j);
    marks_rebuild(j);
    j->marks_limit = j->marks_len * 2 > 64 ? j->marks_len * 2 : 64;
    j->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (j->fd < 0) {
        MGO_LOGE(TAG, "open %s: %s", path, strerror(errno));
        err = MGO_ERR_IO;
        goto cleanup;
    }
    if (valid < buf.len) {
        MGO_LOGW(TAG, "%s: cutting %zu bytes of torn or corrupt tail at offset %zu", path,
                 buf.len - valid, valid);
        if (ftruncate(j->fd, (off_t)valid) != 0 || fsync(j->fd) != 0) {
            MGO_LOGE(TAG, "truncate %s: %s", path, strerror(errno));
            err = MGO_ERR_IO;
            goto cleanup;
        }
    }
    j->size = valid;
    if (lseek(j->fd, 0, SEEK_END) < 0) {
        err = MGO_ERR_IO;
        goto cleanup;
    }
    mgo_buf_cleanup(&buf);
    if (j->size > MGO_JOURNAL_COMPACT_BYTES || (j->pending_len == 0 && j->size > 0))
        return mgo_journal_compact(j);
    return MGO_OK;

cleanup:
    mgo_buf_cleanup(&buf);
    mgo_journal_close(j);
    return err;
}

void mgo_journal_close(struct mgo_journal *j)
{
    if (j->fd >= 0)
        close(j->fd);
    j->fd = -1;
    for (size_t i = 0; i < j->pending_len; i++)
        entry_free(&j->pending[i]);
    free(j->pending);
    j->pending = NULL;
    j->pending_len = j->pending_cap = 0;
    free(j->marks);
    j->marks = NULL;
    j->marks_len = j->marks_cap = 0;
    j->done = 0;
    j->live_bytes = 0;
}

static mgo_err append_frame(struct mgo_journal *j, const struct mgo_buf *frame, bool sync)
{
    mgo_err err = write_all(j->fd, frame->data, frame->len, j->path, sync);
    if (err != MGO_OK) {
        /* Cut whatever part reached the file so the next frame starts clean. */
        if (ftruncate(j->fd, (off_t)j->size) != 0 || lseek(j->fd, 0, SEEK_END) < 0)
            MGO_LOGE(TAG, "%s: cannot cut a failed append: %s", j->path, strerror(errno));
        return err;
    }
    j->size += frame->len;
    return MGO_OK;
}

static mgo_err append_position(struct mgo_journal *j, unsigned type, uint64_t boot, uint64_t seq,
                               bool sync)
{
    struct mgo_buf frame;
    mgo_buf_init(&frame, 256);
    mgo_err err = frame_build(&frame, type, boot, seq, NULL, NULL, 0);
    if (err == MGO_OK)
        err = append_frame(j, &frame, sync);
    mgo_buf_cleanup(&frame);
    return err;
}

/* Rewrites the file when the frames of dropped or acknowledged entries dominate it. */
static void maybe_compact(struct mgo_journal *j)
{
    uint64_t live = j->live_bytes;
    bool compact = j->pending_len == 0 ? j->size > MGO_JOURNAL_COMPACT_BYTES / 8
                                       : j->size > 2u * live + MGO_JOURNAL_COMPACT_BYTES;
    if (compact && mgo_journal_compact(j) != MGO_OK)
        MGO_LOGW(TAG, "%s: compaction failed; the journal keeps growing", j->path);
}

mgo_err mgo_journal_append(struct mgo_journal *j, uint64_t boot, uint64_t seq,
                           const char *deployment_id, const void *payload, size_t payload_len)
{
    if (j->pending_len == MGO_JOURNAL_MAX_PENDING) {
        if (!j->pending[0].delivered || j->pending[0].replay) {
            MGO_LOGE(TAG, "%s: %u undelivered statuses; refusing more", j->path,
                     MGO_JOURNAL_MAX_PENDING);
            return MGO_ERR_LIMIT;
        }
        /* the broker has it; only a manager loss after this point could not be repaired */
        if (j->dropped_unsettled++ == 0)
            MGO_LOGW(TAG,
                     "%s: %u statuses the manager has not confirmed storing; dropping the "
                     "oldest delivered ones to make room (counted)",
                     j->path, MGO_JOURNAL_MAX_PENDING);
    }
    size_t id_len = strlen(deployment_id);
    struct mgo_buf frame;
    mgo_buf_init(&frame, MAX_FRAME_PAYLOAD + 256u);
    mgo_err err = frame_build(&frame, T_STATUS, boot, seq, deployment_id, payload, payload_len);
    if (err == MGO_OK)
        err = append_frame(j, &frame, true);
    if (err == MGO_OK && j->pending_len == MGO_JOURNAL_MAX_PENDING)
        drop_head(j, 1); /* scan() drops it the same way on reload */
    if (err == MGO_OK)
        err = pending_push(j, boot, seq, deployment_id, id_len, payload, payload_len);
    mgo_buf_cleanup(&frame);
    return err;
}

mgo_err mgo_journal_ack(struct mgo_journal *j, uint64_t boot, uint64_t seq)
{
    struct mgo_journal_entry *e = find(j, boot, seq);
    if (e == NULL || e->delivered)
        return MGO_ERR_NOT_FOUND;
    mgo_err err = append_position(j, T_ACK, boot, seq, true);
    if (err != MGO_OK)
        return err;
    e->delivered = e->sent = true;
    mark_update(j, e->deployment_id, boot, seq);
    extend_done(j);
    maybe_compact(j);
    return MGO_OK;
}

mgo_err mgo_journal_sent(struct mgo_journal *j, uint64_t boot, uint64_t seq)
{
    struct mgo_journal_entry *e = find(j, boot, seq);
    if (e == NULL || e->sent || e->delivered)
        return MGO_ERR_NOT_FOUND;
    mgo_err err = append_position(j, T_SENT, boot, seq, false);
    if (err != MGO_OK)
        return err;
    e->sent = true;
    mark_update(j, e->deployment_id, boot, seq);
    maybe_compact(j);
    return MGO_OK;
}

mgo_err mgo_journal_settle(struct mgo_journal *j, uint64_t boot, uint64_t seq, size_t *dropped_out)
{
    if (dropped_out != NULL)
        *dropped_out = 0;
    size_t n = settled_prefix(j, boot, seq, true);
    if (n == 0)
        return MGO_OK;
    const struct mgo_journal_entry *last = &j->pending[n - 1];
    mgo_err err = append_position(j, T_STORED, last->boot, last->seq, false);
    if (err != MGO_OK)
        return err;
    drop_head(j, n);
    if (dropped_out != NULL)
        *dropped_out = n;
    maybe_compact(j);
    return MGO_OK;
}

size_t mgo_journal_mark_replay(struct mgo_journal *j, uint64_t boot, uint64_t seq)
{
    size_t n = 0;
    for (size_t i = 0; i < j->pending_len; i++) {
        struct mgo_journal_entry *e = &j->pending[i];
        if (e->delivered && mgo_pos_before(boot, seq, e->boot, e->seq)) {
            e->replay = true;
            n++;
        }
    }
    j->done = 0;
    extend_done(j);
    return n;
}

void mgo_journal_replayed(struct mgo_journal *j, uint64_t boot, uint64_t seq)
{
    struct mgo_journal_entry *e = find(j, boot, seq);
    if (e != NULL)
        e->replay = false;
    extend_done(j);
}

mgo_err mgo_journal_compact(struct mgo_journal *j)
{
    struct mgo_buf all, frame;
    mgo_buf_init(&all, (size_t)MGO_JOURNAL_COMPACT_BYTES * 64u);
    mgo_buf_init(&frame, MAX_FRAME_PAYLOAD + 256u);
    mgo_err err = MGO_OK;
    for (size_t i = 0; i < j->pending_len && err == MGO_OK; i++) {
        const struct mgo_journal_entry *e = &j->pending[i];
        err = frame_build(&frame, T_STATUS, e->boot, e->seq, e->deployment_id, e->payload,
                          e->payload_len);
        if (err == MGO_OK)
            err = mgo_buf_append(&all, frame.data, frame.len);
        if (err == MGO_OK && (e->delivered || e->sent)) {
            err =
                frame_build(&frame, e->delivered ? T_ACK : T_SENT, e->boot, e->seq, NULL, NULL, 0);
            if (err == MGO_OK)
                err = mgo_buf_append(&all, frame.data, frame.len);
        }
    }
    if (err == MGO_OK)
        err = mgo_agent__write_atomic(j->path, all.data ? all.data : (const uint8_t *)"", all.len);
    if (err == MGO_OK) {
        int fd = open(j->path, O_RDWR | O_CLOEXEC);
        if (fd < 0 || lseek(fd, 0, SEEK_END) < 0) {
            MGO_LOGE(TAG, "reopen %s: %s", j->path, strerror(errno));
            if (fd >= 0)
                close(fd);
            err = MGO_ERR_IO;
        } else {
            close(j->fd);
            j->fd = fd;
            j->size = all.len;
        }
    }
    mgo_buf_cleanup(&frame);
    mgo_buf_cleanup(&all);
    return err;
}
