/* compiler/interp/interp.h: the reference interpreter. It evaluates an IR
 * graph op by op in double precision, whatever the values' dtypes, with the
 * semantics of FORMAT.md (PyTorch's). It is the oracle for every numerical
 * test and for `kiln check`: clarity and correctness before speed.
 * Values are logical tensors: a value's layout (ir/type.h) says how compiled
 * code stores it, and the interpreter ignores it (reorder is a copy).
 *
 * Usage:
 *   kiln_interp *it;
 *   kiln_interp_create(g, batch, NULL, &it);
 *   kiln_interp_set_input(it, 0, image);
 *   kiln_interp_run(it, &diag);
 *   const double *y = kiln_interp_output(it, 0, &count);
 *   kiln_interp_destroy(it);
 *
 * Ownership: the interpreter borrows `g` (which must outlive it and must not
 * change while it lives) and owns every buffer it returns; a returned pointer
 * stays valid until the next kiln_interp_run or kiln_interp_destroy.
 * Threads: one thread per interpreter at a time; separate interpreters are
 * independent. */
#ifndef KILN_INTERP_INTERP_H
#define KILN_INTERP_INTERP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/diag.h"
#include "ir/graph.h"
#include "kiln/status.h"

typedef struct kiln_interp kiln_interp;

typedef struct kiln_interp_options {
    /* Keep every value (inputs, parameters, every node's output) after the
     * run, for per-layer comparison. Otherwise a value is freed after its
     * last use, and only the model inputs and outputs remain. */
    bool keep_all;
    /* Compute every layer in f32 arithmetic (double, as always), whatever
     * precision it asks for: the model's f32 result, against which `kiln
     * check` measures what a reduced precision costs. Otherwise a layer's
     * precision is emulated (interp_internal.h, kiln_icall_rounded). */
    bool f32;
} kiln_interp_options;

/* Prepares to run `g` for the batch size `batch` (>= 1; ignored by unbatched
 * shapes). `opt` may be NULL (defaults: keep_all false). No tensor memory is
 * allocated here: parameters are read and values computed by kiln_interp_run.
 * Errors: KILN_ERR_INVALID_ARGUMENT (NULL pointer, batch < 1),
 * KILN_ERR_OUT_OF_MEMORY. *out is NULL on failure. */
/* Whether the interpreter has a kernel for op (every op of ir/ops.def
 * should: tests/codegen/test_codegen_ops.c checks it). */
bool kiln_interp_supports(kiln_op op);

kiln_status kiln_interp_create(const kiln_graph *g, int64_t batch, const kiln_interp_options *opt,
                               kiln_interp **out);

/* Sets model input `input_index` (an index into g->inputs) by copying its
 * elements for this batch size: kiln_shape_elements(shape, batch) values in
 * dense C order. The copy is kept across runs until set again.
 * Errors: KILN_ERR_INVALID_ARGUMENT (NULL pointer, index out of range),
 * KILN_ERR_SHAPE (element count overflows), KILN_ERR_OUT_OF_MEMORY. */
kiln_status kiln_interp_set_input(kiln_interp *it, size_t input_index, const float *data);
kiln_status kiln_interp_set_input_f64(kiln_interp *it, size_t input_index, const double *data);

/* Evaluates every node in node order. Every error (an input not set, a
 * parameter that cannot be read, out of memory, an op this interpreter does
 * not handle, a value whose type disagrees with its op's
 * rule) is reported to `d` at the node's location, naming the layer, and
 * returned as its status. `d` may be NULL (errors then only return a status).
 * Results of a previous run are discarded first. */
kiln_status kiln_interp_run(kiln_interp *it, kiln_diag *d);

/* The computed elements of value `value` (dense C order; *count elements)
 * after a successful run, or NULL (and *count 0) when the value was not kept
 * or not computed. Model inputs and outputs are always kept; other values
 * only with keep_all. `count` may be NULL. */
const double *kiln_interp_value(const kiln_interp *it, kiln_id value, size_t *count);
/* The same for model output `output_index` (an index into g->outputs). */
const double *kiln_interp_output(const kiln_interp *it, size_t output_index, size_t *count);

/* Frees the interpreter and every buffer it holds. NULL is a no-op. */
void kiln_interp_destroy(kiln_interp *it);

#endif
