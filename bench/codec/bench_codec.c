/* bench_codec.c - codec micro-benchmark (issue 8, B1).
 *
 * Documents: a 5-component ApplicationDeployment and a 5-component DeploymentStatus, built
 * from the YAML below through our own codecs, so both columns work on the same documents.
 *
 *   msgpack encode           struct -> canonical MessagePack (mgo_*_encode, buffer reused)
 *   msgpack decode+validate  bytes -> tree in a fresh arena -> typed struct with every
 *                            schema rule (mgo_*_decode), arena freed
 *   JSON encode              struct -> cJSON tree -> text (cJSON_PrintPreallocated)
 *   JSON decode+walk         cJSON_ParseWithLength -> typed struct (required fields and their
 *                            JSON types only: cJSON has no schema, so this checks less than ours)
 *
 * Timing: each operation runs in batches (~10 ms), the batch repeated --repeats times; the
 * figure is the median µs/op over the batches, with min and max. Allocations: this program
 * defines malloc/calloc/realloc/free (interposing glibc's for every library in the process)
 * and counts calls; allocations per op = calls in a batch / ops.
 *
 *   mgo-bench-codec [--repeats N] [--markdown] [--ir FILE]
 *   mgo-bench-codec --op NAME --iters N     (one operation only, for callgrind)
 *
 * --ir FILE: lines "NAME IR_PER_OP" measured by scripts/bench.sh with callgrind, printed
 * next to the timings. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "mgo/arena.h"
#include "mgo/buf.h"
#include "mgo/limits.h"
#include "mgo/margo.h"
#include "mgo/problems.h"
#include "mgo/value.h"

#ifdef MGO_BENCH_HAVE_CJSON
#include <cjson/cJSON.h>
#endif

/* ---- allocation counting (interposes glibc's allocator) --------------------------------- */

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);

static atomic_ulong alloc_calls;

void *malloc(size_t size)
{
    atomic_fetch_add_explicit(&alloc_calls, 1, memory_order_relaxed);
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    atomic_fetch_add_explicit(&alloc_calls, 1, memory_order_relaxed);
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    atomic_fetch_add_explicit(&alloc_calls, 1, memory_order_relaxed);
    return __libc_realloc(p, size);
}

void free(void *p)
{
    __libc_free(p);
}

/* ---- the documents ---------------------------------------------------------------------- */

static const char deployment_yaml[] =
    "apiVersion: application.margo.org/v1alpha1\n"
    "kind: ApplicationDeployment\n"
    "id: 6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f\n"
    "metadata:\n"
    "  annotations:\n"
    "    applicationId: factory-vision-suite\n"
    "    id: 6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f\n"
    "  name: factory-vision-suite\n"
    "  namespace: production-line-7\n"
    "  deviceId: edge-gateway-000123\n"
    "  labels: {site: plant-berlin, line: '7', tier: edge}\n"
    "spec:\n"
    "  applicationId: factory-vision-suite\n"
    "  deploymentProfile:\n"
    "    type: compose\n"
    "    components:\n"
    "      - name: camera-ingest\n"
    "        properties:\n"
    "          packageLocation: https://registry.example.com/vision/camera-ingest-2.4.1.tar.gz\n"
    "          keyLocation: https://registry.example.com/keys/vision-release.pub\n"
    "          wait: true\n"
    "          timeout: 5m0s\n"
    "      - name: inference-engine\n"
    "        properties:\n"
    "          packageLocation: https://registry.example.com/vision/inference-engine-2.4.1.tar.gz\n"
    "          keyLocation: https://registry.example.com/keys/vision-release.pub\n"
    "          wait: true\n"
    "          timeout: 10m0s\n"
    "      - name: result-broker\n"
    "        properties:\n"
    "          packageLocation: https://registry.example.com/vision/result-broker-1.9.0.tar.gz\n"
    "          keyLocation: https://registry.example.com/keys/vision-release.pub\n"
    "          wait: true\n"
    "      - name: dashboard\n"
    "        properties:\n"
    "          packageLocation: https://registry.example.com/vision/dashboard-3.1.0.tar.gz\n"
    "          keyLocation: https://registry.example.com/keys/vision-release.pub\n"
    "          wait: false\n"
    "      - name: metrics-exporter\n"
    "        properties:\n"
    "          packageLocation: https://registry.example.com/vision/metrics-exporter-0.8.2.tar.gz\n"
    "          keyLocation: https://registry.example.com/keys/vision-release.pub\n"
    "          wait: true\n"
    "          timeout: 2m30s\n"
    "  parameters:\n"
    "    cameraUrl:\n"
    "      value: rtsp://10.7.0.21:554/stream1\n"
    "      targets: [{pointer: CAMERA_URL, components: [camera-ingest]}]\n"
    "    modelName:\n"
    "      value: defect-detector-v5\n"
    "      targets: [{pointer: MODEL_NAME, components: [inference-engine]}]\n"
    "    confidence:\n"
    "      value: 0.85\n"
    "      targets: [{pointer: MIN_CONFIDENCE, components: [inference-engine, result-broker]}]\n"
    "    dashboardPort:\n"
    "      value: 8443\n"
    "      targets: [{pointer: PORT, components: [dashboard]}]\n";

