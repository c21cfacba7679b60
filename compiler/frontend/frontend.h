/* compiler/frontend/frontend.h: loading a model into the IR.
 *
 * A model is a YAML file in the format of docs/format.md, or an IR text file
 * (.kir, docs/ir.md). Every problem found is added to `d` with its
 * file:line:col; independent problems are reported together. Nothing here
 * prints, exits or aborts, whatever the input. */
#ifndef KILN_FRONTEND_FRONTEND_H
#define KILN_FRONTEND_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/diag.h"
#include "ir/graph.h"
#include "kiln/status.h"

/* Loads a model: `.yaml`/`.yml` through the YAML frontend; `.kir` via
 * kiln_ir_parse then kiln_weights_bind. Weights files are opened and every
 * parameter is bound (or generated, under `init: {random: SEED}`). On success
 * *out owns the graph (kiln_graph_destroy); on failure *out = NULL and the
 * status is the first problem's. */
kiln_status kiln_frontend_load(const char *path, kiln_graph **out, kiln_diag *d);

/* The YAML frontend on text in memory (tests, fuzzing). `filename` is used in
 * locations and to find weights files (relative to its directory). */
kiln_status kiln_frontend_load_yaml_text(const char *text, size_t len, const char *filename, kiln_graph **out,
                                         kiln_diag *d);

/* What a load may be told; all zero means the defaults. */
typedef struct kiln_frontend_options {
    int64_t max_elements; /* per-tensor element limit (FORMAT.md "Limits"); 0: KILN_DEFAULT_MAX_ELEMENTS */
    /* Accept weights that hold NaN or infinities, or F64 values beyond f32's
     * range (by default an error naming the tensor and its first bad element:
     * kiln_weights_check_values). */
    bool allow_nonfinite;
} kiln_frontend_options;

/* The same with options (opt may be NULL). */
kiln_status kiln_frontend_load_opts(const char *path, const kiln_frontend_options *opt, kiln_graph **out,
                                    kiln_diag *d);
kiln_status kiln_frontend_load_yaml_text_opts(const char *text, size_t len, const char *filename,
                                              const kiln_frontend_options *opt, kiln_graph **out, kiln_diag *d);

#endif
