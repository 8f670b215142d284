/* pg.h - a private PostgreSQL cluster for tests, and the store location a test uses.
 *
 * With MGO_TEST_STORE=postgresql in the environment (the manager/<name>_pg variants of
 * tests/manager/CMakeLists.txt), mgo_test_store() gives every test folder its own fresh
 * database in one cluster per test binary, started on first use by tests/support/pg.sh
 * (initdb + pg_ctl as an unprivileged user, 127.0.0.1 on a free port, trust) and stopped and
 * removed when the binary exits, also when it crashes (a watcher process waits on a pipe that
 * closes with the binary). Without it, mgo_test_store() is the folder itself (SQLite).
 * Only binaries linked with libpq (mgo_manager) use it. */
#ifndef MGO_TEST_PG_H
#define MGO_TEST_PG_H

#include <stdbool.h>

/* Whether MGO_TEST_STORE=postgresql. */
bool mgo_test_store_pg(void);
/* The store location for a test folder: dir itself, or with mgo_test_store_pg() the URL of a
 * database of its own (created on the first call for that dir; the same URL afterwards).
 * The string lives until the process exits. Exits the binary (status 2) when the cluster
 * cannot be started: nothing can be tested. */
const char *mgo_test_store(const char *dir);
/* Runs sql (no parameters) on the store of dir (mgo_test_store(dir)) outside the store: in
 * its SQLite file or its PostgreSQL database; false after a message on stderr. */
bool mgo_test_store_sql(const char *dir, const char *sql);
/* The URL of a new empty database in the cluster (started when needed); lives until exit. */
const char *mgo_test_pg_new_db(void);

#endif