static const char status_yaml[] = "apiVersion: deployment.margo.org/v1alpha1\n"
                                  "kind: DeploymentStatusManifest\n"
                                  "deploymentId: 6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f\n"
                                  "deviceId: edge-gateway-000123\n"
                                  "adoptedManifestVersion: 42\n"
                                  "status: {state: installing}\n"
                                  "components:\n"
                                  "  - {name: camera-ingest, state: installed}\n"
                                  "  - {name: inference-engine, state: installed}\n"
                                  "  - {name: result-broker, state: installing}\n"
                                  "  - {name: dashboard, state: pending}\n"
                                  "  - {name: metrics-exporter, state: pending}\n"
                                  "x-margo-mqtt-extensions: {boot: 7, seq: 1234}\n";

struct doc_set {
    struct mgo_arena arena; /* holds the structs below */
    struct mgo_app_deployment dep;
    struct mgo_deployment_status st;
    struct mgo_buf dep_mp, st_mp;     /* canonical MessagePack */
    struct mgo_buf dep_json, st_json; /* the same trees as compact JSON */
};

static struct doc_set docs;
static struct mgo_buf out_buf; /* reused by the encoders */

static int load_doc(const char *yaml, enum mgo_doc_kind kind, struct mgo_buf *mp,
                    struct mgo_buf *json)
{
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value tree;
    if (mgo_value_from_yaml(yaml, strlen(yaml), &docs.arena, &tree, &p) != MGO_OK)
        goto invalid;
    if (kind == MGO_DOC_APP_DEPLOYMENT) {
        if (mgo_app_deployment_from_value(&tree, &docs.arena, &docs.dep, &p) != MGO_OK ||
            mgo_app_deployment_encode(&docs.dep, mp) != MGO_OK)
            goto invalid;
    } else {
        if (mgo_deployment_status_from_value(&tree, &docs.arena, &docs.st, &p) != MGO_OK ||
            mgo_deployment_status_encode(&docs.st, mp) != MGO_OK)
            goto invalid;
    }
    /* JSON of exactly the tree that went on the wire */
    struct mgo_value wire;
    if (mgo_value_from_msgpack(mp->data, mp->len, &docs.arena, &wire, &p) != MGO_OK ||
        mgo_value_to_json(&wire, false, json) != MGO_OK)
        goto invalid;
    return 0;
invalid:;
    char text[512];
    mgo_problems_format(&p, text, sizeof text);
    fprintf(stderr, "bench-codec: built-in %s does not validate: %s\n", mgo_doc_kind_name(kind),
            text);
    return -1;
}

/* ---- our codec -------------------------------------------------------------------------- */

static volatile size_t sink;

__attribute__((noinline)) static int bench_op_mp_dep_encode(void)
{
    mgo_buf_reset(&out_buf);
    if (mgo_app_deployment_encode(&docs.dep, &out_buf) != MGO_OK)
        return -1;
    sink += out_buf.len;
    return 0;
}

