/* tests/random_model.h: random valid models in the YAML format, for
 * differential testing (tests/codegen/test_random_models.c, docs/testing.md).
 *
 * rm_generate(seed) writes a model (FORMAT.md, `kiln: 1` with the 1.1 ops)
 * that the frontend must accept: a chain of layers over the whole op table
 * that the format offers, where each layer is picked among those whose shape
 * rule accepts the current value, with dimensions from a list of primes,
 * 1, the vector widths 8 and 16 and the GEMM tile rows 6 and 14 (each also
 * +-1), strides, dilations, groups, every padding form, broadcasting
 * operands taken from earlier layers or a second model input, block
 * instances, and sometimes several outputs. Parameters come from
 * `init: {random: SEED}`, so the text alone is the whole model (a failing
 * case is saved as one file that `kiln check` reads).
 *
 * Values are kept finite and well conditioned: the generator tracks a rough
 * magnitude of each value and whether it is non-negative or bounded away
 * from zero, and puts abs + a positive scalar before log, pow with a
 * fractional exponent and a tensor divisor, a tanh before exp when the
 * magnitude is large, and a normalization when values grow.
 *
 * Not generated: `constant` (it needs a weights file), `reorder` (internal,
 * not in the format). The batch is symbolic in about 85% of models, fixed
 * ([1, ...]) otherwise. Deterministic: the same seed gives the same text on
 * every machine. */
#ifndef KILN_TEST_RANDOM_MODEL_H
#define KILN_TEST_RANDOM_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct rm_options {
    int max_layers;         /* layers asked for, guards excluded (0: 12) */
    int64_t max_elements;   /* per batch item, per value (0: 6144) */
} rm_options;

/* The model for `seed` as YAML text (malloc'd, NUL-terminated; NULL when out
 * of memory). o may be NULL. *n_layers (may be NULL) receives the number of
 * layers written. */
char *rm_generate(uint64_t seed, const rm_options *o, int *n_layers);

#endif
