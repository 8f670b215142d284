/* fetch.c - libcurl downloads, OCI distribution API, safe tar.gz extraction (zlib). */
#include "fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "mgo/digest.h"
#include "mgo/log.h"
#include "mgo/value.h"

#define TAG "agent.fetch"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct sink {
    struct mgo_buf *buf;
    bool too_large;
};

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct sink *s = ud;
    size_t n = size * nmemb;
    if (mgo_buf_append(s->buf, ptr, n) != MGO_OK) {
        s->too_large = true;
        return 0;
    }
    return n;
}

/* curl's progress callback: a non-zero return aborts the transfer. */
static int progress_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    const atomic_int *cancel = ud;
    return atomic_load(cancel) != 0;
}

static mgo_err http_get(const char *url, const char *accept, const struct mgo_fetch_opts *opts,
                        bool allow_file, struct mgo_buf *out, char *content_type, size_t ct_len,
                        char *why, size_t why_len)
{
    pthread_once(&curl_once, curl_init_once);
    bool is_http = strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0;
    bool is_file = strncmp(url, "file://", 7) == 0;
    if (!is_http && !(allow_file && is_file)) {
        snprintf(why, why_len, "unsupported URL scheme (http and https only)");
        return MGO_ERR_INVALID;
    }
    CURL *c = curl_easy_init();
    if (c == NULL)
        return MGO_ERR_NOMEM;
    struct curl_slist *hdrs = NULL;
    char accept_hdr[512];
    if (accept != NULL) {
        snprintf(accept_hdr, sizeof accept_hdr, "Accept: %s", accept);
        hdrs = curl_slist_append(hdrs, accept_hdr);
    }
    mgo_buf_reset(out);
    struct sink s = {out, false};
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, allow_file ? "http,https,file" : "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)(opts && opts->timeout_s ? opts->timeout_s : 300));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)out->max);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "margo-agent/0.1");
    if (opts != NULL && opts->ca_file != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, opts->ca_file);
    if (hdrs != NULL)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (opts != NULL && opts->cancel != NULL) {
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cb);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)(uintptr_t)opts->cancel);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    }
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    mgo_err err = MGO_OK;
    if (s.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(why, why_len, "too large (more than %zu bytes)", out->max);
        err = MGO_ERR_LIMIT;
    } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
        snprintf(why, why_len, "cancelled");
        err = MGO_ERR_RUNTIME;
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(why, why_len, "timed out: %s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        err = MGO_ERR_TIMEOUT;
    } else if (rc != CURLE_OK) {
        snprintf(why, why_len, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        err = MGO_ERR_NET;
    } else if (is_http && (status < 200 || status > 299)) {
        snprintf(why, why_len, "http status %ld", status);
        err = status == 404                    ? MGO_ERR_NOT_FOUND
              : status == 401 || status == 403 ? MGO_ERR_AUTH
                                               : MGO_ERR_NET;
    }
    if (content_type != NULL && ct_len > 0) {
        char *ct = NULL;
        content_type[0] = '\0';
        if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct != NULL)
            snprintf(content_type, ct_len, "%s", ct);
    }
    if (err != MGO_OK)
        MGO_LOGW(TAG, "GET %s: %s", url, why);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return err;
}

mgo_err mgo_fetch_url(const char *url, const struct mgo_fetch_opts *opts, struct mgo_buf *out,
                      char *why, size_t why_len)
{
    return http_get(url, NULL, opts, true, out, NULL, 0, why, why_len);
}

/* ---- OCI ------------------------------------------------------------------------- */

static bool plain_http(const char *host, const struct mgo_fetch_opts *opts)
{
    for (size_t i = 0; opts != NULL && i < opts->plain_http_len; i++)
        if (strcmp(opts->plain_http[i], host) == 0)
            return true;
    return false;
}

