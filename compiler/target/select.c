/* compiler/target/select.c: which implementation computes a node on a
 * target (the select pass writes it into the IR, the code generator obeys),
 * and which convolutions the blocked layout may hold (the layout pass asks).
 * The numbers behind each rule are in docs/codegen.md ("Performance"). */
#include "target.h"

#include <stdio.h>
#include <string.h>

/* A 1x1 convolution with one group, stride 1, no padding, or a dense layer
 * with a weight: the layers that have both the generated GEMM and OpenBLAS
 * sgemm. */
bool kiln_target_gemm_candidate(const kiln_graph *g, const kiln_node *n)
{
    if (n->op == KILN_OP_DENSE)
        return kiln_node_param(g, n, "weight") != KILN_NO_ID;
    if (n->op != KILN_OP_CONV2D || n->attrs[KILN_ATTR_GROUPS].i != 1)
        return false;
    kiln_id w = kiln_node_param(g, n, "weight");
    if (w == KILN_NO_ID || g->values[w].type.shape.rank != 4)
        return false;
    const kiln_shape *ws = &g->values[w].type.shape;
    const kiln_attr *st = &n->attrs[KILN_ATTR_STRIDE], *pd = &n->attrs[KILN_ATTR_PADDING];
    return ws->dims[2] == 1 && ws->dims[3] == 1 && st->n >= 2 && st->ints[0] == 1 && st->ints[1] == 1 && pd->n >= 4 &&
           !pd->ints[0] && !pd->ints[1] && !pd->ints[2] && !pd->ints[3];
}

/* The heuristic: the generated GEMM, whose weights are packed at compile
 * time, unless a batch item alone is a very large GEMM (at least 512 rows,
 * and N and K of at least 2048), the only size class where OpenBLAS's kernel
 * (which packs both operands per call) came close on the development
 * machine. Rows: the leading axes of a dense layer's input per item (the
 * batch is not known at compile time), the output channels of a 1x1
 * convolution; N: units or pixels; K: input features or channels.
 * `kiln compile --tune` measures instead. */
static bool blas_preferred(const kiln_graph *g, const kiln_node *n)
{
    const kiln_shape *ys = &g->values[n->output].type.shape, *xs = &g->values[n->inputs[0]].type.shape;
    int64_t rows = 1, cols, depth;
    if (n->op == KILN_OP_DENSE) {
        for (int i = xs->batched ? 1 : 0; i < xs->rank - 1; i++)
            rows *= xs->dims[i];
        cols = ys->dims[ys->rank - 1];
        depth = xs->dims[xs->rank - 1];
    } else { /* 1x1 conv: rows = output channels, columns = pixels, depth = input channels */
        rows = ys->dims[1];
        cols = ys->dims[2] * ys->dims[3];
        depth = xs->dims[1];
    }
    return rows >= 512 && cols >= 2048 && depth >= 2048;
}

/* Whether v is a compile-time constant: a parameter, through `constant`
 * and views of it. */
static bool is_constant(const kiln_graph *g, kiln_id v)
{
    for (int hops = 0; hops < 64; hops++) {
        const kiln_value *val = &g->values[v];
        if (val->kind == KILN_VALUE_PARAM)
            return true;
        if (val->kind != KILN_VALUE_NODE)
            return false;
        const kiln_node *p = &g->nodes[val->producer];
        if (p->op != KILN_OP_CONSTANT && !kiln_op_is_view(p->op))
            return false;
        if (p->n_inputs < 1)
            return false;
        v = p->inputs[0];
    }
    return false;
}

static bool is_blocked(const kiln_graph *g, kiln_id v) { return g->values[v].type.layout != KILN_LAYOUT_PLAIN; }

/* A layer computing with bf16 or f16 weights (ir/graph.h): only the
 * generated GEMM has those (Winograd, OpenBLAS and the blocked kernels
 * compute f32). */
static bool reduced(const kiln_graph *g, const kiln_node *n) { return kiln_node_precision(g, n) != KILN_PREC_F32; }

