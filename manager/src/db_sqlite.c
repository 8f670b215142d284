/* db_sqlite.c - the SQLite driver of the store's SQL interface (see db.h). A statement is the
 * sqlite3_stmt behind a small header; every call is the SQLite call it names. */
#include "db.h"

#include <sqlite3.h>
#include <stdlib.h>

struct sqlite_db {
    struct mgo_db base;
    sqlite3 *h;
    sqlite3_stmt *savepoint; /* "SAVEPOINT mgo", prepared once (two compilations per
                              * ingested status when run through sqlite3_exec) */
    sqlite3_stmt *release;   /* "RELEASE mgo" */
    char *exec_msg;          /* the last sqlite3_exec error (sqlite3_free) */
};

struct sqlite_stmt {
    struct mgo_db_stmt base;
    sqlite3_stmt *st;
};

static struct sqlite_db *db_of(struct mgo_db *db)
{
    return (struct sqlite_db *)db;
}

static sqlite3_stmt *st_of(struct mgo_db_stmt *st)
{
    return ((struct sqlite_stmt *)st)->st;
}

static void clear_exec_msg(struct sqlite_db *d)
{
    sqlite3_free(d->exec_msg);
    d->exec_msg = NULL;
}

static void sq_close(struct mgo_db *db)
{
    struct sqlite_db *d = db_of(db);
    sqlite3_finalize(d->savepoint);
    sqlite3_finalize(d->release);
    clear_exec_msg(d);
    sqlite3_close(d->h);
    free(d);
}

static int sq_exec(struct mgo_db *db, const char *sql, bool ddl)
{
    (void)ddl; /* the migrations are written in SQLite's dialect */
    struct sqlite_db *d = db_of(db);
    clear_exec_msg(d);
    return sqlite3_exec(d->h, sql, NULL, NULL, &d->exec_msg) == SQLITE_OK ? 0 : -1;
}

static const struct mgo_db_ops SQLITE_OPS;

static int sq_prepare(struct mgo_db *db, const char *sql, struct mgo_db_stmt **out)
{
    struct sqlite_db *d = db_of(db);
    clear_exec_msg(d);
    struct sqlite_stmt *s = malloc(sizeof(*s));
    if (s == NULL)
        return -1;
    s->base.ops = &SQLITE_OPS;
    if (sqlite3_prepare_v2(d->h, sql, -1, &s->st, NULL) != SQLITE_OK) {
        free(s);
        return -1;
    }
    *out = &s->base;
    return 0;
}

static void sq_bind_int64(struct mgo_db_stmt *st, int i, int64_t v)
{
    sqlite3_bind_int64(st_of(st), i, (sqlite3_int64)v);
}

static void sq_bind_text(struct mgo_db_stmt *st, int i, const char *text)
{
    if (text)
        sqlite3_bind_text(st_of(st), i, text, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st_of(st), i);
}

static void sq_bind_blob(struct mgo_db_stmt *st, int i, const void *data, size_t len)
{
    if (data)
        sqlite3_bind_blob64(st_of(st), i, data, (sqlite3_uint64)len, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st_of(st), i);
}

static void sq_bind_null(struct mgo_db_stmt *st, int i)
{
    sqlite3_bind_null(st_of(st), i);
}

static enum mgo_db_step sq_step(struct mgo_db_stmt *st)
{
    int rc = sqlite3_step(st_of(st));
    if (rc == SQLITE_ROW)
        return MGO_DB_ROW;
    if (rc == SQLITE_DONE)
        return MGO_DB_DONE;
    return MGO_DB_ERROR;
}

static int64_t sq_col_int64(struct mgo_db_stmt *st, int i)
{
    return sqlite3_column_int64(st_of(st), i);
}

static const char *sq_col_text(struct mgo_db_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st_of(st), i);
}

static const void *sq_col_blob(struct mgo_db_stmt *st, int i)
{
    return sqlite3_column_blob(st_of(st), i);
}

static size_t sq_col_bytes(struct mgo_db_stmt *st, int i)
{
    return (size_t)sqlite3_column_bytes(st_of(st), i);
}

static bool sq_col_is_null(struct mgo_db_stmt *st, int i)
{
    return sqlite3_column_type(st_of(st), i) == SQLITE_NULL;
}

