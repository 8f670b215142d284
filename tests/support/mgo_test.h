/* mgo_test.h - the test kit shared by every test binary (tests/support, linked as
 * mgo_test_support by mgo_add_test() in tests/CMakeLists.txt).
 *
 * Each tests/<area>/test_*.c defines mgo_test_register(), which adds its suites with
 * CU_add_suite()/CU_add_test(); cunit_main.c runs them, prints CUnit's summary and exits
 * non-zero when any assertion failed. MGO_SOURCE_DIR and MGO_BINARY_DIR point at the
 * repository and the build folder.
 *
 * The kit, one header per job, every name mgo_test_*:
 *   mgo_test.h      suites, paths, files, temporary folders, time, shell commands, ports,
 *                   the process's log lines captured
 *   proc.h          child processes with their output in a log file; waiting for a log line
 *   http.h          one HTTP request; a reply parsed as JSON
 *   mqtt_client.h   a connected MQTT client; YAML documents published as MessagePack
 *   broker.h        a private Mosquitto on a free loopback port
 *   manager_thread.h margo-manager in-process, its loop on a thread
 * Kit functions do not assert (web_harness is no CUnit binary): they report failure through
 * their result and print the reason on stderr; the test asserts. */
#ifndef MGO_TEST_H
#define MGO_TEST_H

#include <CUnit/CUnit.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void mgo_test_register(void);

/* Adds a suite with the given tests (NULL-terminated {name, fn} pairs). */
struct mgo_test_case {
    const char *name;
    void (*fn)(void);
};
void mgo_test_add_suite(const char *suite, const struct mgo_test_case *cases);

/* Path under the source tree: MGO_SOURCE_DIR "/" rel. Static buffer (one at a time). */
const char *mgo_test_path(const char *rel);
/* Reads a file into a malloc'd buffer (NUL-terminated); aborts the test binary on error. */
char *mgo_test_read_file(const char *path, size_t *len_out);
/* Lines of a file containing needle (0 when the file does not exist). */
size_t mgo_test_count_lines(const char *path, const char *needle);
bool mgo_test_file_exists(const char *path);
/* Writes text to a new (or truncated) file; false after a message when it cannot. */
bool mgo_test_write_file(const char *path, const char *text);
/* First integer in a file (a pid file); 0 when absent. */
long mgo_test_read_long(const char *path);

/* Every temporary folder of the tests starts with this. */
#define MGO_TEST_TMP_PREFIX "/tmp/mgo-test-"
/* Makes a fresh folder MGO_TEST_TMP_PREFIX "<what>-XXXXXX" into out; exits the test binary
 * (status 2) when it cannot: nothing can be tested. */
void mgo_test_tmpdir(const char *what, char out[256]);
/* Removes path and everything below it (not following links); only below
 * MGO_TEST_TMP_PREFIX, anything else is left alone with a message. */
void mgo_test_rm_rf(const char *path);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t mgo_test_now_ms(void);
/* Sleeps ms milliseconds (restarts after signals). */
void mgo_test_sleep_ms(int ms);

/* Runs a shell command (test set-up only); its exit status, -1 when it could not run or
 * ended by a signal. */
int mgo_test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same, with the command's first output line (without its newline) in out. */
int mgo_test_sh_out(char *out, size_t out_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* tests/agent/fake-helm (a recorded helm CLI) for the children started from now on: its call
 * log dir/helm.log, its releases in dir/releases, every command answering as mode says
 * ("success", "failure", ...; no per-subcommand mode). log and releases (512 bytes each, may be
 * NULL) receive the paths. It changes the environment: call it before starting threads. */
void mgo_test_fake_helm_env(const char *dir, const char *mode, char *log, char *releases);

/* A loopback TCP port that was free a moment ago; -1 when none could be bound. */
int mgo_test_free_port(void);
/* Whether something accepts connections on 127.0.0.1:port. */
bool mgo_test_port_open(int port);

/* From now on every mgo_log line of the process ("tag: line\n", any thread) is also kept in
 * one buffer of at most cap bytes (the log level stays as it is). */
void mgo_test_log_capture_start(size_t cap);
/* The text captured so far ("" when none; *len its length, len may be NULL). No line is
 * added until mgo_test_log_capture_unlock(). */
const char *mgo_test_log_capture_lock(size_t *len);
void mgo_test_log_capture_unlock(void);
/* Back to the default sink; the text is freed. */
void mgo_test_log_capture_stop(void);

#endif
