/* tests/fuzz/fuzz_codegen.c: libFuzzer target for code generation. The input
 * is a model (fuzz_model.h). A model the frontend accepts goes through the
 * passes for the host, is compiled by the JIT and run at batch 1 and 3 (1
 * only for a model without the batch) with one and two threads; compilation must succeed or report an error, the run
 * must succeed, and the outputs must match the interpreter's to 1e-3 of the
 * largest magnitude of any value the model computes with (inputs,
 * parameters, intermediate values: f32 sums of large terms that cancel
 * legitimately differ from double ones by that much). Models with a value
 * that is not finite or beyond 1e15 in the double-precision reference are
 * not compared (f32 overflows there, and folding batch norm into a
 * convolution moves where it overflows). This finds crashes, out-of-bounds
 * accesses in the compiler and gross miscompilations; the differential
 * suites hold the tight tolerances. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "compiler/codegen/codegen.h"
#include "compiler/passes/passes.h"
#include "fuzz_model.h"
#include "kiln/runtime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run_and_compare(const kiln_graph *g, const kiln_cg_entry *e, int64_t batch, int threads, uint64_t seed)
{
    kiln_interp *it = fuzz_interpret(g, batch, seed, true);
    if (!it)
        return;
    const double magnitude = fuzz_magnitude(g, it);
    if (!(magnitude <= 1e15)) {
        kiln_interp_destroy(it);
        return;
    }
    float **in = calloc(g->n_inputs + 1, sizeof *in), **out = calloc(g->n_outputs + 1, sizeof *out);
    double *got = NULL;
    if (!in || !out)
        abort();
    for (size_t i = 0; i < g->n_inputs; i++) {
        size_t n = fuzz_elements(g, g->inputs[i], batch);
        in[i] = malloc((n ? n : 1) * sizeof(float));
        fuzz_fill(in[i], n, seed + i);
    }
    for (size_t k = 0; k < g->n_outputs; k++)
        out[k] = malloc((fuzz_elements(g, g->outputs[k], batch) + 1) * sizeof(float));
    kiln_options ko = KILN_OPTIONS_INIT;
    ko.num_threads = threads;
    void *inst = NULL;
    kiln_status st = e->create(&inst, &ko);
    if (st == KILN_OK)
        st = e->run_array(inst, batch, (const float *const *)in, out);
    e->destroy(inst);
    if (st != KILN_OK) {
        fprintf(stderr, "run failed at batch %lld, %d threads: %s\n", (long long)batch, threads,
                kiln_status_string(st));
        abort();
    }
    for (size_t k = 0; k < g->n_outputs; k++) {
        size_t n = 0;
        const double *ref = kiln_interp_output(it, k, &n);
        got = realloc(got, (n ? n : 1) * sizeof *got);
        for (size_t i = 0; i < n; i++)
            got[i] = out[k][i];
        if (!fuzz_close("compiled output", ref, got, n, 0.0, 1e-3 * magnitude + 1e-30, INFINITY))
            abort();
    }
    for (size_t i = 0; i < g->n_inputs; i++)
        free(in[i]);
    for (size_t k = 0; k < g->n_outputs; k++)
        free(out[k]);
    free(in);
    free(out);
    free(got);
    kiln_interp_destroy(it);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_graph *g = fuzz_load(data, size);
    if (!g)
        return 0;
    kiln_graph *ref = g->n_nodes <= FUZZ_MAX_NODES ? fuzz_load(data, size) : NULL;
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_cg_options o = KILN_CG_OPTIONS_INIT;
    o.jit = true;
    kiln_target t;
    kiln_pipeline_options po = {.verify_each = true, .threads_hint = 2, .target = &t};
    kiln_cg_module *m = NULL;
    kiln_cg_jit *j = NULL;
    kiln_cg_entry e;
    if (!ref || kiln_cg_target_for_options(&o, &t, &d) != KILN_OK)
        goto done;
    po.layout_block = size % 2 ? kiln_target_lanes(&t) : 0;
    if (kiln_pipeline_run(g, &po, &d) != KILN_OK)
        goto done; /* fuzz_passes holds the passes to their contract */
    if (kiln_cg_compile(g, &o, &m, &d) != KILN_OK || kiln_cg_jit_create(m, &j, &d) != KILN_OK ||
        kiln_cg_jit_entry(j, &e, &d) != KILN_OK) {
        if (!kiln_diag_has_errors(&d))
            abort(); /* failed without saying why */
        goto done;
    }
    bool batched = false; /* a model without the batch runs at batch 1 only */
    for (size_t i = 0; i < ref->n_inputs; i++)
        batched |= kiln_graph_value(ref, ref->inputs[i])->type.shape.batched;
    for (int64_t batch = 1; batch <= (batched ? 3 : 1); batch += 2)
        for (int threads = 1; threads <= 2; threads++)
            run_and_compare(ref, &e, batch, threads, size + (uint64_t)batch);
done:
    kiln_cg_jit_destroy(j);
    kiln_cg_module_destroy(m);
    kiln_diag_release(&d);
    kiln_graph_destroy(ref);
    kiln_graph_destroy(g);
    return 0;
}
