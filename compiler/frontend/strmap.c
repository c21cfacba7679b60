/* compiler/frontend/strmap.c: open addressing with linear probing; the table
 * doubles at 1/2 load. Old tables stay in the arena (at most as much again). */
#include "strmap.h"

#include <stdint.h>
#include <string.h>

static size_t hash_string(const char *s)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (; *s; ++s) {
        h ^= (unsigned char)*s;
        h *= UINT64_C(1099511628211);
    }
    return (size_t)h;
}

void kiln_strmap_init(kiln_strmap *m, kiln_arena *arena)
{
    m->arena = arena;
    m->slots = NULL;
    m->cap = 0;
    m->count = 0;
}

static kiln_strmap_slot *find_slot(kiln_strmap_slot *slots, size_t cap, const char *key, size_t h)
{
    size_t i = h & (cap - 1);
    for (;;) {
        kiln_strmap_slot *s = &slots[i];
        if (s->key == NULL || (s->hash == h && strcmp(s->key, key) == 0))
            return s;
        i = (i + 1) & (cap - 1);
    }
}

void *kiln_strmap_get(const kiln_strmap *m, const char *key)
{
    if (m->cap == 0)
        return NULL;
    kiln_strmap_slot *s = find_slot(m->slots, m->cap, key, hash_string(key));
    return s->key ? s->value : NULL;
}

static int grow(kiln_strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    if (cap > SIZE_MAX / sizeof(kiln_strmap_slot))
        return -1;
    kiln_strmap_slot *slots = kiln_arena_alloc(m->arena, cap * sizeof *slots);
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < m->cap; ++i) {
        if (m->slots[i].key != NULL)
            *find_slot(slots, cap, m->slots[i].key, m->slots[i].hash) = m->slots[i];
    }
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int kiln_strmap_put(kiln_strmap *m, const char *key, void *value)
{
    if ((m->count + 1) * 2 > m->cap && grow(m) != 0)
        return -1;
    size_t h = hash_string(key);
    kiln_strmap_slot *s = find_slot(m->slots, m->cap, key, h);
    if (s->key == NULL) {
        s->key = key;
        s->hash = h;
        m->count++;
    }
    s->value = value;
    return 0;
}
