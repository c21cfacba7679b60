/* compiler/codegen/target.c: the target table (vector width and GEMM tile
 * per instruction set) and the LLVM target machine for a triple, CPU and
 * feature string. */
#include "cg.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The kernels read these values; adding a target is adding a row (and a rule
 * in pick_target). */
/* The GEMM micro-kernel keeps mr x nr vector accumulators in registers, plus
 * nr vectors of B and a broadcast of A: AVX2 6 x 2 ymm = 12 of 16 registers
 * (a 6 x 16 tile); AVX-512 14 x 2 zmm = 28 of 32 (14 x 32; the broadcasts of
 * A fold into the FMAs' memory operands); NEON 8 x 3 q = 24 of 32 (8 x 12).
 * kc: a kc x (nr * lanes) slice of packed B is 16 KiB (AVX2, NEON) or 24 KiB
 * (AVX-512), half an L1 data cache, reused by every row tile. */
static const kiln_cg_target targets[] = {
    /* name      bits  mr  nr   kc  gemv  native masks */
    {"avx512", 512, 14, 2, 192, 4, true},
    {"avx2", 256, 6, 2, 256, 4, true}, /* vmaskmovps */
    {"sse", 128, 4, 2, 256, 4, false},
    {"neon", 128, 8, 3, 256, 2, false},
    {"generic", 128, 4, 2, 256, 4, false},
};

enum { T_AVX512, T_AVX2, T_SSE, T_NEON, T_GENERIC };

/* CPUs that imply a vector width when no feature string is given. */
static const struct {
    const char *cpu;
    int target;
} cpu_table[] = {
    {"skylake-avx512", T_AVX512}, {"cascadelake", T_AVX512}, {"cooperlake", T_AVX512}, {"cannonlake", T_AVX512},
    {"icelake-client", T_AVX512}, {"icelake-server", T_AVX512}, {"tigerlake", T_AVX512},
    {"rocketlake", T_AVX512}, {"sapphirerapids", T_AVX512}, {"emeraldrapids", T_AVX512},
    {"graniterapids", T_AVX512}, {"graniterapids-d", T_AVX512}, {"znver4", T_AVX512}, {"znver5", T_AVX512},
    {"x86-64-v4", T_AVX512}, {"knl", T_AVX512}, {"knm", T_AVX512},
    {"haswell", T_AVX2}, {"broadwell", T_AVX2}, {"skylake", T_AVX2}, {"alderlake", T_AVX2},
    {"raptorlake", T_AVX2}, {"meteorlake", T_AVX2}, {"arrowlake", T_AVX2}, {"gracemont", T_AVX2},
    {"znver1", T_AVX2}, {"znver2", T_AVX2}, {"znver3", T_AVX2}, {"x86-64-v3", T_AVX2}, {"bdver4", T_AVX2},
};

/* True when the comma-separated feature list enables `name` ("+name"). */
static bool has_feature(const char *features, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = features; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n + 1 && p[0] == '+' && strncmp(p + 1, name, n) == 0)
            return true;
        p = end ? end + 1 : p + len;
    }
    return false;
}

static const kiln_cg_target *pick_target(const char *triple, const char *cpu, const char *features)
{
    bool x86 = strncmp(triple, "x86_64", 6) == 0 || strncmp(triple, "amd64", 5) == 0;
    bool arm64 = strncmp(triple, "aarch64", 7) == 0 || strncmp(triple, "arm64", 5) == 0;
    if (arm64)
        return &targets[T_NEON];
    if (!x86)
        return &targets[T_GENERIC];
    if (features && *features)
        return has_feature(features, "avx512f")                               ? &targets[T_AVX512]
               : has_feature(features, "avx2") && has_feature(features, "fma") ? &targets[T_AVX2]
                                                                                : &targets[T_SSE];
    for (size_t i = 0; cpu && i < sizeof cpu_table / sizeof cpu_table[0]; i++)
        if (strcmp(cpu_table[i].cpu, cpu) == 0)
            return &targets[cpu_table[i].target];
    return &targets[T_SSE];
}

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

const kiln_cg_target *kiln_cg_target_for(const kiln_cg_options *opt)
{
    kiln_cg_options defaults = KILN_CG_OPTIONS_INIT;
    kiln_cg_machine m = {0};
    pthread_once(&init_once, init_llvm);
    resolve_names(opt ? opt : &defaults, &m);
    const kiln_cg_target *t = m.triple && m.cpu && m.features ? pick_target(m.triple, m.cpu, m.features) : NULL;
    kiln_cg_machine_release(&m);
    return t;
}

int kiln_cg_layout_block(const kiln_cg_options *opt)
{
    const kiln_cg_target *t = kiln_cg_target_for(opt);
    return t ? t->vector_bits / 32 : 0;
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
    out->target = pick_target(out->triple, out->cpu, out->features);
    /* ELF64 little-endian objects (elf.c merges them): not Mach-O, COFF or big-endian AArch64. */
    out->elf = strncmp(out->triple, "aarch64_be", 10) != 0;
    static const char *const not_elf[] = {"apple", "darwin", "macos", "ios", "windows", "win32", "mingw", "cygwin", "uefi"};
    for (size_t i = 0; i < sizeof not_elf / sizeof not_elf[0]; i++)
        if (strstr(out->triple, not_elf[i]))
            out->elf = false;
    snprintf(out->description, sizeof out->description, "%s, cpu %s, %s (%d x f32)", out->triple, out->cpu,
             out->target->name, out->target->vector_bits / 32);
    return KILN_OK;
}