__attribute__((noinline)) static int bench_op_mp_dep_decode(void)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_app_deployment d;
    mgo_err err = mgo_app_deployment_decode(docs.dep_mp.data, docs.dep_mp.len, &arena, &d, &p);
    sink += err == MGO_OK ? d.profile.components_len : 0;
    mgo_arena_cleanup(&arena);
    return err == MGO_OK && d.profile.components_len == 5 ? 0 : -1;
}

/* What an agent does with a received document: decode, validate, and digest the tree. */
__attribute__((noinline)) static int bench_op_mp_dep_decode_digest(void)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value tree;
    struct mgo_app_deployment d;
    char digest[MGO_DIGEST_STR_SIZE];
    mgo_err err = mgo_value_from_msgpack(docs.dep_mp.data, docs.dep_mp.len, &arena, &tree, &p);
    if (err == MGO_OK)
        err = mgo_app_deployment_from_value(&tree, &arena, &d, &p);
    if (err == MGO_OK)
        err = mgo_doc_digest(&tree, digest);
    sink += err == MGO_OK ? (size_t)digest[10] : 0;
    mgo_arena_cleanup(&arena);
    return err == MGO_OK ? 0 : -1;
}

__attribute__((noinline)) static int bench_op_mp_st_encode(void)
{
    mgo_buf_reset(&out_buf);
    if (mgo_deployment_status_encode(&docs.st, &out_buf) != MGO_OK)
        return -1;
    sink += out_buf.len;
    return 0;
}

__attribute__((noinline)) static int bench_op_mp_st_decode(void)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_deployment_status s;
    mgo_err err = mgo_deployment_status_decode(docs.st_mp.data, docs.st_mp.len, &arena, &s, &p);
    sink += err == MGO_OK ? s.components_len : 0;
    mgo_arena_cleanup(&arena);
    return err == MGO_OK && s.components_len == 5 ? 0 : -1;
}

/* ---- cJSON ------------------------------------------------------------------------------ */

#ifdef MGO_BENCH_HAVE_CJSON
static char json_out[64 * 1024];

static cJSON *json_str_or_null(const char *s)
{
    return s ? cJSON_CreateString(s) : NULL;
}

static void json_add_opt(cJSON *obj, const char *key, const char *s)
{
    if (s)
        cJSON_AddItemToObject(obj, key, json_str_or_null(s));
}

static void json_add_value(cJSON *obj, const char *key, const struct mgo_value *v)
{
    switch (v->kind) {
    case MGO_V_BOOL:
        cJSON_AddBoolToObject(obj, key, v->as.b);
        break;
    case MGO_V_UINT:
        cJSON_AddNumberToObject(obj, key, (double)v->as.u);
        break;
    case MGO_V_INT:
        cJSON_AddNumberToObject(obj, key, (double)v->as.i);
        break;
    case MGO_V_FLOAT:
        cJSON_AddNumberToObject(obj, key, v->as.f);
        break;
    case MGO_V_STR:
        cJSON_AddStringToObject(obj, key, v->as.str.ptr);
        break;
    default:
        cJSON_AddNullToObject(obj, key);
        break;
    }
}

