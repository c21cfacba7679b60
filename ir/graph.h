/* ir/graph.h: the graph. Values and nodes live in arrays owned by the graph
 * and refer to each other by 32-bit ids; strings and tensor data live in the
 * graph's arena. Nodes are kept in execution (topological) order. */
#ifndef KILN_IR_GRAPH_H
#define KILN_IR_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kiln/status.h"
#include "arena.h"
#include "diag.h"
#include "ops.h"
#include "type.h"

typedef uint32_t kiln_id;
#define KILN_NO_ID UINT32_MAX

typedef enum kiln_precision {
    KILN_PREC_DEFAULT, /* a node: the model's precision; a model: f32 */
    KILN_PREC_F32,
    KILN_PREC_BF16,
    KILN_PREC_F16,
    KILN_PREC_INT8,
    KILN_PREC_AUTO,
    KILN_PREC_COUNT
} kiln_precision;

const char *kiln_precision_name(kiln_precision p); /* "f32"; "default" for DEFAULT */
int kiln_precision_parse(const char *s, kiln_precision *out); /* 0 when known */

typedef enum kiln_value_kind {
    KILN_VALUE_INPUT, /* a model input */
    KILN_VALUE_PARAM, /* a constant tensor: weights */
    KILN_VALUE_NODE,  /* the output of a node */
} kiln_value_kind;

typedef enum kiln_param_source {
    KILN_PARAM_FILE,   /* tensor `key` of weights file `file` */
    KILN_PARAM_RANDOM, /* deterministic pseudo-random values, see kiln_param_random */
    KILN_PARAM_INLINE, /* data held in the graph (folded constants, IR text `data`) */
} kiln_param_source;

typedef struct kiln_param {
    kiln_param_source source;
    uint32_t file;        /* FILE: index into graph->weight_files */
    const char *key;      /* FILE: the tensor's name in that file */
    uint64_t seed;        /* RANDOM: the seed of `init: {random: SEED}` */
    double lo, hi;        /* RANDOM: uniform range */
    kiln_dtype data_dtype; /* dtype of the elements at `data` (F32, F64, F16, BF16) */
    const void *data;     /* NULL until bound; dense C order; owned by the graph */
} kiln_param;

/* Where the memory planner put a value in the workspace arena. Batched
 * values live in the batch region, at `offset * batch` bytes from its start
 * (offsets and sizes are per batch item, so one plan serves every batch);
 * unbatched values at `offset` in the fixed region. */
typedef enum kiln_mem_region {
    KILN_MEM_NONE,    /* not planned: a model input/output (user memory), a param, or fused away */
    KILN_MEM_FIXED,   /* the fixed region */
    KILN_MEM_BATCH,   /* the batch region */
} kiln_mem_region;

typedef struct kiln_value {
    const char *name;     /* unique in the graph */
    kiln_value_kind kind;
    kiln_type type;
    kiln_id producer;     /* KILN_VALUE_NODE: the node; else KILN_NO_ID */
    kiln_param param;     /* KILN_VALUE_PARAM */
    kiln_loc loc;         /* where it was defined */
    kiln_mem_region mem;  /* set by the memory planner */
    uint64_t mem_offset;  /* bytes; per batch item in KILN_MEM_BATCH */
} kiln_value;

/* How a node is computed: the select pass decides (compiler/target/
 * select.c), the code generator obeys. Printed as `impl NAME` in the text
 * form. Only conv2d, dense and matmul have more than one. */
typedef enum kiln_impl {
    KILN_IMPL_NONE,      /* not decided yet (the code generator applies the same rules) */
    KILN_IMPL_GEMM,      /* the packed GEMM: dense, matmul, a 1x1 conv2d */
    KILN_IMPL_IGEMM,     /* conv2d as an implicit GEMM (im2col panels packed as it runs) */
    KILN_IMPL_WINOGRAD2, /* conv2d 3x3 stride 1 by Winograd F(2x2, 3x3) */
    KILN_IMPL_WINOGRAD4, /* ... F(4x4, 3x3) */
    KILN_IMPL_DIRECT,    /* conv2d with one input channel per group (depthwise, one-channel images) */
    KILN_IMPL_BLOCKED,   /* conv2d reading or writing the channel-blocked layout */
    KILN_IMPL_BLAS,      /* OpenBLAS sgemm: dense, a 1x1 conv2d */
    KILN_IMPL_DOT,       /* matmul as dot products along k (a run-time B transposed, a 1-D B) */
    KILN_IMPL_COUNT
} kiln_impl;

const char *kiln_impl_name(kiln_impl i);          /* "winograd4"; "none" for NONE */
int kiln_impl_lookup(const char *name, kiln_impl *out); /* 0 when found (not "none") */

