/* db_pg.c - the PostgreSQL driver of the store's SQL interface (see db.h), over libpq.
 *
 * SQL arrives in the store's dialect and is translated once, at prepare time: `?N` and bare
 * `?` placeholders become `$N` (outside string literals); in migrations (exec with ddl) the
 * SQLite column types become PostgreSQL's (INTEGER -> BIGINT, BLOB -> BYTEA, INTEGER PRIMARY
 * KEY AUTOINCREMENT -> an identity column), WITHOUT ROWID is dropped and every other table
 * gets SQLite's implicit rowid as a column of its own (add_rowids).
 *
 * Statements are server-side prepared statements (PQprepare), named per connection and
 * prepared on their first step with the types of their bindings (INT8, TEXT, BYTEA), so that
 * `$1 IS NULL` has a type; a statement is prepared again when the connection was replaced.
 * Values go as text (integers, text) or binary (bytea); results come back as text and are
 * read as the SQLite driver's are: integers parsed, booleans 't'/'f' as 1/0, bytea decoded.
 *
 * Transactions: depth 0 -> BEGIN, deeper levels are savepoints; COMMIT of a transaction that
 * failed is reported as an error. A lost connection fails the statement; the next use
 * reconnects (PQreset), except while the transaction that the connection carried is still
 * open in the store: its statements fail until the store rolls it back. */
#include "db.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgo/log.h"

#define TAG "store"

/* Type OIDs of the built-in types (pg_type.dat; stable across releases). */
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_TEXT 25

/* A statement's statement_timeout: a database that stops answering fails the statement
 * after this long instead of holding the manager's loop forever (docs/architecture.md). */
#define PG_STATEMENT_TIMEOUT_MS 30000
#define PG_CONNECT_TIMEOUT_S "10"
/* The advisory lock key of migrations ("mgo-migr" as 8 bytes). */
#define PG_MIGRATION_LOCK 0x6d676f2d6d696772LL
#define PG_MAX_PARAMS 64
#define PG_MAX_BLOB_COLS 4

struct pg_db {
    struct mgo_db base;
    PGconn *c;
    char *url;
    unsigned gen;     /* bumped when the connection is replaced */
    unsigned next_id; /* statement names m<id> */
    bool tx_open;     /* a BEGIN on this connection not yet ended */
    bool tx_lost;     /* the connection died inside a transaction the store still has */
    char sqlstate[6];
    int64_t changes;
    char err[512];
};

struct pg_param {
    Oid type; /* 0: null of no type (bind_null, unbound) */
    bool null;
    int len;
    int fmt;   /* 0 text, 1 binary */
    char *buf; /* text or bytes (owned, grows) */
    size_t cap;
    char num[24]; /* an integer as text */
};

struct pg_blob {
    int col;
    unsigned char *data; /* PQunescapeBytea (PQfreemem) */
    size_t len;
};

struct pg_stmt {
    struct mgo_db_stmt base;
    struct pg_db *db;
    char *sql; /* translated */
    int nparams;
    uint64_t used; /* bit i-1: $i appears in the text */
    struct pg_param *params;
    Oid *prepared_types;   /* the types it was prepared with */
    unsigned prepared_gen; /* 0: not prepared */
    char name[16];
    PGresult *res;
    int row;
    int nrows;
    struct pg_blob blobs[PG_MAX_BLOB_COLS];
    size_t nblobs;
};

static struct pg_db *db_of(struct mgo_db *db)
{
    return (struct pg_db *)db;
}

static struct pg_stmt *st_of(struct mgo_db_stmt *st)
{
    return (struct pg_stmt *)st;
}

static void set_err(struct pg_db *d, const char *state, const char *msg)
{
    snprintf(d->sqlstate, sizeof d->sqlstate, "%s", state ? state : "");
    snprintf(d->err, sizeof d->err, "%s", msg ? msg : "?");
    size_t n = strlen(d->err);
    while (n > 0 && (d->err[n - 1] == '\n' || d->err[n - 1] == ' '))
        d->err[--n] = '\0';
}

static void set_err_res(struct pg_db *d, const PGresult *res)
{
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    if (msg == NULL || *msg == '\0')
        msg = PQerrorMessage(d->c);
    set_err(d, res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL, msg);
    if (PQstatus(d->c) != CONNECTION_OK && d->tx_open) {
        d->tx_lost = true;
        d->tx_open = false;
    }
}