/* struct -> cJSON tree -> text: the same fields our encoder writes. */
__attribute__((noinline)) static int bench_op_json_dep_encode(void)
{
    const struct mgo_app_deployment *d = &docs.dep;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "apiVersion", d->api_version);
    cJSON_AddStringToObject(root, "id", d->id);
    cJSON_AddStringToObject(root, "kind", "ApplicationDeployment");
    cJSON *md = cJSON_AddObjectToObject(root, "metadata");
    cJSON *ann = cJSON_AddObjectToObject(md, "annotations");
    cJSON_AddStringToObject(ann, "applicationId", d->application_id);
    cJSON_AddStringToObject(ann, "id", d->id);
    json_add_opt(md, "deviceId", d->device_id);
    if (d->labels) {
        cJSON *lab = cJSON_AddObjectToObject(md, "labels");
        for (size_t i = 0; i < d->labels->as.map.len; i++)
            json_add_value(lab, d->labels->as.map.items[i].key, &d->labels->as.map.items[i].value);
    }
    cJSON_AddStringToObject(md, "name", d->name);
    cJSON_AddStringToObject(md, "namespace", d->namespace_);
    cJSON *spec = cJSON_AddObjectToObject(root, "spec");
    cJSON_AddStringToObject(spec, "applicationId", d->application_id);
    cJSON *prof = cJSON_AddObjectToObject(spec, "deploymentProfile");
    cJSON *comps = cJSON_AddArrayToObject(prof, "components");
    for (size_t i = 0; i < d->profile.components_len; i++) {
        const struct mgo_component *c = &d->profile.components[i];
        cJSON *jc = cJSON_CreateObject();
        cJSON_AddStringToObject(jc, "name", c->name);
        cJSON *pr = cJSON_AddObjectToObject(jc, "properties");
        json_add_opt(pr, "keyLocation", c->key_location);
        json_add_opt(pr, "packageLocation", c->package_location);
        json_add_opt(pr, "repository", c->repository);
        json_add_opt(pr, "revision", c->revision);
        json_add_opt(pr, "timeout", c->timeout);
        cJSON_AddBoolToObject(pr, "wait", c->wait);
        cJSON_AddItemToArray(comps, jc);
    }
    cJSON_AddStringToObject(prof, "type", mgo_profile_type_name(d->profile.type));
    cJSON *params = cJSON_AddObjectToObject(spec, "parameters");
    for (size_t i = 0; i < d->parameters_len; i++) {
        const struct mgo_parameter *p = &d->parameters[i];
        cJSON *jp = cJSON_AddObjectToObject(params, p->name);
        cJSON *tg = cJSON_AddArrayToObject(jp, "targets");
        for (size_t t = 0; t < p->targets_len; t++) {
            cJSON *jt = cJSON_CreateObject();
            cJSON *cs = cJSON_AddArrayToObject(jt, "components");
            for (size_t k = 0; k < p->targets[t].components_len; k++)
                cJSON_AddItemToArray(cs, cJSON_CreateString(p->targets[t].components[k]));
            cJSON_AddStringToObject(jt, "pointer", p->targets[t].pointer);
            cJSON_AddItemToArray(tg, jt);
        }
        json_add_value(jp, "value", &p->value);
    }
    int ok = cJSON_PrintPreallocated(root, json_out, (int)sizeof json_out, 0);
    cJSON_Delete(root);
    sink += ok ? strlen(json_out) : 0;
    return ok ? 0 : -1;
}

static const char *jstr(const cJSON *obj, const char *key, bool required, int *bad)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        *bad += required;
        return NULL;
    }
    if (!cJSON_IsString(v)) {
        (*bad)++;
        return NULL;
    }
    return v->valuestring;
}

static const cJSON *jobj(const cJSON *obj, const char *key, int *bad)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsObject(v)) {
        (*bad)++;
        return NULL;
    }
    return v;
}

