/* test_journal.c - status journal: replay order, delivery ACKs, settling by the manager's
 * receipt, replay marks, the bound, and recovery from a crash at every byte of an append. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "mgo_test.h"
#include "state.h"

static char dir[256];
static char path[512];

static void fresh(void)
{
    mgo_test_tmpdir("agent-journal", dir);
    snprintf(path, sizeof path, "%s/journal", dir);
}

static void drop(void)
{
    CU_ASSERT(mgo_agent__rm_rf(dir) == MGO_OK);
}

static off_t file_size(void)
{
    struct stat sb;
    CU_ASSERT_FATAL(stat(path, &sb) == 0);
    return sb.st_size;
}

static void append(struct mgo_journal *j, uint64_t boot, uint64_t seq, const char *id,
                   const char *payload)
{
    CU_ASSERT_FATAL(mgo_journal_append(j, boot, seq, id, payload, strlen(payload)) == MGO_OK);
}

/* Delivered entries stay until settled; only undelivered ones are re-sent after a restart. */
static void test_delivered_kept_until_settled(void)
{
    fresh();
    struct mgo_journal j;
    CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
    append(&j, 1, 1, "dep-a", "installing");
    append(&j, 1, 2, "dep-b", "pending");
    append(&j, 1, 3, "dep-a", "installed");
    CU_ASSERT(mgo_journal_ack(&j, 1, 1) == MGO_OK);
    CU_ASSERT(mgo_journal_ack(&j, 1, 1) == MGO_ERR_NOT_FOUND); /* twice: no new frame */
    mgo_journal_close(&j);

    CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
    CU_ASSERT_EQUAL_FATAL(j.pending_len, 3);
    CU_ASSERT(j.pending[0].seq == 1 && j.pending[0].delivered);
    CU_ASSERT(j.pending[1].seq == 2 && !j.pending[1].delivered);
    CU_ASSERT_STRING_EQUAL(j.pending[1].deployment_id, "dep-b");
    CU_ASSERT_EQUAL(j.pending[2].payload_len, strlen("installed"));
    CU_ASSERT(memcmp(j.pending[2].payload, "installed", 9) == 0);
    /* acks out of order are fine */
    CU_ASSERT(mgo_journal_ack(&j, 1, 3) == MGO_OK);
    append(&j, 2, 1, "dep-b", "installed");
    /* the manager stored up to (1, 2): two entries go, settling is idempotent */
    size_t dropped = 0;
    CU_ASSERT(mgo_journal_settle(&j, 1, 2, &dropped) == MGO_OK);
    CU_ASSERT_EQUAL(dropped, 2);
    CU_ASSERT(mgo_journal_settle(&j, 1, 2, &dropped) == MGO_OK);
    CU_ASSERT_EQUAL(dropped, 0);
    mgo_journal_close(&j);

    CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
    CU_ASSERT_EQUAL_FATAL(j.pending_len, 2);
    CU_ASSERT(j.pending[0].boot == 1 && j.pending[0].seq == 3 && j.pending[0].delivered);
    CU_ASSERT(j.pending[1].boot == 2 && j.pending[1].seq == 1 && !j.pending[1].delivered);
    /* a position across boots settles everything before it */
    CU_ASSERT(mgo_journal_settle(&j, 2, 1, &dropped) == MGO_OK);
    CU_ASSERT_EQUAL(dropped, 2);
    mgo_journal_close(&j);

    /* everything settled: reopening compacts the file to nothing */
    CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
    CU_ASSERT_EQUAL(j.pending_len, 0);
    CU_ASSERT_EQUAL(file_size(), 0);
    mgo_journal_close(&j);
    drop();
}

/* A new manager epoch marks the delivered entries beyond its receipt for replay; settling
 * stops at a marked entry until its replay is delivered. */
static void test_replay_marks_hold_settling(void)
{
    fresh();
    struct mgo_journal j;
    CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
    for (uint64_t seq = 1; seq <= 4; seq++) {
        append(&j, 7, seq, "dep", "s");
        if (seq <= 3)
            CU_ASSERT(mgo_journal_ack(&j, 7, seq) == MGO_OK);
    }
    /* the manager restarted having stored only (7, 1): 2 and 3 were delivered, 4 was not */
    CU_ASSERT_EQUAL(mgo_journal_mark_replay(&j, 7, 1), 2);
    CU_ASSERT(!j.pending[0].replay && j.pending[1].replay && j.pending[2].replay);
    CU_ASSERT(!j.pending[3].replay);
    /* a receipt beyond them (a newer status arrived first) does not drop them */
    size_t dropped = 0;
    CU_ASSERT(mgo_journal_settle(&j, 7, 4, &dropped) == MGO_OK);
    CU_ASSERT_EQUAL(dropped, 1);
    CU_ASSERT_EQUAL_FATAL(j.pending_len, 3);
    CU_ASSERT_EQUAL(j.pending[0].seq, 2);
    /* their replays delivered: settling again drops everything the receipt covers */
    j.pending[0].replay = false;
    j.pending[1].replay = false;
    CU_ASSERT(mgo_journal_settle(&j, 7, 4, &dropped) == MGO_OK);
    CU_ASSERT_EQUAL(dropped, 3);
    CU_ASSERT_EQUAL(j.pending_len, 0);
    mgo_journal_close(&j);
    drop();
}

