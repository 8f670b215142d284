/* log_capture.c - see mgo_test.h: every mgo_log line of the process kept in one buffer. */
#include <pthread.h>

#include "mgo/buf.h"
#include "mgo/log.h"
#include "mgo_test.h"

static pthread_mutex_t capture_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mgo_buf capture;

/* called on whichever thread logs (the manager's loop, its HTTP threads, Paho's) */
static void capture_sink(enum mgo_log_level level, const char *tag, const char *line, void *ctx)
{
    (void)level;
    (void)ctx;
    pthread_mutex_lock(&capture_mu);
    if (mgo_buf_printf(&capture, "%s: %s\n", tag, line) != MGO_OK) {
        /* the cap is generous; a full buffer only shortens what is searched */
    }
    pthread_mutex_unlock(&capture_mu);
}

void mgo_test_log_capture_start(size_t cap)
{
    pthread_mutex_lock(&capture_mu);
    mgo_buf_init(&capture, cap);
    pthread_mutex_unlock(&capture_mu);
    mgo_log_set_sink(capture_sink, NULL);
}

const char *mgo_test_log_capture_lock(size_t *len)
{
    pthread_mutex_lock(&capture_mu);
    if (len != NULL)
        *len = capture.len;
    return capture.data != NULL ? (const char *)capture.data : "";
}

void mgo_test_log_capture_unlock(void)
{
    pthread_mutex_unlock(&capture_mu);
}

void mgo_test_log_capture_stop(void)
{
    mgo_log_set_sink(NULL, NULL);
    pthread_mutex_lock(&capture_mu);
    mgo_buf_cleanup(&capture);
    pthread_mutex_unlock(&capture_mu);
}
