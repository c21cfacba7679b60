/* compiler/codegen/compile.c: kiln_cg_compile, the code generator's
 * pipeline: check the graph -> target machine -> buffer layout -> one
 * kernel emitter per node, each into the code generation unit with the
 * least code so far (cg.h) -> output copies -> weights -> entry points ->
 * verify the units -> LLVM's optimization pipeline (default<On>), one
 * thread per unit. Also: joining the units into one module, the report. */
#include "cg.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/BitReader.h>
#include <llvm-c/BitWriter.h>
#include <llvm-c/Error.h>
#include <llvm-c/Linker.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double kiln_cg_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *dup_opt(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c)
        memcpy(c, s, n);
    return c;
}

/* Whether node n's kernel reads and writes value v's element type. */
static bool kernel_handles(const kiln_graph *g, const kiln_node *n, kiln_id v)
{
    kiln_dtype dt = g->values[v].type.dtype;
    return dt == KILN_F32 || (kiln_cg_kernel_for(n->op)->dtypes & KILN_CG_DTYPE(dt));
}

/* What this code generator handles: f32 values, plain or blocked by the
 * target's vector lanes (block); a value of another element type where the
 * kernels that write and read it handle that type (kernels/table.c: dtypes),
 * never at the model's edges (the generated API takes float arrays). */
static kiln_status check_supported(const kiln_graph *g, int block, kiln_diag *d)
{
    kiln_status st = KILN_OK;
    for (size_t i = 0; i < g->n_values; i++) {
        const kiln_value *v = &g->values[i];
        if (v->kind == KILN_VALUE_PARAM)
            continue; /* converted to f32 when packed */
        bool edge = v->kind == KILN_VALUE_INPUT;
        for (size_t k = 0; k < g->n_outputs; k++)
            edge |= g->outputs[k] == i;
        if (v->type.dtype != KILN_F32 && edge) {
            kiln_diag_error(d, v->loc, "model %s '%s' has dtype %s: model inputs and outputs are f32 (the generated "
                            "API takes float arrays; a convert or dequantize node can make one)",
                            v->kind == KILN_VALUE_INPUT ? "input" : "output", v->name, kiln_dtype_name(v->type.dtype));
            st = KILN_ERR_UNSUPPORTED;
        } else if (v->type.layout != KILN_LAYOUT_PLAIN && (v->type.shape.rank != 4 || block != v->type.block)) {
            kiln_diag_error(d, v->loc,
                            "value '%s' is nchw%dc: this target's kernels read channel blocks of %d (nchw%dc), of "
                            "rank-4 values only",
                            v->name, v->type.block, block, block);
            st = KILN_ERR_UNSUPPORTED;
        }
    }
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = &g->nodes[i];
        if (!kiln_cg_kernel_for(n->op)->emit) {
            kiln_diag_error(d, n->loc, "layer '%s': no kernel for op %s", n->layer ? n->layer : "?",
                            kiln_op_name(n->op));
            st = KILN_ERR_INTERNAL;
            continue;
        }
        uint32_t data = kiln_node_data_inputs(g, n);
        for (uint32_t k = 0; k <= data; k++) {
            kiln_id v = k < data ? n->inputs[k] : n->output;
            if (!kernel_handles(g, n, v)) {
                kiln_diag_error(d, n->loc, "layer '%s': value '%s' has dtype %s: this code generator's %s kernel "
                                "handles f32 only", n->layer ? n->layer : "?", g->values[v].name,
                                kiln_dtype_name(g->values[v].type.dtype), kiln_op_name(n->op));
                st = KILN_ERR_UNSUPPORTED;
            }
        }
    }
    return st;
}

