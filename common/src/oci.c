/* oci.c - libcurl downloads and OCI artifacts (distribution API v2): the agent's workload
 * packages and margoctl's application packages. */
#include "mgo/oci.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgo/arena.h"
#include "mgo/digest.h"
#include "mgo/limits.h"
#include "mgo/log.h"
#include "mgo/problems.h"
#include "mgo/value.h"

#define TAG "oci"

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

mgo_err mgo_http_fetch(const char *url, const char *accept, const struct mgo_fetch_opts *opts,
                       bool allow_file, struct mgo_buf *out, char *why, size_t why_len)
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
    curl_easy_setopt(c, CURLOPT_USERAGENT,
                     opts != NULL && opts->user_agent != NULL ? opts->user_agent
                                                              : "margo-agent/0.1");
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
    if (err != MGO_OK)
        MGO_LOGW(TAG, "GET %s: %s", url, why);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return err;
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

static const char *str_at(const struct mgo_value *map, const char *key)
{
    const struct mgo_value *v = map != NULL ? mgo_value_get(map, key) : NULL;
    return v != NULL && v->kind == MGO_V_STR ? v->as.str.ptr : NULL;
}

/* The manifest's artifactType, or its config.mediaType for artifacts written before
 * artifactType existed, must be the wanted one. */
static mgo_err check_artifact(const struct mgo_value *root, const struct mgo_oci_select *sel,
                              char *why, size_t why_len)
{
    if (sel->artifact_type == NULL)
        return MGO_OK;
    const char *at = str_at(root, "artifactType");
    const char *cfg = str_at(mgo_value_get(root, "config"), "mediaType");
    if ((at != NULL && strcmp(at, sel->artifact_type) == 0) ||
        (at == NULL && cfg != NULL && strcmp(cfg, sel->artifact_type) == 0))
        return MGO_OK;
    snprintf(why, why_len, "manifest: artifactType: must be %s, got %s%.128s%s", sel->artifact_type,
             at || cfg ? "\"" : "",
             at    ? at
             : cfg ? cfg
                   : "none",
             at || cfg ? "\"" : "");
    return MGO_ERR_INVALID;
}

static const struct mgo_value *pick_layer(const struct mgo_value *layers,
                                          const struct mgo_oci_select *sel)
{
    for (size_t i = 0; i < layers->as.array.len; i++) {
        const char *mt = str_at(&layers->as.array.items[i], "mediaType");
        for (size_t k = 0; mt != NULL && sel->layer_types != NULL && sel->layer_types[k]; k++)
            if (strcmp(mt, sel->layer_types[k]) == 0)
                return &layers->as.array.items[i];
    }
    return NULL;
}

mgo_err mgo_oci_fetch(const char *repository, const char *revision,
                      const struct mgo_fetch_opts *opts, const struct mgo_oci_select *sel,
                      struct mgo_buf *out, char *media_type, char *why, size_t why_len)
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
    mgo_err err = mgo_http_fetch(url,
                                 "application/vnd.oci.image.manifest.v1+json, "
                                 "application/vnd.docker.distribution.manifest.v2+json",
                                 opts, false, &man, why, why_len);
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
    const struct mgo_value *pick = NULL;
    if (sel != NULL) {
        err = check_artifact(&root, sel, why, why_len);
        if (err != MGO_OK)
            goto cleanup;
        pick = pick_layer(layers, sel);
        if (pick == NULL) {
            char types[256] = "";
            for (size_t i = 0; sel->layer_types != NULL && sel->layer_types[i] != NULL; i++)
                snprintf(types + strlen(types), sizeof types - strlen(types), "%s%s", i ? ", " : "",
                         sel->layer_types[i]);
            snprintf(why, why_len, "manifest: layers[].mediaType: no layer of type %s", types);
            err = MGO_ERR_INVALID;
            goto cleanup;
        }
    } else {
        pick = &layers->as.array.items[0];
        for (size_t i = 0; i < layers->as.array.len; i++) {
            const struct mgo_value *mt = mgo_value_get(&layers->as.array.items[i], "mediaType");
            if (mt != NULL && mt->kind == MGO_V_STR &&
                (strstr(mt->as.str.ptr, "compose") || strstr(mt->as.str.ptr, "yaml"))) {
                pick = &layers->as.array.items[i];
                break;
            }
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
    err = mgo_http_fetch(url, NULL, opts, false, out, why, why_len);
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

bool mgo_oci_host_is_loopback(const char *host)
{
    size_t n = strcspn(host, ":");
    if (host[0] == '[')
        return strncmp(host, "[::1]", 5) == 0 && (host[5] == '\0' || host[5] == ':');
    if (n == 9 && strncmp(host, "localhost", 9) == 0)
        return true;
    /* 127.0.0.0/8 written as an address: a name such as 127.example.com is not loopback */
    if (n < 7 || strncmp(host, "127.", 4) != 0)
        return false;
    for (size_t i = 4; i < n; i++)
        if (!(host[i] == '.' || (host[i] >= '0' && host[i] <= '9')))
            return false;
    return true;
}

mgo_err mgo_oci_split_ref(const char *ref, char *repo, size_t repo_size, char *rev, size_t rev_size,
                          char *host_out, char *why, size_t why_len)
{
    if (ref == NULL || strncmp(ref, "oci://", 6) != 0) {
        snprintf(why, why_len, "reference: must start with oci://");
        return MGO_ERR_INVALID;
    }
    const char *host = ref + 6;
    const char *slash = strchr(host, '/');
    if (slash == NULL || slash == host) {
        snprintf(why, why_len, "reference: must be oci://HOST[:PORT]/NAME:TAG or NAME@sha256:HEX");
        return MGO_ERR_INVALID;
    }
    const char *at = strchr(slash, '@');
    const char *colon = strrchr(slash, ':');
    const char *sep = at != NULL ? at : colon;
    if (sep == NULL || sep[1] == '\0' || sep == slash + 1) {
        snprintf(why, why_len,
                 "reference: a tag (NAME:TAG) or digest (NAME@sha256:HEX) is required");
        return MGO_ERR_INVALID;
    }
    size_t rl = (size_t)(sep - ref);
    if (rl >= repo_size || strlen(sep + 1) >= rev_size || (size_t)(slash - host) >= 256) {
        snprintf(why, why_len, "reference: too long");
        return MGO_ERR_LIMIT;
    }
    memcpy(repo, ref, rl);
    repo[rl] = '\0';
    snprintf(rev, rev_size, "%s", sep + 1);
    if (host_out != NULL)
        snprintf(host_out, 256, "%.*s", (int)(slash - host), host);
    return MGO_OK;
}
