/* ir/ops.h: the op table. Every op and attribute is listed once (ops.def,
 * attrs.def); the frontend, verifier, printer, parser, interpreter and code
 * generator all read these definitions. */
#ifndef KILN_IR_OPS_H
#define KILN_IR_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "type.h"

typedef enum kiln_op {
#define KILN_OP(id, name, pattern, layout, cost) KILN_OP_##id,
#include "ops.def"
#undef KILN_OP
    KILN_OP_COUNT
} kiln_op;

/* The facts ops.def states for every op (its header says what each means). */
typedef enum kiln_op_pattern {
    KILN_PAT_ELEMWISE,
    KILN_PAT_BROADCAST,
    KILN_PAT_INJECTIVE,
    KILN_PAT_VIEW,
    KILN_PAT_REDUCTION,
    KILN_PAT_OUT_FUSABLE,
    KILN_PAT_OPAQUE,
} kiln_op_pattern;

typedef enum kiln_op_layout_rule {
    KILN_LAYR_PLAIN,
    KILN_LAYR_KEEP,
    KILN_LAYR_CONV,
    KILN_LAYR_READ_ANY,
    KILN_LAYR_CONVERT,
} kiln_op_layout_rule;

typedef enum kiln_op_cost {
    KILN_COST_MOVE,
    KILN_COST_CHEAP,
    KILN_COST_MEDIUM,
    KILN_COST_TRANSCENDENTAL,
    KILN_COST_NORM,
    KILN_COST_REDUCE,
    KILN_COST_WINDOW,
    KILN_COST_CONTRACT,
} kiln_op_cost;

typedef struct kiln_op_facts {
    kiln_op_pattern pattern;
    kiln_op_layout_rule layout;
    kiln_op_cost cost;
} kiln_op_facts;

extern const kiln_op_facts kiln_op_fact_table[KILN_OP_COUNT];
static inline const kiln_op_facts *kiln_op_facts_of(kiln_op op) { return &kiln_op_fact_table[op]; }
/* One input, elementwise (usable as `activation:`). */
static inline bool kiln_op_is_unary(kiln_op op) { return kiln_op_fact_table[op].pattern == KILN_PAT_ELEMWISE; }
/* Two inputs with broadcasting, or one and `scalar`. */
static inline bool kiln_op_is_binary(kiln_op op) { return kiln_op_fact_table[op].pattern == KILN_PAT_BROADCAST; }
static inline bool kiln_op_is_elementwise(kiln_op op) { return kiln_op_is_unary(op) || kiln_op_is_binary(op); }
/* The output is the operand's storage reinterpreted (no copy). */
static inline bool kiln_op_is_view(kiln_op op) { return kiln_op_fact_table[op].pattern == KILN_PAT_VIEW; }
/* Can start a fusion group: a contraction, or an elementwise op (a chain). */
static inline bool kiln_op_can_anchor(kiln_op op)
{
    return kiln_op_fact_table[op].pattern == KILN_PAT_OUT_FUSABLE || kiln_op_is_elementwise(op);
}

typedef enum kiln_attr_id {
#define KILN_ATTR(id, name, type) KILN_ATTR_##id,
#include "attrs.def"
#undef KILN_ATTR
    KILN_ATTR_COUNT
} kiln_attr_id;

typedef enum kiln_attr_type {
    KILN_ATTR_T_INT,
    KILN_ATTR_T_FLOAT,
    KILN_ATTR_T_BOOL,
    KILN_ATTR_T_INTS,
    KILN_ATTR_T_WORD,
    KILN_ATTR_T_FLOATS,
} kiln_attr_type;

#define KILN_MAX_INTS 8
#define KILN_MAX_OP_ATTRS 8
#define KILN_MAX_OP_PARAMS 4

/* An attribute value. Which member is meaningful follows the attribute's type:
 * INT, BOOL (0/1) and WORD (index into the attribute's word list) use `i`;
 * FLOAT uses `f`; INTS uses `n` and `ints`; FLOATS uses `n` and `floats`
 * (at most KILN_MAX_INTS of them too). */
typedef struct kiln_attr {
    int64_t i;
    double f;
    int n;
    union {
        int64_t ints[KILN_MAX_INTS];
        double floats[KILN_MAX_INTS];
    };
} kiln_attr;

