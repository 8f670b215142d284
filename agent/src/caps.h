/* caps.h - device capabilities detected from the host, merged with configuration
 * (private to agent/). */
#ifndef MGO_AGENT_CAPS_H
#define MGO_AGENT_CAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/margo.h"

struct mgo_caps_config {
    const char *device_id;
    const char *vendor;       /* NULL = /sys/class/dmi/id/sys_vendor or "unknown" */
    const char *model;        /* NULL = /sys/class/dmi/id/product_name or "unknown" */
    const char *serial;       /* NULL = /sys/class/dmi/id/product_serial or "unknown" */
    double cpu_cores;         /* 0 = detected */
    const char *memory;       /* "4Gi" overrides detection; NULL = detected */
    const char *storage;      /* "59Gi" overrides detection; NULL = statvfs(storage_path) */
    const char *storage_path; /* the runtime's disk (the state directory) */
    bool otel_collector;
    bool compose_available;
    bool helm_available;
    const char *const *labels; /* "key=value" */
    size_t labels_len;
    const char *const *peripherals; /* extra "gpu", "camera:Vendor:Model" entries */
    size_t peripherals_len;
    const char *sys_root; /* "" normally; a fake /sys + /dev root in tests */
};

/* Fills caps (strings and arrays in arena). MGO_ERR_INVALID with why for a bad override. */
mgo_err mgo_caps_detect(const struct mgo_caps_config *cfg, struct mgo_arena *arena,
                        struct mgo_capabilities *caps, char *why, size_t why_len) MGO_MUST_CHECK;

#endif
