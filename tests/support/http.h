/* http.h - one HTTP request for tests (libcurl), shared by every test that calls the
 * manager's API. */
#ifndef MGO_TEST_HTTP_H
#define MGO_TEST_HTTP_H

#include <stddef.h>

#include "mgo/buf.h"

/* method url with body (NULL = none) and
 * the given header lines (NULL-terminated list, may be NULL). The reply body is appended to
 * out; *content_type (optional, size ct_size) receives the reply's type. Returns the HTTP
 * status, 0 when the request failed. */
long mgo_test_http(const char *method, const char *url, const char *const *headers,
                   const char *body, long timeout_ms, struct mgo_buf *out, char *content_type,
                   size_t ct_size);

#endif
