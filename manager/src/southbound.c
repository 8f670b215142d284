/* southbound.c - Margo's standard southbound HTTP API (southbound.h, docs/margo-http.md):
 * routing and handlers, on the loop thread. */
#include "southbound.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "events.h"
#include "ingest.h"
#include "livebus.h"
#include "jw.h"
#include "mgr_internal.h"
#include "publish.h"
#include "southbound_doc.h"
#include "southbound_id.h"
#include "sse.h"
#include "mgo/log.h"
#include "mgo/margo.h"
#include "mgo/mgr_store.h"
#include "mgo/topic.h"

#define TAG "southbound"

#define MANIFEST_TYPE "application/vnd.margo.manifest.v1+json"
#define BUNDLE_TYPE "application/vnd.margo.bundle.v1+tar+gzip"
#define YAML_TYPE "application/yaml"
#define IMMUTABLE "private, max-age=31536000, immutable"
#define BUNDLE_JSON_PATH "/.well-known/spiffe/bundle.json"
#define WELL_KNOWN_PATH "/.well-known/margo"

struct rate_slot {
    char client[MGO_SB_CLIENT_ID_SIZE];
    int64_t window_ms; /* start of the current one-minute window */
    uint32_t n;
    int64_t seen_ms;
};

/* Served manifests kept between polls, keyed by what determines them (the device's
 * manifestVersion and its present deployments' ids and stored-document digests; the YAML,
 * the bundle and the manifest are functions of these): a poll that finds its key is answered
 * with one store read, without rendering YAML or compressing a bundle on the loop. Manifests
 * up to CACHE_MAX_MANIFEST bytes are kept, in CACHE_SLOTS slots (least recently used goes). */
#define CACHE_SLOTS 512u
#define CACHE_MAX_MANIFEST (64u * 1024u)

struct cache_slot {
    char device[MGO_MAX_DEVICE_ID_LEN + 1]; /* "" = free */
    char key[MGO_DIGEST_STR_SIZE];
    uint8_t *manifest;
    size_t manifest_len;
    char etag[80];
    char bundle_digest[MGO_DIGEST_STR_SIZE]; /* "" = bundle null */
    uint64_t used;
};

struct mgo_southbound {
    struct mgo_mgr_store *store;
    struct mgo_ingest *ingest;
    struct mgo_publisher *pub;
    struct mgo_sse_hub *hub;
    const char *trust_domain;
    uint32_t rate;
    struct mgo_buf bundle_json; /* the SPIFFE trust bundle */
    char bundle_etag[80];
    struct rate_slot *slots;  /* MGO_SOUTHBOUND_RATE_SLOTS */
    struct cache_slot *cache; /* CACHE_SLOTS */
    uint64_t cache_clock;
};

/* ---- problems (any thread) --------------------------------------------------------------- */

/* name NULL: about:blank (Margo registers no type for that status). */
static void problem(struct mgo_api_request *req, unsigned status, const char *name,
                    const char *title, const char *detail, const struct mgo_problems *problems)
{
    mgo_buf_reset(&req->reply);
    char type[160];
    snprintf(type, sizeof type, "%s%s", name ? MGO_SB_PROBLEM_BASE : "about:blank",
             name ? name : "");
    struct mgo_jw w;
    mgo_jw_init(&w, &req->reply);
    mgo_jw_obj(&w);
    mgo_jw_kstr(&w, "type", type);
    mgo_jw_kstr(&w, "title", title);
    mgo_jw_ku64(&w, "status", status);
    if (detail)
        mgo_jw_kstr(&w, "detail", detail);
    mgo_jw_kstr(&w, "instance", req->path);
    /* rc.3: 429 and 503 retryable with Retry-After, 500 retryable; all else not */
    bool retry = status == 429 || status == 503 || status == 500;
    mgo_jw_kbool(&w, "retryable", retry);
    if (req->retry_after_s > 0)
        mgo_jw_ku64(&w, "retryAfterSeconds", req->retry_after_s);
    mgo_jw_kstr(&w, "backoffStrategy", retry ? "exponential" : "none");
    if (problems && problems->count > 0) {
        mgo_jw_key(&w, "errors");
        mgo_jw_arr(&w);
        for (size_t i = 0; i < problems->count; i++) {
            mgo_jw_obj(&w);
            mgo_jw_kstr(&w, "field", problems->items[i].field);
            mgo_jw_kstr(&w, "message", problems->items[i].rule);
            mgo_jw_obj_end(&w);
        }
        mgo_jw_arr_end(&w);
    }
    mgo_jw_obj_end(&w);
    req->status = status;
    req->content_type = "application/problem+json";
    req->etag[0] = '\0';
    req->cache_control = NULL;
    req->vary = NULL;
}

void mgo_southbound__refuse(struct mgo_api_request *req, const char *why)
{
    problem(req, 403, "not-authorized", "Not authorized", why, NULL);
}

void mgo_southbound__too_large(struct mgo_api_request *req)
{
    char detail[96];
    snprintf(detail, sizeof detail, "request bodies are limited to %u bytes",
             MGO_SOUTHBOUND_MAX_BODY);
    problem(req, 413, NULL, "Content Too Large", detail, NULL);
}

bool mgo_southbound__public(const char *path)
{
    return strcmp(path, WELL_KNOWN_PATH) == 0 || strcmp(path, BUNDLE_JSON_PATH) == 0;
}

static void internal(struct mgo_api_request *req, mgo_err err)
{
    MGO_LOGE(TAG, "%s %s: %s", req->method, req->path, mgo_strerror(err));
    problem(req, 500, NULL, "Internal Server Error", mgo_strerror(err), NULL);
}

