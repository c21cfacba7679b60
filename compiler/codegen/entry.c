/* compiler/codegen/entry.c: the exported functions of a compiled model and
 * its constant data:
 *
 *   NAME_create / NAME_destroy   call kiln_rt_instance_create / _destroy with
 *                                the constant descriptor NAME.desc;
 *   NAME_run, NAME_run_checked   hand their buffers (and, checked, their
 *                                sizes) to kiln_rt_instance_begin, which
 *                                checks them against the model's info
 *                                (leaving a message on the instance) and
 *                                hands out the workspace and the weights;
 *                                then every step runs as
 *                                kiln_rt_instance_parallel_for(m,
 *                                count(batch), task, &ctx) (the instance's
 *                                pool, a shared one, or the application's
 *                                threads);
 *   NAME_last_error              kiln_rt_instance_last_error;
 *   NAME_workspace_size, NAME_info
 *   NAME_run_array, NAME_run_checked_array, NAME_run_profiled
 *                                (JIT builds only) the run functions with the
 *                                buffers in arrays.
 *
 * Each group is built by a function of its own below (constant data, create
 * and destroy, the run implementation, the run wrappers), so that a check
 * can be added to one without touching the others.
 *
 * Everything but these functions has private linkage, so several models link
 * into one program. The generated code keeps no mutable global state: all
 * per-run state lives in the instance and on the caller's stack. */
#include "cg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef LLVMValueRef V;

static V private_const(kiln_cg *cg, V init, const char *name)
{
    V gv = LLVMAddGlobal(cg->u->mod, LLVMTypeOf(init), name);
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    LLVMSetUnnamedAddr(gv, 1);
    return gv;
}

static V cstring(kiln_cg *cg, const char *s, const char *name)
{
    return private_const(cg, LLVMConstStringInContext2(cg->u->ctx, s, strlen(s), 0), name);
}

static V i32c(kiln_cg *cg, int64_t v) { return LLVMConstInt(cg->u->t_i32, (unsigned long long)v, 1); }

/* kiln_tensor_info {name, c_name, dtype, rank, dims} for a value. */
static V tensor_info(kiln_cg *cg, LLVMTypeRef t_info, kiln_id id, const char *c_name, const char *kind, size_t k)
{
    const kiln_value *v = kiln_graph_value(cg->g, id);
    const kiln_shape *s = &v->type.shape;
    char name[96];
    V dims[KILN_MAX_RANK + 1];
    for (int i = 0; i < s->rank; i++)
        dims[i] = kiln_cg_i64(cg, (uint64_t)((i == 0 && s->batched) ? -1 : s->dims[i]));
    snprintf(name, sizeof name, "%s.%s%zu.dims", cg->prefix, kind, k);
    V dims_g = private_const(cg, LLVMConstArray2(cg->u->t_i64, dims, (uint64_t)s->rank), name);
    snprintf(name, sizeof name, "%s.%s%zu.name", cg->prefix, kind, k);
    V n = cstring(cg, v->name, name);
    snprintf(name, sizeof name, "%s.%s%zu.c_name", cg->prefix, kind, k);
    V cn = cstring(cg, c_name, name);
    V fields[5] = {n, cn, i32c(cg, 0 /* KILN_DTYPE_F32 */), i32c(cg, s->rank), dims_g};
    return LLVMConstNamedStruct(t_info, fields, 5);
}

/* The layers of NAME_info: each distinct layer name of the compiled graph,
 * in the order of its first node, with that node's op and the precision of
 * the first of its nodes that computes in a reduced one (else f32). */
typedef struct layer_key {
    const char *name;
    size_t node;
    kiln_precision precision;
} layer_key;

static const char *layer_name(const kiln_graph *g, const kiln_node *n)
{
    return n->layer ? n->layer : kiln_graph_value(g, n->output)->name;
}

static int by_name_then_node(const void *a, const void *b)
{
    const layer_key *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->node > y->node) - (x->node < y->node);
}

static int by_node(const void *a, const void *b)
{
    const layer_key *x = a, *y = b;
    return (x->node > y->node) - (x->node < y->node);
}

