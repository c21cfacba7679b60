/* compiler/frontend/safetensors.h: a reader for safetensors files
 * (FORMAT.md "Weights"): an 8-byte little-endian header length, a JSON header
 * mapping names to {dtype, shape, data_offsets}, then the raw data.
 *
 * kiln_st_open maps the file read-only and validates all of it before
 * returning: the header length, the JSON (strictly), every entry's keys and
 * types, offsets inside the data area, sizes equal to shape x dtype size,
 * no two tensors overlapping, no duplicate names. Whatever the bytes, the
 * reader fails cleanly (a message, no crash, no leak, no read out of bounds).
 *
 * Every safetensors dtype is accepted in the header; F32, F16, BF16 and F64
 * tensors of rank <= KILN_MAX_RANK are `supported` (readable by kiln). The rest
 * (I64 `num_batches_tracked`, F8_*, ...) are listed but flagged unsupported: a
 * layer that reads one gets an error, unread ones are ignored.
 *
 * Ownership: a kiln_st_file owns its mapping and every string and tensor
 * record; pointers obtained from it are valid until kiln_st_close. A file may
 * be read from several threads at once; open/close are not synchronized. */
#ifndef KILN_FRONTEND_SAFETENSORS_H
#define KILN_FRONTEND_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/status.h"
#include "ir/diag.h"
#include "ir/type.h"

/* Largest header accepted (the header is JSON text; real ones are kilobytes). */
#define KILN_ST_MAX_HEADER (UINT64_C(100) << 20)

typedef struct kiln_st_tensor {
    const char *name;       /* the key, unescaped (UTF-8, no NUL inside) */
    const char *dtype_name; /* as in the file: "F32", "I64", "F8_E4M3", ... */
    kiln_dtype dtype;       /* F32/F16/BF16/F64 when the dtype is one kiln reads,
                               else KILN_DTYPE_COUNT */
    bool supported;         /* kiln reads it: dtype is F32/F16/BF16/F64 and
                               rank <= KILN_MAX_RANK */
    int rank;               /* the file's rank, also when > KILN_MAX_RANK */
    int64_t dims[KILN_MAX_RANK]; /* the first min(rank, KILN_MAX_RANK) dims */
    const void *data;       /* the tensor's bytes in the mapping; NOT aligned */
    size_t nbytes;          /* data_offsets end - begin */
} kiln_st_tensor;

typedef struct kiln_st_file kiln_st_file;

/* Opens and validates a file. On failure *out is NULL, one error is added to d
 * at location {path, 0, 0} (so it prints as "PATH: error: ..."), naming the
 * tensor key and the file byte offset where relevant, and the status is
 * KILN_ERR_IO (cannot open/map), KILN_ERR_PARSE (the JSON header or its
 * schema), KILN_ERR_WEIGHTS (lengths, offsets, sizes, overlaps) or
 * KILN_ERR_OUT_OF_MEMORY. */
kiln_status kiln_st_open(const char *path, kiln_st_file **out, kiln_diag *d);
/* The same over `size` bytes in memory, borrowed (they must outlive the file).
 * `name` stands for the path in messages and kiln_st_path. */
kiln_status kiln_st_open_memory(const void *bytes, size_t size, const char *name,
                                kiln_st_file **out, kiln_diag *d);

/* Tensors in the header's order. */
size_t kiln_st_count(const kiln_st_file *f);
const kiln_st_tensor *kiln_st_at(const kiln_st_file *f, size_t i); /* NULL when out of range */
/* Lookup by name (binary search); NULL when absent. */
const kiln_st_tensor *kiln_st_find(const kiln_st_file *f, const char *name);
const char *kiln_st_path(const kiln_st_file *f);
/* Unmaps and frees everything; NULL is fine. */
void kiln_st_close(kiln_st_file *f);

/* Element size in bits of a safetensors dtype name ("F32" -> 32, "F4" -> 4),
 * 0 when the name is not a safetensors dtype. */
unsigned kiln_st_dtype_bits(const char *dtype_name);

/* Writer, for tests and tools: `count` F32 tensors (names[i], ranks[i] in
 * 0..KILN_MAX_RANK, dims[i][0..rank), data[i] in C order; data[i] may be NULL
 * only when the tensor has no elements), laid out contiguously in the given
 * order, the header padded with spaces to a multiple of 8 bytes.
 * KILN_ERR_INVALID_ARGUMENT for a bad argument (NULL, rank, negative dim,
 * duplicate name), KILN_ERR_IO when writing fails (nothing is removed: what was
 * written stays, and path may name a device), KILN_ERR_OUT_OF_MEMORY. */
kiln_status kiln_st_write_f32(const char *path, size_t count, const char *const *names,
                              const int *ranks, const int64_t *const *dims,
                              const float *const *data);

#endif
