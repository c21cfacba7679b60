/* compiler/interp/interp_internal.h: what the interpreter's driver (interp.c)
 * hands the op kernels (interp_<family>.c). Not installed; not for other
 * folders.
 *
 * A kernel gets one kiln_icall: its node, its operands as concrete tensors
 * (the batch substituted, data in double, dense C order), and an output tensor
 * whose dims come from the output value's type and whose data is allocated
 * (uninitialized). The kernel checks that its operands fit the op, computes
 * the output shape by the op's rule and compares it with the output type
 * (kiln_icall_check_out) before writing anything, so a wrong type is a clear
 * error and never an out-of-bounds write. */
#ifndef KILN_INTERP_INTERNAL_H
#define KILN_INTERP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "interp.h"

#if defined(__GNUC__) || defined(__clang__)
#define KILN_INTERP_HIDDEN __attribute__((visibility("hidden")))
#else
#define KILN_INTERP_HIDDEN
#endif

/* A value as the interpreter holds it. */
typedef struct kiln_itensor {
    double *data;                 /* NULL when not computed / freed */
    int rank;
    int64_t dims[KILN_MAX_RANK];  /* the batch substituted */
    size_t count;                 /* product of dims (1 for rank 0) */
} kiln_itensor;

typedef struct kiln_icall {
    const kiln_graph *g;
    const kiln_node *n;
    kiln_diag *d;                 /* may be NULL */
    const kiln_itensor *const *in; /* the data operands, n_in of them */
    uint32_t n_in;
    kiln_itensor *out;
    const kiln_itensor *values;   /* every value of the graph, by id (for parameters) */
    kiln_precision precision;     /* what the node computes in: kiln_node_precision, or f32 (options.f32) */
} kiln_icall;

typedef kiln_status (*kiln_interp_kernel)(const kiln_icall *c);

/* Reports an error at the node's location as "layer 'L' (op): message" and
 * returns `status`. */
KILN_INTERP_HIDDEN kiln_status kiln_icall_fail(const kiln_icall *c, kiln_status status, const char *fmt,
                                               ...) __attribute__((format(printf, 3, 4)));
/* The tensor of the node's parameter of role `role`, or NULL when absent. */
KILN_INTERP_HIDDEN const kiln_itensor *kiln_icall_param(const kiln_icall *c, const char *role);
/* As kiln_icall_param, but a missing parameter is an error (*out NULL). */
KILN_INTERP_HIDDEN kiln_status kiln_icall_need_param(const kiln_icall *c, const char *role,
                                                    const kiln_itensor **out);
/* KILN_OK when the output tensor has exactly `rank` dims `dims`; otherwise
 * KILN_ERR_INTERNAL with a message naming both shapes (the IR's type
 * disagrees with the op's rule). */
KILN_INTERP_HIDDEN kiln_status kiln_icall_check_out(const kiln_icall *c, int rank, const int64_t *dims);
/* Checks that data operand `i` has rank `rank` (a negative `rank` means at
 * least -rank), else KILN_ERR_SHAPE. */
KILN_INTERP_HIDDEN kiln_status kiln_icall_check_rank(const kiln_icall *c, uint32_t i, int rank);
/* Checks that a parameter has exactly `count` elements, else KILN_ERR_SHAPE. */
KILN_INTERP_HIDDEN kiln_status kiln_icall_check_param_count(const kiln_icall *c, const char *role,
                                                           const kiln_itensor *p, int64_t count);
/* Attribute accessors: a missing or malformed attribute (which the verifier
 * would have refused) is KILN_ERR_INTERNAL. */
KILN_INTERP_HIDDEN kiln_status kiln_icall_int(const kiln_icall *c, kiln_attr_id id, int64_t *out);
KILN_INTERP_HIDDEN kiln_status kiln_icall_float(const kiln_icall *c, kiln_attr_id id, double *out);
/* BOOL attributes; absent means `dflt` (every bool has a default). */
KILN_INTERP_HIDDEN bool kiln_icall_bool(const kiln_icall *c, kiln_attr_id id, bool dflt);
/* INTS with exactly `count` entries (count < 0: any count up to KILN_MAX_INTS;
 * *n receives the count when n is not NULL). */
KILN_INTERP_HIDDEN kiln_status kiln_icall_ints(const kiln_icall *c, kiln_attr_id id, int count, int64_t *out,
                                               int *n);