/* Sets *out to a private array of kiln_layer_info and *count to its length. */
static kiln_status layer_infos(kiln_cg *cg, V *out, size_t *count)
{
    const kiln_graph *g = cg->g;
    LLVMTypeRef P = cg->u->t_ptr;
    LLVMTypeRef fields[3] = {P, P, P};
    LLVMTypeRef t_layer = LLVMStructCreateNamed(cg->u->ctx, "kiln_layer_info");
    LLVMStructSetBody(t_layer, fields, 3, 0);
    layer_key *keys = malloc((g->n_nodes ? g->n_nodes : 1) * sizeof *keys);
    V *items = malloc((g->n_nodes ? g->n_nodes : 1) * sizeof *items);
    if (!keys || !items) {
        free(keys);
        free(items);
        return kiln_cg_fail(cg, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (size_t i = 0; i < g->n_nodes; i++)
        keys[i] = (layer_key){layer_name(g, &g->nodes[i]), i, kiln_node_precision(g, &g->nodes[i])};
    qsort(keys, g->n_nodes, sizeof *keys, by_name_then_node);
    /* one key per layer (its first node), carrying the layer's precision */
    size_t n = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        if (n > 0 && strcmp(keys[n - 1].name, keys[i].name) == 0) {
            if (keys[n - 1].precision == KILN_PREC_F32)
                keys[n - 1].precision = keys[i].precision;
            continue;
        }
        keys[n++] = keys[i];
    }
    qsort(keys, n, sizeof *keys, by_node); /* back in the order they run */
    V op_names[KILN_OP_COUNT] = {0}, prec_names[KILN_PREC_COUNT] = {0};
    char name[160];
    for (size_t i = 0; i < n; i++) {
        const kiln_node *node = &g->nodes[keys[i].node];
        kiln_precision p = keys[i].precision;
        if (!op_names[node->op]) {
            snprintf(name, sizeof name, "%s.op.%s", cg->prefix, kiln_op_name(node->op));
            op_names[node->op] = cstring(cg, kiln_op_name(node->op), name);
        }
        if (!prec_names[p]) {
            snprintf(name, sizeof name, "%s.precision.%s", cg->prefix, kiln_precision_name(p));
            prec_names[p] = cstring(cg, kiln_precision_name(p), name);
        }
        snprintf(name, sizeof name, "%s.layer%zu.name", cg->prefix, i);
        V f[3] = {cstring(cg, keys[i].name, name), op_names[node->op], prec_names[p]};
        items[i] = LLVMConstNamedStruct(t_layer, f, 3);
    }
    snprintf(name, sizeof name, "%s.layers", cg->prefix);
    *out = n ? private_const(cg, LLVMConstArray2(t_layer, items, n), name) : LLVMConstNull(P);
    *count = n;
    free(keys);
    free(items);
    return KILN_OK;
}

static V declare(kiln_cg *cg, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, unsigned n)
{
    V f = LLVMGetNamedFunction(cg->u->mod, name);
    if (f)
        return f;
    f = LLVMAddFunction(cg->u->mod, name, LLVMFunctionType(ret, params, n, 0));
    LLVMSetLinkage(f, LLVMExternalLinkage);
    return f;
}

static V call(kiln_cg *cg, V fn, V *args, unsigned n)
{
    return LLVMBuildCall2(cg->u->b, LLVMGlobalGetValueType(fn), fn, args, n, "");
}

static V define(kiln_cg *cg, const char *suffix, LLVMTypeRef ret, LLVMTypeRef *params, unsigned n, bool exported)
{
    char name[160];
    snprintf(name, sizeof name, "%s%s", cg->prefix, suffix);
    V f = LLVMAddFunction(cg->u->mod, name, LLVMFunctionType(ret, params, n, 0));
    LLVMSetLinkage(f, exported ? LLVMExternalLinkage : LLVMPrivateLinkage);
    if (exported)
        LLVMSetVisibility(f, LLVMDefaultVisibility);
    kiln_cg_function_attrs(cg, f);
    cg->f.fn = f;
    cg->f.entry = LLVMAppendBasicBlockInContext(cg->u->ctx, f, "entry");
    LLVMPositionBuilderAtEnd(cg->u->b, cg->f.entry);
    return f;
}

/* return st when it is not KILN_OK. */
static void return_status(kiln_cg *cg, V st)
{
    LLVMBasicBlockRef fail = LLVMAppendBasicBlockInContext(cg->u->ctx, cg->f.fn, "failed");
    LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(cg->u->ctx, cg->f.fn, "ok");
    LLVMBuildCondBr(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntNE, st, i32c(cg, KILN_OK), ""), fail, ok);
    LLVMPositionBuilderAtEnd(cg->u->b, fail);
    LLVMBuildRet(cg->u->b, st);
    LLVMPositionBuilderAtEnd(cg->u->b, ok);
}

