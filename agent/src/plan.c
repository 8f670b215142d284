/* plan.c - install / update / reconfigure / retry / remove / no-op per deployment. */
#include "mgo/plan.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "mgo/topic.h"

const char *mgo_plan_action_name(enum mgo_plan_action a)
{
    switch (a) {
    case MGO_PLAN_NOOP:
        return "no-op";
    case MGO_PLAN_INSTALL:
        return "install";
    case MGO_PLAN_UPDATE:
        return "update";
    case MGO_PLAN_RECONFIGURE:
        return "reconfigure";
    case MGO_PLAN_RETRY:
        return "retry";
    case MGO_PLAN_REMOVE:
        return "remove";
    }
    return "?";
}

static const struct mgo_plan_doc *find_doc(const struct mgo_plan_doc *docs, size_t n,
                                           const char *id, const char *digest)
{
    const struct mgo_plan_doc *other = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(docs[i].deployment_id, id) != 0)
            continue;
        if (strcmp(docs[i].digest, digest) == 0)
            return &docs[i];
        other = &docs[i];
    }
    return other;
}

static const struct mgo_plan_installed *find_rec(const struct mgo_plan_installed *recs, size_t n,
                                                 const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(recs[i].id, id) == 0)
            return &recs[i];
    return NULL;
}

static mgo_err refuse(struct mgo_plan *out, mgo_err err, const char *id, const char *why)
{
    snprintf(out->why, sizeof out->why, "%s", why);
    snprintf(out->why_deployment, sizeof out->why_deployment, "%s", id ? id : "");
    out->len = 0;
    return err;
}

mgo_err mgo_plan_compute(uint64_t accepted_version, const struct mgo_desired_state *manifest,
                         const struct mgo_plan_doc *docs, size_t docs_len,
                         const struct mgo_plan_installed *recs, size_t recs_len,
                         struct mgo_plan *out)
{
    memset(out, 0, sizeof *out);
    out->manifest_version = manifest->manifest_version;
    char why[256];
    if (manifest->manifest_version <= accepted_version) {
        snprintf(why, sizeof why,
                 "manifestVersion %" PRIu64 " is not greater than the accepted %" PRIu64,
                 manifest->manifest_version, accepted_version);
        return refuse(out, MGO_ERR_STALE, NULL, why);
    }
    if (manifest->deployments_len > MGO_MAX_DEPLOYMENTS)
        return refuse(out, MGO_ERR_LIMIT, NULL, "deployments: too many entries");

    /* Validate every reference first: the plan is all or nothing. */
    for (size_t i = 0; i < manifest->deployments_len; i++) {
        const struct mgo_desired_ref *ref = &manifest->deployments[i];
        const char *id = ref->deployment_id;
        if (id == NULL || mgo_topic_check_deployment_id(id, strlen(id)) != MGO_OK)
            return refuse(out, MGO_ERR_INVALID, id, "deploymentId: not a valid deployment id");
        if (ref->digest == NULL || !mgo_digest_is_sha256(ref->digest))
            return refuse(out, MGO_ERR_INVALID, id, "digest: must be sha256:<64 lowercase hex>");
        for (size_t k = 0; k < i; k++)
            if (strcmp(manifest->deployments[k].deployment_id, id) == 0)
                return refuse(out, MGO_ERR_INVALID, id, "deploymentId: listed twice");
    }
    for (size_t i = 0; i < manifest->deployments_len; i++) {
        const struct mgo_desired_ref *ref = &manifest->deployments[i];
        const struct mgo_plan_doc *doc = find_doc(docs, docs_len, ref->deployment_id, ref->digest);
        if (doc == NULL)
            return refuse(out, MGO_ERR_NOT_FOUND, ref->deployment_id, "document not received yet");
        if (strcmp(doc->digest, ref->digest) != 0) {
            snprintf(why, sizeof why, "document digest %s does not match the manifest's %s",
                     doc->digest, ref->digest);
            return refuse(out, MGO_ERR_CRYPTO, ref->deployment_id, why);
        }
    }

    /* Removals first (frees resources and ports the new ones may need). */
    for (size_t r = 0; r < recs_len; r++) {
        bool listed = false;
        for (size_t i = 0; i < manifest->deployments_len && !listed; i++)
            listed = strcmp(manifest->deployments[i].deployment_id, recs[r].id) == 0;
        if (listed)
            continue;
        struct mgo_plan_item *it = &out->items[out->len++];
        snprintf(it->deployment_id, sizeof it->deployment_id, "%s", recs[r].id);
        it->action = MGO_PLAN_REMOVE;
        it->doc = NULL;
    }
    for (size_t i = 0; i < manifest->deployments_len; i++) {
        const struct mgo_desired_ref *ref = &manifest->deployments[i];
        const struct mgo_plan_doc *doc = find_doc(docs, docs_len, ref->deployment_id, ref->digest);
        const struct mgo_plan_installed *rec = find_rec(recs, recs_len, ref->deployment_id);
        struct mgo_plan_item *it = &out->items[out->len++];
        snprintf(it->deployment_id, sizeof it->deployment_id, "%s", ref->deployment_id);
        it->doc = doc;
        if (rec == NULL || rec->installed_digest[0] == '\0') {
            it->action = MGO_PLAN_INSTALL;
        } else if (strcmp(rec->installed_digest, doc->digest) == 0) {
            bool settled =
                rec->installed_ok && !rec->remove && strcmp(rec->desired_digest, doc->digest) == 0;
            it->action = settled ? MGO_PLAN_NOOP : MGO_PLAN_RETRY;
        } else if (doc->profile_hash != NULL && strcmp(rec->profile_hash, doc->profile_hash) == 0) {
            it->action = MGO_PLAN_RECONFIGURE;
        } else {
            it->action = MGO_PLAN_UPDATE;
        }
    }
    return MGO_OK;
}
