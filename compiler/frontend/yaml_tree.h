/* compiler/frontend/yaml_tree.h: a YAML document as a tree of scalars,
 * sequences and mappings, built from libyaml's events. Every node keeps its
 * file:line:col. Aliases are resolved by sharing the anchored node (the tree
 * is a DAG); the size the document would have with every alias expanded is
 * capped, so an alias bomb is refused instead of walked. */
#ifndef KILN_FRONTEND_YAML_TREE_H
#define KILN_FRONTEND_YAML_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/arena.h"
#include "ir/diag.h"
#include "kiln/status.h"

/* FORMAT.md "Limits". */
#define KILN_YAML_MAX_BYTES ((size_t)64 << 20)
#define KILN_YAML_MAX_DEPTH 256
/* Nodes of the document with every alias expanded. */
#define KILN_YAML_MAX_NODES 1000000u

typedef enum kiln_yaml_kind { KILN_YAML_SCALAR, KILN_YAML_SEQ, KILN_YAML_MAP } kiln_yaml_kind;

typedef struct kiln_yaml_node kiln_yaml_node;

typedef struct kiln_yaml_pair {
    kiln_yaml_node *key; /* always a scalar */
    kiln_yaml_node *value;
} kiln_yaml_pair;

/* Marks the frontend leaves on nodes while it reads them. */
enum {
    KILN_YAML_BAD = 1u << 0,      /* found wrong once: do not report again, skip */
    KILN_YAML_REPORTED = 1u << 1, /* a problem at this node was already reported */
};

struct kiln_yaml_node {
    kiln_yaml_kind kind;
    kiln_loc loc;
    unsigned flags;
    /* SCALAR: NUL-terminated text (never contains NUL), plain or quoted. */
    const char *text;
    size_t len;
    bool quoted; /* any style but plain (single, double quoted, literal, folded) */
    /* SEQ */
    kiln_yaml_node **items;
    /* MAP */
    kiln_yaml_pair *pairs;
    size_t count; /* SEQ: items; MAP: pairs */
    uint64_t weight; /* nodes in the alias-expanded subtree, saturating */
};

/* Parses one YAML document. Nodes live in `arena`; `filename` (kept by
 * pointer in every location) must outlive them and the diagnostics. An empty
 * stream gives *root = NULL and KILN_OK. Errors (libyaml's, with its problem
 * text; duplicate keys; undefined aliases; tags; too deep; too big) go to d. */
kiln_status kiln_yaml_parse(const char *text, size_t len, const char *filename, kiln_arena *arena,
                            kiln_yaml_node **root, kiln_diag *d);

/* Helpers for readers. */
static inline bool kiln_yaml_is_scalar(const kiln_yaml_node *n) { return n && n->kind == KILN_YAML_SCALAR; }
/* A plain `~`, `null` (any case as YAML 1.1 spells it) or an empty plain scalar. */
bool kiln_yaml_is_null(const kiln_yaml_node *n);
/* The value for `key` in a mapping, or NULL (also when n is not a mapping). */
kiln_yaml_node *kiln_yaml_get(const kiln_yaml_node *map, const char *key);
/* The pair whose key is `key`, or NULL. */
const kiln_yaml_pair *kiln_yaml_get_pair(const kiln_yaml_node *map, const char *key);
/* "a mapping", "a list", "a scalar": for messages. */
const char *kiln_yaml_kind_name(kiln_yaml_kind k);

#endif
