/* compiler/driver/precision_auto.h: `kiln compile --precision auto`: the
 * precision of each layer chosen by measuring the model's outputs on
 * calibration data (docs/precision.md, "auto").
 *
 * kiln's own f32 build, JIT-compiled, is the reference. The layers that ask
 * for auto and can compute in a reduced precision are then tried one at a
 * time, the most work first (the schedule's estimate, kiln_schedule_node_work:
 * measured times vary between runs and would make the order, and so the
 * object, vary), each in bf16, then f16 (int8: not implemented, skipped); a
 * change is kept while the error of the outputs stays within the tolerance.
 * Only errors decide: the same inputs give the same choice, and the same
 * object. Times are measured for the report only. */
#ifndef KILN_DRIVER_PRECISION_AUTO_H
#define KILN_DRIVER_PRECISION_AUTO_H

#include <stdio.h>

#include "cli.h"

typedef enum kiln_auto_metric {
    KILN_AUTO_MAXREL, /* max |y - y_f32| / max |y_f32|, per output over every sample; the largest over outputs */
    KILN_AUTO_TOP1,   /* the fraction of samples whose argmax of the first output differs from f32's */
} kiln_auto_metric;

int kiln_auto_metric_parse(const char *s, kiln_auto_metric *out); /* "maxrel", "top1": 0 when known */

typedef struct kiln_auto_row {
    const char *layer;       /* borrowed from the graph */
    double work;             /* the schedule's estimate, per batch item */
    double share;            /* of the f32 build's measured time (its kernel: a fusion group counts whole) */
    kiln_precision chosen;
    double error;            /* of the model after this step */
    double seconds;          /* the calibration set's run time after this step */
    char tried[96];          /* "bf16 3.1e-03 (over), f16 2.2e-04" */
} kiln_auto_row;

typedef struct kiln_auto_result {
    kiln_auto_metric metric;
    double tolerance;
    kiln_auto_row *rows;     /* in the order tried */
    size_t n_rows;
    size_t own_key;          /* layers that keep their own precision: key */
    size_t not_eligible;     /* layers asking auto that have no reduced-precision kernel */
    double f32_seconds;      /* the reference build on the calibration set (best of the timed runs) */
    double final_error;
    size_t builds;           /* JIT builds the search made */
    double search_seconds;
} kiln_auto_result;

/* Chooses the precision of every layer of g (the model as loaded, before
 * the passes) that asks for auto, and writes it on g's nodes (the model's
 * default auto becomes f32). o says how to build (passes, target, code
 * generation); c is the calibration data. Progress goes to stderr when it
 * is a terminal. 0, or 1 after reporting the error. */
int kiln_auto_choose(kiln_graph *g, const kiln_cli_options *o, const kiln_calib *c, kiln_auto_metric metric,
                     double tolerance, kiln_auto_result *out);
void kiln_auto_result_free(kiln_auto_result *r);
/* The report's table (lines starting with `  `). */
void kiln_auto_print(const kiln_auto_result *r, const kiln_calib *c, FILE *f);

#endif