static void invalid_field(struct mgo_api_request *req, const char *field, const char *fmt, ...)
    MGO_PRINTF(3, 4);
static void invalid_field(struct mgo_api_request *req, const char *field, const char *fmt, ...)
{
    struct mgo_problems p;
    mgo_problems_init(&p);
    char rule[MGO_MAX_PROBLEM_TEXT];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rule, sizeof rule, fmt, ap);
    va_end(ap);
    mgo_problems_add(&p, field, "%s", rule);
    char detail[MGO_MAX_FIELD_PATH + MGO_MAX_PROBLEM_TEXT + 4];
    snprintf(detail, sizeof detail, "%s: %s", field, rule);
    problem(req, 422, "semantic-error", "Semantic error", detail, &p);
}

/* ---- small helpers --------------------------------------------------------------------- */

/* Sets the reply to body with the given type; status 200 unless set. */
static void ok(struct mgo_api_request *req, unsigned status, const char *type)
{
    req->status = status;
    req->content_type = type;
}

static void quote_etag(char out[80], const char *digest)
{
    snprintf(out, 80, "\"%s\"", digest);
}

/* If-None-Match (RFC 9110 §13.1.2): "*" or a list of entity tags, compared weakly. */
static bool none_match(const struct mgo_api_request *req, const char *etag)
{
    const char *p = req->if_none_match;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        const char *end = *p == '"' ? strchr(p + 1, '"') : NULL;
        size_t len = end ? (size_t)(end - p + 1) : strcspn(p, ",");
        if (len == strlen(etag) && strncmp(p, etag, len) == 0)
            return true;
        p += len;
    }
    return false;
}

/* Accept (RFC 9110 §12.5.1): whether the manifest media type is acceptable. */
static bool accepts_manifest(const char *accept)
{
    if (accept[0] == '\0')
        return true;
    const char *p = accept;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t len = strcspn(p, ",");
        char range[256];
        snprintf(range, sizeof range, "%.*s", (int)len, p);
        p += len;
        char *params = strchr(range, ';');
        bool q_zero = false;
        if (params) {
            *params++ = '\0';
            const char *q = strstr(params, "q=");
            if (q) {
                double qv = strtod(q + 2, NULL);
                q_zero = qv <= 0.0;
            }
        }
        size_t rl = strlen(range);
        while (rl > 0 && (range[rl - 1] == ' ' || range[rl - 1] == '\t'))
            range[--rl] = '\0';
        if (q_zero)
            continue;
        if (strcmp(range, "*/*") == 0 || strcasecmp(range, "application/*") == 0 ||
            strcasecmp(range, MANIFEST_TYPE) == 0)
            return true;
    }
    return false;
}

/* RFC 3986 unreserved segments separated by '/' (the DeviceId pattern). */
static bool device_path_ok(const char *id)
{
    size_t len = strlen(id);
    if (len == 0 || len > 1024)
        return false;
    const char *p = id;
    while (*p) {
        size_t seg = strcspn(p, "/");
        char one[1025];
        snprintf(one, sizeof one, "%.*s", (int)seg, p);
        if (seg == 0 || !mgo_sb_segment_ok(one, 1024) || strcmp(one, ".") == 0 ||
            strcmp(one, "..") == 0)
            return false;
        p += seg;
        if (*p == '/' && *++p == '\0')
            return false;
    }
    return true;
}

/* ---- per-client rate (loop thread) --------------------------------------------------------- */

/* Counts a request of client in its one-minute window; false (and the seconds until the
 * window ends) when it is past the rate. */
static bool rate_take(struct mgo_southbound *sb, const char *client, unsigned *retry_s)
{
    int64_t now = mgo_mgr_store_now_ms();
    struct rate_slot *slot = NULL, *oldest = &sb->slots[0];
    for (size_t i = 0; i < MGO_SOUTHBOUND_RATE_SLOTS; i++) {
        struct rate_slot *s = &sb->slots[i];
        if (s->client[0] && strcmp(s->client, client) == 0) {
            slot = s;
            break;
        }
        if (s->seen_ms < oldest->seen_ms)
            oldest = s;
    }
    if (!slot) {
        slot = oldest;
        memset(slot, 0, sizeof *slot);
        snprintf(slot->client, sizeof slot->client, "%s", client);
    }
    slot->seen_ms = now;
    if (now < slot->window_ms || now - slot->window_ms >= 60000) {
        slot->window_ms = now;
        slot->n = 0;
    }
    if (slot->n >= sb->rate) {
        int64_t left = 60000 - (now - slot->window_ms);
        *retry_s = (unsigned)((left + 999) / 1000);
        return false;
    }
    slot->n++;
    return true;
}

/* ---- the trust bundle ------------------------------------------------------------------- */

static void well_known(struct mgo_southbound *sb, struct mgo_api_request *req)
{
    struct mgo_jw w;
    mgo_buf_reset(&req->reply);
    mgo_jw_init(&w, &req->reply);
    mgo_jw_obj(&w);
    mgo_jw_kstr(&w, "trustDomain", sb->trust_domain);
    char uri[512];
    /* absolute when the client named the host it reached, else a reference on this origin */
    if (req->host[0] && !req->header_overflow && strpbrk(req->host, "/\"\\ ") == NULL)
        snprintf(uri, sizeof uri, "https://%s%s", req->host, BUNDLE_JSON_PATH);
    else
        snprintf(uri, sizeof uri, "%s", BUNDLE_JSON_PATH);
    mgo_jw_kstr(&w, "trustBundleUri", uri);
    mgo_jw_obj_end(&w);
    if (w.err) {
        internal(req, w.err);
        return;
    }
    char digest[MGO_DIGEST_STR_SIZE];
    mgo_err err = mgo_digest_sha256(req->reply.data, req->reply.len, digest);
    if (err) {
        internal(req, err);
        return;
    }
    quote_etag(req->etag, digest);
    if (none_match(req, req->etag)) {
        mgo_buf_reset(&req->reply);
        ok(req, 304, NULL);
        return;
    }
    ok(req, 200, "application/json");
}