/* count = min(ceil((fixed + batch * per_batch) / div) * mult, max) */
static V step_count(kiln_cg *cg, V batch, const kiln_cg_count *c)
{
    V v = kiln_cg_i64(cg, (uint64_t)c->fixed);
    if (c->per_batch)
        v = LLVMBuildAdd(cg->u->b, v, LLVMBuildMul(cg->u->b, batch, kiln_cg_i64(cg, (uint64_t)c->per_batch), ""), "");
    if (c->div > 1)
        v = LLVMBuildUDiv(cg->u->b, LLVMBuildAdd(cg->u->b, v, kiln_cg_i64(cg, (uint64_t)(c->div - 1)), ""), kiln_cg_i64(cg, (uint64_t)c->div),
                          "");
    if (c->mult > 1)
        v = LLVMBuildMul(cg->u->b, v, kiln_cg_i64(cg, (uint64_t)c->mult), "");
    if (c->max > 0)
        v = kiln_cg_smin(cg, v, kiln_cg_i64(cg, (uint64_t)c->max));
    return v;
}

/* ---- constant data: NAME.info (kiln_model_info) and NAME.desc
 * (kiln_rt_model_desc, version 2) ---- */
static kiln_status emit_constant_data(kiln_cg *cg, V weights_global, uint64_t checksum, V *info_out, V *desc_out)
{
    const kiln_graph *g = cg->g;
    const kiln_cg_placement *lay = cg->layout;
    const size_t ni = g->n_inputs, no = g->n_outputs;
    LLVMTypeRef P = cg->u->t_ptr, I32 = cg->u->t_i32, I64 = cg->u->t_i64;
    char name[160];

    LLVMTypeRef info_fields[5] = {P, P, I32, I32, P};
    LLVMTypeRef t_info = LLVMStructCreateNamed(cg->u->ctx, "kiln_tensor_info");
    LLVMStructSetBody(t_info, info_fields, 5, 0);
    V infos[2];
    for (int k = 0; k < 2; k++) {
        size_t count = k ? no : ni;
        V items[256], *list = items;
        V *heap = NULL;
        if (count > 256) {
            heap = malloc(count * sizeof *heap);
            if (!heap)
                return kiln_cg_fail(cg, KILN_ERR_OUT_OF_MEMORY, "out of memory");
            list = heap;
        }
        for (size_t i = 0; i < count; i++)
            list[i] = tensor_info(cg, t_info, k ? g->outputs[i] : g->inputs[i],
                                  k ? lay->names.outputs[i] : lay->names.inputs[i], k ? "out" : "in", i);
        snprintf(name, sizeof name, "%s.%s", cg->prefix, k ? "outputs" : "inputs");
        infos[k] = private_const(cg, LLVMConstArray2(t_info, list, count), name);
        free(heap);
    }
    snprintf(name, sizeof name, "%s.name", cg->prefix);
    V model_name = cstring(cg, g->name, name);
    snprintf(name, sizeof name, "%s.description", cg->prefix);
    V description = cstring(cg, g->description ? g->description : "", name);
    V layers = NULL;
    size_t n_layers = 0;
    kiln_status st = layer_infos(cg, &layers, &n_layers);
    if (st != KILN_OK)
        return st;
    LLVMTypeRef model_fields[11] = {P, P, I32, P, I32, P, I64, I64, I64, I32, P};
    LLVMTypeRef t_model = LLVMStructCreateNamed(cg->u->ctx, "kiln_model_info");
    LLVMStructSetBody(t_model, model_fields, 11, 0);
    V mi[11] = {model_name,
               description,
               i32c(cg, (int64_t)ni),
               infos[0],
               i32c(cg, (int64_t)no),
               infos[1],
               kiln_cg_i64(cg, cg->blob->size),
               kiln_cg_i64(cg, lay->fixed_bytes),
               kiln_cg_i64(cg, lay->per_batch_bytes),
               i32c(cg, (int64_t)n_layers),
               layers};
    snprintf(name, sizeof name, "%s.info", cg->prefix);
    V info = private_const(cg, LLVMConstNamedStruct(t_model, mi, 11), name);

    bool external = cg->opt.weights == KILN_CG_WEIGHTS_EXTERNAL;
    LLVMTypeRef desc_fields[12] = {I32, I32, P, I64, I64, I64, P, P, I64, P, I64, P};
    LLVMTypeRef t_desc = LLVMStructCreateNamed(cg->u->ctx, "kiln_rt_model_desc");
    LLVMStructSetBody(t_desc, desc_fields, 12, 0);
    snprintf(name, sizeof name, "%s.weights_path", cg->prefix);
    V path = external && cg->opt.weights_path ? cstring(cg, cg->opt.weights_path, name) : LLVMConstNull(P);
    uint32_t flags = (lay->batched ? 1u : 0u) | (external ? 2u : 0u);
    /* Every batched buffer's byte size must fit an int64_t. */
    uint64_t max_batch = lay->max_item_bytes ? (uint64_t)INT64_MAX / 2 / lay->max_item_bytes : (uint64_t)INT64_MAX;
    /* NAME_create refuses a CPU without the extensions the code may use,
     * instead of dying on an illegal instruction. */
    snprintf(name, sizeof name, "%s.cpu_features", cg->prefix);
    V cpu = cg->target->features[0] ? cstring(cg, cg->target->features, name) : LLVMConstNull(P);
    V di[12] = {i32c(cg, 2 /* KILN_RT_MODEL_DESC_VERSION */),
                i32c(cg, flags),
                model_name,
                kiln_cg_i64(cg, lay->fixed_bytes),
                kiln_cg_i64(cg, lay->per_batch_bytes),
                kiln_cg_i64(cg, cg->blob->size),
                external ? LLVMConstNull(P) : weights_global,
                path,
                kiln_cg_i64(cg, external ? checksum : 0),
                info,
                kiln_cg_i64(cg, max_batch),
                cpu};
    snprintf(name, sizeof name, "%s.desc", cg->prefix);
    *desc_out = private_const(cg, LLVMConstNamedStruct(t_desc, di, 12), name);
    *info_out = info;
    return KILN_OK;
}