typedef struct kiln_node {
    kiln_op op;
    const char *layer;    /* the YAML layer name(s) it stands for, kept through every pass */
    kiln_id *inputs;      /* data operands, then parameters in the op's role order */
    uint32_t n_inputs;
    kiln_id output;
    uint64_t attr_set;    /* bit (1 << id) for each attribute present */
    kiln_attr attrs[KILN_ATTR_COUNT];
    kiln_precision precision;
    kiln_loc loc;
    /* Fusion: nodes with the same nonzero group run as one kernel. The first
     * node of a group (in node order) is its anchor; every later member is a
     * one-input elementwise op, or a binary op with one operand from outside
     * the group, applied to the previous member's output while it is still in
     * registers. Values produced inside a group and read only by the next
     * member are never stored. 0 = not fused. */
    uint32_t group;
    /* Schedule: how many parallel_for tasks this node's kernel splits into
     * (0 = not scheduled yet; 1 = serial). Results never depend on it. */
    uint32_t tasks;
    /* Select: the implementation (KILN_IMPL_NONE: not selected). */
    kiln_impl impl;
    /* Memory plan: the scratch this node's kernel needs while it runs (bytes,
     * 0: none), at scratch_offset in the fixed region. Live at the node's
     * step only (ir/liveness.h). */
    uint64_t scratch_bytes, scratch_offset;
} kiln_node;

typedef struct kiln_resource {
    void (*release)(void *p);
    void *p;
} kiln_resource;

typedef struct kiln_graph {
    kiln_arena arena;
    const char *name;          /* C identifier: prefix of generated symbols */
    const char *description;   /* NULL when none */
    const char *batch_name;    /* the symbolic batch dimension's name; NULL when none */
    kiln_precision precision;  /* the model's default precision */
    int64_t max_elements;      /* per-tensor element limit (FORMAT.md "Limits") */

    kiln_value *values;
    size_t n_values, cap_values;
    kiln_node *nodes;
    size_t n_nodes, cap_nodes;
    kiln_id *inputs;           /* value ids of the model inputs, in order */
    size_t n_inputs, cap_inputs;
    kiln_id *outputs;          /* value ids of the model outputs, in order */
    size_t n_outputs, cap_outputs;

    const char **weight_files; /* paths usable from the current directory */
    size_t n_weight_files, cap_weight_files;
    void *weights;             /* the frontend's opened weight files (a resource), or NULL */

    kiln_resource *resources;  /* released in reverse order by kiln_graph_destroy */
    size_t n_resources, cap_resources;

    /* The memory plan (set by the memory planner; 0 before). */
    uint64_t mem_fixed_bytes;       /* size of the fixed region */
    uint64_t mem_batch_bytes;       /* size of the batch region per batch item */
    uint64_t mem_lower_bound_bytes; /* the most bytes live at once in the fixed region, plus the same
                                     * per item in the batch region (ir/liveness.h): no plan does
                                     * with less than this at batch 1 */

    /* The schedule (set by the schedule pass; 0 before): the thread count its
     * nodes' tasks were planned for. */
    uint32_t sched_threads;

    /* name -> value id hash table (open addressing) */
    kiln_id *name_index;
    size_t name_index_cap;
} kiln_graph;

/* Creation and destruction. kiln_graph_create returns NULL when out of memory. */
kiln_graph *kiln_graph_create(const char *name);
void kiln_graph_destroy(kiln_graph *g);
/* A deep copy (tensor data is shared with `g` for FILE params and copied for
 * the rest); NULL when out of memory. The copy must not outlive `g`. */
kiln_graph *kiln_graph_clone(const kiln_graph *g);
/* Registers something the graph must release when destroyed (a file mapping). */
kiln_status kiln_graph_add_resource(kiln_graph *g, void (*release)(void *), void *p);

/* Builders. Each returns the new id, or KILN_NO_ID when the name is already
 * used or memory ran out (kiln_graph_find_value tells which). */
kiln_id kiln_graph_add_input(kiln_graph *g, const char *name, const kiln_type *type, kiln_loc loc);
kiln_id kiln_graph_add_param(kiln_graph *g, const char *name, const kiln_type *type,
                             const kiln_param *param, kiln_loc loc);
/* Adds a node whose output value is called `out_name`; its type is left for
 * kiln_ir_infer_node. inputs are copied. Returns the node id. */
kiln_id kiln_graph_add_node(kiln_graph *g, kiln_op op, const kiln_id *inputs, uint32_t n_inputs,
                            const char *out_name, const char *layer, kiln_loc loc);
