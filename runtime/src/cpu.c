/* cpu.c: whether the running CPU has the instruction-set extensions a
 * compiled model was generated for (kiln_rt_cpu_check). On x86-64 from
 * CPUID, and from XGETBV for the register state the operating system
 * saves (AVX needs the ymm state enabled, AVX-512 the zmm and mask state,
 * AMX the tile state); elsewhere no extension is known. */
#include "kiln/runtime.h"

#include <stdbool.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>

enum { EAX, EBX, ECX, EDX };

/* XCR0 state components */
#define XSTATE_AVX 0x6ull      /* SSE + ymm upper halves */
#define XSTATE_AVX512 0xe6ull  /* + opmask, zmm upper halves, zmm16-31 */
#define XSTATE_AMX 0x60000ull  /* tile config + tile data */

/* LLVM's name, where CPUID reports it, and the OS state it needs. */
static const struct {
    const char *name;
    unsigned leaf, subleaf, reg, bit;
    unsigned long long xstate;
} known[] = {
    {"sse3", 1, 0, ECX, 0, 0},
    {"ssse3", 1, 0, ECX, 9, 0},
    {"sse4.1", 1, 0, ECX, 19, 0},
    {"sse4.2", 1, 0, ECX, 20, 0},
    {"popcnt", 1, 0, ECX, 23, 0},
    {"movbe", 1, 0, ECX, 22, 0},
    {"fma", 1, 0, ECX, 12, XSTATE_AVX},
    {"avx", 1, 0, ECX, 28, XSTATE_AVX},
    {"f16c", 1, 0, ECX, 29, XSTATE_AVX},
    {"bmi", 7, 0, EBX, 3, 0},
    {"avx2", 7, 0, EBX, 5, XSTATE_AVX},
    {"bmi2", 7, 0, EBX, 8, 0},
    {"avx512f", 7, 0, EBX, 16, XSTATE_AVX512},
    {"avx512dq", 7, 0, EBX, 17, XSTATE_AVX512},
    {"avx512ifma", 7, 0, EBX, 21, XSTATE_AVX512},
    {"avx512cd", 7, 0, EBX, 28, XSTATE_AVX512},
    {"avx512bw", 7, 0, EBX, 30, XSTATE_AVX512},
    {"avx512vl", 7, 0, EBX, 31, XSTATE_AVX512},
    {"avx512vbmi", 7, 0, ECX, 1, XSTATE_AVX512},
    {"avx512vbmi2", 7, 0, ECX, 6, XSTATE_AVX512},
    {"gfni", 7, 0, ECX, 8, 0},
    {"vaes", 7, 0, ECX, 9, XSTATE_AVX},
    {"vpclmulqdq", 7, 0, ECX, 10, XSTATE_AVX},
    {"avx512vnni", 7, 0, ECX, 11, XSTATE_AVX512},
    {"avx512bitalg", 7, 0, ECX, 12, XSTATE_AVX512},
    {"avx512vpopcntdq", 7, 0, ECX, 14, XSTATE_AVX512},
    {"amx-bf16", 7, 0, EDX, 22, XSTATE_AMX},
    {"avx512fp16", 7, 0, EDX, 23, XSTATE_AVX512},
    {"amx-tile", 7, 0, EDX, 24, XSTATE_AMX},
    {"amx-int8", 7, 0, EDX, 25, XSTATE_AMX},
    {"avxvnni", 7, 1, EAX, 4, XSTATE_AVX},
    {"avx512bf16", 7, 1, EAX, 5, XSTATE_AVX512},
    {"lzcnt", 0x80000001u, 0, ECX, 5, 0},
};

static unsigned long long xgetbv0(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) /* OSXSAVE */
        return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

/* 1: present, 0: absent, -1: a name this runtime does not know. */
static int has(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strlen(known[i].name) != n || strncmp(known[i].name, name, n) != 0)
            continue;
        unsigned r[4] = {0, 0, 0, 0};
        if (known[i].leaf > __get_cpuid_max(known[i].leaf & 0x80000000u, NULL) ||
            !__get_cpuid_count(known[i].leaf, known[i].subleaf, &r[EAX], &r[EBX], &r[ECX], &r[EDX]))
            return 0;
        if (!(r[known[i].reg] & (1u << known[i].bit)))
            return 0;
        return (xgetbv0() & known[i].xstate) == known[i].xstate ? 1 : 0;
    }
    return -1;
}
#else
static int has(const char *name, size_t n)
{
    (void)name;
    (void)n;
    return -1;
}
#endif

KILN_RT_API kiln_status kiln_rt_cpu_check(const char *features, char *missing, size_t missing_size)
{
    size_t used = 0;
    kiln_status st = KILN_OK;
    if (missing && missing_size)
        missing[0] = '\0';
    for (const char *p = features; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0 && has(p, len) != 1) {
            st = KILN_ERR_UNSUPPORTED;
            if (missing && used + len + 2 < missing_size) {
                if (used)
                    missing[used++] = ',';
                memcpy(missing + used, p, len);
                used += len;
                missing[used] = '\0';
            }
        }
        p = end ? end + 1 : p + len;
    }
    return st;
}
