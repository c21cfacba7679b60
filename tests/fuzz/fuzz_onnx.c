/* tests/fuzz/fuzz_onnx.c: libFuzzer target for the ONNX importer (`kiln
 * import`). Links: kiln_onnx, kiln_frontend, kiln_ir; build with clang
 * -fsanitize=fuzzer,address,undefined (KILN_FUZZ=ON).
 *
 * Whatever the bytes, the import must return without a crash, a leak or a
 * read out of bounds, and consistently: a model with its YAML and no
 * problem, or a refusal with at least one problem line. When the imported
 * model has no weights, kiln's YAML frontend must accept the text as it is
 * (the importer writes only what kiln reads). tools/fuzz.sh seeds it with
 * tests/fuzz/corpus/onnx and the conformance suite's models. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "compiler/frontend/frontend.h"
#include "compiler/frontend/onnx/onnx.h"
#include "ir/diag.h"
#include "ir/graph.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* No external data (no directory), and constants small enough for the
     * fuzzer's memory. */
    kiln_onnx_options opt = {.model_name = "fuzz", .weights_ref = "fuzz.safetensors", .max_elements = 1 << 20};
    kiln_onnx_result *r = NULL;
    kiln_status st = kiln_onnx_import(data, size, &opt, &r);
    if (st == KILN_ERR_OUT_OF_MEMORY) {
        if (r)
            abort();
        return 0;
    }
    if (!r)
        abort();
    if (st == KILN_OK) {
        if (!r->yaml || r->n_problems != 0)
            abort();
        if (r->n_tensors == 0) {
            kiln_diag d;
            kiln_diag_init(&d);
            kiln_graph *g = NULL;
            kiln_frontend_options fo = {.max_elements = INT64_C(1) << 20};
            kiln_status ls = kiln_frontend_load_yaml_text_opts(r->yaml, r->yaml_len, "/nonexistent-kiln-fuzz/m.yaml",
                                                               &fo, &g, &d);
            /* A shape past the frontend's element limit is the only refusal allowed. */
            if (ls != KILN_OK && ls != KILN_ERR_SHAPE)
                abort();
            kiln_graph_destroy(g);
            kiln_diag_release(&d);
        }
    } else if (r->n_problems == 0 || r->yaml) {
        abort();
    }
    kiln_onnx_result_destroy(r);
    return 0;
}
