/* worker.c - the runtime worker thread (worker.h). */
#include "worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docs.h"
#include "mgo/arena.h"
#include "mgo/metrics.h"
#include "mgo/log.h"

#define TAG "agent"

struct mgo_worker {
    struct mgo_loop *loop;
    struct mgo_rt_settings rt;
    mgo_worker_progress_fn progress;
    mgo_worker_done_fn done;
    void *ctx;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct mgo_job *next;    /* submitted, not taken yet (mu) */
    struct mgo_job *running; /* between submit and the done post (loop thread's view) */
    bool quit;               /* mu */
};

struct mgo_job *mgo_job_new(enum mgo_job_kind kind, const char *deployment_id, const char *digest,
                            const uint8_t *doc, size_t doc_len)
{
    struct mgo_job *job = calloc(1, sizeof *job);
    if (job == NULL)
        return NULL;
    job->doc = malloc(doc_len ? doc_len : 1);
    if (job->doc == NULL) {
        free(job);
        return NULL;
    }
    memcpy(job->doc, doc, doc_len);
    job->doc_len = doc_len;
    job->kind = kind;
    snprintf(job->deployment_id, sizeof job->deployment_id, "%s", deployment_id);
    snprintf(job->digest, sizeof job->digest, "%s", digest ? digest : "");
    atomic_init(&job->cancel, 0);
    job->err = MGO_ERR_INTERNAL; /* until the worker ran it */
    return job;
}

void mgo_job_free(struct mgo_job *job)
{
    if (job == NULL)
        return;
    free(job->doc);
    free(job);
}

/* ---- loop thread side of the posts ------------------------------------------------------ */

struct progress_msg {
    struct mgo_worker *w;
    struct mgo_job *job;
    size_t n;
    struct mgo_rt_result results[]; /* n */
};

static void progress_run(void *ctx)
{
    struct progress_msg *m = ctx;
    m->w->progress(m->w->ctx, m->job, m->results, m->n);
    free(m);
}

/* The done post carries the worker; the job is w->running (set and cleared on the loop
 * thread only). */
static void done_post(void *ctx)
{
    struct mgo_worker *w = ctx;
    struct mgo_job *job = w->running;
    w->running = NULL;
    if (job != NULL)
        w->done(w->ctx, job);
}

/* ---- worker thread ----------------------------------------------------------------------- */

struct run_ctx {
    struct mgo_worker *w;
    struct mgo_job *job;
};

static void on_progress(void *vctx, const struct mgo_rt_result *results, size_t n)
{
    struct run_ctx *rc = vctx;
    if (n > MGO_MAX_COMPONENTS)
        n = MGO_MAX_COMPONENTS;
    struct progress_msg *m = malloc(sizeof *m + n * sizeof m->results[0]);
    if (m == NULL)
        return; /* a progress report lost; the final one still comes */
    m->w = rc->w;
    m->job = rc->job;
    m->n = n;
    memcpy(m->results, results, n * sizeof m->results[0]);
    if (mgo_loop_post(rc->w->loop, progress_run, free, m) != MGO_OK)
        free(m);
}

static void run(struct mgo_worker *w, struct mgo_job *job)
{
    uint64_t t0 = mgo_metrics_now_ns();
    struct mgo_rt_settings rt = w->rt;
    rt.cancel = &job->cancel;
    rt.fetch.cancel = &job->cancel;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_doc_entry e;
    memset(&e, 0, sizeof e);
    struct mgo_app_deployment dep;
    char why[512] = "";
    struct run_ctx rc = {w, job};
    job->err = mgo_docs_examine(job->doc, job->doc_len, &arena, &e, &dep, why, sizeof why);
    if (job->err != MGO_OK) {
        /* the loop examined it before submitting; this is a bug, not bad input */
        MGO_LOGE(TAG, "%s: document not decoded by the worker: %s", job->deployment_id, why);
        goto cleanup;
    }
    job->n = dep.profile.components_len;
    if (job->kind == MGO_JOB_PROBE) {
        job->err = mgo_rt_probe(&rt, &dep, job->results, &job->healthy);
    } else if (job->kind == MGO_JOB_REMOVE) {
        job->err = mgo_rt_remove(&rt, &dep, job->results, on_progress, &rc);
    } else if (!mgo_rt_available(&rt, dep.profile.type)) {
        for (size_t i = 0; i < job->n; i++)
            mgo_rt__set_error(&job->results[i], "UNSUPPORTED_TYPE", dep.profile.components[i].name,
                              "no %s runtime on this device",
                              mgo_profile_type_name(dep.profile.type));
        job->err = MGO_ERR_RUNTIME;
    } else {
        job->err = mgo_rt_apply(&rt, &dep, job->results, on_progress, &rc);
    }
cleanup:
    mgo_arena_cleanup(&arena);
    job->duration_ns = mgo_metrics_now_ns() - t0;
}

static void *worker_main(void *arg)
{
    struct mgo_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->next == NULL && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->next == NULL)
            break; /* quit with nothing to do */
        struct mgo_job *job = w->next;
        w->next = NULL;
        pthread_mutex_unlock(&w->mu);
        run(w, job);
        if (mgo_loop_post(w->loop, done_post, NULL, w) != MGO_OK)
            MGO_LOGE(TAG, "%s: job end not handed to the loop", job->deployment_id);
        pthread_mutex_lock(&w->mu);
        if (w->quit)
            break;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- life ---------------------------------------------------------------------------------- */

mgo_err mgo_worker_new(struct mgo_loop *loop, const struct mgo_rt_settings *rt,
                       mgo_worker_progress_fn progress, mgo_worker_done_fn done, void *ctx,
                       struct mgo_worker **out)
{
    struct mgo_worker *w = calloc(1, sizeof *w);
    if (w == NULL)
        return MGO_ERR_NOMEM;
    w->loop = loop;
    w->rt = *rt;
    w->progress = progress;
    w->done = done;
    w->ctx = ctx;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return MGO_ERR_IO;
    }
    *out = w;
    return MGO_OK;
}

void mgo_worker_free(struct mgo_worker *w, struct mgo_job **unfinished)
{
    if (unfinished != NULL)
        *unfinished = NULL;
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->quit = true;
    if (w->running != NULL)
        atomic_store(&w->running->cancel, 1);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    if (unfinished != NULL)
        *unfinished = w->running;
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

mgo_err mgo_worker_submit(struct mgo_worker *w, struct mgo_job *job)
{
    if (w->running != NULL)
        return MGO_ERR_CONFLICT;
    w->running = job;
    pthread_mutex_lock(&w->mu);
    w->next = job;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return MGO_OK;
}

bool mgo_worker_busy(const struct mgo_worker *w)
{
    return w->running != NULL;
}