void kiln_cg_module_destroy(kiln_cg_module *m)
{
    if (!m)
        return;
    for (int u = 1; u < KILN_CG_MAX_UNITS; u++) {
        if (m->unit_mod[u])
            LLVMDisposeModule(m->unit_mod[u]);
        if (m->unit_ctx[u])
            LLVMContextDispose(m->unit_ctx[u]);
        if (m->unit_tm[u])
            LLVMDisposeTargetMachine(m->unit_tm[u]);
    }
    if (m->mod)
        LLVMDisposeModule(m->mod);
    if (m->tsctx)
        LLVMOrcDisposeThreadSafeContext(m->tsctx);
    else if (m->ctx)
        LLVMContextDispose(m->ctx);
    kiln_cg_machine_release(&m->machine);
    kiln_cg_placement_release(&m->layout);
    kiln_cg_blob_release(&m->blob);
    for (size_t k = 0; m->steps && k < m->n_steps; k++)
        free(m->steps[k].kernel);
    free(m->steps);
    free(m->fused);
    free(m->impl);
    free(m->weights_path);
    free(m->cc);
    free(m->rt_libdir);
    free(m);
}

LLVMModuleRef kiln_cg_unit_module(const kiln_cg_module *m, int u) { return u == 0 ? m->mod : m->unit_mod[u]; }

LLVMTargetMachineRef kiln_cg_unit_tm(const kiln_cg_module *m, int u) { return u == 0 ? m->machine.tm : m->unit_tm[u]; }

typedef struct parallel_arg {
    kiln_status (*job)(void *arg, int u);
    void *arg;
    int u;
    kiln_status st;
} parallel_arg;

static void *parallel_main(void *p)
{
    parallel_arg *a = p;
    a->st = a->job(a->arg, a->u);
    return NULL;
}

kiln_status kiln_cg_parallel(int n, kiln_status (*job)(void *arg, int u), void *arg)
{
    parallel_arg args[KILN_CG_MAX_UNITS];
    pthread_t threads[KILN_CG_MAX_UNITS];
    bool started[KILN_CG_MAX_UNITS] = {false};
    n = n < 1 ? 1 : n > KILN_CG_MAX_UNITS ? KILN_CG_MAX_UNITS : n;
    /* LLVM recurses deeply on large functions: the main thread's usual 8 MiB
     * (the default for other threads is 512 KiB on some systems). */
    pthread_attr_t attr;
    bool have_attr = pthread_attr_init(&attr) == 0;
    if (have_attr)
        pthread_attr_setstacksize(&attr, (size_t)8 << 20);
    args[0] = (parallel_arg){job, arg, 0, KILN_OK};
    for (int u = 1; u < n; u++) {
        args[u] = (parallel_arg){job, arg, u, KILN_OK};
        started[u] = pthread_create(&threads[u], have_attr ? &attr : NULL, parallel_main, &args[u]) == 0;
    }
    if (have_attr)
        pthread_attr_destroy(&attr);
    parallel_main(&args[0]);
    kiln_status st = KILN_OK;
    for (int u = 0; u < n; u++) {
        if (started[u])
            pthread_join(threads[u], NULL);
        else if (u > 0)
            parallel_main(&args[u]); /* no thread: here, after the others */
        if (st == KILN_OK)
            st = args[u].st;
    }
    return st;
}

/* One unit's verification and pipeline (a thread of its own: its module,
 * context and target machine are its alone). Messages wait for the caller. */
typedef struct optimize_job {
    kiln_cg_module *m;
    char *msg[KILN_CG_MAX_UNITS];
} optimize_job;

static kiln_status optimize_unit(void *arg, int u)
{
    optimize_job *job = arg;
    LLVMModuleRef mod = kiln_cg_unit_module(job->m, u);
    char *msg = NULL;
    if (LLVMVerifyModule(mod, LLVMReturnStatusAction, &msg)) {
        size_t n = strlen(msg ? msg : "?") + 80;
        job->msg[u] = malloc(n);
        if (job->msg[u])
            snprintf(job->msg[u], n, "internal error: the generated LLVM module does not verify: %.2000s", msg ? msg : "?");
        LLVMDisposeMessage(msg);
        return KILN_ERR_INTERNAL;
    }
    LLVMDisposeMessage(msg);
    char pipeline[32];
    snprintf(pipeline, sizeof pipeline, "default<O%d>", job->m->machine.opt_level);
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMErrorRef err = LLVMRunPasses(mod, pipeline, kiln_cg_unit_tm(job->m, u), po);
    LLVMDisposePassBuilderOptions(po);
    if (err) {
        char *text = LLVMGetErrorMessage(err); /* consumes err */
        size_t n = strlen(text) + 40;
        job->msg[u] = malloc(n);
        if (job->msg[u])
            snprintf(job->msg[u], n, "LLVM optimization failed: %s", text);
        LLVMDisposeErrorMessage(text);
        return KILN_ERR_INTERNAL;
    }
    return KILN_OK;
}