/* ---- NAME_info, NAME_workspace_size, NAME_create, NAME_destroy,
 * NAME_last_error ---- */
static void emit_lifecycle(kiln_cg *cg, V info, V desc)
{
    LLVMTypeRef P = cg->u->t_ptr, I32 = cg->u->t_i32, I64 = cg->u->t_i64;
    LLVMTypeRef p3[3] = {P, P, P}, pws[2] = {P, I64};
    V rt_create = declare(cg, "kiln_rt_instance_create", I32, p3, 3);
    V rt_destroy = declare(cg, "kiln_rt_instance_destroy", cg->u->t_void, &P, 1);
    V rt_ws = declare(cg, "kiln_rt_model_workspace_size", I64, pws, 2);
    V rt_error = declare(cg, "kiln_rt_instance_last_error", P, &P, 1);

    define(cg, "_info", P, NULL, 0, true);
    LLVMBuildRet(cg->u->b, info);

    V f = define(cg, "_workspace_size", I64, &I64, 1, true);
    V args2[2] = {desc, LLVMGetParam(f, 0)};
    LLVMBuildRet(cg->u->b, call(cg, rt_ws, args2, 2));

    LLVMTypeRef pp[2] = {P, P};
    f = define(cg, "_create", I32, pp, 2, true);
    if (cg->uses_blas) {
        /* Kernels call OpenBLAS inside parallel_for tasks: it must not start
         * threads of its own (kiln_rt_sgemm's contract). */
        V set = declare(cg, "kiln_rt_blas_set_threads", cg->u->t_void, &I32, 1);
        V one = i32c(cg, 1);
        call(cg, set, &one, 1);
    }
    V args3[3] = {desc, LLVMGetParam(f, 1), LLVMGetParam(f, 0)};
    LLVMBuildRet(cg->u->b, call(cg, rt_create, args3, 3));

    f = define(cg, "_destroy", cg->u->t_void, &P, 1, true);
    V arg = LLVMGetParam(f, 0);
    call(cg, rt_destroy, &arg, 1);
    LLVMBuildRetVoid(cg->u->b);

    f = define(cg, "_last_error", P, &P, 1, true);
    arg = LLVMGetParam(f, 0);
    LLVMBuildRet(cg->u->b, call(cg, rt_error, &arg, 1));
}

