/* db.h - the SQL driver interface under the manager's store (store.c only).
 *
 * One connection (struct mgo_db) and its prepared statements (struct mgo_db_stmt), behind a
 * table of operations a driver fills: db_sqlite.c (the embedded default) and db_pg.c
 * (PostgreSQL, libpq). store.c writes its SQL once, in the dialect both accept; a driver may
 * rewrite it at prepare time (placeholders, DDL types), never per step.
 *
 * Threads: a connection and its statements belong to one thread at a time.
 * Memory: text, blobs and messages returned by a driver stay valid until the next step,
 * reset or finish of the same statement (columns) or the next call on the connection
 * (messages). Bound text and blobs are copied by the bind call. */
#ifndef MGO_MANAGER_DB_H
#define MGO_MANAGER_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mgo_db_step {
    MGO_DB_ROW,  /* a row is ready for the column calls */
    MGO_DB_DONE, /* no (more) rows: the statement ran to its end */
    MGO_DB_ERROR /* see mgo_db_errmsg / mgo_db_errkind */
};

/* The class of the connection's last error. */
enum mgo_db_errkind {
    MGO_DB_E_OTHER,
    MGO_DB_E_CONSTRAINT, /* a unique, primary key, not-null or check constraint */
    MGO_DB_E_NOMEM,
};

struct mgo_db;
struct mgo_db_stmt;

struct mgo_db_ops {
    const char *name; /* "sqlite" or "postgresql" */
    void (*close)(struct mgo_db *db);
    /* runs sql, which may hold several statements; ddl: a migration (the driver may
     * translate column types); returns 0 or -1 (see errmsg) */
    int (*exec)(struct mgo_db *db, const char *sql, bool ddl);
    int (*prepare)(struct mgo_db *db, const char *sql, struct mgo_db_stmt **out);
    void (*bind_int64)(struct mgo_db_stmt *st, int i, int64_t v);
    void (*bind_text)(struct mgo_db_stmt *st, int i, const char *text); /* NULL: null */
    void (*bind_blob)(struct mgo_db_stmt *st, int i, const void *data, size_t len);
    void (*bind_null)(struct mgo_db_stmt *st, int i);
    enum mgo_db_step (*step)(struct mgo_db_stmt *st);
    int64_t (*col_int64)(struct mgo_db_stmt *st, int i);    /* null: 0 */
    const char *(*col_text)(struct mgo_db_stmt *st, int i); /* null: NULL */
    const void *(*col_blob)(struct mgo_db_stmt *st, int i);
    size_t (*col_bytes)(struct mgo_db_stmt *st, int i);
    bool (*col_is_null)(struct mgo_db_stmt *st, int i);
    /* back to before the first step, bindings cleared (the statement is kept) */
    void (*reset)(struct mgo_db_stmt *st);
    void (*finish)(struct mgo_db_stmt *st); /* frees the statement */
    int64_t (*changes)(struct mgo_db *db);  /* rows changed by the last statement */
    const char *(*errmsg)(struct mgo_db *db);
    int (*errcode)(struct mgo_db *db); /* the driver's own code, for logs */
    enum mgo_db_errkind (*errkind)(struct mgo_db *db);
    /* transactions: savepoint(depth) opens level depth + 1 (depth 0: the outermost),
     * release(depth) commits level depth (1: the outermost), rollback(depth) undoes level
     * depth and closes it; the connection stays usable after a rollback */
    int (*savepoint)(struct mgo_db *db, unsigned depth);
    int (*release)(struct mgo_db *db, unsigned depth);
    int (*rollback)(struct mgo_db *db, unsigned depth);
    /* opens the transaction of a migration step, held by one connection of all that share
     * the database until COMMIT or ROLLBACK (exec) */
    int (*migrate_begin)(struct mgo_db *db);
    /* appended to a SELECT that reads a row the transaction will then write: " FOR UPDATE"
     * where several writers share the database without a database-wide write lock, "" in
     * SQLite (a write transaction holds the whole file) */
    const char *for_update;
};

/* Every driver's connection and statement starts with these. */
struct mgo_db {
    const struct mgo_db_ops *ops;
};

struct mgo_db_stmt {
    const struct mgo_db_ops *ops;
};

/* Opens the SQLite file at path (created if absent). On failure *out is still set when a
 * message is available (read it with mgo_db_errmsg, then mgo_db_close), else NULL.
 * Returns 0 or -1. */
int mgo_db_sqlite_open(const char *path, struct mgo_db **out);

/* Connects to PostgreSQL at url (postgresql://...), same contract as mgo_db_sqlite_open. */
int mgo_db_pg_open(const char *url, struct mgo_db **out);

static inline void mgo_db_close(struct mgo_db *db)
{
    if (db)
        db->ops->close(db);
}

static inline int mgo_db_exec(struct mgo_db *db, const char *sql, bool ddl)
{
    return db->ops->exec(db, sql, ddl);
}

static inline int mgo_db_prepare(struct mgo_db *db, const char *sql, struct mgo_db_stmt **out)
{
    return db->ops->prepare(db, sql, out);
}

static inline void mgo_db_bind_int64(struct mgo_db_stmt *st, int i, int64_t v)
{
    st->ops->bind_int64(st, i, v);
}

static inline void mgo_db_bind_text(struct mgo_db_stmt *st, int i, const char *text)
{
    st->ops->bind_text(st, i, text);
}

static inline void mgo_db_bind_blob(struct mgo_db_stmt *st, int i, const void *data, size_t len)
{
    st->ops->bind_blob(st, i, data, len);
}

static inline void mgo_db_bind_null(struct mgo_db_stmt *st, int i)
{
    st->ops->bind_null(st, i);
}

static inline enum mgo_db_step mgo_db_step(struct mgo_db_stmt *st)
{
    return st->ops->step(st);
}

static inline int64_t mgo_db_col_int64(struct mgo_db_stmt *st, int i)
{
    return st->ops->col_int64(st, i);
}

static inline const char *mgo_db_col_text(struct mgo_db_stmt *st, int i)
{
    return st->ops->col_text(st, i);
}

static inline const void *mgo_db_col_blob(struct mgo_db_stmt *st, int i)
{
    return st->ops->col_blob(st, i);
}

static inline size_t mgo_db_col_bytes(struct mgo_db_stmt *st, int i)
{
    return st->ops->col_bytes(st, i);
}

static inline bool mgo_db_col_is_null(struct mgo_db_stmt *st, int i)
{
    return st->ops->col_is_null(st, i);
}

static inline void mgo_db_reset(struct mgo_db_stmt *st)
{
    st->ops->reset(st);
}

static inline void mgo_db_finish(struct mgo_db_stmt *st)
{
    if (st)
        st->ops->finish(st);
}

static inline int64_t mgo_db_changes(struct mgo_db *db)
{
    return db->ops->changes(db);
}

static inline const char *mgo_db_errmsg(struct mgo_db *db)
{
    return db->ops->errmsg(db);
}

static inline int mgo_db_errcode(struct mgo_db *db)
{
    return db->ops->errcode(db);
}

static inline enum mgo_db_errkind mgo_db_errkind(struct mgo_db *db)
{
    return db->ops->errkind(db);
}

static inline int mgo_db_migrate_begin(struct mgo_db *db)
{
    return db->ops->migrate_begin(db);
}

static inline const char *mgo_db_for_update(const struct mgo_db *db)
{
    return db->ops->for_update;
}

#endif
