/* topic.c - build, parse and validate the topics of the margo-mqtt contract.
 *
 * Pure: no I/O, no allocation. Every function writes only into storage the caller gives it.
 * Layout of every topic:  {prefix}/devices/{deviceId}/{level}[/{deploymentId}]  */
#include "mgo/topic.h"

#include <string.h>

#define DEVICES_LEVEL "devices"
#define DEVICES_LEVEL_LEN (sizeof DEVICES_LEVEL - 1u)

/* The per-kind contract table (DESIGN.md "Fixed contract"). */
struct kind_info {
    const char *level;   /* topic level naming the kind */
    bool has_deployment; /* followed by one {deploymentId} level */
    bool retained;
    int qos;
};

static const struct kind_info KINDS[MGO_TOPIC_KIND_COUNT] = {
    [MGO_TOPIC_DESIRED] = {"desired", false, true, 1},
    [MGO_TOPIC_DEPLOYMENT] = {"deployments", true, true, 1},
    [MGO_TOPIC_STATUS] = {"status", true, true, 1},
    [MGO_TOPIC_CAPABILITIES] = {"capabilities", false, true, 1},
    [MGO_TOPIC_STATE] = {"state", false, true, 1},
    [MGO_TOPIC_EVENTS] = {"events", false, false, 1},
    [MGO_TOPIC_RECEIPT] = {"receipt", false, true, 1},
    [MGO_TOPIC_REPLAY] = {"replay", true, false, 1},
};

static const struct kind_info *kind_info(enum mgo_topic_kind kind)
{
    /* Compare as unsigned so an out-of-range (possibly negative) value is refused. */
    if ((unsigned)kind >= MGO_TOPIC_KIND_COUNT)
        return NULL;
    return &KINDS[kind];
}

bool mgo_topic_retained(enum mgo_topic_kind kind)
{
    const struct kind_info *k = kind_info(kind);
    return k != NULL && k->retained;
}

int mgo_topic_qos(enum mgo_topic_kind kind)
{
    const struct kind_info *k = kind_info(kind);
    return k != NULL ? k->qos : -1;
}

const char *mgo_topic_kind_name(enum mgo_topic_kind kind)
{
    const struct kind_info *k = kind_info(kind);
    return k != NULL ? k->level : "unknown";
}

bool mgo_topic_kind_has_deployment(enum mgo_topic_kind kind)
{
    const struct kind_info *k = kind_info(kind);
    return k != NULL && k->has_deployment;
}

static bool id_char_ok(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '~' || c == '-';
}

/* Shared rule of device and deployment ids: 1..max of [A-Za-z0-9._~-], not "." or "..".
 * The character set excludes '/', '+', '#', '$' and NUL, so an id is always exactly one
 * topic level that is neither a wildcard nor a system topic. */
static mgo_err check_id(const char *id, size_t len, size_t max)
{
    if (id == NULL || len == 0)
        return MGO_ERR_INVALID;
    if (len > max)
        return MGO_ERR_LIMIT;
    for (size_t i = 0; i < len; i++) {
        if (!id_char_ok(id[i]))
            return MGO_ERR_INVALID;
    }
    if ((len == 1 && id[0] == '.') || (len == 2 && id[0] == '.' && id[1] == '.'))
        return MGO_ERR_INVALID;
    return MGO_OK;
}

mgo_err mgo_topic_check_device_id(const char *id, size_t len)
{
    return check_id(id, len, MGO_MAX_DEVICE_ID_LEN);
}

mgo_err mgo_topic_check_deployment_id(const char *id, size_t len)
{
    return check_id(id, len, MGO_MAX_DEPLOYMENT_ID_LEN);
}

/* Checks prefix and stores its length; strings are measured with a bound so an
 * unterminated or huge prefix is refused without reading past the limit. */