static void trust_bundle(struct mgo_southbound *sb, struct mgo_api_request *req)
{
    snprintf(req->etag, sizeof req->etag, "%s", sb->bundle_etag);
    mgo_buf_reset(&req->reply);
    if (none_match(req, req->etag)) {
        ok(req, 304, NULL);
        return;
    }
    mgo_err err = mgo_buf_append(&req->reply, sb->bundle_json.data, sb->bundle_json.len);
    if (err) {
        internal(req, err);
        return;
    }
    ok(req, 200, "application/json");
}

/* ---- the accepted-client list ------------------------------------------------------------ */

/* The caller is on the accepted-client list (403 otherwise, answered). */
static bool accepted(struct mgo_southbound *sb, struct mgo_api_request *req)
{
    if (mgo_mgr_store_is_role(sb->store, req->client_id)) {
        mgo_southbound__refuse(req, "the client id is a role identity (margo-...), never a device");
        return false;
    }
    mgo_err err = mgo_mgr_store_client_list(sb->store, req->client_id, NULL, NULL);
    if (err == MGO_OK)
        return true;
    if (err != MGO_ERR_NOT_FOUND) {
        internal(req, err);
        return false;
    }
    char detail[400];
    snprintf(detail, sizeof detail,
             "client %s is not on this WFM's accepted-client list (margoctl client allow %s)",
             req->client_id, req->client_id);
    MGO_LOGW(TAG, "%s %s: %s", req->method, req->path, detail);
    mgo_southbound__refuse(req, detail);
    return false;
}

/* ---- capabilities ----------------------------------------------------------------------- */

/* The device a path names must be the client's own (403), never a child device behind a
 * see-thru gateway (404 gateway-not-found: margo-mqtt registers no gateways). */
static bool own_device(struct mgo_api_request *req, const char *device_id)
{
    if (!device_path_ok(device_id)) {
        problem(req, 400, "invalid-request", "Invalid request",
                "deviceId must match ^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$", NULL);
        return false;
    }
    size_t top = strcspn(device_id, "/");
    if (top != strlen(req->client_id) || strncmp(device_id, req->client_id, top) != 0) {
        char detail[400];
        snprintf(detail, sizeof detail, "client %s may only report its own device (%s)",
                 req->client_id, req->client_id);
        mgo_southbound__refuse(req, detail);
        return false;
    }
    if (device_id[top] == '/') {
        problem(req, 404, "gateway-not-found", "Gateway not found",
                "no see-thru gateway is registered for this child device (margo-mqtt does not "
                "register gateways)",
                NULL);
        return false;
    }
    return true;
}

static mgo_err has_caps_visit(const struct mgo_mgr_device_row *row, void *c)
{
    *(bool *)c = row->caps != NULL && row->caps_len > 0;
    return MGO_OK;
}

/* Makes device an HTTP device with a manifest (the first is version 1, with no
 * deployments), in one transaction. */
static mgo_err enroll(struct mgo_southbound *sb, const char *device)
{
    /* a poll of an enrolled device reads only (no write, no sync per poll) */
    bool http = false;
    uint64_t version = 0;
    mgo_err err = mgo_mgr_store_device_is_http(sb->store, device, &http);
    if (!err)
        err = mgo_mgr_store_manifest_get(sb->store, device, &version, NULL);
    if (err || (http && version > 0))
        return err;
    err = mgo_mgr_store_begin(sb->store);
    if (err)
        return err;
    err = mgo_mgr_store_device_set_binding(sb->store, device, MGO_MGR_BINDING_HTTP);
    if (!err && version == 0)
        err = mgo_mgr_store_manifest_bump(sb->store, device, &version);
    if (err) {
        mgo_mgr_store_rollback(sb->store);
        return err;
    }
    return mgo_mgr_store_commit(sb->store);
}

/* Hands a document to ingest as if it came on device's topic of kind (ingest owns the
 * copies). */
static mgo_err ingest_copy(struct mgo_southbound *sb, enum mgo_topic_kind kind, const char *device,
                           const char *deployment, const struct mgo_buf *doc)
{
    char topic[MGO_MAX_TOPIC_LEN + 1];
    mgo_err err = mgo_topic_format(sb->pub->prefix, kind, device, deployment, topic, sizeof topic);
    if (err)
        return err;
    char *t = strdup(topic);
    uint8_t *payload = malloc(doc->len ? doc->len : 1);
    if (!t || !payload) {
        free(t);
        free(payload);
        return MGO_ERR_NOMEM;
    }
    memcpy(payload, doc->data, doc->len);
    if (kind == MGO_TOPIC_STATUS)
        mgo_ingest__http_status(sb->ingest, t, payload, doc->len);
    else
        mgo_ingest__message(sb->ingest, t, payload, doc->len);
    return MGO_OK;
}