static void on_notice(void *arg, const char *msg)
{
    (void)arg;
    MGO_LOGD(TAG, "postgresql: %s", msg);
}

/* After connecting: the session's settings. */
static int session_setup(struct pg_db *d)
{
    PQsetNoticeProcessor(d->c, on_notice, NULL);
    char sql[96];
    snprintf(sql, sizeof sql, "SET statement_timeout = %d", PG_STATEMENT_TIMEOUT_MS);
    PGresult *res = PQexec(d->c, sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc)
        set_err_res(d, res);
    PQclear(res);
    return rc;
}

/* Makes sure the connection is up before a statement: a lost one is replaced (the store's
 * statements are prepared again on their next step). */
static int ensure_conn(struct pg_db *d)
{
    if (d->tx_lost) {
        set_err(d, "08006", "the connection to PostgreSQL was lost inside this transaction");
        return -1;
    }
    if (PQstatus(d->c) == CONNECTION_OK)
        return 0;
    MGO_LOGW(TAG, "postgresql: connection lost; reconnecting");
    PQreset(d->c);
    d->gen++;
    if (PQstatus(d->c) != CONNECTION_OK) {
        set_err(d, "08006", PQerrorMessage(d->c));
        return -1;
    }
    return session_setup(d);
}

/* ---- SQL translation --------------------------------------------------------------------- */

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static bool is_word(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* The word at p equals w (case-sensitive, as the store writes its keywords upper case). */
static bool word_at(const char *start, const char *p, const char *w)
{
    size_t n = strlen(w);
    if (strncmp(p, w, n) != 0 || is_word(p[n]))
        return false;
    return p == start || !is_word(p[-1]);
}

static const struct {
    const char *from, *to;
} DDL_WORDS[] = {
    {"INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"},
    {"INTEGER", "BIGINT"},
    {"BLOB", "BYTEA"},
    {" WITHOUT ROWID", ""},
};

/* SQLite gives every table an implicit rowid (insertion order, which the store orders by)
 * unless it is WITHOUT ROWID or has an INTEGER PRIMARY KEY AUTOINCREMENT (its alias): each
 * other CREATE TABLE gets a column of that name here, filled by an identity. Appended last,
 * so that positional INSERTs fill the same columns as in SQLite. */
static void add_rowids(struct sbuf *b, const char *sql)
{
    static const char ROWID[] = ", rowid BIGINT GENERATED BY DEFAULT AS IDENTITY";
    const char *p = sql;
    const char *t;
    while ((t = strstr(p, "CREATE TABLE")) != NULL) {
        const char *open = strchr(t, '(');
        const char *end = strchr(t, ';');
        if (end == NULL)
            end = t + strlen(t);
        if (open == NULL || open > end)
            break;
        int depth = 0;
        const char *close = open;
        for (; close < end; close++) {
            depth += *close == '(' ? 1 : *close == ')' ? -1 : 0;
            if (depth == 0)
                break;
        }
        char stmt[2048];
        size_t n = (size_t)(end - t) < sizeof stmt - 1 ? (size_t)(end - t) : sizeof stmt - 1;
        memcpy(stmt, t, n);
        stmt[n] = '\0';
        sb_add(b, p, (size_t)(close - p));
        if (close < end && strstr(stmt, "AUTOINCREMENT") == NULL &&
            strstr(stmt, "WITHOUT ROWID") == NULL)
            sb_add(b, ROWID, sizeof ROWID - 1);
        p = close;
    }
    sb_add(b, p, strlen(p));
}

/* Translates sql (see the top of this file); *nparams: the highest placeholder. NULL when
 * out of memory. */
static char *translate(const char *sql, bool ddl, int *nparams, uint64_t *used)
{
    struct sbuf pre = {0};
    if (ddl) {
        add_rowids(&pre, sql);
        if (pre.oom) {
            free(pre.p);
            return NULL;
        }
        if (pre.p != NULL)
            sql = pre.p;
    }
    struct sbuf b = {0};
    int max = 0;
    const char *p = sql;
    while (*p) {
        if (*p == '\'') { /* a literal, '' inside */
            const char *q = p + 1;
            while (*q && !(q[0] == '\'' && q[1] != '\''))
                q += q[0] == '\'' ? 2 : 1;
            if (*q)
                q++;
            sb_add(&b, p, (size_t)(q - p));
            p = q;
            continue;
        }
        if (*p == '?') {
            int n;
            p++;
            if (*p >= '0' && *p <= '9') {
                n = 0;
                while (*p >= '0' && *p <= '9')
                    n = n * 10 + (*p++ - '0');
            } else {
                n = max + 1;
            }
            if (n > max)
                max = n;
            if (n >= 1 && n <= 64)
                *used |= 1ull << (n - 1);
            char num[16];
            int len = snprintf(num, sizeof num, "$%d", n);
            sb_add(&b, num, (size_t)len);
            continue;
        }
        bool done = false;
        for (size_t i = 0; ddl && i < sizeof DDL_WORDS / sizeof DDL_WORDS[0]; i++) {
            const char *from = DDL_WORDS[i].from;
            bool match = from[0] == ' '
                             ? strncmp(p, from, strlen(from)) == 0 && !is_word(p[strlen(from)])
                             : word_at(sql, p, from);
            if (match) {
                sb_add(&b, DDL_WORDS[i].to, strlen(DDL_WORDS[i].to));
                p += strlen(from);
                done = true;
                break;
            }
        }
        if (!done)
            sb_add(&b, p++, 1);
    }
    free(pre.p);
    if (b.oom || b.p == NULL) {
        free(b.p);
        return b.oom ? NULL : strdup("");
    }
    *nparams = max;
    return b.p;
}

/* ---- the driver -------------------------------------------------------------------------- */

static const struct mgo_db_ops PG_OPS;

static void pg_close(struct mgo_db *db)
{
    struct pg_db *d = db_of(db);
    PQfinish(d->c);
    free(d->url);
    free(d);
}

/* Runs sql without parameters (several statements allowed). */
static int simple(struct pg_db *d, const char *sql)
{
    if (ensure_conn(d) != 0)
        return -1;
    PGresult *res = PQexec(d->c, sql);
    ExecStatusType rs = PQresultStatus(res);
    int rc = 0;
    if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK) {
        set_err_res(d, res);
        rc = -1;
    }
    PQclear(res);
    return rc;
}