static mgo_err check_prefix_len(const char *prefix, size_t *len_out)
{
    if (prefix == NULL)
        return MGO_ERR_INVALID;
    size_t len = strnlen(prefix, MGO_MAX_TOPIC_PREFIX_LEN + 1u);
    if (len == 0)
        return MGO_ERR_INVALID;
    if (len > MGO_MAX_TOPIC_PREFIX_LEN)
        return MGO_ERR_LIMIT;
    if (prefix[0] == '$')
        return MGO_ERR_INVALID;
    /* Every level non-empty: no leading or trailing '/', no "//". */
    if (prefix[0] == '/' || prefix[len - 1] == '/')
        return MGO_ERR_INVALID;
    for (size_t i = 0; i < len; i++) {
        char c = prefix[i];
        if (c == '+' || c == '#')
            return MGO_ERR_INVALID;
        if (c == '/' && prefix[i + 1] == '/')
            return MGO_ERR_INVALID;
    }
    *len_out = len;
    return MGO_OK;
}

mgo_err mgo_topic_check_prefix(const char *prefix)
{
    size_t len = 0;
    return check_prefix_len(prefix, &len);
}

/* Appends len bytes of s to out at *pos; MGO_ERR_LIMIT when the result plus its NUL would
 * not fit in out_size. */
static mgo_err append(char *out, size_t out_size, size_t *pos, const char *s, size_t len)
{
    if (len >= out_size - *pos)
        return MGO_ERR_LIMIT;
    memcpy(out + *pos, s, len);
    *pos += len;
    out[*pos] = '\0';
    return MGO_OK;
}

/* Writes {prefix}/devices/{device}/{level}[/{tail}] where device and tail are already
 * validated (or are "+" for filters). */
static mgo_err compose(const char *prefix, size_t prefix_len, const char *device, size_t device_len,
                       const struct kind_info *k, const char *tail, size_t tail_len, char *out,
                       size_t out_size)
{
    size_t pos = 0;
    mgo_err err;
    out[0] = '\0';
    if ((err = append(out, out_size, &pos, prefix, prefix_len)) != MGO_OK ||
        (err = append(out, out_size, &pos, "/" DEVICES_LEVEL "/", DEVICES_LEVEL_LEN + 2u)) !=
            MGO_OK ||
        (err = append(out, out_size, &pos, device, device_len)) != MGO_OK ||
        (err = append(out, out_size, &pos, "/", 1u)) != MGO_OK ||
        (err = append(out, out_size, &pos, k->level, strlen(k->level))) != MGO_OK)
        goto fail;
    if (k->has_deployment) {
        if ((err = append(out, out_size, &pos, "/", 1u)) != MGO_OK ||
            (err = append(out, out_size, &pos, tail, tail_len)) != MGO_OK)
            goto fail;
    }
    return MGO_OK;

fail:
    out[0] = '\0';
    return err;
}

/* Length of a caller-supplied id string, bounded so that an over-long (or unterminated
 * fixed-size) id reads at most max + 1 bytes and is reported as too long. */
static size_t bounded_len(const char *s, size_t max)
{
    return strnlen(s, max + 1u);
}

mgo_err mgo_topic_format(const char *prefix, enum mgo_topic_kind kind, const char *device_id,
                         const char *deployment_id, char *out, size_t out_size)
{
    mgo_err err;
    size_t prefix_len = 0, dev_len = 0, dep_len = 0;
    const struct kind_info *k = kind_info(kind);

    if (out == NULL || out_size == 0)
        return MGO_ERR_LIMIT;
    out[0] = '\0';
    if (k == NULL || device_id == NULL)
        return MGO_ERR_INVALID;
    if ((err = check_prefix_len(prefix, &prefix_len)) != MGO_OK)
        return err;
    dev_len = bounded_len(device_id, MGO_MAX_DEVICE_ID_LEN);
    if ((err = mgo_topic_check_device_id(device_id, dev_len)) != MGO_OK)
        return err;
    if (k->has_deployment) {
        if (deployment_id == NULL)
            return MGO_ERR_INVALID;
        dep_len = bounded_len(deployment_id, MGO_MAX_DEPLOYMENT_ID_LEN);
        if ((err = mgo_topic_check_deployment_id(deployment_id, dep_len)) != MGO_OK)
            return err;
    }
    return compose(prefix, prefix_len, device_id, dev_len, k, deployment_id, dep_len, out,
                   out_size);
}

