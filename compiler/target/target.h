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
