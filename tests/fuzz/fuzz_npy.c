/* tests/fuzz/fuzz_npy.c: libFuzzer target for the .npy reader.
 * Links: kiln_ir and the source compiler/driver/npy.c; build with clang
 * -fsanitize=fuzzer,address,undefined. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/driver/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_npy a;
    char err[256];
    kiln_status s = kiln_npy_read_memory(data, size, &a, err, sizeof err);
    if (s != KILN_OK) {
        if (a.data || a.count || err[0] == '\0')
            abort();
        return 0;
    }
    size_t count = 1;
    for (int i = 0; i < a.rank; i++)
        count *= (size_t)a.dims[i];
    if (count != a.count || (count > 0) != (a.data != NULL))
        abort();
    volatile float sink = 0;
    for (size_t i = 0; i < a.count; i++)
        sink += a.data[i];
    (void)sink;
    kiln_npy_free(&a);
    return 0;
}
