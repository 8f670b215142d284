/* store.c - the manager's store (see mgo/mgr_store.h): SQL written once, run by a driver
 * (db.h: SQLite by default). */
#include "mgo/mgr_store.h"

#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mgo/buf.h"
#include "mgo/log.h"
#include "mgo/margo.h"
#include "mgo/metrics.h"

#include "db.h"

#define TAG "store"

/* Prepared statements kept for reuse, keyed by their SQL text (see prep()). */
#define STMT_CACHE_SIZE 64

struct stmt_slot {
    char *sql; /* owned copy; NULL = free slot */
    uint64_t hash;
    struct mgo_db_stmt *st;
    bool in_use; /* handed out by prep() and not yet given back by stmt_done() */
};

struct mgo_mgr_store {
    struct mgo_db *db;
    bool pg;        /* PostgreSQL (db_pg.c) */
    bool lock_rows; /* the driver's FOR UPDATE (db.h): several writers share the database */
    int schema_version;
    unsigned depth; /* open savepoints */
    /* an ingest batch (mgo_mgr_store_begin_batch) is open, and it has asked for a row lock:
     * further row locks are not waited for (FOR UPDATE NOWAIT) */
    bool batch, batch_locked;
    /* the device ensure_device last added or found, in transaction generation ensured_gen;
     * tx_gen grows with every rollback and outermost commit */
    char ensured[MGO_MAX_DEVICE_ID_LEN + 1];
    uint64_t ensured_gen, tx_gen;
    unsigned fail_commits;  /* test hook: outermost commits still to fail */
    uint32_t history_limit; /* per deployment; 0 = keep all */
    uint32_t event_limit;   /* events kept per device; 0 = keep all */
    uint32_t ahead_limit;   /* positions waiting beyond a gap per device */
    uint32_t sample_limit;  /* fleet samples kept (schema 6) */
    size_t roles_len;       /* identities that are never devices (protocol.md §2.3) */
    char roles[MGO_MGR_MAX_ROLES][MGO_MAX_DEVICE_ID_LEN + 1];
    char epoch[MGO_MGR_EPOCH_SIZE]; /* receipts' epoch for devices added in this run */
    struct stmt_slot cache[STMT_CACHE_SIZE];
    struct mgo_histogram *write_hist;  /* statements without rows (metrics); NULL: none */
    struct mgo_histogram *commit_hist; /* outermost commits (metrics); NULL: none */
};

/* ---- migrations -------------------------------------------------------------------- */

static const char *const MIGRATIONS[] = {
    /* 1 */
    "CREATE TABLE apps ("
    "  id TEXT NOT NULL, version TEXT NOT NULL, name TEXT NOT NULL,"
    "  source BLOB NOT NULL, doc BLOB NOT NULL, added_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (id, version));"
    "CREATE TABLE devices ("
    "  id TEXT PRIMARY KEY, capabilities BLOB, has_presence INTEGER NOT NULL DEFAULT 0,"
    "  online INTEGER NOT NULL DEFAULT 0, boot INTEGER NOT NULL DEFAULT 0,"
    "  last_seen_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE deployments ("
    "  id TEXT PRIMARY KEY, device_id TEXT NOT NULL, app_id TEXT NOT NULL,"
    "  app_version TEXT NOT NULL, profile_type TEXT NOT NULL, parameters TEXT NOT NULL,"
    "  doc BLOB NOT NULL, digest TEXT NOT NULL, desired INTEGER NOT NULL,"
    "  manifest_version INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    "CREATE INDEX deployments_device ON deployments(device_id);"
    "CREATE TABLE manifests ("
    "  device_id TEXT PRIMARY KEY, version INTEGER NOT NULL, published INTEGER NOT NULL);"
    "CREATE TABLE status ("
    "  deployment_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, state TEXT NOT NULL,"
    "  has_journal INTEGER NOT NULL, boot INTEGER NOT NULL, seq INTEGER NOT NULL,"
    "  doc TEXT NOT NULL, received_ms INTEGER NOT NULL);"
    "CREATE TABLE status_history ("
    "  n INTEGER PRIMARY KEY AUTOINCREMENT, deployment_id TEXT NOT NULL,"
    "  device_id TEXT NOT NULL, state TEXT NOT NULL, has_journal INTEGER NOT NULL,"
    "  boot INTEGER NOT NULL, seq INTEGER NOT NULL, doc TEXT NOT NULL,"
    "  received_ms INTEGER NOT NULL);",
    /* 2 */
    "ALTER TABLE devices ADD COLUMN has_journal INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN status_boot INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN status_seq INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX status_history_deployment ON status_history(deployment_id, n);"
    "CREATE TABLE device_events ("
    "  n INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, type TEXT NOT NULL,"
    "  severity TEXT NOT NULL, message TEXT NOT NULL, received_ms INTEGER NOT NULL);",
    /* 3: the per-device copy of the newest journal position was written with every status
     * (a devices page dirtied per message) and never read; the check is per deployment */
    "ALTER TABLE devices DROP COLUMN has_journal;"
    "ALTER TABLE devices DROP COLUMN status_boot;"
    "ALTER TABLE devices DROP COLUMN status_seq;",
    /* 4: the end-to-end status guarantee (protocol.md §6.3): per device, the journal position
     * up to which every status was handled (rcpt_*), the highest handled (top_*), the epoch
     * of its receipts, and the handled positions beyond rcpt (a gap waiting for replays) */
    "ALTER TABLE devices ADD COLUMN rcpt_boot INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN rcpt_seq INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN top_boot INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN top_seq INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN rcpt_epoch TEXT NOT NULL DEFAULT '';"
    "CREATE TABLE device_positions (device_id TEXT NOT NULL, boot INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL, PRIMARY KEY (device_id, boot, seq)) WITHOUT ROWID;"
    "UPDATE devices SET (rcpt_boot, rcpt_seq) = (SELECT boot, seq FROM status WHERE"
    "  status.device_id = devices.id AND has_journal = 1 ORDER BY boot DESC, seq DESC LIMIT 1)"
    "  WHERE EXISTS (SELECT 1 FROM status WHERE status.device_id = devices.id AND"
    "  has_journal = 1);"
    "UPDATE devices SET top_boot = rcpt_boot, top_seq = rcpt_seq;",
    /* 5: bounds on what one device can make the store keep (docs/security.md): per device,
     * the events stored so far (pruning), the rate windows of events and statuses and their
     * excess, the positions waiting beyond a gap and those not kept past its bound */
    "ALTER TABLE devices ADD COLUMN events_n INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN ev_win_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN ev_win_n INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN ev_over INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN st_win_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN st_win_n INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN st_over INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN ahead_n INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN ahead_over INTEGER NOT NULL DEFAULT 0;"
    "UPDATE devices SET ahead_n = (SELECT COUNT(*) FROM device_positions WHERE"
    "  device_positions.device_id = devices.id);"
    "CREATE INDEX device_events_device ON device_events(device_id, n);",
    /* 6: the fleet overview (GET /overview, docs/web.md): devices online and offline sampled
     * by the loop (a bounded series, pruned on insert), and the failed reports of the status
     * history by time (a partial index: the newest failures without a walk of the history) */
    "CREATE TABLE fleet_samples (n INTEGER PRIMARY KEY AUTOINCREMENT, t_ms INTEGER NOT NULL,"
    "  online INTEGER NOT NULL, offline INTEGER NOT NULL);"
    "CREATE INDEX fleet_samples_time ON fleet_samples(t_ms);"
    "CREATE INDEX status_history_failed ON status_history(received_ms) WHERE state = 'failed';",
    /* 7: the southbound Margo HTTP API (docs/margo-http.md): each device's binding ('mqtt'
     * or 'http'), and the accepted-client list (clients whose X.509-SVID is honoured) */
    ("ALTER TABLE devices ADD COLUMN binding TEXT NOT NULL DEFAULT 'mqtt';"
     "CREATE TABLE margo_clients (id TEXT PRIMARY KEY, added_ms INTEGER NOT NULL);"),
    /* 8: fleet rollouts (docs/rollouts.md): operator labels, rollouts and their targets */
    "CREATE TABLE device_labels (device_id TEXT NOT NULL, key TEXT NOT NULL,"
    "  value TEXT NOT NULL, PRIMARY KEY (device_id, key)) WITHOUT ROWID;"
    "CREATE TABLE rollouts ("
    "  id TEXT PRIMARY KEY, n INTEGER NOT NULL UNIQUE, app_id TEXT NOT NULL,"
    "  version TEXT NOT NULL, parameters TEXT, mode TEXT NOT NULL, selector TEXT NOT NULL,"
    "  on_abort TEXT NOT NULL, offline_count TEXT NOT NULL, batch_size INTEGER NOT NULL,"
    "  batch_percent INTEGER NOT NULL, canary_size INTEGER NOT NULL,"
    "  max_in_flight INTEGER NOT NULL, gate_timeout_s INTEGER NOT NULL,"
    "  soak_s INTEGER NOT NULL, offline_grace_s INTEGER NOT NULL,"
    "  fail_batch_count INTEGER NOT NULL, fail_batch_percent INTEGER NOT NULL,"
    "  fail_total_count INTEGER NOT NULL, fail_total_percent INTEGER NOT NULL,"
    "  app_failures_only INTEGER NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,"
    "  batches INTEGER NOT NULL, batch INTEGER NOT NULL, batch_started_ms INTEGER NOT NULL,"
    "  batch_done_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL, finished_ms INTEGER NOT NULL);"
    "CREATE TABLE rollout_targets ("
    "  rollout_id TEXT NOT NULL, device_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    "  batch INTEGER NOT NULL, state TEXT NOT NULL, deployment_id TEXT NOT NULL,"
    "  prev_version TEXT NOT NULL, prev_parameters TEXT, manifest_version INTEGER NOT NULL,"
    "  started_ms INTEGER NOT NULL, done_ms INTEGER NOT NULL, code TEXT NOT NULL,"
    "  class TEXT NOT NULL, message TEXT NOT NULL, PRIMARY KEY (rollout_id, device_id));"
    "CREATE INDEX rollout_targets_batch ON rollout_targets(rollout_id, batch, seq);"
    "CREATE INDEX rollout_targets_device ON rollout_targets(device_id);",
    /* 9: several managers on one database (docs/scaling.md): leases (the publisher's, and
     * one per running manager), and the manifests not yet acknowledged by the broker, found
     * without a walk of the table (the lease holder polls them) */
    "CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, term INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL);"
    "CREATE INDEX manifests_unpublished ON manifests(device_id) WHERE published < version;",
};
_Static_assert(sizeof(MIGRATIONS) / sizeof(MIGRATIONS[0]) == MGO_MGR_STORE_SCHEMA_VERSION,
               "one migration per schema version");

int64_t mgo_mgr_store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static mgo_err sql_err(struct mgo_mgr_store *s, const char *what)
{
    enum mgo_db_errkind kind = mgo_db_errkind(s->db);
    if (kind == MGO_DB_E_CONSTRAINT) {
        MGO_LOGD(TAG, "%s: %s", what, mgo_db_errmsg(s->db));
        return MGO_ERR_EXISTS;
    }
    if (kind ==
        MGO_DB_E_BUSY) { /* a batch's row lock held by another (mgo_mgr_store_begin_batch) */
        MGO_LOGD(TAG, "%s: %s", what, mgo_db_errmsg(s->db));
        return MGO_ERR_BUSY;
    }
    MGO_LOGE(TAG, "%s: %s (%s %d)", what, mgo_db_errmsg(s->db), s->db->ops->name,
             mgo_db_errcode(s->db));
    if (kind == MGO_DB_E_NOMEM)
        return MGO_ERR_NOMEM;
    return MGO_ERR_IO;
}

static mgo_err exec(struct mgo_mgr_store *s, const char *sql)
{
    if (mgo_db_exec(s->db, sql, false) != 0) {
        MGO_LOGE(TAG, "exec failed: %s", mgo_db_errmsg(s->db));
        return MGO_ERR_IO;
    }
    return MGO_OK;
}

static uint64_t sql_hash(const char *sql)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

/* Hands out a prepared statement for sql; give it back with stmt_done(). Statements are
 * cached by their text and reset on return: compiling the SQL on every call was a third of
 * the manager's CPU during a deploy to 10,000 devices and ~5 % of status ingest (perf,
 * bench/fleet). A statement already handed out (a visitor calling back into the store) is
 * compiled afresh and finalized on return. */
static mgo_err prep(struct mgo_mgr_store *s, const char *sql, struct mgo_db_stmt **st)
{
    uint64_t h = sql_hash(sql);
    struct stmt_slot *free_slot = NULL;
    for (size_t i = 0; i < STMT_CACHE_SIZE; i++) {
        struct stmt_slot *c = &s->cache[i];
        if (c->sql == NULL) {
            if (free_slot == NULL)
                free_slot = c;
            continue;
        }
        if (c->hash == h && !c->in_use && strcmp(c->sql, sql) == 0) {
            c->in_use = true;
            *st = c->st;
            return MGO_OK;
        }
    }
    if (mgo_db_prepare(s->db, sql, st) != 0)
        return sql_err(s, "prepare");
    if (free_slot != NULL && (free_slot->sql = strdup(sql)) != NULL) {
        free_slot->hash = h;
        free_slot->st = *st;
        free_slot->in_use = true;
    }
    return MGO_OK;
}

/* Gives a statement from prep() back: cached ones are reset for the next use, others are
 * finalized. */
static void stmt_done(struct mgo_mgr_store *s, struct mgo_db_stmt *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < STMT_CACHE_SIZE; i++) {
        if (s->cache[i].sql != NULL && s->cache[i].st == st) {
            mgo_db_reset(st);
            s->cache[i].in_use = false;
            return;
        }
    }
    mgo_db_finish(st);
}

static void stmt_cache_clear(struct mgo_mgr_store *s)
{
    for (size_t i = 0; i < STMT_CACHE_SIZE; i++) {
        if (s->cache[i].sql == NULL)
            continue;
        mgo_db_finish(s->cache[i].st);
        free(s->cache[i].sql);
        memset(&s->cache[i], 0, sizeof s->cache[i]);
    }
}

static void bind_text(struct mgo_db_stmt *st, int i, const char *text)
{
    mgo_db_bind_text(st, i, text); /* NULL: null */
}

static void bind_blob(struct mgo_db_stmt *st, int i, const void *data, size_t len)
{
    mgo_db_bind_blob(st, i, data, len); /* NULL: null */
}

static void bind_u64(struct mgo_db_stmt *st, int i, uint64_t v)
{
    /* stored as the same 64 bits; read back with col_u64 */
    mgo_db_bind_int64(st, i, (int64_t)v);
}

static const char *col_text(struct mgo_db_stmt *st, int i)
{
    return mgo_db_col_text(st, i);
}

