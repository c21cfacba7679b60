/* compiler/codegen/kernels/convert.c: convert, quantize and dequantize, the
 * kernels that change a value's element type (docs/ir.md "Element types").
 *
 * Each loads vectors of the operand's type (kiln_cg_vtype_of), widens them to
 * f32 (kiln_cg_to_f32), computes in f32, and narrows to the output's type
 * (kiln_cg_from_f32) before one typed store; tails are masked. The results
 * are bit-exact with the interpreter's (compiler/interp/interp_convert.c):
 *   convert     the f32 rounded to nearest even in the narrow type;
 *   quantize    q = saturate(roundeven(x / scale) + zero_point), NaN -> zero_point;
 *   dequantize  y = (q - zero_point) * scale.
 * x / scale and (q - zero_point) * scale are single f32 operations (never
 * contracted), q - zero_point is exact.
 *
 * Per tensor (convert, or no `axis`): one flat loop over the elements, split
 * into tasks of CHUNK. Per channel (`axis` a): rows of `inner` elements (the
 * product of the dims after a); row r is channel r mod C and takes its scale
 * and zero point as splats. */
#include "compiler/codegen/cg.h"

#include <stdio.h>

typedef LLVMValueRef V;

#define CHUNK 16384 /* elements per task */

typedef struct conv_arg {
    kiln_op op;
    const kiln_cg_vtype *in, *out;
    V x, y;         /* the row's (or the value's) first element */
    V scale, zp;    /* quantize, dequantize: vectors of the row's (or the tensor's) scale and zero point */
} conv_arg;

/* bf16 and f16 vectors move through memory as their bits (i16): LLVM
 * legalizes a masked load or store of bfloat vectors on targets without bf16
 * instructions through f32 and a library call (__truncsfbf2), which JIT-
 * compiled code does not find. The bitcasts around kiln_cg_to_f32 and
 * kiln_cg_from_f32 cancel with theirs. */
static kiln_cg_vtype bits_of(kiln_cg *cg, const kiln_cg_vtype *vt)
{
    kiln_cg_vtype b = *vt;
    if (vt->dtype == KILN_BF16 || vt->dtype == KILN_F16) {
        b.elem = LLVMInt16TypeInContext(cg->u->ctx);
        b.vec = LLVMVectorType(b.elem, (unsigned)vt->lanes);
        b.is_float = false;
    }
    return b;
}

static void conv_body(kiln_cg *cg, V i, V mask, void *p)
{
    conv_arg *a = p;
    LLVMBuilderRef b = cg->u->b;
    kiln_cg_vtype in = bits_of(cg, a->in), out = bits_of(cg, a->out);
    V f = kiln_cg_to_f32(cg, a->in, LLVMBuildBitCast(b, kiln_cg_vload_t(cg, &in, a->x, i, mask, 0.0), a->in->vec, ""));
    V r;
    switch (a->op) {
    case KILN_OP_QUANTIZE: {
        /* NaN quantizes to the zero point; roundeven(t) + zp is exact, and
         * kiln_cg_from_f32 (rounding an integer: no change) saturates */
        V t = LLVMBuildFDiv(b, f, a->scale, "");
        t = LLVMBuildSelect(b, kiln_cg_is_nan(cg, t), kiln_cg_fconst(cg, t, 0.0), t, "");
        LLVMTypeRef types[1] = {LLVMTypeOf(t)};
        t = kiln_cg_intrinsic(cg, "llvm.roundeven", types, 1, &t, 1);
        r = kiln_cg_from_f32(cg, a->out, LLVMBuildFAdd(b, t, a->zp, ""));
        break;
    }
    case KILN_OP_DEQUANTIZE:
        r = LLVMBuildFMul(b, LLVMBuildFSub(b, f, a->zp, ""), a->scale, "");
        break;
    default: /* convert */
        r = kiln_cg_from_f32(cg, a->out, f);
        break;
    }
    kiln_cg_vstore_t(cg, &out, LLVMBuildBitCast(b, r, out.vec, ""), a->y, i, mask);
}

/* The node's scale and zero point at channel `ch` (i64) as vectors; a
 * missing zero point is 0. */
static void load_quant(kiln_cg *cg, V ps, V pz, V ch, conv_arg *a)
{
    a->scale = kiln_cg_splat(cg, kiln_cg_load(cg, ps, ch));
    a->zp = pz ? kiln_cg_splat(cg, kiln_cg_load(cg, pz, ch)) : kiln_cg_splat(cg, kiln_cg_f32(cg, 0.0));
}

