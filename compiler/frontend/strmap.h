/* compiler/frontend/strmap.h: a string -> pointer hash table in an arena, for
 * the frontend's name tables (anchors, scopes, parameter keys). Nothing is
 * freed alone: the table lives as long as its arena. */
#ifndef KILN_FRONTEND_STRMAP_H
#define KILN_FRONTEND_STRMAP_H

#include <stddef.h>

#include "ir/arena.h"

typedef struct kiln_strmap_slot {
    const char *key; /* NULL: empty */
    size_t hash;
    void *value;
} kiln_strmap_slot;

typedef struct kiln_strmap {
    kiln_arena *arena;
    kiln_strmap_slot *slots;
    size_t cap, count;
} kiln_strmap;

void kiln_strmap_init(kiln_strmap *m, kiln_arena *arena);
/* The value stored for key, or NULL. */
void *kiln_strmap_get(const kiln_strmap *m, const char *key);
/* Stores key -> value, replacing an existing entry. The key is not copied: it
 * must live as long as the table. Returns 0, or -1 when out of memory. */
int kiln_strmap_put(kiln_strmap *m, const char *key, void *value);

#endif
