/* compiler/codegen/kernels/table.c: the kernel emitter of every op, in one table
 * indexed by kiln_op (checked against the op table's size; compile.c also
 * refuses a graph with an op whose entry is empty). */
#include "compiler/codegen/cg.h"

#include <stdarg.h>
#include <stdio.h>

#define UNARY {.emit = kiln_cg_emit_unary}
#define BINARY {.emit = kiln_cg_emit_binary}
#define ALIAS {.emit = kiln_cg_emit_alias}
#define FLOATS (KILN_CG_DTYPE(KILN_BF16) | KILN_CG_DTYPE(KILN_F16))
#define INT8S (KILN_CG_DTYPE(KILN_I8) | KILN_CG_DTYPE(KILN_U8))

static const kiln_cg_kernel kernels[] = {
    [KILN_OP_DENSE] = {.emit = kiln_cg_emit_dense},
    [KILN_OP_CONV2D] = {.emit = kiln_cg_emit_conv2d},
    [KILN_OP_MAXPOOL2D] = {.emit = kiln_cg_emit_pool},
    [KILN_OP_AVGPOOL2D] = {.emit = kiln_cg_emit_pool},
    [KILN_OP_GLOBAL_AVGPOOL] = {.emit = kiln_cg_emit_global_avgpool},
    [KILN_OP_BATCHNORM] = {.emit = kiln_cg_emit_batchnorm},
    [KILN_OP_LAYERNORM] = {.emit = kiln_cg_emit_layernorm},
    [KILN_OP_RELU] = UNARY,
    [KILN_OP_RELU6] = UNARY,
    [KILN_OP_SIGMOID] = UNARY,
    [KILN_OP_TANH] = UNARY,
    [KILN_OP_SILU] = UNARY,
    [KILN_OP_HARDSWISH] = UNARY,
    [KILN_OP_HARDSIGMOID] = UNARY,
    [KILN_OP_EXP] = UNARY,
    [KILN_OP_SQRT] = UNARY,
    [KILN_OP_NEG] = UNARY,
    [KILN_OP_GELU] = UNARY,
    [KILN_OP_LEAKY_RELU] = UNARY,
    [KILN_OP_ELU] = UNARY,
    [KILN_OP_CLIP] = UNARY,
    [KILN_OP_SOFTMAX] = {.emit = kiln_cg_emit_softmax},
    [KILN_OP_LOG_SOFTMAX] = {.emit = kiln_cg_emit_softmax},
    [KILN_OP_ADD] = BINARY,
    [KILN_OP_SUB] = BINARY,
    [KILN_OP_MUL] = BINARY,
    [KILN_OP_DIV] = BINARY,
    [KILN_OP_MAX] = BINARY,
    [KILN_OP_MIN] = BINARY,
    [KILN_OP_MATMUL] = {.emit = kiln_cg_emit_matmul},
    [KILN_OP_CONCAT] = {.emit = kiln_cg_emit_concat},
    [KILN_OP_FLATTEN] = ALIAS,
    [KILN_OP_RESHAPE] = ALIAS,
    [KILN_OP_TRANSPOSE] = {.emit = kiln_cg_emit_transpose},
    [KILN_OP_MEAN] = {.emit = kiln_cg_emit_mean},
    [KILN_OP_PAD] = {.emit = kiln_cg_emit_pad},
    [KILN_OP_IDENTITY] = ALIAS,
    [KILN_OP_DROPOUT] = ALIAS,
    [KILN_OP_CONSTANT] = ALIAS,
    [KILN_OP_REORDER] = {.emit = kiln_cg_emit_reorder},
    [KILN_OP_SLICE] = {.emit = kiln_cg_emit_slice},
    [KILN_OP_EXPAND] = {.emit = kiln_cg_emit_expand},
    [KILN_OP_RESIZE] = {.emit = kiln_cg_emit_resize},
    [KILN_OP_CONV_TRANSPOSE2D] = {.emit = kiln_cg_emit_conv_transpose2d},
    [KILN_OP_ADAPTIVE_AVGPOOL2D] = {.emit = kiln_cg_emit_adaptive_avgpool2d},
    [KILN_OP_GROUP_NORM] = {.emit = kiln_cg_emit_group_norm},
    [KILN_OP_PRELU] = {.emit = kiln_cg_emit_prelu},
    [KILN_OP_POW] = BINARY,
    [KILN_OP_REDUCE_SUM] = {.emit = kiln_cg_emit_reduce},
    [KILN_OP_REDUCE_MAX] = {.emit = kiln_cg_emit_reduce},
    [KILN_OP_REDUCE_MIN] = {.emit = kiln_cg_emit_reduce},
    [KILN_OP_ERF] = UNARY,
    [KILN_OP_ABS] = UNARY,
    [KILN_OP_LOG] = UNARY,
    [KILN_OP_SOFTPLUS] = UNARY,
    [KILN_OP_CONVERT] = {.emit = kiln_cg_emit_convert, .dtypes = FLOATS},
    [KILN_OP_QUANTIZE] = {.emit = kiln_cg_emit_convert, .dtypes = INT8S},
    [KILN_OP_DEQUANTIZE] = {.emit = kiln_cg_emit_convert, .dtypes = INT8S},
};

_Static_assert(sizeof kernels / sizeof kernels[0] == KILN_OP_COUNT, "one kernel emitter per op");

bool kiln_cg_supports(kiln_op op) { return (unsigned)op < KILN_OP_COUNT && kernels[op].emit != NULL; }

const kiln_cg_kernel *kiln_cg_kernel_for(kiln_op op)
{
    static const kiln_cg_kernel none = {.emit = NULL};
    return (unsigned)op < KILN_OP_COUNT ? &kernels[op] : &none;
}

static const char *kernel_vname(const kiln_cg *cg, char *buf, size_t size, const char *prefix, kiln_cg_where where,
                                int tile_rows, int tile_cols, const char *body, va_list ap)
{
    int o = snprintf(buf, size, "%s_", prefix);
    if (o >= 0 && (size_t)o < size)
        o += vsnprintf(buf + o, size - (size_t)o, body, ap);
    if (o >= 0 && (size_t)o < size && where != KILN_CG_ON_ANY)
        o += snprintf(buf + o, size - (size_t)o, "_%s", where == KILN_CG_ON_OPENBLAS ? "openblas" : cg->target->name);
    if (o >= 0 && (size_t)o < size && tile_rows > 0)
        snprintf(buf + o, size - (size_t)o, "_%dx%d", tile_rows, tile_cols);
    return buf;
}

const char *kiln_cg_kernel_name(const kiln_cg *cg, char *buf, size_t size, kiln_dtype dtype, kiln_cg_where where,
                                int tile_rows, int tile_cols, const char *body, ...)
{
    va_list ap;
    va_start(ap, body);
    kernel_vname(cg, buf, size, kiln_dtype_name(dtype), where, tile_rows, tile_cols, body, ap);
    va_end(ap);
    return buf;
}

const char *kiln_cg_gemm_kernel_name(const kiln_cg *cg, char *buf, size_t size, const kiln_cg_gemm_config *c,
                                     const char *body, ...)
{
    va_list ap;
    va_start(ap, body);
    kernel_vname(cg, buf, size, c->acc == KILN_I32 ? "int8" : kiln_dtype_name(kiln_cg_gemm_dtype(c)), KILN_CG_ON_TARGET,
                 c->mr, c->nr * c->lanes, body, ap);
    va_end(ap);
    return buf;
}