static uint64_t col_u64(struct mgo_db_stmt *st, int i)
{
    return (uint64_t)mgo_db_col_int64(st, i);
}

/* A SELECT of a row the transaction then writes: with the driver's FOR UPDATE where several
 * managers may share the database (PostgreSQL, READ COMMITTED: the row stays locked until the
 * transaction ends, so two read-modify-writes of one device run one after the other); as is
 * in SQLite, whose write transaction holds the whole file. Two static texts: no formatting
 * per call, and the statement cache keys them apart. */
#define LOCKED(sql)                                                                                \
    locked(s, (const char *const[3]){sql, sql " FOR UPDATE", sql " FOR UPDATE NOWAIT"})

/* LOCKED's choice: as is; FOR UPDATE; or, in an ingest batch that already asked for a row
 * lock, FOR UPDATE NOWAIT (mgo_mgr_store_begin_batch): a batch waits for a lock only while it
 * holds none, so two managers' batches can never wait for each other (no deadlock). */
static const char *locked(struct mgo_mgr_store *s, const char *const texts[3])
{
    if (!s->lock_rows)
        return texts[0];
    const char *sql = texts[s->batch && s->batch_locked ? 2 : 1];
    s->batch_locked = s->batch;
    return sql;
}

/* Steps a statement: MGO_DB_ROW, MGO_DB_DONE or MGO_DB_ERROR (then see sql_err). */
static enum mgo_db_step step(struct mgo_mgr_store *s, struct mgo_db_stmt *st)
{
    (void)s;
    return mgo_db_step(st);
}

/* Steps a statement that returns no rows; finalizes it. */
static mgo_err run(struct mgo_mgr_store *s, struct mgo_db_stmt *st, const char *what)
{
    uint64_t t0 = s->write_hist ? mgo_metrics_now_ns() : 0;
    enum mgo_db_step rc = step(s, st);
    if (s->write_hist)
        mgo_histogram_observe_ns(s->write_hist, mgo_metrics_now_ns() - t0);
    mgo_err err = MGO_OK;
    if (rc == MGO_DB_ERROR)
        err = sql_err(s, what);
    stmt_done(s, st);
    return err;
}

/* run() for a write whose RETURNING gives one integer (*out; NULL: not read). */
static mgo_err run_returning(struct mgo_mgr_store *s, struct mgo_db_stmt *st, const char *what,
                             int64_t *out)
{
    uint64_t t0 = s->write_hist ? mgo_metrics_now_ns() : 0;
    enum mgo_db_step rc = step(s, st);
    if (s->write_hist)
        mgo_histogram_observe_ns(s->write_hist, mgo_metrics_now_ns() - t0);
    mgo_err err = MGO_OK;
    if (rc == MGO_DB_ERROR)
        err = sql_err(s, what);
    else if (out != NULL && rc == MGO_DB_ROW)
        *out = mgo_db_col_int64(st, 0);
    stmt_done(s, st);
    return err;
}

static mgo_err read_version(struct mgo_mgr_store *s, int *out)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s, "SELECT version FROM schema_version", &st);
    if (err)
        return err;
    int rc = step(s, st);
    if (rc == MGO_DB_ROW)
        *out = (int)mgo_db_col_int64(st, 0);
    else if (rc == MGO_DB_DONE)
        *out = 0;
    else
        err = sql_err(s, "read schema version");
    stmt_done(s, st);
    return err;
}

static mgo_err exec_ddl(struct mgo_mgr_store *s, const char *sql)
{
    if (mgo_db_exec(s->db, sql, true) != 0) {
        MGO_LOGE(TAG, "exec failed: %s", mgo_db_errmsg(s->db));
        return MGO_ERR_IO;
    }
    return MGO_OK;
}

/* Each step runs in a transaction that excludes other migrators (SQLite: BEGIN IMMEDIATE;
 * PostgreSQL: an advisory lock) and reads the version inside it: of two managers starting
 * together on one database, one migrates and the other finds it done. */
static mgo_err migrate(struct mgo_mgr_store *s, int max_version)
{
    for (;;) {
        if (mgo_db_migrate_begin(s->db) != 0) {
            MGO_LOGE(TAG, "migration: %s", mgo_db_errmsg(s->db));
            return MGO_ERR_IO;
        }
        int version = 0;
        mgo_err err =
            exec_ddl(s, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
        if (!err)
            err = read_version(s, &version);
        if (!err && version > MGO_MGR_STORE_SCHEMA_VERSION) {
            MGO_LOGE(TAG, "database schema %d is newer than this program's %d; refusing to open",
                     version, MGO_MGR_STORE_SCHEMA_VERSION);
            (void)exec(s, "ROLLBACK");
            return MGO_ERR_INVALID;
        }
        if (!err && version >= max_version) {
            err = exec(s, "COMMIT");
            if (!err)
                s->schema_version = version;
            return err;
        }
        int next = version + 1;
        if (!err)
            err = exec_ddl(s, MIGRATIONS[next - 1]);
        if (!err) {
            char sql[96];
            snprintf(sql, sizeof(sql),
                     "DELETE FROM schema_version; "
                     "INSERT INTO schema_version VALUES (%d)",
                     next);
            err = exec(s, sql);
        }
        if (err) {
            (void)exec(s, "ROLLBACK");
            MGO_LOGE(TAG, "migration to schema %d failed", next);
            return err;
        }
        err = exec(s, "COMMIT");
        if (err)
            return err;
        MGO_LOGI(TAG, "migrated store to schema %d", next);
    }
}

bool mgo_mgr_store_is_url(const char *location)
{
    return strncmp(location, "postgresql://", 13) == 0 || strncmp(location, "postgres://", 11) == 0;
}

const char *mgo_mgr_store_driver(const struct mgo_mgr_store *s)
{
    return s->db->ops->name;
}

mgo_err mgo_mgr_store_open_version(const char *location, int max_version,
                                   struct mgo_mgr_store **out)
{
    if (max_version < 1 || max_version > MGO_MGR_STORE_SCHEMA_VERSION)
        return MGO_ERR_INVALID;
    bool pg = mgo_mgr_store_is_url(location);
    char path[4096];
    int n = pg ? snprintf(path, sizeof(path), "PostgreSQL store")
               : snprintf(path, sizeof(path), "%s/%s", location, MGO_MGR_STORE_FILE);
    if (n < 0 || (size_t)n >= sizeof(path))
        return MGO_ERR_LIMIT;
    struct mgo_mgr_store *s = calloc(1, sizeof(*s));
    if (!s)
        return MGO_ERR_NOMEM;
    s->tx_gen = 1; /* ensure_device remembers nothing yet (ensured_gen 0) */
    s->ahead_limit = MGO_MGR_AHEAD_LIMIT;
    s->sample_limit = MGO_MGR_SAMPLES_DEFAULT;
    mgo_err err = MGO_OK;
    if ((pg ? mgo_db_pg_open(location, &s->db) : mgo_db_sqlite_open(path, &s->db)) != 0) {
        MGO_LOGE(TAG, "cannot open %s: %s", path, s->db ? mgo_db_errmsg(s->db) : "no memory");
        err = MGO_ERR_IO;
        goto fail_close;
    }
    s->pg = pg;
    s->lock_rows = mgo_db_for_update(s->db)[0] != '\0';
    err = migrate(s, max_version);
    if (err) {
        /* never repaired or recreated here: a corrupt or locked file stays as it is, for the
         * operator to restore from a backup or to free */
        if (pg) /* each migration step is one transaction, rolled back when it fails */
            MGO_LOGE(TAG, "PostgreSQL store: %s; the failed step was rolled back",
                     mgo_db_errmsg(s->db));
        else
            MGO_LOGE(TAG,
                     "%s: %s; the file was not changed (if it is corrupt, restore it from a "
                     "backup; if another process holds it, stop that process)",
                     path, mgo_db_errmsg(s->db));
        goto fail_close;
    }
    *out = s;
    return MGO_OK;
fail_close:
    stmt_cache_clear(s);
    mgo_db_close(s->db);
    free(s);
    return err;
}

mgo_err mgo_mgr_store_open(const char *location, struct mgo_mgr_store **out)
{
    return mgo_mgr_store_open_version(location, MGO_MGR_STORE_SCHEMA_VERSION, out);
}

void mgo_mgr_store_close(struct mgo_mgr_store *s)
{
    if (!s)
        return;
    while (s->depth > 0)
        mgo_mgr_store_rollback(s);
    stmt_cache_clear(s);
    mgo_db_close(s->db);
    free(s);
}

int mgo_mgr_store_schema_version(const struct mgo_mgr_store *s)
{
    return s->schema_version;
}

/* A transaction control statement of the driver (db.h), observed like run()'s. */
static mgo_err tx_run(struct mgo_mgr_store *s, int (*op)(struct mgo_db *, unsigned),
                      const char *what)
{
    uint64_t t0 = s->write_hist ? mgo_metrics_now_ns() : 0;
    int rc = op(s->db, s->depth);
    if (s->write_hist)
        mgo_histogram_observe_ns(s->write_hist, mgo_metrics_now_ns() - t0);
    return rc == 0 ? MGO_OK : sql_err(s, what);
}

mgo_err mgo_mgr_store_begin(struct mgo_mgr_store *s)
{
    mgo_err err = tx_run(s, s->db->ops->savepoint, "begin");
    if (!err)
        s->depth++;
    return err;
}

mgo_err mgo_mgr_store_begin_batch(struct mgo_mgr_store *s)
{
    if (s->depth != 0)
        return MGO_ERR_INTERNAL;
    mgo_err err = mgo_mgr_store_begin(s);
    if (!err)
        s->batch = true;
    return err;
}

mgo_err mgo_mgr_store_commit(struct mgo_mgr_store *s)
{
    if (s->depth == 0)
        return MGO_ERR_INTERNAL;
    mgo_err err = MGO_OK;
    if (s->depth == 1 && s->fail_commits > 0) {
        s->fail_commits--;
        err = MGO_ERR_IO;
    }
    uint64_t t0 = mgo_metrics_now_ns();
    if (!err)
        err = tx_run(s, s->db->ops->release, "commit");
    if (!err && s->depth == 1 && s->commit_hist)
        mgo_histogram_observe_ns(s->commit_hist, mgo_metrics_now_ns() - t0);
    if (err) {
        mgo_mgr_store_rollback(s);
        return err;
    }
    s->depth--;
    if (s->depth == 0) {
        s->tx_gen++; /* ensure_device's memory lasts one transaction */
        s->batch = s->batch_locked = false;
    }
    return MGO_OK;
}

void mgo_mgr_store_fail_commits(struct mgo_mgr_store *s, unsigned n)
{
    s->fail_commits = n;
}

void mgo_mgr_store_rollback(struct mgo_mgr_store *s)
{
    if (s->depth == 0)
        return;
    if (s->db->ops->rollback(s->db, s->depth) != 0)
        MGO_LOGE(TAG, "rollback: %s", mgo_db_errmsg(s->db));
    s->depth--;
    s->tx_gen++; /* what ensure_device added may be undone */
    if (s->depth == 0)
        s->batch = s->batch_locked = false;
}

/* ---- catalog ------------------------------------------------------------------------ */

mgo_err mgo_mgr_store_app_put(struct mgo_mgr_store *s, const struct mgo_mgr_app_row *row)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       "INSERT INTO apps (id, version, name, source, doc, added_ms) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       &st);
    if (err)
        return err;
    bind_text(st, 1, row->id);
    bind_text(st, 2, row->version);
    bind_text(st, 3, row->name ? row->name : row->id);
    bind_blob(st, 4, row->source ? (const void *)row->source : "", row->source_len);
    bind_blob(st, 5, row->doc ? (const void *)row->doc : "", row->doc_len);
    mgo_db_bind_int64(st, 6, row->added_ms ? row->added_ms : mgo_mgr_store_now_ms());
    return run(s, st, "add app");
}

static mgo_err visit_apps(struct mgo_mgr_store *s, struct mgo_db_stmt *st, mgo_mgr_app_visit visit,
                          void *ctx, bool *found)
{
    int rc;
    *found = false;
    while ((rc = step(s, st)) == MGO_DB_ROW) {
        struct mgo_mgr_app_row row = {
            .id = col_text(st, 0),
            .version = col_text(st, 1),
            .name = col_text(st, 2),
            .source = mgo_db_col_blob(st, 3),
            .source_len = mgo_db_col_bytes(st, 3),
            .doc = mgo_db_col_blob(st, 4),
            .doc_len = mgo_db_col_bytes(st, 4),
            .added_ms = mgo_db_col_int64(st, 5),
        };
        *found = true;
        mgo_err verr = visit ? visit(&row, ctx) : MGO_OK;
        if (verr) {
            stmt_done(s, st);
            return verr; /* the visitor's failure ends the walk */
        }
    }
    mgo_err err = rc == MGO_DB_DONE ? MGO_OK : sql_err(s, "read apps");
    stmt_done(s, st);
    return err;
}

#define APP_COLS "SELECT id, version, name, source, doc, added_ms FROM apps "

mgo_err mgo_mgr_store_app_get(struct mgo_mgr_store *s, const char *id, const char *version,
                              mgo_mgr_app_visit visit, void *ctx)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       version ? APP_COLS "WHERE id = ? AND version = ?"
                               : APP_COLS "WHERE id = ? ORDER BY rowid DESC LIMIT 1",
                       &st);
    if (err)
        return err;
    bind_text(st, 1, id);
    if (version)
        bind_text(st, 2, version);
    bool found;
    err = visit_apps(s, st, visit, ctx, &found);
    if (!err && !found)
        err = MGO_ERR_NOT_FOUND;
    return err;
}

mgo_err mgo_mgr_store_app_list(struct mgo_mgr_store *s, const char *id, mgo_mgr_app_visit visit,
                               void *ctx)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err =
        prep(s, id ? APP_COLS "WHERE id = ? ORDER BY rowid" : APP_COLS "ORDER BY id, rowid", &st);
    if (err)
        return err;
    if (id)
        bind_text(st, 1, id);
    bool found;
    return visit_apps(s, st, visit, ctx, &found);
}

static mgo_err count_rows(struct mgo_mgr_store *s, struct mgo_db_stmt *st, uint64_t *out)
{
    int rc = step(s, st);
    mgo_err err = MGO_OK;
    if (rc == MGO_DB_ROW)
        *out = col_u64(st, 0);
    else
        err = sql_err(s, "count");
    stmt_done(s, st);
    return err;
}

