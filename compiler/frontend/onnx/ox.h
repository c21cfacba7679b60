/* compiler/frontend/onnx/ox.h: what the parts of the ONNX importer share
 * (internal).
 *
 *   proto.c    bytes -> onnx ModelProto (protobuf-c), checked first for
 *              nesting depth, with an allocation budget
 *   tensor.c   constant tensors: TensorProto decoding (raw, typed fields,
 *              external data), element access, conversion to float32
 *   fold.c     constant evaluation of ONNX ops (shape arithmetic, Constant,
 *              initializer subgraphs), with the symbolic batch size
 *   emit.c     the kiln side: names, the scratch IR graph that checks every
 *              layer with kiln's own shape rules, parameters
 *   ops_*.c    one lowering function per ONNX op (the table in ops.c)
 *   patterns.c GELU, LayerNorm and MatMul+Add written out in primitive ops
 *   import.c   the driver: opsets, inputs and pins, initializers, node order,
 *              dispatch, outputs, problems
 *   yaml.c     the scratch graph -> YAML text
 *
 * Every ONNX value is an ox_value: a constant known at import time (folded),
 * a dynamic value computed by a kiln layer, or bad (its producer was refused:
 * readers stay silent). */
#ifndef KILN_FRONTEND_ONNX_OX_H
#define KILN_FRONTEND_ONNX_OX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compiler/frontend/strmap.h"
#include "ir/arena.h"
#include "ir/graph.h"
#include "onnx.h"
#include "onnx/onnx.pb-c.h"

#define OX_MAX_RANK KILN_MAX_RANK
/* Nesting of protobuf messages accepted (a model is 4 to 8 levels deep). */
#define OX_MAX_DEPTH 48
/* Default limit on the elements of one folded or written tensor. */
#define OX_DEFAULT_MAX_ELEMENTS (INT64_C(1) << 28)

/* ONNX TensorProto.DataType values. */
enum {
    OX_T_UNDEFINED = 0,
    OX_T_FLOAT = 1,
    OX_T_UINT8 = 2,
    OX_T_INT8 = 3,
    OX_T_UINT16 = 4,
    OX_T_INT16 = 5,
    OX_T_INT32 = 6,
    OX_T_INT64 = 7,
    OX_T_STRING = 8,
    OX_T_BOOL = 9,
    OX_T_FLOAT16 = 10,
    OX_T_DOUBLE = 11,
    OX_T_UINT32 = 12,
    OX_T_UINT64 = 13,
    OX_T_BFLOAT16 = 16,
};

/* ---- constants ---------------------------------------------------------- */

/* A tensor known at import time. Floating types hold their values in `f`
 * (double) or, for float32 tensors decoded from the file, in `f32`; the
 * integer types and bool in `i`. `sym`, when not NULL (integer tensors
 * only), marks the elements that stand for the symbolic batch size rather
 * than their value in `i` (shape arithmetic on a batched value). */
typedef struct ox_tensor {
    int dtype;
    int rank;
    int64_t dims[OX_MAX_RANK];
    int64_t count;
    double *f;
    float *f32;
    int64_t *i;
    uint8_t *sym;
} ox_tensor;

bool ox_dtype_is_float(int dtype);
bool ox_dtype_is_int(int dtype); /* the integer types and bool */
const char *ox_dtype_name(int dtype);

typedef struct ox_ctx ox_ctx;
typedef struct ox_node ox_node;

/* A new tensor of `dtype` (float or integer), zero-filled; NULL (refusing
 * node n, or with an OOM problem when n is NULL) when it has more elements
 * than the limit or memory runs out. */
ox_tensor *ox_tensor_new(ox_ctx *x, ox_node *n, int dtype, int rank, const int64_t *dims);
double ox_get_f(const ox_tensor *t, int64_t i);  /* any dtype, as double */
int64_t ox_get_i(const ox_tensor *t, int64_t i); /* integers; floats truncated */
bool ox_is_sym(const ox_tensor *t, int64_t i);
/* Stores v rounded to t's dtype (float types) or converted (integers). */
void ox_set_f(ox_tensor *t, int64_t i, double v);
void ox_set_i(ox_tensor *t, int64_t i, int64_t v);
/* Marks element i as the symbolic batch (allocates t->sym); -1 on OOM. */
int ox_set_sym(ox_ctx *x, ox_tensor *t, int64_t i);
bool ox_has_sym(const ox_tensor *t);

