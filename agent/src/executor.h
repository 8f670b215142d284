/* executor.h - desired state in, runtime jobs out (private to agent/).
 *
 * Takes desired-state manifests and deployment documents as they arrive, and after
 * settle-ms of quiet accepts the newest manifest: plans it (plan.h), records the plan
 * durably (documents, records, then the accepted manifestVersion), and runs the plan one
 * item at a time on the runtime worker (worker.h). It also resumes what a previous run left
 * half done and probes for drift (repairing what is not running).
 *
 * Cancellation: a manifest accepted while an install or update runs, and which removes
 * that deployment or names another document for it, cancels the job. The deployment then
 * reports "failed" with the error code "CANCELLED" (docs/protocol.md, "Cancelled work") and
 * the new plan runs. Shutdown cancels too, without a report: the records say what is not
 * done and the next start resumes it.
 *
 * Loop thread only (the worker's callbacks are posted to the loop). Owns the deployment
 * records. Calls the reporter, the document cache, the session (events), the planner and
 * the worker; none of them calls back. */
#ifndef MGO_AGENT_EXECUTOR_H
#define MGO_AGENT_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "docs.h"
#include "mgo/loop.h"
#include "reporter.h"
#include "runtime.h"
#include "session.h"
#include "state.h"

struct mgo_executor_deps {
    struct mgo_loop *loop;
    struct mgo_agent_state *st; /* its manifest_version is the executor's to change */
    struct mgo_docs *docs;
    struct mgo_reporter *reporter;
    struct mgo_session *session;
    const struct mgo_rt_settings *rt; /* copied by the worker; strings borrowed */
    const char *state_dir;            /* named in storage-error events */
    int64_t settle_ms;
    struct mgo_agent_metrics *metrics; /* runtime operations counted; NULL: none */
};

struct mgo_executor;
struct mgo_agent_metrics;

/* Loads the records and starts the worker thread. Everything in deps is borrowed. */
mgo_err mgo_executor_new(const struct mgo_executor_deps *deps,
                         struct mgo_executor **out) MGO_MUST_CHECK;
/* Cancels a running job and waits for the worker (a job that completed anyway is reported;
 * an interrupted one is resumed at the next start). NULL is fine. Loop stopped. */
void mgo_executor_free(struct mgo_executor *x);

/* Queues what the records say is not done (after a restart), before any new work. */
void mgo_executor_resume(struct mgo_executor *x);
/* A message on the desired-state or a deployment topic (signature already checked). */
void mgo_executor_on_desired(struct mgo_executor *x, const uint8_t *payload, size_t len);
void mgo_executor_on_deployment(struct mgo_executor *x, const char *dep_id, const uint8_t *payload,
                                size_t len);
/* Drift check: probes every settled deployment (when no other work is queued). */
void mgo_executor_reconcile(struct mgo_executor *x);

size_t mgo_executor_records(const struct mgo_executor *x);

#endif