/* ---- the run implementation: (m, batch, inputs[], outputs[], input_bytes[]
 * or NULL, output_bytes[] or NULL, hook, arg); hook (JIT builds'
 * NAME_run_profiled only) is called after each step ---- */
static V emit_run_impl(kiln_cg *cg)
{
    LLVMTypeRef P = cg->u->t_ptr, I32 = cg->u->t_i32, I64 = cg->u->t_i64;
    LLVMTypeRef pbegin[8] = {P, I64, P, P, P, P, P, P}, pfor[4] = {P, I64, P, P};
    V rt_begin = declare(cg, "kiln_rt_instance_begin", I32, pbegin, 8);
    V rt_for = declare(cg, "kiln_rt_instance_parallel_for", I32, pfor, 4);

    LLVMTypeRef pimpl[8] = {P, I64, P, P, P, P, P, P};
    V impl = define(cg, ".run_impl", I32, pimpl, 8, false);
    V m = LLVMGetParam(impl, 0), batch = LLVMGetParam(impl, 1);
    V ins = LLVMGetParam(impl, 2), outs = LLVMGetParam(impl, 3);
    V hook = LLVMGetParam(impl, 6), hook_arg = LLVMGetParam(impl, 7);
    LLVMTypeRef hook_params[2] = {P, I64};
    LLVMTypeRef hook_t = LLVMFunctionType(cg->u->t_void, hook_params, 2, 0);
    /* The arguments are checked by the runtime, which also grows the
     * workspace: every failure leaves a message on the instance. */
    V ws = kiln_cg_alloca(cg, P, "ws"), wts = kiln_cg_alloca(cg, P, "weights");
    V bargs[8] = {m, batch, ins, outs, LLVMGetParam(impl, 4), LLVMGetParam(impl, 5), ws, wts};
    return_status(cg, call(cg, rt_begin, bargs, 8));
    V ctx = kiln_cg_alloca(cg, cg->u->t_ctx, "ctx");
    V fields[5] = {batch, LLVMBuildLoad2(cg->u->b, P, ws, ""), LLVMBuildLoad2(cg->u->b, P, wts, ""), ins, outs};
    for (unsigned i = 0; i < 5; i++)
        LLVMBuildStore(cg->u->b, fields[i], LLVMBuildStructGEP2(cg->u->b, cg->u->t_ctx, ctx, i, ""));
    for (size_t s = 0; s < cg->n_steps; s++) {
        V count = step_count(cg, batch, &cg->steps[s].count);
        V fargs[4] = {m, count, cg->steps[s].fn, ctx};
        return_status(cg, call(cg, rt_for, fargs, 4));
        if (cg->opt.jit) {
            kiln_cg_if f;
            kiln_cg_if_begin(cg, &f, LLVMBuildIsNotNull(cg->u->b, hook, ""));
            V hargs[2] = {hook_arg, kiln_cg_i64(cg, s)};
            LLVMBuildCall2(cg->u->b, hook_t, hook, hargs, 2, "");
            kiln_cg_if_end(cg, &f);
        }
    }
    LLVMBuildRet(cg->u->b, i32c(cg, KILN_OK));
    return impl;
}

/* ---- NAME_run(m, batch, in..., out...) and NAME_run_checked(m, batch, in,
 * in_bytes, ..., out, out_bytes, ...): the buffers (and sizes) into arrays
 * for the implementation ---- */
