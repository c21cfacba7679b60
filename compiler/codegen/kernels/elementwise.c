/* compiler/codegen/kernels/elementwise.c: the kernel of the one-input
 * elementwise ops and the binary ops with NumPy broadcasting; what each op
 * computes on one value is kernels/elementwise_value.c's.
 *
 * One kernel serves every elementwise op and its fusion group (an anchor
 * and its chain of members, cg->f.epi): when every operand has the output's
 * shape it is a flat vector loop over the elements, chunked into tasks of
 * CHUNK elements with a masked tail; otherwise the output's axes with size 1
 * are dropped and adjacent axes merged where all operands are contiguous (or
 * all broadcast) across them; the last remaining axis is the vector loop
 * (each operand either contiguous or a broadcast scalar), the others are rows
 * split into tasks. Values inside the chain stay in registers. */
#include "compiler/codegen/cg.h"

#include <stdio.h>
#include <string.h>

#define CHUNK 16384 /* elements per task */

typedef LLVMValueRef V;

/* ---- the elementwise kernel: an op and its fusion group's members ---------------- */

/* One operand of the loop: contiguous along the inner axis (vector loads) or
 * broadcast (a scalar splat once per row), or a constant (`scalar`). */
typedef struct operand {
    kiln_id v;          /* KILN_NO_ID: the constant */
    double constant;
    int64_t st[KILN_MAX_RANK + 1];
    V base, splat;      /* per row */
    bool contiguous;
} operand;

#define MAX_OPERANDS (2 + KILN_CG_MAX_EPI)

typedef struct chain {
    const kiln_node *n;
    const kiln_cg_epilogue *epi;
    operand op[MAX_OPERANDS];
    int n_ops;
    int anchor_ops;                  /* operands of the anchor (1 or 2) */
    int member_op[KILN_CG_MAX_EPI]; /* operand of each binary member, or -1 */
    bool reverse;                    /* anchor: scalar op x */
    V y;
    /* A blocked output whose channels are not whole blocks: vectors (one
     * pixel's block each) of the last block get 0 in lanes >= pad_valid. */
    int64_t pad_valid, pad_plane, pad_blocks;
} chain;

static V operand_lanes(kiln_cg *cg, operand *o, V i, V mask)
{
    return o->contiguous ? kiln_cg_vload(cg, o->base, i, mask, 0.0) : o->splat;
}

static void chain_body(kiln_cg *cg, V i, V mask, void *p)
{
    chain *c = p;
    V x[MAX_OPERANDS];
    for (int k = 0; k < c->n_ops; k++)
        x[k] = operand_lanes(cg, &c->op[k], i, mask);
    V val;
    if (c->anchor_ops == 1)
        val = kiln_cg_unary_value(cg, c->n, x[0]);
    else
        val = c->reverse ? kiln_cg_binary_value(cg, c->n->op, x[1], x[0]) : kiln_cg_binary_value(cg, c->n->op, x[0], x[1]);
    for (int m = 0; c->epi && m < c->epi->n; m++) {
        const kiln_cg_epi_op *e = &c->epi->ops[m];
        if (!e->binary) {
            val = kiln_cg_unary_value(cg, e->n, val);
            continue;
        }
        V other = e->scalar ? kiln_cg_fconst(cg, val, e->n->attrs[KILN_ATTR_SCALAR].f) : x[c->member_op[m]];
        val = e->chained_second ? kiln_cg_binary_value(cg, e->n->op, other, val)
                                : kiln_cg_binary_value(cg, e->n->op, val, other);
    }
    if (c->pad_valid) {
        V cb = kiln_cg_urem(cg, kiln_cg_udiv(cg, i, c->pad_plane), c->pad_blocks);
        V last = LLVMBuildICmp(cg->u->b, LLVMIntEQ, cb, kiln_cg_i64(cg, c->pad_blocks - 1), "");
        V lanes[64];
        for (int l = 0; l < cg->vl; l++)
            lanes[l] = LLVMConstInt(cg->u->t_i1, l >= c->pad_valid, 0);
        V pad = LLVMBuildSelect(cg->u->b, last, LLVMConstVector(lanes, (unsigned)cg->vl),
                                LLVMConstNull(LLVMVectorType(cg->u->t_i1, (unsigned)cg->vl)), "");
        val = LLVMBuildSelect(cg->u->b, pad, LLVMConstNull(cg->u->t_vf), val, "");
    }
    kiln_cg_vstore(cg, val, c->y, i, mask);
}

static void add_operand(chain *c, kiln_id v, double constant)
{
    operand *o = &c->op[c->n_ops++];
    memset(o, 0, sizeof *o);
    o->v = v;
    o->constant = constant;
}

