/* plan.h - the agent's planner: from a manifest, the documents at hand and what is
 * installed, what to do per deployment. Exported by the agent library (margo-agent uses it,
 * and so does the fleet simulator, bench/fleet, so that simulated devices plan exactly like
 * real ones). Pure: no I/O, no allocation, no global state. */
#ifndef MGO_PLAN_H
#define MGO_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/digest.h"
#include "mgo/err.h"
#include "mgo/limits.h"
#include "mgo/margo.h"

enum mgo_plan_action {
    MGO_PLAN_NOOP = 0,    /* installed, same document, last apply succeeded */
    MGO_PLAN_INSTALL,     /* not installed yet */
    MGO_PLAN_UPDATE,      /* installed, the deployment profile changed (new version) */
    MGO_PLAN_RECONFIGURE, /* installed, only the parameters changed */
    MGO_PLAN_RETRY,       /* same document, but the last apply failed or was interrupted */
    MGO_PLAN_REMOVE,      /* absent from the manifest */
};
const char *mgo_plan_action_name(enum mgo_plan_action a);

/* A deployment document the agent holds (received or persisted), with its digests. */
struct mgo_plan_doc {
    const char *deployment_id;
    const char *digest;       /* mgo_doc_digest of the document */
    const char *params_hash;  /* digest of spec.parameters */
    const char *profile_hash; /* digest of spec.deploymentProfile */
};

/* What a device has for one deployment (the agent fills it from its record). */
struct mgo_plan_installed {
    char id[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    char desired_digest[MGO_DIGEST_STR_SIZE];   /* document last planned; "" when removing */
    char installed_digest[MGO_DIGEST_STR_SIZE]; /* document last applied; "" = nothing */
    char profile_hash[MGO_DIGEST_STR_SIZE];     /* deploymentProfile of the installed document */
    bool installed_ok;                          /* last apply of installed_digest succeeded */
    bool remove;                                /* absent from the accepted manifest */
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
                         const struct mgo_plan_installed *installed, size_t installed_len,
                         struct mgo_plan *out) MGO_MUST_CHECK;

#endif
