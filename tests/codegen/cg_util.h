/* tests/codegen/cg_util.h: building small graphs with the IR builder and
 * running them compiled (JIT) against the reference interpreter.
 *
 * Error measure (docs/codegen.md): for each output element a (compiled) and
 * b (interpreter, double), |a - b| / max(|b|, 1e-3 * max|b over the tensor|,
 * 1e-30); the check passes when the largest is <= the tolerance (1e-4). */
#ifndef KILN_TEST_CG_UTIL_H
#define KILN_TEST_CG_UTIL_H

#include <CUnit/CUnit.h>
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
/* tg_check with the interpreter run on ref_graph (the same inputs and
 * outputs as g: an f32 copy of a reduced-precision graph), the error's
 * scale at least floor x the largest |reference| (tg_check: 1e-2; 1: the
 * error relative to the output's largest magnitude), printing the elements
 * whose error exceeds report_above. */
double tg_check_ref(const kiln_graph *g, const kiln_graph *ref_graph, const kiln_cg_options *opt,
                    const int64_t *batches, int n_batches, const int *threads, int n_threads, double floor,
                    double report_above);
/* The inputs tg_check feeds: by default uniform in [-2, 2]; after
 * tg_set_input_values(v, n) (n > 0) element i of every input at batch b is
 * v[(i + 7 b) % n], until tg_set_input_values(NULL, 0). v must stay valid. */
void tg_set_input_values(const float *v, size_t n);
/* Exact mode (on until turned off): the error of an element is the number
 * of f32 units in the last place between the compiled value and the
 * interpreter's rounded to f32 (0: the same float); for layers whose
 * emulation computes the same f32 operations (int8). */
void tg_set_exact(bool on);
/* tg_check with batches {1, 3, 17} and threads {1, 2, 3}. */
double tg_check_default(const kiln_graph *g);

/* ---- target rows ---------------------------------------------------------------
 *
 * The numeric suites run once per row of the code generator's target table
 * that this architecture has (x86_64: sse, avx2, avx512; aarch64: neon):
 * each row is a CUnit suite of its own whose init selects the row, and
 * tg_check compiles for it. Rows the host can execute are run and compared
 * with the interpreter; the others are compiled to an object only (LLVM
 * still verifies and lowers every kernel). The host's own row uses the
 * host CPU (as `kiln compile` does by default), the others a portable CPU
 * that implies exactly the row's instruction set (x86-64-v2/v3/v4). */
typedef struct tg_target {
    const char *name;  /* the target table row: "avx512", "avx2", "sse", "neon" */
    const char *cpu;   /* NULL: the host CPU (the host's own row) */
    int lanes;         /* f32 lanes of its vectors: the channel block of the blocked layout */
    bool runnable;     /* the host executes its instructions */
} tg_target;

/* The rows of this architecture, widest first. */
int tg_target_count(void);
const tg_target *tg_target_at(int i);
/* The row tg_check compiles for (NULL until a row is selected: the host). */
const tg_target *tg_current_target(void);
/* Options for the current row: cpu (and nothing else) set; jit off for
 * rows that cannot run. */
kiln_cg_options tg_target_options(void);
/* Adds one copy of the suite per row, named "NAME [row]" or "NAME [row,
 * compile only]"; add(s) adds the tests to each. At exit, a line naming the
 * rows that ran numerically and those only compiled is printed. */
void tg_add_suites(const char *name, void (*add)(CU_pSuite s));

/* Random floats in [lo, hi] from a seed. */
void tg_fill(float *x, size_t n, uint64_t seed, double lo, double hi);

#endif
