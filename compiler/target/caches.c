/* compiler/target/caches.c: cache sizes of the host (sysfs), of named CPUs
 * (a table of the processors kiln is tuned on and their relatives), and
 * conservative defaults (target.h). The code generator sizes its blocking
 * from these: a K block of the GEMM's packed B fills half of L1, the
 * column block of a large dense layer half of L2. */
#include "target.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KB 1024u
#define MB (1024u * 1024u)

/* Per core L1d and L2, the L3 of a typical part (vendor data sheets). */
static const struct {
    const char *cpu;
    uint32_t l1d, l2;
    uint64_t l3;
} table[] = {
    {"haswell", 32 * KB, 256 * KB, 8 * MB},
    {"broadwell", 32 * KB, 256 * KB, 8 * MB},
    {"skylake", 32 * KB, 256 * KB, 8 * MB},
    {"skylake-avx512", 32 * KB, 1 * MB, 32 * MB},
    {"cascadelake", 32 * KB, 1 * MB, 32 * MB},
    {"cooperlake", 32 * KB, 1 * MB, 32 * MB},
    {"icelake-client", 48 * KB, 512 * KB, 8 * MB},
    {"rocketlake", 48 * KB, 512 * KB, 16 * MB},
    {"tigerlake", 48 * KB, 1280 * KB, 12 * MB},
    {"icelake-server", 48 * KB, 1280 * KB, 48 * MB},
    {"sapphirerapids", 48 * KB, 2 * MB, 64 * MB},
    {"emeraldrapids", 48 * KB, 2 * MB, 64 * MB},
    {"graniterapids", 48 * KB, 2 * MB, 64 * MB},
    {"alderlake", 48 * KB, 1280 * KB, 24 * MB},
    {"raptorlake", 48 * KB, 2 * MB, 32 * MB},
    {"znver1", 32 * KB, 512 * KB, 8 * MB},
    {"znver2", 32 * KB, 512 * KB, 16 * MB},
    {"znver3", 32 * KB, 512 * KB, 32 * MB},
    {"znver4", 32 * KB, 1 * MB, 32 * MB},
    {"znver5", 48 * KB, 1 * MB, 32 * MB},
    /* the portable levels: what every CPU of the level has, roughly */
    {"x86-64", 32 * KB, 256 * KB, 4 * MB},
    {"x86-64-v2", 32 * KB, 256 * KB, 4 * MB},
    {"x86-64-v3", 32 * KB, 256 * KB, 8 * MB},
    {"x86-64-v4", 32 * KB, 1 * MB, 16 * MB},
    {"neoverse-n1", 64 * KB, 1 * MB, 32 * MB},
    {"neoverse-v1", 64 * KB, 1 * MB, 32 * MB},
    {"neoverse-n2", 64 * KB, 1 * MB, 32 * MB},
    {"apple-m1", 128 * KB, 4 * MB, 8 * MB},
};

bool kiln_target_cpu_caches(const char *cpu, kiln_caches *out)
{
    for (size_t i = 0; cpu && i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].cpu, cpu) == 0) {
            *out = (kiln_caches){table[i].l1d, table[i].l2, table[i].l3, "cpu table"};
            return true;
        }
    return false;
}

void kiln_target_default_caches(int vector_bits, kiln_caches *out)
{
    *out = (kiln_caches){32 * KB, vector_bits >= 512 ? 1 * MB : 256 * KB, 8 * MB, "default"};
}

/* "48K", "2048K", "32M" -> bytes; 0 if unreadable. */
static uint64_t read_size(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char buf[32] = {0};
    bool ok = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    if (!ok)
        return 0;
    char *end;
    unsigned long long v = strtoull(buf, &end, 10);
    if (end == buf || v == 0)
        return 0;
    return *end == 'K' ? v * KB : *end == 'M' ? v * MB : *end == 'G' ? v * 1024ull * MB : v;
}

static bool read_text(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(buf, (int)size, f) != NULL;
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    return ok;
}

bool kiln_target_host_caches(kiln_caches *out)
{
    kiln_caches c = {0, 0, 0, "host"};
    for (int i = 0; i < 8; i++) {
        char path[128], level[8], type[32];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        if (!read_text(path, level, sizeof level))
            break;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
        if (!read_text(path, type, sizeof type) || strcmp(type, "Instruction") == 0)
            continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        uint64_t size = read_size(path);
        if (strcmp(level, "1") == 0 && size <= UINT32_MAX)
            c.l1d = (uint32_t)size;
        else if (strcmp(level, "2") == 0 && size <= UINT32_MAX)
            c.l2 = (uint32_t)size;
        else if (strcmp(level, "3") == 0)
            c.l3 = size;
    }
    if (c.l1d < 4 * KB || c.l2 < c.l1d)
        return false;
    if (c.l3 == 0)
        c.l3 = c.l2;
    *out = c;
    return true;
}