/* The body as a JSON object (400 invalid-request otherwise, answered). */
static bool body_object(struct mgo_api_request *req, struct mgo_arena *arena, struct mgo_value *out)
{
    struct mgo_problems p;
    mgo_problems_init(&p);
    if (req->body.len == 0) {
        problem(req, 400, "invalid-request", "Invalid request", "a JSON object body is required",
                NULL);
        return false;
    }
    /* JSON is YAML; YAML-only syntax (a first byte other than '{') is refused as not JSON */
    const char *b = (const char *)req->body.data;
    size_t i = 0;
    while (i < req->body.len && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n'))
        i++;
    if (i == req->body.len || b[i] != '{' ||
        mgo_value_from_yaml(req->body.data, req->body.len, arena, out, &p) != MGO_OK ||
        out->kind != MGO_V_MAP) {
        problem(req, 400, "invalid-request", "Invalid request", "the body is not a JSON object",
                &p);
        return false;
    }
    return true;
}

static void capabilities_put(struct mgo_southbound *sb, struct mgo_api_request *req,
                             const char *device_id)
{
    if (!own_device(req, device_id))
        return;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_buf canon;
    mgo_buf_init(&canon, MGO_MAX_MESSAGE_BYTES);
    struct mgo_value tree;
    struct mgo_capabilities caps;
    struct mgo_problems p;
    mgo_problems_init(&p);
    if (!body_object(req, &arena, &tree))
        goto done;
    if (mgo_capabilities_from_value(&tree, &arena, &caps, &p) != MGO_OK) {
        char detail[512];
        mgo_problems_format(&p, detail, sizeof detail);
        problem(req, 422, "semantic-error", "Semantic error", detail, &p);
        goto done;
    }
    if (caps.id == NULL || strcmp(caps.id, device_id) != 0) {
        invalid_field(req, "properties.id", "must equal the deviceId of the path (%s)", device_id);
        goto done;
    }
    mgo_err err = mgo_value_to_msgpack(&tree, &canon);
    if (err) {
        invalid_field(req, "properties", "the capabilities are larger than %u bytes",
                      MGO_MAX_MESSAGE_BYTES);
        goto done;
    }
    bool had = false;
    err = mgo_mgr_store_device_get(sb->store, device_id, has_caps_visit, &had);
    if (err && err != MGO_ERR_NOT_FOUND) {
        internal(req, err);
        goto done;
    }
    err = enroll(sb, device_id);
    if (!err)
        err = ingest_copy(sb, MGO_TOPIC_CAPABILITIES, device_id, NULL, &canon);
    if (err) {
        internal(req, err);
        goto done;
    }
    MGO_LOGI(TAG, "device %s: capabilities %s over HTTP", device_id, had ? "updated" : "reported");
    mgo_buf_reset(&req->reply);
    ok(req, had ? 200 : 201, NULL);
done:
    mgo_buf_cleanup(&canon);
    mgo_arena_cleanup(&arena);
}

static void capabilities_delete(struct mgo_southbound *sb, struct mgo_api_request *req,
                                const char *device_id)
{
    if (!own_device(req, device_id))
        return;
    mgo_err err = mgo_mgr_store_device_forget_caps(sb->store, device_id);
    if (err == MGO_ERR_NOT_FOUND) {
        problem(req, 404, "device-not-found", "Device not found",
                "no capabilities are registered for this device", NULL);
        return;
    }
    if (err) {
        internal(req, err);
        return;
    }
    MGO_LOGI(TAG, "device %s: unregistered its capabilities", device_id);
    /* the event stream, as for a report (ingest.c): with several managers through the store,
     * so that every manager's streams carry it (livebus.h) */
    bool relay = sb->ingest != NULL && sb->ingest->notify_live;
    if (sb->hub && (relay || mgo_sse__wanted(sb->hub, NULL))) {
        struct mgo_buf buf;
        mgo_buf_init(&buf, 4096);
        struct mgo_jw w;
        mgo_jw_init(&w, &buf);
        mgo_jw_obj(&w);
        mgo_events__capabilities(&w, device_id);
        mgo_jw_obj_end(&w);
        if (!w.err && !relay)
            mgo_sse__publish(sb->hub, "capabilities", NULL, (const char *)buf.data);
        else if (!w.err && mgo_livebus__notify(sb->store, "capabilities", NULL,
                                               (const char *)buf.data) != MGO_OK)
            MGO_LOGW(TAG, "device %s: the capabilities event is not sent to the event streams",
                     device_id);
        mgo_buf_cleanup(&buf);
    }
    mgo_buf_reset(&req->reply);
    ok(req, 204, NULL);
}

/* ---- the desired state -------------------------------------------------------------------- */

/* A device's desired state as served: the manifest (JSON), its YAML documents, their bundle. */
struct served {
    struct mgo_arena arena;
    struct mgo_publish_set set;
    struct mgo_buf yaml[MGO_MAX_DEPLOYMENTS];
    char digests[MGO_MAX_DEPLOYMENTS][MGO_DIGEST_STR_SIZE];
    char names[MGO_MAX_DEPLOYMENTS][MGO_MAX_DEPLOYMENT_ID_LEN + 8];
    struct mgo_buf bundle;
    char bundle_digest[MGO_DIGEST_STR_SIZE];
    struct mgo_buf manifest;
    char manifest_digest[MGO_DIGEST_STR_SIZE];
};

static void served_free(struct served *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < MGO_MAX_DEPLOYMENTS; i++)
        mgo_buf_cleanup(&s->yaml[i]);
    mgo_buf_cleanup(&s->bundle);
    mgo_buf_cleanup(&s->manifest);
    mgo_arena_cleanup(&s->arena);
    free(s);
}

/* Builds device's served desired state from its present deployments (the same set and
 * manifestVersion as its MQTT manifest would carry). */
