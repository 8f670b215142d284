/* overview.h - GET /api/v1/overview (docs/api.md "Fleet overview"): the fleet at a glance for
 * the web UI's overview page: devices online over time (the store's fleet samples, taken by
 * the loop every fleet-sample-interval), deployments by state and by app, and the newest
 * failures of the status history with their class (mgo/failure.h). Loop thread; it only reads
 * the store. Every part of the reply has a bound (below). */
#ifndef MGO_MGR_OVERVIEW_H
#define MGO_MGR_OVERVIEW_H

#include <stdint.h>

#include "mgo/buf.h"
#include "mgo/err.h"
#include "mgo/mgr_store.h"
#include "mgo/problems.h"

#define MGO_OVERVIEW_DEFAULT_WINDOW_S 86400    /* ?window= unset: 24h */
#define MGO_OVERVIEW_MAX_WINDOW_S (30 * 86400) /* 30d */
#define MGO_OVERVIEW_MAX_POINTS 720            /* samples in a reply at most */
#define MGO_OVERVIEW_DEFAULT_FAILURES 20u      /* ?failures= unset */
#define MGO_OVERVIEW_MAX_FAILURES 100u
#define MGO_OVERVIEW_MAX_APPS 100u /* byApp entries at most */

struct mgo_overview_params {
    int64_t window_s;  /* samples and failures of the last window_s seconds */
    uint32_t failures; /* failures listed at most */
};

/* Reads the query values window ("N" followed by s, m, h or d, from 1s to 30d) and failures
 * (0 to 100); NULL = the default. MGO_ERR_INVALID with each bad field named in p. */
mgo_err mgo_overview__parse(const char *window, const char *failures,
                            struct mgo_overview_params *out, struct mgo_problems *p) MGO_MUST_CHECK;
/* Writes the reply (docs/api.md) into out, as of now_ms. A store error is returned and the
 * reply must not be sent. */
mgo_err mgo_overview__write(struct mgo_mgr_store *store, const struct mgo_overview_params *params,
                            int64_t now_ms, struct mgo_buf *out) MGO_MUST_CHECK;

#endif
