/* manager_thread.h - margo-manager in-process for tests: the real library (store, API, web
 * front end) with its loop on a thread of the test.
 *
 *     struct mgo_test_manager t;
 *     mgo_test_manager_init(&t, broker_url, dir, "margo-manager-test", token_file, "warn");
 *     t.cfg.signing_key_file = ...;            // anything else the test needs
 *     CU_ASSERT_FATAL(mgo_test_manager_start(&t, true) == MGO_OK);
 *     ... HTTP to t.api_base ...
 *     mgo_test_manager_stop(&t);
 *
 * Only binaries linked with mgo_manager may use it. */
#ifndef MGO_TEST_MANAGER_THREAD_H
#define MGO_TEST_MANAGER_THREAD_H

#include <pthread.h>
#include <stdbool.h>

#include "mgo/err.h"
#include "mgo/manager.h"

struct mgo_test_manager {
    struct mgo_manager_config cfg; /* the manager refers to it while it lives */
    struct mgo_manager *m;
    pthread_t thread;
    bool running;      /* the loop runs on thread */
    char api_base[64]; /* "http://127.0.0.1:PORT" once started */
};

/* Zeroes t and fills t->cfg: the given fields (kept as pointers, they must outlive the
 * manager; token_file and log_level may be NULL), topic prefix margo/v1, the API on a free
 * loopback port, session expiry 600 s, keepalive 30 s. */
void mgo_test_manager_init(struct mgo_test_manager *t, const char *broker_url,
                           const char *state_dir, const char *client_id, const char *token_file,
                           const char *log_level);
/* mgo_manager_new() with t->cfg, sets api_base, and with run starts the loop on a thread
 * (without it only the HTTP front end answers). mgo_manager_new()'s error, or MGO_ERR_INTERNAL
 * when no thread could be started. */
mgo_err mgo_test_manager_start(struct mgo_test_manager *t, bool run);
/* Stops the loop, joins the thread and frees the manager. Safe when not started. */
void mgo_test_manager_stop(struct mgo_test_manager *t);

#endif
