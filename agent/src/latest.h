/* latest.h - the latest status of each deployment, kept on disk (private to agent/).
 *
 * The journal (journal.h) drops an entry once the manager's receipt settles it, but a broker
 * that lost its store must still get every deployment's current status back as retained
 * (docs/protocol.md §6.1 step 5). So the reporter also keeps the newest journaled status of
 * each deployment here, the exact payload with its journal position, one file per deployment:
 *
 *   STATE_DIR/status/ID.status
 *     u32 magic "MGL1" | u64 boot | u64 seq | u32 payload_len | payload | u32 crc32 of all
 *     before it (little endian). Replaced atomically (state.h), so a crash leaves the old or
 *     the new file; a file that does not check out is logged and ignored (kept on disk).
 *
 *   STATE_DIR/status/restore-pending
 *     present from a connect that started a new broker session until every latest status
 *     it asked for has been restored, so an agent killed in between restores at its next
 *     start even if the broker kept the session that connect created.
 *
 * A deployment whose status is `removed` has no file: the manager clears its retained status
 * (§7.4 step 7), so it must not come back. The reporter writes the file after the journal
 * append, so after a crash between the two the journal holds the newer status; the reporter
 * brings this store up to date from the journal when it opens.
 *
 * Loop thread only (the reporter's). */
#ifndef MGO_AGENT_LATEST_H
#define MGO_AGENT_LATEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/err.h"
#include "mgo/limits.h"
#include "state.h"

/* Deployments with a latest status at most: as many as the agent keeps records of. */
#define MGO_LATEST_MAX (2u * MGO_MAX_DEPLOYMENTS)

struct mgo_latest_entry {
    char deployment_id[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    uint64_t boot, seq; /* its journal position */
    uint8_t *payload;   /* the status exactly as journaled and published; owned */
    size_t payload_len;
    bool restore; /* to publish again on the status topic (a new broker session) */
};

struct mgo_latest {
    char dir[MGO_AGENT_MAX_PATH];
    struct mgo_latest_entry items[MGO_LATEST_MAX]; /* in no particular order */
    size_t len;
    bool pending_file; /* restore-pending exists */
};

/* Creates dir if needed and loads every ID.status in it; with restore-pending there, every
 * entry starts marked for restore. MGO_ERR_IO when the folder cannot
 * be made or read, MGO_ERR_LIMIT (logged) when it holds more than MGO_LATEST_MAX files (the
 * first ones are kept), MGO_ERR_NOMEM. */
mgo_err mgo_latest_open(struct mgo_latest *l, const char *dir) MGO_MUST_CHECK;
void mgo_latest_close(struct mgo_latest *l);

/* The held entry of a deployment, or NULL. */
struct mgo_latest_entry *mgo_latest_find(struct mgo_latest *l, const char *deployment_id);

/* Makes (boot, seq, payload) the deployment's latest status, in memory and on disk, unless
 * the held one is at the same or a newer position (then nothing changes). MGO_ERR_IO when
 * the file cannot be written (memory is updated anyway: this run still restores it),
 * MGO_ERR_LIMIT when MGO_LATEST_MAX deployments are held, MGO_ERR_NOMEM. */
mgo_err mgo_latest_put(struct mgo_latest *l, const char *deployment_id, uint64_t boot, uint64_t seq,
                       const void *payload, size_t payload_len) MGO_MUST_CHECK;
/* The deployment's status at (boot, seq) is `removed`: forgets what is held (unless it is
 * newer) and deletes its file. MGO_ERR_IO when the file cannot be deleted. */
mgo_err mgo_latest_forget(struct mgo_latest *l, const char *deployment_id, uint64_t boot,
                          uint64_t seq) MGO_MUST_CHECK;

/* A new broker session: every entry is to be restored; the restore-pending file says so
 * durably. MGO_ERR_IO when the file cannot be written (the flags are set anyway). */
mgo_err mgo_latest_restore_all(struct mgo_latest *l) MGO_MUST_CHECK;
/* Deletes restore-pending once no entry is waiting to be restored (call after clearing
 * flags). MGO_ERR_IO when it cannot be deleted. */
mgo_err mgo_latest_restore_check(struct mgo_latest *l) MGO_MUST_CHECK;

/* File contents (exposed for tests). parse checks magic, lengths and the crc. */
mgo_err mgo_latest__format(uint64_t boot, uint64_t seq, const void *payload, size_t payload_len,
                           struct mgo_buf *out) MGO_MUST_CHECK;
mgo_err mgo_latest__parse(const uint8_t *data, size_t len, uint64_t *boot, uint64_t *seq,
                          const uint8_t **payload, size_t *payload_len) MGO_MUST_CHECK;

#endif
