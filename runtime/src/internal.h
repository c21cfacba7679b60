/* internal.h: what the runtime's source files share; nothing here is
 * exported (hidden visibility). */
#ifndef KILN_RT_INTERNAL_H
#define KILN_RT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/runtime.h"

#if defined(__GNUC__) || defined(__clang__)
#define KILN_RT_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define KILN_RT_HIDDEN __attribute__((visibility("hidden")))
#else
#define KILN_RT_PRINTF(fmt, args)
#define KILN_RT_HIDDEN
#endif

/* kiln_rt_map_file, with the reason of a failure written to why (why_size
 * bytes, NUL-terminated; "" on success). */
KILN_RT_HIDDEN kiln_status kiln_rt_map_file_why(const char *path, size_t expected_size, uint64_t expected_checksum,
                                                const void **data, void **handle, char *why, size_t why_size);

#endif
