/* latest.c - the latest status of each deployment on disk (latest.h). */
#include "latest.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal.h"
#include "le.h"
#include "mgo/buf.h"
#include "mgo/log.h"

#define TAG "agent.latest"
#define MAGIC 0x314C474Du /* "MGL1" little endian */
#define HDR_LEN (4u + 8u + 8u + 4u)
#define SUFFIX ".status"
#define PENDING_FILE "restore-pending"
#define MAX_FILE_BYTES (HDR_LEN + MGO_MAX_MESSAGE_BYTES + 4u)

mgo_err mgo_latest__format(uint64_t boot, uint64_t seq, const void *payload, size_t payload_len,
                           struct mgo_buf *out)
{
    if (payload_len > MGO_MAX_MESSAGE_BYTES)
        return MGO_ERR_LIMIT;
    uint8_t hdr[HDR_LEN];
    mgo_le_put_u32(hdr, MAGIC);
    mgo_le_put_u64(hdr + 4, boot);
    mgo_le_put_u64(hdr + 12, seq);
    mgo_le_put_u32(hdr + 20, (uint32_t)payload_len);
    size_t start = out->len;
    mgo_err err = mgo_buf_append(out, hdr, sizeof hdr);
    if (err == MGO_OK)
        err = mgo_buf_append(out, payload, payload_len);
    if (err != MGO_OK)
        return err;
    uint8_t crc[4];
    mgo_le_put_u32(crc, mgo_journal__crc32(out->data + start, out->len - start));
    return mgo_buf_append(out, crc, sizeof crc);
}

mgo_err mgo_latest__parse(const uint8_t *data, size_t len, uint64_t *boot, uint64_t *seq,
                          const uint8_t **payload, size_t *payload_len)
{
    if (len < HDR_LEN + 4u || mgo_le_get_u32(data) != MAGIC)
        return MGO_ERR_PARSE;
    uint32_t plen = mgo_le_get_u32(data + 20);
    if (plen > MGO_MAX_MESSAGE_BYTES || len != HDR_LEN + (size_t)plen + 4u)
        return MGO_ERR_PARSE;
    if (mgo_le_get_u32(data + HDR_LEN + plen) != mgo_journal__crc32(data, HDR_LEN + (size_t)plen))
        return MGO_ERR_PARSE;
    *boot = mgo_le_get_u64(data + 4);
    *seq = mgo_le_get_u64(data + 12);
    *payload = data + HDR_LEN;
    *payload_len = plen;
    return MGO_OK;
}

static mgo_err file_path(const struct mgo_latest *l, const char *id, char *out)
{
    int n = snprintf(out, MGO_AGENT_MAX_PATH, "%s/%s" SUFFIX, l->dir, id);
    return n < 0 || (size_t)n >= MGO_AGENT_MAX_PATH ? MGO_ERR_LIMIT : MGO_OK;
}

/* Replaces the entry's payload and position with a copy of the given one. */
static mgo_err set(struct mgo_latest_entry *e, uint64_t boot, uint64_t seq, const void *payload,
                   size_t payload_len)
{
    uint8_t *copy = malloc(payload_len > 0 ? payload_len : 1);
    if (copy == NULL)
        return MGO_ERR_NOMEM;
    if (payload_len > 0)
        memcpy(copy, payload, payload_len);
    free(e->payload);
    e->payload = copy;
    e->payload_len = payload_len;
    e->boot = boot;
    e->seq = seq;
    return MGO_OK;
}

static mgo_err load(struct mgo_latest *l, const char *path, const char *id)
{
    struct mgo_buf buf;
    mgo_buf_init(&buf, MAX_FILE_BYTES);
    uint64_t boot = 0, seq = 0;
    const uint8_t *payload = NULL;
    size_t payload_len = 0;
    mgo_err err = mgo_buf_read_file(&buf, path);
    if (err == MGO_OK)
        err = mgo_latest__parse(buf.data, buf.len, &boot, &seq, &payload, &payload_len);
    if (err != MGO_OK) {
        MGO_LOGE(TAG, "%s: unreadable (%s); skipped, kept on disk", path, mgo_strerror(err));
        mgo_buf_cleanup(&buf);
        return err == MGO_ERR_NOMEM ? err : MGO_OK;
    }
    struct mgo_latest_entry *e = &l->items[l->len];
    memset(e, 0, sizeof *e);
    snprintf(e->deployment_id, sizeof e->deployment_id, "%s", id);
    err = set(e, boot, seq, payload, payload_len);
    if (err == MGO_OK)
        l->len++;
    mgo_buf_cleanup(&buf);
    return err;
}