kiln_impl kiln_target_select(const kiln_target *t, const kiln_graph *g, const kiln_node *n,
                             const kiln_select_options *o)
{
    kiln_winograd_mode mode = o ? o->winograd : KILN_WINOGRAD_AUTO;
    size_t idx = (size_t)(n - g->nodes);
    kiln_impl prefer = o && o->prefer && idx < g->n_nodes ? o->prefer[idx] : KILN_IMPL_NONE;
    switch (n->op) {
    case KILN_OP_CONV2D: {
        if (n->n_inputs < 2 || g->values[n->inputs[0]].type.shape.rank != 4)
            return KILN_IMPL_IGEMM;
        if (is_blocked(g, n->inputs[0]) || is_blocked(g, n->output))
            return KILN_IMPL_BLOCKED;
        if (reduced(g, n))
            return kiln_target_gemm_candidate(g, n) ? KILN_IMPL_GEMM : KILN_IMPL_IGEMM;
        int m = kiln_target_winograd_choice(t, g, n, mode);
        if (m)
            return m == 4 ? KILN_IMPL_WINOGRAD4 : KILN_IMPL_WINOGRAD2;
        kiln_id w = kiln_node_param(g, n, "weight");
        if (w != KILN_NO_ID && g->values[w].type.shape.rank == 4 && g->values[w].type.shape.dims[1] == 1)
            return KILN_IMPL_DIRECT;
        if (!kiln_target_gemm_candidate(g, n))
            return KILN_IMPL_IGEMM;
        if (prefer == KILN_IMPL_BLAS || (prefer == KILN_IMPL_NONE && blas_preferred(g, n)))
            return KILN_IMPL_BLAS;
        return KILN_IMPL_GEMM;
    }
    case KILN_OP_DENSE:
        if (kiln_target_gemm_candidate(g, n) && !reduced(g, n) &&
            (prefer == KILN_IMPL_BLAS || (prefer == KILN_IMPL_NONE && blas_preferred(g, n))))
            return KILN_IMPL_BLAS;
        return KILN_IMPL_GEMM;
    case KILN_OP_MATMUL: {
        if (n->n_inputs < 2)
            return KILN_IMPL_GEMM;
        const kiln_shape *bs = &g->values[n->inputs[1]].type.shape;
        bool tb = n->attrs[KILN_ATTR_TRANSPOSE_B].i != 0;
        /* a run-time B transposed (attention scores), or a 1-D B: dot
         * products along k; a constant B is packed (transposed if need be) */
        return (tb && !is_constant(g, n->inputs[1])) || bs->rank == 1 ? KILN_IMPL_DOT : KILN_IMPL_GEMM;
    }
    default:
        return KILN_IMPL_NONE;
    }
}

/* Measured on AVX2 (docs/codegen.md, "Blocked layout"): the blocked kernels
 * win on depthwise convolutions (MobileNetV2 0.69x the time at batch 1) and
 * on 1x1 convolutions, and on convolutions over an image (few input
 * channels); on 3x3 and larger kernels over many channels the plain kernels
 * (implicit GEMM, Winograd) are faster (ResNet-18 all blocked: 1.6x the
 * implicit GEMM's time; on AVX-512 ResNet-18's 3x3 layers at 7x7 blocked
 * took 4.1 ms against 2.2), so those keep NCHW. */
bool kiln_target_conv_blocks(const kiln_target *t, const kiln_graph *g, const kiln_node *n, kiln_winograd_mode mode)
{
    if (n->op != KILN_OP_CONV2D || n->n_inputs < 2)
        return false;
    const kiln_shape *xs = &g->values[n->inputs[0]].type.shape, *ys = &g->values[n->output].type.shape;
    kiln_id wid = kiln_node_param(g, n, "weight");
    if (xs->rank != 4 || ys->rank != 4 || wid == KILN_NO_ID || g->values[wid].type.shape.rank != 4)
        return false;
    const int64_t *dil = n->attrs[KILN_ATTR_DILATION].ints;
    if (dil[0] != 1 || dil[1] != 1)
        return false;
    const int64_t groups = n->attrs[KILN_ATTR_GROUPS].i, C = xs->dims[1], F = ys->dims[1];
    const kiln_shape *ws = &g->values[wid].type.shape;
    /* an implementation written in the IR (an edited dump) decides */
    const bool written = n->impl != KILN_IMPL_NONE;
    if (groups == C && F == C && ws->dims[1] == 1)
        return !written || n->impl == KILN_IMPL_BLOCKED; /* depthwise */
    if (groups != 1 || reduced(g, n)) /* bf16 / f16 weights: the GEMM on plain values */
        return false;
    if (written)
        return n->impl == KILN_IMPL_BLOCKED;
    if (kiln_target_winograd_choice(t, g, n, mode) != 0)
        return false;
    return (ws->dims[2] == 1 && ws->dims[3] == 1) || C <= 4;
}