/* A crash can stop an append after any byte. For every cut, reopening must keep every whole
 * frame before it, drop the torn one, and accept new appends that survive the next open. */
static void test_crash_at_every_byte(void)
{
    fresh();
    struct mgo_journal j;
    CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
    append(&j, 3, 1, "dep-a", "first");
    off_t first_end = file_size();
    append(&j, 3, 2, "dep-a", "second-status-payload");
    off_t full = file_size();
    mgo_journal_close(&j);

    char *orig = NULL;
    size_t orig_len = 0;
    orig = mgo_test_read_file(path, &orig_len);
    CU_ASSERT_EQUAL_FATAL((off_t)orig_len, full);

    for (off_t cut = first_end; cut < full; cut++) {
        int fd = open(path, O_WRONLY | O_TRUNC);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_FATAL(write(fd, orig, (size_t)cut) == (ssize_t)cut);
        close(fd);
        CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
        CU_ASSERT_EQUAL(j.pending_len, 1);
        CU_ASSERT_EQUAL(j.pending[0].seq, 1);
        CU_ASSERT_EQUAL(file_size(), first_end);
        append(&j, 3, 3, "dep-a", "after-crash");
        mgo_journal_close(&j);
        CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
        CU_ASSERT_EQUAL_FATAL(j.pending_len, 2);
        CU_ASSERT_EQUAL(j.pending[1].seq, 3);
        mgo_journal_close(&j);
    }
    free(orig);
    drop();
}

/* A flipped byte inside the last frame (bad sector, partial page write) is detected by the CRC. */
static void test_corrupt_tail_detected(void)
{
    fresh();
    struct mgo_journal j;
    CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
    append(&j, 1, 1, "d", "aaaa");
    append(&j, 1, 2, "d", "bbbb");
    mgo_journal_close(&j);
    int fd = open(path, O_RDWR);
    CU_ASSERT_FATAL(fd >= 0);
    off_t end = lseek(fd, 0, SEEK_END);
    CU_ASSERT_FATAL(pwrite(fd, "X", 1, end - 6) == 1);
    close(fd);
    CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
    CU_ASSERT_EQUAL(j.pending_len, 1);
    mgo_journal_close(&j);
    drop();
}

/* A crash between the status append and its ACK re-sends it (same boot, seq) once. */
static void test_crash_before_ack_resends_same_position(void)
{
    fresh();
    struct mgo_journal j;
    CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
    append(&j, 4, 9, "dep", "installed");
    mgo_journal_close(&j); /* "crash": published maybe, ack never written */
    CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
    CU_ASSERT_EQUAL_FATAL(j.pending_len, 1);
    CU_ASSERT(j.pending[0].boot == 4 && j.pending[0].seq == 9 && !j.pending[0].delivered);
    CU_ASSERT(mgo_journal_ack(&j, 4, 9) == MGO_OK);
    mgo_journal_close(&j);
    CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
    CU_ASSERT_EQUAL_FATAL(j.pending_len, 1);
    CU_ASSERT(j.pending[0].delivered);
    mgo_journal_close(&j);
    drop();
}

