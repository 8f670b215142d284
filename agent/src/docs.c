/* docs.c - the deployment-document cache (docs.h). */
#include "docs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgo/log.h"
#include "mgo/value.h"

#define TAG "agent"

void mgo_docs_init(struct mgo_docs *c, const struct mgo_agent_state *st)
{
    memset(c, 0, sizeof *c);
    c->st = st;
}

void mgo_docs_cleanup(struct mgo_docs *c)
{
    for (size_t i = 0; i < c->len; i++)
        free(c->items[i].bytes);
    c->len = 0;
}

static mgo_err sub_digest(const struct mgo_value *root, const char *pointer,
                          char out[MGO_DIGEST_STR_SIZE])
{
    const struct mgo_value *v = mgo_value_pointer(root, pointer);
    struct mgo_buf buf;
    mgo_buf_init(&buf, MGO_MAX_MESSAGE_BYTES);
    struct mgo_value nil = {.kind = MGO_V_NULL};
    mgo_err err = mgo_value_to_msgpack(v ? v : &nil, &buf);
    if (err == MGO_OK)
        err = mgo_digest_sha256(buf.data, buf.len, out);
    mgo_buf_cleanup(&buf);
    return err;
}

mgo_err mgo_docs_examine(const uint8_t *bytes, size_t len, struct mgo_arena *arena,
                         struct mgo_doc_entry *e, struct mgo_app_deployment *dep, char *why,
                         size_t why_len)
{
    struct mgo_problems probs;
    mgo_problems_init(&probs);
    struct mgo_value root;
    mgo_err err = mgo_value_from_msgpack(bytes, len, arena, &root, &probs);
    struct mgo_app_deployment tmp;
    if (err == MGO_OK)
        err = mgo_app_deployment_from_value(&root, arena, dep ? dep : &tmp, &probs);
    if (err != MGO_OK) {
        mgo_problems_format(&probs, why, why_len);
        return err;
    }
    err = mgo_doc_digest(&root, e->digest);
    if (err == MGO_OK)
        err = sub_digest(&root, "/spec/parameters", e->params_hash);
    if (err == MGO_OK)
        err = sub_digest(&root, "/spec/deploymentProfile", e->profile_hash);
    if (err != MGO_OK)
        snprintf(why, why_len, "digest: %s", mgo_strerror(err));
    return err;
}

struct mgo_doc_entry *mgo_docs_find(struct mgo_docs *c, const char *id, const char *digest)
{
    for (size_t i = 0; i < c->len; i++)
        if (strcmp(c->items[i].id, id) == 0 &&
            (digest == NULL || strcmp(c->items[i].digest, digest) == 0))
            return &c->items[i];
    return NULL;
}

static void drop(struct mgo_docs *c, size_t i)
{
    free(c->items[i].bytes);
    c->items[i] = c->items[c->len - 1];
    c->len--;
}

void mgo_docs_forget_received(struct mgo_docs *c, const char *id)
{
    for (size_t i = 0; i < c->len; i++) {
        if (c->items[i].received && strcmp(c->items[i].id, id) == 0) {
            drop(c, i);
            return;
        }
    }
}

mgo_err mgo_docs_put(struct mgo_docs *c, const struct mgo_doc_entry *e, const uint8_t *bytes,
                     size_t len, bool received)
{
    if (mgo_docs_find(c, e->id, e->digest) != NULL)
        return MGO_OK;
    if (received)
        mgo_docs_forget_received(c, e->id); /* one received version per id */
    if (c->len == MGO_DOCS_MAX)
        return MGO_ERR_LIMIT;
    struct mgo_doc_entry *d = &c->items[c->len];
    *d = *e;
    d->bytes = malloc(len ? len : 1);
    if (d->bytes == NULL)
        return MGO_ERR_NOMEM;
    memcpy(d->bytes, bytes, len);
    d->len = len;
    d->received = received;
    c->len++;
    return MGO_OK;
}

const struct mgo_doc_entry *mgo_docs_for(struct mgo_docs *c, const char *id, const char *digest)
{
    if (digest == NULL || digest[0] == '\0')
        return NULL;
    struct mgo_doc_entry *d = mgo_docs_find(c, id, digest);
    if (d != NULL)
        return d;
    struct mgo_buf buf;
    mgo_buf_init(&buf, MGO_MAX_MESSAGE_BYTES);
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_doc_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.id, sizeof e.id, "%s", id);
    char why[256] = "";
    if (mgo_agent_doc_load(c->st, digest, &buf) == MGO_OK &&
        mgo_docs_examine(buf.data, buf.len, &arena, &e, NULL, why, sizeof why) == MGO_OK &&
        strcmp(e.digest, digest) == 0 && mgo_docs_put(c, &e, buf.data, buf.len, false) == MGO_OK)
        d = mgo_docs_find(c, id, digest);
    else
        MGO_LOGE(TAG, "%s: stored document %s missing or altered %s", id, digest, why);
    mgo_arena_cleanup(&arena);
    mgo_buf_cleanup(&buf);
    return d;
}

static const struct mgo_dep_record *rec_of(const struct mgo_dep_record *recs, size_t n,
                                           const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(recs[i].id, id) == 0)
            return &recs[i];
    return NULL;
}

void mgo_docs_prune(struct mgo_docs *c, const struct mgo_dep_record *recs, size_t n,
                    bool keep_received, const char *pinned)
{
    for (size_t i = c->len; i > 0; i--) {
        if (keep_received && c->items[i - 1].received)
            continue;
        if (pinned != NULL && strcmp(pinned, c->items[i - 1].digest) == 0)
            continue;
        const struct mgo_dep_record *r = rec_of(recs, n, c->items[i - 1].id);
        if (r == NULL || (strcmp(r->desired_digest, c->items[i - 1].digest) != 0 &&
                          strcmp(r->installed_digest, c->items[i - 1].digest) != 0))
            drop(c, i - 1);
    }
    const char *keep[2u * 2u * MGO_MAX_DEPLOYMENTS + 1u];
    size_t k = 0;
    if (pinned != NULL)
        keep[k++] = pinned;
    for (size_t i = 0; i < n && k + 2 <= sizeof keep / sizeof keep[0]; i++) {
        keep[k++] = recs[i].desired_digest;
        keep[k++] = recs[i].installed_digest;
    }
    mgo_agent_doc_gc(c->st, keep, k);
}
