/* compiler/frontend/yaml_tree.c: libyaml events -> kiln_yaml_node tree.
 *
 * Collections under construction sit on a frame stack; their children are
 * collected on one shared `pending` array and copied into the arena when the
 * collection ends. libyaml marks are 0-based; locations are 1-based. */
#include "yaml_tree.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "strmap.h"

typedef struct anchor {
    kiln_yaml_node *node;
    bool complete; /* the collection has ended: an alias to it is not recursive */
} anchor;

typedef struct frame {
    kiln_yaml_node *node; /* the collection being built */
    size_t first;         /* index of its first child in `pending` */
    uint64_t weight;      /* 1 + the children so far */
    anchor *anchor;       /* NULL when it has none */
} frame;

typedef struct builder {
    kiln_arena *arena;
    kiln_diag *d;
    const char *file;
    const char *text;
    size_t len;
    kiln_yaml_node **pending;
    size_t n_pending, cap_pending;
    frame frames[KILN_YAML_MAX_DEPTH + 1];
    int depth;
    kiln_strmap anchors;
    kiln_yaml_node *root;
    int documents;
    uint64_t aliases; /* alias nodes read so far */
    kiln_status status;
} builder;

static kiln_loc mark_loc(const builder *b, yaml_mark_t m)
{
    kiln_loc loc = {b->file, (uint32_t)(m.line + 1), (uint32_t)(m.column + 1)};
    return loc;
}

