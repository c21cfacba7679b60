/* compiler/codegen/target.c: the target table (vector width and GEMM tile
 * per instruction set) and the LLVM target machine for a triple, CPU and
 * feature string. */
#include "cg.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "target_names.inc"

static bool known_name(const char *const *list, const char *name, size_t len)
{
    for (; *list; list++)
        if (strlen(*list) == len && strncmp(*list, name, len) == 0)
            return true;
    return false;
}

/* LLVM aborts deep inside code generation on a CPU it does not know, so the
 * user's --cpu and --features are checked against LLVM's own lists first
 * (target_names.inc). Only the architectures of kiln's target table are
 * accepted: another architecture is KILN_ERR_UNSUPPORTED, an unknown name
 * KILN_ERR_INVALID_ARGUMENT (both reported to d). */
static kiln_status check_target_names(const char *triple, const char *cpu, const char *features, bool check_cpu,
                                      bool check_features, kiln_diag *d)
{
    bool x86 = strncmp(triple, "x86_64", 6) == 0 || strncmp(triple, "amd64", 5) == 0;
    bool arm64 = strncmp(triple, "aarch64", 7) == 0 || strncmp(triple, "arm64", 5) == 0;
    if (!x86 && !arm64) {
        kiln_diag_error(d, (kiln_loc){0}, "target '%s': kiln generates code for x86_64 and aarch64 only", triple);
        return KILN_ERR_UNSUPPORTED;
    }
    const char *const *cpus = x86 ? x86_64_cpus : aarch64_cpus;
    const char *const *feats = x86 ? x86_64_features : aarch64_features;
    if (check_cpu && strcmp(cpu, "generic") != 0 && !known_name(cpus, cpu, strlen(cpu))) {
        kiln_diag_error(d, (kiln_loc){0}, "unknown cpu '%s' for %s, or one without 64-bit code (e.g. %s; 'llc -mtriple=%s -mcpu=help' lists them)",
                        cpu, x86 ? "x86_64" : "aarch64", x86 ? "znver4, skylake-avx512, haswell, x86-64-v3"
                                                              : "cortex-a76, neoverse-v1, apple-m1",
                        x86 ? "x86_64" : "aarch64");
        return KILN_ERR_INVALID_ARGUMENT;
    }
    for (const char *p = features; check_features && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0 && ((*p != '+' && *p != '-') || !known_name(feats, p + 1, len - 1))) {
            kiln_diag_error(d, (kiln_loc){0}, "unknown feature '%.*s' for %s (write +name or -name, e.g. +avx2,+fma)",
                            (int)len, p, x86 ? "x86_64" : "aarch64");
            return KILN_ERR_INVALID_ARGUMENT;
        }
        p += len + (end ? 1 : 0);
    }
    return KILN_OK;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* LLVM reports some impossible configurations (a feature combination it
 * cannot lower) with a fatal error and then aborts. kiln turns that into a
 * clean error message and exit status 1: no core dump, no abort. */
static void on_llvm_fatal_error(const char *reason)
{
    fprintf(stderr, "kiln: error: LLVM cannot generate code for this target configuration: %s\n", reason);
    fflush(stderr);
    _exit(1);
}

static void init_llvm(void)
{
    LLVMInstallFatalErrorHandler(on_llvm_fatal_error);
    LLVMInitializeAllTargetInfos();
    LLVMInitializeAllTargets();
    LLVMInitializeAllTargetMCs();
    LLVMInitializeAllAsmPrinters();
    LLVMInitializeAllAsmParsers();
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c)
        memcpy(c, s, n);
    return c;
}

static LLVMCodeGenOptLevel cg_level(int level)
{
    return level <= 0 ? LLVMCodeGenLevelNone
           : level == 1 ? LLVMCodeGenLevelLess
           : level == 2 ? LLVMCodeGenLevelDefault
                        : LLVMCodeGenLevelAggressive;
}

LLVMTargetMachineRef kiln_cg_machine_clone_tm(const kiln_cg_machine *m)
{
    LLVMTargetRef target;
    char *err = NULL;
    if (LLVMGetTargetFromTriple(m->triple, &target, &err)) {
        LLVMDisposeMessage(err);
        return NULL;
    }
    return LLVMCreateTargetMachine(target, m->triple, m->cpu, m->features, cg_level(m->opt_level), LLVMRelocPIC,
                                   LLVMCodeModelDefault);
}

void kiln_cg_machine_release(kiln_cg_machine *m)
{
    if (!m)
        return;
    if (m->tm)
        LLVMDisposeTargetMachine(m->tm);
    free(m->triple);
    free(m->cpu);
    free(m->features);
    memset(m, 0, sizeof *m);
}

/* The triple, CPU and features opt asks for (the host's where it leaves
 * them out), malloc'd into out; out->host tells whether the triple is the
 * host's. */
static void resolve_names(const kiln_cg_options *opt, kiln_cg_machine *out)
{
    char *host = LLVMGetDefaultTargetTriple(); /* LLVM's: dispose */
    char *host_norm = LLVMNormalizeTargetTriple(host);
    char *want = LLVMNormalizeTargetTriple(opt->triple ? opt->triple : host);
    out->host = strcmp(want, host_norm) == 0;
    out->triple = dup_str(want);
    LLVMDisposeMessage(host);
    LLVMDisposeMessage(host_norm);
    LLVMDisposeMessage(want);

    bool host_cpu = out->host && !opt->cpu;
    if (host_cpu) {
        char *c = LLVMGetHostCPUName(), *f = LLVMGetHostCPUFeatures();
        out->cpu = dup_str(c);
        out->features = dup_str(opt->features ? opt->features : f);
        LLVMDisposeMessage(c);
        LLVMDisposeMessage(f);
    } else {
        out->cpu = dup_str(opt->cpu ? opt->cpu : "generic");
        out->features = dup_str(opt->features ? opt->features : "");
    }
}