mgo_err mgo_topic_build(const char *prefix, const struct mgo_topic *t, char *out, size_t out_size)
{
    if (out == NULL || out_size == 0)
        return MGO_ERR_LIMIT;
    out[0] = '\0';
    if (t == NULL)
        return MGO_ERR_INVALID;
    /* The id arrays hold at most their limit plus a NUL; bounded_len() never reads past the
     * array, and an array without a NUL shows up as one character too long. */
    return mgo_topic_format(prefix, t->kind, t->device_id, t->deployment_id, out, out_size);
}

/* Returns the length of the level starting at s (bytes before the next '/' or end). */
static size_t level_len(const char *s, size_t remaining)
{
    const char *slash = memchr(s, '/', remaining);
    return slash != NULL ? (size_t)(slash - s) : remaining;
}

mgo_err mgo_topic_parse(const char *prefix, const char *topic, size_t len, struct mgo_topic *out)
{
    mgo_err err;
    size_t prefix_len = 0;
    struct mgo_topic t;

    if (out == NULL)
        return MGO_ERR_INVALID;
    memset(out, 0, sizeof *out);
    memset(&t, 0, sizeof t);
    if ((err = check_prefix_len(prefix, &prefix_len)) != MGO_OK)
        return err;
    if (topic == NULL || len == 0)
        return MGO_ERR_INVALID;
    if (len > MGO_MAX_TOPIC_LEN)
        return MGO_ERR_LIMIT;
    if (memchr(topic, '\0', len) != NULL)
        return MGO_ERR_INVALID;

    /* {prefix}/devices/ */
    size_t pos = 0;
    if (len - pos < prefix_len + 1u || memcmp(topic, prefix, prefix_len) != 0 ||
        topic[prefix_len] != '/')
        return MGO_ERR_INVALID;
    pos = prefix_len + 1u;
    if (len - pos < DEVICES_LEVEL_LEN + 1u ||
        memcmp(topic + pos, DEVICES_LEVEL, DEVICES_LEVEL_LEN) != 0 ||
        topic[pos + DEVICES_LEVEL_LEN] != '/')
        return MGO_ERR_INVALID;
    pos += DEVICES_LEVEL_LEN + 1u;

    /* {deviceId}/ */
    size_t dev_len = level_len(topic + pos, len - pos);
    if ((err = mgo_topic_check_device_id(topic + pos, dev_len)) != MGO_OK)
        return err;
    memcpy(t.device_id, topic + pos, dev_len);
    t.device_id[dev_len] = '\0';
    pos += dev_len;
    if (pos == len)
        return MGO_ERR_INVALID; /* no kind level */
    pos++;                      /* the '/' */

    /* {level} */
    size_t kind_len = level_len(topic + pos, len - pos);
    const struct kind_info *k = NULL;
    for (size_t i = 0; i < MGO_TOPIC_KIND_COUNT; i++) {
        if (strlen(KINDS[i].level) == kind_len &&
            memcmp(KINDS[i].level, topic + pos, kind_len) == 0) {
            k = &KINDS[i];
            t.kind = (enum mgo_topic_kind)i;
            break;
        }
    }
    if (k == NULL)
        return MGO_ERR_INVALID;
    pos += kind_len;

    if (!k->has_deployment) {
        if (pos != len)
            return MGO_ERR_INVALID; /* extra levels (or a trailing '/') */
    } else {
        if (pos == len)
            return MGO_ERR_INVALID; /* missing deployment level */
        pos++;
        size_t dep_len = level_len(topic + pos, len - pos);
        if ((err = mgo_topic_check_deployment_id(topic + pos, dep_len)) != MGO_OK)
            return err;
        memcpy(t.deployment_id, topic + pos, dep_len);
        t.deployment_id[dep_len] = '\0';
        pos += dep_len;
        if (pos != len)
            return MGO_ERR_INVALID; /* extra levels (or a trailing '/') */
    }
    *out = t;
    return MGO_OK;
}

