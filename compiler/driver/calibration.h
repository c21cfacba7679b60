/* compiler/driver/calibration.h: calibration data (--calibration) and the
 * ranges observed on it (docs/precision.md, "Calibration").
 *
 * The data is one F32 tensor per model input, named as the input, whose
 * first axis counts samples and whose other axes are one sample: the input's
 * shape without its batch axis (a batched input), or its whole shape (an
 * input with fixed shapes). It comes from a safetensors file, a folder of
 * NAME.npy files (same rule), or `random`: KILN_CALIB_RANDOM_SAMPLES samples
 * uniform in [-1, 1), the generator of `kiln check` with its default seed.
 *
 * calibration.c reads and validates the data; calib_ranges.c runs the
 * reference interpreter over it and records each value's range. */
#ifndef KILN_DRIVER_CALIBRATION_H
#define KILN_DRIVER_CALIBRATION_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ir/graph.h"

#define KILN_CALIB_RANDOM_SAMPLES 32
/* The seed of input k's random samples is KILN_CALIB_RANDOM_SEED + k: what
 * `kiln check --seed 1 --batch 32` feeds the model. */
#define KILN_CALIB_RANDOM_SEED 1000003u

typedef struct kiln_calib {
    const char *source;  /* the path, or "random" (borrowed) */
    bool random;
    bool folder;         /* a folder of NAME.npy files */
    int64_t samples;     /* >= 1 */
    size_t n_inputs;     /* g->n_inputs */
    float **data;        /* per model input (g->inputs order): samples x per_sample floats, owned */
    size_t *per_sample;  /* the elements of one sample of each input */
    /* Every input and output of the model is batched: the samples run as
     * batches. Otherwise each sample runs alone (batch 1). */
    bool batched;
} kiln_calib;

/* Reads `source` for the model inputs of g and validates it against them.
 * Every problem is printed to stderr (`FILE: error: ...`; several at once);
 * returns 0, or 1 (c is then empty). */
int kiln_calib_load(kiln_calib *c, const char *source, const kiln_graph *g, const char *cmd);
void kiln_calib_free(kiln_calib *c);
/* "32 random samples (uniform in [-1, 1), seed 1000003)" or "16 samples
 * from data.safetensors", into buf. */
void kiln_calib_describe(const kiln_calib *c, char *buf, size_t size);
/* Samples [first, first + return) as one run: the batch (at most max_batch
 * when batched, else 1), with in[k] pointing at input k's first of them. */
int64_t kiln_calib_chunk(const kiln_calib *c, int64_t first, int64_t max_batch, const float **in);

/* ---- ranges (calib_ranges.c) --------------------------------------------- */

typedef enum kiln_calib_method {
    KILN_CALIB_PERCENTILE, /* [-p, p] cut to [min, max], p the KILN_CALIB_PERCENTILE_Q percentile of |x| */
    KILN_CALIB_MINMAX,     /* [min, max] */
} kiln_calib_method;
#define KILN_CALIB_PERCENTILE_Q 99.99
/* "percentile" or "minmax": 0 when known */
int kiln_calib_method_parse(const char *s, kiln_calib_method *out);

/* One value's statistics over every element of every sample. */
typedef struct kiln_calib_range {
    kiln_id value;
    double min, max;       /* of the finite elements */
    double pct;            /* the KILN_CALIB_PERCENTILE_Q percentile of |x|, from the histogram */
    uint64_t count;        /* elements seen (finite) */
    uint64_t nonfinite;    /* NaN and infinities (not in min, max, pct) */
} kiln_calib_range;

typedef struct kiln_calib_ranges {
    kiln_calib_range *r; /* the model inputs, then every node's output in node order */
    size_t n;
    int64_t samples;
} kiln_calib_ranges;

/* Runs the interpreter on g over every sample and fills out. 0, or 1 after
 * printing the error. */
int kiln_calib_observe(const kiln_graph *g, const kiln_calib *c, kiln_calib_ranges *out, const char *cmd);
void kiln_calib_ranges_free(kiln_calib_ranges *r);
/* The range the method keeps for r: [*lo, *hi]. */
void kiln_calib_range_pick(const kiln_calib_range *r, kiln_calib_method m, double *lo, double *hi);
/* A comment block (every line starts with "# "): the data, the method, then
 * one row per value: min, max, the percentile of |x|, the range kept. */
void kiln_calib_ranges_print(const kiln_graph *g, const kiln_calib *c, const kiln_calib_ranges *r,
                             kiln_calib_method m, FILE *f);

/* ---- int8 layers' input quantization (calib_quant.c) ----------------------- */

/* Writes in_scale and in_zero on every node of g that computes int8, from
 * the ranges of g computed in f32 over c with method m; *n_int8 = those
 * nodes. Without calibration data (c->samples 0), checks that they already
 * have them. 0, or 1 after printing the error. */
int kiln_calib_quantize(kiln_graph *g, const kiln_calib *c, kiln_calib_method m, size_t *n_int8, const char *cmd);
/* One line per int8 node: its layer, in_scale, in_zero, its input. */
void kiln_calib_quant_print(const kiln_graph *g, FILE *f, const char *indent);

#endif