kiln_status kiln_cg_optimize(kiln_cg_module *m, kiln_diag *d)
{
    optimize_job job = {m, {NULL}};
    double t0 = kiln_cg_now();
    kiln_status st = kiln_cg_parallel(m->n_units > 1 ? m->n_units : 1, optimize_unit, &job);
    m->t_optimize = kiln_cg_now() - t0;
    bool said = false;
    for (int u = 0; u < KILN_CG_MAX_UNITS; u++) {
        if (job.msg[u])
            kiln_diag_error(d, (kiln_loc){0}, "%s", job.msg[u]);
        said = said || job.msg[u];
        free(job.msg[u]);
    }
    if (st != KILN_OK && !said)
        kiln_diag_error(d, (kiln_loc){0}, "out of memory");
    return st;
}

/* After optimization: a shared function no unit calls any more (a
 * micro-kernel variant whose calls LLVM proved dead, which it would have
 * deleted were the function private) is deleted. */
static void drop_unused_shared(kiln_cg_module *m)
{
    for (int u = 0; u < m->n_units; u++) {
        LLVMValueRef next;
        for (LLVMValueRef f = LLVMGetFirstFunction(kiln_cg_unit_module(m, u)); f; f = next) {
            next = LLVMGetNextFunction(f);
            if (LLVMIsDeclaration(f) || LLVMGetVisibility(f) != LLVMHiddenVisibility || LLVMGetFirstUse(f))
                continue;
            size_t len;
            const char *name = LLVMGetValueName2(f, &len);
            bool used = false;
            for (int v = 0; v < m->n_units && !used; v++) {
                LLVMValueRef g = v == u ? NULL : LLVMGetNamedFunction(kiln_cg_unit_module(m, v), name);
                used = g && LLVMGetFirstUse(g);
            }
            if (!used)
                LLVMDeleteFunction(f);
        }
    }
}

kiln_status kiln_cg_join_units(kiln_cg_module *m, kiln_diag *d)
{
    for (int u = 1; u < m->n_units; u++) {
        /* Another context: through bitcode, then LLVM's linker (which
         * consumes the parsed module). */
        LLVMMemoryBufferRef bc = LLVMWriteBitcodeToMemoryBuffer(m->unit_mod[u]);
        LLVMModuleRef copy = NULL;
        bool bad = !bc || LLVMParseBitcodeInContext2(m->ctx, bc, &copy);
        if (bc)
            LLVMDisposeMemoryBuffer(bc);
        if (bad || LLVMLinkModules2(m->mod, copy)) {
            kiln_diag_error(d, (kiln_loc){0}, "internal error: cannot link code generation unit %d into one module", u);
            return KILN_ERR_INTERNAL;
        }
        LLVMDisposeModule(m->unit_mod[u]);
        LLVMContextDispose(m->unit_ctx[u]);
        m->unit_mod[u] = NULL;
        m->unit_ctx[u] = NULL;
    }
    /* What was shared between units is private again. */
    for (LLVMValueRef f = LLVMGetFirstFunction(m->mod); f; f = LLVMGetNextFunction(f))
        if (!LLVMIsDeclaration(f) && LLVMGetVisibility(f) == LLVMHiddenVisibility) {
            LLVMSetLinkage(f, LLVMPrivateLinkage);
            LLVMSetVisibility(f, LLVMDefaultVisibility);
        }
    char name[160];
    kiln_cg_blob_name(m->g->name, name, sizeof name);
    LLVMValueRef gv = LLVMGetNamedGlobal(m->mod, name);
    if (gv && LLVMIsDeclaration(gv))
        kiln_cg_blob_define(m->ctx, gv, &m->blob);
    m->n_units = 1;
    return KILN_OK;
}

