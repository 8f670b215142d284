/* problems.c - validation findings with field paths. */
#include "mgo/problems.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void mgo_problems_init(struct mgo_problems *p)
{
    p->count = 0;
    p->dropped = 0;
}

void mgo_problems_add(struct mgo_problems *p, const char *field, const char *fmt, ...)
{
    if (p == NULL)
        return;
    if (p->count >= MGO_MAX_PROBLEMS) {
        p->dropped++;
        return;
    }
    struct mgo_problem *it = &p->items[p->count++];
    snprintf(it->field, sizeof it->field, "%s", field != NULL && field[0] ? field : "$");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->rule, sizeof it->rule, fmt, ap);
    va_end(ap);
}

void mgo_problems_format(const struct mgo_problems *p, char *out, size_t out_size)
{
    size_t used = 0;
    if (out_size == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < p->count && used + 1 < out_size; i++) {
        int n = snprintf(out + used, out_size - used, "%s%s: %s", i ? "; " : "", p->items[i].field,
                         p->items[i].rule);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (p->dropped > 0 && used + 1 < out_size)
        snprintf(out + used, out_size - used, "; and %zu more", p->dropped);
}
