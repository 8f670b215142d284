/* selector.h - device labels and label selectors (docs/rollouts.md "Labels and selectors").
 *
 * A label is key=value. Keys: 1..MGO_LABEL_MAX_KEY bytes of [A-Za-z0-9._/-], starting with a
 * letter or digit ("site", "example.com/tier"). Values: 0..MGO_LABEL_MAX_VALUE bytes of
 * [A-Za-z0-9._-]. Keys under MGO_LABEL_DERIVED_PREFIX are derived from a device's capabilities
 * and are never set by an operator.
 *
 * A selector is a comma-separated list of requirements, all of which must hold (Kubernetes'
 * label selector syntax):
 *
 *   key=value  key==value  key!=value         equality / inequality (!= also holds when the
 *                                             label is absent)
 *   key in (v1,v2)  key notin (v1,v2)         set membership (notin holds when absent)
 *   key  !key                                 existence / absence
 *
 * Blanks around tokens are ignored; an empty selector selects every device. Bounds: at most
 * MGO_SELECTOR_MAX_LEN bytes, MGO_SELECTOR_MAX_REQS requirements, MGO_SELECTOR_MAX_VALUES
 * values per set.
 *
 * Pure: no I/O, no allocation; a parsed selector lives in the caller's struct (values point
 * into its own copy of the text, so the struct must not be copied byte-wise). */
#ifndef MGO_SELECTOR_H
#define MGO_SELECTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "mgo/err.h"

#define MGO_LABEL_MAX_KEY 128u
#define MGO_LABEL_MAX_VALUE 128u
#define MGO_LABELS_MAX_PER_DEVICE 64u /* operator labels per device */
#define MGO_LABEL_DERIVED_PREFIX "margo.org/"
#define MGO_SELECTOR_MAX_LEN 1024u
#define MGO_SELECTOR_MAX_REQS 32u
#define MGO_SELECTOR_MAX_VALUES 16u
#define MGO_SELECTOR_ERR_SIZE 160u

enum mgo_sel_op {
    MGO_SEL_EQ,
    MGO_SEL_NE,
    MGO_SEL_IN,
    MGO_SEL_NOTIN,
    MGO_SEL_EXISTS,
    MGO_SEL_ABSENT,
};

struct mgo_sel_req {
    enum mgo_sel_op op;
    const char *key;
    const char *values[MGO_SELECTOR_MAX_VALUES];
    size_t values_len;
};

struct mgo_selector {
    struct mgo_sel_req reqs[MGO_SELECTOR_MAX_REQS];
    size_t reqs_len;
    char pool[2u * MGO_SELECTOR_MAX_LEN + 2u]; /* NUL-separated keys and values */
};

struct mgo_label {
    const char *key;
    const char *value;
};

/* Label checks: false with the rule broken in why (may be NULL). */
bool mgo_label_key_ok(const char *key, char *why, size_t why_size);
bool mgo_label_value_ok(const char *value, char *why, size_t why_size);

/* Parses text into sel. MGO_ERR_INVALID or MGO_ERR_LIMIT with err holding
 * "at byte N: <rule>" (N counts from 0). */
mgo_err mgo_selector_parse(const char *text, struct mgo_selector *sel, char *err,
                           size_t err_size) MGO_MUST_CHECK;

/* Whether labels[0..n) satisfy every requirement; when not, why (may be NULL) names the first
 * requirement that failed, e.g. "tier=canary does not satisfy tier!=canary". */
bool mgo_selector_match(const struct mgo_selector *sel, const struct mgo_label *labels, size_t n,
                        char *why, size_t why_size);

#endif
