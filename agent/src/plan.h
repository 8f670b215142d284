/* plan.h - from an accepted manifest, the documents it names and what is installed, compute
 * what to do per deployment (private to agent/). Pure: no I/O. */
#ifndef MGO_AGENT_PLAN_H
#define MGO_AGENT_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/margo.h"
#include "state.h"

enum mgo_plan_action {
    MGO_PLAN_NOOP = 0,      /* installed, same document, last apply succeeded */
    MGO_PLAN_INSTALL,       /* not installed yet */
    MGO_PLAN_UPDATE,        /* installed, the deployment profile changed (new version) */
    MGO_PLAN_RECONFIGURE,   /* installed, only the parameters changed */
    MGO_PLAN_RETRY,         /* same document, but the last apply failed or was interrupted */
    MGO_PLAN_REMOVE,        /* absent from the manifest */
};
const char *mgo_plan_action_name(enum mgo_plan_action a);

/* A deployment document the agent holds (received or persisted), with its digests. */
struct mgo_plan_doc {
    const char *deployment_id;
    const char *digest;       /* mgo_doc_digest of the document */
    const char *params_hash;  /* digest of spec.parameters */
    const char *profile_hash; /* digest of spec.deploymentProfile */
};

struct mgo_plan_item {
    char deployment_id[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    enum mgo_plan_action action;
    const struct mgo_plan_doc *doc; /* NULL for REMOVE */
};

struct mgo_plan {
    uint64_t manifest_version;
    struct mgo_plan_item items[2u * MGO_MAX_DEPLOYMENTS]; /* removals first, then manifest order */
    size_t len;
    /* Why the manifest cannot be accepted (set on any error): the deployment id and rule. */
    char why[256];
    char why_deployment[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
};

/* Computes the plan.
 *   MGO_ERR_STALE      manifestVersion <= accepted (anti-rollback; equal = redelivery)
 *   MGO_ERR_INVALID    the manifest lists a deployment twice or a malformed digest
 *   MGO_ERR_NOT_FOUND  a referenced document has not arrived (wait for it)
 *   MGO_ERR_CRYPTO     a referenced document is present with another digest (wait; a newer
 *                      document may follow; the caller reports a digest-mismatch event)
 * On any error the plan is unusable and nothing may be acted on. */
mgo_err mgo_plan_compute(uint64_t accepted_version, const struct mgo_desired_state *manifest,
                         const struct mgo_plan_doc *docs, size_t docs_len,
                         const struct mgo_dep_record *recs, size_t recs_len, struct mgo_plan *out)
    MGO_MUST_CHECK;

#endif
