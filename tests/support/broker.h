/* broker.h - a private Mosquitto for integration tests.
 *
 * Each broker listens on a free port of 127.0.0.1 (anonymous access, persistence on) and
 * keeps its config, persistence file and log in its own mkdtemp() directory:
 *
 *     struct mgo_test_broker b;
 *     CU_ASSERT_FATAL(mgo_test_broker_start(&b, NULL) == 0);
 *     ... connect to mgo_test_broker_url(&b) ...
 *     mgo_test_broker_restart(&b);   // same port, retained messages and sessions survive
 *     mgo_test_broker_cleanup(&b);   // stops it and removes the directory
 *
 * The functions return 0 on success and -1 on failure, after printing the reason (and the
 * tail of the broker's log) on stderr. They are not thread-safe; call them from the test's
 * main thread: the broker gets SIGTERM when the thread that started it ends, so a fatal
 * assertion that skips cleanup cannot leave a broker running (its directory stays; call
 * mgo_test_broker_cleanup() from an atexit() handler to remove it in that case too).
 * The broker is /usr/sbin/mosquitto unless MGO_TEST_MOSQUITTO names another binary. */
#ifndef MGO_TEST_BROKER_H
#define MGO_TEST_BROKER_H

#include <sys/types.h>

struct mgo_test_broker {
    pid_t pid;     /* 0 when not running */
    int port;      /* loopback port, kept across restarts */
    char dir[256]; /* temporary directory: mosquitto.conf, mosquitto.db, mosquitto.log */
    char conf_path[320];
    char log_path[320];
    char url[64]; /* "tcp://127.0.0.1:PORT" */
};

/* Picks a free port, writes DIR/mosquitto.conf (listener, allow_anonymous, persistence in
 * DIR, then the lines of extra_conf, which may be NULL), starts Mosquitto with its output in
 * DIR/mosquitto.log and waits (at most ~5 s) until the port accepts connections. */
int mgo_test_broker_start(struct mgo_test_broker *b, const char *extra_conf);
/* SIGTERM (Mosquitto saves its persistence file), wait; SIGKILL after ~5 s. Idempotent. */
int mgo_test_broker_stop(struct mgo_test_broker *b);
/* Stops and starts again on the same port with the same config and persistence file. */
int mgo_test_broker_restart(struct mgo_test_broker *b);
/* "tcp://127.0.0.1:PORT" (storage inside b). */
const char *mgo_test_broker_url(const struct mgo_test_broker *b);
/* Stops the broker and removes its directory. Safe on a zeroed or already cleaned struct. */
void mgo_test_broker_cleanup(struct mgo_test_broker *b);

#endif