/* text -> cJSON DOM -> the same struct our decoder fills (pointers into the DOM). */
__attribute__((noinline)) static int bench_op_json_dep_decode(void)
{
    static struct mgo_component comps[MGO_MAX_COMPONENTS];
    static struct mgo_parameter params[MGO_MAX_PARAMETERS];
    static struct mgo_target targets[MGO_MAX_PARAMETERS];
    static const char *tcomps[MGO_MAX_PARAMETERS][8];
    struct mgo_app_deployment d;
    memset(&d, 0, sizeof d);
    int bad = 0;
    cJSON *root = cJSON_ParseWithLength((const char *)docs.dep_json.data, docs.dep_json.len);
    if (!cJSON_IsObject(root))
        goto done_bad;
    d.api_version = jstr(root, "apiVersion", false, &bad);
    d.id = jstr(root, "id", true, &bad);
    const cJSON *md = jobj(root, "metadata", &bad);
    const cJSON *ann = md ? jobj(md, "annotations", &bad) : NULL;
    d.application_id = ann ? jstr(ann, "applicationId", true, &bad) : NULL;
    d.name = md ? jstr(md, "name", true, &bad) : NULL;
    d.namespace_ = md ? jstr(md, "namespace", true, &bad) : NULL;
    d.device_id = md ? jstr(md, "deviceId", false, &bad) : NULL;
    const cJSON *spec = jobj(root, "spec", &bad);
    const cJSON *prof = spec ? jobj(spec, "deploymentProfile", &bad) : NULL;
    const char *type = prof ? jstr(prof, "type", true, &bad) : NULL;
    bad += type == NULL || (strcmp(type, "compose") != 0 && strcmp(type, "helm") != 0 &&
                            strcmp(type, "custom") != 0);
    const cJSON *jc = prof ? cJSON_GetObjectItemCaseSensitive(prof, "components") : NULL;
    const cJSON *it;
    size_t n = 0;
    cJSON_ArrayForEach(it, jc)
    {
        if (n == MGO_MAX_COMPONENTS || !cJSON_IsObject(it)) {
            bad++;
            break;
        }
        struct mgo_component *c = &comps[n++];
        c->name = jstr(it, "name", true, &bad);
        const cJSON *pr = jobj(it, "properties", &bad);
        if (!pr)
            continue;
        c->package_location = jstr(pr, "packageLocation", false, &bad);
        c->key_location = jstr(pr, "keyLocation", false, &bad);
        c->repository = jstr(pr, "repository", false, &bad);
        c->timeout = jstr(pr, "timeout", false, &bad);
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(pr, "wait");
        c->wait = !w || cJSON_IsTrue(w);
    }
    d.profile.components = comps;
    d.profile.components_len = n;
    const cJSON *jp = spec ? cJSON_GetObjectItemCaseSensitive(spec, "parameters") : NULL;
    size_t np = 0;
    cJSON_ArrayForEach(it, jp)
    {
        if (np == MGO_MAX_PARAMETERS) {
            bad++;
            break;
        }
        struct mgo_parameter *p = &params[np];
        p->name = it->string;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, "value");
        p->has_value = v != NULL;
        if (cJSON_IsString(v)) {
            p->value.kind = MGO_V_STR;
            p->value.as.str.ptr = v->valuestring;
        } else if (cJSON_IsNumber(v)) {
            p->value.kind = MGO_V_FLOAT;
            p->value.as.f = v->valuedouble;
        } else if (cJSON_IsBool(v)) {
            p->value.kind = MGO_V_BOOL;
            p->value.as.b = cJSON_IsTrue(v);
        } else {
            bad++;
        }
        const cJSON *tg = cJSON_GetObjectItemCaseSensitive(it, "targets");
        const cJSON *t0 = cJSON_IsArray(tg) ? tg->child : NULL;
        if (!t0) {
            bad++;
        } else {
            targets[np].pointer = jstr(t0, "pointer", true, &bad);
            const cJSON *cs = cJSON_GetObjectItemCaseSensitive(t0, "components");
            size_t k = 0;
            const cJSON *ci;
            cJSON_ArrayForEach(ci, cs)
            {
                if (k < 8 && cJSON_IsString(ci))
                    tcomps[np][k++] = ci->valuestring;
            }
            targets[np].components = tcomps[np];
            targets[np].components_len = k;
            p->targets = &targets[np];
            p->targets_len = 1;
        }
        np++;
    }
    d.parameters = params;
    d.parameters_len = np;
    sink += d.profile.components_len + d.parameters_len;
    cJSON_Delete(root);
    return bad == 0 && n == 5 ? 0 : -1;
done_bad:
    cJSON_Delete(root);
    return -1;
}

__attribute__((noinline)) static int bench_op_json_st_encode(void)
{
    const struct mgo_deployment_status *s = &docs.st;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "adoptedManifestVersion", (double)s->adopted_manifest_version);
    cJSON_AddStringToObject(root, "apiVersion", s->api_version);
    cJSON *comps = cJSON_AddArrayToObject(root, "components");
    for (size_t i = 0; i < s->components_len; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "name", s->components[i].name);
        cJSON_AddStringToObject(c, "state", mgo_state_name(s->components[i].state));
        cJSON_AddItemToArray(comps, c);
    }
    cJSON_AddStringToObject(root, "deploymentId", s->deployment_id);
    json_add_opt(root, "deviceId", s->device_id);
    cJSON_AddStringToObject(root, "kind", "DeploymentStatusManifest");
    cJSON *st = cJSON_AddObjectToObject(root, "status");
    cJSON_AddStringToObject(st, "state", mgo_state_name(s->state));
    cJSON *ext = cJSON_AddObjectToObject(root, MGO_EXT_KEY);
    cJSON_AddNumberToObject(ext, "boot", (double)s->boot);
    cJSON_AddNumberToObject(ext, "seq", (double)s->seq);
    int ok = cJSON_PrintPreallocated(root, json_out, (int)sizeof json_out, 0);
    cJSON_Delete(root);
    sink += ok ? strlen(json_out) : 0;
    return ok ? 0 : -1;
}

