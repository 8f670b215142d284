/* state.c - durable agent state: atomic files, boot counter, deployment records, documents. */
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mgo/log.h"
#include "mgo/topic.h"

#define TAG "agent.state"
#define STATE_FILE "agent.state"
#define REC_SUFFIX ".rec"
#define DOC_SUFFIX ".msgpack"
#define MAX_STATE_FILE_BYTES (64u * 1024u)
#define MAX_DOC_FILE_BYTES MGO_MAX_MESSAGE_BYTES

/* ---- file helpers ------------------------------------------------------------------ */

mgo_err mgo_agent__fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        MGO_LOGE(TAG, "open %s: %s", dir, strerror(errno));
        return MGO_ERR_IO;
    }
    mgo_err err = MGO_OK;
    if (fsync(fd) != 0 && errno != EINVAL) {
        MGO_LOGE(TAG, "fsync %s: %s", dir, strerror(errno));
        err = MGO_ERR_IO;
    }
    close(fd);
    return err;
}

static mgo_err split_dir(const char *path, char *dir, char *base)
{
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    const char *b = slash ? slash + 1 : path;
    if (dlen + 1 > MGO_AGENT_MAX_PATH || strlen(b) + 1 > MGO_AGENT_MAX_PATH || *b == '\0')
        return MGO_ERR_LIMIT;
    if (slash == NULL) {
        memcpy(dir, ".", 2);
    } else if (dlen == 0) {
        memcpy(dir, "/", 2);
    } else {
        memcpy(dir, path, dlen);
        dir[dlen] = '\0';
    }
    memcpy(base, b, strlen(b) + 1);
    return MGO_OK;
}

mgo_err mgo_agent__write_atomic(const char *path, const void *data, size_t len)
{
    char dir[MGO_AGENT_MAX_PATH], base[MGO_AGENT_MAX_PATH], tmp[MGO_AGENT_MAX_PATH];
    mgo_err err = split_dir(path, dir, base);
    if (err != MGO_OK)
        return err;
    int n = snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, base);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return MGO_ERR_LIMIT;

    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        MGO_LOGE(TAG, "create %s: %s", tmp, strerror(errno));
        return MGO_ERR_IO;
    }
    const uint8_t *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            MGO_LOGE(TAG, "write %s: %s", tmp, strerror(errno));
            err = MGO_ERR_IO;
            goto cleanup_fd;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        MGO_LOGE(TAG, "fsync %s: %s", tmp, strerror(errno));
        err = MGO_ERR_IO;
        goto cleanup_fd;
    }
    if (close(fd) != 0) {
        fd = -1;
        MGO_LOGE(TAG, "close %s: %s", tmp, strerror(errno));
        err = MGO_ERR_IO;
        goto cleanup_tmp;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        MGO_LOGE(TAG, "rename %s -> %s: %s", tmp, path, strerror(errno));
        err = MGO_ERR_IO;
        goto cleanup_tmp;
    }
    return mgo_agent__fsync_dir(dir);

cleanup_fd:
    close(fd);
cleanup_tmp:
    unlink(tmp);
    return err;
}

mgo_err mgo_agent__mkdir_p(const char *path)
{
    char buf[MGO_AGENT_MAX_PATH];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf)
        return MGO_ERR_LIMIT;
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
            MGO_LOGE(TAG, "mkdir %s: %s", buf, strerror(errno));
            return MGO_ERR_IO;
        }
        buf[i] = saved;
    }
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        MGO_LOGE(TAG, "%s: not a directory", path);
        return MGO_ERR_IO;
    }
    return MGO_OK;
}

