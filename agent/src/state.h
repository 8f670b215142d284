/* state.h - the agent's durable state under its state directory (private to agent/).
 *
 *   STATE_DIR/agent.state               "manifest-version N" and "boot N" lines
 *   STATE_DIR/deployments/ID.rec        one record per deployment the agent knows
 *   STATE_DIR/docs/HEX.msgpack          deployment documents, content-addressed by digest
 *   STATE_DIR/journal                   the status journal (journal.h)
 *   STATE_DIR/status/ID.status          the latest status of each deployment (latest.h)
 *   STATE_DIR/work/                     runtime working folders
 *
 * Every file is replaced atomically: write DIR/.NAME.tmp, fsync, rename, fsync DIR.
 * A crash leaves either the old or the new file; stray .tmp files are ignored and removed. */
#ifndef MGO_AGENT_STATE_H
#define MGO_AGENT_STATE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/buf.h"
#include "mgo/digest.h"
#include "mgo/err.h"
#include "mgo/limits.h"
#include "mgo/margo.h"

#define MGO_AGENT_MAX_PATH 1024u

struct mgo_agent_state {
    char dir[MGO_AGENT_MAX_PATH];
    uint64_t manifest_version; /* last accepted manifestVersion; 0 = none yet */
    uint64_t boot;             /* incremented and persisted by every open */
};

/* What the agent knows about one deployment. The record is written before any action
 * (desired_* set) and after each outcome (installed_* set), so a restart resumes. */
struct mgo_dep_record {
    char id[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    char desired_digest[MGO_DIGEST_STR_SIZE];   /* document to run; "" when remove */
    char installed_digest[MGO_DIGEST_STR_SIZE]; /* document last applied; "" = nothing */
    char params_hash[MGO_DIGEST_STR_SIZE];      /* parameters of the installed document */
    char profile_hash[MGO_DIGEST_STR_SIZE];     /* deploymentProfile of the installed document */
    uint64_t adopted_manifest_version;          /* manifest the desired document came from */
    bool remove;                                /* absent from the accepted manifest */
    bool installed_ok;                          /* last apply of installed_digest succeeded */
    enum mgo_state state;                       /* last reported overall state */
};

/* Creates the folders if needed, loads agent.state (missing = fresh), increments boot and
 * persists it. MGO_ERR_IO (with the path logged), MGO_ERR_PARSE ("file:line: rule"). */
mgo_err mgo_agent_state_open(const char *dir, struct mgo_agent_state *st) MGO_MUST_CHECK;
/* Persists manifest_version and boot atomically. */
mgo_err mgo_agent_state_save(const struct mgo_agent_state *st) MGO_MUST_CHECK;

/* Path helpers (out has MGO_AGENT_MAX_PATH bytes); MGO_ERR_LIMIT when too long. */
mgo_err mgo_agent_state_path(const struct mgo_agent_state *st, const char *rel,
                             char *out) MGO_MUST_CHECK;

/* Records. load_all returns them sorted by id; a record file that does not parse is
 * reported and skipped (never deleted). */
mgo_err mgo_agent_record_save(const struct mgo_agent_state *st,
                              const struct mgo_dep_record *rec) MGO_MUST_CHECK;
mgo_err mgo_agent_record_load_all(const struct mgo_agent_state *st, struct mgo_dep_record *recs,
                                  size_t max, size_t *n_out) MGO_MUST_CHECK;
mgo_err mgo_agent_record_delete(const struct mgo_agent_state *st, const char *id) MGO_MUST_CHECK;
/* Parses / formats one record (exposed for tests). */
mgo_err mgo_agent_record_parse(const char *text, size_t len, const char *name,
                               struct mgo_dep_record *out) MGO_MUST_CHECK;
mgo_err mgo_agent_record_format(const struct mgo_dep_record *rec,
                                struct mgo_buf *out) MGO_MUST_CHECK;

/* Documents by their manifest digest ("sha256:<hex>", see mgo_doc_digest). The caller
 * re-checks the digest after decoding what doc_load returns. */
mgo_err mgo_agent_doc_save(const struct mgo_agent_state *st, const char *digest, const void *data,
                           size_t len) MGO_MUST_CHECK;
mgo_err mgo_agent_doc_load(const struct mgo_agent_state *st, const char *digest,
                           struct mgo_buf *out) MGO_MUST_CHECK;
/* Removes documents whose digest is not in keep[0..n). */
void mgo_agent_doc_gc(const struct mgo_agent_state *st, const char *const *keep, size_t n);

/* File helpers shared by the agent. */
mgo_err mgo_agent__write_atomic(const char *path, const void *data, size_t len) MGO_MUST_CHECK;
mgo_err mgo_agent__mkdir_p(const char *path) MGO_MUST_CHECK;
mgo_err mgo_agent__fsync_dir(const char *dir) MGO_MUST_CHECK;
/* Removes a folder tree (no symlink following). */
mgo_err mgo_agent__rm_rf(const char *path) MGO_MUST_CHECK;

#endif
