/* arena.c - capped bump allocator. */
#include "mgo/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16u
#define ARENA_CHUNK_MIN 4096u

struct mgo_arena_chunk {
    struct mgo_arena_chunk *next;
    size_t size; /* usable bytes in data */
    size_t used;
    _Alignas(16) unsigned char data[];
};

void mgo_arena_init(struct mgo_arena *arena, size_t max)
{
    arena->head = NULL;
    arena->used = 0;
    arena->max = max;
}

void mgo_arena_cleanup(struct mgo_arena *arena)
{
    struct mgo_arena_chunk *c = arena->head;
    while (c != NULL) {
        struct mgo_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    arena->head = NULL;
    arena->used = 0;
}

void *mgo_arena_alloc_raw(struct mgo_arena *arena, size_t size)
{
    if (size == 0)
        size = 1;
    if (size > arena->max)
        return NULL;
    size_t rounded = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    struct mgo_arena_chunk *c = arena->head;
    if (c == NULL || c->size - c->used < rounded) {
        size_t chunk = ARENA_CHUNK_MIN;
        if (c != NULL && c->size * 2 > chunk)
            chunk = c->size * 2; /* grow geometrically: few chunks per document */
        if (chunk < rounded)
            chunk = rounded + ARENA_CHUNK_MIN; /* room for the small pieces that follow (a
                                                * decoded tree is one piece, then its struct) */
        size_t total = sizeof *c + chunk;
        if (arena->used + total > arena->max) {
            chunk = rounded; /* last try: exactly what is needed */
            total = sizeof *c + chunk;
            if (arena->used + total > arena->max)
                return NULL;
        }
        c = malloc(total);
        if (c == NULL)
            return NULL;
        c->next = arena->head;
        c->size = chunk;
        c->used = 0;
        arena->head = c;
        arena->used += total;
    }
    void *p = c->data + c->used;
    c->used += rounded;
    return p;
}

void *mgo_arena_alloc(struct mgo_arena *arena, size_t size)
{
    void *p = mgo_arena_alloc_raw(arena, size);
    if (p != NULL)
        memset(p, 0, size ? size : 1);
    return p;
}

char *mgo_arena_strndup(struct mgo_arena *arena, const char *src, size_t len)
{
    char *p = mgo_arena_alloc(arena, len + 1);
    if (p == NULL)
        return NULL;
    if (len > 0)
        memcpy(p, src, len);
    p[len] = '\0';
    return p;
}

char *mgo_arena_strdup(struct mgo_arena *arena, const char *src)
{
    return mgo_arena_strndup(arena, src, strlen(src));
}

char *mgo_arena_printf(struct mgo_arena *arena, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = mgo_arena_alloc(arena, (size_t)n + 1);
    if (p == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}