static void sq_reset(struct mgo_db_stmt *st)
{
    sqlite3_reset(st_of(st));
    sqlite3_clear_bindings(st_of(st));
}

static void sq_finish(struct mgo_db_stmt *st)
{
    sqlite3_finalize(st_of(st));
    free(st);
}

static int64_t sq_changes(struct mgo_db *db)
{
    return sqlite3_changes(db_of(db)->h);
}

static const char *sq_errmsg(struct mgo_db *db)
{
    struct sqlite_db *d = db_of(db);
    if (d->exec_msg)
        return d->exec_msg;
    return d->h ? sqlite3_errmsg(d->h) : "out of memory";
}

static int sq_errcode(struct mgo_db *db)
{
    return db_of(db)->h ? sqlite3_extended_errcode(db_of(db)->h) : SQLITE_NOMEM;
}

static enum mgo_db_errkind sq_errkind(struct mgo_db *db)
{
    int code = sq_errcode(db) & 0xff;
    if (code == SQLITE_CONSTRAINT)
        return MGO_DB_E_CONSTRAINT;
    if (code == SQLITE_NOMEM)
        return MGO_DB_E_NOMEM;
    return MGO_DB_E_OTHER;
}

/* Runs a cached one-statement transaction control (prepared on first use). */
static int run_cached(struct sqlite_db *d, sqlite3_stmt **st, const char *sql)
{
    clear_exec_msg(d);
    if (*st == NULL && sqlite3_prepare_v2(d->h, sql, -1, st, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(*st);
    sqlite3_reset(*st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* SQLite's savepoints nest and the outermost one is the transaction (BEGIN DEFERRED). */
static int sq_savepoint(struct mgo_db *db, unsigned depth)
{
    (void)depth;
    struct sqlite_db *d = db_of(db);
    return run_cached(d, &d->savepoint, "SAVEPOINT mgo");
}

static int sq_release(struct mgo_db *db, unsigned depth)
{
    (void)depth;
    struct sqlite_db *d = db_of(db);
    return run_cached(d, &d->release, "RELEASE mgo");
}

static int sq_rollback(struct mgo_db *db, unsigned depth)
{
    (void)depth;
    return sq_exec(db, "ROLLBACK TO mgo; RELEASE mgo", false);
}

static int sq_migrate_begin(struct mgo_db *db)
{
    return sq_exec(db, "BEGIN IMMEDIATE", false);
}

static const struct mgo_db_ops SQLITE_OPS = {
    .name = "sqlite",
    .close = sq_close,
    .exec = sq_exec,
    .prepare = sq_prepare,
    .bind_int64 = sq_bind_int64,
    .bind_text = sq_bind_text,
    .bind_blob = sq_bind_blob,
    .bind_null = sq_bind_null,
    .step = sq_step,
    .col_int64 = sq_col_int64,
    .col_text = sq_col_text,
    .col_blob = sq_col_blob,
    .col_bytes = sq_col_bytes,
    .col_is_null = sq_col_is_null,
    .reset = sq_reset,
    .finish = sq_finish,
    .changes = sq_changes,
    .errmsg = sq_errmsg,
    .errcode = sq_errcode,
    .errkind = sq_errkind,
    .savepoint = sq_savepoint,
    .release = sq_release,
    .rollback = sq_rollback,
    .migrate_begin = sq_migrate_begin,
    .for_update = "",
};

int mgo_db_sqlite_open(const char *path, struct mgo_db **out)
{
    *out = NULL;
    struct sqlite_db *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -1;
    d->base.ops = &SQLITE_OPS;
    *out = &d->base;
    if (sqlite3_open_v2(path, &d->h,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        return -1;
    sqlite3_busy_timeout(d->h, 5000);
    /* FULL: a committed manifestVersion must survive power loss, or a restarted manager
     * could hand out a version an agent has already seen. */
    /* cache_size: 16 MiB of page cache instead of SQLite's 2 MiB, which a fleet's status
     * tables outgrow: at 2 MiB every ingested status re-read 2.5 pages from the file (strace,
     * bench/fleet backlog ingest). The cache fills only as pages are used. */
    return sq_exec(&d->base,
                   "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
                   "PRAGMA cache_size=-16384",
                   false);
}