static int pg_exec(struct mgo_db *db, const char *sql, bool ddl)
{
    struct pg_db *d = db_of(db);
    int n = 0;
    uint64_t used = 0;
    char *t = translate(sql, ddl, &n, &used);
    if (t == NULL) {
        set_err(d, "53200", "out of memory");
        return -1;
    }
    int rc = simple(d, t);
    free(t);
    return rc;
}

static int pg_prepare(struct mgo_db *db, const char *sql, struct mgo_db_stmt **out)
{
    struct pg_db *d = db_of(db);
    struct pg_stmt *s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto fail_oom;
    s->base.ops = &PG_OPS;
    s->db = d;
    s->row = -1;
    s->sql = translate(sql, false, &s->nparams, &s->used);
    if (s->sql == NULL)
        goto fail_oom;
    if (s->nparams > PG_MAX_PARAMS) {
        set_err(d, "54023", "too many parameters");
        free(s->sql);
        free(s);
        return -1;
    }
    if (s->nparams > 0) {
        s->params = calloc((size_t)s->nparams, sizeof(*s->params));
        s->prepared_types = calloc((size_t)s->nparams, sizeof(*s->prepared_types));
        if (s->params == NULL || s->prepared_types == NULL)
            goto fail_oom;
        for (int i = 0; i < s->nparams; i++)
            s->params[i].null = true;
    }
    *out = &s->base;
    return 0;
fail_oom:
    if (s) {
        free(s->sql);
        free(s->params);
        free(s->prepared_types);
        free(s);
    }
    set_err(d, "53200", "out of memory");
    return -1;
}

static struct pg_param *param(struct mgo_db_stmt *st, int i)
{
    struct pg_stmt *s = st_of(st);
    if (i < 1 || i > s->nparams)
        return NULL; /* SQLite ignores it too (SQLITE_RANGE) */
    return &s->params[i - 1];
}