mgo_err mgo_agent__rm_rf(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return errno == ENOENT ? MGO_OK : MGO_ERR_IO;
    if (!S_ISDIR(sb.st_mode))
        return unlink(path) == 0 ? MGO_OK : MGO_ERR_IO;
    DIR *d = opendir(path);
    if (d == NULL)
        return MGO_ERR_IO;
    mgo_err err = MGO_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char child[MGO_AGENT_MAX_PATH];
        int n = snprintf(child, sizeof child, "%s/%s", path, de->d_name);
        if (n < 0 || (size_t)n >= sizeof child) {
            err = MGO_ERR_LIMIT;
            continue;
        }
        mgo_err e = mgo_agent__rm_rf(child);
        if (e != MGO_OK)
            err = e;
    }
    closedir(d);
    if (rmdir(path) != 0 && err == MGO_OK)
        err = MGO_ERR_IO;
    return err;
}

mgo_err mgo_agent_state_path(const struct mgo_agent_state *st, const char *rel, char *out)
{
    int n = snprintf(out, MGO_AGENT_MAX_PATH, "%s/%s", st->dir, rel);
    if (n < 0 || (size_t)n >= MGO_AGENT_MAX_PATH)
        return MGO_ERR_LIMIT;
    return MGO_OK;
}

/* ---- key value text ------------------------------------------------------------------ */

/* Calls fn for each "key value" line; '#' comments and blank lines skipped. */
typedef mgo_err (*kv_fn)(const char *key, const char *value, void *ctx, char *why, size_t why_len);

static mgo_err kv_parse(const char *text, size_t len, const char *name, kv_fn fn, void *ctx)
{
    size_t pos = 0;
    unsigned line = 0;
    while (pos < len) {
        line++;
        size_t end = pos;
        while (end < len && text[end] != '\n')
            end++;
        char buf[512];
        size_t l = end - pos;
        if (l >= sizeof buf) {
            MGO_LOGE(TAG, "%s:%u: line longer than %zu bytes", name, line, sizeof buf - 1);
            return MGO_ERR_PARSE;
        }
        memcpy(buf, text + pos, l);
        buf[l] = '\0';
        pos = end + 1;
        if (memchr(buf, '\0', l) != NULL) {
            MGO_LOGE(TAG, "%s:%u: NUL byte", name, line);
            return MGO_ERR_PARSE;
        }
        char *k = buf;
        while (*k == ' ' || *k == '\t')
            k++;
        if (*k == '\0' || *k == '#')
            continue;
        char *sp = strchr(k, ' ');
        const char *v = "";
        if (sp != NULL) {
            *sp = '\0';
            v = sp + 1;
        }
        char why[160] = "";
        mgo_err err = fn(k, v, ctx, why, sizeof why);
        if (err != MGO_OK) {
            MGO_LOGE(TAG, "%s:%u: %s: %s", name, line, k, why);
            return err;
        }
    }
    return MGO_OK;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = (uint64_t)v;
    return true;
}

static mgo_err state_kv(const char *key, const char *value, void *ctx, char *why, size_t why_len)
{
    struct mgo_agent_state *st = ctx;
    uint64_t *dst = NULL;
    if (strcmp(key, "manifest-version") == 0)
        dst = &st->manifest_version;
    else if (strcmp(key, "boot") == 0)
        dst = &st->boot;
    if (dst == NULL) {
        snprintf(why, why_len, "unknown key");
        return MGO_ERR_PARSE;
    }
    if (!parse_u64(value, dst)) {
        snprintf(why, why_len, "must be an unsigned 64-bit integer");
        return MGO_ERR_PARSE;
    }
    return MGO_OK;
}

mgo_err mgo_agent_state_save(const struct mgo_agent_state *st)
{
    char path[MGO_AGENT_MAX_PATH], text[128];
    mgo_err err = mgo_agent_state_path(st, STATE_FILE, path);
    if (err != MGO_OK)
        return err;
    int n = snprintf(text, sizeof text, "manifest-version %" PRIu64 "\nboot %" PRIu64 "\n",
                     st->manifest_version, st->boot);
    return mgo_agent__write_atomic(path, text, (size_t)n);
}

static void remove_stray_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' && l > 5 && strcmp(de->d_name + l - 4, ".tmp") == 0) {
            char p[MGO_AGENT_MAX_PATH];
            int n = snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            if (n > 0 && (size_t)n < sizeof p) {
                MGO_LOGW(TAG, "removing unfinished write %s", p);
                unlink(p);
            }
        }
    }
    closedir(d);
}

