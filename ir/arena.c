/* ir/arena.c: bump allocation in chunks, and the heap wrappers that tests use
 * to inject allocation failures. */
#include "arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kiln_arena_chunk {
    kiln_arena_chunk *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    _Alignas(64) unsigned char data[];
};

#define KILN_ARENA_CHUNK (64u * 1024u)

/* Failure injection: per thread, so parallel tests do not disturb each other.
 * fail_at is 1-based: the fail_at-th allocation after kiln_alloc_fail_after
 * fails (and all later ones when sticky); 0 disables. */
static _Thread_local long fail_at;
static _Thread_local int fail_sticky;
static _Thread_local long alloc_count;

void kiln_alloc_fail_after(long n, int sticky)
{
    fail_at = n > 0 ? n : 0;
    fail_sticky = sticky;
    alloc_count = 0;
}

long kiln_alloc_count(void) { return alloc_count; }

static int should_fail(void)
{
    alloc_count++;
    if (fail_at == 0)
        return 0;
    return fail_sticky ? alloc_count >= fail_at : alloc_count == fail_at;
}

void *kiln_malloc(size_t size)
{
    if (should_fail())
        return NULL;
    return malloc(size ? size : 1);
}

void *kiln_calloc(size_t n, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

void *kiln_realloc(void *p, size_t size)
{
    if (should_fail())
        return NULL;
    return realloc(p, size ? size : 1);
}

void kiln_free(void *p) { free(p); }

int kiln_grow(void **items, size_t *capacity, size_t need, size_t item)
{
    if (need <= *capacity)
        return 0;
    size_t cap = *capacity ? *capacity : 8;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    if (item && cap > SIZE_MAX / item)
        return -1;
    void *p = kiln_realloc(*items, cap * item);
    if (!p)
        return -1;
    *items = p;
    *capacity = cap;
    return 0;
}

void kiln_arena_init(kiln_arena *a)
{
    a->head = NULL;
    a->total = 0;
}

void kiln_arena_release(kiln_arena *a)
{
    kiln_arena_chunk *c = a->head;
    while (c) {
        kiln_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->total = 0;
}

static void *arena_alloc(kiln_arena *a, size_t size, size_t align)
{
    kiln_arena_chunk *c = a->head;
    if (c) {
        size_t start = (c->used + align - 1) & ~(align - 1);
        if (start <= c->size && size <= c->size - start) {
            c->used = start + size;
            a->total += size;
            return c->data + start;
        }
    }
    if (size > SIZE_MAX - sizeof(kiln_arena_chunk) - 64)
        return NULL;
    size_t want = size > KILN_ARENA_CHUNK ? size : KILN_ARENA_CHUNK;
    if (should_fail())
        return NULL;
    /* aligned_alloc needs a multiple of the alignment. */
    size_t bytes = (sizeof(kiln_arena_chunk) + want + 63) & ~(size_t)63;
    c = aligned_alloc(64, bytes);
    if (!c)
        return NULL;
    c->size = bytes - sizeof(kiln_arena_chunk);
    c->used = size;
    c->next = a->head;
    a->head = c;
    a->total += size;
    return c->data;
}

void *kiln_arena_alloc(kiln_arena *a, size_t size)
{
    void *p = arena_alloc(a, size, 16);
    if (p)
        memset(p, 0, size);
    return p;
}

void *kiln_arena_alloc_aligned(kiln_arena *a, size_t size)
{
    void *p = arena_alloc(a, size, 64);
    if (p)
        memset(p, 0, size);
    return p;
}

char *kiln_arena_strndup(kiln_arena *a, const char *s, size_t n)
{
    if (!s)
        return NULL;
    if (n == SIZE_MAX)
        return NULL;
    char *p = arena_alloc(a, n + 1, 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *kiln_arena_strdup(kiln_arena *a, const char *s)
{
    return s ? kiln_arena_strndup(a, s, strlen(s)) : NULL;
}

char *kiln_arena_printf(kiln_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = arena_alloc(a, (size_t)n + 1, 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}