static void pg_bind_null(struct mgo_db_stmt *st, int i)
{
    struct pg_param *p = param(st, i);
    if (p) {
        p->null = true;
        p->type = 0;
    }
}

static void pg_bind_int64(struct mgo_db_stmt *st, int i, int64_t v)
{
    struct pg_param *p = param(st, i);
    if (p == NULL)
        return;
    p->type = OID_INT8;
    p->null = false;
    p->fmt = 0;
    p->len = snprintf(p->num, sizeof p->num, "%lld", (long long)v);
}

static bool param_copy(struct pg_stmt *s, struct pg_param *p, const void *data, size_t len)
{
    if (len + 1 > p->cap) {
        char *b = realloc(p->buf, len + 1);
        if (b == NULL) {
            set_err(s->db, "53200", "out of memory");
            return false;
        }
        p->buf = b;
        p->cap = len + 1;
    }
    if (len)
        memcpy(p->buf, data, len);
    p->buf[len] = '\0';
    p->len = (int)len;
    return true;
}

static void pg_bind_text(struct mgo_db_stmt *st, int i, const char *text)
{
    struct pg_param *p = param(st, i);
    if (p == NULL)
        return;
    p->type = OID_TEXT;
    p->fmt = 0;
    p->null = text == NULL || !param_copy(st_of(st), p, text, strlen(text));
}

static void pg_bind_blob(struct mgo_db_stmt *st, int i, const void *data, size_t len)
{
    struct pg_param *p = param(st, i);
    if (p == NULL)
        return;
    p->type = OID_BYTEA;
    p->fmt = 1;
    p->null = data == NULL || !param_copy(st_of(st), p, data, len);
}

static void clear_row(struct pg_stmt *s)
{
    for (size_t i = 0; i < s->nblobs; i++)
        PQfreemem(s->blobs[i].data);
    s->nblobs = 0;
}

static void clear_result(struct pg_stmt *s)
{
    clear_row(s);
    PQclear(s->res);
    s->res = NULL;
    s->row = -1;
    s->nrows = 0;
}

/* Prepares s on the current connection with the types of its bindings, when it is not yet
 * or when a binding's type differs from the one it was prepared with. */
static int ensure_prepared(struct pg_stmt *s)
{
    struct pg_db *d = s->db;
    bool again = s->prepared_gen != d->gen;
    for (int i = 0; !again && i < s->nparams; i++) {
        Oid t = s->params[i].type;
        again = t != 0 && s->prepared_types[i] != 0 && t != s->prepared_types[i];
    }
    if (!again)
        return 0;
    if (s->prepared_gen == d->gen) { /* same connection: the old one goes */
        char sql[40];
        snprintf(sql, sizeof sql, "DEALLOCATE %s", s->name);
        PQclear(PQexec(d->c, sql));
    }
    snprintf(s->name, sizeof s->name, "m%u", ++d->next_id);
    for (int i = 0; i < s->nparams; i++) /* one not in the text has no type to infer */
        s->prepared_types[i] =
            s->params[i].type != 0 || (s->used >> i & 1) ? s->params[i].type : OID_TEXT;
    PGresult *res = PQprepare(d->c, s->name, s->sql, s->nparams, s->prepared_types);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        set_err_res(d, res);
        rc = -1;
        s->prepared_gen = 0;
    } else {
        s->prepared_gen = d->gen;
    }
    PQclear(res);
    return rc;
}

static enum mgo_db_step pg_step(struct mgo_db_stmt *st)
{
    struct pg_stmt *s = st_of(st);
    struct pg_db *d = s->db;
    if (s->res != NULL) {
        clear_row(s);
        if (s->row + 1 < s->nrows) {
            s->row++;
            return MGO_DB_ROW;
        }
        s->row = s->nrows;
        return MGO_DB_DONE;
    }
    if (ensure_conn(d) != 0 || ensure_prepared(s) != 0)
        return MGO_DB_ERROR;
    const char *values[PG_MAX_PARAMS];
    int lens[PG_MAX_PARAMS], fmts[PG_MAX_PARAMS];
    for (int i = 0; i < s->nparams; i++) {
        struct pg_param *p = &s->params[i];
        values[i] = p->null ? NULL : p->type == OID_INT8 ? p->num : p->buf;
        lens[i] = p->len;
        fmts[i] = p->fmt;
    }
    PGresult *res = PQexecPrepared(d->c, s->name, s->nparams, values, lens, fmts, 0);
    ExecStatusType rs = PQresultStatus(res);
    if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK) {
        set_err_res(d, res);
        PQclear(res);
        return MGO_DB_ERROR;
    }
    const char *n = PQcmdTuples(res);
    d->changes = n && *n ? strtoll(n, NULL, 10) : 0;
    s->res = res;
    s->nrows = rs == PGRES_TUPLES_OK ? PQntuples(res) : 0;
    if (s->nrows > 0) {
        s->row = 0;
        return MGO_DB_ROW;
    }
    s->row = 0;
    return MGO_DB_DONE;
}

