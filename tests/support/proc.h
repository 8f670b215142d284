/* proc.h - child processes for tests: a program started with its stdout and stderr appended
 * to a log file, waited for, stopped or killed; waiting for a line in a log.
 *
 *     const char *argv[] = {MGO_AGENT_BIN, "--device-id", "d1", NULL};
 *     pid_t pid = mgo_test_spawn(argv, "/tmp/.../agent.log");
 *     ... mgo_test_log_wait("/tmp/.../agent.log", "connected", 0, 10000) ...
 *     mgo_test_kill(pid, SIGTERM);
 *
 * Every child mgo_test_spawn() starts is remembered, so mgo_test_kill_children() (from a
 * suite's cleanup, after a fatal assertion skipped the test's own) leaves none running.
 * Not thread-safe: call from the test's main thread. */
#ifndef MGO_TEST_PROC_H
#define MGO_TEST_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Starts argv[0] (a path) with argv, stdin from /dev/null, stdout and stderr appended to
 * log_path. The child's pid; -1 when fork failed. */
pid_t mgo_test_spawn(const char *const *argv, const char *log_path);
/* Waits for the child at most timeout_ms (0 = only look): its exit code, 128+signal, -1
 * when it is still running, -2 when pid is no child of ours (already reaped). */
int mgo_test_wait_exit(pid_t pid, int timeout_ms);
/* Sends sig and reaps the child (SIGKILL after 10 s if sig was not enough). No-op for pid <= 0. */
void mgo_test_kill(pid_t pid, int sig);
/* SIGKILLs and reaps every child mgo_test_spawn() started that is still running. */
void mgo_test_kill_children(void);
/* Resident set size of a process in KiB (0 when unknown). */
long mgo_test_rss_kb(pid_t pid);
/* Waits at most timeout_ms until more than more_than lines of the file log contain needle. */
bool mgo_test_log_wait(const char *log, const char *needle, size_t more_than, int timeout_ms);

#endif