kiln_status kiln_cg_emit_convert(kiln_cg *cg, const kiln_node *n)
{
    const kiln_value *xv = kiln_graph_value(cg->g, n->inputs[0]), *yv = kiln_graph_value(cg->g, n->output);
    const kiln_shape *xs = &xv->type.shape;
    const bool quant = n->op == KILN_OP_QUANTIZE || n->op == KILN_OP_DEQUANTIZE;
    const bool per_channel = quant && kiln_node_has(n, KILN_ATTR_AXIS);
    uint64_t s_off = 0, z_off = 0;
    kiln_id sid = KILN_NO_ID, zid = KILN_NO_ID;
    if (quant) {
        char err[256];
        sid = kiln_node_param(cg->g, n, "scale");
        zid = kiln_node_param(cg->g, n, "zero_point");
        if (sid == KILN_NO_ID)
            return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "%s without its scale", kiln_op_name(n->op));
        if (kiln_ir_check_quant(cg->g, n, err, sizeof err) != 0)
            return kiln_cg_fail(cg, KILN_ERR_INVALID_ARGUMENT, "%s", err);
        if (kiln_cg_blob_param(cg, sid, &s_off) != KILN_OK ||
            (zid != KILN_NO_ID && kiln_cg_blob_param(cg, zid, &z_off) != KILN_OK))
            return cg->status;
    }
    const int axis = per_channel ? (int)n->attrs[KILN_ATTR_AXIS].i : 0;
    char kernel[96];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, xv->type.dtype, KILN_CG_ON_TARGET, 0, 0, "%s_%s%s",
                        kiln_op_name(n->op), kiln_dtype_name(yv->type.dtype),
                        !quant ? "" : per_channel ? "_per_channel" : "_per_tensor");
    conv_arg a = {n->op, kiln_cg_vtype_of(cg, xv->type.dtype), kiln_cg_vtype_of(cg, yv->type.dtype), NULL, NULL,
                  NULL, NULL};
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, n->output);
    V ps = quant ? kiln_cg_weights_ptr(cg, s_off) : NULL, pz = zid != KILN_NO_ID ? kiln_cg_weights_ptr(cg, z_off) : NULL;
    if (!per_channel) {
        const int64_t e = kiln_shape_elements_per_item(xs);
        if (quant)
            load_quant(cg, ps, pz, kiln_cg_i64(cg, 0), &a);
        a.x = px;
        a.y = py;
        V lo, hi;
        kiln_cg_task_range(cg, kiln_cg_value_elems(cg, n->output), CHUNK, &lo, &hi);
        kiln_cg_vloop(cg, lo, hi, conv_body, &a);
        kiln_cg_task_end(cg, (kiln_cg_count){xs->batched ? 0 : e, xs->batched ? e : 0, CHUNK, 1, 0});
        return cg->status;
    }
    /* rows: the dims up to the axis (the batch's included); channel r mod C */
    int64_t inner = 1, rows = 1;
    const int64_t C = xs->dims[axis];
    for (int i = axis + 1; i < xs->rank; i++)
        inner *= xs->dims[i];
    for (int i = xs->batched ? 1 : 0; i <= axis; i++)
        rows *= xs->dims[i];
    const int64_t per_task = inner >= CHUNK ? 1 : CHUNK / inner;
    V total = kiln_cg_i64(cg, rows);
    if (xs->batched)
        total = LLVMBuildMul(cg->u->b, total, kiln_cg_batch(cg), "");
    V lo, hi;
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    kiln_cg_loop l;
    V r = kiln_cg_for_begin(cg, &l, lo, hi, kiln_cg_i64(cg, 1));
    V first = kiln_cg_imul(cg, r, inner);
    a.x = kiln_cg_gep_t(cg, a.in, px, first);
    a.y = kiln_cg_gep_t(cg, a.out, py, first);
    load_quant(cg, ps, pz, kiln_cg_urem(cg, r, C), &a);
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, inner), conv_body, &a);
    kiln_cg_for_end(cg, &l);
    kiln_cg_task_end(cg, (kiln_cg_count){xs->batched ? 0 : rows, xs->batched ? rows : 0, per_task, 1, 0});
    return cg->status;
}
