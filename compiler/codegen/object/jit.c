/* compiler/codegen/object/jit.c: running compiled models in the kiln process
 * through ORC's LLJIT (kiln run, check, bench; the tests).
 *
 * The module is compiled by a target machine like the one kiln_cg_compile
 * set up (host CPU and features, the same optimization level). Symbols the
 * generated code calls resolve to this process: the runtime's functions are
 * defined in the JIT's dylib as absolute symbols (so they need not be exported
 * from the executable), anything else (memcpy, memset) through the process's
 * own symbol table. Nothing is written to disk. */
#include "compiler/codegen/cg.h"

#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/blas.h"
#include "kiln/instance.h"

struct kiln_cg_jit {
    LLVMOrcLLJITRef jit;
    char prefix[256];
};

/* Reports an LLVM error (consumes it). */
static kiln_status jit_error(kiln_diag *d, const char *what, LLVMErrorRef err)
{
    char *msg = LLVMGetErrorMessage(err);
    kiln_diag_error(d, (kiln_loc){0}, "JIT: %s: %s", what, msg);
    LLVMDisposeErrorMessage(msg);
    return KILN_ERR_INTERNAL;
}

#define RT(fn) {#fn, (LLVMOrcExecutorAddress)(uintptr_t)fn}

static kiln_status define_runtime(LLVMOrcLLJITRef jit, LLVMOrcJITDylibRef jd, kiln_diag *d)
{
    static const struct {
        const char *name;
        LLVMOrcExecutorAddress addr;
    } syms[] = {
        RT(kiln_rt_parallel_for),        RT(kiln_rt_pool_size),       RT(kiln_rt_instance_create),
        RT(kiln_rt_instance_prepare),    RT(kiln_rt_instance_destroy), RT(kiln_rt_model_workspace_size),
        RT(kiln_rt_aligned_alloc),       RT(kiln_rt_aligned_free),    RT(kiln_rt_sgemm),
        RT(kiln_rt_checksum),            RT(kiln_rt_map_file),        RT(kiln_rt_unmap_file),
        RT(kiln_rt_blas_set_threads),    RT(kiln_rt_instance_begin),  RT(kiln_rt_instance_parallel_for),
        RT(kiln_rt_instance_last_error),
    };
    enum { N = sizeof syms / sizeof syms[0] };
    LLVMOrcCSymbolMapPair pairs[N];
    for (size_t i = 0; i < N; i++) {
        /* MangleAndIntern returns a retained entry; AbsoluteSymbols takes it. */
        pairs[i].Name = LLVMOrcLLJITMangleAndIntern(jit, syms[i].name);
        pairs[i].Sym.Address = syms[i].addr;
        pairs[i].Sym.Flags.GenericFlags = LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
        pairs[i].Sym.Flags.TargetFlags = 0;
    }
    LLVMOrcMaterializationUnitRef mu = LLVMOrcAbsoluteSymbols(pairs, N);
    LLVMErrorRef err = LLVMOrcJITDylibDefine(jd, mu);
    if (err) {
        LLVMOrcDisposeMaterializationUnit(mu); /* still ours on failure */
        return jit_error(d, "defining the runtime's symbols", err);
    }
    LLVMOrcDefinitionGeneratorRef gen;
    err = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(jit), NULL, NULL);
    if (err)
        return jit_error(d, "searching the process's symbols", err);
    LLVMOrcJITDylibAddGenerator(jd, gen); /* the dylib owns gen */
    return KILN_OK;
}

void kiln_cg_jit_destroy(kiln_cg_jit *j)
{
    if (!j)
        return;
    if (j->jit) {
        LLVMErrorRef err = LLVMOrcDisposeLLJIT(j->jit);
        if (err)
            LLVMConsumeError(err);
    }
    free(j);
}

kiln_status kiln_cg_jit_create(kiln_cg_module *m, kiln_cg_jit **out, kiln_diag *d)
{
    if (out)
        *out = NULL;
    if (!m || !out || !d)
        return KILN_ERR_INVALID_ARGUMENT;
    if (!m->mod || !m->tsctx) {
        kiln_diag_error(d, (kiln_loc){0}, "JIT: the module was not compiled for the JIT (or was already given to it)");
        return KILN_ERR_INVALID_ARGUMENT;
    }
    kiln_cg_jit *j = calloc(1, sizeof *j);
    if (!j)
        return KILN_ERR_OUT_OF_MEMORY;
    snprintf(j->prefix, sizeof j->prefix, "%s", m->g ? m->g->name : "");
    LLVMTargetMachineRef tm = kiln_cg_machine_clone_tm(&m->machine);
    if (!tm) {
        free(j);
        kiln_diag_error(d, (kiln_loc){0}, "JIT: cannot create a target machine for the host");
        return KILN_ERR_INTERNAL;
    }
    /* tm -> jtmb -> builder -> jit: each step takes ownership of the last. */
    LLVMOrcJITTargetMachineBuilderRef jtmb = LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm);
    LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, jtmb);
    LLVMErrorRef err = LLVMOrcCreateLLJIT(&j->jit, builder);
    if (err) {
        j->jit = NULL;
        kiln_cg_jit_destroy(j);
        return jit_error(d, "creating the JIT", err);
    }
    LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(j->jit);
    kiln_status st = define_runtime(j->jit, jd, d);
    if (st != KILN_OK) {
        kiln_cg_jit_destroy(j);
        return st;
    }
    /* The module goes to a thread-safe module, which goes to the JIT. */
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(m->mod, m->tsctx);
    m->mod = NULL;
    err = LLVMOrcLLJITAddLLVMIRModule(j->jit, jd, tsm);
    if (err) {
        kiln_cg_jit_destroy(j);
        return jit_error(d, "adding the module", err);
    }
    *out = j;
    return KILN_OK;
}

