/* sse.h - the Server-Sent Events hub: the loop thread publishes events, the HTTP front end
 * reads each client's pending text; a client with nothing to send is parked and woken
 * (callbacks of the front end, called under the hub's mutex) when there is. One mutex
 * inside guards the hub and its clients; every function here may be called from the thread
 * its comment names. */
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
/* Loop thread: ends every open stream (its client gets what is pending, then the end, and
 * reconnects to start again from a snapshot); the hub stays open for new streams. */
void mgo_sse__end_all(struct mgo_sse_hub *hub);
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
/* Loop thread: a keepalive comment to every parked client (the front end calls it every
 * 5 s), which also finds readers that went away. */
void mgo_sse__keepalive(struct mgo_sse_hub *hub);
/* HTTP thread: copies up to max bytes of pending stream into buf; returns bytes, -1 at end
 * of stream, or 0 when nothing is pending: then park(arg) has been called, and wake(arg)
 * will be called once (from whichever thread publishes, keeps alive or shuts down) when
 * there is something to read. Both run under the hub's mutex: they must not call the hub. */
long mgo_sse__read(struct mgo_sse_hub *hub, struct mgo_sse_client *c, char *buf, size_t max,
                   void (*park)(void *arg), void (*wake)(void *arg), void *arg);
/* HTTP thread: the connection ended; removes and frees the client. */
void mgo_sse__client_free(struct mgo_sse_hub *hub, struct mgo_sse_client *c);

#endif
