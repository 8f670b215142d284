/* failure.h - the class of a failed component: caused by the device or by the app.
 *
 * A rollout's failure thresholds can count app failures only, so that one broken device (disk
 * full, runtime down, registry unreachable from its network) does not abort a fleet rollout.
 * The class follows from the status error code (docs/protocol.md 8.3, column "class"; the test
 * scripts/wire_names checks that the table and this list agree). */
#ifndef MGO_FAILURE_H
#define MGO_FAILURE_H

enum mgo_failure_class {
    MGO_FAILURE_NONE,   /* not a failure (CANCELLED), or no code */
    MGO_FAILURE_DEVICE, /* the device could not do its part: runtime, disk, network, config */
    MGO_FAILURE_APP,    /* the app's package, parameters or workload failed */
};

/* The class of error code `code` (NULL or "" -> MGO_FAILURE_NONE). A code this version does not
 * know (receivers accept an open set, [VER-3]) counts as MGO_FAILURE_APP: an unknown failure
 * is never excused as the device's. */
enum mgo_failure_class mgo_failure_class_of(const char *code);

/* "none", "device" or "app": the names used on the wire and in the API. */
const char *mgo_failure_class_name(enum mgo_failure_class c);

#endif