kiln_status kiln_graph_add_output(kiln_graph *g, kiln_id value);
/* Index of a weights file path, added when new; -1 when out of memory. */
int kiln_graph_add_weight_file(kiln_graph *g, const char *path);

/* Lookup: value id by name, or KILN_NO_ID. */
kiln_id kiln_graph_find_value(const kiln_graph *g, const char *name);
/* Rebuilds the name index from the values' names, after values were renamed
 * or renumbered (ir/rewrite.c). Allocates only when the table is too small
 * for n_values, which renaming and removing values never make it. */
kiln_status kiln_graph_reindex(kiln_graph *g);

static inline kiln_value *kiln_graph_value(const kiln_graph *g, kiln_id id) { return &g->values[id]; }
static inline kiln_node *kiln_graph_node(const kiln_graph *g, kiln_id id) { return &g->nodes[id]; }
/* The node's operand of parameter role `role` ("weight"), or KILN_NO_ID. */
kiln_id kiln_node_param(const kiln_graph *g, const kiln_node *n, const char *role);

/* Precision. kiln_node_precision_asked: what the model asks of node n (its
 * own `precision`, else the model's default, else f32). kiln_node_precision:
 * what n computes in, the one rule the precision pass records, the code
 * generator compiles and the interpreter emulates (docs/precision.md):
 * bf16 or f16 on a dense layer with a weight, or on a conv2d over plain
 * NCHW values with more than one input channel per group (the GEMM paths);
 * int8 on the same layers when their reduction (dense: the input's last
 * axis; conv2d: C/groups x kh x kw) is at most KILN_QUANT_MAX_K long
 * (ir/quant.h); f32 for everything else, and for auto.
 * kiln_node_precision_eligible: whether n is a bf16/f16 layer (whatever it
 * asks). kiln_node_int8_unsupported: NULL when n computes int8 if it asks;
 * else why not ("" for a layer that is f32 by design, not eligible at all). */
kiln_precision kiln_node_precision_asked(const kiln_graph *g, const kiln_node *n);
bool kiln_node_precision_eligible(const kiln_graph *g, const kiln_node *n);
kiln_precision kiln_node_precision(const kiln_graph *g, const kiln_node *n);
const char *kiln_node_int8_unsupported(const kiln_graph *g, const kiln_node *n);
/* An int8 node's input quantization from its in_scale and in_zero
 * attributes (ir/quant.h); -1 when either is absent, 0 when they are valid,
 * -2 when they are out of range. */
struct kiln_quant_act;
int kiln_node_in_quant(const kiln_node *n, struct kiln_quant_act *out);
/* Number of data operands of a node (its operands before the parameters). */
uint32_t kiln_node_data_inputs(const kiln_graph *g, const kiln_node *n);

/* Attributes. */
static inline bool kiln_node_has(const kiln_node *n, kiln_attr_id id) { return (n->attr_set >> id) & 1u; }
void kiln_node_set_int(kiln_node *n, kiln_attr_id id, int64_t v);
void kiln_node_set_float(kiln_node *n, kiln_attr_id id, double v);
void kiln_node_set_bool(kiln_node *n, kiln_attr_id id, bool v);
void kiln_node_set_ints(kiln_node *n, kiln_attr_id id, const int64_t *v, int count);
void kiln_node_set_floats(kiln_node *n, kiln_attr_id id, const double *v, int count);
void kiln_node_set_attr(kiln_node *n, kiln_attr_id id, const kiln_attr *v);
/* Fills every absent attribute that has a default (or a KILN_USE_FROM source). */
void kiln_node_apply_defaults(kiln_node *n);

/* Runs the op's shape rule on node `node` and stores the output type. First
 * rewrites negative axes (axis, axes, perm) to count from the front: after
 * this, the IR holds non-negative axes only.
 * On failure returns KILN_ERR_SHAPE with the rule's message in err. */
kiln_status kiln_ir_infer_node(kiln_graph *g, kiln_id node, char *err, size_t err_size);
/* The same check without storing: the type node `n` should have. */
kiln_status kiln_ir_node_type(const kiln_graph *g, const kiln_node *n, kiln_type *out, char *err, size_t err_size);

/* Uses: counts[v] = how many node operands and model outputs refer to value v.
 * `counts` has g->n_values entries. */
void kiln_graph_count_uses(const kiln_graph *g, uint32_t *counts);

/* Tensor data of a PARAM value, converted, into dst (element count of the
 * value's shape). A RANDOM parameter whose data is not bound is generated
 * into dst on each read (kiln_param_random with param.key, or the value's
 * name): `init: {random: SEED}` parameters hold no memory until a consumer
 * reads them, so `kiln dump` never materializes them. Returns
 * KILN_ERR_WEIGHTS when a FILE or INLINE parameter's data is not bound. */