static bool have(struct pg_stmt *s, int i)
{
    return s->res != NULL && s->row >= 0 && s->row < s->nrows && i >= 0 && i < PQnfields(s->res) &&
           !PQgetisnull(s->res, s->row, i);
}

static int64_t pg_col_int64(struct mgo_db_stmt *st, int i)
{
    struct pg_stmt *s = st_of(st);
    if (!have(s, i))
        return 0;
    const char *v = PQgetvalue(s->res, s->row, i);
    if (v[0] == 't')
        return 1;
    if (v[0] == 'f')
        return 0;
    return strtoll(v, NULL, 10);
}

static const char *pg_col_text(struct mgo_db_stmt *st, int i)
{
    struct pg_stmt *s = st_of(st);
    if (!have(s, i))
        return NULL;
    return PQgetvalue(s->res, s->row, i);
}

/* The decoded bytes of a bytea column (cached for the row); other types: their text. */
static struct pg_blob *blob(struct pg_stmt *s, int i)
{
    for (size_t k = 0; k < s->nblobs; k++)
        if (s->blobs[k].col == i)
            return &s->blobs[k];
    if (s->nblobs == PG_MAX_BLOB_COLS || PQftype(s->res, i) != OID_BYTEA)
        return NULL;
    struct pg_blob *b = &s->blobs[s->nblobs];
    b->data = PQunescapeBytea((const unsigned char *)PQgetvalue(s->res, s->row, i), &b->len);
    if (b->data == NULL)
        return NULL;
    b->col = i;
    s->nblobs++;
    return b;
}

static const void *pg_col_blob(struct mgo_db_stmt *st, int i)
{
    struct pg_stmt *s = st_of(st);
    if (!have(s, i))
        return NULL;
    struct pg_blob *b = blob(s, i);
    return b ? (const void *)b->data : (const void *)PQgetvalue(s->res, s->row, i);
}

static size_t pg_col_bytes(struct mgo_db_stmt *st, int i)
{
    struct pg_stmt *s = st_of(st);
    if (!have(s, i))
        return 0;
    struct pg_blob *b = blob(s, i);
    return b ? b->len : (size_t)PQgetlength(s->res, s->row, i);
}

static bool pg_col_is_null(struct mgo_db_stmt *st, int i)
{
    return !have(st_of(st), i);
}

static void pg_reset(struct mgo_db_stmt *st)
{
    struct pg_stmt *s = st_of(st);
    clear_result(s);
    for (int i = 0; i < s->nparams; i++) {
        s->params[i].null = true;
        s->params[i].type = 0;
    }
}

static void pg_finish(struct mgo_db_stmt *st)
{
    struct pg_stmt *s = st_of(st);
    struct pg_db *d = s->db;
    clear_result(s);
    if (s->prepared_gen == d->gen && PQstatus(d->c) == CONNECTION_OK &&
        PQtransactionStatus(d->c) != PQTRANS_INERROR) {
        char sql[40];
        snprintf(sql, sizeof sql, "DEALLOCATE %s", s->name);
        PQclear(PQexec(d->c, sql));
    }
    for (int i = 0; i < s->nparams; i++)
        free(s->params[i].buf);
    free(s->params);
    free(s->prepared_types);
    free(s->sql);
    free(s);
}

static int64_t pg_changes(struct mgo_db *db)
{
    return db_of(db)->changes;
}

static const char *pg_errmsg(struct mgo_db *db)
{
    return db_of(db)->err;
}

/* The SQLSTATE's class as a number for logs (e.g. 23 integrity, 08 connection). */
static int pg_errcode(struct mgo_db *db)
{
    const char *st = db_of(db)->sqlstate;
    return (int)strtol(st, NULL, 36);
}

