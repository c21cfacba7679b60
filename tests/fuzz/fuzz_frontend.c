/* tests/fuzz/fuzz_frontend.c: libFuzzer target for the YAML frontend and
 * the weights reader behind it. The input is a model and, optionally, its
 * safetensors weights (fuzz_model.h). Every input must be either refused
 * with at least one error and no graph, or accepted with a graph that passes
 * the verifier and no error. A small element limit keeps the memory of
 * random-initialized parameters bounded. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_graph_destroy(fuzz_load(data, size));
    return 0;
}
