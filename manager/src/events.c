/* events.c - the event stream's JSON (events.h). */
#include "events.h"

void mgo_events__status(struct mgo_jw *w, const struct mgo_mgr_status_row *row, const char *desired,
                        uint64_t manifest_version, bool snapshot)
{
    mgo_jw_kstr(w, "deploymentId", row->deployment_id);
    mgo_jw_kstr(w, "deviceId", row->device_id);
    mgo_jw_kstr(w, "state", row->state);
    mgo_jw_kstr(w, "desired", desired);
    mgo_jw_ku64(w, "manifestVersion", manifest_version);
    mgo_jw_ktime(w, "receivedAt", row->received_ms);
    if (snapshot)
        mgo_jw_kbool(w, "snapshot", true);
    mgo_jw_key(w, "status");
    mgo_jw_raw(w, row->doc_json);
}

void mgo_events__capabilities(struct mgo_jw *w, const char *device_id)
{
    mgo_jw_kstr(w, "deviceId", device_id);
}

void mgo_events__presence(struct mgo_jw *w, const char *device_id, bool online, uint64_t boot)
{
    mgo_jw_kstr(w, "deviceId", device_id);
    mgo_jw_kbool(w, "online", online);
    mgo_jw_ku64(w, "boot", boot);
}

void mgo_events__device_event(struct mgo_jw *w, const char *device_id, const char *type,
                              const char *severity, const char *message, const char *deployment_id)
{
    mgo_jw_kstr(w, "deviceId", device_id);
    mgo_jw_kstr(w, "type", type);
    mgo_jw_kstr(w, "severity", severity);
    mgo_jw_kstr(w, "message", message);
    mgo_jw_kstr(w, "deploymentId", deployment_id);
}