/* The unit with the least code so far: the next kernel goes there. */
static int lightest_unit(const kiln_cg *cg)
{
    int best = 0;
    for (int u = 1; u < cg->n_units; u++)
        if (cg->units[u].insts < cg->units[best].insts)
            best = u;
    return best;
}

/* The steps as the driver's per-layer profile sees them. */
static kiln_status record_steps(kiln_cg_module *m, const kiln_cg *cg)
{
    m->steps = calloc(cg->n_steps ? cg->n_steps : 1, sizeof *m->steps);
    if (!m->steps)
        return KILN_ERR_OUT_OF_MEMORY;
    for (size_t k = 0; k < cg->n_steps; k++) {
        kiln_cg_step_info *s = &m->steps[k];
        size_t len = 0;
        const char *name = LLVMGetValueName2(cg->steps[k].fn, &len);
        s->first_node = cg->steps[k].first_node;
        s->last_node = cg->steps[k].last_node;
        s->kernel = malloc(len + 1);
        if (!s->kernel)
            return KILN_ERR_OUT_OF_MEMORY;
        memcpy(s->kernel, name, len);
        s->kernel[len] = '\0';
    }
    m->n_steps = cg->n_steps;
    return KILN_OK;
}

/* Each node's implementation into impl: the IR's (kiln_node.impl), or the
 * target's choice under opt (tests and `--passes none` compile graphs the
 * select pass never saw). One that cannot compute its node is an error. */
static kiln_status choose_impls(const kiln_graph *g, const kiln_cg_options *opt, const kiln_target *t,
                                kiln_impl *impl, kiln_diag *d)
{
    kiln_impl *prefer = NULL;
    if (opt->gemm_impl) {
        prefer = calloc(g->n_nodes ? g->n_nodes : 1, sizeof *prefer);
        if (!prefer)
            return KILN_ERR_OUT_OF_MEMORY;
        for (size_t i = 0; i < g->n_nodes; i++)
            prefer[i] = opt->gemm_impl[i] == KILN_CG_GEMM_BLAS        ? KILN_IMPL_BLAS
                        : opt->gemm_impl[i] == KILN_CG_GEMM_GENERATED ? KILN_IMPL_GEMM
                                                                      : KILN_IMPL_NONE;
    }
    kiln_select_options so = {opt->winograd, prefer};
    kiln_status st = KILN_OK;
    for (size_t i = 0; i < g->n_nodes && st == KILN_OK; i++) {
        const kiln_node *n = &g->nodes[i];
        impl[i] = n->impl != KILN_IMPL_NONE ? n->impl : kiln_target_select(t, g, n, &so);
        char why[256];
        if (!kiln_target_impl_applies(t, g, n, impl[i], why, sizeof why)) {
            kiln_diag_error(d, n->loc, "layer '%s' (%s): implementation '%s' cannot compute it: %s",
                            n->layer ? n->layer : "?", kiln_op_name(n->op), kiln_impl_name(impl[i]), why);
            st = KILN_ERR_UNSUPPORTED;
        }
    }
    free(prefer);
    return st;
}

/* The module's copies of opt's strings, its target machine and its LLVM
 * contexts: one per code generation unit (cg.h). The JIT takes one module,
 * in a thread-safe context it owns; objects get opt.jobs units (2 by
 * default, whatever the machine, so the object does not depend on it). */