static mgo_err served_build(struct mgo_southbound *sb, const char *device, struct served **out)
{
    struct served *s = calloc(1, sizeof *s);
    if (!s)
        return MGO_ERR_NOMEM;
    mgo_arena_init(&s->arena, 64u * 1024u * 1024u);
    for (size_t i = 0; i < MGO_MAX_DEPLOYMENTS; i++)
        mgo_buf_init(&s->yaml[i], 4u * MGO_MAX_MESSAGE_BYTES);
    mgo_buf_init(&s->bundle, MGO_SOUTHBOUND_MAX_REPLY);
    mgo_buf_init(&s->manifest, 1024u * 1024u);
    s->set.arena = &s->arena;
    mgo_err err = mgo_publish__collect(sb->store, device, &s->set);
    struct mgo_sb_file files[MGO_MAX_DEPLOYMENTS];
    for (size_t i = 0; !err && i < s->set.len; i++) {
        err = mgo_sb_deployment_yaml(s->set.docs[i].doc, s->set.docs[i].doc_len, &s->yaml[i]);
        if (!err)
            err = mgo_digest_sha256(s->yaml[i].data, s->yaml[i].len, s->digests[i]);
        if (err)
            break;
        struct mgo_desired_ref *r = &s->set.refs[i];
        r->digest = s->digests[i];
        r->has_size = true;
        r->size_bytes = s->yaml[i].len;
        char *url = mgo_arena_alloc(&s->arena, 256);
        if (!url) {
            err = MGO_ERR_NOMEM;
            break;
        }
        snprintf(url, 256, "/api/v1/deployments/%s/%s", r->deployment_id, s->digests[i]);
        r->url = url;
        snprintf(s->names[i], sizeof s->names[i], "%s.yaml", r->deployment_id);
        files[i] = (struct mgo_sb_file){s->names[i], s->yaml[i].data, s->yaml[i].len};
    }
    struct mgo_desired_state ds = {
        .manifest_version = s->set.version,
        .has_bundle = s->set.len > 0, /* bundle: null exactly when there is nothing */
        .deployments = s->set.refs,
        .deployments_len = s->set.len,
    };
    char bundle_url[128];
    if (!err && s->set.len > 0) {
        err = mgo_sb_bundle(files, s->set.len, &s->bundle);
        if (!err)
            err = mgo_digest_sha256(s->bundle.data, s->bundle.len, s->bundle_digest);
        snprintf(bundle_url, sizeof bundle_url, "/api/v1/bundles/%s", s->bundle_digest);
        ds.bundle.media_type = BUNDLE_TYPE;
        ds.bundle.digest = s->bundle_digest;
        ds.bundle.has_size = true;
        ds.bundle.size_bytes = s->bundle.len;
        ds.bundle.url = bundle_url;
    }
    struct mgo_value tree;
    if (!err)
        err = mgo_desired_state_to_value(&ds, &s->arena, &tree);
    if (!err)
        err = mgo_value_to_json(&tree, false, &s->manifest);
    if (!err)
        err = mgo_digest_sha256(s->manifest.data, s->manifest.len, s->manifest_digest);
    if (err) {
        served_free(s);
        return err;
    }
    *out = s;
    return MGO_OK;
}

/* The cache key of device's served state (see CACHE_SLOTS): read from the store without
 * the documents. */
static mgo_err served_key(struct mgo_southbound *sb, const char *device,
                          char key[MGO_DIGEST_STR_SIZE])
{
    static const char *const no_documents[1] = {NULL};
    struct mgo_publish_set *set = calloc(1, sizeof *set);
    if (!set)
        return MGO_ERR_NOMEM;
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1024u * 1024u);
    struct mgo_buf b;
    mgo_buf_init(&b, 1024u * 1024u);
    set->arena = &arena;
    set->changed = no_documents;
    set->changed_len = 0;
    mgo_err err = mgo_publish__collect(sb->store, device, set);
    if (!err)
        err = mgo_buf_printf(&b, "%llu", (unsigned long long)set->version);
    /* "\n" ends each field: ids and digests never contain one */
    for (size_t i = 0; !err && i < set->len; i++)
        err = mgo_buf_printf(&b, "\n%s\n%s", set->refs[i].deployment_id, set->refs[i].digest);
    if (!err)
        err = mgo_digest_sha256(b.data, b.len, key);
    mgo_buf_cleanup(&b);
    mgo_arena_cleanup(&arena);
    free(set);
    return err;
}

static struct cache_slot *cache_find(struct mgo_southbound *sb, const char *device, const char *key)
{
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        struct cache_slot *c = &sb->cache[i];
        if (c->device[0] && strcmp(c->device, device) == 0 && strcmp(c->key, key) == 0) {
            c->used = ++sb->cache_clock;
            return c;
        }
    }
    return NULL;
}

/* Keeps s as device's served state under key (in device's slot, else a free or the least
 * recently used one). Nothing when the manifest is too large or memory is short. */
static void cache_put(struct mgo_southbound *sb, const char *device, const char *key,
                      const struct served *s)
{
    if (s->manifest.len > CACHE_MAX_MANIFEST)
        return;
    struct cache_slot *slot = NULL;
    for (size_t i = 0; i < CACHE_SLOTS && !slot; i++) {
        if (sb->cache[i].device[0] && strcmp(sb->cache[i].device, device) == 0)
            slot = &sb->cache[i];
    }
    for (size_t i = 0; i < CACHE_SLOTS && !slot; i++) {
        if (!sb->cache[i].device[0])
            slot = &sb->cache[i];
    }
    if (!slot) { /* every slot taken by another device: the least recently used goes */
        slot = &sb->cache[0];
        for (size_t i = 1; i < CACHE_SLOTS; i++) {
            if (sb->cache[i].used < slot->used)
                slot = &sb->cache[i];
        }
    }
    uint8_t *copy = malloc(s->manifest.len ? s->manifest.len : 1);
    if (!copy)
        return;
    memcpy(copy, s->manifest.data, s->manifest.len);
    free(slot->manifest);
    slot->manifest = copy;
    slot->manifest_len = s->manifest.len;
    snprintf(slot->device, sizeof slot->device, "%s", device);
    snprintf(slot->key, sizeof slot->key, "%s", key);
    quote_etag(slot->etag, s->manifest_digest);
    snprintf(slot->bundle_digest, sizeof slot->bundle_digest, "%s",
             s->set.len > 0 ? s->bundle_digest : "");
    slot->used = ++sb->cache_clock;
}

