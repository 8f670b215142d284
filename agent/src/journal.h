/* journal.h - the on-disk status journal (private to agent/).
 *
 * Every status transition is appended (and fsync'd) before it is published; the broker's
 * acknowledgement appends an ACK frame. After a restart or reconnect, entries without an
 * ACK are published again, in append order, with their original (boot, seq), so a reader
 * can tell a re-send from a new transition.
 *
 * Frame (little endian):
 *   u32 magic "MGJ1" | u8 type (1 status, 2 ack) | u64 boot | u64 seq | u8 id_len |
 *   u32 payload_len | id bytes | payload bytes | u32 crc32 of everything before it.
 * A torn or corrupt tail (crash during append) is cut off at the last whole frame. */
#ifndef MGO_AGENT_JOURNAL_H
#define MGO_AGENT_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/err.h"
#include "mgo/limits.h"

/* Unacknowledged entries kept at most (a device offline for very long). */
#define MGO_JOURNAL_MAX_PENDING 65536u
/* Rewrite the file (dropping acknowledged frames) when it grows past this. */
#define MGO_JOURNAL_COMPACT_BYTES (1024u * 1024u)

struct mgo_journal_entry {
    uint64_t boot;
    uint64_t seq;
    char deployment_id[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    uint8_t *payload; /* owned by the journal */
    size_t payload_len;
};

struct mgo_journal {
    int fd;
    char path[1024];
    uint64_t size;                    /* bytes of whole frames in the file */
    struct mgo_journal_entry *pending; /* unacknowledged, in append order */
    size_t pending_len;
    size_t pending_cap;
};

/* Opens (creating) the journal, cuts a torn tail, loads unacknowledged entries. */
mgo_err mgo_journal_open(const char *path, struct mgo_journal *j) MGO_MUST_CHECK;
void mgo_journal_close(struct mgo_journal *j);

/* Appends a status entry and fsyncs. MGO_ERR_LIMIT when MGO_JOURNAL_MAX_PENDING entries are
 * unacknowledged; MGO_ERR_IO when the disk refuses (nothing is then published). */
mgo_err mgo_journal_append(struct mgo_journal *j, uint64_t boot, uint64_t seq,
                           const char *deployment_id, const void *payload, size_t payload_len)
    MGO_MUST_CHECK;
/* Marks (boot, seq) delivered. MGO_ERR_NOT_FOUND when no such pending entry (already acked). */
mgo_err mgo_journal_ack(struct mgo_journal *j, uint64_t boot, uint64_t seq) MGO_MUST_CHECK;
/* Rewrites the file with only the pending entries (atomic replace). */
mgo_err mgo_journal_compact(struct mgo_journal *j) MGO_MUST_CHECK;

uint32_t mgo_journal__crc32(const void *data, size_t len);

#endif