/* Decodes a TensorProto (raw_data or the typed fields, or external data
 * under opt->base_dir). NULL with a reason in why when it cannot. */
ox_tensor *ox_tensor_decode(ox_ctx *x, const Onnx__TensorProto *tp, char *why, size_t why_size);
/* The elements as float32 (new array in the arena); NULL for non-numeric or OOM. */
float *ox_tensor_to_f32(ox_ctx *x, const ox_tensor *t);

/* ---- values ------------------------------------------------------------- */

typedef enum ox_kind { OX_NONE, OX_CONST, OX_DYN, OX_BAD } ox_kind;

typedef struct ox_value {
    const char *name;     /* the ONNX name */
    ox_kind kind;
    ox_tensor *c;         /* OX_CONST (decoded lazily for initializers, see tp) */
    const Onnx__TensorProto *tp; /* an initializer not yet decoded */
    const char *hint;     /* OX_CONST: the initializer's or Constant's name, for weights keys */
    kiln_id kv;           /* OX_DYN: its kiln value; OX_CONST: a `constant` layer made for it, or KILN_NO_ID */
    kiln_id param;        /* OX_CONST: the parameter made from it unchanged (shared), or KILN_NO_ID */
    bool scalar0;         /* OX_DYN: rank 0 in ONNX, shape [1] in kiln */
    bool bad_const;       /* OX_BAD: it would have been a constant (its operands were) */
    bool graph_input;     /* a graph input without initializer */
    bool is_output;       /* a graph output */
    const char *out_name; /* is_output: its reserved kiln name */
    int producer;         /* index of the producing node, -1 for none */
    int n_uses;           /* operand slots of live nodes that read it */
    int *users;           /* patterns.c: the nodes that read it (n_uses entries, a node once per slot) */
} ox_value;

/* The node being lowered. */
struct ox_node {
    const Onnx__NodeProto *p;
    int index;
    const char *label;    /* for messages: the node's name or its first output */
    const char *base;     /* sanitized base of its layer names */
    ox_value **in;        /* NULL for absent optional inputs */
    size_t n_in;
    ox_value **out;       /* NULL for absent outputs */
    size_t n_out;
    const char *why;      /* the refusal, when refused */
    bool refused;
};

/* A pattern found before lowering (patterns.c): ONNX nodes that together
 * compute one kiln layer. The first member in node order (the head) checks
 * what needs the operands' shapes; if that fails the members are lowered
 * one by one. The emitting member writes the layer; the others are skipped. */
typedef enum ox_pattern_kind { OX_PAT_GELU, OX_PAT_LAYERNORM, OX_PAT_DENSE_BIAS } ox_pattern_kind;

#define OX_PAT_MAX_MEMBERS 12

typedef struct ox_pattern {
    ox_pattern_kind kind;
    bool active;
    ox_value *x;            /* GELU, LAYERNORM: the operand */
    ox_value *scale, *bias; /* LAYERNORM (may be NULL); DENSE_BIAS: bias */
    double eps;
    int approximate;        /* GELU: 0 none, 1 tanh */
    ox_value *result;       /* the value the pattern computes */
    int members[OX_PAT_MAX_MEMBERS];
    int n_members;
    int head, emit;         /* node indices */
    int reduce_node;        /* LAYERNORM: a ReduceMean member, for its axes */
} ox_pattern;

struct ox_ctx {
    kiln_arena arena;
    const kiln_onnx_options *opt;
    int64_t opset;            /* ai.onnx */
    int64_t max_elements;
    const Onnx__GraphProto *graph;
    const Onnx__NodeProto **nodes; /* live nodes in execution order */
    size_t n_nodes;
    ox_pattern **pattern;     /* per entry of nodes: the pattern it belongs to, or NULL */
    kiln_strmap values;       /* ONNX name -> ox_value */
    kiln_graph *g;            /* the scratch graph */
    kiln_strmap names;        /* kiln value names in use */
    kiln_strmap cnames;       /* C spellings of input and output names */
    kiln_strmap suffixes;     /* a wanted name -> the last _N suffix given for it */
    kiln_strmap scopes;       /* PyTorch's node name scopes ("/layer1/layer1.0/conv1") -> nodes in them */
    uint64_t *explicit_attrs; /* per scratch node: the attributes the importer wrote */
    size_t cap_explicit;
    kiln_onnx_problem *problems;
    size_t n_problems, cap_problems;
    bool oom;
};

