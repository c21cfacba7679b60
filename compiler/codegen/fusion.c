/* compiler/codegen/fusion.c: the fusion groups of the passes (kiln_node.group,
 * marked by compiler/passes/fuse.c) as kernels.
 *
 * A group is one kernel: its anchor's emitter runs with the later members
 * as an epilogue (cg->epi), applied to each result while it is in
 * registers; only the last member's output is stored. The code generator
 * does not decide what to fuse (the pass does); it only declines a member it
 * cannot apply in registers, which then starts a kernel of its own:
 *
 *   - anchors: conv2d (GEMM and depthwise paths), dense, matmul (not with a
 *     1-D operand), and the elementwise ops (one loop over the chain);
 *   - members of a conv2d/dense/matmul: one-input elementwise ops, binary ops
 *     with a scalar, and binary ops whose other operand, in the anchor
 *     output's 2-D view (rows: batch and channels of a conv, the leading axes
 *     of dense and matmul; columns: the pixels, or the last axis), is
 *     contiguous along the columns or constant along them (a residual, a
 *     per-channel or per-row operand, a scalar tensor).
 *
 * Epilogue operands are addressed as row_offset(row) + col * col_stride; the
 * row offset is computed once per row of a tile. */
#include "cg.h"

#include <stdio.h>
#include <string.h>

typedef LLVMValueRef V;

void kiln_cg_bcast_strides(const kiln_shape *s, const kiln_shape *out, int64_t *st)
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

static bool is_elementwise(kiln_op op) { return kiln_op_is_elementwise(op); }

int kiln_cg_epi_view_split(const kiln_graph *g, const kiln_node *a)
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
static bool view_operand(const kiln_graph *g, const kiln_node *n, kiln_id prev, int split, kiln_cg_epi_op *op)
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
    kiln_cg_bcast_strides(&ov->type.shape, out, st);
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
static bool member_op(const kiln_graph *g, const kiln_node *n, kiln_id prev, int split, kiln_cg_epi_op *op)
{
    memset(op, 0, sizeof *op);
    op->n = n;
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

kiln_status kiln_cg_fusion_plan(const kiln_graph *g, bool *fused)
{
    size_t anchor = 0;
    int members = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = &g->nodes[i];
        fused[i] = false;
        bool continues = i > 0 && n->group != 0 && g->nodes[i - 1].group == n->group;
        if (!continues) {
            anchor = i;
            members = 0;
            continue;
        }
        /* The chain is broken when the previous member was not fused and is
         * not the anchor. */
        if (i - 1 != anchor && !fused[i - 1]) {
            anchor = i; /* this member starts a kernel of its own */
            members = 0;
            continue;
        }
        const kiln_node *a = &g->nodes[anchor];
        int split = kiln_cg_epi_view_split(g, a);
        kiln_cg_epi_op op;
        bool ok = (split >= 0 || is_elementwise(a->op)) && members < KILN_CG_MAX_EPI && member_op(g, n, g->nodes[i - 1].output, split, &op);
        if (ok) {
            fused[i] = true;
            members++;
        } else {
            anchor = i;
            members = 0;
        }
    }
    return KILN_OK;
}

void kiln_cg_epi_build(kiln_cg *cg, size_t i, kiln_cg_epilogue *e)
{
    const kiln_graph *g = cg->g;
    const kiln_node *a = &g->nodes[i];
    memset(e, 0, sizeof *e);
    e->out = a->output;
    e->view_split = kiln_cg_epi_view_split(g, a);
    kiln_id prev = a->output;
    for (size_t j = i + 1; cg->fused && j < g->n_nodes && cg->fused[j] && e->n < KILN_CG_MAX_EPI; j++) {
        const kiln_node *n = &g->nodes[j];
        if (!member_op(g, n, prev, e->view_split, &e->ops[e->n])) {
            kiln_cg_fail(cg, KILN_ERR_INTERNAL, "fusion member '%s' cannot be applied", n->layer ? n->layer : "?");
            return;
        }
        e->n++;
        prev = n->output;
        e->out = n->output;
    }
}

void kiln_cg_epi_begin(kiln_cg *cg, kiln_cg_epilogue *e)
{
    for (int k = 0; k < e->n; k++)
        if (e->ops[k].other != KILN_NO_ID)
            e->ops[k].base = kiln_cg_value_ptr(cg, e->ops[k].other);
}

void kiln_cg_epi_row(kiln_cg *cg, const kiln_cg_epilogue *e, V row, V *offs)
{
    for (int k = 0; k < e->n; k++) {
        const kiln_cg_epi_op *op = &e->ops[k];
        offs[k] = NULL;
        if (op->other == KILN_NO_ID)
            continue;
        V off = kiln_cg_i64(cg, 0), rem = row;
        for (int d = op->n_row_dims - 1; d >= 0; d--) {
            V idx = d == 0 ? rem : kiln_cg_urem(cg, rem, op->row_dims[d]);
            if (d > 0)
                rem = kiln_cg_udiv(cg, rem, op->row_dims[d]);
            if (op->row_strides[d])
                off = LLVMBuildAdd(cg->b, off, LLVMBuildMul(cg->b, idx, kiln_cg_i64(cg, op->row_strides[d]), ""), "");
        }
        offs[k] = off;
    }
}

V kiln_cg_epi_apply(kiln_cg *cg, const kiln_cg_epilogue *e, V val, const V *offs, V col, V mask)
{
    const bool vec = LLVMGetTypeKind(LLVMTypeOf(val)) == LLVMVectorTypeKind;
    for (int k = 0; k < e->n; k++) {
        const kiln_cg_epi_op *op = &e->ops[k];
        if (!op->binary) {
            val = kiln_cg_unary_value(cg, op->n, val);
            continue;
        }
        V other;
        if (op->scalar) {
            other = kiln_cg_fconst(cg, val, op->n->attrs[KILN_ATTR_SCALAR].f);
        } else if (op->col_stride) {
            V base = kiln_cg_gep(cg, op->base, offs[k]);
            other = vec ? kiln_cg_vload(cg, base, col, mask, 0.0) : kiln_cg_load(cg, base, col);
        } else {
            V s = kiln_cg_load(cg, op->base, offs[k]);
            other = vec ? kiln_cg_splat(cg, s) : s;
        }
        val = op->chained_second ? kiln_cg_binary_value(cg, op->n->op, other, val)
                                 : kiln_cg_binary_value(cg, op->n->op, val, other);
    }
    return val;
}

const char *kiln_cg_epi_name(const kiln_cg_epilogue *e, char *buf, size_t size)
{
    size_t w = 0;
    buf[0] = '\0';
    for (int k = 0; e && k < e->n && w < size; k++)
        w += (size_t)snprintf(buf + w, size - w, "_%s", kiln_op_name(e->ops[k].n->op));
    return buf;
}
