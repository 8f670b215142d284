/* http.h - HTTP requests for tests (libcurl), shared by every test that calls the manager's
 * API: one raw request, and a request whose reply is parsed as JSON. */
#ifndef MGO_TEST_HTTP_H
#define MGO_TEST_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "mgo/arena.h"
#include "mgo/buf.h"
#include "mgo/value.h"

/* method url with body (NULL = none) and
 * the given header lines (NULL-terminated list, may be NULL). The reply body is appended to
 * out; *content_type (optional, size ct_size) receives the reply's type. Returns the HTTP
 * status, 0 when the request failed. */
long mgo_test_http(const char *method, const char *url, const char *const *headers,
                   const char *body, long timeout_ms, struct mgo_buf *out, char *content_type,
                   size_t ct_size);

/* A reply; json is the body parsed (MGO_V_NULL when empty or not JSON). */
struct mgo_test_reply {
    long status; /* 0 when the request failed */
    char content_type[128];
    struct mgo_buf body;
    struct mgo_arena arena; /* holds json */
    struct mgo_value json;
};
/* method base+path (base = "http://127.0.0.1:PORT") as mgo_test_http(); r receives the
 * reply, to be released with mgo_test_reply_cleanup(). */
void mgo_test_request(const char *base, const char *method, const char *path,
                      const char *const *headers, const char *body, long timeout_ms,
                      struct mgo_test_reply *r);
void mgo_test_reply_cleanup(struct mgo_test_reply *r);

/* The string at a JSON pointer in v; "" when absent or not a string. */
const char *mgo_test_jstr(const struct mgo_value *v, const char *pointer);
/* The unsigned integer at a JSON pointer in v; 0 when absent or not one. */
uint64_t mgo_test_ju64(const struct mgo_value *v, const char *pointer);

#endif