/* Reduced precision (docs/precision.md), as the compiled layer computes:
 * the node's precision (c->precision) rounds its weights to f16 or
 * bf16, and with bf16 its data operand too, each value first to f32 (what
 * the compiled code holds) then to nearest even; the products and sums stay
 * in double. *out is t's data, or a rounded copy (*owned, malloc'd, to be
 * freed; NULL when nothing was copied). Out of memory: an error. */
KILN_INTERP_HIDDEN kiln_status kiln_icall_rounded(const kiln_icall *c, const kiln_itensor *t, bool weight,
                                                  const double **out, double **owned);

/* "[2,3,4]" into buf; returns buf. */
KILN_INTERP_HIDDEN char *kiln_idims_format(int rank, const int64_t *dims, char *buf, size_t size);
/* Product of dims[from..to) (1 when empty); the driver guarantees that the
 * product over all dims of any tensor fits a size_t. */
KILN_INTERP_HIDDEN size_t kiln_idims_product(const int64_t *dims, int from, int to);

/* Kernels, by family. Each takes the node's output as c->out. */
/* interp_linear.c */
KILN_INTERP_HIDDEN kiln_status kiln_interp_dense(const kiln_icall *c);
KILN_INTERP_HIDDEN kiln_status kiln_interp_matmul(const kiln_icall *c);
/* interp_conv.c */
KILN_INTERP_HIDDEN kiln_status kiln_interp_conv2d(const kiln_icall *c);
KILN_INTERP_HIDDEN kiln_status kiln_interp_maxpool2d(const kiln_icall *c);
KILN_INTERP_HIDDEN kiln_status kiln_interp_avgpool2d(const kiln_icall *c);
KILN_INTERP_HIDDEN kiln_status kiln_interp_global_avgpool(const kiln_icall *c);
/* interp_norm.c */
KILN_INTERP_HIDDEN kiln_status kiln_interp_batchnorm(const kiln_icall *c);
KILN_INTERP_HIDDEN kiln_status kiln_interp_layernorm(const kiln_icall *c);
KILN_INTERP_HIDDEN kiln_status kiln_interp_softmax(const kiln_icall *c); /* and log_softmax */
/* interp_elementwise.c */
KILN_INTERP_HIDDEN kiln_status kiln_interp_unary(const kiln_icall *c);  /* every ELEMWISE op (ops.def) */
KILN_INTERP_HIDDEN kiln_status kiln_interp_binary(const kiln_icall *c); /* every BROADCAST op (ops.def) */
/* interp_shape.c */
KILN_INTERP_HIDDEN kiln_status kiln_interp_concat(const kiln_icall *c);
KILN_INTERP_HIDDEN kiln_status kiln_interp_flatten(const kiln_icall *c);
KILN_INTERP_HIDDEN kiln_status kiln_interp_reshape(const kiln_icall *c);
KILN_INTERP_HIDDEN kiln_status kiln_interp_copy(const kiln_icall *c); /* identity, dropout */
KILN_INTERP_HIDDEN kiln_status kiln_interp_transpose(const kiln_icall *c);
KILN_INTERP_HIDDEN kiln_status kiln_interp_mean(const kiln_icall *c); /* and reduce_sum/max/min */
KILN_INTERP_HIDDEN kiln_status kiln_interp_pad(const kiln_icall *c);
KILN_INTERP_HIDDEN kiln_status kiln_interp_constant(const kiln_icall *c);
KILN_INTERP_HIDDEN kiln_status kiln_interp_slice(const kiln_icall *c);
KILN_INTERP_HIDDEN kiln_status kiln_interp_expand(const kiln_icall *c);
/* interp_conv.c (version 1.1) */
KILN_INTERP_HIDDEN kiln_status kiln_interp_conv_transpose2d(const kiln_icall *c);
KILN_INTERP_HIDDEN kiln_status kiln_interp_adaptive_avgpool2d(const kiln_icall *c);
/* interp_norm.c (version 1.1) */
KILN_INTERP_HIDDEN kiln_status kiln_interp_group_norm(const kiln_icall *c);
/* interp_elementwise.c (version 1.1) */
KILN_INTERP_HIDDEN kiln_status kiln_interp_prelu(const kiln_icall *c);
/* interp_convert.c: element types (IR only) */
KILN_INTERP_HIDDEN kiln_status kiln_interp_convert(const kiln_icall *c);
KILN_INTERP_HIDDEN kiln_status kiln_interp_quant(const kiln_icall *c); /* quantize, dequantize */
/* interp_resize.c */
KILN_INTERP_HIDDEN kiln_status kiln_interp_resize(const kiln_icall *c);

#endif
