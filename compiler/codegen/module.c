/* compiler/codegen/module.c: the modules (code generation units), their
 * types, task functions and the pointers a task reads (values, scratch,
 * weights). The IR helpers every kernel emitter uses are builder.c's. */
#include "cg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kiln_status kiln_cg_module_begin(kiln_cg *cg, LLVMContextRef ctx, const char *name)
{
    if (cg->n_units >= KILN_CG_MAX_UNITS)
        return KILN_ERR_INTERNAL;
    kiln_cg_unit *u = &cg->units[cg->n_units];
    memset(u, 0, sizeof *u);
    u->ctx = ctx;
    u->mod = LLVMModuleCreateWithNameInContext(name, ctx);
    u->b = LLVMCreateBuilderInContext(ctx);
    cg->n_units++; /* the caller disposes u->b and u->mod */
    kiln_cg_unit_select(cg, cg->n_units - 1);
    if (!u->mod || !u->b)
        return KILN_ERR_OUT_OF_MEMORY;
    LLVMSetTarget(u->mod, cg->machine->triple);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(cg->machine->tm);
    char *dl = LLVMCopyStringRepOfTargetData(td);
    LLVMSetDataLayout(u->mod, dl);
    LLVMDisposeMessage(dl);
    LLVMDisposeTargetData(td);

    cg->target = cg->machine->target;
    cg->vl = cg->target->vector_bits / 32;
    kiln_cg_gemm_configs_init(cg->target, cg->gemm);
    u->t_void = LLVMVoidTypeInContext(ctx);
    u->t_i1 = LLVMInt1TypeInContext(ctx);
    u->t_i8 = LLVMInt8TypeInContext(ctx);
    u->t_i32 = LLVMInt32TypeInContext(ctx);
    u->t_i64 = LLVMInt64TypeInContext(ctx);
    u->t_f32 = LLVMFloatTypeInContext(ctx);
    u->t_ptr = LLVMPointerTypeInContext(ctx, 0);
    u->t_vf = LLVMVectorType(u->t_f32, (unsigned)cg->vl);
    u->t_vi32 = LLVMVectorType(u->t_i32, (unsigned)cg->vl);
    u->t_vi64 = LLVMVectorType(u->t_i64, (unsigned)cg->vl);
    u->t_vmask = LLVMVectorType(u->t_i1, (unsigned)cg->vl);
    kiln_cg_vtypes_init(cg, ctx, u->vt);
    LLVMTypeRef fields[5] = {u->t_i64, u->t_ptr, u->t_ptr, u->t_ptr, u->t_ptr};
    u->t_ctx = LLVMStructTypeInContext(ctx, fields, 5, 0);
    LLVMTypeRef params[3] = {u->t_ptr, u->t_i64, u->t_i64};
    u->t_task = LLVMFunctionType(u->t_void, params, 3, 0);
    return KILN_OK;
}

void kiln_cg_unit_select(kiln_cg *cg, int u)
{
    cg->unit = u;
    cg->u = &cg->units[u];
}

void kiln_cg_shared_linkage(kiln_cg *cg, LLVMValueRef fn)
{
    if (cg->n_units > 1) {
        LLVMSetLinkage(fn, LLVMExternalLinkage);
        LLVMSetVisibility(fn, LLVMHiddenVisibility);
    } else {
        LLVMSetLinkage(fn, LLVMPrivateLinkage);
    }
}

static void add_enum_attr(kiln_cg *cg, LLVMValueRef fn, const char *name)
{
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(cg->u->ctx, kind, 0));
}

static void add_string_attr(kiln_cg *cg, LLVMValueRef fn, const char *k, const char *v)
{
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                               LLVMCreateStringAttribute(cg->u->ctx, k, (unsigned)strlen(k), v, (unsigned)strlen(v)));
}

void kiln_cg_function_attrs(kiln_cg *cg, LLVMValueRef fn)
{
    char bits[16];
    snprintf(bits, sizeof bits, "%d", cg->target->vector_bits);
    add_enum_attr(cg, fn, "nounwind");
    /* Explicit <16 x float> stays one zmm register even on CPUs whose tuning
     * prefers 256-bit vectors. */
    add_string_attr(cg, fn, "min-legal-vector-width", bits);
    add_string_attr(cg, fn, "prefer-vector-width", bits);
}

