/* ctl_http.c - margoctl's HTTP client (libcurl), tables and option helpers. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_internal.h"
#include "mgo/ctl.h"
#include "mgo/limits.h"
#include "mgo/problems.h"

#define MAX_REPLY_BYTES (64u * 1024u * 1024u)

static int parse_output(const char *s, enum mgo_ctl_output *out)
{
    static const char *const names[] = {"table", "wide", "json", "yaml"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum mgo_ctl_output)i;
            return 0;
        }
    }
    return -1;
}

int mgo_ctl__common_opts(struct mgo_ctl_conn *c, int *argc, char **argv)
{
    if (!c->url) {
        const char *env = getenv("MARGO_URL");
        c->url = env && env[0] ? env : "http://127.0.0.1:8080";
    }
    if (!c->token_file) {
        const char *env = getenv("MARGO_TOKEN_FILE");
        c->token_file = env && env[0] ? env : NULL;
    }
    int out = 0;
    int help = 0;
    for (int i = 0; i < *argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        bool takes = false;
        if (strcmp(a, "--json") == 0) {
            c->output = MGO_CTL_OUT_JSON;
            continue;
        }
        if (strcmp(a, "--output") == 0 || strcmp(a, "-o") == 0 || strncmp(a, "--output=", 9) == 0) {
            const char *fmt = NULL;
            if (strncmp(a, "--output=", 9) == 0)
                fmt = a + 9;
            else if (i + 1 < *argc)
                fmt = argv[++i];
            if (fmt == NULL) {
                fprintf(stderr, "margoctl: %s needs a value (table, wide, json or yaml)\n", a);
                return -1;
            }
            if (parse_output(fmt, &c->output) != 0) {
                fprintf(stderr, "margoctl: --output: '%s' is not table, wide, json or yaml\n", fmt);
                return -1;
            }
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help = 1;
            continue;
        }
        if (strncmp(a, "--url=", 6) == 0) {
            c->url = a + 6;
            continue;
        }
        if (strncmp(a, "--token-file=", 13) == 0) {
            c->token_file = a + 13;
            continue;
        }
        if (strcmp(a, "--url") == 0 || strcmp(a, "--token-file") == 0)
            takes = true;
        if (takes) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "margoctl: %s needs a value\n", a);
                return -1;
            }
            val = argv[++i];
            if (a[2] == 'u')
                c->url = val;
            else
                c->token_file = val;
            continue;
        }
        argv[out++] = argv[i];
    }
    *argc = out;
    c->json = c->output == MGO_CTL_OUT_JSON;
    return help;
}

int mgo_ctl__conn_ready(struct mgo_ctl_conn *c)
{
    if (!c->token_file) {
        fprintf(stderr, "margoctl: no API token: pass --token-file FILE or set MARGO_TOKEN_FILE "
                        "(the manager writes one to STATE-DIR/api-token)\n");
        return -1;
    }
    struct mgo_buf b;
    mgo_buf_init(&b, sizeof c->token - 1);
    mgo_err err = mgo_buf_read_file(&b, c->token_file);
    if (err) {
        fprintf(stderr, "margoctl: cannot read the token file %s: %s\n", c->token_file,
                mgo_strerror(err));
        mgo_buf_cleanup(&b);
        return -1;
    }
    size_t len = b.len;
    while (len > 0 &&
           (b.data[len - 1] == '\n' || b.data[len - 1] == '\r' || b.data[len - 1] == ' '))
        len--;
    memcpy(c->token, b.data, len);
    c->token[len] = '\0';
    mgo_buf_cleanup(&b);
    if (len == 0 || strchr(c->token, '\n')) {
        fprintf(stderr, "margoctl: the token file %s must hold one line\n", c->token_file);
        return -1;
    }
    return 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    struct mgo_buf *b = ctx;
    return mgo_buf_append(b, data, size * n) == MGO_OK ? size * n : 0;
}

static CURL *make_handle(const struct mgo_ctl_conn *c, const char *path, struct curl_slist **hdrs,
                         const char *content_type)
{
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    char url[4096];
    size_t base = strlen(c->url);
    while (base > 0 && c->url[base - 1] == '/')
        base--;
    snprintf(url, sizeof url, "%.*s%s", (int)base, c->url, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    char auth[600];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->token);
    *hdrs = curl_slist_append(*hdrs, auth);
    *hdrs = curl_slist_append(*hdrs, "Accept: application/json, application/problem+json");
    if (content_type) {
        char ct[128];
        snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
        *hdrs = curl_slist_append(*hdrs, ct);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "margoctl");
    /* HTTPS to a manager whose certificate is not in the system store (api-tls-cert) */
    const char *ca = getenv("MARGO_CA_FILE");
    if (ca && ca[0])
        curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    return h;
}