mgo_err mgo_mgr_store_app_delete(struct mgo_mgr_store *s, const char *id, const char *version)
{
    struct mgo_db_stmt *st = NULL;
    uint64_t in_use = 0;
    mgo_err err = prep(s,
                       "SELECT COUNT(*) FROM deployments WHERE app_id = ?1 AND desired != 2 "
                       "AND (?2 IS NULL OR app_version = ?2)",
                       &st);
    if (err)
        return err;
    bind_text(st, 1, id);
    bind_text(st, 2, version);
    err = count_rows(s, st, &in_use);
    if (err)
        return err;
    if (in_use > 0)
        return MGO_ERR_CONFLICT;
    err = prep(s, "DELETE FROM apps WHERE id = ?1 AND (?2 IS NULL OR version = ?2)", &st);
    if (err)
        return err;
    bind_text(st, 1, id);
    bind_text(st, 2, version);
    err = run(s, st, "delete app");
    if (err)
        return err;
    return mgo_db_changes(s->db) > 0 ? MGO_OK : MGO_ERR_NOT_FOUND;
}

/* ---- role identities ------------------------------------------------------------------ */

mgo_err mgo_mgr_store_add_role(struct mgo_mgr_store *s, const char *name)
{
    if (name == NULL || mgo_mgr_store_is_role(s, name))
        return MGO_OK;
    size_t n = strlen(name);
    if (n == 0 || n > MGO_MAX_DEVICE_ID_LEN ||
        strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "abcdefghijklmnopqrstuvwxyz"
                     "0123456789._~-") != n)
        return MGO_ERR_INVALID;
    if (s->roles_len == MGO_MGR_MAX_ROLES)
        return MGO_ERR_LIMIT;
    memcpy(s->roles[s->roles_len++], name, n + 1);
    return MGO_OK;
}

bool mgo_mgr_store_is_role(const struct mgo_mgr_store *s, const char *id)
{
    if (strncasecmp(id, MGO_MGR_ROLE_PREFIX, sizeof MGO_MGR_ROLE_PREFIX - 1) == 0)
        return true;
    for (size_t i = 0; s != NULL && i < s->roles_len; i++) {
        if (strcmp(s->roles[i], id) == 0)
            return true;
    }
    return false;
}

/* The store's own refusal of a role as a device (callers refuse it first, with a message). */
static mgo_err refuse_role(const struct mgo_mgr_store *s, const char *id)
{
    if (!mgo_mgr_store_is_role(s, id))
        return MGO_OK;
    MGO_LOGW(TAG, "refusing %.128s as a device id: it is a role identity", id);
    return MGO_ERR_INVALID;
}

/* ---- devices ------------------------------------------------------------------------ */

static mgo_err insert_device(struct mgo_mgr_store *s, const char *id)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s, "INSERT INTO devices (id) VALUES (?) ON CONFLICT DO NOTHING", &st);
    if (err)
        return err;
    bind_text(st, 1, id);
    return run(s, st, "add device");
}

/* Locks the device's row (if it exists) until the transaction ends (FOR UPDATE; see
 * LOCKED); found_out (may be NULL) tells whether it exists. */
static mgo_err lock_device(struct mgo_mgr_store *s, const char *id, bool *found_out)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s, LOCKED("SELECT 1 FROM devices WHERE id = ?"), &st);
    if (err)
        return err;
    bind_text(st, 1, id);
    enum mgo_db_step rc = step(s, st);
    if (rc == MGO_DB_ERROR)
        err = sql_err(s, "lock device");
    if (found_out)
        *found_out = rc == MGO_DB_ROW;
    stmt_done(s, st);
    return err;
}

/* The device's row exists (and, with several writers, is locked) until the transaction
 * ends or something is rolled back: ensure_device needs no statement for it meanwhile. */
static void ensured_now(struct mgo_mgr_store *s, const char *id)
{
    size_t n = strlen(id);
    if (s->depth > 0 && n < sizeof s->ensured) {
        memcpy(s->ensured, id, n + 1);
        s->ensured_gen = s->tx_gen;
    }
}

static mgo_err ensure_device(struct mgo_mgr_store *s, const char *id)
{
    if (refuse_role(s, id) != MGO_OK)
        return MGO_ERR_INVALID;
    /* one ingested status asks three times for its device: inside one transaction, with
     * nothing rolled back since, the row is there (a round trip each on PostgreSQL) */
    if (s->depth > 0 && s->ensured_gen == s->tx_gen && strcmp(s->ensured, id) == 0)
        return MGO_OK;
    mgo_err err;
    if (s->lock_rows) {
        /* several managers: the row's lock before anything else of the device (LOCKED), and
         * no INSERT for a device that exists: its unique check would wait for another
         * transaction that changed the row, even inside an ingest batch (a deadlock) */
        bool found = false;
        err = lock_device(s, id, &found);
        if (!err && !found) {
            err = insert_device(s, id);
            if (!err)
                err = lock_device(s, id, &found);
        }
    } else {
        err = insert_device(s, id);
    }
    if (!err)
        ensured_now(s, id);
    return err;
}

mgo_err mgo_mgr_store_device_put_caps(struct mgo_mgr_store *s, const char *id, const uint8_t *caps,
                                      size_t caps_len)
{
    mgo_err err = mgo_mgr_store_begin(s);
    if (err)
        return err;
    err = ensure_device(s, id);
    if (err)
        goto rollback;
    struct mgo_db_stmt *st = NULL;
    err = prep(s, "UPDATE devices SET capabilities = ?, last_seen_ms = ? WHERE id = ?", &st);
    if (err)
        goto rollback;
    bind_blob(st, 1, caps, caps_len);
    mgo_db_bind_int64(st, 2, mgo_mgr_store_now_ms());
    bind_text(st, 3, id);
    err = run(s, st, "store capabilities");
    if (err)
        goto rollback;
    return mgo_mgr_store_commit(s);
rollback:
    mgo_mgr_store_rollback(s);
    return err;
}

mgo_err mgo_mgr_store_device_put_presence(struct mgo_mgr_store *s, const char *id, bool online,
                                          uint64_t boot)
{
    mgo_err err = mgo_mgr_store_begin(s);
    if (err)
        return err;
    err = ensure_device(s, id);
    if (err)
        goto rollback;
    struct mgo_db_stmt *st = NULL;
    err = prep(s,
               "UPDATE devices SET has_presence = 1, online = ?, boot = ?, last_seen_ms = ? "
               "WHERE id = ?",
               &st);
    if (err)
        goto rollback;
    mgo_db_bind_int64(st, 1, online ? 1 : 0);
    bind_u64(st, 2, boot);
    mgo_db_bind_int64(st, 3, mgo_mgr_store_now_ms());
    bind_text(st, 4, id);
    err = run(s, st, "store presence");
    if (err)
        goto rollback;
    return mgo_mgr_store_commit(s);
rollback:
    mgo_mgr_store_rollback(s);
    return err;
}

static mgo_err visit_devices(struct mgo_mgr_store *s, struct mgo_db_stmt *st,
                             mgo_mgr_device_visit visit, void *ctx, bool *found)
{
    int rc;
    *found = false;
    while ((rc = step(s, st)) == MGO_DB_ROW) {
        struct mgo_mgr_device_row row = {
            .id = col_text(st, 0),
            .caps = mgo_db_col_blob(st, 1),
            .caps_len = mgo_db_col_bytes(st, 1),
            .has_presence = (int)mgo_db_col_int64(st, 2) != 0,
            .online = (int)mgo_db_col_int64(st, 3) != 0,
            .boot = col_u64(st, 4),
            .last_seen_ms = mgo_db_col_int64(st, 5),
            .events_dropped = col_u64(st, 6),
            .statuses_over_rate = col_u64(st, 7),
            .positions_dropped = col_u64(st, 8),
            .binding = col_text(st, 9),
        };
        *found = true;
        mgo_err verr = visit ? visit(&row, ctx) : MGO_OK;
        if (verr) {
            stmt_done(s, st);
            return verr; /* the visitor's failure ends the walk */
        }
    }
    mgo_err err = rc == MGO_DB_DONE ? MGO_OK : sql_err(s, "read devices");
    stmt_done(s, st);
    return err;
}

#define DEVICE_COLS_4                                                                              \
    "SELECT id, capabilities, has_presence, online, boot, last_seen_ms, 0, 0, 0, 'mqtt' "
#define DEVICE_COLS_5                                                                              \
    "SELECT id, capabilities, has_presence, online, boot, last_seen_ms, ev_over, st_over, "        \
    "ahead_over, 'mqtt' "
#define DEVICE_COLS                                                                                \
    "SELECT id, capabilities, has_presence, online, boot, last_seen_ms, ev_over, st_over, "        \
    "ahead_over, binding "
#define DEVICE_SELECT(s)                                                                           \
    ((s)->schema_version < 5   ? DEVICE_COLS_4                                                     \
     : (s)->schema_version < 7 ? DEVICE_COLS_5                                                     \
                               : DEVICE_COLS)

mgo_err mgo_mgr_store_device_get(struct mgo_mgr_store *s, const char *id,
                                 mgo_mgr_device_visit visit, void *ctx)
{
    struct mgo_db_stmt *st = NULL;
    char sql[256];
    snprintf(sql, sizeof sql, "%sFROM devices WHERE id = ?", DEVICE_SELECT(s));
    mgo_err err = prep(s, sql, &st);
    if (err)
        return err;
    bind_text(st, 1, id);
    bool found;
    err = visit_devices(s, st, visit, ctx, &found);
    if (!err && !found)
        err = MGO_ERR_NOT_FOUND;
    return err;
}

mgo_err mgo_mgr_store_device_list(struct mgo_mgr_store *s, mgo_mgr_device_visit visit, void *ctx)
{
    struct mgo_db_stmt *st = NULL;
    char sql[256];
    snprintf(sql, sizeof sql, "%sFROM devices ORDER BY id", DEVICE_SELECT(s));
    mgo_err err = prep(s, sql, &st);
    if (err)
        return err;
    bool found;
    return visit_devices(s, st, visit, ctx, &found);
}

/* ---- deployments --------------------------------------------------------------------- */

const char *mgo_mgr_desired_name(enum mgo_mgr_desired d)
{
    switch (d) {
    case MGO_MGR_DESIRED_PRESENT:
        return "present";
    case MGO_MGR_DESIRED_REMOVING:
        return "removing";
    case MGO_MGR_DESIRED_REMOVED:
        return "removed";
    }
    return "?";
}

mgo_err mgo_mgr_store_deployment_put(struct mgo_mgr_store *s,
                                     const struct mgo_mgr_deployment_row *row)
{
    if (refuse_role(s, row->device_id) != MGO_OK)
        return MGO_ERR_INVALID;
    struct mgo_db_stmt *st = NULL;
    int64_t now = mgo_mgr_store_now_ms();
    mgo_err err = prep(
        s,
        "INSERT INTO deployments (id, device_id, app_id, app_version, profile_type, parameters,"
        " doc, digest, desired, manifest_version, created_ms, updated_ms)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)"
        " ON CONFLICT(id) DO UPDATE SET device_id = ?2, app_id = ?3, app_version = ?4,"
        " profile_type = ?5, parameters = ?6, doc = ?7, digest = ?8, desired = ?9,"
        " manifest_version = ?10, updated_ms = ?11",
        &st);
    if (err)
        return err;
    bind_text(st, 1, row->id);
    bind_text(st, 2, row->device_id);
    bind_text(st, 3, row->app_id);
    bind_text(st, 4, row->app_version);
    bind_text(st, 5, row->profile_type ? row->profile_type : "");
    bind_text(st, 6, row->parameters_json ? row->parameters_json : "{}");
    bind_blob(st, 7, row->doc ? (const void *)row->doc : "", row->doc_len);
    bind_text(st, 8, row->digest ? row->digest : "");
    mgo_db_bind_int64(st, 9, (int)row->desired);
    bind_u64(st, 10, row->manifest_version);
    mgo_db_bind_int64(st, 11, now);
    return run(s, st, "store deployment");
}

mgo_err mgo_mgr_store_deployment_set_desired(struct mgo_mgr_store *s, const char *id,
                                             enum mgo_mgr_desired desired)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s, "UPDATE deployments SET desired = ?, updated_ms = ? WHERE id = ?", &st);
    if (err)
        return err;
    mgo_db_bind_int64(st, 1, (int)desired);
    mgo_db_bind_int64(st, 2, mgo_mgr_store_now_ms());
    bind_text(st, 3, id);
    err = run(s, st, "update deployment");
    if (err)
        return err;
    return mgo_db_changes(s->db) > 0 ? MGO_OK : MGO_ERR_NOT_FOUND;
}

#define DEP_COLS                                                                                   \
    "SELECT id, device_id, app_id, app_version, profile_type, parameters, doc, digest,"            \
    " desired, manifest_version, created_ms, updated_ms FROM deployments "

static mgo_err visit_deployments(struct mgo_mgr_store *s, struct mgo_db_stmt *st,
                                 mgo_mgr_deployment_visit visit, void *ctx, bool *found)
{
    int rc;
    *found = false;
    while ((rc = step(s, st)) == MGO_DB_ROW) {
        int desired = (int)mgo_db_col_int64(st, 8);
        struct mgo_mgr_deployment_row row = {
            .id = col_text(st, 0),
            .device_id = col_text(st, 1),
            .app_id = col_text(st, 2),
            .app_version = col_text(st, 3),
            .profile_type = col_text(st, 4),
            .parameters_json = col_text(st, 5),
            .doc = mgo_db_col_blob(st, 6),
            .doc_len = mgo_db_col_bytes(st, 6),
            .digest = col_text(st, 7),
            .desired = desired == 1   ? MGO_MGR_DESIRED_REMOVING
                       : desired == 2 ? MGO_MGR_DESIRED_REMOVED
                                      : MGO_MGR_DESIRED_PRESENT,
            .manifest_version = col_u64(st, 9),
            .created_ms = mgo_db_col_int64(st, 10),
            .updated_ms = mgo_db_col_int64(st, 11),
        };
        *found = true;
        mgo_err verr = visit ? visit(&row, ctx) : MGO_OK;
        if (verr) {
            stmt_done(s, st);
            return verr; /* the visitor's failure ends the walk */
        }
    }
    mgo_err err = rc == MGO_DB_DONE ? MGO_OK : sql_err(s, "read deployments");
    stmt_done(s, st);
    return err;
}

mgo_err mgo_mgr_store_deployment_get(struct mgo_mgr_store *s, const char *id,
                                     mgo_mgr_deployment_visit visit, void *ctx)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s, DEP_COLS "WHERE id = ?", &st);
    if (err)
        return err;
    bind_text(st, 1, id);
    bool found;
    err = visit_deployments(s, st, visit, ctx, &found);
    if (!err && !found)
        err = MGO_ERR_NOT_FOUND;
    return err;
}