mgo_err mgo_agent_state_open(const char *dir, struct mgo_agent_state *st)
{
    memset(st, 0, sizeof *st);
    size_t dl = strlen(dir);
    if (dl == 0 || dl + 64 >= sizeof st->dir) {
        MGO_LOGE(TAG, "state-dir: must be 1..%zu bytes", sizeof st->dir - 64);
        return MGO_ERR_LIMIT;
    }
    memcpy(st->dir, dir, dl + 1);
    static const char *const subdirs[] = {"", "deployments", "docs", "status", "work"};
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        char p[MGO_AGENT_MAX_PATH];
        mgo_err err = mgo_agent_state_path(st, subdirs[i], p);
        if (err == MGO_OK)
            err = mgo_agent__mkdir_p(p);
        if (err != MGO_OK)
            return err;
        remove_stray_tmp(p);
    }

    char path[MGO_AGENT_MAX_PATH];
    mgo_err err = mgo_agent_state_path(st, STATE_FILE, path);
    if (err != MGO_OK)
        return err;
    struct mgo_buf buf;
    mgo_buf_init(&buf, MAX_STATE_FILE_BYTES);
    if (access(path, F_OK) == 0) {
        err = mgo_buf_read_file(&buf, path);
        if (err != MGO_OK) {
            MGO_LOGE(TAG, "%s: cannot read: %s", path, mgo_strerror(err));
            goto cleanup;
        }
        err = kv_parse((const char *)buf.data, buf.len, path, state_kv, st);
        if (err != MGO_OK)
            goto cleanup;
    }
    if (st->boot == UINT64_MAX) {
        MGO_LOGE(TAG, "%s: boot counter exhausted", path);
        err = MGO_ERR_LIMIT;
        goto cleanup;
    }
    st->boot++;
    err = mgo_agent_state_save(st);
cleanup:
    mgo_buf_cleanup(&buf);
    return err;
}

/* ---- records ---------------------------------------------------------------------- */

static mgo_err copy_digest(char *dst, const char *value, char *why, size_t why_len)
{
    if (*value != '\0' && !mgo_digest_is_sha256(value)) {
        snprintf(why, why_len, "must be empty or sha256:<64 lowercase hex>");
        return MGO_ERR_PARSE;
    }
    memcpy(dst, value, strlen(value) + 1);
    return MGO_OK;
}

static mgo_err rec_kv(const char *key, const char *value, void *ctx, char *why, size_t why_len)
{
    struct mgo_dep_record *r = ctx;
    if (strcmp(key, "id") == 0) {
        if (mgo_topic_check_deployment_id(value, strlen(value)) != MGO_OK) {
            snprintf(why, why_len, "must be 1..%u of [A-Za-z0-9._~-]", MGO_MAX_DEPLOYMENT_ID_LEN);
            return MGO_ERR_PARSE;
        }
        memcpy(r->id, value, strlen(value) + 1);
        return MGO_OK;
    }
    if (strcmp(key, "desired") == 0)
        return copy_digest(r->desired_digest, value, why, why_len);
    if (strcmp(key, "installed") == 0)
        return copy_digest(r->installed_digest, value, why, why_len);
    if (strcmp(key, "params") == 0)
        return copy_digest(r->params_hash, value, why, why_len);
    if (strcmp(key, "profile") == 0)
        return copy_digest(r->profile_hash, value, why, why_len);
    if (strcmp(key, "adopted") == 0) {
        if (!parse_u64(value, &r->adopted_manifest_version)) {
            snprintf(why, why_len, "must be an unsigned 64-bit integer");
            return MGO_ERR_PARSE;
        }
        return MGO_OK;
    }
    if (strcmp(key, "remove") == 0 || strcmp(key, "installed-ok") == 0) {
        bool *dst = key[0] == 'r' ? &r->remove : &r->installed_ok;
        if (strcmp(value, "1") != 0 && strcmp(value, "0") != 0) {
            snprintf(why, why_len, "must be 0 or 1");
            return MGO_ERR_PARSE;
        }
        *dst = value[0] == '1';
        return MGO_OK;
    }
    if (strcmp(key, "state") == 0) {
        if (mgo_state_parse(value, &r->state) != MGO_OK) {
            snprintf(why, why_len, "must be a Margo state name");
            return MGO_ERR_PARSE;
        }
        return MGO_OK;
    }
    snprintf(why, why_len, "unknown key");
    return MGO_ERR_PARSE;
}

