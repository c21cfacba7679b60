/* tests/fuzz/fuzz_passes.c: libFuzzer target for the optimization passes.
 * The input is a model (fuzz_model.h). A model the frontend accepts goes
 * through every pass with the verifier after each, planned for one of three
 * targets (AVX-512, AVX2, SSE rows, picked by the input's size, with their
 * channel blocks); the passes must succeed or report an error, never leave
 * an invalid graph, and the interpreter must compute the same outputs before
 * and after them, to 1e-5 of the largest magnitude of any value the model
 * computes with (folding batch norm and constants rounds the folded weights
 * to f32, and sums that cancel magnify that); models with a value beyond
 * 1e15 or not finite are not compared. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "compiler/passes/passes.h"
#include "compiler/target/target.h"
#include "fuzz_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const features[] = {"avx,avx2,fma,avx512f,avx512bw,avx512dq,avx512vl", "avx,avx2,fma", ""};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_graph *before = fuzz_load(data, size);
    if (!before)
        return 0;
    kiln_graph *after = before->n_nodes <= FUZZ_MAX_NODES ? fuzz_load(data, size) : NULL;
    if (!after) {
        kiln_graph_destroy(before);
        return 0;
    }
    kiln_target t;
    kiln_target_describe("x86_64-pc-linux-gnu", features[size % 3], NULL, &t);
    kiln_pipeline_options po = {.verify_each = true, .threads_hint = 1 + (int)(size % 2), .target = &t,
                                .layout_block = size % 5 == 0 ? 0 : kiln_target_lanes(&t)};
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_status st = kiln_pipeline_run(after, &po, &d);
    if (st != KILN_OK) {
        if (!kiln_diag_has_errors(&d))
            abort(); /* failed without saying why */
        if (st == KILN_ERR_INTERNAL) {
            kiln_diag_print(&d, stderr);
            abort(); /* an invalid graph after a pass */
        }
    }
    kiln_diag_release(&d);
    const int64_t batch = 2;
    kiln_interp *a = st == KILN_OK ? fuzz_interpret(before, batch, size, true) : NULL;
    kiln_interp *b = a ? fuzz_interpret(after, batch, size, false) : NULL;
    if (a && !b)
        abort(); /* the interpreter ran the model before the passes, not after */
    const double magnitude = a ? fuzz_magnitude(before, a) : 0.0;
    for (size_t k = 0; a && magnitude <= 1e15 && k < before->n_outputs; k++) {
        size_t na = 0, nb = 0;
        const double *ya = kiln_interp_output(a, k, &na), *yb = kiln_interp_output(b, k, &nb);
        if (na != nb || !fuzz_close("output after the passes", ya, yb, na, 0.0, 1e-5 * magnitude + 1e-30, INFINITY))
            abort();
    }
    kiln_interp_destroy(a);
    kiln_interp_destroy(b);
    kiln_graph_destroy(before);
    kiln_graph_destroy(after);
    return 0;
}