mgo_err mgo_mgr_store_deployment_list(struct mgo_mgr_store *s, const char *device_id,
                                      const char *app_id, bool include_removed,
                                      mgo_mgr_deployment_visit visit, void *ctx)
{
    struct mgo_db_stmt *st = NULL;
    /* With a device, say "device_id = ?1" plainly: SQLite cannot use the deployments_device
     * index for "(?1 IS NULL OR device_id = ?1)", and the full scan per device (every deploy,
     * every manifest publish) made a deploy to 10,000 devices take ~37 s of CPU, mostly
     * pread() of deployment rows (perf, bench/fleet). */
    mgo_err err =
        prep(s,
             device_id != NULL ? DEP_COLS "WHERE device_id = ?1 AND (?2 IS NULL OR app_id = ?2) AND"
                                          " (?3 != 0 OR desired != 2) ORDER BY created_ms, rowid"
                               : DEP_COLS
                 "WHERE (?2 IS NULL OR app_id = ?2) AND (?3 != 0 OR desired != 2)"
                 " ORDER BY created_ms, rowid",
             &st);
    if (err)
        return err;
    bind_text(st, 1, device_id);
    bind_text(st, 2, app_id);
    mgo_db_bind_int64(st, 3, include_removed ? 1 : 0);
    bool found;
    return visit_deployments(s, st, visit, ctx, &found);
}

/* ---- manifests ------------------------------------------------------------------------ */

mgo_err mgo_mgr_store_manifest_get(struct mgo_mgr_store *s, const char *device_id,
                                   uint64_t *version_out, uint64_t *published_out)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s, "SELECT version, published FROM manifests WHERE device_id = ?", &st);
    if (err)
        return err;
    bind_text(st, 1, device_id);
    uint64_t version = 0, published = 0;
    int rc = step(s, st);
    if (rc == MGO_DB_ROW) {
        version = col_u64(st, 0);
        published = col_u64(st, 1);
    } else if (rc != MGO_DB_DONE) {
        err = sql_err(s, "read manifest version");
    }
    stmt_done(s, st);
    if (!err) {
        if (version_out)
            *version_out = version;
        if (published_out)
            *published_out = published;
    }
    return err;
}

mgo_err mgo_mgr_store_manifest_bump(struct mgo_mgr_store *s, const char *device_id,
                                    uint64_t *version_out)
{
    if (refuse_role(s, device_id) != MGO_OK)
        return MGO_ERR_INVALID;
    /* one statement, so that managers sharing a database never hand out one version twice
     * (the row is locked by the update). SQL integers are signed; versions past INT64_MAX
     * are not needed in practice and refused so ordering in SQL stays right. */
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       "INSERT INTO manifests (device_id, version, published) VALUES (?1, 1, 0)"
                       " ON CONFLICT(device_id) DO UPDATE SET version = manifests.version + 1"
                       " WHERE manifests.version < 9223372036854775807 RETURNING version",
                       &st);
    if (err)
        return err;
    bind_text(st, 1, device_id);
    int64_t version = 0; /* stays 0 when the WHERE refused the update (no row returned) */
    err = run_returning(s, st, "store manifest version", &version);
    if (err)
        return err;
    if (version <= 0) {
        MGO_LOGE(TAG, "device %s: manifestVersion exhausted", device_id);
        return MGO_ERR_LIMIT;
    }
    *version_out = (uint64_t)version;
    return MGO_OK;
}

mgo_err mgo_mgr_store_manifest_set_published(struct mgo_mgr_store *s, const char *device_id,
                                             uint64_t version)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err =
        prep(s,
             "UPDATE manifests SET published = CASE WHEN published > ?1 THEN published ELSE ?1 END "
             "WHERE device_id = ?2",
             &st);
    if (err)
        return err;
    bind_u64(st, 1, version);
    bind_text(st, 2, device_id);
    return run(s, st, "mark manifest published");
}

mgo_err mgo_mgr_store_manifest_page(struct mgo_mgr_store *s, bool unpublished_only,
                                    const char *after, size_t limit, mgo_mgr_manifest_visit visit,
                                    void *ctx)
{
    /* the partial index manifests_unpublished serves the unpublished walk, the primary key
     * the other; devices bound to HTTP poll for their manifests (never published) */
    static const char *const sql[2][2] = {
        {"SELECT device_id, version, published FROM manifests WHERE version > 0 AND device_id > ? "
         "ORDER BY device_id LIMIT ?",
         "SELECT device_id, version, published FROM manifests WHERE published < version AND "
         "device_id > ? "
         "ORDER BY device_id LIMIT ?"},
        {"SELECT m.device_id, m.version, m.published FROM manifests m WHERE m.version > 0 AND "
         "m.device_id > ? "
         "AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.id = m.device_id AND d.binding = ?) "
         "ORDER BY m.device_id LIMIT ?",
         "SELECT m.device_id, m.version, m.published FROM manifests m WHERE m.published < "
         "m.version AND "
         "m.device_id > ? AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.id = m.device_id AND "
         "d.binding = ?) ORDER BY m.device_id LIMIT ?"},
    };
    if (limit == 0)
        return MGO_OK;
    bool bindings = s->schema_version >= 7;
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s, sql[bindings][unpublished_only], &st);
    if (err)
        return err;
    int i = 1;
    bind_text(st, i++, after != NULL ? after : "");
    if (bindings)
        bind_text(st, i++, MGO_MGR_BINDING_HTTP);
    bind_u64(st, i, limit);
    int rc;
    while ((rc = step(s, st)) == MGO_DB_ROW) {
        /* a role stored as a device by an older version is never published; the visitor
         * still sees its id with version 0, so a walk moves past it */
        bool role = mgo_mgr_store_is_role(s, col_text(st, 0));
        err = visit(col_text(st, 0), role ? 0 : col_u64(st, 1), col_u64(st, 2), ctx);
        if (err) {
            stmt_done(s, st);
            return err; /* the visitor's failure ends the walk */
        }
    }
    if (rc != MGO_DB_DONE)
        err = sql_err(s, "read manifests");
    stmt_done(s, st);
    return err;
}

/* ---- status ---------------------------------------------------------------------------- */

void mgo_mgr_store_set_history_limit(struct mgo_mgr_store *s, uint32_t per_deployment)
{
    s->history_limit = per_deployment;
}

/* After a history insert: see mgo_mgr_store_set_history_limit. The subquery walks the
 * deployment's newest `limit` entries of the (deployment_id, n) index. */
static mgo_err prune_history(struct mgo_mgr_store *s, const char *deployment_id, int64_t n)
{
    uint32_t limit = s->history_limit;
    if (limit == 0)
        return MGO_OK;
    int64_t every = limit < 64 ? limit : 64;
    if (n % every != 0)
        return MGO_OK;
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       "DELETE FROM status_history WHERE deployment_id = ?1 AND n < "
                       "(SELECT n FROM status_history WHERE deployment_id = ?1 "
                       "ORDER BY n DESC LIMIT 1 OFFSET ?2)",
                       &st);
    if (err)
        return err;
    bind_text(st, 1, deployment_id);
    mgo_db_bind_int64(st, 2, (int64_t)limit - 1);
    return run(s, st, "prune status history");
}

/* ---- journal positions (protocol.md §6.3) ----------------------------------------------- */

/* Whether (b, q) comes right after (rb, rs) in an agent's journal: the next seq of the same
 * boot, or the first of a later boot (the tail of an earlier boot cannot be known). */
static bool pos_next(uint64_t rb, uint64_t rs, uint64_t b, uint64_t q)
{
    return (b == rb && q == rs + 1) || (b > rb && q == 1);
}

struct dev_pos {
    uint64_t rb, rs; /* handled up to */
    uint64_t tb, ts; /* highest handled */
    uint64_t an;     /* positions waiting beyond the gap (rows in device_positions) */
    uint64_t aover;  /* positions not kept past the bound */
    char epoch[MGO_MGR_EPOCH_SIZE];
};

static mgo_err dev_pos_read(struct mgo_mgr_store *s, const char *device, struct dev_pos *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->epoch, sizeof p->epoch, "%s", s->epoch);
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       LOCKED("SELECT rcpt_boot, rcpt_seq, top_boot, top_seq, rcpt_epoch, ahead_n, "
                              "ahead_over FROM devices WHERE id = ?"),
                       &st);
    if (err)
        return err;
    bind_text(st, 1, device);
    int rc = step(s, st);
    if (rc == MGO_DB_ROW) {
        p->rb = col_u64(st, 0);
        p->rs = col_u64(st, 1);
        p->tb = col_u64(st, 2);
        p->ts = col_u64(st, 3);
        const char *e = col_text(st, 4);
        if (e != NULL && e[0] != '\0')
            snprintf(p->epoch, sizeof p->epoch, "%s", e);
        p->an = col_u64(st, 5);
        p->aover = col_u64(st, 6);
    } else if (rc != MGO_DB_DONE) {
        err = sql_err(s, "read journal position");
    }
    stmt_done(s, st);
    return err;
}

static mgo_err dev_pos_write(struct mgo_mgr_store *s, const char *device, const struct dev_pos *p)
{
    mgo_err err = ensure_device(s, device);
    if (err)
        return err;
    struct mgo_db_stmt *st = NULL;
    err = prep(s,
               "UPDATE devices SET rcpt_boot = ?, rcpt_seq = ?, top_boot = ?, top_seq = ?, "
               "rcpt_epoch = ?, ahead_n = ?, ahead_over = ? WHERE id = ?",
               &st);
    if (err)
        return err;
    bind_u64(st, 1, p->rb);
    bind_u64(st, 2, p->rs);
    bind_u64(st, 3, p->tb);
    bind_u64(st, 4, p->ts);
    bind_text(st, 5, p->epoch);
    bind_u64(st, 6, p->an);
    bind_u64(st, 7, p->aover);
    bind_text(st, 8, device);
    return run(s, st, "store journal position");
}

static mgo_err ahead_has(struct mgo_mgr_store *s, const char *device, uint64_t b, uint64_t q,
                         bool *has)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       "SELECT 1 FROM device_positions WHERE device_id = ? AND boot = ? AND "
                       "seq = ?",
                       &st);
    if (err)
        return err;
    bind_text(st, 1, device);
    bind_u64(st, 2, b);
    bind_u64(st, 3, q);
    int rc = step(s, st);
    *has = rc == MGO_DB_ROW;
    if (rc != MGO_DB_ROW && rc != MGO_DB_DONE)
        err = sql_err(s, "read handled positions");
    stmt_done(s, st);
    return err;
}

/* Moves the handled-up-to position over the positions handled ahead of it that now follow
 * on without a gap, and forgets them. */
static mgo_err ahead_absorb(struct mgo_mgr_store *s, const char *device, struct dev_pos *p)
{
    for (;;) {
        if (p->an == 0)
            return MGO_OK; /* none left (p->an counts the device's rows) */
        struct mgo_db_stmt *st = NULL;
        mgo_err err = prep(s,
                           "SELECT boot, seq FROM device_positions WHERE device_id = ? "
                           "ORDER BY boot, seq LIMIT 1",
                           &st);
        if (err)
            return err;
        bind_text(st, 1, device);
        int rc = step(s, st);
        uint64_t b = 0, q = 0;
        bool found = rc == MGO_DB_ROW;
        if (found) {
            b = col_u64(st, 0);
            q = col_u64(st, 1);
        } else if (rc != MGO_DB_DONE) {
            err = sql_err(s, "read handled positions");
        }
        stmt_done(s, st);
        if (err || !found || !pos_next(p->rb, p->rs, b, q))
            return err;
        p->rb = b;
        p->rs = q;
        err = prep(s, "DELETE FROM device_positions WHERE device_id = ? AND boot = ? AND seq = ?",
                   &st);
        if (err)
            return err;
        bind_text(st, 1, device);
        bind_u64(st, 2, b);
        bind_u64(st, 3, q);
        err = run(s, st, "forget handled position");
        if (err)
            return err;
        if (p->an > 0)
            p->an--;
    }
}

/* Takes position (b, q) of device as handled (inside the caller's savepoint).
 * MGO_ERR_STALE when it was handled before. */
static mgo_err position_take(struct mgo_mgr_store *s, const char *device, uint64_t b, uint64_t q,
                             struct mgo_mgr_position *out)
{
    struct dev_pos p;
    mgo_err err = MGO_OK;
    /* several writers: the device row exists before it is read and locked, so that the
     * first status of a new device is taken once too (SQLite: dev_pos_write adds it) */
    if (s->lock_rows)
        err = ensure_device(s, device);
    if (!err)
        err = dev_pos_read(s, device, &p);
    if (err)
        return err;
    bool has = !mgo_pos_before(p.rb, p.rs, b, q); /* at or before the handled-up-to position */
    /* p.an counts the device's rows in device_positions (kept with them, in the same
     * transaction): with none, nothing waits beyond a gap and there is nothing to look up */
    if (!has && p.an > 0) {
        err = ahead_has(s, device, b, q, &has);
        if (err)
            return err;
    }
    if (has) {
        MGO_LOGD(TAG, "device %s: status (%llu,%llu) handled before", device, (unsigned long long)b,
                 (unsigned long long)q);
        out->gap_opened = false;
        out->boot = p.rb;
        out->seq = p.rs;
        snprintf(out->epoch, sizeof out->epoch, "%s", p.epoch);
        return MGO_ERR_STALE;
    }
    bool gap_was_open = mgo_pos_before(p.rb, p.rs, p.tb, p.ts);
    if (pos_next(p.rb, p.rs, b, q)) {
        p.rb = b;
        p.rs = q;
        err = ahead_absorb(s, device, &p);
    } else if (p.an >= s->ahead_limit) {
        /* past the bound (mgr_store.h MGO_MGR_AHEAD_LIMIT): not kept, so not receipted; the
         * agent replays it after the next epoch */
        if (p.aover++ == 0 || p.aover % 1000 == 0)
            MGO_LOGW(TAG,
                     "device %s: %llu journal positions wait beyond a gap already; "
                     "(%llu, %llu) is not kept (%llu so far)",
                     device, (unsigned long long)p.an, (unsigned long long)b, (unsigned long long)q,
                     (unsigned long long)p.aover);
        out->gap_opened = false;
        out->boot = p.rb;
        out->seq = p.rs;
        snprintf(out->epoch, sizeof out->epoch, "%s", p.epoch);
        return dev_pos_write(s, device, &p);
    } else {
        struct mgo_db_stmt *st = NULL;
        err = prep(s, "INSERT INTO device_positions (device_id, boot, seq) VALUES (?, ?, ?)", &st);
        if (err)
            return err;
        bind_text(st, 1, device);
        bind_u64(st, 2, b);
        bind_u64(st, 3, q);
        err = run(s, st, "store handled position");
        p.an++;
    }
    if (err)
        return err;
    if (mgo_pos_before(p.tb, p.ts, b, q)) {
        p.tb = b;
        p.ts = q;
    }
    out->gap_opened = !gap_was_open && mgo_pos_before(p.rb, p.rs, p.tb, p.ts);
    if (out->gap_opened && out->new_epoch[0] != '\0')
        snprintf(p.epoch, sizeof p.epoch, "%s", out->new_epoch);
    out->boot = p.rb;
    out->seq = p.rs;
    snprintf(out->epoch, sizeof out->epoch, "%s", p.epoch);
    return dev_pos_write(s, device, &p);
}