static kiln_status module_setup(kiln_cg_module *m, const kiln_cg_options *opt_in, kiln_diag *d)
{
    kiln_cg_options opt = m->opt;
    m->weights_path = dup_opt(opt.weights_path);
    m->cc = dup_opt(opt.cc);
    m->rt_libdir = dup_opt(opt.rt_libdir);
    m->opt.weights_path = m->weights_path;
    m->opt.cc = m->cc;
    m->opt.rt_libdir = m->rt_libdir;
    if ((opt.weights_path && !m->weights_path) || (opt_in && opt_in->cc && !m->cc) ||
        (opt_in && opt_in->rt_libdir && !m->rt_libdir))
        return KILN_ERR_OUT_OF_MEMORY;
    kiln_status st = kiln_cg_machine_create(&m->opt, &m->machine, d);
    if (st != KILN_OK)
        return st;
    if (opt.jit && !m->machine.host) {
        kiln_diag_error(d, (kiln_loc){0}, "the JIT runs on the host only, not '%s'", m->machine.triple);
        return KILN_ERR_UNSUPPORTED;
    }
    if (opt.jit) {
        m->tsctx = LLVMOrcCreateNewThreadSafeContext();
        m->ctx = LLVMOrcThreadSafeContextGetContext(m->tsctx);
    } else {
        m->ctx = LLVMContextCreate();
    }
    int units = opt.jit ? 1 : opt.jobs > 0 ? opt.jobs : 2;
    m->n_units_wanted = units > KILN_CG_MAX_UNITS ? KILN_CG_MAX_UNITS : units;
    for (int u = 1; u < m->n_units_wanted; u++) {
        m->unit_ctx[u] = LLVMContextCreate();
        m->unit_tm[u] = kiln_cg_machine_clone_tm(&m->machine);
        if (!m->unit_ctx[u] || !m->unit_tm[u]) {
            kiln_diag_error(d, (kiln_loc){0}, "cannot create LLVM context %d", u);
            return KILN_ERR_INTERNAL;
        }
    }
    return KILN_OK;
}

/* How each node is computed (the select pass's record, else the target's
 * rules with opt's Winograd mode and GEMM preferences, for a graph that did
 * not go through the passes), the scratch each kernel needs, the fusion
 * groups (which values never reach memory) and every value's buffer. */
static kiln_status plan_module(kiln_cg_module *m, kiln_diag *d)
{
    const kiln_graph *g = m->g;
    const size_t nn = g->n_nodes ? g->n_nodes : 1;
    m->impl = calloc(nn, sizeof *m->impl);
    m->fused = calloc(nn, sizeof *m->fused);
    uint64_t *node_scratch = calloc(nn, sizeof *node_scratch);
    bool *stored = malloc((g->n_values ? g->n_values : 1) * sizeof *stored);
    kiln_status st = KILN_ERR_OUT_OF_MEMORY;
    if (!m->impl || !m->fused || !node_scratch || !stored)
        goto done;
    if ((st = choose_impls(g, &m->opt, m->machine.target, m->impl, d)) != KILN_OK)
        goto done;
    for (size_t i = 0; i < g->n_nodes; i++)
        node_scratch[i] = kiln_target_scratch(m->machine.target, g, &g->nodes[i], m->impl[i]);
    if ((st = kiln_cg_fusion_plan(g, m->fused, d)) != KILN_OK)
        goto done;
    for (size_t v = 0; v < g->n_values; v++)
        stored[v] = true;
    for (size_t i = 0; i + 1 < g->n_nodes; i++)
        if (m->fused[i + 1])
            stored[g->nodes[i].output] = false;
    st = kiln_cg_place_buffers(g, m->opt.expose_values, stored, node_scratch, &m->layout, d);
done:
    free(stored);
    free(node_scratch);
    return st;
}

/* Every node's kernel (a fusion group's members with its anchor), each in
 * the lightest unit; copies for the outputs not written in place (a model
 * input, a value listed twice); then the weights and the entry points. */
