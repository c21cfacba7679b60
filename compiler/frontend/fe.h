/* compiler/frontend/fe.h: what the YAML frontend's parts share (internal).
 *
 * The frontend works in three steps over one kiln_fe context:
 *   yaml_tree.c  text -> node tree (locations kept)
 *   blocks.c     templates and the model's `layers:` -> a flat list of layers
 *                with full names and resolved operands (block instances
 *                expanded, `$arg` bound)
 *   layers.c     each flat layer -> IR nodes (params.c binds its parameters)
 * model.c drives them and reads the top-level keys. */
#ifndef KILN_FRONTEND_FE_H
#define KILN_FRONTEND_FE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/arena.h"
#include "ir/diag.h"
#include "ir/graph.h"
#include "strmap.h"
#include "yaml_tree.h"

/* Expanded layers (op layers and block instances) in one model. */
#define KILN_FE_MAX_LAYERS 100000
/* Block instances nested inside each other. */
#define KILN_FE_MAX_BLOCK_DEPTH 64
/* Arguments of one block. */
#define KILN_FE_MAX_ARGS 256
/* Operand references in the expanded model (bounds the work of expansion). */
#define KILN_FE_MAX_OPERANDS 1000000

/* ---- block arguments ---------------------------------------------------- */

typedef struct kiln_fe_env kiln_fe_env;

/* An argument's value: a node and the environment its own `$name`s resolve in. */
typedef struct kiln_fe_arg {
    const char *name;
    kiln_yaml_node *node;
    const kiln_fe_env *env;
} kiln_fe_arg;

/* The arguments of one block instance. NULL: outside every template. */
struct kiln_fe_env {
    const kiln_fe_arg *args;
    size_t count;
};

/* When n is a scalar `$name` and env binds name, the bound node (and *out_env
 * its environment); else n itself (and env). out_env may be NULL. */
kiln_yaml_node *kiln_fe_resolve(kiln_yaml_node *n, const kiln_fe_env *env, const kiln_fe_env **out_env);
/* `$name` with name an identifier: *name_out/len_out are the name. */
bool kiln_fe_is_arg_ref(const kiln_yaml_node *n, const char **name_out, size_t *len_out);

/* ---- the flat layer list ------------------------------------------------ */

typedef enum kiln_fe_ref_kind {
    KILN_FE_REF_NONE,  /* nothing (no model input to default to) */
    KILN_FE_REF_ERROR, /* something that failed: readers stay silent */
    KILN_FE_REF_INPUT, /* model input `index` */
    KILN_FE_REF_LAYER, /* flat layer `index` */
} kiln_fe_ref_kind;

typedef struct kiln_fe_ref {
    kiln_fe_ref_kind kind;
    uint32_t index;
} kiln_fe_ref;

typedef struct kiln_fe_layer {
    kiln_yaml_node *map;      /* its mapping (top level, or a template's) */
    const kiln_fe_env *env;   /* its arguments; NULL at top level */
    kiln_op op;
    const char *name;         /* full name (graph arena): node->layer, default parameter keys */
    const char *use;          /* block instances (while expanding): the block's name */
    const char *value_name;   /* its output value's name (graph arena) */
    kiln_fe_ref *operands;    /* data operands (scratch arena) */
    uint32_t n_operands;
    kiln_precision precision; /* from an enclosing instance's `precision:`; DEFAULT when none */
    /* Where its problems are reported (FORMAT.md "Where errors point"). */
    const char *block;        /* template name; NULL at top level */
    const char *local_name;   /* the name in the template */
    const char *instance;     /* full name of the innermost instance */
    kiln_loc instance_loc;    /* the outermost instance's mapping */
    kiln_id value;            /* after lowering: its output; KILN_NO_ID when it failed */
} kiln_fe_layer;

/* ---- the context -------------------------------------------------------- */

typedef struct kiln_fe {
    kiln_graph *g;
    kiln_diag *d;
    kiln_arena arena;        /* scratch: the YAML tree, templates, flat layers, tables */
    const char *file;        /* the YAML file's name (scratch arena) */
    const char *gfile;       /* the same in the graph's arena, for value and node locations */
    const char *dir;         /* its directory with a trailing '/', or "" */
    int64_t max_elements;    /* from the options; 0: the default */
    kiln_status status;      /* the first failure */
    bool oom;

    /* top-level settings */
    bool has_init;
    uint64_t seed;
    bool weights_failed;     /* a weights file could not be opened (missing keys are not reported) */

    /* model inputs */
    kiln_id *input_values;   /* per model input: its value, KILN_NO_ID when it failed */
    size_t n_inputs;

    /* flat layers (heap array: kiln_free at the end) */
    kiln_fe_layer *layers;
    size_t n_layers, cap_layers;
    size_t expanded;         /* layers and instances expanded, against KILN_FE_MAX_LAYERS */
    size_t operand_refs;     /* operands of them, against KILN_FE_MAX_OPERANDS */
    bool too_many;

    /* templates: name -> block record (blocks.c) */
    kiln_strmap blocks;
    /* the top-level scope after expansion: name -> kiln_fe_binding */
    kiln_strmap top;
    kiln_fe_ref last;        /* the last top-level layer's output */
    kiln_loc last_loc;

    /* names the layers' values and the model inputs take: parameters avoid them */
    kiln_strmap reserved;
    /* parameter key -> kiln_fe_param_entry (params.c) */
    kiln_strmap params;
} kiln_fe;