mgo_err mgo_mgr_store_position_take(struct mgo_mgr_store *s, const char *device_id, uint64_t boot,
                                    uint64_t seq, struct mgo_mgr_position *out)
{
    if (s->schema_version < 5)
        return MGO_ERR_INTERNAL;
    mgo_err err = mgo_mgr_store_begin(s);
    if (err)
        return err;
    err = position_take(s, device_id, boot, seq, out);
    if (err) {
        mgo_mgr_store_rollback(s);
        return err;
    }
    return mgo_mgr_store_commit(s);
}

void mgo_mgr_store_set_epoch(struct mgo_mgr_store *s, const char *epoch)
{
    snprintf(s->epoch, sizeof s->epoch, "%s", epoch);
}

mgo_err mgo_mgr_store_receipts_reset(struct mgo_mgr_store *s)
{
    if (s->schema_version < 4)
        return MGO_ERR_INTERNAL;
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s, "UPDATE devices SET rcpt_epoch = ?", &st);
    if (err)
        return err;
    bind_text(st, 1, s->epoch);
    return run(s, st, "start receipts");
}

mgo_err mgo_mgr_store_receipts_list(struct mgo_mgr_store *s, mgo_mgr_receipt_visit visit, void *ctx)
{
    if (s->schema_version < 4)
        return MGO_ERR_INTERNAL;
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       "SELECT id, rcpt_epoch, rcpt_boot, rcpt_seq FROM devices WHERE "
                       "top_boot > 0 OR top_seq > 0 ORDER BY id",
                       &st);
    if (err)
        return err;
    int rc;
    while ((rc = step(s, st)) == MGO_DB_ROW) {
        if (mgo_mgr_store_is_role(s, col_text(st, 0)))
            continue; /* stored by a version that took roles as devices: never published */
        const char *e = col_text(st, 1);
        err = visit(col_text(st, 0), e != NULL && e[0] ? e : s->epoch, col_u64(st, 2),
                    col_u64(st, 3), ctx);
        if (err)
            break;
    }
    if (!err && rc != MGO_DB_DONE)
        err = sql_err(s, "read receipts");
    stmt_done(s, st);
    return err;
}

/* ---- status ------------------------------------------------------------------------------ */

/* The deployment's newest stored status: whether (boot, seq) comes after it, and whether
 * the overall state differs from it (or none was stored). */
static mgo_err latest_check(struct mgo_mgr_store *s, const struct mgo_mgr_status_row *row,
                            bool *newer, bool *changed)
{
    struct mgo_db_stmt *st = NULL;
    /* per (device, deployment) (protocol.md §8.1): retained statuses of different
     * deployments may arrive in any order after a resubscription */
    mgo_err err = prep(s,
                       "SELECT has_journal, boot, seq, state FROM status WHERE "
                       "deployment_id = ? AND device_id = ?",
                       &st);
    if (err)
        return err;
    bind_text(st, 1, row->deployment_id);
    bind_text(st, 2, row->device_id);
    int rc = step(s, st);
    *changed = true;
    *newer = true;
    if (rc == MGO_DB_ROW) {
        const char *state = col_text(st, 3);
        *changed = state == NULL || strcmp(state, row->state) != 0;
        uint64_t boot = col_u64(st, 1), seq = col_u64(st, 2);
        *newer = !(row->has_journal && (int)mgo_db_col_int64(st, 0) &&
                   !mgo_pos_before(boot, seq, row->boot, row->seq));
    } else if (rc != MGO_DB_DONE) {
        err = sql_err(s, "read journal position");
    }
    stmt_done(s, st);
    return err;
}

mgo_err mgo_mgr_store_status_apply(struct mgo_mgr_store *s, const struct mgo_mgr_status_row *row,
                                   struct mgo_mgr_status_outcome *out)
{
    struct mgo_mgr_status_outcome local;
    if (out == NULL) {
        memset(&local, 0, sizeof local);
        out = &local;
    }
    if (s->schema_version < 5)
        return MGO_ERR_INTERNAL;
    int64_t now = row->received_ms ? row->received_ms : mgo_mgr_store_now_ms();
    mgo_err err = mgo_mgr_store_begin(s);
    if (err)
        return err;
    bool newer = true;
    out->has_position = row->has_journal;
    if (!row->has_journal && s->lock_rows) {
        /* several writers: the device's statuses one after the other (with a journal
         * position, position_take locks the row) */
        err = lock_device(s, row->device_id, NULL);
        if (err)
            goto rollback;
    }
    if (row->has_journal) {
        err = position_take(s, row->device_id, row->boot, row->seq, &out->position);
        if (err)
            goto rollback;
    }
    err = latest_check(s, row, &newer, &out->changed);
    if (err)
        goto rollback;
    out->newest = newer;
    if (!newer)
        out->changed = false; /* an older transition, added to the history only */
    static const char *const sqls[2] = {
        "INSERT INTO status (deployment_id, device_id, state, has_journal, boot, seq, doc,"
        " received_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(deployment_id)"
        " DO UPDATE SET device_id = ?2, state = ?3, has_journal = ?4, boot = ?5, seq = ?6,"
        " doc = ?7, received_ms = ?8",
        "INSERT INTO status_history (deployment_id, device_id, state, has_journal, boot, seq,"
        " doc, received_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING n",
    };
    int64_t history_n = 0;
    for (size_t i = newer ? 0 : 1; i < 2; i++) {
        struct mgo_db_stmt *st = NULL;
        err = prep(s, sqls[i], &st);
        if (err)
            goto rollback;
        bind_text(st, 1, row->deployment_id);
        bind_text(st, 2, row->device_id);
        bind_text(st, 3, row->state);
        mgo_db_bind_int64(st, 4, row->has_journal ? 1 : 0);
        bind_u64(st, 5, row->boot);
        bind_u64(st, 6, row->seq);
        bind_text(st, 7, row->doc_json ? row->doc_json : "{}");
        mgo_db_bind_int64(st, 8, now);
        err = run_returning(s, st, "store status", i == 1 ? &history_n : NULL);
        if (err)
            goto rollback;
    }
    err = prune_history(s, row->deployment_id, history_n);
    if (err)
        goto rollback;
    return mgo_mgr_store_commit(s);
rollback:
    mgo_mgr_store_rollback(s);
    return err;
}

static mgo_err visit_status(struct mgo_mgr_store *s, struct mgo_db_stmt *st,
                            mgo_mgr_status_visit visit, void *ctx, bool *found)
{
    int rc;
    *found = false;
    while ((rc = step(s, st)) == MGO_DB_ROW) {
        struct mgo_mgr_status_row row = {
            .deployment_id = col_text(st, 0),
            .device_id = col_text(st, 1),
            .state = col_text(st, 2),
            .has_journal = (int)mgo_db_col_int64(st, 3) != 0,
            .boot = col_u64(st, 4),
            .seq = col_u64(st, 5),
            .doc_json = col_text(st, 6),
            .received_ms = mgo_db_col_int64(st, 7),
        };
        *found = true;
        mgo_err verr = visit ? visit(&row, ctx) : MGO_OK;
        if (verr) {
            stmt_done(s, st);
            return verr; /* the visitor's failure ends the walk */
        }
    }
    mgo_err err = rc == MGO_DB_DONE ? MGO_OK : sql_err(s, "read status");
    stmt_done(s, st);
    return err;
}

#define STATUS_COLS                                                                                \
    "SELECT deployment_id, device_id, state, has_journal, boot, seq, doc, received_ms "

mgo_err mgo_mgr_store_status_get(struct mgo_mgr_store *s, const char *deployment_id,
                                 mgo_mgr_status_visit visit, void *ctx)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s, STATUS_COLS "FROM status WHERE deployment_id = ?", &st);
    if (err)
        return err;
    bind_text(st, 1, deployment_id);
    bool found;
    err = visit_status(s, st, visit, ctx, &found);
    if (!err && !found)
        err = MGO_ERR_NOT_FOUND;
    return err;
}

mgo_err mgo_mgr_store_status_list(struct mgo_mgr_store *s, const char *device_id,
                                  mgo_mgr_status_visit visit, void *ctx)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       STATUS_COLS "FROM status WHERE (?1 IS NULL OR device_id = ?1) "
                                   "ORDER BY device_id, deployment_id",
                       &st);
    if (err)
        return err;
    bind_text(st, 1, device_id);
    bool found;
    return visit_status(s, st, visit, ctx, &found);
}

mgo_err mgo_mgr_store_status_history(struct mgo_mgr_store *s, const char *deployment_id,
                                     mgo_mgr_status_visit visit, void *ctx)
{
    struct mgo_db_stmt *st = NULL;
    /* in journal order (replayed transitions arrive after newer ones, protocol.md §6.3) */
    mgo_err err = prep(s,
                       STATUS_COLS "FROM status_history WHERE deployment_id = ? "
                                   "ORDER BY boot, seq, n",
                       &st);
    if (err)
        return err;
    bind_text(st, 1, deployment_id);
    bool found;
    return visit_status(s, st, visit, ctx, &found);
}

/* ---- device events ----------------------------------------------------------------- */

void mgo_mgr_store_set_event_limit(struct mgo_mgr_store *s, uint32_t per_device)
{
    s->event_limit = per_device;
}

void mgo_mgr_store_set_ahead_limit(struct mgo_mgr_store *s, uint32_t per_device)
{
    s->ahead_limit = per_device;
}

/* After an event insert: the device's count of stored events moves on, and every
 * min(limit, 64) events its older ones past the limit are deleted (the subquery walks the
 * device's newest `limit` entries of the (device_id, n) index). */
static mgo_err prune_events(struct mgo_mgr_store *s, const char *device_id)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       "UPDATE devices SET events_n = events_n + 1 WHERE id = ? "
                       "RETURNING events_n",
                       &st);
    if (err)
        return err;
    bind_text(st, 1, device_id);
    int rc = step(s, st);
    uint64_t n = rc == MGO_DB_ROW ? col_u64(st, 0) : 0;
    if (rc == MGO_DB_ROW)
        rc = step(s, st);
    if (rc != MGO_DB_DONE)
        err = sql_err(s, "count events");
    stmt_done(s, st);
    uint32_t limit = s->event_limit;
    if (err || limit == 0)
        return err;
    uint64_t every = limit < 64 ? limit : 64;
    if (n % every != 0)
        return MGO_OK;
    err = prep(s,
               "DELETE FROM device_events WHERE device_id = ?1 AND n < "
               "(SELECT n FROM device_events WHERE device_id = ?1 "
               "ORDER BY n DESC LIMIT 1 OFFSET ?2)",
               &st);
    if (err)
        return err;
    bind_text(st, 1, device_id);
    mgo_db_bind_int64(st, 2, (int64_t)limit - 1);
    return run(s, st, "prune events");
}

mgo_err mgo_mgr_store_event_add(struct mgo_mgr_store *s, const char *device_id, const char *type,
                                const char *severity, const char *message)
{
    if (s->schema_version < 5)
        return MGO_ERR_INTERNAL;
    mgo_err err = mgo_mgr_store_begin(s);
    if (err)
        return err;
    err = ensure_device(s, device_id);
    if (err)
        goto rollback;
    struct mgo_db_stmt *st = NULL;
    err = prep(s,
               "INSERT INTO device_events (device_id, type, severity, message,"
               " received_ms) VALUES (?, ?, ?, ?, ?)",
               &st);
    if (err)
        goto rollback;
    bind_text(st, 1, device_id);
    bind_text(st, 2, type ? type : "");
    bind_text(st, 3, severity ? severity : "");
    bind_text(st, 4, message ? message : "");
    mgo_db_bind_int64(st, 5, mgo_mgr_store_now_ms());
    err = run(s, st, "store event");
    if (!err)
        err = prune_events(s, device_id);
    if (err)
        goto rollback;
    return mgo_mgr_store_commit(s);
rollback:
    mgo_mgr_store_rollback(s);
    return err;
}

/* ---- rates ------------------------------------------------------------------------------ */

#define RATE_WINDOW_MS 60000

mgo_err mgo_mgr_store_rate_take(struct mgo_mgr_store *s, const char *device_id,
                                enum mgo_mgr_rate_kind kind, uint32_t per_minute, int64_t now_ms,
                                struct mgo_mgr_rate *out)
{
    memset(out, 0, sizeof *out);
    if (s->schema_version < 5)
        return MGO_ERR_INTERNAL;
    const char *const sel[2] = {
        LOCKED("SELECT ev_win_ms, ev_win_n, ev_over FROM devices WHERE id = ?"),
        LOCKED("SELECT st_win_ms, st_win_n, st_over FROM devices WHERE id = ?"),
    };
    static const char *const upd[2] = {
        "UPDATE devices SET ev_win_ms = ?, ev_win_n = ?, ev_over = ? WHERE id = ?",
        "UPDATE devices SET st_win_ms = ?, st_win_n = ?, st_over = ? WHERE id = ?",
    };
    size_t k = kind == MGO_MGR_RATE_EVENTS ? 0 : 1;
    if (refuse_role(s, device_id) != MGO_OK)
        return MGO_ERR_INVALID;
    mgo_err err = mgo_mgr_store_begin(s);
    if (err)
        return err;
    /* the (locked) read first: a device that exists needs no ensure_device statement (its
     * row read under LOCKED takes the lock ensure_device would); a missing one is added and
     * read again */
    int64_t win_ms = 0;
    uint64_t win_n = 0, total = 0;
    for (int attempt = 0;; attempt++) {
        struct mgo_db_stmt *st = NULL;
        err = prep(s, sel[k], &st);
        if (err)
            goto rollback;
        bind_text(st, 1, device_id);
        int rc = step(s, st);
        if (rc == MGO_DB_ROW) {
            win_ms = mgo_db_col_int64(st, 0);
            win_n = col_u64(st, 1);
            total = col_u64(st, 2);
        } else if (rc != MGO_DB_DONE || attempt > 0) {
            err = sql_err(s, "read rate");
        }
        stmt_done(s, st);
        if (err)
            goto rollback;
        if (rc == MGO_DB_ROW)
            break;
        err = ensure_device(s, device_id);
        if (err)
            goto rollback;
    }
    ensured_now(s, device_id);
    /* a clock stepped back also opens a new window */
    if (now_ms < win_ms || now_ms - win_ms >= RATE_WINDOW_MS) {
        if (per_minute > 0 && win_n > per_minute)
            out->ended_over = win_n - per_minute;
        win_ms = now_ms;
        win_n = 0;
    }
    win_n++;
    if (per_minute > 0 && win_n > per_minute) {
        out->over = true;
        out->window_over = win_n - per_minute;
        total++;
    }
    out->total_over = total;
    struct mgo_db_stmt *st = NULL;
    err = prep(s, upd[k], &st);
    if (err)
        goto rollback;
    mgo_db_bind_int64(st, 1, win_ms);
    bind_u64(st, 2, win_n);
    bind_u64(st, 3, total);
    bind_text(st, 4, device_id);
    err = run(s, st, "store rate");
    if (err)
        goto rollback;
    return mgo_mgr_store_commit(s);
rollback:
    mgo_mgr_store_rollback(s);
    return err;
}

