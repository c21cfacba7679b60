/* compiler/codegen/fusion.c: the fusion groups of the passes (kiln_node.group,
 * marked by compiler/passes/fuse.c) as kernels.
 *
 * A group is one kernel: its anchor's emitter runs with the later members
 * as an epilogue (cg->f.epi), applied to each result while it is in
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
    kiln_target_bcast_strides(s, out, st);
}

int kiln_cg_epi_view_split(const kiln_graph *g, const kiln_node *a) { return kiln_target_epi_view_split(g, a); }

/* Fills op for member n (reading prev) of the group anchored at a, from the
 * target's description; false when the rules refuse it. */
static bool member_op(const kiln_graph *g, const kiln_node *a, const kiln_node *n, kiln_id prev, kiln_cg_epi_op *op)
{
    kiln_epi_member m;
    memset(op, 0, sizeof *op);
    op->n = n;
    op->other = KILN_NO_ID;
    if (!kiln_target_epi_member(g, a, n, prev, &m))
        return false;
    op->binary = m.binary;
    op->scalar = m.scalar;
    op->chained_second = m.chained_second;
    op->other = m.other;
    op->n_row_dims = m.n_row_dims;
    memcpy(op->row_dims, m.row_dims, sizeof op->row_dims);
    memcpy(op->row_strides, m.row_strides, sizeof op->row_strides);
    op->col_stride = m.col_stride;
    return true;
}

kiln_status kiln_cg_fusion_plan(const kiln_graph *g, bool *fused, kiln_diag *d)
{
    size_t anchor = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = &g->nodes[i];
        fused[i] = i > 0 && n->group != 0 && g->nodes[i - 1].group == n->group;
        if (!fused[i]) {
            anchor = i;
            continue;
        }
        /* The fuse pass groups only what the target's rules accept; a group
         * from elsewhere (an edited .kir) that breaks them is an error, not
         * a kernel split behind the IR's back. */
        kiln_epi_member m;
        if (i - anchor > KILN_TARGET_MAX_EPI ||
            !kiln_target_epi_member(g, &g->nodes[anchor], n, g->nodes[i - 1].output, &m)) {
            kiln_diag_error(d, n->loc, "layer '%s' (%s): fusion group %u: this member cannot be applied in the "
                            "registers of '%s' (%s) (compiler/target/fusion.c: one-input ops, scalars, operands "
                            "contiguous or constant along the anchor's columns, at most %d members)",
                            n->layer ? n->layer : "?", kiln_op_name(n->op), n->group,
                            g->nodes[anchor].layer ? g->nodes[anchor].layer : "?", kiln_op_name(g->nodes[anchor].op),
                            KILN_TARGET_MAX_EPI);
            return KILN_ERR_UNSUPPORTED;
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
        if (!member_op(g, a, n, prev, &e->ops[e->n])) {
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
                off = LLVMBuildAdd(cg->u->b, off, LLVMBuildMul(cg->u->b, idx, kiln_cg_i64(cg, op->row_strides[d]), ""), "");
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
