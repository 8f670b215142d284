/* labels.h - the labels of a device (docs/rollouts.md "Labels and selectors"): the ones an
 * operator set (the store's device_labels) and the ones derived from its capabilities, under
 * MGO_LABEL_DERIVED_PREFIX. Loop thread only; reads the store, writes nothing. */
#ifndef MGO_MGR_LABELS_H
#define MGO_MGR_LABELS_H

#include <stdbool.h>
#include <stddef.h>

#include "mgo/arena.h"
#include "mgo/margo.h"
#include "mgo/mgr_store.h"
#include "mgo/selector.h"

/* Labels of a device at most: the operator's and the derived ones (a device's own capability
 * labels past the bound are left out). */
#define MGO_LABELS_MAX (MGO_LABELS_MAX_PER_DEVICE + 64u)

struct mgo_device_labels {
    struct mgo_label items[MGO_LABELS_MAX];
    size_t len;
    size_t operator_len; /* items[0..operator_len) were set by an operator */
    bool have_caps;
    struct mgo_capabilities caps; /* when have_caps */
    struct mgo_value caps_tree;
};

/* Fills out for the device row (strings in arena). Operator labels win over derived ones
 * with the same key. Store errors are returned; capabilities that do not decode leave
 * have_caps false. */
mgo_err mgo_labels__of_device(struct mgo_mgr_store *store, const struct mgo_mgr_device_row *row,
                              struct mgo_arena *arena,
                              struct mgo_device_labels *out) MGO_MUST_CHECK;

#endif