mgo_err mgo_mgr_store_event_count(struct mgo_mgr_store *s, const char *device_id,
                                  uint64_t *count_out)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s, "SELECT COUNT(*) FROM device_events WHERE device_id = ?", &st);
    if (err)
        return err;
    bind_text(st, 1, device_id);
    return count_rows(s, st, count_out);
}

/* ---- metrics and readiness ----------------------------------------------------------- */

void mgo_mgr_store_set_metrics(struct mgo_mgr_store *s, struct mgo_histogram *write,
                               struct mgo_histogram *commit)
{
    s->write_hist = write;
    s->commit_hist = commit;
}

mgo_err mgo_mgr_store_ping(struct mgo_mgr_store *s)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s, "SELECT COUNT(*) FROM schema_version", &st);
    if (err)
        return err;
    uint64_t n = 0;
    return count_rows(s, st, &n);
}

/* ---- fleet overview (schema 6) -------------------------------------------------------- */

void mgo_mgr_store_set_sample_limit(struct mgo_mgr_store *s, uint32_t keep)
{
    s->sample_limit = keep < 1 ? 1 : keep;
}

mgo_err mgo_mgr_store_device_counts(struct mgo_mgr_store *s, uint64_t *online, uint64_t *offline)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       "SELECT COUNT(*), COALESCE(SUM(CASE WHEN has_presence != 0 AND online != 0 "
                       "THEN 1 ELSE 0 END), 0) "
                       "FROM devices",
                       &st);
    if (err)
        return err;
    if (step(s, st) == MGO_DB_ROW) {
        uint64_t all = col_u64(st, 0);
        *online = col_u64(st, 1);
        *offline = all - *online;
    } else {
        err = sql_err(s, "count devices");
    }
    stmt_done(s, st);
    return err;
}

mgo_err mgo_mgr_store_sample_add(struct mgo_mgr_store *s, int64_t t_ms, struct mgo_mgr_sample *out)
{
    if (s->schema_version < 6)
        return MGO_ERR_INTERNAL;
    struct mgo_mgr_sample local = {.t_ms = t_ms};
    mgo_err err = mgo_mgr_store_begin(s);
    if (err)
        return err;
    err = mgo_mgr_store_device_counts(s, &local.online, &local.offline);
    struct mgo_db_stmt *st = NULL;
    if (!err)
        err = prep(s, "INSERT INTO fleet_samples (t_ms, online, offline) VALUES (?, ?, ?)", &st);
    if (!err) {
        mgo_db_bind_int64(st, 1, t_ms);
        bind_u64(st, 2, local.online);
        bind_u64(st, 3, local.offline);
        err = run(s, st, "store fleet sample");
    }
    /* the bound: every insert deletes what is past the newest sample_limit (rowid range) */
    if (!err)
        err = prep(s, "DELETE FROM fleet_samples WHERE n <= (SELECT MAX(n) FROM fleet_samples) - ?",
                   &st);
    if (!err) {
        mgo_db_bind_int64(st, 1, (int64_t)s->sample_limit);
        err = run(s, st, "prune fleet samples");
    }
    if (err) {
        mgo_mgr_store_rollback(s);
        return err;
    }
    if (out)
        *out = local;
    return mgo_mgr_store_commit(s);
}

mgo_err mgo_mgr_store_samples(struct mgo_mgr_store *s, int64_t since_ms, int64_t until_ms,
                              int64_t bucket_ms, mgo_mgr_sample_visit visit, void *ctx)
{
    if (bucket_ms < 1)
        bucket_ms = 1;
    struct mgo_db_stmt *st = NULL;
    /* one row per bucket: its newest sample (the highest n of the highest t_ms) */
    mgo_err err = prep(s,
                       "SELECT t_ms, online, offline FROM (SELECT t_ms, online, offline,"
                       " ROW_NUMBER() OVER (PARTITION BY (t_ms - ?1) / ?2 ORDER BY t_ms DESC,"
                       " n DESC) AS r FROM fleet_samples WHERE t_ms >= ?1 AND t_ms <= ?3) b"
                       " WHERE r = 1 ORDER BY 1",
                       &st);
    if (err)
        return err;
    mgo_db_bind_int64(st, 1, since_ms);
    mgo_db_bind_int64(st, 2, bucket_ms);
    mgo_db_bind_int64(st, 3, until_ms);
    int rc;
    while ((rc = step(s, st)) == MGO_DB_ROW) {
        struct mgo_mgr_sample row = {
            .t_ms = mgo_db_col_int64(st, 0),
            .online = col_u64(st, 1),
            .offline = col_u64(st, 2),
        };
        mgo_err verr = visit(&row, ctx);
        if (verr) {
            stmt_done(s, st);
            return verr;
        }
    }
    err = rc == MGO_DB_DONE ? MGO_OK : sql_err(s, "read fleet samples");
    stmt_done(s, st);
    return err;
}

mgo_err mgo_mgr_store_sample_count(struct mgo_mgr_store *s, uint64_t *count_out)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s, "SELECT COUNT(*) FROM fleet_samples", &st);
    if (err)
        return err;
    return count_rows(s, st, count_out);
}

mgo_err mgo_mgr_store_deployment_states(struct mgo_mgr_store *s, bool by_app,
                                        mgo_mgr_state_count_visit visit, void *ctx)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       by_app ? "SELECT d.app_id, s.state, COUNT(*) FROM deployments d LEFT JOIN "
                                "status s ON s.deployment_id = d.id WHERE d.desired != ?1 "
                                "GROUP BY d.app_id, s.state ORDER BY d.app_id, s.state NULLS FIRST"
                              : "SELECT NULL, s.state, COUNT(*) FROM deployments d LEFT JOIN "
                                "status s ON s.deployment_id = d.id WHERE d.desired != ?1 "
                                "GROUP BY s.state ORDER BY s.state NULLS FIRST",
                       &st);
    if (err)
        return err;
    mgo_db_bind_int64(st, 1, (int)MGO_MGR_DESIRED_REMOVED);
    int rc;
    while ((rc = step(s, st)) == MGO_DB_ROW) {
        struct mgo_mgr_state_count row = {
            .app_id = col_text(st, 0),
            .state = col_text(st, 1),
            .count = col_u64(st, 2),
        };
        mgo_err verr = visit(&row, ctx);
        if (verr) {
            stmt_done(s, st);
            return verr;
        }
    }
    err = rc == MGO_DB_DONE ? MGO_OK : sql_err(s, "count deployments by state");
    stmt_done(s, st);
    return err;
}

/* The failed components of failed reports, and the overall error of a failed report that
 * names no failed component. Each report gives at least one entry, so the newest `limit`
 * entries come from the newest `limit` failed reports: only those are read (through the
 * partial index; the state literal lets SQLite use it), whatever the history holds. */
#define FAILURE_COLS "SELECT h.received_ms, h.device_id, h.deployment_id, d.app_id, d.app_version, "

mgo_err mgo_mgr_store_failures(struct mgo_mgr_store *s, int64_t since_ms, uint32_t limit,
                               mgo_mgr_failure_visit visit, void *ctx)
{
    if (s->schema_version < 6)
        return MGO_ERR_INTERNAL;
    /* the JSON of the reports is read with each database's own functions (SQLite's JSON1,
     * PostgreSQL's jsonb); the same rows either way */
    static const char *const sqls[2] = {
        "WITH recent AS (SELECT n, received_ms, device_id, deployment_id, doc FROM "
        "status_history WHERE state = 'failed' AND received_ms >= ?1 "
        "ORDER BY received_ms DESC, n DESC LIMIT ?2) " FAILURE_COLS
        "json_extract(c.value, '$.name'), json_extract(c.value, '$.error.code'), "
        "json_extract(c.value, '$.error.message'), h.n "
        "FROM recent h JOIN json_each(h.doc, '$.components') c "
        "LEFT JOIN deployments d ON d.id = h.deployment_id "
        "WHERE json_extract(c.value, '$.state') = 'failed' "
        "UNION ALL " FAILURE_COLS "NULL, json_extract(h.doc, '$.status.error.code'), "
        "json_extract(h.doc, '$.status.error.message'), h.n "
        "FROM recent h LEFT JOIN deployments d ON d.id = h.deployment_id "
        "WHERE NOT EXISTS (SELECT 1 FROM json_each(h.doc, '$.components') c "
        "WHERE json_extract(c.value, '$.state') = 'failed') "
        "ORDER BY 1 DESC, 9 DESC LIMIT ?2",
#define PG_COMPONENTS                                                                              \
    "jsonb_array_elements(CASE WHEN jsonb_typeof(h.doc::jsonb -> 'components') = 'array' "         \
    "THEN h.doc::jsonb -> 'components' ELSE '[]'::jsonb END) c(value) "
        "WITH recent AS (SELECT n, received_ms, device_id, deployment_id, doc FROM "
        "status_history WHERE state = 'failed' AND received_ms >= ?1 "
        "ORDER BY received_ms DESC, n DESC LIMIT ?2) " FAILURE_COLS
        "c.value ->> 'name', c.value #>> '{error,code}', c.value #>> '{error,message}', h.n "
        "FROM recent h CROSS JOIN LATERAL " PG_COMPONENTS
        "LEFT JOIN deployments d ON d.id = h.deployment_id "
        "WHERE c.value ->> 'state' = 'failed' "
        "UNION ALL " FAILURE_COLS "NULL, h.doc::jsonb #>> '{status,error,code}', "
        "h.doc::jsonb #>> '{status,error,message}', h.n "
        "FROM recent h LEFT JOIN deployments d ON d.id = h.deployment_id "
        "WHERE NOT EXISTS (SELECT 1 FROM " PG_COMPONENTS "WHERE c.value ->> 'state' = 'failed') "
        "ORDER BY 1 DESC, 9 DESC LIMIT ?2",
#undef PG_COMPONENTS
    };
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s, sqls[s->pg], &st);
    if (err)
        return err;
    mgo_db_bind_int64(st, 1, since_ms);
    mgo_db_bind_int64(st, 2, (int64_t)limit);
    int rc;
    while ((rc = step(s, st)) == MGO_DB_ROW) {
        struct mgo_mgr_failure_row row = {
            .received_ms = mgo_db_col_int64(st, 0),
            .device_id = col_text(st, 1),
            .deployment_id = col_text(st, 2),
            .app_id = col_text(st, 3),
            .app_version = col_text(st, 4),
            .component = col_text(st, 5),
            .code = col_text(st, 6),
            .message = col_text(st, 7),
        };
        mgo_err verr = visit(&row, ctx);
        if (verr) {
            stmt_done(s, st);
            return verr;
        }
    }
    err = rc == MGO_DB_DONE ? MGO_OK : sql_err(s, "read failures");
    stmt_done(s, st);
    return err;
}

/* ---- the southbound Margo HTTP API (schema 7, docs/margo-http.md) ------------------- */

mgo_err mgo_mgr_store_device_set_binding(struct mgo_mgr_store *s, const char *id,
                                         const char *binding)
{
    if (s->schema_version < 7)
        return MGO_ERR_INVALID;
    if (strcmp(binding, MGO_MGR_BINDING_MQTT) != 0 && strcmp(binding, MGO_MGR_BINDING_HTTP) != 0)
        return MGO_ERR_INVALID;
    mgo_err err = mgo_mgr_store_begin(s);
    if (err)
        return err;
    err = ensure_device(s, id);
    struct mgo_db_stmt *st = NULL;
    if (!err)
        err = prep(s, "UPDATE devices SET binding = ? WHERE id = ?", &st);
    if (err) {
        mgo_mgr_store_rollback(s);
        return err;
    }
    bind_text(st, 1, binding);
    bind_text(st, 2, id);
    err = run(s, st, "store binding");
    if (err) {
        mgo_mgr_store_rollback(s);
        return err;
    }
    return mgo_mgr_store_commit(s);
}

mgo_err mgo_mgr_store_device_is_http(struct mgo_mgr_store *s, const char *id, bool *http_out)
{
    *http_out = false;
    if (s->schema_version < 7)
        return MGO_OK;
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s, "SELECT binding FROM devices WHERE id = ?", &st);
    if (err)
        return err;
    bind_text(st, 1, id);
    int rc = step(s, st);
    if (rc == MGO_DB_ROW)
        *http_out = strcmp(col_text(st, 0), MGO_MGR_BINDING_HTTP) == 0;
    else if (rc != MGO_DB_DONE)
        err = sql_err(s, "read binding");
    stmt_done(s, st);
    return err;
}

static mgo_err target_visit(const struct mgo_mgr_deployment_row *row, void *c)
{
    struct mgo_mgr_status_target *t = c;
    t->found = true;
    snprintf(t->device, sizeof t->device, "%s", row->device_id);
    t->desired = row->desired;
    t->manifest_version = row->manifest_version;
    return MGO_OK;
}

mgo_err mgo_mgr_store_status_target(struct mgo_mgr_store *s, const char *device_id,
                                    const char *deployment_id, struct mgo_mgr_status_target *out)
{
    memset(out, 0, sizeof *out);
    if (s->schema_version < 7) { /* no binding column: the two reads it stands for */
        mgo_err err = mgo_mgr_store_device_is_http(s, device_id, &out->http);
        if (!err)
            err = mgo_mgr_store_deployment_get(s, deployment_id, target_visit, out);
        return err == MGO_ERR_NOT_FOUND ? MGO_OK : err;
    }
    /* one row always: the binding (NULL: no such device) and the deployment's columns
     * (NULL: no such deployment) */
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       "SELECT (SELECT binding FROM devices WHERE id = ?1), d.device_id,"
                       " d.desired, d.manifest_version FROM (SELECT 1 AS one) AS o"
                       " LEFT JOIN deployments d ON d.id = ?2",
                       &st);
    if (err)
        return err;
    bind_text(st, 1, device_id);
    bind_text(st, 2, deployment_id);
    int rc = step(s, st);
    if (rc == MGO_DB_ROW) {
        const char *binding = col_text(st, 0);
        out->http = binding != NULL && strcmp(binding, MGO_MGR_BINDING_HTTP) == 0;
        const char *dev = col_text(st, 1);
        if (dev != NULL) {
            int desired = (int)mgo_db_col_int64(st, 2);
            out->found = true;
            snprintf(out->device, sizeof out->device, "%s", dev);
            out->desired = desired == 1   ? MGO_MGR_DESIRED_REMOVING
                           : desired == 2 ? MGO_MGR_DESIRED_REMOVED
                                          : MGO_MGR_DESIRED_PRESENT;
            out->manifest_version = col_u64(st, 3);
        }
    } else {
        err = sql_err(s, "read status target");
    }
    stmt_done(s, st);
    return err;
}

