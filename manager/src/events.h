/* events.h - the JSON of the API's event stream (docs/api.md "Event stream"): one writer per
 * event kind, each writing its members into an open JSON object. ingest.c sends them live;
 * api.c sends status events as the snapshot a joining client gets. Pure: no store, no hub. */
#ifndef MGO_MGR_EVENTS_H
#define MGO_MGR_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "jw.h"
#include "mgo/mgr_store.h"

/* "status": snapshot true marks a state sent to a client that has just joined. */
void mgo_events__status(struct mgo_jw *w, const struct mgo_mgr_status_row *row, const char *desired,
                        uint64_t manifest_version, bool snapshot);
/* "capabilities": a device's capabilities were stored. */
void mgo_events__capabilities(struct mgo_jw *w, const char *device_id);
/* "presence" */
void mgo_events__presence(struct mgo_jw *w, const char *device_id, bool online, uint64_t boot);
/* "device-event"; deployment_id may be NULL. */
void mgo_events__device_event(struct mgo_jw *w, const char *device_id, const char *type,
                              const char *severity, const char *message, const char *deployment_id);

#endif