typedef struct kiln_attr_def {
    const char *name;
    kiln_attr_type type;
} kiln_attr_def;

/* How an op takes an attribute. */
typedef enum kiln_attr_use {
    KILN_USE_REQUIRED,  /* must be given */
    KILN_USE_DEFAULT,   /* `default_text` when absent */
    KILN_USE_OPTIONAL,  /* may be absent (clip's min/max, the binary ops' scalar) */
    KILN_USE_FROM,      /* defaults to the value of attribute `from` (pool stride = kernel) */
} kiln_attr_use;

typedef struct kiln_op_attr {
    kiln_attr_id id;
    kiln_attr_use use;
    const char *default_text; /* KILN_USE_DEFAULT: the default, written as in YAML */
    kiln_attr_id from;        /* KILN_USE_FROM */
} kiln_op_attr;

/* Op properties beyond ops.def's columns. */
enum {
    KILN_OPF_NO_DATA = 1u << 2,  /* no data operand (constant) */
    KILN_OPF_PASS = 1u << 3,     /* output equals the operand (identity, dropout) */
    KILN_OPF_IR_ONLY = 1u << 4,  /* made by passes, not a model op: the YAML frontend refuses it (reorder) */
    KILN_OPF_PARAM_ONE = 1u << 5, /* a parameter may also have shape [1]: one value for every channel (prelu) */
    KILN_OPF_SETS_DTYPE = 1u << 6, /* the shape rule decides the output's dtype (convert, quantize,
                                    * dequantize): the verifier and the reader hold the type to it */
};

/* What a shape rule sees: the operands' types and the attributes, nothing
 * of the graph. */
typedef struct kiln_infer_in {
    kiln_op op;
    const kiln_type *const *inputs; /* the data operands, then the parameters */
    uint32_t n_data, n_inputs;
    const kiln_attr *attrs;         /* KILN_ATTR_COUNT entries; present: attr_set bit */
    uint64_t attr_set;
    const char *batch_name;         /* for messages (NULL: "batch") */
    int64_t max_elements;           /* elements per batch item (0: KILN_DEFAULT_MAX_ELEMENTS) */
} kiln_infer_in;

static inline bool kiln_infer_has(const kiln_infer_in *in, kiln_attr_id id) { return (in->attr_set >> id) & 1u; }

/* A shape rule: the output type from the operands and attributes. On
 * failure returns -1 and writes a message that names the shapes and the rule
 * broken (the caller adds the layer name and location). */
typedef int (*kiln_infer_fn)(const kiln_infer_in *in, kiln_type *out, char *err, size_t err_size);

/* The shape each parameter role must have (shapes[i] for params[i]), from
 * the data operands and attributes; the frontend sizes random parameters by
 * it and the graph checks given ones against it. NULL in the table: the op
 * has no parameters with a fixed shape. Only in->inputs[0 .. n_data) are
 * read. Returns 0, or -1 with a message. */
typedef int (*kiln_param_shapes_fn)(const kiln_infer_in *in, kiln_shape shapes[KILN_MAX_OP_PARAMS], char *err,
                                    size_t err_size);

typedef struct kiln_op_def {
    const char *name;
    int min_inputs, max_inputs;            /* data operands; max -1 = any number */
    const char *params[KILN_MAX_OP_PARAMS]; /* parameter roles, in operand order after the data operands */
    int min_params;                        /* leading roles that must be present */
    kiln_op_attr attrs[KILN_MAX_OP_ATTRS];
    int n_attrs;
    unsigned flags;
    kiln_infer_fn infer;
    kiln_param_shapes_fn param_shapes;
} kiln_op_def;

extern const kiln_attr_def kiln_attr_defs[KILN_ATTR_COUNT];
extern const kiln_op_def kiln_op_defs[KILN_OP_COUNT];

static inline const kiln_op_def *kiln_op_get(kiln_op op) { return &kiln_op_defs[op]; }
const char *kiln_op_name(kiln_op op);
int kiln_op_lookup(const char *name, kiln_op *out);           /* 0 when found */
int kiln_attr_lookup(const char *name, kiln_attr_id *out);    /* 0 when found */
/* The op's entry for attribute `id`, or NULL when the op does not take it. */
const kiln_op_attr *kiln_op_find_attr(kiln_op op, kiln_attr_id id);
/* WORD attributes: the NULL-terminated list of allowed words (the value's
 * `i` indexes it); NULL for other attributes. */
