/* topic.h - build, parse and validate the topics of the margo-mqtt contract.
 *
 *   {prefix}/devices/{deviceId}/desired                      manager -> agent, retained, QoS 1
 *   {prefix}/devices/{deviceId}/deployments/{deploymentId}   manager -> agent, retained, QoS 1
 *   {prefix}/devices/{deviceId}/status/{deploymentId}        agent -> all,     retained, QoS 1
 *   {prefix}/devices/{deviceId}/capabilities                 agent -> manager, retained, QoS 1
 *   {prefix}/devices/{deviceId}/state                        agent -> all,     retained, QoS 1
 *   {prefix}/devices/{deviceId}/events                       agent -> manager, not retained, QoS 1
 *   {prefix}/devices/{deviceId}/receipt                      manager -> agent, retained, QoS 1
 *   {prefix}/devices/{deviceId}/replay/{deploymentId}        agent -> manager, not retained, QoS 1
 *
 * Fleet roll-ups (docs/rollouts.md "Roll-up topics"), one level per rollout or app id:
 *   {prefix}/fleet/rollouts/{rolloutId}                      manager -> monitors, retained, QoS 1
 *   {prefix}/fleet/apps/{appId}                              manager -> monitors, retained, QoS 1
 *
 * receipt and replay carry the end-to-end status guarantee (docs/protocol.md §6.3): the
 * manager says which journal position it has stored, the agent keeps every status until
 * then and replays, to the manager alone, what a manager restart may have lost.
 *
 * Pure: no I/O, no allocation. The default prefix is "margo/v1". */
#ifndef MGO_TOPIC_H
#define MGO_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include "mgo/err.h"
#include "mgo/limits.h"

#define MGO_TOPIC_DEFAULT_PREFIX "margo/v1"

enum mgo_topic_kind {
    MGO_TOPIC_DESIRED = 0,
    MGO_TOPIC_DEPLOYMENT,
    MGO_TOPIC_STATUS,
    MGO_TOPIC_CAPABILITIES,
    MGO_TOPIC_STATE,
    MGO_TOPIC_EVENTS,
    MGO_TOPIC_RECEIPT,
    MGO_TOPIC_REPLAY,
};
#define MGO_TOPIC_KIND_COUNT 8

struct mgo_topic {
    enum mgo_topic_kind kind;
    char device_id[MGO_MAX_DEVICE_ID_LEN + 1];
    char deployment_id[MGO_MAX_DEPLOYMENT_ID_LEN + 1]; /* "" unless the kind has one */
};

/* Fixed properties of each kind (the contract table). */
bool mgo_topic_retained(enum mgo_topic_kind kind);
int mgo_topic_qos(enum mgo_topic_kind kind);
const char *mgo_topic_kind_name(enum mgo_topic_kind kind);
bool mgo_topic_kind_has_deployment(enum mgo_topic_kind kind);

/* Device ids: 1..MGO_MAX_DEVICE_ID_LEN of [A-Za-z0-9._~-], not "." or "..".
 * Deployment ids: 1..MGO_MAX_DEPLOYMENT_ID_LEN of the same set.
 * Return MGO_ERR_INVALID (empty, bad character, "."/"..") or MGO_ERR_LIMIT (too long). */
mgo_err mgo_topic_check_device_id(const char *id, size_t len) MGO_MUST_CHECK;
mgo_err mgo_topic_check_deployment_id(const char *id, size_t len) MGO_MUST_CHECK;
/* Prefix: 1..MGO_MAX_TOPIC_PREFIX_LEN, levels separated by '/', every level non-empty,
 * no '+', '#', NUL, and not starting with '$'. */
mgo_err mgo_topic_check_prefix(const char *prefix) MGO_MUST_CHECK;

/* Writes the topic for t under prefix into out (NUL-terminated).
 * MGO_ERR_INVALID for a bad id or prefix, MGO_ERR_LIMIT if out_size is too small. */
mgo_err mgo_topic_build(const char *prefix, const struct mgo_topic *t, char *out,
                        size_t out_size) MGO_MUST_CHECK;
/* Convenience builders. deployment_id ignored for kinds without one. */
mgo_err mgo_topic_format(const char *prefix, enum mgo_topic_kind kind, const char *device_id,
                         const char *deployment_id, char *out, size_t out_size) MGO_MUST_CHECK;

/* Parses topic[0..len) (need not be NUL-terminated). MGO_ERR_INVALID when it is not one of
 * the contract's topics under prefix or an id is invalid; MGO_ERR_LIMIT when too long. */
mgo_err mgo_topic_parse(const char *prefix, const char *topic, size_t len,
                        struct mgo_topic *out) MGO_MUST_CHECK;

/* Subscription filter for kind; device_id NULL means every device ("+"); for kinds with a
 * deployment level (DEPLOYMENT, STATUS, REPLAY) that level is always "+". Example:
 * margo/v1/devices/+/status/+ */
mgo_err mgo_topic_filter(const char *prefix, enum mgo_topic_kind kind, const char *device_id,
                         char *out, size_t out_size) MGO_MUST_CHECK;

/* ---- fleet roll-ups ---------------------------------------------------------------------- */

enum mgo_fleet_topic_kind {
    MGO_FLEET_TOPIC_ROLLOUT = 0,
    MGO_FLEET_TOPIC_APP,
};
#define MGO_FLEET_TOPIC_KIND_COUNT 2

bool mgo_fleet_topic_retained(enum mgo_fleet_topic_kind kind);
int mgo_fleet_topic_qos(enum mgo_fleet_topic_kind kind);
/* {prefix}/fleet/rollouts/{id} or {prefix}/fleet/apps/{id}; id: 1..MGO_MAX_APP_ID_LEN of
 * [A-Za-z0-9._~-], not "." or "..". MGO_ERR_INVALID (id, prefix), MGO_ERR_LIMIT. */
mgo_err mgo_fleet_topic_format(const char *prefix, enum mgo_fleet_topic_kind kind, const char *id,
                               char *out, size_t out_size) MGO_MUST_CHECK;
/* {prefix}/fleet/rollouts/+ or {prefix}/fleet/apps/+ */
mgo_err mgo_fleet_topic_filter(const char *prefix, enum mgo_fleet_topic_kind kind, char *out,
                               size_t out_size) MGO_MUST_CHECK;

#endif