static int state_from(const char *text)
{
    enum mgo_state s;
    return text && mgo_state_parse(text, &s) == MGO_OK ? (int)s : -1;
}

__attribute__((noinline)) static int bench_op_json_st_decode(void)
{
    static struct mgo_component_status comps[MGO_MAX_COMPONENTS];
    struct mgo_deployment_status s;
    memset(&s, 0, sizeof s);
    int bad = 0;
    cJSON *root = cJSON_ParseWithLength((const char *)docs.st_json.data, docs.st_json.len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return -1;
    }
    s.api_version = jstr(root, "apiVersion", false, &bad);
    s.deployment_id = jstr(root, "deploymentId", true, &bad);
    bad += s.deployment_id == NULL || !mgo_is_uuid(s.deployment_id);
    s.device_id = jstr(root, "deviceId", false, &bad);
    const cJSON *amv = cJSON_GetObjectItemCaseSensitive(root, "adoptedManifestVersion");
    s.has_adopted_manifest_version = cJSON_IsNumber(amv) && amv->valuedouble >= 1;
    s.adopted_manifest_version = s.has_adopted_manifest_version ? (uint64_t)amv->valuedouble : 0;
    const cJSON *st = jobj(root, "status", &bad);
    int state = st ? state_from(jstr(st, "state", true, &bad)) : -1;
    bad += state < 0;
    s.state = state < 0 ? MGO_STATE_FAILED : (enum mgo_state)state;
    const cJSON *jc = cJSON_GetObjectItemCaseSensitive(root, "components");
    const cJSON *it;
    size_t n = 0;
    cJSON_ArrayForEach(it, jc)
    {
        if (n == MGO_MAX_COMPONENTS || !cJSON_IsObject(it)) {
            bad++;
            break;
        }
        comps[n].name = jstr(it, "name", true, &bad);
        int cs = state_from(jstr(it, "state", true, &bad));
        bad += cs < 0;
        comps[n].state = cs < 0 ? MGO_STATE_FAILED : (enum mgo_state)cs;
        n++;
    }
    s.components = comps;
    s.components_len = n;
    const cJSON *ext = cJSON_GetObjectItemCaseSensitive(root, MGO_EXT_KEY);
    if (cJSON_IsObject(ext)) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(ext, "boot");
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(ext, "seq");
        s.has_journal = cJSON_IsNumber(b) && cJSON_IsNumber(q);
        s.boot = s.has_journal ? (uint64_t)b->valuedouble : 0;
        s.seq = s.has_journal ? (uint64_t)q->valuedouble : 0;
    }
    sink += s.components_len;
    cJSON_Delete(root);
    return bad == 0 && n == 5 ? 0 : -1;
}
#endif

/* ---- driver ----------------------------------------------------------------------------- */

struct op {
    const char *name;
    const char *doc;
    const char *format;
    const char *what;
    int (*fn)(void);
};

static const struct op ops[] = {
    {"mp_dep_encode", "deployment", "msgpack", "encode", bench_op_mp_dep_encode},
    {"mp_dep_decode", "deployment", "msgpack", "decode+validate", bench_op_mp_dep_decode},
    {"mp_dep_decode_digest", "deployment", "msgpack", "decode+validate+digest",
     bench_op_mp_dep_decode_digest},
    {"mp_st_encode", "status", "msgpack", "encode", bench_op_mp_st_encode},
    {"mp_st_decode", "status", "msgpack", "decode+validate", bench_op_mp_st_decode},
#ifdef MGO_BENCH_HAVE_CJSON
    {"json_dep_encode", "deployment", "JSON (cJSON)", "encode", bench_op_json_dep_encode},
    {"json_dep_decode", "deployment", "JSON (cJSON)", "decode+walk", bench_op_json_dep_decode},
    {"json_st_encode", "status", "JSON (cJSON)", "encode", bench_op_json_st_encode},
    {"json_st_decode", "status", "JSON (cJSON)", "decode+walk", bench_op_json_st_decode},
#endif
};
#define N_OPS (sizeof ops / sizeof ops[0])

