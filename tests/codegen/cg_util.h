/* tests/codegen/cg_util.h: building small graphs with the IR builder and
 * running them compiled (JIT) against the reference interpreter.
 *
 * Error measure (docs/codegen.md): for each output element a (compiled) and
 * b (interpreter, double), |a - b| / max(|b|, 1e-3 * max|b over the tensor|,
 * 1e-30); the check passes when the largest is <= the tolerance (1e-4). */
#ifndef KILN_TEST_CG_UTIL_H
#define KILN_TEST_CG_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "compiler/codegen/codegen.h"
#include "ir/graph.h"

/* A graph named `name`; batch_name "batch". */
kiln_graph *tg_new(const char *name);
/* An input; dims[0] < 0 means the batch. */
kiln_id tg_input(kiln_graph *g, const char *name, int rank, const int64_t *dims);
/* A parameter with uniform values in [lo, hi] (deterministic from the name). */
kiln_id tg_param(kiln_graph *g, const char *name, int rank, const int64_t *dims, double lo, double hi);
/* A node; returns its output value id (KILN_NO_ID on failure). Attributes
 * are set afterwards through tg_last(g) and then tg_finish(g). */
kiln_id tg_node(kiln_graph *g, kiln_op op, const kiln_id *inputs, uint32_t n_inputs, const char *out);
kiln_node *tg_last(kiln_graph *g);
/* Applies defaults and infers the last node's type; false (with a message on
 * stderr) when the shape rule refuses it. */
bool tg_finish(kiln_graph *g);
void tg_output(kiln_graph *g, kiln_id v);

#define TG_DIMS(...) (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), ((const int64_t[]){__VA_ARGS__})

/* Compiles g for the JIT (options: NULL = defaults) and compares every output
 * with the interpreter for each batch (unbatched graphs: batch 1) and thread
 * count. Returns the largest error seen (see above), or a negative value when
 * something failed (printed). */
double tg_check(const kiln_graph *g, const kiln_cg_options *opt, const int64_t *batches, int n_batches,
                const int *threads, int n_threads);
/* tg_check with batches {1, 3, 17} and threads {1, 2, 3}. */
double tg_check_default(const kiln_graph *g);

/* Random floats in [lo, hi] from a seed. */
void tg_fill(float *x, size_t n, uint64_t seed, double lo, double hi);

#endif