/* ---- problems ----------------------------------------------------------- */

void ox_problem(ox_ctx *x, kiln_onnx_problem_kind kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void ox_oom(ox_ctx *x);
/* Refuses node n (the first reason is kept); returns -1. */
int ox_refuse(ox_node *n, ox_ctx *x, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- attributes (import.c) ---------------------------------------------- */

const Onnx__AttributeProto *ox_attr(const ox_node *n, const char *name);
/* Integer, float and string attributes with a default when absent; a
 * mistyped one refuses the node (and gives the default). */
int64_t ox_attr_i(ox_ctx *x, ox_node *n, const char *name, int64_t def);
double ox_attr_f(ox_ctx *x, ox_node *n, const char *name, double def);
const char *ox_attr_s(ox_ctx *x, ox_node *n, const char *name, const char *def);
/* A list of ints: its length (at most max, more refuses the node), or -1
 * when absent. */
int ox_attr_ints(ox_ctx *x, ox_node *n, const char *name, int64_t *out, int max);

/* ---- values and constants ----------------------------------------------- */

/* The constant of a value (decoding an initializer on first use), or NULL
 * when it is not constant or cannot be decoded (then n is refused when not NULL). */
ox_tensor *ox_const(ox_ctx *x, ox_node *n, ox_value *v);
/* A constant with one element (any rank): its value. */
bool ox_const_scalar(ox_ctx *x, ox_value *v, double *out);
/* Input i as a constant list of integers (e.g. axes, pads, shape), at most
 * max entries; -1 (refusing n) when it is not constant or not integers or
 * holds the symbolic batch. */
int ox_input_ints(ox_ctx *x, ox_node *n, size_t i, const char *what, int64_t *out, int max);
/* Makes output k of n a constant. */
void ox_set_const(ox_node *n, size_t k, ox_tensor *t);
/* Makes output k of n the dynamic value kv (scalar0: ONNX rank 0). */
void ox_set_dyn(ox_node *n, size_t k, kiln_id kv, bool scalar0);
/* Output k of n stands for the same thing as value v. */
void ox_alias(ox_node *n, size_t k, const ox_value *v);

/* The ONNX shape of a value: rank and dims, the batch as -1 (*batched set). */
int ox_shape(ox_ctx *x, ox_value *v, int64_t *dims, bool *batched);

/* ---- the kiln side (emit.c) --------------------------------------------- */

/* A name with every character outside [A-Za-z0-9_.] replaced ('/' by '.',
 * runs of '_' and '.' collapsed); never empty. */
char *ox_sanitize(ox_ctx *x, const char *s);
/* The layer name a node suggests: for PyTorch's scoped names
 * ("/layer1/layer1.0/conv1/Conv") the module path ("layer1.0.conv1"), with
 * the op's part when the module holds several nodes ("layer1.0.Add");
 * otherwise the sanitized name. NULL for a node without a name. */
const char *ox_node_name(ox_ctx *x, const Onnx__NodeProto *p);
/* Counts the nodes of each PyTorch scope (for ox_node_name). */
void ox_count_scopes(ox_ctx *x);
/* Claims a unique kiln value name close to `want` (`want`, `want_2`, ...). */
const char *ox_claim(ox_ctx *x, const char *want);
/* Claims a name for a model input or output: also unique in its C spelling. */
const char *ox_claim_io(ox_ctx *x, const char *want);
/* The name of the layer that computes output k of n: the reserved name of a
 * graph output, else the node's name (output 0) or the output's. `hint`,
 * when not NULL, is preferred (a PyTorch module name). */
const char *ox_out_name(ox_ctx *x, ox_node *n, size_t k, const char *hint);
/* The name of an intermediate layer of n: BASE.suffix. */
const char *ox_sub_name(ox_ctx *x, ox_node *n, const char *suffix);
/* The module name P when the initializer behind v is called `P.weight` or
 * `P.bias` (or `P.` + role): a layer name that keeps PyTorch's state_dict
 * keys. NULL otherwise. */
const char *ox_module_hint(ox_ctx *x, const ox_value *v, const char *role);

/* Adds a layer: op over ins[0..n_in) (data operands, then parameters in the
 * op's role order) with the attributes set on `attrs` (a kiln_node used as an
 * attribute holder; may be NULL), output called `name`. kiln's shape rule
 * checks it: when it refuses, so does node n (with the rule's message) and
 * the result is KILN_NO_ID. Returns the layer's output value. */
kiln_id ox_emit(ox_ctx *x, ox_node *n, kiln_op op, const kiln_id *ins, uint32_t n_in, const kiln_node *attrs,
                const char *name);
/* Shorthands. */
kiln_id ox_emit1(ox_ctx *x, ox_node *n, kiln_op op, kiln_id in, const kiln_node *attrs, const char *name);
kiln_id ox_emit_scalar(ox_ctx *x, ox_node *n, kiln_op op, kiln_id in, double s, bool reverse, const char *name);
kiln_id ox_emit_reshape(ox_ctx *x, ox_node *n, kiln_id in, int rank, const int64_t *dims, const char *name);
kiln_id ox_emit_transpose(ox_ctx *x, ox_node *n, kiln_id in, int rank, const int64_t *perm, const char *name);

/* Data operand i of n as a kiln value: a dynamic value, or a float constant
 * brought in by a `constant` layer. KILN_NO_ID (refusing n) otherwise. */
kiln_id ox_data(ox_ctx *x, ox_node *n, size_t i);
kiln_id ox_data_value(ox_ctx *x, ox_node *n, ox_value *v);
/* A parameter holding constant v's elements with shape dims (same count);
 * shared between the layers that use v unchanged. Refuses n when v is not a
 * float constant (a graph input: a parameter must be an initializer). */
kiln_id ox_param(ox_ctx *x, ox_node *n, ox_value *v, const char *role, int rank, const int64_t *dims);
/* A parameter from data computed by the importer (float32, count elements of dims). */
kiln_id ox_param_data(ox_ctx *x, ox_node *n, const char *hint, int rank, const int64_t *dims, const float *data);
/* The kiln type of a value (of the scratch graph). */
const kiln_shape *ox_kshape(ox_ctx *x, kiln_id v);

/* ---- ops ---------------------------------------------------------------- */

typedef int (*ox_fn)(ox_ctx *x, ox_node *n);

/* One row per ONNX op. `fold` evaluates the op on constants: it returns 1
 * when it did, 0 when the node is not constant (then `lower` runs), -1 when
 * refused. `lower` writes kiln layers: 0, or -1 when refused. `attrs` lists
 * the attributes the op's functions understand (comma-separated); any other
 * refuses the node. Without `lower`, a dynamic node is refused with `none`
 * (why kiln cannot express it) or as an op kiln has no operation for. */
typedef struct ox_op {
    const char *type;
    const char *attrs;
    ox_fn fold;
    ox_fn lower;
    const char *none;
} ox_op;

const ox_op *ox_op_find(const char *type);

/* fold.c */
int ox_fold_elementwise(ox_ctx *x, ox_node *n);
int ox_fold_shape_op(ox_ctx *x, ox_node *n);
int ox_fold_reduce(ox_ctx *x, ox_node *n);
int ox_fold_constant(ox_ctx *x, ox_node *n);
/* Broadcast of two shapes (NumPy rules); -1 when they do not broadcast. */
int ox_broadcast_dims(int ra, const int64_t *a, int rb, const int64_t *b, int64_t *out);
/* One axis of a Slice: first index, step and count, clamped as ONNX does. */
typedef struct ox_slice_axis {
    int64_t start, step, count;
} ox_slice_axis;
/* Reads Slice's starts/ends/axes/steps (attributes before opset 10) into one
 * entry per axis of a value of the given dims (untouched axes: all of it). */
int ox_slice_params(ox_ctx *x, ox_node *n, int rank, const int64_t *dims, ox_slice_axis *sl);
/* Split's axis and part sizes (attribute, input or equal parts) for a value
 * of the given dims: the number of parts (n's outputs, at most 64), or -1. */
int ox_split_sizes(ox_ctx *x, ox_node *n, int rank, const int64_t *dims, int64_t *axis, int64_t *sizes);
/* Reads the axes of a reduction (attribute before opset 18, input 1 since). */
int ox_reduce_axes(ox_ctx *x, ox_node *n, int rank, bool *reduce, bool *all);

/* ops_math.c, ops_nn.c, ops_shape.c */
int ox_lower_unary(ox_ctx *x, ox_node *n);
int ox_lower_binary(ox_ctx *x, ox_node *n);
int ox_lower_variadic(ox_ctx *x, ox_node *n);
int ox_lower_pow(ox_ctx *x, ox_node *n);
int ox_lower_prelu(ox_ctx *x, ox_node *n);
int ox_lower_clip(ox_ctx *x, ox_node *n);
int ox_lower_pass(ox_ctx *x, ox_node *n);
int ox_lower_cast(ox_ctx *x, ox_node *n);

int ox_lower_conv(ox_ctx *x, ox_node *n);
int ox_lower_pool(ox_ctx *x, ox_node *n);
int ox_lower_global_pool(ox_ctx *x, ox_node *n);
int ox_lower_batchnorm(ox_ctx *x, ox_node *n);
int ox_lower_layernorm(ox_ctx *x, ox_node *n);
int ox_lower_gemm(ox_ctx *x, ox_node *n);
int ox_lower_matmul(ox_ctx *x, ox_node *n);
int ox_lower_softmax(ox_ctx *x, ox_node *n);
int ox_lower_reduce(ox_ctx *x, ox_node *n);
int ox_lower_conv_transpose(ox_ctx *x, ox_node *n);
int ox_lower_group_norm(ox_ctx *x, ox_node *n);
int ox_lower_fused(ox_ctx *x, ox_node *n, const ox_pattern *f);

int ox_lower_reshape(ox_ctx *x, ox_node *n);
int ox_lower_flatten(ox_ctx *x, ox_node *n);
int ox_lower_squeeze(ox_ctx *x, ox_node *n);
int ox_lower_transpose(ox_ctx *x, ox_node *n);
int ox_lower_concat(ox_ctx *x, ox_node *n);
int ox_lower_pad(ox_ctx *x, ox_node *n);
int ox_lower_expand(ox_ctx *x, ox_node *n);
int ox_lower_constant_of_shape(ox_ctx *x, ox_node *n);
int ox_lower_tile(ox_ctx *x, ox_node *n);
int ox_lower_depth_space(ox_ctx *x, ox_node *n);
int ox_lower_slice_like(ox_ctx *x, ox_node *n);
int ox_lower_resize(ox_ctx *x, ox_node *n);

/* Reshapes dynamic value `in` (ONNX shape in_dims/in_rank, batched when the
 * kiln value is) to the ONNX shape out_dims/out_rank (a -1 entry: the batch),
 * as output k of n; an identity when nothing changes. 0 or -1 (refused). */
int ox_reshape_to(ox_ctx *x, ox_node *n, size_t k, kiln_id in, int out_rank, const int64_t *out_dims);

/* patterns.c */
void ox_find_patterns(ox_ctx *x);
/* At the pattern's head: whether it holds now that the operands' shapes
 * are known (else it is dropped and its members lowered one by one). */
bool ox_pattern_check(ox_ctx *x, ox_pattern *p);
/* The ox_node of live node j (operands resolved), for checks; false on OOM. */
bool ox_node_at(ox_ctx *x, int j, ox_node *n);

/* yaml.c: the result's YAML text and tensors from the scratch graph. */
kiln_status ox_write_yaml(ox_ctx *x, kiln_onnx_result *r);

/* proto.c */
typedef struct ox_model ox_model;
/* Unpacks a ModelProto; NULL with a reason when the bytes are not one (or
 * memory ran out: *oom set). */
ox_model *ox_model_unpack(const void *bytes, size_t size, bool *oom, char *why, size_t why_size);
const Onnx__ModelProto *ox_model_proto(const ox_model *m);
void ox_model_free(ox_model *m);

/* The text of a protobuf string field: "" for NULL. */
static inline const char *ox_str(const char *s) { return s ? s : ""; }

#endif