int mgo_ctl__request(const struct mgo_ctl_conn *c, const char *method, const char *path,
                     const char *content_type, const void *body, size_t body_len,
                     struct mgo_ctl_reply *reply)
{
    memset(reply, 0, sizeof *reply);
    mgo_buf_init(&reply->body, MAX_REPLY_BYTES);
    mgo_arena_init(&reply->arena, MAX_REPLY_BYTES * 4);
    struct curl_slist *hdrs = NULL;
    CURL *h = make_handle(c, path, &hdrs, body ? content_type : NULL);
    if (!h) {
        fprintf(stderr, "margoctl: cannot initialise libcurl\n");
        return -1;
    }
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &reply->body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 60000L);
    CURLcode rc = curl_easy_perform(h);
    int result = 0;
    if (rc != CURLE_OK) {
        fprintf(stderr, "margoctl: cannot reach margo-manager at %s: %s\n", c->url,
                curl_easy_strerror(rc));
        result = -1;
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply->status);
        struct mgo_problems p;
        mgo_problems_init(&p);
        if (reply->body.len == 0 || mgo_value_from_yaml(reply->body.data, reply->body.len,
                                                        &reply->arena, &reply->tree, &p) != MGO_OK)
            reply->tree.kind = MGO_V_NULL;
        /* every output but json works on the parsed reply: one margoctl cannot parse (past
         * the shared limits, e.g. more than 1024 items) is an error, not an empty table */
        if (reply->body.len > 0 && reply->tree.kind == MGO_V_NULL && !c->json &&
            reply->status >= 200 && reply->status < 300) {
            fprintf(stderr,
                    "margoctl: the reply cannot be read (%s: %s); --output json prints it\n",
                    p.count ? p.items[0].field : "$", p.count ? p.items[0].rule : "not JSON");
            result = -1;
        }
    }
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    return result;
}

void mgo_ctl__reply_cleanup(struct mgo_ctl_reply *r)
{
    mgo_buf_cleanup(&r->body);
    mgo_arena_cleanup(&r->arena);
}

bool mgo_ctl__print_data(const struct mgo_ctl_conn *c, const struct mgo_ctl_reply *r)
{
    if (c->output == MGO_CTL_OUT_JSON) {
        printf("%.*s\n", (int)r->body.len, r->body.data ? (const char *)r->body.data : "");
        return true;
    }
    if (c->output != MGO_CTL_OUT_YAML)
        return false;
    struct mgo_buf b;
    mgo_buf_init(&b, MAX_REPLY_BYTES);
    mgo_err err = mgo_value_to_yaml(&r->tree, &b);
    if (err == MGO_OK)
        fputs((const char *)b.data, stdout);
    else
        fprintf(stderr, "margoctl: the reply cannot be written as YAML: %s\n", mgo_strerror(err));
    mgo_buf_cleanup(&b);
    return true;
}

int mgo_ctl__print_problem(const struct mgo_ctl_conn *c, const struct mgo_ctl_reply *r)
{
    if (c->json) {
        if (r->body.len)
            printf("%.*s\n", (int)r->body.len, (const char *)r->body.data);
        return MGO_CTL_EXIT_FAIL;
    }
    const char *title = mgo_ctl__str(&r->tree, "title");
    const char *detail = mgo_ctl__str(&r->tree, "detail");
    fprintf(stderr, "margoctl: %s (HTTP %ld)%s%s\n", title[0] ? title : "request failed", r->status,
            detail[0] ? ": " : "", detail);
    const struct mgo_value *errors = mgo_value_get(&r->tree, "errors");
    for (size_t i = 0; errors && errors->kind == MGO_V_ARRAY && i < errors->as.array.len; i++) {
        const struct mgo_value *e = &errors->as.array.items[i];
        fprintf(stderr, "  %s: %s\n", mgo_ctl__str(e, "field"), mgo_ctl__str(e, "message"));
    }
    return MGO_CTL_EXIT_FAIL;
}