mgo_err mgo_agent_record_parse(const char *text, size_t len, const char *name,
                               struct mgo_dep_record *out)
{
    struct mgo_dep_record r;
    memset(&r, 0, sizeof r);
    r.state = MGO_STATE_PENDING;
    mgo_err err = kv_parse(text, len, name, rec_kv, &r);
    if (err != MGO_OK)
        return err;
    if (r.id[0] == '\0') {
        MGO_LOGE(TAG, "%s: id: missing", name);
        return MGO_ERR_PARSE;
    }
    *out = r;
    return MGO_OK;
}

mgo_err mgo_agent_record_format(const struct mgo_dep_record *r, struct mgo_buf *out)
{
    return mgo_buf_printf(out,
                          "id %s\ndesired %s\ninstalled %s\nparams %s\nprofile %s\nadopted %" PRIu64
                          "\nremove %d\ninstalled-ok %d\nstate %s\n",
                          r->id, r->desired_digest, r->installed_digest, r->params_hash,
                          r->profile_hash, r->adopted_manifest_version, r->remove ? 1 : 0,
                          r->installed_ok ? 1 : 0, mgo_state_name(r->state));
}

static mgo_err record_path(const struct mgo_agent_state *st, const char *id, char *out)
{
    if (mgo_topic_check_deployment_id(id, strlen(id)) != MGO_OK)
        return MGO_ERR_INVALID;
    int n = snprintf(out, MGO_AGENT_MAX_PATH, "%s/deployments/%s" REC_SUFFIX, st->dir, id);
    if (n < 0 || (size_t)n >= MGO_AGENT_MAX_PATH)
        return MGO_ERR_LIMIT;
    return MGO_OK;
}

mgo_err mgo_agent_record_save(const struct mgo_agent_state *st, const struct mgo_dep_record *rec)
{
    char path[MGO_AGENT_MAX_PATH];
    mgo_err err = record_path(st, rec->id, path);
    if (err != MGO_OK)
        return err;
    struct mgo_buf buf;
    mgo_buf_init(&buf, 4096);
    err = mgo_agent_record_format(rec, &buf);
    if (err == MGO_OK)
        err = mgo_agent__write_atomic(path, buf.data, buf.len);
    mgo_buf_cleanup(&buf);
    return err;
}

static int rec_cmp(const void *a, const void *b)
{
    return strcmp(((const struct mgo_dep_record *)a)->id, ((const struct mgo_dep_record *)b)->id);
}

