/* bench_util.h - small helpers shared by the benchmarks (bench/ only): clocks, medians and
 * percentiles, /proc readings (CPU seconds, resident memory), and one blocking HTTP call. */
#ifndef MGO_BENCH_UTIL_H
#define MGO_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mgo/buf.h"
#include "mgo/err.h"

int64_t mgo_bench_now_ns(void);  /* CLOCK_MONOTONIC */
int64_t mgo_bench_wall_ms(void); /* CLOCK_REALTIME, ms since the epoch (the manager's clock) */
void mgo_bench_sleep_ms(int ms);

/* Sorts v in place; p in [0, 100]; nearest-rank. 0 when n == 0. */
double mgo_bench_percentile(double *v, size_t n, double p);

/* utime + stime of a process (all threads) in seconds; < 0 when unreadable. */
double mgo_bench_cpu_s(pid_t pid);

struct mgo_bench_mem {
    long rss_kb;     /* VmRSS */
    long hwm_kb;     /* VmHWM */
    long pss_kb;     /* smaps_rollup Pss */
    long private_kb; /* smaps_rollup Private_Clean + Private_Dirty */
    long anon_kb;    /* RssAnon */
};
mgo_err mgo_bench_mem_read(pid_t pid, struct mgo_bench_mem *out) MGO_MUST_CHECK;

/* "0.42 0.30 0.20" (1, 5, 15 min) into out. */
void mgo_bench_loadavg(char *out, size_t out_size);

/* Blocking HTTP request with a bearer token; body may be NULL. The reply body is appended
 * to reply (optional). Returns the HTTP status, or -1 on a transport error. */
long mgo_bench_http(const char *method, const char *url, const char *token, const char *body,
                    struct mgo_buf *reply);

/* Reads the first line of a file (token files) without the newline. */
mgo_err mgo_bench_read_line(const char *path, char *out, size_t out_size) MGO_MUST_CHECK;

#endif