/* ---- Server-Sent Events -------------------------------------------------------------- */

struct sse_state {
    struct mgo_buf line;
    char event[64];
    struct mgo_buf data;
    mgo_ctl_sse_cb cb;
    void *ctx;
    bool stopped;
    bool overflow;
};

static void sse_line(struct sse_state *s, const char *line, size_t len)
{
    if (len == 0) {
        if (s->data.len > 0 || s->event[0]) {
            if (!s->cb(s->event[0] ? s->event : "message",
                       s->data.data ? (const char *)s->data.data : "", s->ctx))
                s->stopped = true;
        }
        s->event[0] = '\0';
        mgo_buf_reset(&s->data);
        return;
    }
    if (line[0] == ':')
        return; /* comment / keepalive */
    if (len >= 6 && strncmp(line, "event:", 6) == 0) {
        const char *v = line + 6;
        size_t vl = len - 6;
        if (vl && *v == ' ') {
            v++;
            vl--;
        }
        snprintf(s->event, sizeof s->event, "%.*s", (int)vl, v);
    } else if (len >= 5 && strncmp(line, "data:", 5) == 0) {
        const char *v = line + 5;
        size_t vl = len - 5;
        if (vl && *v == ' ') {
            v++;
            vl--;
        }
        if ((s->data.len && mgo_buf_append(&s->data, "\n", 1) != MGO_OK) ||
            mgo_buf_append(&s->data, v, vl) != MGO_OK)
            s->overflow = true;
    }
}

static size_t on_sse(char *data, size_t size, size_t n, void *ctx)
{
    struct sse_state *s = ctx;
    size_t total = size * n;
    for (size_t i = 0; i < total && !s->stopped; i++) {
        if (data[i] == '\n') {
            size_t len = s->line.len;
            if (len && s->line.data[len - 1] == '\r')
                len--;
            sse_line(s, s->line.data ? (const char *)s->line.data : "", len);
            mgo_buf_reset(&s->line);
        } else if (mgo_buf_append(&s->line, &data[i], 1) != MGO_OK) {
            s->overflow = true;
            return 0;
        }
    }
    return s->stopped || s->overflow ? 0 : total;
}

int mgo_ctl__stream(const struct mgo_ctl_conn *c, const char *path, long timeout_ms,
                    mgo_ctl_sse_cb on_event, void *ctx)
{
    struct sse_state s = {.cb = on_event, .ctx = ctx};
    mgo_buf_init(&s.line, 8u * MGO_MAX_MESSAGE_BYTES);
    mgo_buf_init(&s.data, 8u * MGO_MAX_MESSAGE_BYTES);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: text/event-stream");
    CURL *h = make_handle(c, path, &hdrs, NULL);
    int result = MGO_CTL_EXIT_FAIL;
    if (!h)
        goto cleanup;
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_sse);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    if (timeout_ms > 0)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (s.stopped) {
        result = 0;
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        result = MGO_CTL_EXIT_TIMEOUT;
    } else if (status != 200 && status != 0) {
        fprintf(stderr, "margoctl: the event stream was refused (HTTP %ld)\n", status);
    } else if (rc != CURLE_OK) {
        fprintf(stderr, "margoctl: event stream from %s failed: %s\n", c->url,
                curl_easy_strerror(rc));
    } else {
        fprintf(stderr, "margoctl: the manager closed the event stream\n");
    }
    curl_easy_cleanup(h);
cleanup:
    curl_slist_free_all(hdrs);
    mgo_buf_cleanup(&s.line);
    mgo_buf_cleanup(&s.data);
    return result;
}