mgo_err mgo_agent_record_load_all(const struct mgo_agent_state *st, struct mgo_dep_record *recs,
                                  size_t max, size_t *n_out)
{
    char dir[MGO_AGENT_MAX_PATH];
    mgo_err err = mgo_agent_state_path(st, "deployments", dir);
    if (err != MGO_OK)
        return err;
    DIR *d = opendir(dir);
    if (d == NULL) {
        MGO_LOGE(TAG, "open %s: %s", dir, strerror(errno));
        return MGO_ERR_IO;
    }
    size_t n = 0;
    struct dirent *de;
    struct mgo_buf buf;
    mgo_buf_init(&buf, MAX_STATE_FILE_BYTES);
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        size_t sl = strlen(REC_SUFFIX);
        if (de->d_name[0] == '.' || l <= sl || strcmp(de->d_name + l - sl, REC_SUFFIX) != 0)
            continue;
        char path[MGO_AGENT_MAX_PATH];
        int pn = snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (pn < 0 || (size_t)pn >= sizeof path)
            continue;
        if (n == max) {
            MGO_LOGE(TAG, "%s: more than %zu deployment records", dir, max);
            err = MGO_ERR_LIMIT;
            break;
        }
        mgo_buf_reset(&buf);
        if (mgo_buf_read_file(&buf, path) != MGO_OK) {
            MGO_LOGE(TAG, "%s: cannot read; skipped", path);
            continue;
        }
        struct mgo_dep_record r;
        if (mgo_agent_record_parse((const char *)buf.data, buf.len, path, &r) != MGO_OK) {
            MGO_LOGE(TAG, "%s: unreadable record skipped (kept on disk)", path);
            continue;
        }
        if (strncmp(de->d_name, r.id, l - sl) != 0 || strlen(r.id) != l - sl) {
            MGO_LOGE(TAG, "%s: id %s does not match the file name; skipped", path, r.id);
            continue;
        }
        recs[n++] = r;
    }
    mgo_buf_cleanup(&buf);
    closedir(d);
    qsort(recs, n, sizeof *recs, rec_cmp);
    *n_out = n;
    return err;
}

mgo_err mgo_agent_record_delete(const struct mgo_agent_state *st, const char *id)
{
    char path[MGO_AGENT_MAX_PATH], dir[MGO_AGENT_MAX_PATH];
    mgo_err err = record_path(st, id, path);
    if (err != MGO_OK)
        return err;
    if (unlink(path) != 0 && errno != ENOENT) {
        MGO_LOGE(TAG, "unlink %s: %s", path, strerror(errno));
        return MGO_ERR_IO;
    }
    err = mgo_agent_state_path(st, "deployments", dir);
    if (err != MGO_OK)
        return err;
    return mgo_agent__fsync_dir(dir);
}

/* ---- documents ------------------------------------------------------------------- */

static mgo_err doc_path(const struct mgo_agent_state *st, const char *digest, char *out)
{
    if (!mgo_digest_is_sha256(digest))
        return MGO_ERR_INVALID;
    int n = snprintf(out, MGO_AGENT_MAX_PATH, "%s/docs/%s" DOC_SUFFIX, st->dir, digest + 7);
    if (n < 0 || (size_t)n >= MGO_AGENT_MAX_PATH)
        return MGO_ERR_LIMIT;
    return MGO_OK;
}

mgo_err mgo_agent_doc_save(const struct mgo_agent_state *st, const char *digest, const void *data,
                           size_t len)
{
    char path[MGO_AGENT_MAX_PATH];
    mgo_err err = doc_path(st, digest, path);
    if (err != MGO_OK)
        return err;
    return mgo_agent__write_atomic(path, data, len);
}

mgo_err mgo_agent_doc_load(const struct mgo_agent_state *st, const char *digest,
                           struct mgo_buf *out)
{
    char path[MGO_AGENT_MAX_PATH];
    mgo_err err = doc_path(st, digest, path);
    if (err != MGO_OK)
        return err;
    if (access(path, F_OK) != 0)
        return MGO_ERR_NOT_FOUND;
    mgo_buf_reset(out);
    return mgo_buf_read_file(out, path);
}

void mgo_agent_doc_gc(const struct mgo_agent_state *st, const char *const *keep, size_t n)
{
    char dir[MGO_AGENT_MAX_PATH];
    if (mgo_agent_state_path(st, "docs", dir) != MGO_OK)
        return;
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        size_t sl = strlen(DOC_SUFFIX);
        if (l != 64 + sl || strcmp(de->d_name + 64, DOC_SUFFIX) != 0)
            continue;
        bool kept = false;
        for (size_t i = 0; i < n && !kept; i++)
            kept = keep[i] != NULL && strlen(keep[i]) == MGO_DIGEST_STR_LEN &&
                   strncmp(keep[i] + 7, de->d_name, 64) == 0;
        if (kept)
            continue;
        char p[MGO_AGENT_MAX_PATH];
        int pn = snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (pn > 0 && (size_t)pn < sizeof p)
            unlink(p);
    }
    closedir(d);
}