static kiln_status lookup(kiln_cg_jit *j, const char *suffix, LLVMOrcExecutorAddress *addr, kiln_diag *d)
{
    char name[300];
    snprintf(name, sizeof name, "%s%s", j->prefix, suffix);
    LLVMErrorRef err = LLVMOrcLLJITLookup(j->jit, addr, name);
    if (err)
        return jit_error(d, name, err);
    return KILN_OK;
}

kiln_status kiln_cg_jit_entry(kiln_cg_jit *j, kiln_cg_entry *out, kiln_diag *d)
{
    if (!j || !out || !d)
        return KILN_ERR_INVALID_ARGUMENT;
    memset(out, 0, sizeof *out);
    LLVMOrcExecutorAddress a[8];
    static const char *const names[8] = {"_create",  "_run_array", "_workspace_size", "_info",
                                         "_destroy", "_run_profiled", "_last_error", "_run_checked_array"};
    for (int i = 0; i < 8; i++) {
        kiln_status st = lookup(j, names[i], &a[i], d);
        if (st != KILN_OK)
            return st;
    }
    /* Addresses of JIT'd functions with exactly these C signatures. */
    out->create = (kiln_status(*)(void **, const kiln_options *))(uintptr_t)a[0];
    out->run_array = (kiln_status(*)(void *, int64_t, const float *const *, float *const *))(uintptr_t)a[1];
    out->workspace_size = (size_t(*)(int64_t))(uintptr_t)a[2];
    out->info = (const kiln_model_info *(*)(void))(uintptr_t)a[3];
    out->destroy = (void (*)(void *))(uintptr_t)a[4];
    out->run_profiled = (kiln_status(*)(void *, int64_t, const float *const *, float *const *, kiln_cg_profile_fn,
                                        void *))(uintptr_t)a[5];
    out->last_error = (const char *(*)(const void *))(uintptr_t)a[6];
    out->run_checked_array = (kiln_status(*)(void *, int64_t, const float *const *, const size_t *, float *const *,
                                             const size_t *))(uintptr_t)a[7];
    return KILN_OK;
}

kiln_status kiln_cg_math_jit(const kiln_cg_options *opt_in, kiln_cg_jit **out,
                             kiln_cg_math_kernel fns[KILN_CG_MATH_COUNT], kiln_diag *d)
{
    if (out)
        *out = NULL;
    if (!out || !fns || !d)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_cg_options opt = KILN_CG_OPTIONS_INIT;
    if (opt_in)
        opt = *opt_in;
    opt.triple = NULL;
    opt.jit = true;
    kiln_cg_module *m = calloc(1, sizeof *m);
    if (!m)
        return KILN_ERR_OUT_OF_MEMORY;
    m->opt = opt;
    kiln_status st = kiln_cg_machine_create(&opt, &m->machine, d);
    if (st != KILN_OK) {
        kiln_cg_module_destroy(m);
        return st;
    }
    m->tsctx = LLVMOrcCreateNewThreadSafeContext();
    m->ctx = LLVMOrcThreadSafeContextGetContext(m->tsctx);
    kiln_cg cg;
    memset(&cg, 0, sizeof cg);
    cg.opt = opt;
    cg.d = d;
    cg.machine = &m->machine;
    cg.prefix = "kiln_math";
    st = kiln_cg_module_begin(&cg, m->ctx, "kiln_math");
    m->mod = cg.u->mod;
    char name[64];
    for (int i = 0; st == KILN_OK && i < KILN_CG_MATH_COUNT; i++) {
        snprintf(name, sizeof name, "kiln_math_%d", i);
        kiln_cg_emit_math_kernel(&cg, (kiln_cg_math_fn)i, name);
        st = cg.status;
    }
    if (cg.u->b)
        LLVMDisposeBuilder(cg.u->b);
    if (st == KILN_OK)
        st = kiln_cg_optimize(m, d);
    kiln_cg_jit *j = NULL;
    if (st == KILN_OK)
        st = kiln_cg_jit_create(m, &j, d);
    kiln_cg_module_destroy(m);
    for (int i = 0; st == KILN_OK && i < KILN_CG_MATH_COUNT; i++) {
        LLVMOrcExecutorAddress a;
        snprintf(name, sizeof name, "kiln_math_%d", i);
        LLVMErrorRef err = LLVMOrcLLJITLookup(j->jit, &a, name);
        if (err)
            st = jit_error(d, name, err);
        else
            fns[i] = (kiln_cg_math_kernel)(uintptr_t)a;
    }
    if (st != KILN_OK) {
        kiln_cg_jit_destroy(j);
        return st;
    }
    *out = j;
    return KILN_OK;
}