static void test_compaction_keeps_pending(void)
{
    fresh();
    struct mgo_journal j;
    CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
    char payload[2048];
    memset(payload, 'p', sizeof payload - 1);
    payload[sizeof payload - 1] = '\0';
    /* one unsettled entry marked for replay first, then twice the compaction threshold of
     * delivered and settled traffic: the file stays bounded and the old entry survives */
    append(&j, 1, 1, "dep", "kept");
    CU_ASSERT_FATAL(mgo_journal_ack(&j, 1, 1) == MGO_OK);
    CU_ASSERT_EQUAL(mgo_journal_mark_replay(&j, 0, 0), 1);
    uint64_t seq = 2;
    for (size_t bytes = 0; bytes < 2u * MGO_JOURNAL_COMPACT_BYTES; bytes += sizeof payload) {
        append(&j, 1, seq, "dep", payload);
        CU_ASSERT_FATAL(mgo_journal_ack(&j, 1, seq) == MGO_OK);
        /* settled one by one, except the replay-marked head, which holds the prefix: move
         * it out of the way as its delivered replay would */
        j.pending[0].replay = false;
        size_t dropped = 0;
        CU_ASSERT_FATAL(mgo_journal_settle(&j, 1, seq, &dropped) == MGO_OK);
        seq++;
        if (dropped > 0) {
            append(&j, 1, seq, "dep", "kept");
            CU_ASSERT_FATAL(mgo_journal_ack(&j, 1, seq) == MGO_OK);
            CU_ASSERT_EQUAL(mgo_journal_mark_replay(&j, 1, seq - 1), 1);
            seq++;
        }
    }
    CU_ASSERT((uint64_t)file_size() <= MGO_JOURNAL_COMPACT_BYTES + 4096u);
    append(&j, 1, seq, "dep", "last");
    mgo_journal_close(&j);
    CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
    CU_ASSERT_EQUAL_FATAL(j.pending_len, 2);
    CU_ASSERT(memcmp(j.pending[0].payload, "kept", 4) == 0);
    CU_ASSERT(j.pending[0].delivered);
    CU_ASSERT_EQUAL(j.pending[1].seq, seq);
    mgo_journal_close(&j);
    drop();
}

