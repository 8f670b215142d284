/* pg.c - see pg.h. */
#include "pg.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mgo_test.h"

extern char **environ;

#define MAX_DBS 512

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char server[128]; /* postgresql://margo@127.0.0.1:PORT; "" until started */
static char cluster_dir[256];
static int watch_fd = -1;
static pid_t watcher;
static unsigned db_count;
static struct {
    char *dir;
    char *url;
} dbs[MAX_DBS];

bool mgo_test_store_pg(void)
{
    const char *v = getenv("MGO_TEST_STORE");
    return v != NULL && strcmp(v, "postgresql") == 0;
}

static void stop_cluster(void)
{
    if (watch_fd >= 0) {
        close(watch_fd); /* the watcher stops the cluster and removes its folder */
        watch_fd = -1;
        int st;
        while (waitpid(watcher, &st, 0) < 0 && errno == EINTR)
            ;
    }
    for (unsigned i = 0; i < db_count; i++) {
        free(dbs[i].dir);
        free(dbs[i].url);
    }
    db_count = 0;
}

static void die(const char *what)
{
    fprintf(stderr, "pg test cluster: %s\n", what);
    exit(2);
}

/* Starts the cluster and its watcher; lock held. */
static void start_cluster(void)
{
    mgo_test_tmpdir("pg", cluster_dir);
    int port = mgo_test_free_port();
    if (port < 0)
        die("no free port");
    const char *script = mgo_test_path("tests/support/pg.sh");
    char url[128];
    if (mgo_test_sh_out(url, sizeof url, "bash '%s' start '%s' %d", script, cluster_dir, port) != 0)
        die("pg.sh start failed (see above)");
    snprintf(server, sizeof server, "%s", url);
    /* the watcher: pg.sh watch reads its stdin until this process's end closes the pipe */
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        die("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[0], 0);
    char *argv[] = {(char *)"bash", (char *)script, (char *)"watch", cluster_dir, NULL};
    int rc = posix_spawn(&watcher, "/bin/bash", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[0]);
    if (rc != 0) {
        close(p[1]);
        (void)mgo_test_sh("bash '%s' stop '%s'", script, cluster_dir);
        die("cannot start the watcher");
    }
    watch_fd = p[1];
    atexit(stop_cluster);
}

static bool create_db(const char *name)
{
    char url[192];
    snprintf(url, sizeof url, "%s/postgres", server);
    PGconn *c = PQconnectdb(url);
    bool ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        char sql[128];
        snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", name);
        PGresult *r = PQexec(c, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            fprintf(stderr, "pg test cluster: %s", PQresultErrorMessage(r));
        PQclear(r);
    } else {
        fprintf(stderr, "pg test cluster: %s", PQerrorMessage(c));
    }
    PQfinish(c);
    return ok;
}

/* A new database's URL, registered for dir (NULL: none); lock held. */
static const char *new_db(const char *dir)
{
    if (server[0] == '\0')
        start_cluster();
    if (db_count == MAX_DBS)
        die("too many databases");
    char name[32], url[192];
    snprintf(name, sizeof name, "t%u_%ld", db_count + 1, (long)getpid());
    if (!create_db(name))
        die("CREATE DATABASE failed");
    snprintf(url, sizeof url, "%s/%s", server, name);
    dbs[db_count].dir = strdup(dir ? dir : "");
    dbs[db_count].url = strdup(url);
    if (dbs[db_count].dir == NULL || dbs[db_count].url == NULL)
        die("out of memory");
    return dbs[db_count++].url;
}

const char *mgo_test_store(const char *dir)
{
    if (!mgo_test_store_pg())
        return dir;
    pthread_mutex_lock(&lock);
    const char *url = NULL;
    for (unsigned i = 0; i < db_count && url == NULL; i++)
        if (strcmp(dbs[i].dir, dir) == 0)
            url = dbs[i].url;
    if (url == NULL)
        url = new_db(dir);
    pthread_mutex_unlock(&lock);
    return url;
}

const char *mgo_test_pg_new_db(void)
{
    pthread_mutex_lock(&lock);
    const char *url = new_db(NULL);
    pthread_mutex_unlock(&lock);
    return url;
}

bool mgo_test_store_sql(const char *dir, const char *sql)
{
    if (!mgo_test_store_pg()) {
        char path[512];
        snprintf(path, sizeof path, "%s/manager.db", dir);
        sqlite3 *db = NULL;
        char *msg = NULL;
        bool ok = sqlite3_open(path, &db) == SQLITE_OK &&
                  sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK;
        if (!ok)
            fprintf(stderr, "mgo_test_store_sql: %s\n", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        sqlite3_close(db);
        return ok;
    }
    PGconn *c = PQconnectdb(mgo_test_store(dir));
    bool ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        PGresult *r = PQexec(c, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
        if (!ok)
            fprintf(stderr, "mgo_test_store_sql: %s", PQresultErrorMessage(r));
        PQclear(r);
    } else {
        fprintf(stderr, "mgo_test_store_sql: %s", PQerrorMessage(c));
    }
    PQfinish(c);
    return ok;
}
