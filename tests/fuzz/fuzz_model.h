/* tests/fuzz/fuzz_model.h: what the model-level fuzz targets share
 * (fuzz_frontend, fuzz_passes, fuzz_codegen).
 *
 * A fuzz input is a model's YAML text, optionally followed by the line
 * FUZZ_WEIGHTS_MARK and the bytes of a safetensors file. The weights are
 * written to `w.safetensors` in a directory of this process's own and the
 * model is read as if it lay there, so `weights: w.safetensors` in the YAML
 * reaches them (any other path names nothing). Models are bounded so that
 * one input costs milliseconds: at most FUZZ_MAX_ELEMENTS elements per
 * tensor and FUZZ_MAX_NODES layers. */
#ifndef KILN_TESTS_FUZZ_MODEL_H
#define KILN_TESTS_FUZZ_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compiler/interp/interp.h"
#include "ir/graph.h"

#define FUZZ_WEIGHTS_MARK "\n#kiln-fuzz-weights\n"
#define FUZZ_MAX_ELEMENTS (INT64_C(1) << 10)
#define FUZZ_MAX_NODES 48

/* Loads the model of a fuzz input, or returns NULL (refused: then the
 * frontend reported at least one error, else the target aborts). */
kiln_graph *fuzz_load(const uint8_t *data, size_t size);

/* Runs the interpreter on g at `batch` with inputs from `seed` (keep_all:
 * every value stays readable); NULL when it fails (a model whose parameters
 * cannot be read, say). */
kiln_interp *fuzz_interpret(const kiln_graph *g, int64_t batch, uint64_t seed, bool keep_all);

/* The largest magnitude among all values of a keep_all run (inputs,
 * parameters, every node's output); infinity when one is not finite. */
double fuzz_magnitude(const kiln_graph *g, const kiln_interp *it);

/* The model inputs fuzz_interpret uses, for the same seed (n floats). */
void fuzz_fill(float *x, size_t n, uint64_t seed);

/* Elements of value v at `batch`. */
size_t fuzz_elements(const kiln_graph *g, kiln_id v, int64_t batch);

/* Whether `got` (n values) matches `ref` within rel * max|ref| + abs_tol
 * (values beyond `limit` in magnitude or not finite in ref are skipped, a
 * finite ref must not give a NaN). Prints the first mismatch to stderr. */
int fuzz_close(const char *what, const double *ref, const double *got, size_t n, double rel, double abs_tol,
               double limit);

#endif
