/* rollout.h - fleet rollouts (docs/rollouts.md): a new version (or a first deploy) of one app
 * taken to the devices a selector or a list names, batch by batch, with a success gate per
 * device, failure thresholds that abort, and a rollback to each device's previous revision.
 *
 * Everything a rollout decides is in the store (mgo/mgr_store.h, schema 6), written in the
 * same transaction as the deployment changes it makes; publishing follows the commit. So a
 * manager that stops anywhere continues where it was: no batch is started twice or skipped,
 * and a device that comes back later converges to the desired state the rollout set.
 *
 * The engine has no state of its own: mgo_rollout__tick() reads the active rollouts and moves
 * them on. The manager's loop calls it from a timer and soon after status changes are
 * ingested. Loop thread only. rollout.c (commands, tick, summary) calls deploy.c, publish.c,
 * the store and jw.c; rollout_create.c (create) calls labels.c, lookup.c, match.c, params.c
 * and the store; nothing of those calls back. */
#ifndef MGO_MGR_ROLLOUT_H
#define MGO_MGR_ROLLOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "jw.h"
#include "publish.h"
#include "mgo/mgr_store.h"
#include "mgo/problems.h"
#include "mgo/value.h"

#define MGO_ROLLOUT_MAX_TARGETS 20000u /* devices in one rollout at most */
#define MGO_ROLLOUT_MAX_ACTIVE 16u     /* rollouts running, paused or rolling back at once */
#define MGO_ROLLOUT_MAX_BATCHES 1000u
#define MGO_ROLLOUT_TICK_MS 1000 /* the engine's timer */

/* Every state a rollout can be in (docs/rollouts.md "States"). */
extern const char *const mgo_rollout__states[];
extern const size_t mgo_rollout__states_len;
#define MGO_ROLLOUT_CHANGES_PER_TICK 256u  /* deployment changes per tick (then 0 ms) */
#define MGO_ROLLOUT_DEFAULT_TIMEOUT_S 600u /* successTimeoutSeconds */
#define MGO_ROLLOUT_DEFAULT_GRACE_S 300u   /* offline.graceSeconds */
/* The code of a device that did not report `installed` within successTimeoutSeconds while
 * online (not an agent code; unknown to failure.h, so it counts as an app failure). */
#define MGO_ROLLOUT_TIMEOUT_CODE "ROLLOUT_TIMEOUT"

/* One device considered by a create: batch >= 0 when targeted, else excluded for `kind`
 * ("label", "capability", "deployment", "rollout", "device") with a reason. */
typedef mgo_err (*mgo_rollout_plan_fn)(void *ctx, const char *device_id, int64_t batch,
                                       const char *kind, const char *reason);

/* Validates a create request (docs/rollouts.md "Create"), picks the targets and their
 * batches. dry_run: only reports (plan is called for every device considered; nothing is
 * stored). Otherwise stores the rollout and its targets in one transaction (id_out) and calls
 * plan the same way when it is not NULL. MGO_ERR_INVALID with problems naming the field and
 * the rule (also when no device is targeted), MGO_ERR_LIMIT (too many active rollouts or
 * targets, with a problem), store errors. */
mgo_err mgo_rollout__create(struct mgo_mgr_store *store, const struct mgo_value *body, bool dry_run,
                            mgo_rollout_plan_fn plan, void *plan_ctx,
                            char id_out[MGO_UUID_STR_SIZE],
                            struct mgo_problems *problems) MGO_MUST_CHECK;

enum mgo_rollout_cmd {
    MGO_ROLLOUT_PAUSE,
    MGO_ROLLOUT_RESUME,
    MGO_ROLLOUT_CANCEL,
    MGO_ROLLOUT_ROLLBACK,
};
/* MGO_ERR_NOT_FOUND, MGO_ERR_CONFLICT (not allowed in the current state; why says so),
 * store errors. The change takes effect at the next tick. */
mgo_err mgo_rollout__command(struct mgo_mgr_store *store, const char *id, enum mgo_rollout_cmd cmd,
                             char *why, size_t why_size) MGO_MUST_CHECK;

/* Moves every active rollout on. *again_ms: when the engine wants to run again at the latest
 * (0: at once, more changes are waiting). A rollout whose tick fails is rolled back to its
 * stored state and tried again at the next tick; the first error is returned. */
mgo_err mgo_rollout__tick(struct mgo_mgr_store *store, struct mgo_publisher *pub,
                          int64_t *again_ms) MGO_MUST_CHECK;

/* Writes the members of rollout id's summary into the open object of w: the rollout's fields
 * and strategy, counts per state, per batch, and failures by class and code
 * (docs/rollouts.md "Summary"). with_targets: also "targets": every target. */
/* One target as the API and the summaries write it (docs/rollouts.md, docs/api.md). */
void mgo_rollout__write_target(struct mgo_jw *w, const struct mgo_mgr_target_row *t);
mgo_err mgo_rollout__summary(struct mgo_mgr_store *store, const char *id, bool with_targets,
                             struct mgo_jw *w) MGO_MUST_CHECK;

/* The error code of a DeploymentStatus given as JSON: status.error.code, else the first
 * component's ("" when none or not JSON). */
void mgo_rollout__status_code(const char *doc_json, char *code, size_t code_size);

#endif