struct result {
    double med_us, min_us, max_us;
    double allocs;
    double ir; /* from --ir, < 0 when not given */
};

static double ir_lookup(const char *file, const char *name)
{
    if (!file)
        return -1;
    FILE *f = fopen(file, "r");
    if (!f)
        return -1;
    char n[64];
    double v = 0, found = -1;
    while (fscanf(f, "%63s %lf", n, &v) == 2) {
        if (strcmp(n, name) == 0)
            found = v;
    }
    fclose(f);
    return found;
}

static int measure(const struct op *op, int repeats, struct result *r)
{
    /* calibrate a batch of ~10 ms */
    size_t iters = 64;
    for (;;) {
        int64_t t0 = mgo_bench_now_ns();
        for (size_t i = 0; i < iters; i++) {
            if (op->fn() != 0)
                return -1;
        }
        int64_t dt = mgo_bench_now_ns() - t0;
        if (dt > 10000000 || iters >= (1u << 22))
            break;
        iters *= 2;
    }
    double us[64];
    double allocs[64];
    if (repeats > 64)
        repeats = 64;
    for (int k = 0; k < repeats; k++) {
        unsigned long a0 = atomic_load(&alloc_calls);
        int64_t t0 = mgo_bench_now_ns();
        for (size_t i = 0; i < iters; i++)
            (void)op->fn();
        int64_t dt = mgo_bench_now_ns() - t0;
        unsigned long a1 = atomic_load(&alloc_calls);
        us[k] = (double)dt / 1000.0 / (double)iters;
        allocs[k] = (double)(a1 - a0) / (double)iters;
    }
    r->med_us = mgo_bench_percentile(us, (size_t)repeats, 50);
    r->min_us = us[0];
    r->max_us = us[repeats - 1];
    r->allocs = mgo_bench_percentile(allocs, (size_t)repeats, 50);
    return 0;
}

static const struct op *op_find(const char *name)
{
    for (size_t i = 0; i < N_OPS; i++) {
        if (strcmp(ops[i].name, name) == 0)
            return &ops[i];
    }
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: mgo-bench-codec [--repeats N] [--markdown] [--ir FILE]\n"
                    "       mgo-bench-codec --op NAME --iters N\n"
                    "       mgo-bench-codec --list\n");
}

int main(int argc, char **argv)
{
    int repeats = 15;
    bool markdown = false;
    const char *ir_file = NULL, *only = NULL;
    long iters = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
            repeats = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--markdown") == 0) {
            markdown = true;
        } else if (strcmp(argv[i], "--ir") == 0 && i + 1 < argc) {
            ir_file = argv[++i];
        } else if (strcmp(argv[i], "--op") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc) {
            iters = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--list") == 0) {
            for (size_t k = 0; k < N_OPS; k++)
                printf("%s\n", ops[k].name);
            return 0;
        } else {
            usage();
            return 2;
        }
    }
    if (repeats < 3 || repeats > 64) {
        fprintf(stderr, "bench-codec: --repeats must be 3..64\n");
        return 2;
    }
    mgo_arena_init(&docs.arena, 16u << 20);
    mgo_buf_init(&docs.dep_mp, MGO_MAX_MESSAGE_BYTES);
    mgo_buf_init(&docs.st_mp, MGO_MAX_MESSAGE_BYTES);
    mgo_buf_init(&docs.dep_json, MGO_MAX_MESSAGE_BYTES);
    mgo_buf_init(&docs.st_json, MGO_MAX_MESSAGE_BYTES);
    mgo_buf_init(&out_buf, MGO_MAX_MESSAGE_BYTES);
    if (load_doc(deployment_yaml, MGO_DOC_APP_DEPLOYMENT, &docs.dep_mp, &docs.dep_json) != 0 ||
        load_doc(status_yaml, MGO_DOC_DEPLOYMENT_STATUS, &docs.st_mp, &docs.st_json) != 0)
        return 1;

    if (only) {
        const struct op *op = op_find(only);
        if (!op || iters < 1) {
            fprintf(stderr, "bench-codec: --op needs a known name (--list) and --iters >= 1\n");
            return 2;
        }
        for (long i = 0; i < iters; i++) {
            if (op->fn() != 0) {
                fprintf(stderr, "bench-codec: %s failed\n", only);
                return 1;
            }
        }
        return 0;
    }

    size_t json_dep_len = docs.dep_json.len, json_st_len = docs.st_json.len;