static void test_limits(void)
{
    fresh();
    struct mgo_journal j;
    CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
    char id[MGO_MAX_DEPLOYMENT_ID_LEN + 2];
    memset(id, 'i', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    CU_ASSERT(mgo_journal_append(&j, 1, 1, id, "x", 1) == MGO_ERR_LIMIT);
    id[MGO_MAX_DEPLOYMENT_ID_LEN] = '\0';
    CU_ASSERT(mgo_journal_append(&j, 1, 1, id, "x", 1) == MGO_OK);
    static uint8_t big[MGO_MAX_MESSAGE_BYTES + 1];
    CU_ASSERT(mgo_journal_append(&j, 1, 2, "d", big, sizeof big) == MGO_ERR_LIMIT);
    CU_ASSERT(mgo_journal_append(&j, 1, 2, "d", big, sizeof big - 1) == MGO_OK);
    mgo_journal_close(&j);
    CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
    CU_ASSERT_EQUAL(j.pending_len, 2);
    mgo_journal_close(&j);
    drop();
}

/* At the bound, the oldest delivered entry makes room (counted); an undelivered one never. */
static void test_full_drops_oldest_delivered(void)
{
    fresh();
    struct mgo_journal j;
    CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
    uint64_t seq = 1;
    for (; seq <= MGO_JOURNAL_MAX_PENDING; seq++)
        CU_ASSERT_FATAL(mgo_journal_append(&j, 1, seq, "d", "x", 1) == MGO_OK);
    CU_ASSERT(mgo_journal_append(&j, 1, seq, "d", "x", 1) == MGO_ERR_LIMIT);
    CU_ASSERT(mgo_journal_ack(&j, 1, 1) == MGO_OK);
    CU_ASSERT(mgo_journal_append(&j, 1, seq, "d", "x", 1) == MGO_OK);
    CU_ASSERT_EQUAL(j.pending_len, MGO_JOURNAL_MAX_PENDING);
    CU_ASSERT_EQUAL(j.pending[0].seq, 2);
    CU_ASSERT_EQUAL(j.dropped_unsettled, 1);
    mgo_journal_close(&j);
    CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
    CU_ASSERT_EQUAL(j.pending_len, MGO_JOURNAL_MAX_PENDING);
    CU_ASSERT_EQUAL(j.pending[0].seq, 2);
    CU_ASSERT_EQUAL(j.pending[MGO_JOURNAL_MAX_PENDING - 1].seq, seq);
    mgo_journal_close(&j);
    drop();
}

/* A SENT frame survives a restart and a compaction; an ACK implies sent; marking twice is
 * refused. */
static void test_sent_marks_persist(void)
{
    fresh();
    struct mgo_journal j;
    CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
    append(&j, 1, 1, "a", "p1");
    append(&j, 1, 2, "a", "p2");
    append(&j, 1, 3, "a", "p3");
    CU_ASSERT(mgo_journal_sent(&j, 1, 1) == MGO_OK);
    CU_ASSERT(mgo_journal_sent(&j, 1, 1) == MGO_ERR_NOT_FOUND);
    CU_ASSERT(mgo_journal_sent(&j, 9, 9) == MGO_ERR_NOT_FOUND);
    CU_ASSERT(mgo_journal_ack(&j, 1, 2) == MGO_OK);
    CU_ASSERT(mgo_journal_sent(&j, 1, 2) == MGO_ERR_NOT_FOUND);
    mgo_journal_close(&j);
    for (int round = 0; round < 2; round++) {
        CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
        CU_ASSERT_EQUAL_FATAL(j.pending_len, 3);
        CU_ASSERT(j.pending[0].sent && !j.pending[0].delivered);
        CU_ASSERT(j.pending[1].sent && j.pending[1].delivered);
        CU_ASSERT(!j.pending[2].sent && !j.pending[2].delivered);
        if (round == 0)
            CU_ASSERT(mgo_journal_compact(&j) == MGO_OK);
        mgo_journal_close(&j);
    }
    drop();
}

/* The bookkeeping that keeps delivery linear (first_due, superseded) says at every step what a
 * walk over all entries says: entries of three deployments, sent and acknowledged out of
 * order, marked for replay, replayed, settled, and the journal reopened. */
static bool brute_superseded(const struct mgo_journal *j, size_t i)
{
    for (size_t k = i + 1; k < j->pending_len; k++)
        if ((j->pending[k].delivered || j->pending[k].sent) &&
            strcmp(j->pending[k].deployment_id, j->pending[i].deployment_id) == 0)
            return true;
    return false;
}

static size_t brute_first_due(const struct mgo_journal *j)
{
    size_t n = 0;
    while (n < j->pending_len && j->pending[n].delivered && !j->pending[n].replay)
        n++;
    return n;
}

static size_t mismatches(const struct mgo_journal *j)
{
    size_t bad = mgo_journal_first_due(j) != brute_first_due(j);
    for (size_t i = 0; i < j->pending_len; i++)
        bad += mgo_journal_superseded(j, i) != brute_superseded(j, i);
    return bad;
}

static void test_bookkeeping_matches_a_full_walk(void)
{
    fresh();
    struct mgo_journal j;
    CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
    static const char *const deps[] = {"dep-a", "dep-b", "dep-c"};
    const uint64_t n = 300;
    for (uint64_t seq = 1; seq <= n; seq++)
        append(&j, 1, seq, deps[(seq * 7) % 3], "s");
    size_t bad = mismatches(&j);
    /* sent in a scattered order, every third one acknowledged */
    for (uint64_t k = 0; k < n; k++) {
        uint64_t seq = 1 + (k * 37) % n;
        if (k % 2 == 0)
            CU_ASSERT(mgo_journal_sent(&j, 1, seq) == MGO_OK);
        if (k % 3 == 0)
            CU_ASSERT(mgo_journal_ack(&j, 1, seq) == MGO_OK);
        if (k % 25 == 0)
            bad += mismatches(&j);
    }
    /* everything up to 120 acknowledged: first_due moves */
    for (uint64_t seq = 1; seq <= 120; seq++) {
        mgo_err err = mgo_journal_ack(&j, 1, seq); /* NOT_FOUND: acknowledged above */
        CU_ASSERT(err == MGO_OK || err == MGO_ERR_NOT_FOUND);
    }
    bad += mismatches(&j);
    CU_ASSERT(mgo_journal_first_due(&j) >= 120);
    /* a new manager epoch: delivered entries after 50 go again */
    CU_ASSERT(mgo_journal_mark_replay(&j, 1, 50) > 0);
    bad += mismatches(&j);
    CU_ASSERT_EQUAL(mgo_journal_first_due(&j), 50);
    for (uint64_t seq = 51; seq <= 80; seq++)
        mgo_journal_replayed(&j, 1, seq);
    bad += mismatches(&j);
    CU_ASSERT(mgo_journal_settle(&j, 1, 70, NULL) == MGO_OK);
    bad += mismatches(&j);
    mgo_journal_close(&j);
    CU_ASSERT_FATAL(mgo_journal_open(path, &j) == MGO_OK);
    bad += mismatches(&j);
    CU_ASSERT_EQUAL(bad, 0);
    mgo_journal_close(&j);
    drop();
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"delivered entries kept until settled", test_delivered_kept_until_settled},
        {"replay marks hold settling", test_replay_marks_hold_settling},
        {"full journal drops the oldest delivered entry", test_full_drops_oldest_delivered},
        {"crash at every byte of an append", test_crash_at_every_byte},
        {"corrupt tail detected by crc", test_corrupt_tail_detected},
        {"crash before ack re-sends same (boot, seq)", test_crash_before_ack_resends_same_position},
        {"compaction keeps pending entries", test_compaction_keeps_pending},
        {"sent marks persist across a restart and a compaction", test_sent_marks_persist},
        {"id and payload limits", test_limits},
        {"first_due and superseded match a full walk", test_bookkeeping_matches_a_full_walk},
        {NULL, NULL},
    };
    mgo_test_add_suite("agent.journal", cases);
}
