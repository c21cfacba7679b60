/* tests/fuzz/fuzz_frontend.c: libFuzzer target for the YAML frontend.
 * Links: kiln_frontend, kiln_ir; build with clang -fsanitize=fuzzer,address,undefined.
 * Every input must be either refused with at least one error and no graph, or
 * accepted with a graph that passes the verifier and no error. The file name
 * lies in a directory that does not exist, so relative weights paths in the
 * input never reach a real file; a small element limit keeps the memory of
 * random-initialized parameters bounded. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "compiler/frontend/frontend.h"
#include "ir/diag.h"
#include "ir/graph.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_graph *g = NULL;
    /* A small tensor limit keeps random-initialized parameters within the fuzzer's memory. */
    kiln_frontend_options opt = {.max_elements = INT64_C(1) << 20};
    kiln_status s = kiln_frontend_load_yaml_text_opts((const char *)data, size, "/nonexistent-kiln-fuzz/model.yaml",
                                                      &opt, &g, &d);
    if (s != KILN_OK) {
        if (g != NULL || !kiln_diag_has_errors(&d))
            abort();
    } else {
        if (g == NULL || kiln_diag_has_errors(&d))
            abort();
        kiln_diag v;
        kiln_diag_init(&v);
        if (kiln_ir_verify(g, &v) != KILN_OK)
            abort();
        kiln_diag_release(&v);
    }
    kiln_graph_destroy(g);
    kiln_diag_release(&d);
    return 0;
}