#ifdef MGO_BENCH_HAVE_CJSON
    /* bytes cJSON itself prints for the same documents */
    if (bench_op_json_dep_encode() == 0)
        json_dep_len = strlen(json_out);
    if (bench_op_json_st_encode() == 0)
        json_st_len = strlen(json_out);
#endif
    struct result res[N_OPS];
    for (size_t i = 0; i < N_OPS; i++) {
        if (measure(&ops[i], repeats, &res[i]) != 0) {
            fprintf(stderr, "bench-codec: %s failed (the document did not round-trip)\n",
                    ops[i].name);
            return 1;
        }
        res[i].ir = ir_lookup(ir_file, ops[i].name);
    }
    char load[64];
    mgo_bench_loadavg(load, sizeof load);

    if (!markdown) {
        for (size_t i = 0; i < N_OPS; i++)
            printf("%-22s %8.3f us/op (min %.3f max %.3f)  %6.1f allocs/op  %10.0f Ir/op\n",
                   ops[i].name, res[i].med_us, res[i].min_us, res[i].max_us, res[i].allocs,
                   res[i].ir);
        printf("bytes: deployment msgpack %zu json %zu (cJSON %zu); status msgpack %zu json %zu "
               "(cJSON %zu)\n",
               docs.dep_mp.len, docs.dep_json.len, json_dep_len, docs.st_mp.len, docs.st_json.len,
               json_st_len);
        printf("load: %s\n", load);
    } else {
        printf("| document | format | operation | µs/op median (min–max of %d) | instructions/op "
               "(callgrind) | allocations/op |\n|---|---|---|---|---|---|\n",
               repeats);
        for (size_t i = 0; i < N_OPS; i++) {
            char ir[32] = "–";
            if (res[i].ir >= 0)
                snprintf(ir, sizeof ir, "%.0f", res[i].ir);
            printf("| %s | %s | %s | %.3f (%.3f–%.3f) | %s | %.1f |\n", ops[i].doc, ops[i].format,
                   ops[i].what, res[i].med_us, res[i].min_us, res[i].max_us, ir, res[i].allocs);
        }
        printf("\nBytes on the wire: deployment **%zu B MessagePack** vs %zu B JSON (%.2f×); "
               "status **%zu B MessagePack** vs %zu B JSON (%.2f×). JSON = compact, as cJSON "
               "prints the same document.\n",
               docs.dep_mp.len, json_dep_len, (double)docs.dep_mp.len / (double)json_dep_len,
               docs.st_mp.len, json_st_len, (double)docs.st_mp.len / (double)json_st_len);
#ifndef MGO_BENCH_HAVE_CJSON
        printf("\n**cJSON column skipped:** libcjson-dev was not installed when this was built "
               "(JSON sizes are from our own JSON export).\n");
#endif
        printf("\nLoad average while measuring: %s.\n", load);
        const struct result *dec = &res[1];
        printf("\nSUMMARY codec: deployment decode+validate %.3f µs/op (goal < 3 µs: %s), "
               "%.1f allocations/op; status decode+validate %.3f µs/op\n",
               dec->med_us, dec->med_us < 3.0 ? "met" : "missed", dec->allocs, res[4].med_us);
    }
    mgo_buf_cleanup(&out_buf);
    mgo_buf_cleanup(&docs.dep_mp);
    mgo_buf_cleanup(&docs.st_mp);
    mgo_buf_cleanup(&docs.dep_json);
    mgo_buf_cleanup(&docs.st_json);
    mgo_arena_cleanup(&docs.arena);
    return 0;
}