mgo_err mgo_topic_filter(const char *prefix, enum mgo_topic_kind kind, const char *device_id,
                         char *out, size_t out_size)
{
    mgo_err err;
    size_t prefix_len = 0, dev_len = 1;
    const char *dev = "+";
    const struct kind_info *k = kind_info(kind);

    if (out == NULL || out_size == 0)
        return MGO_ERR_LIMIT;
    out[0] = '\0';
    if (k == NULL)
        return MGO_ERR_INVALID;
    if ((err = check_prefix_len(prefix, &prefix_len)) != MGO_OK)
        return err;
    if (device_id != NULL) {
        dev = device_id;
        dev_len = bounded_len(device_id, MGO_MAX_DEVICE_ID_LEN);
        if ((err = mgo_topic_check_device_id(device_id, dev_len)) != MGO_OK)
            return err;
    }
    return compose(prefix, prefix_len, dev, dev_len, k, "+", 1u, out, out_size);
}

/* ---- fleet roll-ups ---------------------------------------------------------------------- */

static const struct kind_info FLEET_KINDS[MGO_FLEET_TOPIC_KIND_COUNT] = {
    [MGO_FLEET_TOPIC_ROLLOUT] = {"rollouts", false, true, 1},
    [MGO_FLEET_TOPIC_APP] = {"apps", false, true, 1},
};

bool mgo_fleet_topic_retained(enum mgo_fleet_topic_kind kind)
{
    return (unsigned)kind < MGO_FLEET_TOPIC_KIND_COUNT && FLEET_KINDS[kind].retained;
}

int mgo_fleet_topic_qos(enum mgo_fleet_topic_kind kind)
{
    return (unsigned)kind < MGO_FLEET_TOPIC_KIND_COUNT ? FLEET_KINDS[kind].qos : -1;
}

static mgo_err fleet_build(const char *prefix, enum mgo_fleet_topic_kind kind, const char *id,
                           size_t id_len, char *out, size_t out_size)
{
    size_t plen = 0, pos = 0;
    if ((unsigned)kind >= MGO_FLEET_TOPIC_KIND_COUNT || out == NULL || out_size == 0)
        return MGO_ERR_INVALID;
    mgo_err err = check_prefix_len(prefix, &plen);
    if (err)
        return err;
    const char *level = FLEET_KINDS[kind].level;
    out[0] = '\0';
    err = append(out, out_size, &pos, prefix, plen);
    if (!err)
        err = append(out, out_size, &pos, "/fleet/", 7);
    if (!err)
        err = append(out, out_size, &pos, level, strlen(level));
    if (!err)
        err = append(out, out_size, &pos, "/", 1);
    if (!err)
        err = append(out, out_size, &pos, id, id_len);
    return err;
}

mgo_err mgo_fleet_topic_format(const char *prefix, enum mgo_fleet_topic_kind kind, const char *id,
                               char *out, size_t out_size)
{
    if (id == NULL)
        return MGO_ERR_INVALID;
    size_t len = strnlen(id, MGO_MAX_APP_ID_LEN + 1u);
    mgo_err err = check_id(id, len, MGO_MAX_APP_ID_LEN);
    if (err)
        return err;
    return fleet_build(prefix, kind, id, len, out, out_size);
}

mgo_err mgo_fleet_topic_filter(const char *prefix, enum mgo_fleet_topic_kind kind, char *out,
                               size_t out_size)
{
    return fleet_build(prefix, kind, "+", 1, out, out_size);
}