mgo_err mgo_latest_open(struct mgo_latest *l, const char *dir)
{
    memset(l, 0, sizeof *l);
    int n = snprintf(l->dir, sizeof l->dir, "%s", dir);
    if (n < 0 || (size_t)n >= sizeof l->dir - 80u) /* room for "/ID.status" */
        return MGO_ERR_LIMIT;
    mgo_err err = mgo_agent__mkdir_p(l->dir);
    if (err != MGO_OK)
        return err;
    DIR *d = opendir(l->dir);
    if (d == NULL) {
        MGO_LOGE(TAG, "open %s: %s", l->dir, strerror(errno));
        return MGO_ERR_IO;
    }
    struct dirent *de;
    while (err == MGO_OK && (de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name), sl = strlen(SUFFIX);
        if (de->d_name[0] == '.' || len <= sl || strcmp(de->d_name + len - sl, SUFFIX) != 0)
            continue;
        if (len - sl > MGO_MAX_DEPLOYMENT_ID_LEN)
            continue;
        if (l->len == MGO_LATEST_MAX) {
            MGO_LOGE(TAG, "%s: more than %u latest statuses; the rest are not restored", l->dir,
                     MGO_LATEST_MAX);
            err = MGO_ERR_LIMIT;
            break;
        }
        char id[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
        memcpy(id, de->d_name, len - sl);
        id[len - sl] = '\0';
        char path[MGO_AGENT_MAX_PATH];
        if (file_path(l, id, path) == MGO_OK)
            err = load(l, path, id);
    }
    closedir(d);
    char p[MGO_AGENT_MAX_PATH];
    int pn = snprintf(p, sizeof p, "%s/" PENDING_FILE, l->dir);
    if (pn > 0 && (size_t)pn < sizeof p && access(p, F_OK) == 0) {
        l->pending_file = true;
        for (size_t i = 0; i < l->len; i++)
            l->items[i].restore = true;
    }
    return err;
}

mgo_err mgo_latest_restore_all(struct mgo_latest *l)
{
    for (size_t i = 0; i < l->len; i++)
        l->items[i].restore = true;
    if (l->pending_file || l->len == 0)
        return MGO_OK;
    char p[MGO_AGENT_MAX_PATH];
    int pn = snprintf(p, sizeof p, "%s/" PENDING_FILE, l->dir);
    if (pn < 0 || (size_t)pn >= sizeof p)
        return MGO_ERR_LIMIT;
    mgo_err err = mgo_agent__write_atomic(p, "", 0);
    if (err == MGO_OK)
        l->pending_file = true;
    return err;
}

mgo_err mgo_latest_restore_check(struct mgo_latest *l)
{
    if (!l->pending_file)
        return MGO_OK;
    for (size_t i = 0; i < l->len; i++)
        if (l->items[i].restore)
            return MGO_OK;
    char p[MGO_AGENT_MAX_PATH];
    int pn = snprintf(p, sizeof p, "%s/" PENDING_FILE, l->dir);
    if (pn < 0 || (size_t)pn >= sizeof p)
        return MGO_ERR_LIMIT;
    if (unlink(p) != 0 && errno != ENOENT) {
        MGO_LOGE(TAG, "unlink %s: %s", p, strerror(errno));
        return MGO_ERR_IO;
    }
    l->pending_file = false;
    return MGO_OK;
}

void mgo_latest_close(struct mgo_latest *l)
{
    for (size_t i = 0; i < l->len; i++)
        free(l->items[i].payload);
    l->len = 0;
}

struct mgo_latest_entry *mgo_latest_find(struct mgo_latest *l, const char *deployment_id)
{
    for (size_t i = 0; i < l->len; i++)
        if (strcmp(l->items[i].deployment_id, deployment_id) == 0)
            return &l->items[i];
    return NULL;
}

mgo_err mgo_latest_put(struct mgo_latest *l, const char *deployment_id, uint64_t boot, uint64_t seq,
                       const void *payload, size_t payload_len)
{
    if (strlen(deployment_id) > MGO_MAX_DEPLOYMENT_ID_LEN)
        return MGO_ERR_LIMIT;
    struct mgo_latest_entry *e = mgo_latest_find(l, deployment_id);
    if (e != NULL && !mgo_pos_before(e->boot, e->seq, boot, seq))
        return MGO_OK;
    bool added = false;
    if (e == NULL) {
        if (l->len == MGO_LATEST_MAX)
            return MGO_ERR_LIMIT;
        e = &l->items[l->len];
        memset(e, 0, sizeof *e);
        snprintf(e->deployment_id, sizeof e->deployment_id, "%s", deployment_id);
        added = true;
    }
    mgo_err err = set(e, boot, seq, payload, payload_len);
    if (err != MGO_OK)
        return err;
    if (added)
        l->len++;
    /* a newer status replaces one waiting to be restored: whoever publishes the newer one
     * restores the deployment */
    e->restore = false;

    char path[MGO_AGENT_MAX_PATH];
    struct mgo_buf buf;
    mgo_buf_init(&buf, MAX_FILE_BYTES);
    err = file_path(l, deployment_id, path);
    if (err == MGO_OK)
        err = mgo_latest__format(boot, seq, payload, payload_len, &buf);
    if (err == MGO_OK)
        err = mgo_agent__write_atomic(path, buf.data, buf.len);
    mgo_buf_cleanup(&buf);
    return err;
}

mgo_err mgo_latest_forget(struct mgo_latest *l, const char *deployment_id, uint64_t boot,
                          uint64_t seq)
{
    struct mgo_latest_entry *e = mgo_latest_find(l, deployment_id);
    if (e != NULL) {
        if (mgo_pos_before(boot, seq, e->boot, e->seq))
            return MGO_OK; /* a newer status than the removal is held */
        free(e->payload);
        *e = l->items[--l->len];
    }
    char path[MGO_AGENT_MAX_PATH];
    mgo_err err = file_path(l, deployment_id, path);
    if (err != MGO_OK)
        return err;
    if (unlink(path) != 0) {
        if (errno == ENOENT)
            return MGO_OK;
        MGO_LOGE(TAG, "unlink %s: %s", path, strerror(errno));
        return MGO_ERR_IO;
    }
    return mgo_agent__fsync_dir(l->dir);
}