static void deployments_get(struct mgo_southbound *sb, struct mgo_api_request *req)
{
    if (!accepts_manifest(req->accept)) {
        problem(req, 406, "server-cannot-generate-response", "Not acceptable",
                "the manifest is served as " MANIFEST_TYPE " only", NULL);
        return;
    }
    /* a client that polls before enrolling is an HTTP device too: it gets manifest 1 */
    char key[MGO_DIGEST_STR_SIZE];
    mgo_err err = enroll(sb, req->client_id);
    if (!err)
        err = served_key(sb, req->client_id, key);
    struct cache_slot *c = err ? NULL : cache_find(sb, req->client_id, key);
    struct served *s = NULL;
    if (!err && !c) {
        err = served_build(sb, req->client_id, &s);
        if (!err)
            cache_put(sb, req->client_id, key, s);
    }
    if (err) {
        internal(req, err);
        return;
    }
    const uint8_t *body = c ? c->manifest : s->manifest.data;
    size_t body_len = c ? c->manifest_len : s->manifest.len;
    if (c)
        snprintf(req->etag, sizeof req->etag, "%s", c->etag);
    else
        quote_etag(req->etag, s->manifest_digest);
    req->cache_control = "private";
    mgo_buf_reset(&req->reply);
    if (none_match(req, req->etag)) {
        ok(req, 304, NULL);
    } else {
        err = mgo_buf_append(&req->reply, body, body_len);
        if (err)
            internal(req, err);
        else
            ok(req, 200, MANIFEST_TYPE);
    }
    served_free(s);
}

struct dep_doc {
    char device[MGO_MAX_DEVICE_ID_LEN + 1];
    struct mgo_buf yaml;
    mgo_err err;
};

static mgo_err dep_doc_visit(const struct mgo_mgr_deployment_row *row, void *c)
{
    struct dep_doc *d = c;
    snprintf(d->device, sizeof d->device, "%s", row->device_id);
    d->err = mgo_sb_deployment_yaml(row->doc, row->doc_len, &d->yaml);
    return MGO_OK;
}

static void deployment_yaml(struct mgo_southbound *sb, struct mgo_api_request *req,
                            const char *deployment_id, const char *digest)
{
    struct dep_doc d = {.err = MGO_OK};
    mgo_buf_init(&d.yaml, 4u * MGO_MAX_MESSAGE_BYTES);
    char have[MGO_DIGEST_STR_SIZE] = "";
    mgo_err err = mgo_is_uuid(deployment_id)
                      ? mgo_mgr_store_deployment_get(sb->store, deployment_id, dep_doc_visit, &d)
                      : MGO_ERR_NOT_FOUND;
    if (err && err != MGO_ERR_NOT_FOUND) {
        internal(req, err);
        goto done;
    }
    if (!err && !d.err && strcmp(d.device, req->client_id) == 0)
        d.err = mgo_digest_sha256(d.yaml.data, d.yaml.len, have);
    /* only the exact bytes of that digest (any other digest, algorithm or device: 404) */
    if (err || d.err || strcmp(d.device, req->client_id) != 0 || !mgo_digest_is_sha256(digest) ||
        strcmp(have, digest) != 0) {
        problem(req, 404, "deployment-not-found", "Deployment not found",
                "no deployment of this device has that id and digest", NULL);
        goto done;
    }
    mgo_buf_reset(&req->reply);
    err = mgo_buf_append(&req->reply, d.yaml.data, d.yaml.len);
    if (err) {
        internal(req, err);
        goto done;
    }
    quote_etag(req->etag, digest);
    req->cache_control = IMMUTABLE;
    req->vary = "Accept-Encoding";
    ok(req, 200, YAML_TYPE);
done:
    mgo_buf_cleanup(&d.yaml);
}

static void bundle_get(struct mgo_southbound *sb, struct mgo_api_request *req, const char *digest)
{
    char key[MGO_DIGEST_STR_SIZE];
    mgo_err err = served_key(sb, req->client_id, key);
    struct cache_slot *c = err ? NULL : cache_find(sb, req->client_id, key);
    if (c && strcmp(digest, c->bundle_digest) != 0) { /* known without building it */
        problem(req, 404, "invalid-bundle", "Bundle not found",
                "no bundle with that digest is referenced by this device's current manifest", NULL);
        return;
    }
    struct served *s = NULL;
    if (!err)
        err = served_build(sb, req->client_id, &s);
    if (err) {
        internal(req, err);
        return;
    }
    cache_put(sb, req->client_id, key, s);
    /* the bundle of the device's current manifest, the only one it can produce again */
    if (s->set.len == 0 || strcmp(digest, s->bundle_digest) != 0) {
        problem(req, 404, "invalid-bundle", "Bundle not found",
                "no bundle with that digest is referenced by this device's current manifest", NULL);
        served_free(s);
        return;
    }
    quote_etag(req->etag, s->bundle_digest);
    req->cache_control = IMMUTABLE;
    mgo_buf_reset(&req->reply);
    if (none_match(req, req->etag)) {
        ok(req, 304, NULL);
    } else if ((err = mgo_buf_append(&req->reply, s->bundle.data, s->bundle.len)) != MGO_OK) {
        internal(req, err);
    } else {
        ok(req, 200, BUNDLE_TYPE);
    }
    served_free(s);
}