void mgo_ctl__escape(const char *in, char *out, size_t out_size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < out_size; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

/* ---- tables and values --------------------------------------------------------------- */

void mgo_ctl__table_init(struct mgo_ctl_table *t, size_t cols)
{
    memset(t, 0, sizeof *t);
    t->cols = cols;
    t->show = cols;
}

void mgo_ctl__table_columns(struct mgo_ctl_table *t, const struct mgo_ctl_conn *c, size_t narrow)
{
    t->show = c->output == MGO_CTL_OUT_WIDE || narrow > t->cols ? t->cols : narrow;
}

void mgo_ctl__table_add(struct mgo_ctl_table *t, const char *const *cells)
{
    if ((t->rows + 1) * t->cols > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : t->cols * 16;
        char **p = realloc(t->cells, cap * sizeof *p);
        if (!p)
            return;
        t->cells = p;
        t->cap = cap;
    }
    for (size_t i = 0; i < t->cols; i++)
        t->cells[t->rows * t->cols + i] = strdup(cells[i] ? cells[i] : "");
    t->rows++;
}

static size_t display_width(const char *s)
{
    size_t w = 0;
    for (; s && *s; s++) {
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    }
    return w;
}

void mgo_ctl__table_print(const struct mgo_ctl_table *t, FILE *out)
{
    size_t widths[16] = {0};
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t c = 0; c < t->cols && c < 16; c++) {
            size_t w = display_width(t->cells[r * t->cols + c]);
            if (w > widths[c])
                widths[c] = w;
        }
    }
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t c = 0; c < t->show && c < 16; c++) {
            const char *cell = t->cells[r * t->cols + c] ? t->cells[r * t->cols + c] : "";
            bool last = c + 1 == t->show;
            fputs(cell, out);
            if (!last) {
                for (size_t pad = display_width(cell); pad < widths[c] + 2; pad++)
                    fputc(' ', out);
            }
        }
        fputc('\n', out);
    }
}

void mgo_ctl__table_cleanup(struct mgo_ctl_table *t)
{
    for (size_t i = 0; i < t->rows * t->cols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

const char *mgo_ctl__str(const struct mgo_value *map, const char *key)
{
    const struct mgo_value *v = map ? mgo_value_get(map, key) : NULL;
    return v && v->kind == MGO_V_STR ? v->as.str.ptr : "";
}

void mgo_ctl__text(const struct mgo_value *v, char *out, size_t out_size)
{
    if (!v || v->kind == MGO_V_NULL) {
        snprintf(out, out_size, "-");
        return;
    }
    switch (v->kind) {
    case MGO_V_STR:
        snprintf(out, out_size, "%s", v->as.str.ptr);
        return;
    case MGO_V_BOOL:
        snprintf(out, out_size, "%s", v->as.b ? "true" : "false");
        return;
    case MGO_V_UINT:
        snprintf(out, out_size, "%llu", (unsigned long long)v->as.u);
        return;
    case MGO_V_INT:
        snprintf(out, out_size, "%lld", (long long)v->as.i);
        return;
    case MGO_V_FLOAT: {
        char num[MGO_DOUBLE_STR_SIZE];
        mgo_format_double(v->as.f, num);
        snprintf(out, out_size, "%s", num);
        return;
    }
    case MGO_V_ARRAY: {
        size_t used = 0;
        out[0] = '\0';
        for (size_t i = 0; i < v->as.array.len && used + 1 < out_size; i++) {
            char item[256];
            mgo_ctl__text(&v->as.array.items[i], item, sizeof item);
            int n = snprintf(out + used, out_size - used, "%s%s", i ? "," : "", item);
            if (n < 0)
                break;
            used += (size_t)n;
        }
        return;
    }
    default: {
        struct mgo_buf b;
        mgo_buf_init(&b, out_size);
        if (mgo_value_to_json(v, false, &b) == MGO_OK)
            snprintf(out, out_size, "%s", (const char *)b.data);
        else
            snprintf(out, out_size, "...");
        mgo_buf_cleanup(&b);
    }
    }
}

void mgo_ctl__print_json(const struct mgo_value *v)
{
    struct mgo_buf b;
    mgo_buf_init(&b, MAX_REPLY_BYTES);
    if (mgo_value_to_json(v, true, &b) == MGO_OK)
        printf("%s\n", (const char *)b.data);
    mgo_buf_cleanup(&b);
}