static void emit_model(kiln_cg_module *m, kiln_cg *cg)
{
    const kiln_graph *g = m->g;
    kiln_cg_epilogue epi;
    for (size_t i = 0; i < g->n_nodes && cg->status == KILN_OK; i++) {
        const kiln_node *n = &g->nodes[i];
        if (m->fused[i])
            continue;
        cg->f.node = n;
        kiln_cg_unit_select(cg, lightest_unit(cg));
        kiln_cg_epi_build(cg, i, &epi);
        cg->f.epi = &epi;
        size_t first_step = cg->n_steps;
        if (cg->status == KILN_OK)
            kiln_cg_kernel_for(n->op)->emit(cg, n);
        cg->f.epi = NULL;
        for (size_t k = first_step; k < cg->n_steps; k++) {
            cg->steps[k].first_node = (uint32_t)i;
            cg->steps[k].last_node = (uint32_t)(i + (size_t)epi.n);
        }
    }
    for (uint32_t k = 0; k < g->n_outputs && cg->status == KILN_OK; k++) {
        const kiln_cg_buffer *b = &m->layout.values[g->outputs[k]];
        if (b->kind != KILN_CG_BUF_OUTPUT || b->index != k) {
            kiln_cg_unit_select(cg, lightest_unit(cg));
            kiln_cg_emit_output_copy(cg, g->outputs[k], k);
        }
    }
    kiln_cg_unit_select(cg, 0);
    if (cg->status == KILN_OK) {
        LLVMValueRef weights = m->opt.weights == KILN_CG_WEIGHTS_EMBED ? kiln_cg_blob_global(cg) : NULL;
        /* Only NAME_create's check of an external file reads it (46 MB of
         * FNV-1a is 0.06 s). */
        m->checksum = m->opt.weights == KILN_CG_WEIGHTS_EXTERNAL ? kiln_cg_blob_checksum(&m->blob) : 0;
        kiln_cg_emit_entry(cg, weights, m->checksum);
    }
}

kiln_status kiln_cg_compile(const kiln_graph *g, const kiln_cg_options *opt_in, kiln_cg_module **out, kiln_diag *d)
{
    if (out)
        *out = NULL;
    if (!g || !out || !d)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_cg_options opt = KILN_CG_OPTIONS_INIT;
    if (opt_in)
        opt = *opt_in;

    kiln_status st = kiln_ir_verify(g, d);
    if (st != KILN_OK)
        return KILN_ERR_INTERNAL;
    if ((st = check_supported(g, kiln_cg_layout_block(&opt), d)) != KILN_OK)
        return st;

    kiln_cg_module *m = calloc(1, sizeof *m);
    if (!m)
        return KILN_ERR_OUT_OF_MEMORY;
    double t_start = kiln_cg_now();
    m->g = g;
    m->opt = opt;
    if ((st = module_setup(m, opt_in, d)) != KILN_OK || (st = plan_module(m, d)) != KILN_OK)
        goto fail;

    kiln_cg cg;
    memset(&cg, 0, sizeof cg);
    cg.g = g;
    cg.opt = m->opt;
    cg.d = d;
    cg.machine = &m->machine;
    cg.layout = &m->layout;
    cg.blob = &m->blob;
    cg.prefix = g->name;
    for (int u = 0; u < m->n_units_wanted; u++) {
        st = kiln_cg_module_begin(&cg, u ? m->unit_ctx[u] : m->ctx, g->name);
        if (u)
            m->unit_mod[u] = cg.units[u].mod;
        else
            m->mod = cg.units[0].mod;
        m->n_units = m->n_units_built = cg.n_units;
        if (st != KILN_OK)
            goto cleanup;
    }
    kiln_cg_unit_select(&cg, 0);
    cg.fused = m->fused;
    cg.impl = m->impl;
    emit_model(m, &cg);
    st = cg.status;
    m->t_ir = kiln_cg_now() - t_start;
    if (st == KILN_OK && (st = record_steps(m, &cg)) != KILN_OK)
        kiln_diag_error(d, (kiln_loc){0}, "out of memory");
    if (st == KILN_OK)
        st = kiln_cg_optimize(m, d);
    if (st == KILN_OK && m->n_units > 1)
        drop_unused_shared(m);
    if (st == KILN_OK && m->opt.weights == KILN_CG_WEIGHTS_EMBED && m->n_units == 1) {
        /* LLVM holds its own copy now (with units, the emitter copies it). */
        free(m->blob.data);
        m->blob.data = NULL;
        m->blob.cap = 0;
    }
cleanup:
    for (int u = 0; u < cg.n_units; u++)
        if (cg.units[u].b)
            LLVMDisposeBuilder(cg.units[u].b);
    free(cg.steps);
    if (st != KILN_OK)
        goto fail;
    *out = m;
    return KILN_OK;
fail:
    kiln_cg_module_destroy(m);
    return st;
}

