/* memory.c: 64-byte aligned allocation and the bump arena. */
#define _POSIX_C_SOURCE 200809L
#include "kiln/runtime.h"

#include <stdint.h>
#include <stdlib.h>

#define KILN_RT_ALIGN ((size_t)64)

KILN_RT_API void *kiln_rt_aligned_alloc(size_t size)
{
    void *p = NULL;
    /* Round up to a whole number of cache lines; size 0 gets one line so that
     * the result is a unique, freeable pointer. */
    if (size > SIZE_MAX - (KILN_RT_ALIGN - 1))
        return NULL;
    size = size == 0 ? KILN_RT_ALIGN : (size + KILN_RT_ALIGN - 1) & ~(KILN_RT_ALIGN - 1);
    if (posix_memalign(&p, KILN_RT_ALIGN, size) != 0)
        return NULL;
    return p;
}

KILN_RT_API void kiln_rt_aligned_free(void *p)
{
    free(p);
}

KILN_RT_API void kiln_rt_arena_init(kiln_rt_arena *a, void *base, size_t size)
{
    if (a == NULL)
        return;
    a->base = (unsigned char *)base;
    a->size = base == NULL ? 0 : size;
    a->used = 0;
}

KILN_RT_API void *kiln_rt_arena_alloc(kiln_rt_arena *a, size_t size)
{
    uintptr_t addr, pad;
    size_t start;

    if (a == NULL || a->base == NULL || a->used > a->size)
        return NULL;
    addr = (uintptr_t)a->base + a->used;
    pad = (KILN_RT_ALIGN - (addr & (KILN_RT_ALIGN - 1))) & (KILN_RT_ALIGN - 1);
    if (pad > a->size - a->used)
        return NULL;
    start = a->used + (size_t)pad;
    if (size > a->size - start)
        return NULL;
    a->used = start + size;
    return a->base + start;
}