kiln_status kiln_param_read_f64(const kiln_graph *g, kiln_id value, double *dst);
kiln_status kiln_param_read_f32(const kiln_graph *g, kiln_id value, float *dst);
/* Whether kiln_param_read_* can read the value: a PARAM with bound data, or
 * a RANDOM one (generated on reading). */
bool kiln_param_readable(const kiln_value *v);
/* The documented init of `init: {random: SEED}` (docs/format.md): element i of
 * the tensor `key` is lo + (hi - lo) * u, u = the top 53 bits of
 * splitmix64(seed ^ fnv1a64(key) ^ (i * 0x9E3779B97F4A7C15)) / 2^53. */
void kiln_param_random(uint64_t seed, const char *key, double lo, double hi, float *dst, size_t count);

/* Checks every invariant of the IR: ids in range, operand arity and roles,
 * attributes present and well-typed, types consistent with the shape rule,
 * names unique, topological order, outputs defined. Errors go to d. */
kiln_status kiln_ir_verify(const kiln_graph *g, kiln_diag *d);
/* The layout rules of kiln_ir_verify for node n (docs/ir.md "Layouts"), on a
 * node whose operands and output are valid values of well-formed types
 * (kiln_type_check_layout): only conv2d, maxpool2d, avgpool2d, resize,
 * global_avgpool, the elementwise ops and reorder read or produce blocked
 * values, each in its own way (ops.def's LAYOUT column). 0, or -1 with a message in err. The reader
 * runs it on every node it reads. */
int kiln_ir_check_node_layout(const kiln_graph *g, const kiln_node *n, char *err, size_t err_size);
/* The rules of kiln_ir_verify for quantize and dequantize node n whose
 * parameters are readable (docs/ir.md "Element types"): every scale positive
 * and finite as an f32, every zero point an integer in the range of the
 * integer dtype; a quantized type (q(scale=, zp=)) on the integer side only
 * on a per-tensor node, equal to its parameters. Other nodes, and
 * parameters whose data is not bound: 0. 0, or -1 with a message in err. */
int kiln_ir_check_quant(const kiln_graph *g, const kiln_node *n, char *err, size_t err_size);
/* The part of kiln_ir_verify that checks the passes' annotations, on a graph
 * whose structure is sound: fusion groups (consecutive members, increasing
 * group numbers, the chain rule of kiln_node.group, one `tasks` per group)
 * and the memory plan (every value that needs workspace memory has it, in
 * the region its batchedness says, 64-byte aligned, inside the region; no two
 * values live at the same step overlap; the lower bound matches; see
 * ir/liveness.h). kiln_ir_parse runs it on what it reads. Returns KILN_OK,
 * KILN_ERR_INTERNAL (errors in d) or KILN_ERR_OUT_OF_MEMORY. */
kiln_status kiln_ir_verify_annotations(const kiln_graph *g, kiln_diag *d);

/* Text form (docs/ir.md). Weight file paths are printed relative to the
 * directory `relative_to` (NULL: as stored). parse(print(g)) prints identically. */
kiln_status kiln_ir_print(const kiln_graph *g, FILE *out, const char *relative_to);
/* kiln_ir_print with options. sidecar_path: when the graph has parameters
 * with inline data (folded weights), write them to this safetensors file
 * (keys: the values' names) and refer to it from the text (one more
 * `weights` line, `file N "name"`) instead of printing the data as hex; the
 * text then reads back with the sidecar beside it. NULL: inline hex, as
 * kiln_ir_print. KILN_ERR_IO when the sidecar cannot be written. */
typedef struct kiln_ir_print_options {
    const char *relative_to;
    const char *sidecar_path;
    /* Where the sidecar's bytes go when not to sidecar_path itself (a
     * temporary file the caller renames over sidecar_path); the text names
     * sidecar_path either way. NULL: sidecar_path. Nothing is removed when
     * the write fails. */
    const char *sidecar_write_path;
} kiln_ir_print_options;
kiln_status kiln_ir_print_opts(const kiln_graph *g, FILE *out, const kiln_ir_print_options *o);
/* Parses IR text. `filename` is used for locations and to resolve weights file
 * paths (relative to its directory). Weights are not loaded: see
 * kiln_weights_bind in the frontend. */
kiln_status kiln_ir_parse(const char *text, size_t len, const char *filename, kiln_graph **out,
                          kiln_diag *d);
/* Graphviz DOT. */
kiln_status kiln_ir_print_dot(const kiln_graph *g, FILE *out);

#endif
