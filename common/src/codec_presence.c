/* codec_presence.c - margo-mqtt's own documents: presence (.../state), events (.../events)
 * and receipts (.../receipt). */
#include <string.h>

#include "codec_util.h"
#include "mgo/limits.h"

static const char *read_device_id(struct mgo_rd *rd, const struct mgo_value *root)
{
    const char *id = mgo_codec__str(rd, root, "deviceId", true, MGO_MAX_DEVICE_ID_LEN);
    if (id != NULL && (!mgo_codec__is_device_path(id, false) || strchr(id, '/') != NULL ||
                       strcmp(id, ".") == 0 || strcmp(id, "..") == 0))
        mgo_codec__fail(rd, "deviceId", "must be 1..%u of [A-Za-z0-9._~-], not . or ..",
                        MGO_MAX_DEVICE_ID_LEN);
    return id;
}

mgo_err mgo_presence_from_value(const struct mgo_value *root, struct mgo_arena *arena,
                                struct mgo_presence *out, struct mgo_problems *problems)
{
    struct mgo_rd rd;
    mgo_codec__rd_init(&rd, arena, problems);
    memset(out, 0, sizeof *out);
    if (root->kind != MGO_V_MAP) {
        mgo_codec__fail(&rd, NULL, "presence must be a map");
        return MGO_ERR_INVALID;
    }
    out->device_id = read_device_id(&rd, root);
    static const char *const states[] = {"offline", "online"};
    out->online = mgo_codec__enum(&rd, root, "state", true, states, 2) == 1;
    mgo_codec__uint(&rd, root, "boot", true, &out->boot);
    mgo_codec__uint(&rd, root, "timestamp", false, &out->timestamp_ms);
    out->agent_version = mgo_codec__str(&rd, root, "agentVersion", false, 64);
    return mgo_codec__result(&rd);
}

mgo_err mgo_presence_to_value(const struct mgo_presence *in, struct mgo_arena *arena,
                              struct mgo_value *out)
{
    struct mgo_map_builder mb;
    mgo_map_builder_init(&mb, arena);
    mgo_map_put_str(&mb, "deviceId", in->device_id);
    mgo_map_put_str(&mb, "state", in->online ? "online" : "offline");
    mgo_map_put_uint(&mb, "boot", in->boot);
    if (in->timestamp_ms != 0)
        mgo_map_put_uint(&mb, "timestamp", in->timestamp_ms);
    mgo_map_put_str_opt(&mb, "agentVersion", in->agent_version);
    return mgo_map_builder_finish(&mb, out);
}

MGO_CODEC_GLUE(presence, mgo_presence)

static bool is_event_type(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '-'))
            return false;
    }
    return n >= 1 && n <= 64;
}

mgo_err mgo_event_from_value(const struct mgo_value *root, struct mgo_arena *arena,
                             struct mgo_event *out, struct mgo_problems *problems)
{
    struct mgo_rd rd;
    mgo_codec__rd_init(&rd, arena, problems);
    memset(out, 0, sizeof *out);
    if (root->kind != MGO_V_MAP) {
        mgo_codec__fail(&rd, NULL, "an event must be a map");
        return MGO_ERR_INVALID;
    }
    out->device_id = read_device_id(&rd, root);
    out->type = mgo_codec__str(&rd, root, "type", true, 64);
    if (out->type != NULL && !is_event_type(out->type))
        mgo_codec__fail(&rd, "type", "must be 1..64 of [a-z0-9-]");
    static const char *const severities[] = {"info", "warning", "error"};
    int sev = mgo_codec__enum(&rd, root, "severity", true, severities, 3);
    out->severity = sev < 0 ? NULL : severities[sev];
    out->message = mgo_codec__str(&rd, root, "message", true, 4096);
    out->deployment_id = mgo_codec__str(&rd, root, "deploymentId", false, 128);
    if (out->deployment_id != NULL && !mgo_is_uuid(out->deployment_id))
        mgo_codec__fail(&rd, "deploymentId", "must be a UUID");
    out->has_manifest_version =
        mgo_codec__uint(&rd, root, "manifestVersion", false, &out->manifest_version);
    mgo_codec__uint(&rd, root, "timestamp", true, &out->timestamp_ms);
    return mgo_codec__result(&rd);
}

mgo_err mgo_event_to_value(const struct mgo_event *in, struct mgo_arena *arena,
                           struct mgo_value *out)
{
    struct mgo_map_builder mb;
    mgo_map_builder_init(&mb, arena);
    mgo_map_put_str(&mb, "deviceId", in->device_id);
    mgo_map_put_str(&mb, "type", in->type);
    mgo_map_put_str(&mb, "severity", in->severity ? in->severity : "info");
    mgo_map_put_str(&mb, "message", in->message);
    mgo_map_put_str_opt(&mb, "deploymentId", in->deployment_id);
    if (in->has_manifest_version)
        mgo_map_put_uint(&mb, "manifestVersion", in->manifest_version);
    mgo_map_put_uint(&mb, "timestamp", in->timestamp_ms);
    return mgo_map_builder_finish(&mb, out);
}

MGO_CODEC_GLUE(event, mgo_event)

static bool is_epoch(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    }
    return n >= 16 && n <= MGO_RECEIPT_EPOCH_MAX;
}

mgo_err mgo_receipt_from_value(const struct mgo_value *root, struct mgo_arena *arena,
                               struct mgo_receipt *out, struct mgo_problems *problems)
{
    struct mgo_rd rd;
    mgo_codec__rd_init(&rd, arena, problems);
    memset(out, 0, sizeof *out);
    if (root->kind != MGO_V_MAP) {
        mgo_codec__fail(&rd, NULL, "a receipt must be a map");
        return MGO_ERR_INVALID;
    }
    out->device_id = read_device_id(&rd, root);
    out->epoch = mgo_codec__str(&rd, root, "epoch", true, MGO_RECEIPT_EPOCH_MAX);
    if (out->epoch != NULL && !is_epoch(out->epoch))
        mgo_codec__fail(&rd, "epoch", "must be 16..%u of [0-9a-f]", MGO_RECEIPT_EPOCH_MAX);
    mgo_codec__uint(&rd, root, "boot", true, &out->boot);
    mgo_codec__uint(&rd, root, "seq", true, &out->seq);
    return mgo_codec__result(&rd);
}

mgo_err mgo_receipt_to_value(const struct mgo_receipt *in, struct mgo_arena *arena,
                             struct mgo_value *out)
{
    struct mgo_map_builder mb;
    mgo_map_builder_init(&mb, arena);
    mgo_map_put_str(&mb, "deviceId", in->device_id);
    mgo_map_put_str(&mb, "epoch", in->epoch);
    mgo_map_put_uint(&mb, "boot", in->boot);
    mgo_map_put_uint(&mb, "seq", in->seq);
    return mgo_map_builder_finish(&mb, out);
}

MGO_CODEC_GLUE(receipt, mgo_receipt)
