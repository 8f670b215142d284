/* arena.h - bump allocator with a hard cap; everything decoded from one message lives in
 * one arena and is freed with one mgo_arena_cleanup(). */
#ifndef MGO_ARENA_H
#define MGO_ARENA_H

#include <stddef.h>
#include "mgo/err.h"

struct mgo_arena_chunk;

struct mgo_arena {
    struct mgo_arena_chunk *head; /* newest chunk first */
    size_t used;                  /* bytes handed out plus chunk overhead */
    size_t max;                   /* hard cap; allocations past it fail */
};

/* Caller storage; max is the cap in bytes (e.g. MGO_MAX_DOC_ARENA_BYTES). */
void mgo_arena_init(struct mgo_arena *arena, size_t max);
/* Frees every chunk; the arena may be reused after mgo_arena_init(). */
void mgo_arena_cleanup(struct mgo_arena *arena);
/* Returns zeroed, 16-byte aligned memory owned by the arena, or NULL when the cap is hit. */
void *mgo_arena_alloc(struct mgo_arena *arena, size_t size);
/* mgo_arena_alloc without the zeroing, for storage the caller fills completely (the
 * MessagePack decoder's tree and message copy: zeroing them was a tenth of its
 * instructions). The bytes are indeterminate until written. */
void *mgo_arena_alloc_raw(struct mgo_arena *arena, size_t size);
/* Copies len bytes and appends a NUL. NULL on cap. */
char *mgo_arena_strndup(struct mgo_arena *arena, const char *src, size_t len);
char *mgo_arena_strdup(struct mgo_arena *arena, const char *src);
char *mgo_arena_printf(struct mgo_arena *arena, const char *fmt, ...) MGO_PRINTF(2, 3);

#endif
