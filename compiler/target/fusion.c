/* compiler/target/fusion.c: what the code generator can fuse (target.h):
 * which members of a fusion group it applies to the anchor's results in
 * registers, and how each reads its other operand. The fuse pass groups
 * only what these rules accept, and the code generator builds each
 * epilogue from the same description, so it never declines a member.
 *
 *   - anchors: conv2d (GEMM and depthwise paths), dense, matmul (not with a
 *     1-D operand), and the elementwise ops (one loop over the chain);
 *   - members of a conv2d/dense/matmul: one-input elementwise ops, binary ops
 *     with a scalar, and binary ops whose other operand, in the anchor
 *     output's 2-D view (rows: batch and channels of a conv, the leading axes
 *     of dense and matmul; columns: the pixels, or the last axis), is
 *     contiguous along the columns or constant along them (a residual, a
 *     per-channel or per-row operand, a scalar tensor); on a blocked anchor,
 *     an operand of the output's own shape and layout;
 *   - at most KILN_TARGET_MAX_EPI members after the anchor. */
#include "target.h"

#include <string.h>

void kiln_target_bcast_strides(const kiln_shape *s, const kiln_shape *out, int64_t *st)
{
    int R = out->rank;
    int64_t stride = 1;
    for (int i = R - 1; i >= 0; i--) {
        int k = i - (R - s->rank);
        bool batch_axis = k == 0 && s->batched;
        int64_t d = k >= 0 ? (batch_axis ? -1 : s->dims[k]) : 1;
        int64_t od = out->dims[i];
        if (batch_axis)
            st[i] = stride;
        else
            st[i] = (d == 1 && od != 1) ? 0 : stride;
        if (k >= 0 && !batch_axis)
            stride *= d;
    }
}

int kiln_target_epi_view_split(const kiln_graph *g, const kiln_node *a)
{
    const kiln_shape *ys = &g->values[a->output].type.shape;
    switch (a->op) {
    case KILN_OP_CONV2D:
    case KILN_OP_CONV_TRANSPOSE2D:
        return ys->rank == 4 ? 2 : -1;
    case KILN_OP_DENSE:
        return ys->rank >= 1 ? ys->rank - 1 : -1;
    case KILN_OP_MATMUL: {
        const kiln_shape *as = &g->values[a->inputs[0]].type.shape, *bs = &g->values[a->inputs[1]].type.shape;
        if (as->rank < 2 || bs->rank < 2)
            return -1;
        return ys->rank - 1;
    }
    default:
        return -1;
    }
}

/* The other operand of binary member n (chained value `prev`) in the view
 * of shape `out` split at `split`; false when it has no such form. */
static bool view_operand(const kiln_graph *g, const kiln_node *n, kiln_id prev, int split, kiln_epi_member *op)
{
    const kiln_shape *out = &g->values[n->output].type.shape;
    kiln_id other = n->inputs[0] == prev ? n->inputs[1] : n->inputs[0];
    const kiln_value *ov = &g->values[other];
    const kiln_type *ot = &g->values[n->output].type;
    if (ot->layout != KILN_LAYOUT_PLAIN) {
        /* A blocked anchor: the operand is read at the stored element's own
         * index (same shape, same layout), not through the view. */
        if (ov->type.dtype != KILN_F32 || ov->type.layout != ot->layout || ov->type.block != ot->block ||
            !kiln_shape_equal(&ov->type.shape, out))
            return false;
        op->col_stride = 1;
        op->n_row_dims = 0;
        op->other = other;
        return true;
    }
    if (ov->type.dtype != KILN_F32 || ov->type.layout != KILN_LAYOUT_PLAIN || ov->type.shape.rank > out->rank)
        return false;
    int64_t st[KILN_MAX_RANK];
    kiln_target_bcast_strides(&ov->type.shape, out, st);
    /* Columns: contiguous or constant. */
    int64_t expect = 1;
    bool contiguous = true, constant = true;
    for (int i = out->rank - 1; i >= split; i--) {
        int64_t d = out->dims[i];
        if (d == 1)
            continue;
        contiguous &= st[i] == expect;
        constant &= st[i] == 0;
        expect *= d;
    }
    if (!contiguous && !constant)
        return false;
    op->col_stride = contiguous && expect > 1 ? 1 : 0;
    if (constant)
        op->col_stride = 0;
    op->n_row_dims = 0;
    for (int i = 0; i < split; i++) {
        op->row_dims[op->n_row_dims] = (i == 0 && out->batched) ? -1 : out->dims[i];
        op->row_strides[op->n_row_dims] = st[i];
        op->n_row_dims++;
    }
    op->other = other;
    return true;
}

/* Fills op for member n (reading prev); false when it cannot be applied in
 * the anchor's view (split < 0: an elementwise anchor, any member works). */
static bool member_op(const kiln_graph *g, const kiln_node *n, kiln_id prev, int split, kiln_epi_member *op)
{
    memset(op, 0, sizeof *op);
    op->other = KILN_NO_ID;
    if (kiln_op_is_unary(n->op))
        return n->n_inputs >= 1 && n->inputs[0] == prev;
    if (!kiln_op_is_binary(n->op))
        return false;
    op->binary = true;
    if (n->n_inputs == 1) {
        op->scalar = true;
        op->chained_second = kiln_node_has(n, KILN_ATTR_REVERSE) && n->attrs[KILN_ATTR_REVERSE].i;
        return n->inputs[0] == prev;
    }
    if (n->n_inputs != 2 || (n->inputs[0] == prev) == (n->inputs[1] == prev))
        return false;
    op->chained_second = n->inputs[1] == prev;
    if (split < 0) {
        op->other = op->chained_second ? n->inputs[0] : n->inputs[1];
        return true;
    }
    return view_operand(g, n, prev, split, op);
}

bool kiln_target_epi_member(const kiln_graph *g, const kiln_node *anchor, const kiln_node *member, kiln_id prev,
                            kiln_epi_member *out)
{
    int split = kiln_target_epi_view_split(g, anchor);
    if (split < 0 && !kiln_op_is_elementwise(anchor->op))
        return false;
    return member_op(g, member, prev, split, out);
}
