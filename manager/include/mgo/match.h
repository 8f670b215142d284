/* match.h - does a device's capabilities satisfy an application's deployment profile?
 *
 * Checks, in order (the first failing check gives the reason):
 *   1. the device hosts workloads and supports the profile's deployment type;
 *   2. requiredResources (older drafts): cpu cores + architectures satisfied by ONE cpus[]
 *      entry, memory, storage, each peripheral (type, and manufacturer/model when given),
 *      each interface; roles are covered by 1 (they are mapped to deployment types);
 *   3. deviceConstraints.capacityRequirements (cpu by one cpus[] entry, memory, storage);
 *   4. deviceConstraints.eligibilityRules: rules ORed, property + label selector of one
 *      rule ANDed, expressions of one selector ANDed. Operators In, NotIn, Exists,
 *      DoesNotExist, Gt, Lt, ContainsAll, ContainsAny (SPEC-DIGEST §1.8).
 *
 * Pure functions: no I/O, no allocation. Reasons read like
 * "memory: needs 1Gi, device has 512Mi". */
#ifndef MGO_MATCH_H
#define MGO_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include "mgo/margo.h"

#define MGO_MATCH_REASON_SIZE 256u

/* true when caps satisfies profile; otherwise reason (may be NULL) says why. */
bool mgo_match_profile(const struct mgo_profile *profile, const struct mgo_capabilities *caps,
                       char *reason, size_t reason_size);

/* The first profile of app (in listed order) that caps satisfies, or NULL with a reason. */
const struct mgo_profile *mgo_match_app(const struct mgo_app_description *app,
                                        const struct mgo_capabilities *caps, char *reason,
                                        size_t reason_size);

/* One selector ({matchExpressions: [...]}) against root: property selectors use root =
 * capabilities properties and keys as JSON Pointers (labels = false); label selectors use
 * root = labels map and keys as exact label keys (labels = true). Exposed for tests. */
bool mgo_match_selector(const struct mgo_value *selector, const struct mgo_value *root, bool labels,
                        char *reason, size_t reason_size);

/* bytes -> "512Mi" style text (largest exact binary unit, else bytes). */
void mgo_match_format_size(uint64_t bytes, char *out, size_t out_size);

#endif
