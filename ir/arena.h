/* ir/arena.h: a bump allocator freed in one call. Every compilation object
 * (graph, diagnostics, YAML document) owns one; nothing inside is freed alone. */
#ifndef KILN_IR_ARENA_H
#define KILN_IR_ARENA_H

#include <stddef.h>

typedef struct kiln_arena_chunk kiln_arena_chunk;

typedef struct kiln_arena {
    kiln_arena_chunk *head; /* newest chunk first */
    size_t total;           /* bytes handed out, for reports */
} kiln_arena;

void kiln_arena_init(kiln_arena *a);
/* Frees every chunk; the arena is empty and reusable afterwards. */
void kiln_arena_release(kiln_arena *a);
/* 16-byte aligned, zero-filled memory; NULL when out of memory. */
void *kiln_arena_alloc(kiln_arena *a, size_t size);
/* 64-byte aligned, zero-filled: for tensor data. */
void *kiln_arena_alloc_aligned(kiln_arena *a, size_t size);
/* Copies of strings; NULL in, NULL out; NULL when out of memory. */
char *kiln_arena_strdup(kiln_arena *a, const char *s);
char *kiln_arena_strndup(kiln_arena *a, const char *s, size_t n);
char *kiln_arena_printf(kiln_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Allocation-failure injection for tests (SQLite's test_malloc idea): after
 * kiln_alloc_fail_after(n, sticky) with n >= 1, the n-th following allocation
 * (kiln_malloc, kiln_calloc, kiln_realloc, or a new arena chunk) fails, and
 * with `sticky` every one after it too. n <= 0 disables. Per thread. */
void kiln_alloc_fail_after(long n, int sticky);
/* Number of allocations attempted since the last kiln_alloc_fail_after. */
long kiln_alloc_count(void);
void *kiln_malloc(size_t size);
void *kiln_calloc(size_t n, size_t size);
void *kiln_realloc(void *p, size_t size);
void kiln_free(void *p);

/* Grows a heap array so it holds at least `need` items of `item` bytes.
 * Returns 0 on success, -1 when out of memory (the array is unchanged). */
int kiln_grow(void **items, size_t *capacity, size_t need, size_t item);

#endif