LLVMValueRef kiln_cg_declare_in(kiln_cg *cg, int u, const char *name, LLVMTypeRef fn_type)
{
    int cur = cg->unit;
    kiln_cg_unit_select(cg, u);
    LLVMValueRef fn = LLVMAddFunction(cg->u->mod, name, fn_type);
    LLVMSetLinkage(fn, LLVMExternalLinkage);
    LLVMSetVisibility(fn, LLVMHiddenVisibility);
    kiln_cg_function_attrs(cg, fn);
    kiln_cg_unit_select(cg, cur);
    return fn;
}

/* ---- task functions ------------------------------------------------------- */

static LLVMValueRef ctx_field(kiln_cg *cg, unsigned i, LLVMTypeRef t, const char *name)
{
    LLVMValueRef p = LLVMBuildStructGEP2(cg->u->b, cg->u->t_ctx, cg->f.arg_ctx, i, "");
    return LLVMBuildLoad2(cg->u->b, t, p, name);
}

void kiln_cg_task_begin(kiln_cg *cg, const char *kernel, const kiln_node *n)
{
    char name[256];
    const char *who = n ? (n->layer ? n->layer : kiln_graph_value(cg->g, n->output)->name) : "model";
    snprintf(name, sizeof name, "kiln.%s.%s", kernel, who);
    cg->f.node = n;
    cg->f.fn = LLVMAddFunction(cg->u->mod, name, cg->u->t_task);
    kiln_cg_shared_linkage(cg, cg->f.fn);
    kiln_cg_function_attrs(cg, cg->f.fn);
    /* One name across the units (LLVM renames a clash within a unit). */
    for (int k = 2; cg->n_units > 1; k++) {
        size_t len;
        const char *now = LLVMGetValueName2(cg->f.fn, &len);
        bool clash = false;
        for (int u = 0; u < cg->n_units && !clash; u++)
            clash = u != cg->unit && LLVMGetNamedFunction(cg->units[u].mod, now);
        if (!clash)
            break;
        char other[300];
        snprintf(other, sizeof other, "%s.%d", name, k);
        LLVMSetValueName2(cg->f.fn, other, strlen(other));
    }
    cg->f.entry = LLVMAppendBasicBlockInContext(cg->u->ctx, cg->f.fn, "entry");
    LLVMPositionBuilderAtEnd(cg->u->b, cg->f.entry);
    cg->f.arg_ctx = LLVMGetParam(cg->f.fn, 0);
    cg->f.arg_index = LLVMGetParam(cg->f.fn, 1);
    cg->f.arg_count = LLVMGetParam(cg->f.fn, 2);
    LLVMSetValueName2(cg->f.arg_ctx, "ctx", 3);
    LLVMSetValueName2(cg->f.arg_index, "index", 5);
    LLVMSetValueName2(cg->f.arg_count, "count", 5);
    cg->f.c_batch = ctx_field(cg, 0, cg->u->t_i64, "batch");
    cg->f.c_ws = ctx_field(cg, 1, cg->u->t_ptr, "ws");
    cg->f.c_weights = ctx_field(cg, 2, cg->u->t_ptr, "weights");
    cg->f.c_inputs = ctx_field(cg, 3, cg->u->t_ptr, "inputs");
    cg->f.c_outputs = ctx_field(cg, 4, cg->u->t_ptr, "outputs");
}

/* Instructions of fn (the units' balance). */
static size_t fn_insts(LLVMValueRef fn)
{
    size_t n = 0;
    for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(fn); bb; bb = LLVMGetNextBasicBlock(bb))
        for (LLVMValueRef i = LLVMGetFirstInstruction(bb); i; i = LLVMGetNextInstruction(i))
            n++;
    return n;
}

void kiln_cg_unit_count(kiln_cg *cg, LLVMValueRef fn) { cg->units[cg->unit].insts += fn_insts(fn); }

void kiln_cg_task_end(kiln_cg *cg, kiln_cg_count count)
{
    LLVMBuildRetVoid(cg->u->b);
    kiln_cg_unit_count(cg, cg->f.fn);
    LLVMValueRef fn = cg->f.fn; /* what the run function (unit 0) calls */
    if (cg->unit != 0) {
        size_t len;
        const char *name = LLVMGetValueName2(cg->f.fn, &len);
        fn = kiln_cg_declare_in(cg, 0, name, cg->units[0].t_task);
    }
    if (count.div < 1)
        count.div = 1;
    if (count.mult < 1)
        count.mult = 1;
    if (cg->n_steps == cg->cap_steps) {
        size_t cap = cg->cap_steps ? cg->cap_steps * 2 : 32;
        kiln_cg_step *s = realloc(cg->steps, cap * sizeof *s);
        if (!s) {
            kiln_cg_fail(cg, KILN_ERR_OUT_OF_MEMORY, "out of memory");
            return;
        }
        cg->steps = s;
        cg->cap_steps = cap;
    }
    cg->steps[cg->n_steps++] = (kiln_cg_step){fn, count, UINT32_MAX, UINT32_MAX};
}

