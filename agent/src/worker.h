/* worker.h - the runtime worker: one thread that runs one runtime job at a time (apply,
 * remove or probe of one deployment) so the loop thread never waits for a runtime
 * (private to agent/).
 *
 * Hand-over: the loop thread fills a job and submits it; from then until the done
 * callback the worker thread owns the job's results and the loop thread touches only its
 * cancel flag. Progress and the end are posted to the loop (mgo_loop_post), so both
 * callbacks run on the loop thread, progress always before done. The worker decodes its
 * own copy of the document; nothing is shared but the job.
 *
 * Cancel: store non-zero in job->cancel (any thread). The runtime then stops the running
 * command's process group (SIGTERM, then SIGKILL; exec.h), aborts a download (fetch.h) or
 * ends a wait, and the job ends with the component FAILED, code "CANCELLED". */
#ifndef MGO_AGENT_WORKER_H
#define MGO_AGENT_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/digest.h"
#include "mgo/limits.h"
#include "mgo/loop.h"
#include "runtime.h"

enum mgo_job_kind { MGO_JOB_APPLY = 1, MGO_JOB_REMOVE, MGO_JOB_PROBE };

struct mgo_job {
    /* set by the submitter; read-only while the job runs */
    enum mgo_job_kind kind;
    char deployment_id[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    char digest[MGO_DIGEST_STR_SIZE];
    uint8_t *doc; /* the deployment document; owned by the job (freed by mgo_job_free) */
    size_t doc_len;
    void *owner; /* the submitter's per-job context */
    atomic_int cancel;
    /* set by the worker; read by the loop thread in the done callback */
    mgo_err err;
    bool healthy; /* PROBE */
    size_t n;     /* components */
    struct mgo_rt_result results[MGO_MAX_COMPONENTS];
    /* the runtime's time on the worker, for the metrics */
    uint64_t duration_ns;
};

/* A zeroed job holding a copy of doc. NULL when out of memory. */
struct mgo_job *mgo_job_new(enum mgo_job_kind kind, const char *deployment_id, const char *digest,
                            const uint8_t *doc, size_t doc_len);
void mgo_job_free(struct mgo_job *job);

/* Loop thread callbacks. progress: results[0..n) are each component's state as the runtime
 * reports it before a component starts (valid during the call). done: the job is the
 * submitter's again. */
typedef void (*mgo_worker_progress_fn)(void *ctx, struct mgo_job *job,
                                       const struct mgo_rt_result *results, size_t n);
typedef void (*mgo_worker_done_fn)(void *ctx, struct mgo_job *job);

struct mgo_worker;

/* Starts the thread. rt is copied (its strings are borrowed); its cancel is replaced per job.
 * MGO_ERR_NOMEM, MGO_ERR_IO (thread not created). */
mgo_err mgo_worker_new(struct mgo_loop *loop, const struct mgo_rt_settings *rt,
                       mgo_worker_progress_fn progress, mgo_worker_done_fn done, void *ctx,
                       struct mgo_worker **out) MGO_MUST_CHECK;
/* Cancels the running job, waits for the thread and frees the worker. A job it was running
 * is returned in *unfinished (the done post may never run: the loop is stopping), else NULL.
 * NULL worker is fine. */
void mgo_worker_free(struct mgo_worker *w, struct mgo_job **unfinished);

/* Hands a job over. MGO_ERR_CONFLICT when one is still running (one at a time). */
mgo_err mgo_worker_submit(struct mgo_worker *w, struct mgo_job *job) MGO_MUST_CHECK;
bool mgo_worker_busy(const struct mgo_worker *w);

#endif
