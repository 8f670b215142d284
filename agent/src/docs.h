/* docs.h - the agent's deployment-document cache (private to agent/).
 *
 * Holds the documents received from the broker in this run (one per deployment id: a newer
 * one replaces it) and the persisted documents that records still point at (loaded from
 * STATE_DIR/docs on demand, digest re-checked). Loop thread only; the cache owns every
 * byte it holds. Uses state.c for the disk; calls nothing else of the agent. */
#ifndef MGO_AGENT_DOCS_H
#define MGO_AGENT_DOCS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/arena.h"
#include "mgo/digest.h"
#include "mgo/err.h"
#include "mgo/limits.h"
#include "mgo/margo.h"
#include "state.h"

/* Documents held at most: a received and an installed one per deployment, plus slack. */
#define MGO_DOCS_MAX (2u * MGO_MAX_DEPLOYMENTS + 16u)

struct mgo_doc_entry {
    char id[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    char digest[MGO_DIGEST_STR_SIZE];
    char params_hash[MGO_DIGEST_STR_SIZE];
    char profile_hash[MGO_DIGEST_STR_SIZE];
    uint8_t *bytes; /* owned by the cache */
    size_t len;
    bool received; /* from the broker in this run (else loaded from disk) */
};

struct mgo_docs {
    const struct mgo_agent_state *st; /* borrowed: the state directory */
    struct mgo_doc_entry items[MGO_DOCS_MAX];
    size_t len;
};

void mgo_docs_init(struct mgo_docs *c, const struct mgo_agent_state *st);
void mgo_docs_cleanup(struct mgo_docs *c);

/* Decodes and validates a deployment document and fills e's digests (e->id is left as it
 * is). dep (optional) receives the struct, living in arena. why names the field and rule. */
mgo_err mgo_docs_examine(const uint8_t *bytes, size_t len, struct mgo_arena *arena,
                         struct mgo_doc_entry *e, struct mgo_app_deployment *dep, char *why,
                         size_t why_len) MGO_MUST_CHECK;

/* The held document of deployment id with that digest (NULL: any digest), or NULL. */
struct mgo_doc_entry *mgo_docs_find(struct mgo_docs *c, const char *id, const char *digest);
/* Like find, but loads a persisted document when it is not held (NULL when missing or
 * altered on disk; logged). */
const struct mgo_doc_entry *mgo_docs_for(struct mgo_docs *c, const char *id, const char *digest);

/* Copies bytes in. A received document replaces the previously received one of the same id.
 * MGO_ERR_LIMIT (MGO_DOCS_MAX held), MGO_ERR_NOMEM. */
mgo_err mgo_docs_put(struct mgo_docs *c, const struct mgo_doc_entry *e, const uint8_t *bytes,
                     size_t len, bool received) MGO_MUST_CHECK;
/* A retained document was cleared: forget the received one of that id. */
void mgo_docs_forget_received(struct mgo_docs *c, const char *id);

/* Drops held documents no record needs (neither desired nor installed; with keep_received,
 * received ones stay: they may belong to a manifest not accepted yet), then removes the
 * persisted documents no record names. pinned (optional): a digest kept anyway (the
 * document a running job applies: if it is cancelled, what it left is removed from it). */
void mgo_docs_prune(struct mgo_docs *c, const struct mgo_dep_record *recs, size_t n,
                    bool keep_received, const char *pinned);

#endif
