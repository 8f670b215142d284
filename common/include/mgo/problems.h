/* problems.h - validation findings: each names the field (a path like
 * "spec.deploymentProfile.components[1].name") and the rule it broke.
 * Fixed storage, no allocation; past MGO_MAX_PROBLEMS findings are only counted. */
#ifndef MGO_PROBLEMS_H
#define MGO_PROBLEMS_H

#include <stddef.h>
#include "mgo/limits.h"
#include "mgo/err.h"

struct mgo_problem {
    char field[MGO_MAX_FIELD_PATH];
    char rule[MGO_MAX_PROBLEM_TEXT];
};

struct mgo_problems {
    struct mgo_problem items[MGO_MAX_PROBLEMS];
    size_t count;   /* stored items */
    size_t dropped; /* findings past MGO_MAX_PROBLEMS */
};

void mgo_problems_init(struct mgo_problems *p);
void mgo_problems_add(struct mgo_problems *p, const char *field, const char *fmt, ...)
    MGO_PRINTF(3, 4);
static inline size_t mgo_problems_total(const struct mgo_problems *p)
{
    return p->count + p->dropped;
}
/* "field: rule; field: rule" into out (truncated to out_size). */
void mgo_problems_format(const struct mgo_problems *p, char *out, size_t out_size);

#endif