LLVMValueRef kiln_cg_batch(kiln_cg *cg) { return cg->f.c_batch; }

LLVMValueRef kiln_cg_buffer_ptr(kiln_cg *cg, const kiln_cg_buffer *buf)
{
    switch (buf->kind) {
    case KILN_CG_BUF_INPUT:
    case KILN_CG_BUF_OUTPUT: {
        LLVMValueRef idx = kiln_cg_i64(cg, buf->index);
        LLVMValueRef arr = buf->kind == KILN_CG_BUF_INPUT ? cg->f.c_inputs : cg->f.c_outputs;
        LLVMValueRef p = LLVMBuildGEP2(cg->u->b, cg->u->t_ptr, arr, &idx, 1, "");
        return LLVMBuildLoad2(cg->u->b, cg->u->t_ptr, p, buf->kind == KILN_CG_BUF_INPUT ? "in" : "out");
    }
    case KILN_CG_BUF_WORKSPACE: {
        LLVMValueRef off = kiln_cg_i64(cg, (int64_t)buf->offset);
        if (buf->per_batch)
            off = LLVMBuildAdd(cg->u->b, off, LLVMBuildMul(cg->u->b, cg->f.c_batch, kiln_cg_i64(cg, (int64_t)buf->per_batch), ""),
                               "");
        return LLVMBuildGEP2(cg->u->b, cg->u->t_i8, cg->f.c_ws, &off, 1, "region");
    }
    case KILN_CG_BUF_PARAM: {
        uint64_t off = 0;
        if (kiln_cg_blob_param(cg, buf->index, &off) != KILN_OK)
            return LLVMConstNull(cg->u->t_ptr);
        return kiln_cg_weights_ptr(cg, off);
    }
    case KILN_CG_BUF_NONE:
        break;
    }
    kiln_cg_fail(cg, KILN_ERR_INTERNAL, "a value has no buffer");
    return LLVMConstNull(cg->u->t_ptr);
}

LLVMValueRef kiln_cg_value_ptr(kiln_cg *cg, kiln_id v)
{
    if (v >= cg->layout->n_values) {
        kiln_cg_fail(cg, KILN_ERR_INTERNAL, "value id %u out of range", v);
        return LLVMConstNull(cg->u->t_ptr);
    }
    return kiln_cg_buffer_ptr(cg, &cg->layout->values[v]);
}

LLVMValueRef kiln_cg_scratch_ptr(kiln_cg *cg)
{
    if (cg->f.node) {
        const kiln_cg_buffer *b = &cg->layout->node_scratch[cg->f.node - cg->g->nodes];
        if (b->kind == KILN_CG_BUF_WORKSPACE)
            return kiln_cg_buffer_ptr(cg, b);
    }
    return kiln_cg_buffer_ptr(cg, &cg->layout->scratch);
}

LLVMValueRef kiln_cg_weights_ptr(kiln_cg *cg, uint64_t offset)
{
    LLVMValueRef off = kiln_cg_i64(cg, (int64_t)offset);
    return LLVMBuildGEP2(cg->u->b, cg->u->t_i8, cg->f.c_weights, &off, 1, "w");
}

bool kiln_cg_batched(const kiln_cg *cg, kiln_id v) { return kiln_graph_value(cg->g, v)->type.shape.batched; }

int64_t kiln_cg_elems_per_item(const kiln_cg *cg, kiln_id v)
{
    return kiln_type_storage_elements_per_item(&kiln_graph_value(cg->g, v)->type);
}


LLVMValueRef kiln_cg_value_elems(kiln_cg *cg, kiln_id v)
{
    LLVMValueRef e = kiln_cg_i64(cg, kiln_cg_elems_per_item(cg, v));
    return kiln_cg_batched(cg, v) ? LLVMBuildMul(cg->u->b, e, cg->f.c_batch, "elems") : e;
}

void kiln_cg_task_range(kiln_cg *cg, LLVMValueRef total, int64_t chunk, LLVMValueRef *lo, LLVMValueRef *hi)
{
    *lo = LLVMBuildMul(cg->u->b, cg->f.arg_index, kiln_cg_i64(cg, chunk), "lo");
    *hi = kiln_cg_smin(cg, LLVMBuildAdd(cg->u->b, *lo, kiln_cg_i64(cg, chunk), ""), total);
}