static void fail(builder *b, kiln_status st, kiln_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(builder *b, kiln_status st, kiln_loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kiln_diag_verror(b->d, loc, fmt, ap);
    va_end(ap);
    if (b->status == KILN_OK)
        b->status = st;
}

static void oom(builder *b)
{
    kiln_loc loc = {b->file, 0, 0};
    fail(b, KILN_ERR_OUT_OF_MEMORY, loc, "out of memory while reading YAML");
}

/* Line and column (1-based, columns in characters as libyaml counts them) of
 * a byte offset: for reader errors, which carry only the offset. */
static kiln_loc offset_loc(const builder *b, size_t offset)
{
    kiln_loc loc = {b->file, 1, 1};
    if (offset > b->len)
        offset = b->len;
    for (size_t i = 0; i < offset; ++i) {
        unsigned char c = (unsigned char)b->text[i];
        if (c == '\n') {
            loc.line++;
            loc.col = 1;
        } else if ((c & 0xC0) != 0x80) {
            loc.col++;
        }
    }
    return loc;
}

/* Does line `line` (1-based) hold a tab before column `col`? */
static bool tab_before(const builder *b, uint32_t line, uint32_t col)
{
    size_t i = 0;
    for (uint32_t l = 1; l < line && i < b->len; ++i) {
        if (b->text[i] == '\n')
            l++;
    }
    for (uint32_t c = 1; i < b->len && b->text[i] != '\n' && c <= col; ++i, ++c) {
        if (b->text[i] == '\t')
            return true;
    }
    return false;
}

static void libyaml_error(builder *b, const yaml_parser_t *p)
{
    const char *problem = p->problem ? p->problem : "malformed YAML";
    kiln_loc loc;
    char ctx[160] = "";
    switch (p->error) {
    case YAML_MEMORY_ERROR:
        oom(b);
        return;
    case YAML_READER_ERROR:
        loc = offset_loc(b, p->problem_offset);
        if (p->problem_value != -1)
            fail(b, KILN_ERR_PARSE, loc, "YAML: %s (byte 0x%02X)", problem, (unsigned)p->problem_value & 0xFFu);
        else
            fail(b, KILN_ERR_PARSE, loc, "YAML: %s", problem);
        return;
    default:
        loc = mark_loc(b, p->problem_mark);
        if (p->context)
            snprintf(ctx, sizeof ctx, " (%s at line %lu, column %lu)", p->context,
                     (unsigned long)p->context_mark.line + 1, (unsigned long)p->context_mark.column + 1);
        fail(b, KILN_ERR_PARSE, loc, "YAML syntax error: %s%s%s", problem, ctx,
             tab_before(b, loc.line, loc.col) ? "; tabs cannot be used for indentation in YAML" : "");
        return;
    }
}

static kiln_yaml_node *new_node(builder *b, kiln_yaml_kind kind, yaml_mark_t m)
{
    kiln_yaml_node *n = kiln_arena_alloc(b->arena, sizeof *n);
    if (n == NULL) {
        oom(b);
        return NULL;
    }
    n->kind = kind;
    n->loc = mark_loc(b, m);
    n->weight = 1;
    return n;
}

static bool register_anchor(builder *b, const yaml_char_t *name, kiln_yaml_node *n, bool complete,
                            anchor **out)
{
    if (name == NULL)
        return true;
    anchor *a = kiln_arena_alloc(b->arena, sizeof *a);
    char *key = kiln_arena_strdup(b->arena, (const char *)name);
    if (a == NULL || key == NULL || kiln_strmap_put(&b->anchors, key, a) != 0) {
        oom(b);
        return false;
    }
    a->node = n;
    a->complete = complete;
    if (out)
        *out = a;
    return true;
}

static uint64_t add_weight(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

/* Hands a finished node to its parent collection (or makes it the root). */
static bool attach(builder *b, kiln_yaml_node *n, kiln_loc where)
{
    if (b->depth == 0) {
        b->root = n;
        return true;
    }
    frame *f = &b->frames[b->depth - 1];
    f->weight = add_weight(f->weight, n->weight);
    if (f->weight > KILN_YAML_MAX_NODES) {
        /* Only aliases make a document larger than its text: say which it is. */
        if (b->aliases)
            fail(b, KILN_ERR_PARSE, where,
                 "the YAML document expands to more than %u nodes (counting every alias expansion); refused",
                 KILN_YAML_MAX_NODES);
        else
            fail(b, KILN_ERR_PARSE, where,
                 "the YAML document has more than %u nodes (scalars, sequences and mappings, as written in the "
                 "file); refused", KILN_YAML_MAX_NODES);
        return false;
    }
    if (kiln_grow((void **)&b->pending, &b->cap_pending, b->n_pending + 1, sizeof *b->pending) != 0) {
        oom(b);
        return false;
    }
    b->pending[b->n_pending++] = n;
    return true;
}

static bool scalar_event(builder *b, const yaml_event_t *ev)
{
    kiln_loc loc = mark_loc(b, ev->start_mark);
    const char *value = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (ev->data.scalar.tag && !ev->data.scalar.plain_implicit && !ev->data.scalar.quoted_implicit) {
        fail(b, KILN_ERR_PARSE, loc, "YAML tags ('%s') are not supported in kiln models",
             (const char *)ev->data.scalar.tag);
    }
    if (memchr(value, '\0', len) != NULL) {
        fail(b, KILN_ERR_PARSE, loc, "a NUL character in a scalar is not allowed");
        len = strlen(value);
    }
    kiln_yaml_node *n = new_node(b, KILN_YAML_SCALAR, ev->start_mark);
    if (n == NULL)
        return false;
    n->text = kiln_arena_strndup(b->arena, value, len);
    if (n->text == NULL) {
        oom(b);
        return false;
    }
    n->len = len;
    n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    if (!register_anchor(b, ev->data.scalar.anchor, n, true, NULL))
        return false;
    return attach(b, n, loc);
}

static bool alias_event(builder *b, const yaml_event_t *ev)
{
    kiln_loc loc = mark_loc(b, ev->start_mark);
    const char *name = (const char *)ev->data.alias.anchor;
    anchor *a = kiln_strmap_get(&b->anchors, name);
    if (a == NULL) {
        fail(b, KILN_ERR_PARSE, loc, "YAML alias '*%s' refers to no anchor defined before it", name);
        return false;
    }
    if (!a->complete) {
        fail(b, KILN_ERR_PARSE, loc, "YAML alias '*%s' refers to a node that contains it (recursive alias)", name);
        return false;
    }
    b->aliases++;
    return attach(b, a->node, loc);
}

static bool start_event(builder *b, const yaml_event_t *ev, kiln_yaml_kind kind)
{
    kiln_loc loc = mark_loc(b, ev->start_mark);
    const yaml_char_t *tag, *anchor_name;
    int implicit;
    if (kind == KILN_YAML_SEQ) {
        tag = ev->data.sequence_start.tag;
        anchor_name = ev->data.sequence_start.anchor;
        implicit = ev->data.sequence_start.implicit;
    } else {
        tag = ev->data.mapping_start.tag;
        anchor_name = ev->data.mapping_start.anchor;
        implicit = ev->data.mapping_start.implicit;
    }
    if (tag && !implicit)
        fail(b, KILN_ERR_PARSE, loc, "YAML tags ('%s') are not supported in kiln models", (const char *)tag);
    if (b->depth >= KILN_YAML_MAX_DEPTH) {
        fail(b, KILN_ERR_PARSE, loc, "YAML nesting deeper than %d levels is refused", KILN_YAML_MAX_DEPTH);
        return false;
    }
    kiln_yaml_node *n = new_node(b, kind, ev->start_mark);
    if (n == NULL)
        return false;
    frame *f = &b->frames[b->depth++];
    f->node = n;
    f->first = b->n_pending;
    f->weight = 1;
    f->anchor = NULL;
    return register_anchor(b, anchor_name, n, false, &f->anchor);
}

static bool same_key(const kiln_yaml_node *a, const kiln_yaml_node *b)
{
    return a->len == b->len && memcmp(a->text, b->text, a->len) == 0;
}

/* Keys must be scalars (false otherwise: every reader needs text keys) and
 * distinct (reported; the parse goes on so other problems are found too). */
static bool check_keys(builder *b, kiln_yaml_node *map)
{
    bool ok = true;
    for (size_t i = 0; i < map->count; ++i) {
        kiln_yaml_node *k = map->pairs[i].key;
        if (k->kind != KILN_YAML_SCALAR) {
            fail(b, KILN_ERR_PARSE, k->loc, "mapping keys must be scalars, not %s", kiln_yaml_kind_name(k->kind));
            ok = false;
        }
    }
    if (!ok)
        return false;
    if (map->count <= 16) {
        for (size_t i = 1; i < map->count; ++i) {
            for (size_t j = 0; j < i; ++j) {
                if (same_key(map->pairs[i].key, map->pairs[j].key)) {
                    const kiln_yaml_node *k = map->pairs[i].key;
                    fail(b, KILN_ERR_PARSE, k->loc, "duplicate key '%s' (first given at line %u)", k->text,
                         map->pairs[j].key->loc.line);
                    break;
                }
            }
        }
        return ok;
    }
    kiln_strmap seen;
    kiln_strmap_init(&seen, b->arena);
    for (size_t i = 0; i < map->count; ++i) {
        kiln_yaml_node *k = map->pairs[i].key;
        kiln_yaml_node *first = kiln_strmap_get(&seen, k->text);
        if (first != NULL) {
            fail(b, KILN_ERR_PARSE, k->loc, "duplicate key '%s' (first given at line %u)", k->text, first->loc.line);
        } else if (kiln_strmap_put(&seen, k->text, k) != 0) {
            oom(b);
            return false;
        }
    }
    return ok;
}

static bool end_event(builder *b, const yaml_event_t *ev)
{
    frame *f = &b->frames[b->depth - 1];
    kiln_yaml_node *n = f->node;
    size_t count = b->n_pending - f->first;
    kiln_yaml_node **children = count ? b->pending + f->first : NULL;
    if (n->kind == KILN_YAML_SEQ) {
        if (count) {
            n->items = kiln_arena_alloc(b->arena, count * sizeof *n->items);
            if (n->items == NULL) {
                oom(b);
                return false;
            }
            memcpy(n->items, children, count * sizeof *n->items);
        }
        n->count = count;
    } else {
        /* libyaml pairs keys and values, so count is even. */
        n->count = count / 2;
        if (n->count) {
            n->pairs = kiln_arena_alloc(b->arena, n->count * sizeof *n->pairs);
            if (n->pairs == NULL) {
                oom(b);
                return false;
            }
            for (size_t i = 0; i < n->count; ++i) {
                n->pairs[i].key = children[2 * i];
                n->pairs[i].value = children[2 * i + 1];
            }
        }
        if (!check_keys(b, n))
            return false;
    }
    n->weight = f->weight;
    if (f->anchor)
        f->anchor->complete = true;
    b->n_pending = f->first;
    b->depth--;
    return attach(b, n, mark_loc(b, ev->start_mark));
}

kiln_status kiln_yaml_parse(const char *text, size_t len, const char *filename, kiln_arena *arena,
                            kiln_yaml_node **root, kiln_diag *d)
{
    builder b;
    memset(&b, 0, sizeof b);
    b.arena = arena;
    b.d = d;
    b.file = filename;
    b.text = text;
    b.len = len;
    kiln_strmap_init(&b.anchors, arena);
    *root = NULL;

    if (len > KILN_YAML_MAX_BYTES) {
        kiln_loc loc = {filename, 0, 0};
        fail(&b, KILN_ERR_PARSE, loc, "file is larger than %zu MiB; refused", KILN_YAML_MAX_BYTES >> 20);
        return b.status;
    }
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        oom(&b);
        return b.status;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);

    bool done = false, ok = true;
    while (ok && !done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            libyaml_error(&b, &p);
            ok = false;
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++b.documents > 1) {
                fail(&b, KILN_ERR_PARSE, mark_loc(&b, ev.start_mark),
                     "a kiln model is one YAML document; found a second one");
                ok = false;
            }
            break;
        case YAML_SCALAR_EVENT:
            ok = scalar_event(&b, &ev);
            break;
        case YAML_ALIAS_EVENT:
            ok = alias_event(&b, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
            ok = start_event(&b, &ev, KILN_YAML_SEQ);
            break;
        case YAML_MAPPING_START_EVENT:
            ok = start_event(&b, &ev, KILN_YAML_MAP);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            ok = end_event(&b, &ev);
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    kiln_free(b.pending);
    if (!ok && b.status == KILN_OK) /* defensive: every failure path reports */
        b.status = KILN_ERR_PARSE;
    if (b.status != KILN_OK)
        return b.status;
    *root = b.root;
    return KILN_OK;
}

bool kiln_yaml_is_null(const kiln_yaml_node *n)
{
    if (n == NULL || n->kind != KILN_YAML_SCALAR || n->quoted)
        return false;
    return n->len == 0 || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0 ||
           strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0;
}

const kiln_yaml_pair *kiln_yaml_get_pair(const kiln_yaml_node *map, const char *key)
{
    if (map == NULL || map->kind != KILN_YAML_MAP)
        return NULL;
    for (size_t i = 0; i < map->count; ++i) {
        if (strcmp(map->pairs[i].key->text, key) == 0)
            return &map->pairs[i];
    }
    return NULL;
}

kiln_yaml_node *kiln_yaml_get(const kiln_yaml_node *map, const char *key)
{
    const kiln_yaml_pair *p = kiln_yaml_get_pair(map, key);
    return p ? p->value : NULL;
}

const char *kiln_yaml_kind_name(kiln_yaml_kind k)
{
    switch (k) {
    case KILN_YAML_SCALAR:
        return "a scalar";
    case KILN_YAML_SEQ:
        return "a list";
    case KILN_YAML_MAP:
        return "a mapping";
    }
    return "a node";
}
