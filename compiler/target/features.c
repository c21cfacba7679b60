/* compiler/target/features.c: the extensions a CPU name implies and the
 * ones a compiled model requires (target.h). */
#include "target.h"

#include <string.h>

#include "cpu_features.inc"

const char *kiln_target_cpu_features(const char *cpu)
{
    for (size_t i = 0; cpu && i < sizeof cpu_features / sizeof cpu_features[0]; i++)
        if (strcmp(cpu_features[i].cpu, cpu) == 0)
            return cpu_features[i].features;
    return NULL;
}

const char *const *kiln_target_checkable_features(void) { return checkable_features; }

/* Whether the n bytes at name are one of the list's entries. */
static bool list_has_n(const char *list, const char *name, size_t n)
{
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        p = end ? end + 1 : p + len;
    }
    return false;
}

bool kiln_target_list_has(const char *list, const char *name) { return list_has_n(list, name, strlen(name)); }

/* The state of `feature` after the implied list and the feature string:
 * the last +name / -name in the string wins. */
static bool enabled(const char *feature, const char *implied, const char *string)
{
    bool on = kiln_target_list_has(implied, feature);
    size_t n = strlen(feature);
    for (const char *p = string; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n + 1 && (p[0] == '+' || p[0] == '-') && strncmp(p + 1, feature, n) == 0)
            on = p[0] == '+';
        p = end ? end + 1 : p + len;
    }
    return on;
}

bool kiln_target_effective_features(const char *implied, const char *feature_string, char *out, size_t size)
{
    size_t used = 0;
    bool fits = size > 0;
    if (size > 0)
        out[0] = '\0';
    for (const char *const *f = checkable_features; *f; f++) {
        if (!enabled(*f, implied, feature_string))
            continue;
        size_t len = strlen(*f) + (used ? 1 : 0);
        if (used + len + 1 > size) {
            fits = false;
            continue;
        }
        if (used)
            out[used++] = ',';
        memcpy(out + used, *f, strlen(*f) + 1);
        used += strlen(*f);
    }
    return fits;
}
