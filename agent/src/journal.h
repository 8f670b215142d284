/* journal.h - the on-disk status journal (private to agent/).
 *
 * Every status transition is appended (and fsync'd) before it is published. An entry then
 * lives through two acknowledgements (docs/protocol.md §6.3):
 *   delivered  the broker acknowledged the publish (PUBACK): an ACK frame is appended;
 *   settled    the manager's receipt says it has stored every status up to a position:
 *              a STORED frame is appended and the entries up to it are dropped.
 * An entry is kept until it is settled, so a status the broker acknowledged but a manager
 * lost (killed, or its store failed, between PUBACK and commit) can still be replayed.
 * After a restart, entries not delivered are published again, in append order, with their
 * original (boot, seq), so a reader can tell a re-send from a new transition.
 * Between the two, an entry may be sent: handed to MQTT for the status topic, so the broker
 * may have it even though no acknowledgement was recorded (the agent killed, or the
 * connection lost, before the PUBACK was handled). A SENT frame records that before the
 * publish, so the reporter never re-sends an older entry on the status topic after a newer
 * one that may have reached it.
 *
 * Frame (little endian):
 *   u32 magic "MGJ1" | u8 type (1 status, 2 ack, 3 stored, 4 sent) | u64 boot | u64 seq |
 *   u8 id_len | u32 payload_len | id bytes | payload bytes | u32 crc32 of everything before it.
 * A stored frame (boot, seq) drops every entry at or before that position.
 * A torn or corrupt tail (crash during append) is cut off at the last whole frame. */
#ifndef MGO_AGENT_JOURNAL_H
#define MGO_AGENT_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/err.h"
#include "mgo/limits.h"

/* Unsettled entries kept at most (a device offline, or its manager away, for very long).
 * When full, the oldest delivered entry is dropped (logged) to make room; when none is
 * delivered, appends are refused. */
#define MGO_JOURNAL_MAX_PENDING 65536u
/* Rewrite the file (dropping acknowledged frames) when it grows past this. */
#define MGO_JOURNAL_COMPACT_BYTES (1024u * 1024u)

struct mgo_journal_entry {
    uint64_t boot;
    uint64_t seq;
    char deployment_id[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    uint8_t *payload; /* owned by the journal */
    size_t payload_len;
    bool delivered; /* the broker acknowledged it (persisted as an ACK frame) */
    bool sent;      /* handed to MQTT for the status topic at least once (a SENT frame) */
    bool replay;    /* the manager may have lost it: send it again on the replay topic
                     * (kept in memory only: after a restart the first receipt decides) */
};

/* The newest position of a deployment's entries that is delivered or sent (superseded). */
struct mgo_journal_mark {
    char deployment_id[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    uint64_t boot, seq;
};

struct mgo_journal {
    int fd;
    char path[1024];
    uint64_t size;                     /* bytes of whole frames in the file */
    struct mgo_journal_entry *pending; /* not settled, in append (= position) order */
    size_t pending_len;
    size_t pending_cap;
    uint64_t dropped_unsettled; /* delivered entries dropped because the journal was
                                 * full before the manager settled them */
    /* Kept up to date so that delivering a backlog of n entries costs O(n log n), not
     * O(n^2): every delivery would otherwise walk the whole journal. */
    size_t done;                    /* pending[0..done) are delivered and not marked for replay */
    uint64_t live_bytes;            /* the frames the pending entries need (compaction) */
    struct mgo_journal_mark *marks; /* one per deployment with a delivered or sent entry */
    size_t marks_len, marks_cap;
    size_t marks_limit; /* rebuilt (dropping deployments with no entry left) past this */
    bool marks_ok;      /* false after an allocation failure: superseded() walks the entries */
};

/* Opens (creating) the journal, cuts a torn tail, loads unacknowledged entries. */
mgo_err mgo_journal_open(const char *path, struct mgo_journal *j) MGO_MUST_CHECK;
void mgo_journal_close(struct mgo_journal *j);

/* Appends a status entry and fsyncs. MGO_ERR_LIMIT when MGO_JOURNAL_MAX_PENDING entries are
 * unsettled and none of them is delivered; MGO_ERR_IO when the disk refuses (nothing is then
 * published). */
mgo_err mgo_journal_append(struct mgo_journal *j, uint64_t boot, uint64_t seq,
                           const char *deployment_id, const void *payload,
                           size_t payload_len) MGO_MUST_CHECK;
/* Marks (boot, seq) delivered (an ACK frame). MGO_ERR_NOT_FOUND when there is no such
 * unsettled entry or it is marked already. */
mgo_err mgo_journal_ack(struct mgo_journal *j, uint64_t boot, uint64_t seq) MGO_MUST_CHECK;
/* (boot, seq) is about to be published on the status topic: a SENT frame, written but not
 * synced (it survives the agent being killed, not a power loss). MGO_ERR_NOT_FOUND when
 * there is no such unsettled entry or it is marked (or delivered) already. */
mgo_err mgo_journal_sent(struct mgo_journal *j, uint64_t boot, uint64_t seq) MGO_MUST_CHECK;
/* The manager has stored everything up to (boot, seq): drops the leading entries at or
 * before that position, stopping at the first one marked for replay (the manager may not
 * hold it; it is settled once its replay is delivered and this is called again). Appends a
 * STORED frame for what was dropped (not synced: losing it only means replaying again).
 * *dropped_out (optional) receives the count. */
mgo_err mgo_journal_settle(struct mgo_journal *j, uint64_t boot, uint64_t seq,
                           size_t *dropped_out) MGO_MUST_CHECK;
/* Marks every delivered entry after (boot, seq) for replay; returns how many. */
size_t mgo_journal_mark_replay(struct mgo_journal *j, uint64_t boot, uint64_t seq);
/* The replay of (boot, seq) was delivered: it no longer holds settling. */
void mgo_journal_replayed(struct mgo_journal *j, uint64_t boot, uint64_t seq);
/* Index of the first entry that is not delivered, or is marked for replay: every entry
 * before it needs nothing more than its receipt. */
size_t mgo_journal_first_due(const struct mgo_journal *j);
/* Whether a newer entry of pending[i]'s deployment is delivered or sent: published on the
 * status topic, pending[i] would make the retained status go backwards. O(deployments). */
bool mgo_journal_superseded(const struct mgo_journal *j, size_t i);
/* Rewrites the file with only the unsettled entries and their ACK frames (atomic replace). */
mgo_err mgo_journal_compact(struct mgo_journal *j) MGO_MUST_CHECK;

uint32_t mgo_journal__crc32(const void *data, size_t len);

#endif