static kiln_status emit_run_wrappers(kiln_cg *cg, V impl)
{
    const kiln_graph *g = cg->g;
    const size_t ni = g->n_inputs, no = g->n_outputs;
    LLVMTypeRef P = cg->u->t_ptr, I32 = cg->u->t_i32, I64 = cg->u->t_i64;
    for (int checked = 0; checked < 2; checked++) {
        size_t per = checked ? 2 : 1, np = 2 + per * (ni + no);
        LLVMTypeRef params[2 + 2 * 512];
        if (ni + no > 510)
            return kiln_cg_fail(cg, KILN_ERR_UNSUPPORTED, "more than 510 inputs and outputs");
        params[0] = P, params[1] = I64;
        for (size_t i = 0; i < ni + no; i++) {
            params[2 + per * i] = P;
            if (checked)
                params[3 + per * i] = I64; /* size_t */
        }
        V f = define(cg, checked ? "_run_checked" : "_run", I32, params, (unsigned)np, true);
        V in_arr = kiln_cg_alloca(cg, LLVMArrayType2(P, ni ? ni : 1), "inputs");
        V out_arr = kiln_cg_alloca(cg, LLVMArrayType2(P, no ? no : 1), "outputs");
        V in_sz = checked ? kiln_cg_alloca(cg, LLVMArrayType2(I64, ni ? ni : 1), "input_bytes") : LLVMConstNull(P);
        V out_sz = checked ? kiln_cg_alloca(cg, LLVMArrayType2(I64, no ? no : 1), "output_bytes") : LLVMConstNull(P);
        for (size_t i = 0; i < ni + no; i++) {
            V idx = kiln_cg_i64(cg, i < ni ? i : i - ni);
            V slot = LLVMBuildGEP2(cg->u->b, P, i < ni ? in_arr : out_arr, &idx, 1, "");
            LLVMBuildStore(cg->u->b, LLVMGetParam(f, (unsigned)(2 + per * i)), slot);
            if (checked) {
                V sslot = LLVMBuildGEP2(cg->u->b, I64, i < ni ? in_sz : out_sz, &idx, 1, "");
                LLVMBuildStore(cg->u->b, LLVMGetParam(f, (unsigned)(3 + per * i)), sslot);
            }
        }
        V rargs[8] = {LLVMGetParam(f, 0), LLVMGetParam(f, 1), in_arr, out_arr, in_sz, out_sz, LLVMConstNull(P),
                      LLVMConstNull(P)};
        LLVMBuildRet(cg->u->b, call(cg, impl, rargs, 8));
    }
    return KILN_OK;
}

/* ---- JIT builds: NAME_run_array(m, batch, inputs, outputs),
 * NAME_run_checked_array(m, batch, inputs, input_bytes, outputs,
 * output_bytes), NAME_run_profiled(m, batch, inputs, outputs, hook, arg) ---- */
static void emit_jit_entries(kiln_cg *cg, V impl)
{
    LLVMTypeRef P = cg->u->t_ptr, I32 = cg->u->t_i32, I64 = cg->u->t_i64;
    LLVMTypeRef p6[6] = {P, I64, P, P, P, P};
    V f = define(cg, "_run_array", I32, p6, 4, true);
    V a[8] = {LLVMGetParam(f, 0), LLVMGetParam(f, 1), LLVMGetParam(f, 2), LLVMGetParam(f, 3),
              LLVMConstNull(P),   LLVMConstNull(P),   LLVMConstNull(P),   LLVMConstNull(P)};
    LLVMBuildRet(cg->u->b, call(cg, impl, a, 8));

    f = define(cg, "_run_checked_array", I32, p6, 6, true);
    V c[8] = {LLVMGetParam(f, 0), LLVMGetParam(f, 1), LLVMGetParam(f, 2), LLVMGetParam(f, 4),
              LLVMGetParam(f, 3), LLVMGetParam(f, 5), LLVMConstNull(P),   LLVMConstNull(P)};
    LLVMBuildRet(cg->u->b, call(cg, impl, c, 8));

    f = define(cg, "_run_profiled", I32, p6, 6, true);
    V p[8] = {LLVMGetParam(f, 0), LLVMGetParam(f, 1), LLVMGetParam(f, 2), LLVMGetParam(f, 3),
              LLVMConstNull(P),   LLVMConstNull(P),   LLVMGetParam(f, 4), LLVMGetParam(f, 5)};
    LLVMBuildRet(cg->u->b, call(cg, impl, p, 8));
}

kiln_status kiln_cg_emit_entry(kiln_cg *cg, V weights_global, uint64_t checksum)
{
    cg->f.node = NULL;
    V info, desc;
    kiln_status st = emit_constant_data(cg, weights_global, checksum, &info, &desc);
    if (st != KILN_OK)
        return st;
    emit_lifecycle(cg, info, desc);
    V impl = emit_run_impl(cg);
    if ((st = emit_run_wrappers(cg, impl)) != KILN_OK)
        return st;
    if (cg->opt.jit)
        emit_jit_entries(cg, impl);
    return cg->status;
}