/* ---- status ----------------------------------------------------------------------------- */

struct dep_owner {
    bool found;
    char device[MGO_MAX_DEVICE_ID_LEN + 1];
};

static mgo_err dep_owner_visit(const struct mgo_mgr_deployment_row *row, void *c)
{
    struct dep_owner *o = c;
    o->found = true;
    snprintf(o->device, sizeof o->device, "%s", row->device_id);
    return MGO_OK;
}

/* Publishes the status, retained, on the device's MQTT status topic, so monitors see HTTP
 * devices too (best effort: the status is stored either way). */
static void publish_copy(struct mgo_southbound *sb, const char *device, const char *deployment,
                         const struct mgo_buf *doc)
{
    char topic[MGO_MAX_TOPIC_LEN + 1];
    if (!mgo_outbox__connected(sb->pub->outbox) ||
        mgo_topic_format(sb->pub->prefix, MGO_TOPIC_STATUS, device, deployment, topic,
                         sizeof topic) != MGO_OK ||
        mgo_outbox__send(sb->pub->outbox, MGO_TOPIC_STATUS, topic, doc->data, doc->len, NULL) !=
            MGO_OK)
        MGO_LOGI(TAG, "device %s deployment %s: status stored; not copied to MQTT (not connected)",
                 device, deployment);
}

static void status_post(struct mgo_southbound *sb, struct mgo_api_request *req,
                        const char *deployment_id)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_buf doc;
    mgo_buf_init(&doc, MGO_MAX_MESSAGE_BYTES);
    struct mgo_value tree;
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_deployment_status st;
    if (!body_object(req, &arena, &tree))
        goto done;
    mgo_err err = mgo_deployment_status_from_value(&tree, &arena, &st, &p);
    /* rc.3: adoptedManifestVersion is required; this path is the deployment */
    const struct mgo_value *amv = mgo_value_get(&tree, "adoptedManifestVersion");
    if (amv == NULL)
        mgo_problems_add(&p, "adoptedManifestVersion", "is required");
    else if (amv->kind == MGO_V_UINT && amv->as.u == 0)
        mgo_problems_add(&p, "adoptedManifestVersion", "must be at least 1");
    if (err == MGO_OK && strcmp(st.deployment_id, deployment_id) != 0)
        mgo_problems_add(&p, "deploymentId", "\"%.64s\" differs from the path's deploymentId",
                         st.deployment_id);
    if (err == MGO_OK && st.device_id && strcmp(st.device_id, req->client_id) != 0)
        mgo_problems_add(&p, "deviceId", "must be this client's device (%s)", req->client_id);
    uint64_t version = 0;
    struct dep_owner owner = {0};
    if (mgo_problems_total(&p) == 0) {
        err = mgo_mgr_store_manifest_get(sb->store, req->client_id, &version, NULL);
        if (!err)
            err = mgo_mgr_store_deployment_get(sb->store, deployment_id, dep_owner_visit, &owner);
        if (err && err != MGO_ERR_NOT_FOUND) {
            internal(req, err);
            goto done;
        }
        if (!owner.found || strcmp(owner.device, req->client_id) != 0)
            mgo_problems_add(&p, "deploymentId", "%s is not a deployment of device %s",
                             deployment_id, req->client_id);
        else if (st.adopted_manifest_version > version)
            mgo_problems_add(&p, "adoptedManifestVersion",
                             "%llu is newer than the device's newest manifest (%llu)",
                             (unsigned long long)st.adopted_manifest_version,
                             (unsigned long long)version);
    }
    if (mgo_problems_total(&p) > 0) {
        char detail[512];
        mgo_problems_format(&p, detail, sizeof detail);
        problem(req, 422, "semantic-error", "Semantic error", detail, &p);
        goto done;
    }
    /* margo-mqtt's journal extension belongs to the MQTT binding: not taken over HTTP */
    st.has_journal = false;
    st.has_app = false;
    err = mgo_deployment_status_encode(&st, &doc);
    bool existed = false;
    if (!err) {
        err = mgo_mgr_store_status_get(sb->store, deployment_id, NULL, NULL);
        existed = err == MGO_OK;
        if (err == MGO_ERR_NOT_FOUND)
            err = MGO_OK;
    }
    /* the MQTT copy goes out first, as an MQTT device's own status would: ingesting a
     * `removed` completes the removal, which clears the retained status topic, and that
     * clear must come after the copy (else a stale `removed` stays retained) */
    if (!err)
        publish_copy(sb, req->client_id, deployment_id, &doc);
    if (!err)
        err = ingest_copy(sb, MGO_TOPIC_STATUS, req->client_id, deployment_id, &doc);
    if (err) {
        internal(req, err); /* retryable: the device sends it again */
        goto done;
    }
    mgo_buf_reset(&req->reply);
    ok(req, existed ? 200 : 201, NULL);
done:
    mgo_buf_cleanup(&doc);
    mgo_arena_cleanup(&arena);
}

/* ---- routing ------------------------------------------------------------------------------ */

static bool is(const struct mgo_api_request *req, const char *method)
{
    return strcmp(req->method, method) == 0;
}

static void method_not_allowed(struct mgo_api_request *req)
{
    problem(req, 405, NULL, "Method Not Allowed", "this method is not supported here", NULL);
}