static bool ref_ok(const char *s, bool allow_colon)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-' || (allow_colon && c == ':');
        if (!ok)
            return false;
    }
    return true;
}

mgo_err mgo_fetch_oci(const char *repository, const char *revision,
                      const struct mgo_fetch_opts *opts, struct mgo_buf *out, char *media_type,
                      char *why, size_t why_len)
{
    if (repository == NULL || strncmp(repository, "oci://", 6) != 0) {
        snprintf(why, why_len, "repository: must start with oci://");
        return MGO_ERR_INVALID;
    }
    const char *host = repository + 6;
    const char *slash = strchr(host, '/');
    if (slash == NULL || slash == host || slash[1] == '\0' || strlen(host) > 512) {
        snprintf(why, why_len, "repository: must be oci://host/name");
        return MGO_ERR_INVALID;
    }
    char hostbuf[256], name[512];
    size_t hl = (size_t)(slash - host);
    if (hl >= sizeof hostbuf) {
        snprintf(why, why_len, "repository: host too long");
        return MGO_ERR_LIMIT;
    }
    memcpy(hostbuf, host, hl);
    hostbuf[hl] = '\0';
    snprintf(name, sizeof name, "%s", slash + 1);
    /* name components: [a-z0-9._-] separated by '/'; no ".." tricks */
    for (char *p = name; *p; p++) {
        bool bad = *p == '/' ? (p[1] == '/' || p[1] == '\0')
                             : !((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                                 *p == '.' || *p == '_' || *p == '-');
        if (bad) {
            snprintf(why, why_len, "repository: bad character in name");
            return MGO_ERR_INVALID;
        }
    }
    if (strstr(name, "..") != NULL || !ref_ok(hostbuf, true)) {
        snprintf(why, why_len, "repository: bad host or name");
        return MGO_ERR_INVALID;
    }
    bool by_digest = revision != NULL && strncmp(revision, "sha256:", 7) == 0;
    if (revision == NULL ||
        (by_digest ? !mgo_digest_is_sha256(revision) : !ref_ok(revision, false))) {
        snprintf(why, why_len, "revision: must be a tag [A-Za-z0-9._-] or sha256:<hex>");
        return MGO_ERR_INVALID;
    }
    const char *scheme = plain_http(hostbuf, opts) ? "http" : "https";
    char url[1536];
    snprintf(url, sizeof url, "%s://%s/v2/%s/manifests/%s", scheme, hostbuf, name, revision);

    struct mgo_buf man;
    mgo_buf_init(&man, MGO_MAX_MESSAGE_BYTES);
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    char blob_digest[MGO_DIGEST_STR_SIZE] = "";
    uint64_t blob_size = 0;
    mgo_err err = http_get(url,
                           "application/vnd.oci.image.manifest.v1+json, "
                           "application/vnd.docker.distribution.manifest.v2+json",
                           opts, false, &man, NULL, 0, why, why_len);
    if (err != MGO_OK)
        goto cleanup;
    if (by_digest) {
        char got[MGO_DIGEST_STR_SIZE];
        err = mgo_digest_sha256(man.data, man.len, got);
        if (err == MGO_OK && !mgo_digest_equal(got, revision)) {
            snprintf(why, why_len, "manifest digest %s does not match revision %s", got, revision);
            err = MGO_ERR_CRYPTO;
        }
        if (err != MGO_OK)
            goto cleanup;
    }
    struct mgo_value root;
    struct mgo_problems probs;
    mgo_problems_init(&probs);
    err = mgo_value_from_yaml(man.data, man.len, &arena, &root, &probs);
    if (err != MGO_OK) {
        snprintf(why, why_len, "manifest is not JSON");
        goto cleanup;
    }
    const struct mgo_value *layers = mgo_value_get(&root, "layers");
    if (layers == NULL || layers->kind != MGO_V_ARRAY || layers->as.array.len == 0) {
        snprintf(why, why_len, "manifest: layers: missing or empty");
        err = MGO_ERR_INVALID;
        goto cleanup;
    }
    const struct mgo_value *pick = &layers->as.array.items[0];
    for (size_t i = 0; i < layers->as.array.len; i++) {
        const struct mgo_value *mt = mgo_value_get(&layers->as.array.items[i], "mediaType");
        if (mt != NULL && mt->kind == MGO_V_STR &&
            (strstr(mt->as.str.ptr, "compose") || strstr(mt->as.str.ptr, "yaml"))) {
            pick = &layers->as.array.items[i];
            break;
        }
    }
    const struct mgo_value *dg = mgo_value_get(pick, "digest");
    const struct mgo_value *sz = mgo_value_get(pick, "size");
    const struct mgo_value *mt = mgo_value_get(pick, "mediaType");
    if (dg == NULL || dg->kind != MGO_V_STR || !mgo_digest_is_sha256(dg->as.str.ptr)) {
        snprintf(why, why_len, "manifest: layers[].digest: must be sha256:<64 lowercase hex>");
        err = MGO_ERR_INVALID;
        goto cleanup;
    }
    snprintf(blob_digest, sizeof blob_digest, "%s", dg->as.str.ptr);
    if (sz != NULL && sz->kind == MGO_V_UINT)
        blob_size = sz->as.u;
    if (blob_size > out->max) {
        snprintf(why, why_len, "layer too large (%llu bytes, limit %zu)",
                 (unsigned long long)blob_size, out->max);
        err = MGO_ERR_LIMIT;
        goto cleanup;
    }
    if (media_type != NULL)
        snprintf(media_type, 128, "%s", mt && mt->kind == MGO_V_STR ? mt->as.str.ptr : "");
    snprintf(url, sizeof url, "%s://%s/v2/%s/blobs/%s", scheme, hostbuf, name, blob_digest);
    err = http_get(url, NULL, opts, false, out, NULL, 0, why, why_len);
    if (err != MGO_OK)
        goto cleanup;
    char got[MGO_DIGEST_STR_SIZE];
    err = mgo_digest_sha256(out->data, out->len, got);
    if (err != MGO_OK)
        goto cleanup;
    if (!mgo_digest_equal(got, blob_digest) || (blob_size != 0 && blob_size != out->len)) {
        snprintf(why, why_len, "layer digest %s does not match the manifest's %s", got,
                 blob_digest);
        err = MGO_ERR_CRYPTO;
    }
cleanup:
    if (err != MGO_OK)
        MGO_LOGW(TAG, "%s@%s: %s", repository, revision ? revision : "?", why);
    mgo_arena_cleanup(&arena);
    mgo_buf_cleanup(&man);
    return err;
}

/* ---- tar.gz ------------------------------------------------------------------------ */

bool mgo_fetch_is_gzip(const void *data, size_t len)
{
    const uint8_t *p = data;
    return len >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

static mgo_err gunzip(const void *data, size_t len, struct mgo_buf *out, char *why, size_t why_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return MGO_ERR_NOMEM;
    zs.next_in = (Bytef *)(uintptr_t)data;
    zs.avail_in = (uInt)len;
    uint8_t chunk[16384];
    mgo_err err = MGO_OK;
    for (;;) {
        zs.next_out = chunk;
        zs.avail_out = sizeof chunk;
        int rc = inflate(&zs, Z_NO_FLUSH);
        size_t got = sizeof chunk - zs.avail_out;
        if (got > 0 && mgo_buf_append(out, chunk, got) != MGO_OK) {
            snprintf(why, why_len, "unpacked size over %zu bytes", out->max);
            err = MGO_ERR_LIMIT;
            break;
        }
        if (rc == Z_STREAM_END)
            break;
        if (rc != Z_OK && !(rc == Z_BUF_ERROR && got > 0)) {
            snprintf(why, why_len, "not a valid gzip stream (%s)", zs.msg ? zs.msg : "truncated");
            err = MGO_ERR_PARSE;
            break;
        }
    }
    inflateEnd(&zs);
    return err;
}

static uint64_t octal(const uint8_t *p, size_t n, bool *ok)
{
    uint64_t v = 0;
    size_t i = 0;
    while (i < n && p[i] == ' ')
        i++;
    bool any = false;
    for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) {
        v = (v << 3) | (uint64_t)(p[i] - '0');
        any = true;
    }
    for (; i < n; i++)
        if (p[i] != ' ' && p[i] != '\0')
            *ok = false;
    if (!any)
        *ok = false;
    return v;
}

/* Normalises and checks an entry name; returns false when it must be refused. */
static bool safe_name(char *name)
{
    while (name[0] == '.' && name[1] == '/')
        memmove(name, name + 2, strlen(name + 2) + 1);
    size_t l = strlen(name);
    while (l > 0 && name[l - 1] == '/')
        name[--l] = '\0';
    if (l == 0 || name[0] == '/' || strcmp(name, ".") == 0)
        return l == 0 || strcmp(name, ".") == 0 ? true : false;
    const char *p = name;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t cl = slash ? (size_t)(slash - p) : strlen(p);
        if (cl == 0 || (cl == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        p += cl;
        if (*p == '/')
            p++;
    }
    return true;
}

static mgo_err make_parents(const char *dir, const char *name)
{
    char path[2048];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path)
        return MGO_ERR_LIMIT;
    size_t base = strlen(dir) + 1;
    for (size_t i = base; path[i]; i++) {
        if (path[i] != '/')
            continue;
        path[i] = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return MGO_ERR_IO;
        struct stat sb;
        if (lstat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
            return MGO_ERR_IO;
        path[i] = '/';
    }
    return MGO_OK;
}

mgo_err mgo_fetch_untar_gz(const void *data, size_t len, const char *dir, char *why, size_t why_len)
{
    struct mgo_buf tar;
    mgo_buf_init(&tar, MGO_FETCH_MAX_UNPACKED_BYTES);
    mgo_err err = gunzip(data, len, &tar, why, why_len);
    if (err != MGO_OK)
        goto cleanup;
    size_t pos = 0, entries = 0;
    char pax_path[1024] = "";
    while (pos + 512 <= tar.len) {
        const uint8_t *h = tar.data + pos;
        bool zero = true;
        for (size_t i = 0; i < 512 && zero; i++)
            zero = h[i] == 0;
        if (zero)
            break; /* end of archive */
        bool ok = true;
        uint64_t sum = octal(h + 148, 8, &ok);
        uint64_t calc = 0;
        for (size_t i = 0; i < 512; i++)
            calc += (i >= 148 && i < 156) ? (uint64_t)' ' : h[i];
        uint64_t size = octal(h + 124, 12, &ok);
        if (!ok || sum != calc) {
            snprintf(why, why_len, "entry %zu: bad tar header (checksum or size field)", entries);
            err = MGO_ERR_PARSE;
            goto cleanup;
        }
        size_t padded = (size_t)((size + 511u) & ~(uint64_t)511u);
        if (size > tar.len || pos + 512 + padded > tar.len) {
            snprintf(why, why_len, "entry %zu: truncated", entries);
            err = MGO_ERR_PARSE;
            goto cleanup;
        }
        if (++entries > MGO_FETCH_MAX_ENTRIES) {
            snprintf(why, why_len, "more than %u entries", MGO_FETCH_MAX_ENTRIES);
            err = MGO_ERR_LIMIT;
            goto cleanup;
        }
        const uint8_t *body = h + 512;
        char type = (char)h[156];
        char name[1024];
        if (pax_path[0] != '\0') {
            snprintf(name, sizeof name, "%s", pax_path);
            pax_path[0] = '\0';
        } else {
            bool ustar = memcmp(h + 257, "ustar", 5) == 0;
            size_t nl = strnlen((const char *)h, 100);
            size_t pl = ustar ? strnlen((const char *)h + 345, 155) : 0;
            if (pl > 0)
                snprintf(name, sizeof name, "%.*s/%.*s", (int)pl, (const char *)h + 345, (int)nl,
                         (const char *)h);
            else
                snprintf(name, sizeof name, "%.*s", (int)nl, (const char *)h);
        }
        if (type == 'x') {
            /* pax extended header: "len key=value\n" records; only path matters */
            size_t p = 0;
            while (p < size) {
                size_t rl = 0, q = p;
                while (q < size && body[q] >= '0' && body[q] <= '9')
                    rl = rl * 10 + (size_t)(body[q++] - '0');
                if (rl == 0 || p + rl > size || q >= size || body[q] != ' ')
                    break;
                const char *kv = (const char *)body + q + 1;
                size_t kvl = p + rl - (q + 1);
                if (kvl > 5 && memcmp(kv, "path=", 5) == 0 && kvl - 6 < sizeof pax_path) {
                    memcpy(pax_path, kv + 5, kvl - 6);
                    pax_path[kvl - 6] = '\0';
                }
                if (kvl > 9 && memcmp(kv, "linkpath=", 9) == 0) {
                    snprintf(why, why_len, "entry %zu: links are refused", entries);
                    err = MGO_ERR_INVALID;
                    goto cleanup;
                }
                p += rl;
            }
            pos += 512 + padded;
            continue;
        }
        if (type == 'g') {
            pos += 512 + padded;
            continue;
        }
        if (memchr(name, '\0', strlen(name)) != NULL || !safe_name(name)) {
            snprintf(why, why_len, "entry %zu (%.200s): absolute path or '..' refused", entries,
                     name);
            err = MGO_ERR_INVALID;
            goto cleanup;
        }
        if (type == '5') {
            if (name[0] != '\0') {
                err = make_parents(dir, name);
                char path[2048];
                snprintf(path, sizeof path, "%s/%s", dir, name);
                if (err == MGO_OK && mkdir(path, 0755) != 0 && errno != EEXIST)
                    err = MGO_ERR_IO;
                if (err != MGO_OK) {
                    snprintf(why, why_len, "entry %zu (%.200s): cannot create folder", entries,
                             name);
                    goto cleanup;
                }
            }
        } else if (type == '0' || type == '\0' || type == '7') {
            if (name[0] == '\0') {
                snprintf(why, why_len, "entry %zu: empty name", entries);
                err = MGO_ERR_INVALID;
                goto cleanup;
            }
            err = make_parents(dir, name);
            char path[2048];
            snprintf(path, sizeof path, "%s/%s", dir, name);
            int fd = err == MGO_OK
                         ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644)
                         : -1;
            if (fd < 0) {
                snprintf(why, why_len, "entry %zu (%.200s): cannot create file", entries, name);
                err = MGO_ERR_IO;
                goto cleanup;
            }
            size_t left = (size_t)size;
            const uint8_t *p = body;
            while (left > 0) {
                ssize_t w = write(fd, p, left);
                if (w <= 0 && errno != EINTR) {
                    close(fd);
                    snprintf(why, why_len, "entry %zu: write failed", entries);
                    err = MGO_ERR_IO;
                    goto cleanup;
                }
                if (w > 0) {
                    p += w;
                    left -= (size_t)w;
                }
            }
            close(fd);
        } else {
            snprintf(why, why_len,
                     "entry %zu (%.200s): type '%c' refused (links, devices and "
                     "other special files are not allowed)",
                     entries, name, type >= 0x20 && type < 0x7f ? type : '?');
            err = MGO_ERR_INVALID;
            goto cleanup;
        }
        pos += 512 + padded;
    }
cleanup:
    mgo_buf_cleanup(&tar);
    return err;
}
