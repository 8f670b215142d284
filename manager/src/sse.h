/* sse.h - the Server-Sent Events hub: the loop thread publishes events, each client's HTTP
 * thread reads its own pending text. One mutex inside guards the hub and its clients; every
 * function here may be called from the thread its comment names. */
#ifndef MGO_MGR_SSE_H
#define MGO_MGR_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "mgo/err.h"

struct mgo_sse_client;
struct mgo_sse_hub;

mgo_err mgo_sse__hub_new(struct mgo_sse_hub **out) MGO_MUST_CHECK;
void mgo_sse__hub_shutdown(struct mgo_sse_hub *hub); /* ends every stream; NULL is fine */
void mgo_sse__hub_free(struct mgo_sse_hub *hub);
/* A client following deployment ids (none = everything); not yet in the hub. NULL: out of
 * memory. */
struct mgo_sse_client *mgo_sse__client_new(const char *const *deployments, size_t n);
/* Queues one event for this client only (snapshot before it joins). */
void mgo_sse__client_push(struct mgo_sse_client *c, const char *event, const char *json);
void mgo_sse__hub_add(struct mgo_sse_hub *hub, struct mgo_sse_client *c);
/* Whether any client follows deployment_id (NULL: events about no deployment), so the loop
 * can skip building an event nobody reads. */
bool mgo_sse__wanted(struct mgo_sse_hub *hub, const char *deployment_id);
/* Loop thread: an event concerning deployment_id (may be NULL) to every interested client. */
void mgo_sse__publish(struct mgo_sse_hub *hub, const char *event, const char *deployment_id,
                      const char *json);
/* HTTP thread: copies up to max bytes of pending stream into buf, waiting for data;
 * returns bytes, 0 never, -1 at end of stream. */
long mgo_sse__read(struct mgo_sse_hub *hub, struct mgo_sse_client *c, char *buf, size_t max);
/* HTTP thread: the connection ended; removes and frees the client. */
void mgo_sse__client_free(struct mgo_sse_hub *hub, struct mgo_sse_client *c);

#endif