uint64_t kiln_target_scratch(const kiln_target *t, const kiln_graph *g, const kiln_node *n, kiln_impl impl)
{
    if (n->op == KILN_OP_CONV_TRANSPOSE2D)
        return kiln_target_deconv_scratch(t, g, n);
    switch (impl) {
    case KILN_IMPL_WINOGRAD2:
        return kiln_target_winograd_scratch(t, g, n, 2);
    case KILN_IMPL_WINOGRAD4:
        return kiln_target_winograd_scratch(t, g, n, 4);
    default:
        return 0;
    }
}

bool kiln_target_impl_applies(const kiln_target *t, const kiln_graph *g, const kiln_node *n, kiln_impl impl,
                              char *why, size_t size)
{
    const char *name = kiln_impl_name(impl);
    if (reduced(g, n) && (impl == KILN_IMPL_BLAS || impl == KILN_IMPL_WINOGRAD2 || impl == KILN_IMPL_WINOGRAD4)) {
        snprintf(why, size, "%s computes f32 only, and the layer computes with %s weights", name,
                 kiln_precision_name(kiln_node_precision(g, n)));
        return false;
    }
    switch (n->op) {
    case KILN_OP_CONV2D: {
        bool blocked = is_blocked(g, n->inputs[0]) || is_blocked(g, n->output);
        kiln_id w = kiln_node_param(g, n, "weight");
        bool one_channel = w != KILN_NO_ID && g->values[w].type.shape.rank == 4 && g->values[w].type.shape.dims[1] == 1;
        if (blocked != (impl == KILN_IMPL_BLOCKED)) {
            snprintf(why, size, "%s: the blocked kernels compute exactly the convolutions that read or write a "
                     "blocked value", name);
            return false;
        }
        switch (impl) {
        case KILN_IMPL_BLOCKED:
        case KILN_IMPL_IGEMM:
            return true;
        case KILN_IMPL_WINOGRAD2:
        case KILN_IMPL_WINOGRAD4: {
            kiln_winograd_plan p;
            if (kiln_target_winograd_eligible(g, n) &&
                kiln_target_winograd_plan(t, g, n, impl == KILN_IMPL_WINOGRAD4 ? 4 : 2, &p))
                return true;
            snprintf(why, size, "%s needs a 3x3 stride-1 convolution of one group without dilation, and "
                     "scratch under 64 MiB per task", name);
            return false;
        }
        case KILN_IMPL_DIRECT:
            if (one_channel)
                return true;
            snprintf(why, size, "direct needs one input channel per group");
            return false;
        case KILN_IMPL_GEMM:
        case KILN_IMPL_BLAS:
            if (kiln_target_gemm_candidate(g, n))
                return true;
            snprintf(why, size, "%s needs a 1x1 convolution of one group, stride 1, no padding", name);
            return false;
        default:
            break;
        }
        break;
    }
    case KILN_OP_DENSE:
        if (impl == KILN_IMPL_GEMM || (impl == KILN_IMPL_BLAS && kiln_target_gemm_candidate(g, n)))
            return true;
        break;
    case KILN_OP_MATMUL:
        if (impl == KILN_IMPL_DOT) {
            if (n->attrs[KILN_ATTR_TRANSPOSE_B].i != 0 || g->values[n->inputs[1]].type.shape.rank == 1)
                return true;
            snprintf(why, size, "dot needs B transposed (transpose_b) or 1-D");
            return false;
        }
        if (impl == KILN_IMPL_GEMM) {
            const kiln_shape *bs = &g->values[n->inputs[1]].type.shape;
            if (bs->rank >= 2 && (n->attrs[KILN_ATTR_TRANSPOSE_B].i == 0 || is_constant(g, n->inputs[1])))
                return true;
            snprintf(why, size, "gemm needs a 2-D or larger B, constant when transpose_b is set");
            return false;
        }
        break;
    default:
        if (impl == KILN_IMPL_NONE)
            return true;
        break;
    }
    snprintf(why, size, "%s has no implementation '%s'", kiln_op_name(n->op), name);
    return false;
}
