/* bench_util.c - see bench_util.h. */
#include "bench_util.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t mgo_bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t mgo_bench_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mgo_bench_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double mgo_bench_percentile(double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    double rank = p / 100.0 * (double)n;
    size_t i = rank <= 1 ? 0 : (size_t)(rank + 0.999999) - 1;
    return v[i < n ? i : n - 1];
}

double mgo_bench_cpu_s(pid_t pid)
{
    char path[64], line[2048];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    /* fields after the ")" of comm: state(3) ... utime(14) stime(15) */
    char *p = strrchr(line, ')');
    if (!p)
        return -1;
    p += 2;
    unsigned long long ut = 0, st = 0;
    int field = 3;
    while (*p && field < 14) {
        if (*p++ == ' ')
            field++;
    }
    if (sscanf(p, "%llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / 100.0; /* USER_HZ is 100 on Linux */
}

static long field_kb(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    if (!p)
        return -1;
    p += strlen(key);
    return strtol(p, NULL, 10);
}

mgo_err mgo_bench_mem_read(pid_t pid, struct mgo_bench_mem *out)
{
    char path[64], text[8192];
    memset(out, 0, sizeof *out);
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return MGO_ERR_IO;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    out->rss_kb = field_kb(text, "VmRSS:");
    out->hwm_kb = field_kb(text, "VmHWM:");
    out->anon_kb = field_kb(text, "RssAnon:");
    snprintf(path, sizeof path, "/proc/%ld/smaps_rollup", (long)pid);
    f = fopen(path, "r");
    if (!f)
        return MGO_OK;
    n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    out->pss_kb = field_kb(text, "\nPss:");
    long pc = field_kb(text, "Private_Clean:"), pd = field_kb(text, "Private_Dirty:");
    out->private_kb = (pc > 0 ? pc : 0) + (pd > 0 ? pd : 0);
    return MGO_OK;
}

void mgo_bench_loadavg(char *out, size_t out_size)
{
    snprintf(out, out_size, "?");
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f)
        return;
    double a = 0, b = 0, c = 0;
    if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
        snprintf(out, out_size, "%.2f %.2f %.2f", a, b, c);
    fclose(f);
}

static size_t on_body(char *d, size_t size, size_t n, void *ctx)
{
    if (ctx == NULL)
        return size * n;
    return mgo_buf_append(ctx, d, size * n) == MGO_OK ? size * n : 0;
}

long mgo_bench_http(const char *method, const char *url, const char *token, const char *body,
                    struct mgo_buf *reply)
{
    CURL *h = curl_easy_init();
    if (!h)
        return -1;
    struct curl_slist *hdrs = NULL;
    char auth[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    hdrs = curl_slist_append(hdrs, auth);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 120000L);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, reply);
    long status = -1;
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return status;
}

mgo_err mgo_bench_read_line(const char *path, char *out, size_t out_size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return MGO_ERR_IO;
    if (!fgets(out, (int)out_size, f)) {
        fclose(f);
        return MGO_ERR_IO;
    }
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return MGO_OK;
}