mgo_err mgo_mgr_store_device_forget_caps(struct mgo_mgr_store *s, const char *id)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       "UPDATE devices SET capabilities = NULL, last_seen_ms = ? WHERE id = ? "
                       "AND capabilities IS NOT NULL",
                       &st);
    if (err)
        return err;
    mgo_db_bind_int64(st, 1, mgo_mgr_store_now_ms());
    bind_text(st, 2, id);
    err = run(s, st, "forget capabilities");
    if (!err && mgo_db_changes(s->db) == 0)
        err = MGO_ERR_NOT_FOUND;
    return err;
}

mgo_err mgo_mgr_store_client_allow(struct mgo_mgr_store *s, const char *id, bool *added_out)
{
    if (s->schema_version < 7)
        return MGO_ERR_INVALID;
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(
        s, "INSERT INTO margo_clients (id, added_ms) VALUES (?, ?) ON CONFLICT DO NOTHING", &st);
    if (err)
        return err;
    bind_text(st, 1, id);
    mgo_db_bind_int64(st, 2, mgo_mgr_store_now_ms());
    err = run(s, st, "allow client");
    if (!err && added_out)
        *added_out = mgo_db_changes(s->db) > 0;
    return err;
}

mgo_err mgo_mgr_store_client_deny(struct mgo_mgr_store *s, const char *id)
{
    if (s->schema_version < 7)
        return MGO_ERR_NOT_FOUND;
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s, "DELETE FROM margo_clients WHERE id = ?", &st);
    if (err)
        return err;
    bind_text(st, 1, id);
    err = run(s, st, "deny client");
    if (!err && mgo_db_changes(s->db) == 0)
        err = MGO_ERR_NOT_FOUND;
    return err;
}

mgo_err mgo_mgr_store_client_list(struct mgo_mgr_store *s, const char *id,
                                  mgo_mgr_client_visit visit, void *ctx)
{
    if (s->schema_version < 7)
        return id ? MGO_ERR_NOT_FOUND : MGO_OK;
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       id ? "SELECT id, added_ms FROM margo_clients WHERE id = ?"
                          : "SELECT id, added_ms FROM margo_clients ORDER BY id",
                       &st);
    if (err)
        return err;
    if (id)
        bind_text(st, 1, id);
    int rc;
    bool found = false;
    while ((rc = step(s, st)) == MGO_DB_ROW) {
        found = true;
        mgo_err verr = visit ? visit(col_text(st, 0), mgo_db_col_int64(st, 1), ctx) : MGO_OK;
        if (verr) {
            stmt_done(s, st);
            return verr;
        }
    }
    err = rc == MGO_DB_DONE ? MGO_OK : sql_err(s, "read clients");
    stmt_done(s, st);
    if (!err && id && !found)
        err = MGO_ERR_NOT_FOUND;
    return err;
}

/* ---- device labels, rollouts (schema 6, docs/rollouts.md) ------------------------------ */

mgo_err mgo_mgr_store_device_list_after(struct mgo_mgr_store *s, const char *after,
                                        mgo_mgr_device_visit visit, void *ctx)
{
    struct mgo_db_stmt *st = NULL;
    char sql[256];
    snprintf(sql, sizeof sql, "%sFROM devices WHERE id > ? ORDER BY id", DEVICE_SELECT(s));
    mgo_err err = prep(s, sql, &st);
    if (err)
        return err;
    bind_text(st, 1, after ? after : "");
    bool found;
    return visit_devices(s, st, visit, ctx, &found);
}

mgo_err mgo_mgr_store_label_set(struct mgo_mgr_store *s, const char *device_id, const char *key,
                                const char *value, uint32_t max_per_device)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       "SELECT (SELECT COUNT(*) FROM devices WHERE id = ?1),"
                       " (SELECT COUNT(*) FROM device_labels WHERE device_id = ?1),"
                       " (SELECT COUNT(*) FROM device_labels WHERE device_id = ?1 AND key = ?2)",
                       &st);
    if (err)
        return err;
    bind_text(st, 1, device_id);
    bind_text(st, 2, key);
    int64_t known = 0, count = 0, has = 0;
    if (step(s, st) == MGO_DB_ROW) {
        known = mgo_db_col_int64(st, 0);
        count = mgo_db_col_int64(st, 1);
        has = mgo_db_col_int64(st, 2);
    } else {
        err = sql_err(s, "count labels");
    }
    stmt_done(s, st);
    if (err)
        return err;
    if (!known || refuse_role(s, device_id) != MGO_OK)
        return MGO_ERR_NOT_FOUND;
    if (!has && count >= (int64_t)max_per_device)
        return MGO_ERR_LIMIT;
    err = prep(s,
               "INSERT INTO device_labels (device_id, key, value) VALUES (?, ?, ?)"
               " ON CONFLICT(device_id, key) DO UPDATE SET value = excluded.value",
               &st);
    if (err)
        return err;
    bind_text(st, 1, device_id);
    bind_text(st, 2, key);
    bind_text(st, 3, value);
    return run(s, st, "set label");
}

mgo_err mgo_mgr_store_label_delete(struct mgo_mgr_store *s, const char *device_id, const char *key)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s, "DELETE FROM device_labels WHERE device_id = ? AND key = ?", &st);
    if (err)
        return err;
    bind_text(st, 1, device_id);
    bind_text(st, 2, key);
    err = run(s, st, "delete label");
    if (!err && mgo_db_changes(s->db) == 0)
        err = MGO_ERR_NOT_FOUND;
    return err;
}

mgo_err mgo_mgr_store_label_list(struct mgo_mgr_store *s, const char *device_id,
                                 mgo_mgr_label_visit visit, void *ctx)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err =
        prep(s, "SELECT key, value FROM device_labels WHERE device_id = ? ORDER BY key", &st);
    if (err)
        return err;
    bind_text(st, 1, device_id);
    int rc;
    while ((rc = step(s, st)) == MGO_DB_ROW) {
        err = visit(col_text(st, 0), col_text(st, 1), ctx);
        if (err) {
            stmt_done(s, st);
            return err;
        }
    }
    err = rc == MGO_DB_DONE ? MGO_OK : sql_err(s, "read labels");
    stmt_done(s, st);
    return err;
}

#define ROLLOUT_COLS                                                                               \
    "SELECT id, app_id, version, parameters, mode, selector, on_abort, offline_count,"             \
    " batch_size, batch_percent, canary_size, max_in_flight, gate_timeout_s, soak_s,"              \
    " offline_grace_s, fail_batch_count, fail_batch_percent, fail_total_count,"                    \
    " fail_total_percent, app_failures_only, state, reason, batches, batch, batch_started_ms,"     \
    " batch_done_ms, created_ms, updated_ms, finished_ms,"                                         \
    " (SELECT COUNT(*) FROM rollout_targets t WHERE t.rollout_id = rollouts.id) FROM rollouts "

static mgo_err visit_rollouts(struct mgo_mgr_store *s, struct mgo_db_stmt *st,
                              mgo_mgr_rollout_visit visit, void *ctx, bool *found)
{
    int rc;
    *found = false;
    while ((rc = step(s, st)) == MGO_DB_ROW) {
        struct mgo_mgr_rollout_row r = {
            .id = col_text(st, 0),
            .app_id = col_text(st, 1),
            .version = col_text(st, 2),
            .parameters_json = col_text(st, 3),
            .mode = col_text(st, 4),
            .selector = col_text(st, 5),
            .on_abort = col_text(st, 6),
            .offline_count = col_text(st, 7),
            .batch_size = (uint32_t)mgo_db_col_int64(st, 8),
            .batch_percent = (uint32_t)mgo_db_col_int64(st, 9),
            .canary_size = (uint32_t)mgo_db_col_int64(st, 10),
            .max_in_flight = (uint32_t)mgo_db_col_int64(st, 11),
            .gate_timeout_s = (uint32_t)mgo_db_col_int64(st, 12),
            .soak_s = (uint32_t)mgo_db_col_int64(st, 13),
            .offline_grace_s = (uint32_t)mgo_db_col_int64(st, 14),
            .fail_batch_count = mgo_db_col_int64(st, 15),
            .fail_batch_percent = mgo_db_col_int64(st, 16),
            .fail_total_count = mgo_db_col_int64(st, 17),
            .fail_total_percent = mgo_db_col_int64(st, 18),
            .app_failures_only = (int)mgo_db_col_int64(st, 19) != 0,
            .state = col_text(st, 20),
            .reason = col_text(st, 21),
            .batches = (uint32_t)mgo_db_col_int64(st, 22),
            .batch = (uint32_t)mgo_db_col_int64(st, 23),
            .batch_started_ms = mgo_db_col_int64(st, 24),
            .batch_done_ms = mgo_db_col_int64(st, 25),
            .created_ms = mgo_db_col_int64(st, 26),
            .updated_ms = mgo_db_col_int64(st, 27),
            .finished_ms = mgo_db_col_int64(st, 28),
            .targets = col_u64(st, 29),
        };
        *found = true;
        mgo_err verr = visit(&r, ctx);
        if (verr) {
            stmt_done(s, st);
            return verr;
        }
    }
    mgo_err err = rc == MGO_DB_DONE ? MGO_OK : sql_err(s, "read rollouts");
    stmt_done(s, st);
    return err;
}

mgo_err mgo_mgr_store_rollout_put(struct mgo_mgr_store *s, const struct mgo_mgr_rollout_row *r)
{
    struct mgo_db_stmt *st = NULL;
    int64_t now = mgo_mgr_store_now_ms();
    mgo_err err = prep(
        s,
        "INSERT INTO rollouts (id, n, app_id, version, parameters, mode, selector, on_abort,"
        " offline_count, batch_size, batch_percent, canary_size, max_in_flight, gate_timeout_s,"
        " soak_s, offline_grace_s, fail_batch_count, fail_batch_percent, fail_total_count,"
        " fail_total_percent, app_failures_only, state, reason, batches, batch,"
        " batch_started_ms, batch_done_ms, created_ms, updated_ms, finished_ms)"
        " VALUES (?1, (SELECT COALESCE(MAX(n), 0) + 1 FROM rollouts), ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
        " ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, 0, 0,"
        " ?25, ?25, 0)",
        &st);
    if (err)
        return err;
    bind_text(st, 1, r->id);
    bind_text(st, 2, r->app_id);
    bind_text(st, 3, r->version);
    bind_text(st, 4, r->parameters_json);
    bind_text(st, 5, r->mode);
    bind_text(st, 6, r->selector);
    bind_text(st, 7, r->on_abort);
    bind_text(st, 8, r->offline_count);
    mgo_db_bind_int64(st, 9, r->batch_size);
    mgo_db_bind_int64(st, 10, r->batch_percent);
    mgo_db_bind_int64(st, 11, r->canary_size);
    mgo_db_bind_int64(st, 12, r->max_in_flight);
    mgo_db_bind_int64(st, 13, r->gate_timeout_s);
    mgo_db_bind_int64(st, 14, r->soak_s);
    mgo_db_bind_int64(st, 15, r->offline_grace_s);
    mgo_db_bind_int64(st, 16, r->fail_batch_count);
    mgo_db_bind_int64(st, 17, r->fail_batch_percent);
    mgo_db_bind_int64(st, 18, r->fail_total_count);
    mgo_db_bind_int64(st, 19, r->fail_total_percent);
    mgo_db_bind_int64(st, 20, r->app_failures_only ? 1 : 0);
    bind_text(st, 21, r->state);
    bind_text(st, 22, r->reason);
    mgo_db_bind_int64(st, 23, r->batches);
    mgo_db_bind_int64(st, 24, r->batch);
    mgo_db_bind_int64(st, 25, now);
    return run(s, st, "add rollout");
}

mgo_err mgo_mgr_store_rollout_update(struct mgo_mgr_store *s, const struct mgo_mgr_rollout_row *r)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       "UPDATE rollouts SET state = ?2, reason = ?3, batch = ?4,"
                       " batch_started_ms = ?5, batch_done_ms = ?6, finished_ms = ?7,"
                       " updated_ms = ?8 WHERE id = ?1",
                       &st);
    if (err)
        return err;
    bind_text(st, 1, r->id);
    bind_text(st, 2, r->state);
    bind_text(st, 3, r->reason);
    mgo_db_bind_int64(st, 4, r->batch);
    mgo_db_bind_int64(st, 5, r->batch_started_ms);
    mgo_db_bind_int64(st, 6, r->batch_done_ms);
    mgo_db_bind_int64(st, 7, r->finished_ms);
    mgo_db_bind_int64(st, 8, mgo_mgr_store_now_ms());
    err = run(s, st, "update rollout");
    if (!err && mgo_db_changes(s->db) == 0)
        err = MGO_ERR_NOT_FOUND;
    return err;
}

mgo_err mgo_mgr_store_rollout_get(struct mgo_mgr_store *s, const char *id,
                                  mgo_mgr_rollout_visit visit, void *ctx)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s, ROLLOUT_COLS "WHERE id = ?", &st);
    if (err)
        return err;
    bind_text(st, 1, id);
    bool found;
    err = visit_rollouts(s, st, visit, ctx, &found);
    if (!err && !found)
        err = MGO_ERR_NOT_FOUND;
    return err;
}

mgo_err mgo_mgr_store_rollout_list(struct mgo_mgr_store *s, bool active_only, uint32_t limit,
                                   uint32_t offset, mgo_mgr_rollout_visit visit, void *ctx)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       ROLLOUT_COLS "WHERE (?1 = 0 OR state IN ('running', 'paused',"
                                    " 'rolling-back')) ORDER BY n DESC LIMIT ?2 OFFSET ?3",
                       &st);
    if (err)
        return err;
    mgo_db_bind_int64(st, 1, active_only ? 1 : 0);
    mgo_db_bind_int64(st, 2, limit);
    mgo_db_bind_int64(st, 3, offset);
    bool found;
    return visit_rollouts(s, st, visit, ctx, &found);
}

mgo_err mgo_mgr_store_rollout_states(struct mgo_mgr_store *s, mgo_mgr_state_count_visit visit,
                                     void *ctx)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err =
        prep(s, "SELECT state, COUNT(*) FROM rollouts GROUP BY state ORDER BY state", &st);
    if (err)
        return err;
    int rc;
    while ((rc = step(s, st)) == MGO_DB_ROW) {
        struct mgo_mgr_state_count row = {.state = col_text(st, 0), .count = col_u64(st, 1)};
        mgo_err verr = visit(&row, ctx);
        if (verr) {
            stmt_done(s, st);
            return verr;
        }
    }
    err = rc == MGO_DB_DONE ? MGO_OK : sql_err(s, "count rollouts by state");
    stmt_done(s, st);
    return err;
}

