/* compiler/driver/npy.h: NumPy .npy files, for `kiln run` inputs and outputs.
 *
 * Reads format versions 1.0, 2.0 and 3.0 holding a C-order array of dtype
 * '<f4' (or '<f8', converted to float) with up to KILN_MAX_RANK dimensions
 * (0-d arrays included). The header dict is checked strictly: exactly the keys
 * 'descr', 'fortran_order' and 'shape'; the data must fill the rest of the
 * file exactly. Writes '<f4' version 1.0 with the header laid out as
 * numpy.save does (64-byte aligned data).
 *
 * Errors are a status plus a message in err (always NUL-terminated when
 * err_size > 0); messages of the path-taking functions start with the path. */
#ifndef KILN_DRIVER_NPY_H
#define KILN_DRIVER_NPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/status.h"
#include "ir/type.h"

typedef struct kiln_npy {
    int rank;
    int64_t dims[KILN_MAX_RANK];
    float *data;  /* count floats, owned (kiln_npy_free); NULL when count is 0 */
    size_t count; /* product of dims (1 for a 0-d array) */
    bool from_f64; /* the file held '<f8' (converted to float) */
} kiln_npy;

/* On failure *out is zeroed (nothing to free). Statuses: KILN_ERR_IO (cannot
 * read), KILN_ERR_PARSE (not a .npy file, bad header), KILN_ERR_UNSUPPORTED
 * (a valid .npy kiln does not read: other dtypes, Fortran order, rank > 8),
 * KILN_ERR_SHAPE (size limits), KILN_ERR_OUT_OF_MEMORY. */
kiln_status kiln_npy_read(const char *path, kiln_npy *out, char *err, size_t err_size);
kiln_status kiln_npy_read_memory(const void *bytes, size_t size, kiln_npy *out, char *err,
                                 size_t err_size);
/* Writes rank dims (0..KILN_MAX_RANK, each >= 0) of data in C order. On
 * failure nothing is removed (a partial file stays). */
kiln_status kiln_npy_write(const char *path, int rank, const int64_t *dims, const float *data,
                           char *err, size_t err_size);
/* kiln_npy_write to write_path, with messages naming path (kiln run writes
 * to a temporary file of its own and renames it over path at the end). */
kiln_status kiln_npy_write_to(const char *path, const char *write_path, int rank, const int64_t *dims,
                              const float *data, char *err, size_t err_size);
/* Frees the data and zeroes *a; NULL and zeroed structs are fine. */
void kiln_npy_free(kiln_npy *a);

#endif