/* Every elementwise op: one loop over the output, the anchor's operands and
 * each binary member's other operand read in it. The output's axes of size 1
 * are dropped and neighbouring axes merged where every operand is contiguous
 * across them or broadcast along them; when every operand is the output's
 * full shape the loop is flat over all elements (the batch included).
 * Otherwise the batch axis stays alone as the outermost, the last axis is the
 * vector loop and the others are rows split into tasks. */
static kiln_status emit_elementwise(kiln_cg *cg, const kiln_node *n)
{
    const kiln_shape *out = &kiln_graph_value(cg->g, n->output)->type.shape;
    const kiln_cg_epilogue *epi = cg->f.epi && cg->f.epi->n > 0 ? cg->f.epi : NULL;
    const bool unary = kiln_op_is_unary(n->op);
    chain c;
    memset(&c, 0, sizeof c);
    c.n = n;
    c.epi = epi;
    add_operand(&c, n->inputs[0], 0.0);
    if (!unary) {
        if (n->n_inputs == 1)
            add_operand(&c, KILN_NO_ID, n->attrs[KILN_ATTR_SCALAR].f);
        else
            add_operand(&c, n->inputs[1], 0.0);
        c.reverse = n->n_inputs == 1 && kiln_node_has(n, KILN_ATTR_REVERSE) && n->attrs[KILN_ATTR_REVERSE].i;
    }
    c.anchor_ops = c.n_ops;
    for (int m = 0; epi && m < epi->n; m++) {
        c.member_op[m] = -1;
        if (epi->ops[m].binary && !epi->ops[m].scalar) {
            c.member_op[m] = c.n_ops;
            add_operand(&c, epi->ops[m].other, 0.0);
        }
    }
    const int R = out->rank;
    int64_t full[KILN_MAX_RANK + 1];
    {
        int64_t st = 1;
        for (int i = R - 1; i >= 0; i--) {
            full[i] = st;
            if (!(i == 0 && out->batched))
                st *= out->dims[i];
        }
    }
    bool flat = true;
    for (int k = 0; k < c.n_ops; k++) {
        operand *o = &c.op[k];
        if (o->v == KILN_NO_ID) {
            for (int i = 0; i < R; i++)
                o->st[i] = 0;
            continue; /* a constant: splat in any loop */
        }
        kiln_cg_bcast_strides(&kiln_graph_value(cg->g, o->v)->type.shape, out, o->st);
        const kiln_shape *os = &kiln_graph_value(cg->g, o->v)->type.shape;
        if (os->rank != R || os->batched != out->batched)
            flat = false;
        for (int i = 0; i < R; i++)
            if (o->st[i] != full[i] && out->dims[i] != 1)
                flat = false;
    }

    char kernel[128], ename[64];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "%s%s%s", kiln_op_name(n->op),
                        flat ? "" : "_bcast", kiln_cg_epi_name(epi, ename, sizeof ename));
    kiln_id stored = epi ? epi->out : n->output;
    const kiln_type *ot = &kiln_graph_value(cg->g, n->output)->type;
    if (ot->layout != KILN_LAYOUT_PLAIN) {
        /* Blocked operands all have the output's shape and layout (the
         * verifier's rule): the flat loop runs over the stored elements. */
        if (!flat || ot->block != cg->vl || R != 4)
            return kiln_cg_fail(cg, KILN_ERR_UNSUPPORTED, "blocked elementwise operands must have the output's shape");
        if (out->dims[1] % cg->vl) {
            c.pad_valid = out->dims[1] % cg->vl;
            c.pad_plane = out->dims[2] * out->dims[3] * cg->vl;
            c.pad_blocks = (out->dims[1] + cg->vl - 1) / cg->vl;
        }
    }
    if (flat) {
        kiln_cg_task_begin(cg, kernel, n);
        for (int k = 0; k < c.n_ops; k++) {
            operand *o = &c.op[k];
            o->contiguous = o->v != KILN_NO_ID;
            if (o->contiguous)
                o->base = kiln_cg_value_ptr(cg, o->v);
            else
                o->splat = kiln_cg_splat(cg, kiln_cg_f32(cg, o->constant));
        }
        c.y = kiln_cg_value_ptr(cg, stored);
        V lo, hi;
        kiln_cg_task_range(cg, kiln_cg_value_elems(cg, n->output), CHUNK, &lo, &hi);
        kiln_cg_vloop(cg, lo, hi, chain_body, &c);
        int64_t e = kiln_cg_elems_per_item(cg, n->output);
        kiln_cg_task_end(cg, (kiln_cg_count){out->batched ? 0 : e, out->batched ? e : 0, CHUNK, 1, 0});
        return cg->status;
    }

    /* Drop size-1 axes (never the batch), then merge contiguous neighbours;
     * the batch axis stays on its own as the outermost. */
    int64_t dims[KILN_MAX_RANK + 1];
    int r = 0;
    const bool batched = out->batched;
    for (int i = 0; i < R; i++) {
        bool batch_axis = i == 0 && batched;
        if (!batch_axis && out->dims[i] == 1)
            continue;
        int64_t d = batch_axis ? -1 : out->dims[i];
        bool merge = r > 0 && !(r == 1 && batched);
        for (int k = 0; merge && k < c.n_ops; k++)
            merge = c.op[k].st[r - 1] == c.op[k].st[i] * d;
        if (merge) {
            dims[r - 1] *= d;
            for (int k = 0; k < c.n_ops; k++)
                c.op[k].st[r - 1] = c.op[k].st[i];
            continue;
        }
        dims[r] = d;
        for (int k = 0; k < c.n_ops; k++)
            c.op[k].st[r] = c.op[k].st[i];
        r++;
    }
    if (r == 0 || (batched && r == 1)) { /* a single element (per batch item) */
        dims[r] = 1;
        for (int k = 0; k < c.n_ops; k++)
            c.op[k].st[r] = 0;
        r++;
    }
    const int64_t inner = dims[r - 1];
    int64_t rows_per_item = 1;
    for (int i = batched ? 1 : 0; i < r - 1; i++)
        rows_per_item *= dims[i];
    const int64_t rows_per_task = inner >= CHUNK ? 1 : CHUNK / inner;

    kiln_cg_task_begin(cg, kernel, n);
    V ptr[MAX_OPERANDS];
    for (int k = 0; k < c.n_ops; k++)
        ptr[k] = c.op[k].v == KILN_NO_ID ? NULL : kiln_cg_value_ptr(cg, c.op[k].v);
    V py = kiln_cg_value_ptr(cg, stored);
    V total_rows = kiln_cg_i64(cg, rows_per_item);
    if (batched)
        total_rows = LLVMBuildMul(cg->u->b, total_rows, kiln_cg_batch(cg), "rows");
    V lo, hi;
    kiln_cg_task_range(cg, total_rows, rows_per_task, &lo, &hi);
    kiln_cg_loop row;
    V ri = kiln_cg_for_begin(cg, &row, lo, hi, kiln_cg_i64(cg, 1));
    /* Row index -> per-axis indices -> operand offsets. */
    V off[MAX_OPERANDS];
    for (int k = 0; k < c.n_ops; k++)
        off[k] = kiln_cg_i64(cg, 0);
    V rem = ri;
    for (int i = r - 2; i >= 0; i--) {
        V idx = i == 0 ? rem : kiln_cg_urem(cg, rem, dims[i]);
        if (i > 0)
            rem = kiln_cg_udiv(cg, rem, dims[i]);
        for (int k = 0; k < c.n_ops; k++)
            if (c.op[k].st[i])
                off[k] = LLVMBuildAdd(cg->u->b, off[k], LLVMBuildMul(cg->u->b, idx, kiln_cg_i64(cg, c.op[k].st[i]), ""), "");
    }
    for (int k = 0; k < c.n_ops; k++) {
        operand *o = &c.op[k];
        if (o->v == KILN_NO_ID) {
            o->contiguous = false;
            o->splat = kiln_cg_splat(cg, kiln_cg_f32(cg, o->constant));
            continue;
        }
        o->base = kiln_cg_gep(cg, ptr[k], off[k]);
        o->contiguous = o->st[r - 1] != 0;
        if (!o->contiguous)
            o->splat = kiln_cg_splat(cg, kiln_cg_load(cg, o->base, kiln_cg_i64(cg, 0)));
    }
    c.y = kiln_cg_gep(cg, py, LLVMBuildMul(cg->u->b, ri, kiln_cg_i64(cg, inner), ""));
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, inner), chain_body, &c);
    kiln_cg_for_end(cg, &row);
    int64_t rows_fixed = batched ? 0 : rows_per_item;
    kiln_cg_task_end(cg, (kiln_cg_count){rows_fixed, batched ? rows_per_item : 0, rows_per_task, 1, 0});
    return cg->status;
}

kiln_status kiln_cg_emit_unary(kiln_cg *cg, const kiln_node *n) { return emit_elementwise(cg, n); }
kiln_status kiln_cg_emit_binary(kiln_cg *cg, const kiln_node *n) { return emit_elementwise(cg, n); }