static enum mgo_db_errkind pg_errkind(struct mgo_db *db)
{
    const char *st = db_of(db)->sqlstate;
    if (strncmp(st, "23", 2) == 0)
        return MGO_DB_E_CONSTRAINT;
    if (strcmp(st, "53200") == 0)
        return MGO_DB_E_NOMEM;
    return MGO_DB_E_OTHER;
}

static int pg_savepoint(struct mgo_db *db, unsigned depth)
{
    struct pg_db *d = db_of(db);
    if (depth > 0)
        return simple(d, "SAVEPOINT mgo");
    if (simple(d, "BEGIN") != 0)
        return -1;
    d->tx_open = true;
    return 0;
}

static int pg_release(struct mgo_db *db, unsigned depth)
{
    struct pg_db *d = db_of(db);
    if (depth > 1)
        return simple(d, "RELEASE SAVEPOINT mgo");
    if (ensure_conn(d) != 0)
        return -1;
    PGresult *res = PQexec(d->c, "COMMIT");
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        set_err_res(d, res);
        rc = -1;
    } else if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        /* COMMIT of a failed transaction answers ROLLBACK without an error */
        set_err(d, "40000", "the transaction failed and was rolled back");
        rc = -1;
    }
    if (rc == 0 || PQtransactionStatus(d->c) == PQTRANS_IDLE)
        d->tx_open = false;
    PQclear(res);
    return rc;
}

static int pg_rollback(struct mgo_db *db, unsigned depth)
{
    struct pg_db *d = db_of(db);
    if (depth <= 1) {
        d->tx_open = false;
        if (d->tx_lost) { /* the server ended it with the connection */
            d->tx_lost = false;
            return 0;
        }
        if (PQstatus(d->c) != CONNECTION_OK)
            return 0;
        return simple(d, "ROLLBACK");
    }
    return simple(d, "ROLLBACK TO SAVEPOINT mgo; RELEASE SAVEPOINT mgo");
}

static int pg_migrate_begin(struct mgo_db *db)
{
    struct pg_db *d = db_of(db);
    char sql[96];
    snprintf(sql, sizeof sql, "BEGIN; SELECT pg_advisory_xact_lock(%lld)",
             (long long)PG_MIGRATION_LOCK);
    return simple(d, sql);
}

static const struct mgo_db_ops PG_OPS = {
    .name = "postgresql",
    .close = pg_close,
    .exec = pg_exec,
    .prepare = pg_prepare,
    .bind_int64 = pg_bind_int64,
    .bind_text = pg_bind_text,
    .bind_blob = pg_bind_blob,
    .bind_null = pg_bind_null,
    .step = pg_step,
    .col_int64 = pg_col_int64,
    .col_text = pg_col_text,
    .col_blob = pg_col_blob,
    .col_bytes = pg_col_bytes,
    .col_is_null = pg_col_is_null,
    .reset = pg_reset,
    .finish = pg_finish,
    .changes = pg_changes,
    .errmsg = pg_errmsg,
    .errcode = pg_errcode,
    .errkind = pg_errkind,
    .savepoint = pg_savepoint,
    .release = pg_release,
    .rollback = pg_rollback,
    .migrate_begin = pg_migrate_begin,
    .for_update = " FOR UPDATE",
};

int mgo_db_pg_open(const char *url, struct mgo_db **out)
{
    *out = NULL;
    struct pg_db *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -1;
    d->base.ops = &PG_OPS;
    d->gen = 1;
    *out = &d->base;
    d->url = strdup(url);
    if (d->url == NULL) {
        set_err(d, "53200", "out of memory");
        return -1;
    }
    /* connect_timeout first: one in the URL wins */
    /* ours first: those of the URL win */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {PG_CONNECT_TIMEOUT_S, "margo-manager", url, NULL};
    d->c = PQconnectdbParams(keys, vals, 1);
    if (d->c == NULL) {
        set_err(d, "53200", "out of memory");
        return -1;
    }
    if (PQstatus(d->c) != CONNECTION_OK) {
        set_err(d, "08006", PQerrorMessage(d->c));
        return -1;
    }
    return session_setup(d);
}
