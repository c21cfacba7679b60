/* compiler/target/target.h: what kiln knows about processors without LLVM:
 * the instruction-set extensions a CPU name implies, the extensions a
 * compiled model requires of the CPU it runs on, and cache sizes (of a named
 * CPU, or read from the host). The passes and the code generator read this;
 * only compiler/codegen/ turns it into an LLVM target machine.
 *
 * Feature names are LLVM's ("avx2", "avx512f", "amx-tile"); lists are
 * comma-separated without signs ("avx,avx2,fma"); a feature *string* is
 * LLVM's "+a,-b" form. */
#ifndef KILN_TARGET_H
#define KILN_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Cache sizes in bytes: per core for L1 data and L2, the whole L3. */
typedef struct kiln_caches {
    uint32_t l1d, l2;
    uint64_t l3;
    const char *source; /* where they come from: "host", "cpu table", "default" (static text) */
} kiln_caches;

/* What the kernels may depend on about a target, as values (rows.c):
 * kernels read a kiln_target; nothing else in the code generator tests for
 * an instruction set. */
typedef struct kiln_target {
    const char *name;       /* the row: "avx512", "avx2", "sse", "neon", "generic" */
    int vector_bits;        /* width of the f32 vectors the kernels use */
    int gemm_mr;            /* GEMM micro-kernel: rows ... */
    int gemm_nr;            /* ... times vectors; one packed B panel is gemm_nr vectors wide */
    int gemm_kc;            /* K block: a kc x panel slice of B fills half of L1 (from the caches) */
    int gemv_panels;        /* panels the one-row (batch 1) kernel streams at once */
    bool native_masks;      /* masked loads/stores are single instructions */
    double winograd_margin; /* AUTO picks Winograd under this fraction of the implicit GEMM's estimate */
    kiln_caches caches;     /* of the CPU compiled for (the host's, the table's, or defaults) */
    char features[512];     /* the extensions the code may use (NAME_create checks them) */
} kiln_target;

/* f32 lanes of the target's vectors: the channel block of the blocked layout. */
static inline int kiln_target_lanes(const kiln_target *t) { return t->vector_bits / 32; }

/* The target for a triple (its architecture) whose code may use the
 * extensions in `features` (a list), with its blocking sized for `caches`
 * (NULL: conservative defaults for its vector width). */
void kiln_target_describe(const char *triple, const char *features, const kiln_caches *caches, kiln_target *out);

/* The extensions an x86-64 CPU name implies (as LLVM sees them), or NULL
 * for a name this table does not hold ("generic", another architecture). */
const char *kiln_target_cpu_features(const char *cpu);

/* The extensions code for (implied list, feature string) may use: the
 * implied list with the string's +name / -name applied in order, filtered to
 * the extensions a kernel can contain. Written to out (always terminated;
 * false if it did not fit). */
bool kiln_target_effective_features(const char *implied, const char *feature_string, char *out, size_t size);

/* Whether a list holds `name`. */
bool kiln_target_list_has(const char *list, const char *name);

/* The extensions kiln checks at run time (NULL-terminated): every name
 * kiln_target_effective_features can return. */
const char *const *kiln_target_checkable_features(void);

/* Cache sizes of a named CPU from kiln's table; false when the table does
 * not know it. */
bool kiln_target_cpu_caches(const char *cpu, kiln_caches *out);
/* Cache sizes of the machine this runs on (Linux sysfs); false when they
 * cannot be read. */
bool kiln_target_host_caches(kiln_caches *out);
/* Conservative sizes for a target whose CPU is not known, by the width of
 * its vectors. */
void kiln_target_default_caches(int vector_bits, kiln_caches *out);

#endif