const char *const *kiln_attr_words(kiln_attr_id id);
/* The shapes op's parameter roles must have (shapes[i] for params[i]; rank
 * 0: any), from its data operands and attributes; false when the op has no
 * fixed parameter shapes or the operands cannot have any. */
bool kiln_op_param_shapes(kiln_op op, const kiln_type *const *data, uint32_t n_data, const kiln_attr *attrs,
                          uint64_t attr_set, kiln_shape shapes[KILN_MAX_OP_PARAMS]);
/* Index of a parameter role in the op's params, or -1. */
int kiln_op_param_index(kiln_op op, const char *role);

/* The dtype that word `i` of attribute `to` names (convert, quantize). */
kiln_dtype kiln_attr_to_dtype(int64_t i);

/* resize's `mode` (the attribute's words, in this order). */
typedef enum kiln_resize_mode {
    KILN_RESIZE_NEAREST,       /* PyTorch's "nearest": src = floor(dst * ratio) */
    KILN_RESIZE_NEAREST_EXACT, /* src = floor((dst + 0.5) * ratio) */
    KILN_RESIZE_BILINEAR,
    KILN_RESIZE_BICUBIC,       /* Keys' cubic convolution, coefficient -0.75 */
} kiln_resize_mode;

/* resize's source step along one axis (PyTorch's area_pixel_compute_scale):
 * with align_corners (in - 1) / (out - 1) (0 when out is 1); otherwise 1 /
 * scale when the size came from `scale` (recompute_scale_factor=False), else
 * in / out. Source coordinates are dst * ratio (align_corners, nearest) or
 * (dst + 0.5) * ratio - 0.5 (bilinear, bicubic). */
double kiln_resize_ratio(int64_t in, int64_t out, bool has_scale, double scale, bool align_corners);

/* resize along one axis of size `in` to `out`: the input indices output
 * index o reads and their weights (1 tap for the nearest modes, 2 for
 * bilinear, 4 for bicubic; the other entries 0), as PyTorch's kernel for
 * NCHW tensors computes them. The nearest modes work in float32 exactly as
 * PyTorch does whatever the tensor's dtype (floor(o * (float)ratio)), so
 * that an index on the edge between two cells rounds the same way; the
 * interpolating modes work in double. Indices are clamped to [0, in).
 * (PyTorch's channels-last kernel, which it also takes for one channel,
 * copies when out = in and halves when out = 2 in whatever the scale: with a
 * `scale` that is not 1 or 2 but rounds to such a size the two kernels
 * disagree, and kiln follows the NCHW one, as ONNX's Resize does.) */
void kiln_resize_axis(kiln_resize_mode mode, int64_t in, int64_t out, bool has_scale, double scale,
                      bool align_corners, int64_t o, int64_t idx[4], double w[4]);

/* slice: Python's x[start:end:step] along an axis of size dim (step >= 1;
 * has_end false: to the end): the first index taken and how many. */
void kiln_slice_bounds(int64_t dim, int64_t start, bool has_end, int64_t end, int64_t step, int64_t *first,
                       int64_t *count);

/* Converts the text of a scalar (as YAML and the IR text form write it) to an
 * attribute value of the attribute's type: INTS (FLOATS) accept a single
 * integer (number), which is repeated `expand` times (expand 0 = one entry),
 * or a list written inline, "[1,2]". Returns 0 or -1 with a
 * message. FLOAT follows FORMAT.md: strtod, but no inf/nan. */
int kiln_attr_from_text(kiln_attr_id id, const char *text, int expand, kiln_attr *out,
                        char *err, size_t err_size);
/* Scalar conversions shared by every reader of text (FORMAT.md "Scalars"). */
int kiln_parse_int(const char *s, int64_t *out);   /* decimal, full string, no overflow */
int kiln_parse_float(const char *s, double *out);  /* strtod, full string, finite */
int kiln_parse_bool(const char *s, bool *out);     /* true / false */

#endif