kiln_status kiln_cg_value_buffer(const kiln_cg_module *m, kiln_id v, kiln_cg_buffer *out)
{
    if (!m || !out || v >= m->layout.n_values)
        return KILN_ERR_INVALID_ARGUMENT;
    *out = m->layout.values[v];
    return KILN_OK;
}

void kiln_cg_footprint(const kiln_cg_module *m, size_t *workspace_fixed, size_t *workspace_per_batch, size_t *weights)
{
    if (workspace_fixed)
        *workspace_fixed = m ? (size_t)m->layout.fixed_bytes : 0;
    if (workspace_per_batch)
        *workspace_per_batch = m ? (size_t)m->layout.per_batch_bytes : 0;
    if (weights)
        *weights = m ? m->blob.size : 0;
}

void kiln_cg_weight_bytes_by_precision(const kiln_cg_module *m, size_t out[KILN_PREC_COUNT])
{
    for (int p = 0; p < KILN_PREC_COUNT; p++)
        out[p] = m ? m->blob.precision_bytes[p] : 0;
}

const char *kiln_cg_target_description(const kiln_cg_module *m) { return m ? m->machine.description : ""; }

const char *kiln_cg_required_features(const kiln_cg_module *m) { return m && m->machine.target ? m->machine.target->features : ""; }

size_t kiln_cg_step_count(const kiln_cg_module *m) { return m ? m->n_steps : 0; }

const kiln_cg_step_info *kiln_cg_step_at(const kiln_cg_module *m, size_t k)
{
    return m && k < m->n_steps ? &m->steps[k] : NULL;
}

void kiln_cg_get_report(const kiln_cg_module *m, kiln_cg_report *out)
{
    memset(out, 0, sizeof *out);
    if (!m)
        return;
    out->code_bytes = (size_t)m->code_bytes;
    out->data_bytes = (size_t)m->data_bytes;
    out->weight_bytes = m->blob.size;
    out->workspace_fixed = (size_t)m->layout.fixed_bytes;
    out->workspace_per_batch = (size_t)m->layout.per_batch_bytes;
    out->planned = m->layout.planned;
    out->lower_bound_bytes = m->g ? (size_t)m->g->mem_lower_bound_bytes : 0;
    out->scratch_shared = (size_t)m->layout.scratch_shared_bytes;
    out->scratch_largest = (size_t)m->layout.scratch_largest_bytes;
    out->steps = m->n_steps;
    out->units = m->n_units_built;
    out->time_ir = m->t_ir;
    out->time_optimize = m->t_optimize;
    out->time_machine_code = m->t_machine;
    for (size_t i = 0; m->g && m->fused && i < m->g->n_nodes; i++)
        out->fused_nodes += m->fused[i];
}

kiln_cg_gemm_impl kiln_cg_gemm_used(const kiln_cg_module *m, kiln_id node)
{
    if (!m || !m->g || !m->impl || node >= m->g->n_nodes || !kiln_cg_gemm_candidate(m->g, &m->g->nodes[node]))
        return KILN_CG_GEMM_AUTO;
    return m->impl[node] == KILN_IMPL_BLAS ? KILN_CG_GEMM_BLAS : KILN_CG_GEMM_GENERATED;
}

kiln_impl kiln_cg_impl_used(const kiln_cg_module *m, kiln_id node)
{
    return m && m->g && m->impl && node < m->g->n_nodes ? m->impl[node] : KILN_IMPL_NONE;
}
