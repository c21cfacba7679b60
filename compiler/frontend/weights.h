/* compiler/frontend/weights.h: binding weights to a graph's parameters.
 *
 * The opened safetensors files of a graph live in a container stored in
 * g->weights and registered as a graph resource, so kiln_graph_destroy closes
 * them; FILE parameters point into the files' mappings (param.data, which is
 * NOT aligned: read it with kiln_param_read_f32/f64 or memcpy).
 *
 * A graph's weights are opened and bound from one thread. */
#ifndef KILN_FRONTEND_WEIGHTS_H
#define KILN_FRONTEND_WEIGHTS_H

#include <stdint.h>

#include "kiln/status.h"
#include "ir/diag.h"
#include "ir/graph.h"
#include "safetensors.h"

/* param.file value meaning "whichever weights file holds param.key"; binding
 * replaces it with the index of that file. */
#define KILN_WEIGHTS_ANY_FILE UINT32_MAX

/* Opens every g->weight_files entry not yet opened (or tried). A file that
 * fails is reported once (at {path,0,0}, see kiln_st_open) and not retried; a
 * key present in two files is an error naming both files and the key. All
 * errors are collected; the status is the first one. */
kiln_status kiln_weights_open(kiln_graph *g, kiln_diag *d);

/* The tensor `key` in the graph's opened files (the first file that has it),
 * with its file index in *file_index when non-NULL; NULL when absent or when
 * no file is open. Does not open anything. */
const kiln_st_tensor *kiln_weights_find(const kiln_graph *g, const char *key, uint32_t *file_index);

/* The opened file of weight_files[index], or NULL (not opened, or failed). */
const kiln_st_file *kiln_weights_file(const kiln_graph *g, uint32_t index);

/* Checks and binds PARAM value `value` (opening the files first if needed):
 *  FILE:   finds param.key in weights file param.file (any file when
 *          param.file is KILN_WEIGHTS_ANY_FILE, then param.file is set), checks
 *          the dtype is one kiln reads (F32, F16, BF16, F64) with rank <= 8 and
 *          the shape equals the value's type shape, and sets param.data_dtype
 *          and param.data to the mapped bytes.
 *  RANDOM: checks the shape and the range; binds nothing: the values are
 *          generated whenever kiln_param_read_f32/f64 reads them (key:
 *          param.key, or the value's name when NULL), so nothing is
 *          allocated for them.
 *  INLINE: nothing to do.
 * Errors are reported at value->loc and name the key and the file:
 *   "weights 'conv1.weight' in lenet.safetensors: expected [6,1,5,5], found [6,3,5,5]".
 * A parameter of a file that failed to open returns KILN_ERR_WEIGHTS without a
 * further message (the file's own error says what is wrong). */
kiln_status kiln_weights_bind_value(kiln_graph *g, kiln_id value, kiln_diag *d);

/* kiln_weights_open, then kiln_weights_bind_value for every PARAM value,
 * collecting every error; the status is the first error's. For each weights
 * file that failed to open, a note at the first parameter that reads it says
 * so. */
kiln_status kiln_weights_bind(kiln_graph *g, kiln_diag *d);

/* Checks the values of every bound FILE and INLINE parameter: each must be
 * finite, and F64 data must lie within f32's range (kiln computes in f32:
 * a larger value would become infinite). One error per tensor, at the value's
 * location, naming the tensor (its key and file) and its first bad element
 * by index. KILN_OK, or KILN_ERR_WEIGHTS. RANDOM parameters are finite by
 * construction. */
kiln_status kiln_weights_check_values(const kiln_graph *g, kiln_diag *d);

#endif