void mgo_southbound__handle(struct mgo_southbound *sb, struct mgo_api_request *req)
{
    req->status = 0;
    if (req->query_overflow || req->header_overflow) {
        problem(req, 400, "invalid-request", "Invalid request",
                "the path, query or a header (If-None-Match, Accept, Host) is too long", NULL);
        return;
    }
    if (mgo_southbound__public(req->path)) {
        if (!is(req, "GET"))
            method_not_allowed(req);
        else if (strcmp(req->path, WELL_KNOWN_PATH) == 0)
            well_known(sb, req);
        else
            trust_bundle(sb, req);
        return;
    }
    static const char root[] = "/api/v1/";
    if (strncmp(req->path, root, sizeof root - 1) != 0 || req->client_id[0] == '\0') {
        problem(req, 404, NULL, "Not Found", "unknown resource", NULL);
        return;
    }
    if (!accepted(sb, req))
        return;
    unsigned retry_s = 0;
    if (!rate_take(sb, req->client_id, &retry_s)) {
        req->retry_after_s = retry_s;
        problem(req, 429, NULL, "Too Many Requests",
                "this client sent more requests this minute than margo-api-rate allows", NULL);
        return;
    }
    const char *rest = req->path + sizeof root - 1;
    static const char caps[] = "capabilities/", deps[] = "deployments", bundles[] = "bundles/";
    if (strncmp(rest, caps, sizeof caps - 1) == 0) {
        const char *device = rest + sizeof caps - 1;
        if (is(req, "PUT"))
            capabilities_put(sb, req, device);
        else if (is(req, "DELETE"))
            capabilities_delete(sb, req, device);
        else
            method_not_allowed(req);
        return;
    }
    if (strcmp(rest, deps) == 0) {
        if (is(req, "GET"))
            deployments_get(sb, req);
        else
            method_not_allowed(req);
        return;
    }
    if (strncmp(rest, bundles, sizeof bundles - 1) == 0 &&
        strchr(rest + sizeof bundles - 1, '/') == NULL) {
        if (is(req, "GET"))
            bundle_get(sb, req, rest + sizeof bundles - 1);
        else
            method_not_allowed(req);
        return;
    }
    /* deployments/{deploymentId}/{digest} and deployments/{deploymentId}/status */
    if (strncmp(rest, deps, sizeof deps - 1) == 0 && rest[sizeof deps - 1] == '/') {
        const char *id = rest + sizeof deps;
        const char *slash = strchr(id, '/');
        char dep[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
        if (slash && (size_t)(slash - id) < sizeof dep && slash > id &&
            strchr(slash + 1, '/') == NULL && slash[1] != '\0') {
            snprintf(dep, sizeof dep, "%.*s", (int)(slash - id), id);
            const char *tail = slash + 1;
            if (strcmp(tail, "status") == 0 && is(req, "POST"))
                status_post(sb, req, dep);
            else if (strcmp(tail, "status") != 0 && is(req, "GET"))
                deployment_yaml(sb, req, dep, tail);
            else
                method_not_allowed(req);
            return;
        }
    }
    problem(req, 404, NULL, "Not Found", "unknown resource", NULL);
}

/* ---- lifecycle -------------------------------------------------------------------------- */

mgo_err mgo_southbound__new(const struct mgo_southbound_config *cfg, struct mgo_southbound **out)
{
    struct mgo_southbound *sb = calloc(1, sizeof *sb);
    if (!sb)
        return MGO_ERR_NOMEM;
    sb->store = cfg->store;
    sb->ingest = cfg->ingest;
    sb->pub = cfg->pub;
    sb->hub = cfg->hub;
    sb->trust_domain = cfg->trust_domain;
    sb->rate = cfg->rate_per_minute ? cfg->rate_per_minute : MGO_SOUTHBOUND_DEFAULT_RATE;
    sb->slots = calloc(MGO_SOUTHBOUND_RATE_SLOTS, sizeof *sb->slots);
    sb->cache = calloc(CACHE_SLOTS, sizeof *sb->cache);
    mgo_buf_init(&sb->bundle_json, 1024u * 1024u);
    struct mgo_buf pem;
    mgo_buf_init(&pem, 1024u * 1024u);
    mgo_err err = sb->slots && sb->cache ? MGO_OK : MGO_ERR_NOMEM;
    if (!err && mgo_buf_read_file(&pem, cfg->client_ca) != MGO_OK) {
        MGO_LOGE(TAG, "margo-api-client-ca: cannot read %s", cfg->client_ca);
        err = MGO_ERR_IO;
    }
    if (!err) {
        err = mgo_sb_trust_bundle(pem.data, pem.len, &sb->bundle_json);
        if (err)
            MGO_LOGE(TAG,
                     "margo-api-client-ca: %s holds no usable certificate (PEM, EC P-256/384/521 "
                     "or RSA keys): %s",
                     cfg->client_ca, mgo_strerror(err));
    }
    char digest[MGO_DIGEST_STR_SIZE];
    if (!err)
        err = mgo_digest_sha256(sb->bundle_json.data, sb->bundle_json.len, digest);
    if (!err)
        quote_etag(sb->bundle_etag, digest);
    mgo_buf_cleanup(&pem);
    if (err) {
        mgo_southbound__free(sb);
        return err;
    }
    *out = sb;
    return MGO_OK;
}

void mgo_southbound__free(struct mgo_southbound *sb)
{
    if (!sb)
        return;
    mgo_buf_cleanup(&sb->bundle_json);
    for (size_t i = 0; sb->cache && i < CACHE_SLOTS; i++)
        free(sb->cache[i].manifest);
    free(sb->cache);
    free(sb->slots);
    free(sb);
}