/* A name visible in a scope. */
typedef struct kiln_fe_binding {
    kiln_fe_ref ref;
    kiln_loc loc;      /* where it is defined */
    bool is_input;     /* a model or template input */
} kiln_fe_binding;

/* Errors. Each records the first status; the location's file must live in the
 * scratch or graph arena (the diagnostics copy it). */
void kiln_fe_error(kiln_fe *fe, kiln_status st, kiln_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void kiln_fe_oom(kiln_fe *fe);
/* An error about layer L: "layer 'fc1' (dense): ..." at `at` (a node of the
 * layer; NULL: the layer's mapping); inside a block instance "in block 'b'
 * layer 'l' (instance 'i'): ..." at the outermost instance. */
void kiln_fe_layer_error(kiln_fe *fe, const kiln_fe_layer *L, const kiln_yaml_node *at, kiln_status st,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Where problems about L and its node `at` are reported. */
kiln_loc kiln_fe_layer_loc(const kiln_fe_layer *L, const kiln_yaml_node *at);

/* Names. */
bool kiln_fe_is_layer_name(const char *s);  /* [A-Za-z0-9_.]+ */
bool kiln_fe_is_identifier(const char *s);  /* [A-Za-z_][A-Za-z0-9_]* */
/* The op name closest to a misspelt one, or NULL when none is close. */
const char *kiln_fe_suggest_op(const char *name);
/* Whether `name` is an op that only compiler passes make (KILN_OPF_IR_ONLY). */
bool kiln_fe_op_is_ir_only(const char *name);
/* kiln_op_lookup for the ops a model may use (FORMAT.md): ops the passes
 * make (KILN_OPF_IR_ONLY, such as reorder) are unknown here. 0 when found. */
int kiln_fe_lookup_op(const char *name, kiln_op *out);

/* Resolves a value node of layer L (`$arg` substituted). */
static inline kiln_yaml_node *kiln_fe_layer_get(const kiln_fe_layer *L, const char *key,
                                                const kiln_fe_env **env_out)
{
    return kiln_fe_resolve(kiln_yaml_get(L->map, key), L->env, env_out);
}

/* ---- the steps (blocks.c, layers.c, params.c) --------------------------- */

/* blocks.c: reads `blocks:` (may be NULL) and checks every template. */
void kiln_fe_blocks_read(kiln_fe *fe, kiln_yaml_node *blocks);
/* blocks.c: expands the model's `layers:` into fe->layers, fills fe->top
 * (which holds the model inputs on entry) and fe->last. */
void kiln_fe_expand(kiln_fe *fe, kiln_yaml_node *layers);

/* layers.c: which keys a layer of `op` takes (besides name/op/input/inputs/
 * params/precision); for messages, the list of them into buf. */
bool kiln_fe_op_takes_key(kiln_op op, const char *key);
void kiln_fe_op_keys(kiln_op op, char *buf, size_t size);
/* layers.c: checks the keys of an op layer; reports unknown ones at the key
 * (at the instance when `L` is in a template with a substituted op). */
bool kiln_fe_check_op_keys(kiln_fe *fe, kiln_yaml_node *map, kiln_op op, const kiln_fe_layer *L);
/* layers.c: lowers flat layer i to IR nodes; sets its value. */
void kiln_fe_lower(kiln_fe *fe, size_t i);

/* params.c: the parameter operands of a layer. roles[i] says whether role i
 * of the op is present. `x` is the first data operand's type (NULL for
 * constant). On success ids[] holds one value per present role, in order. A
 * parameter that is missing or mis-shaped is reported and still gets a value
 * (so later layers are checked too): the return is false then. */
bool kiln_fe_bind_params(kiln_fe *fe, const kiln_fe_layer *L, const kiln_node *proto, const kiln_type *x,
                         const bool *roles, kiln_id *ids, uint32_t *n_ids, bool *fatal);

/* model.c */
kiln_status kiln_fe_load_model(kiln_fe *fe, kiln_yaml_node *root);

#endif