/* The target (compiler/target/) of resolved names (m->triple, cpu,
 * features); host_cpu: the CPU is the host's own (its caches are read). */
static void resolve_target(kiln_cg_machine *m, bool host_cpu)
{
    const char *implied = kiln_target_cpu_features(m->cpu);
    char features[sizeof m->row.features];
    kiln_target_effective_features(implied ? implied : "", m->features, features, sizeof features);
    kiln_caches caches;
    bool known = (host_cpu && kiln_target_host_caches(&caches)) || kiln_target_cpu_caches(m->cpu, &caches);
    kiln_target_describe(m->triple, features, known ? &caches : NULL, &m->row);
    m->target = &m->row;
}

bool kiln_cg_target_for(const kiln_cg_options *opt, kiln_target *out)
{
    kiln_cg_options defaults = KILN_CG_OPTIONS_INIT;
    kiln_cg_machine m = {0};
    pthread_once(&init_once, init_llvm);
    if (!opt)
        opt = &defaults;
    resolve_names(opt, &m);
    bool ok = m.triple && m.cpu && m.features;
    if (ok) {
        resolve_target(&m, m.host && !opt->cpu);
        *out = m.row;
    }
    kiln_cg_machine_release(&m);
    return ok;
}

kiln_status kiln_cg_target_for_options(const kiln_cg_options *opt, kiln_target *out, kiln_diag *d)
{
    kiln_cg_options defaults = KILN_CG_OPTIONS_INIT;
    kiln_cg_machine m = {0};
    pthread_once(&init_once, init_llvm);
    if (!opt)
        opt = &defaults;
    resolve_names(opt, &m);
    kiln_status st = m.triple && m.cpu && m.features ? KILN_OK : KILN_ERR_OUT_OF_MEMORY;
    if (st == KILN_OK)
        st = check_target_names(m.triple, m.cpu, m.features, opt->cpu != NULL, opt->features != NULL, d);
    if (st == KILN_OK) {
        resolve_target(&m, m.host && !opt->cpu);
        *out = m.row;
    }
    kiln_cg_machine_release(&m);
    return st;
}

int kiln_cg_layout_block(const kiln_cg_options *opt)
{
    kiln_target t;
    return kiln_cg_target_for(opt, &t) ? t.vector_bits / 32 : 0;
}

kiln_status kiln_cg_machine_create(const kiln_cg_options *opt, kiln_cg_machine *out, kiln_diag *d)
{
    memset(out, 0, sizeof *out);
    pthread_once(&init_once, init_llvm);
    resolve_names(opt, out);
    out->opt_level = opt->opt_level < 0 ? 0 : opt->opt_level > 3 ? 3 : opt->opt_level;
    if (!out->triple || !out->cpu || !out->features) {
        kiln_cg_machine_release(out);
        return KILN_ERR_OUT_OF_MEMORY;
    }

    kiln_status names = check_target_names(out->triple, out->cpu, out->features, opt->cpu != NULL,
                                           opt->features != NULL, d);
    if (names != KILN_OK) {
        kiln_cg_machine_release(out);
        return names;
    }
    LLVMTargetRef target;
    char *err = NULL;
    if (LLVMGetTargetFromTriple(out->triple, &target, &err)) {
        kiln_diag_error(d, (kiln_loc){0}, "target '%s': %s", out->triple, err ? err : "unknown target");
        LLVMDisposeMessage(err);
        kiln_cg_machine_release(out);
        return KILN_ERR_UNSUPPORTED;
    }
    out->tm = LLVMCreateTargetMachine(target, out->triple, out->cpu, out->features, cg_level(out->opt_level),
                                      LLVMRelocPIC, LLVMCodeModelDefault);
    if (!out->tm) {
        kiln_diag_error(d, (kiln_loc){0}, "target '%s': cannot create a target machine for cpu '%s'", out->triple,
                        out->cpu);
        kiln_cg_machine_release(out);
        return KILN_ERR_UNSUPPORTED;
    }
    /* 32-bit targets would need another layout of the info structs. */
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(out->tm);
    unsigned ptr_bytes = LLVMPointerSize(td);
    LLVMDisposeTargetData(td);
    if (ptr_bytes != 8) {
        kiln_diag_error(d, (kiln_loc){0}, "target '%s': only 64-bit targets are supported", out->triple);
        kiln_cg_machine_release(out);
        return KILN_ERR_UNSUPPORTED;
    }
    resolve_target(out, out->host && !opt->cpu);
    /* ELF64 little-endian objects (elf.c merges them): not Mach-O, COFF or big-endian AArch64. */
    out->elf = strncmp(out->triple, "aarch64_be", 10) != 0;
    static const char *const not_elf[] = {"apple", "darwin", "macos", "ios", "windows", "win32", "mingw", "cygwin", "uefi"};
    for (size_t i = 0; i < sizeof not_elf / sizeof not_elf[0]; i++)
        if (strstr(out->triple, not_elf[i]))
            out->elf = false;
    const kiln_caches *c = &out->target->caches;
    snprintf(out->description, sizeof out->description,
             "%s, cpu %s%s, %s (%d x f32), caches L1d %u KiB, L2 %u KiB, L3 %llu MiB (%s)", out->triple, out->cpu,
             out->host && !opt->cpu ? " (the host's)" : "", out->target->name, out->target->vector_bits / 32,
             c->l1d / 1024, c->l2 / 1024, (unsigned long long)(c->l3 >> 20), c->source);
    return KILN_OK;
}