mgo_err mgo_mgr_store_target_put(struct mgo_mgr_store *s, const struct mgo_mgr_target_row *t)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       "INSERT INTO rollout_targets (rollout_id, device_id, seq, batch,"
                       " state, deployment_id, prev_version, prev_parameters, manifest_version,"
                       " started_ms, done_ms, code, class, message)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                       " ON CONFLICT(rollout_id, device_id) DO UPDATE SET seq = excluded.seq,"
                       " batch = excluded.batch, state = excluded.state,"
                       " deployment_id = excluded.deployment_id,"
                       " prev_version = excluded.prev_version,"
                       " prev_parameters = excluded.prev_parameters,"
                       " manifest_version = excluded.manifest_version,"
                       " started_ms = excluded.started_ms, done_ms = excluded.done_ms,"
                       " code = excluded.code, class = excluded.class, message = excluded.message",
                       &st);
    if (err)
        return err;
    bind_text(st, 1, t->rollout_id);
    bind_text(st, 2, t->device_id);
    mgo_db_bind_int64(st, 3, t->seq);
    mgo_db_bind_int64(st, 4, t->batch);
    bind_text(st, 5, t->state);
    bind_text(st, 6, t->deployment_id ? t->deployment_id : "");
    bind_text(st, 7, t->prev_version ? t->prev_version : "");
    bind_text(st, 8, t->prev_parameters);
    bind_u64(st, 9, t->manifest_version);
    mgo_db_bind_int64(st, 10, t->started_ms);
    mgo_db_bind_int64(st, 11, t->done_ms);
    bind_text(st, 12, t->code ? t->code : "");
    bind_text(st, 13, t->class_ ? t->class_ : "");
    bind_text(st, 14, t->message ? t->message : "");
    return run(s, st, "put rollout target");
}

mgo_err mgo_mgr_store_target_list(struct mgo_mgr_store *s, const char *rollout_id, int64_t batch,
                                  const char *state, mgo_mgr_target_visit visit, void *ctx)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       "SELECT rollout_id, device_id, seq, batch, state, deployment_id,"
                       " prev_version, prev_parameters, manifest_version, started_ms, done_ms,"
                       " code, class, message FROM rollout_targets WHERE rollout_id = ?1 AND"
                       " (?2 < 0 OR batch = ?2) AND (?3 IS NULL OR state = ?3) ORDER BY seq",
                       &st);
    if (err)
        return err;
    bind_text(st, 1, rollout_id);
    mgo_db_bind_int64(st, 2, batch);
    bind_text(st, 3, state);
    int rc;
    while ((rc = step(s, st)) == MGO_DB_ROW) {
        struct mgo_mgr_target_row t = {
            .rollout_id = col_text(st, 0),
            .device_id = col_text(st, 1),
            .seq = (uint32_t)mgo_db_col_int64(st, 2),
            .batch = (uint32_t)mgo_db_col_int64(st, 3),
            .state = col_text(st, 4),
            .deployment_id = col_text(st, 5),
            .prev_version = col_text(st, 6),
            .prev_parameters = col_text(st, 7),
            .manifest_version = col_u64(st, 8),
            .started_ms = mgo_db_col_int64(st, 9),
            .done_ms = mgo_db_col_int64(st, 10),
            .code = col_text(st, 11),
            .class_ = col_text(st, 12),
            .message = col_text(st, 13),
        };
        err = visit(&t, ctx);
        if (err) {
            stmt_done(s, st);
            return err;
        }
    }
    err = rc == MGO_DB_DONE ? MGO_OK : sql_err(s, "read rollout targets");
    stmt_done(s, st);
    return err;
}

mgo_err mgo_mgr_store_target_active(struct mgo_mgr_store *s, const char *device_id,
                                    char active_out[MGO_UUID_STR_SIZE])
{
    struct mgo_db_stmt *st = NULL;
    active_out[0] = '\0';
    mgo_err err = prep(s,
                       "SELECT r.id FROM rollout_targets t JOIN rollouts r ON r.id = t.rollout_id"
                       " WHERE t.device_id = ? AND r.state IN ('running', 'paused',"
                       " 'rolling-back') LIMIT 1",
                       &st);
    if (err)
        return err;
    bind_text(st, 1, device_id);
    int rc = step(s, st);
    if (rc == MGO_DB_ROW)
        snprintf(active_out, MGO_UUID_STR_SIZE, "%s", col_text(st, 0));
    else if (rc != MGO_DB_DONE)
        err = sql_err(s, "read active rollout");
    stmt_done(s, st);
    return err;
}

mgo_err mgo_mgr_store_app_states(struct mgo_mgr_store *s, mgo_mgr_app_state_visit visit, void *ctx)
{
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       "SELECT d.app_id, d.app_version, COALESCE(t.state, ''),"
                       " CASE WHEN t.state = 'failed' THEN t.doc END FROM deployments d"
                       " LEFT JOIN status t ON t.deployment_id = d.id WHERE d.desired != 2"
                       " ORDER BY d.app_id, d.rowid",
                       &st);
    if (err)
        return err;
    int rc;
    while ((rc = step(s, st)) == MGO_DB_ROW) {
        err = visit(col_text(st, 0), col_text(st, 1), col_text(st, 2), col_text(st, 3), ctx);
        if (err) {
            stmt_done(s, st);
            return err;
        }
    }
    err = rc == MGO_DB_DONE ? MGO_OK : sql_err(s, "read app states");
    stmt_done(s, st);
    return err;
}

/* ---- the paged deployment list (GET /api/v1/deployments?limit=&after=, docs/api.md) ------ */

mgo_err mgo_mgr_store_deployment_page(struct mgo_mgr_store *s,
                                      const struct mgo_mgr_deployment_query *q,
                                      mgo_mgr_deployment_visit visit, void *ctx)
{
    struct mgo_db_stmt *st = NULL;
    /* Keyset pagination over the primary key's index: "id > ?1 ORDER BY id LIMIT ?6" reads
     * one page of rows whatever the table's size. With a device, "device_id = ?2" is said
     * plainly so that SQLite uses deployments_device (see deployment_list). The state is the
     * one of the newest status (its primary key is the deployment id), 'unreported' when
     * there is none. */
#define DEP_PAGE_FILTER                                                                            \
    " AND (?3 IS NULL OR app_id = ?3) AND (?4 != 0 OR desired != 2) AND (?5 IS NULL OR"            \
    " COALESCE((SELECT state FROM status WHERE deployment_id = deployments.id),"                   \
    " 'unreported') = ?5) ORDER BY id LIMIT ?6"
    mgo_err err =
        prep(s,
             q->device_id != NULL ? DEP_COLS "WHERE device_id = ?2 AND id > ?1" DEP_PAGE_FILTER
                                  : DEP_COLS "WHERE id > ?1" DEP_PAGE_FILTER,
             &st);
#undef DEP_PAGE_FILTER
    if (err)
        return err;
    bind_text(st, 1, q->after ? q->after : "");
    if (q->device_id) /* ?2 appears only in the statement with a device */
        bind_text(st, 2, q->device_id);
    bind_text(st, 3, q->app_id);
    mgo_db_bind_int64(st, 4, q->include_removed ? 1 : 0);
    bind_text(st, 5, q->state);
    mgo_db_bind_int64(st, 6, q->limit > 0 ? (int64_t)q->limit : -1);
    bool found;
    return visit_deployments(s, st, visit, ctx, &found);
}

/* ---- leases (schema 9, docs/scaling.md "Several managers") ---------------------------- */

static void lease_row(struct mgo_db_stmt *st, struct mgo_mgr_lease *out)
{
    const char *h = col_text(st, 0);
    snprintf(out->holder, sizeof out->holder, "%s", h ? h : "");
    out->term = col_u64(st, 1);
    out->expires_ms = mgo_db_col_int64(st, 2);
}

/* The database's clock in milliseconds since the Unix epoch, as SQL: leases are timed by the
 * one clock every manager sharing the database reads, never by the managers' own. */
#define DB_NOW_SQLITE "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
#define DB_NOW_PG "CAST(floor(extract(epoch FROM clock_timestamp()) * 1000) AS bigint)"
#define WITH_DB_NOW(before, after)                                                                 \
    (strcmp(s->db->ops->name, "postgresql") == 0 ? before DB_NOW_PG after                          \
                                                 : before DB_NOW_SQLITE after)

mgo_err mgo_mgr_store_lease_take(struct mgo_mgr_store *s, const char *name, const char *holder,
                                 uint32_t ttl_ms, struct mgo_mgr_lease *out)
{
    if (s->schema_version < 9)
        return MGO_ERR_INTERNAL;
    memset(out, 0, sizeof *out);
    struct mgo_db_stmt *st = NULL;
    /* One statement: a new lease, a renewal by its holder, or a takeover of an expired one
     * (the term grows when the holder changes). Another's lease that has not expired is left
     * alone: no row comes back. Both times are the database's clock (WITH_DB_NOW). */
    mgo_err err = prep(s,
                       WITH_DB_NOW("WITH db_now(ms) AS (SELECT ",
                                   ") INSERT INTO leases (name, holder, term, expires_ms)"
                                   " SELECT ?1, ?2, 1, db_now.ms + ?3 FROM db_now WHERE true"
                                   " ON CONFLICT(name) DO UPDATE SET holder = excluded.holder,"
                                   " expires_ms = excluded.expires_ms, term = CASE WHEN"
                                   " leases.holder = excluded.holder THEN leases.term ELSE"
                                   " leases.term + 1 END WHERE leases.holder = excluded.holder"
                                   " OR leases.expires_ms <= excluded.expires_ms - ?3"
                                   " RETURNING holder, term, expires_ms"),
                       &st);
    if (err)
        return err;
    bind_text(st, 1, name);
    bind_text(st, 2, holder);
    mgo_db_bind_int64(st, 3, (int64_t)ttl_ms);
    enum mgo_db_step rc = step(s, st);
    if (rc == MGO_DB_ROW) {
        lease_row(st, out);
        out->held = strcmp(out->holder, holder) == 0;
        /* the statement is stepped to its end so the change is complete */
        while ((rc = step(s, st)) == MGO_DB_ROW) {
        }
    }
    if (rc != MGO_DB_DONE)
        err = sql_err(s, "take lease");
    stmt_done(s, st);
    if (err || out->held)
        return err;
    /* held by another: who, and until when */
    err = prep(s, "SELECT holder, term, expires_ms FROM leases WHERE name = ?", &st);
    if (err)
        return err;
    bind_text(st, 1, name);
    rc = step(s, st);
    if (rc == MGO_DB_ROW)
        lease_row(st, out);
    else if (rc != MGO_DB_DONE)
        err = sql_err(s, "read lease");
    stmt_done(s, st);
    return err;
}

mgo_err mgo_mgr_store_lease_release(struct mgo_mgr_store *s, const char *name, const char *holder)
{
    if (s->schema_version < 9)
        return MGO_ERR_INTERNAL;
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s, "UPDATE leases SET expires_ms = 0 WHERE name = ? AND holder = ?", &st);
    if (err)
        return err;
    bind_text(st, 1, name);
    bind_text(st, 2, holder);
    return run(s, st, "release lease");
}

mgo_err mgo_mgr_store_lease_reap(struct mgo_mgr_store *s, const char *prefix,
                                 mgo_mgr_id_visit visit, void *ctx)
{
    if (s->schema_version < 9)
        return MGO_ERR_INTERNAL;
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s,
                       WITH_DB_NOW("DELETE FROM leases WHERE substr(name, 1, length(?1)) = ?1"
                                   " AND expires_ms <= ",
                                   " RETURNING name"),
                       &st);
    if (err)
        return err;
    bind_text(st, 1, prefix);
    /* the names are copied first: the deletion completes before any visitor runs */
    char names[16][MGO_MGR_LEASE_NAME_MAX + 1];
    size_t n = 0, more = 0;
    enum mgo_db_step rc;
    while ((rc = step(s, st)) == MGO_DB_ROW) {
        if (n < sizeof names / sizeof names[0])
            snprintf(names[n++], sizeof names[0], "%s", col_text(st, 0));
        else
            more++;
    }
    if (rc != MGO_DB_DONE)
        err = sql_err(s, "reap leases");
    stmt_done(s, st);
    for (size_t i = 0; !err && i < n; i++)
        err = visit(names[i], ctx);
    if (!err && more > 0)
        MGO_LOGW(TAG, "%zu more expired leases under %s removed", more, prefix);
    return err;
}

mgo_err mgo_mgr_store_manifest_lock(struct mgo_mgr_store *s, const char *device_id,
                                    uint64_t *version_out)
{
    if (s->depth == 0)
        return MGO_ERR_INTERNAL; /* the lock lasts until the caller's transaction ends */
    struct mgo_db_stmt *st = NULL;
    mgo_err err = prep(s, LOCKED("SELECT version FROM manifests WHERE device_id = ?"), &st);
    if (err)
        return err;
    bind_text(st, 1, device_id);
    uint64_t version = 0;
    enum mgo_db_step rc = step(s, st);
    if (rc == MGO_DB_ROW)
        version = col_u64(st, 0);
    else if (rc != MGO_DB_DONE)
        err = sql_err(s, "lock manifest");
    stmt_done(s, st);
    if (!err)
        *version_out = version;
    return err;
}

/* ---- live events across managers ------------------------------------------------------ */

/* One statement for every payload: the payloads go as one text[] literal ("{"a","b"}", each
 * element quoted, with \ and " escaped) and pg_notify runs once per element. */
mgo_err mgo_mgr_store_notify(struct mgo_mgr_store *s, const char *channel,
                             const char *const *payloads, size_t n)
{
    if (strcmp(s->db->ops->name, "postgresql") != 0)
        return MGO_ERR_INVALID;
    if (n == 0)
        return MGO_OK;
    struct mgo_buf arr;
    mgo_buf_init(&arr, n * (2u * MGO_MGR_NOTIFY_MAX + 3u) + 2u); /* every byte escaped */
    mgo_err err = mgo_buf_append_str(&arr, "{");
    for (size_t i = 0; !err && i < n; i++) {
        if (strlen(payloads[i]) >= MGO_MGR_NOTIFY_MAX) {
            err = MGO_ERR_INVALID;
            break;
        }
        err = mgo_buf_append_str(&arr, i ? ",\"" : "\"");
        for (const char *c = payloads[i]; !err && *c; c++) {
            if (*c == '"' || *c == '\\')
                err = mgo_buf_append(&arr, "\\", 1);
            if (!err)
                err = mgo_buf_append(&arr, c, 1);
        }
        if (!err)
            err = mgo_buf_append_str(&arr, "\"");
    }
    if (!err)
        err = mgo_buf_append(&arr, "}", 2); /* with the NUL */
    struct mgo_db_stmt *st = NULL;
    if (!err)
        err = prep(s, "SELECT pg_notify(?, x) FROM unnest(CAST(? AS text[])) AS x", &st);
    if (!err) {
        bind_text(st, 1, channel);
        bind_text(st, 2, (const char *)arr.data);
        err = run(s, st, "notify");
    }
    mgo_buf_cleanup(&arr);
    return err;
}
