/* tests/fuzz/fuzz_safetensors.c: libFuzzer target for the safetensors reader.
 * Links: kiln_frontend, kiln_ir; build with clang -fsanitize=fuzzer,address,undefined.
 * Every input must be either refused with exactly one error or accepted with
 * tensors whose data lies inside the input (ASan checks every byte read). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/frontend/safetensors.h"
#include "ir/convert.h"
#include "ir/diag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_st_file *f = NULL;
    kiln_status s = kiln_st_open_memory(data, size, "fuzz.safetensors", &f, &d);
    if (s != KILN_OK) {
        if (f != NULL || d.errors != 1)
            abort();
        kiln_diag_release(&d);
        return 0;
    }
    for (size_t i = 0; i < kiln_st_count(f); i++) {
        const kiln_st_tensor *t = kiln_st_at(f, i);
        if (kiln_st_find(f, t->name) != t)
            abort();
        const uint8_t *p = t->data;
        if (t->nbytes && (p < data || p + t->nbytes > data + size))
            abort();
        if (t->supported) {
            /* convert up to 64 elements (reads every byte of them) */
            size_t esize = kiln_dtype_size(t->dtype);
            size_t n = esize ? t->nbytes / esize : 0;
            if (n > 64)
                n = 64;
            float out[64];
            double outd[64];
            kiln_dtype_to_f32(t->dtype, t->data, n, out);
            kiln_dtype_to_f64(t->dtype, t->data, n, outd);
        }
    }
    kiln_st_close(f);
    kiln_diag_release(&d);
    return 0;
}
