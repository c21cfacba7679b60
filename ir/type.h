/* ir/type.h: what a value is: dtype, shape (with the symbolic batch), layout,
 * quantization. */
#ifndef KILN_IR_TYPE_H
#define KILN_IR_TYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum kiln_dtype {
    KILN_F32,
    KILN_BF16,
    KILN_F16,
    KILN_I8,
    KILN_U8,
    KILN_I32,
    KILN_F64, /* storage only: weights read from F64 files, folded constants */
    KILN_DTYPE_COUNT
} kiln_dtype;

const char *kiln_dtype_name(kiln_dtype t);          /* "f32" */
int kiln_dtype_parse(const char *s, kiln_dtype *out); /* 0 on success */
size_t kiln_dtype_size(kiln_dtype t);               /* bytes per element */

#define KILN_MAX_RANK 8
/* dims[0] of a batched shape: the run-time batch size. */
#define KILN_DIM_BATCH (-1)

/* Default limits of FORMAT.md; the command line can raise max_elements. */
#define KILN_MAX_DIM INT64_C(2147483647)
#define KILN_DEFAULT_MAX_ELEMENTS (INT64_C(1) << 32)

/* A shape. When `batched`, axis 0 is the symbolic batch (dims[0] ==
 * KILN_DIM_BATCH) and never moves: FORMAT.md keeps it at axis 0. */
typedef struct kiln_shape {
    int rank;
    bool batched;
    int64_t dims[KILN_MAX_RANK];
} kiln_shape;

/* Elements per batch item (the product of dims[1..] when batched, of all dims
 * otherwise). Returns -1 on overflow past INT64_MAX. */
int64_t kiln_shape_elements_per_item(const kiln_shape *s);
/* Elements for a given batch (batch is ignored for unbatched shapes). -1 on overflow. */
int64_t kiln_shape_elements(const kiln_shape *s, int64_t batch);
bool kiln_shape_equal(const kiln_shape *a, const kiln_shape *b);
/* "[batch,3,224,224]" into buf (always NUL-terminated); returns buf. */
char *kiln_shape_format(const kiln_shape *s, const char *batch_name, char *buf, size_t size);

typedef enum kiln_layout {
    KILN_LAYOUT_PLAIN,   /* dense C order: nchw for rank 4 */
    KILN_LAYOUT_NCHWXC,  /* channel-blocked nchw<block>c; block in kiln_type */
} kiln_layout;

/* The largest channel block the IR accepts (the verifier's limit). */
#define KILN_MAX_BLOCK 64

/* A type. The shape is always the LOGICAL shape [N, C, H, W]; the layout
 * says how the elements are stored. A blocked (KILN_LAYOUT_NCHWXC) value is
 * rank 4 and f32, and is stored as [N][ceil(C/B)][H][W][B], B = block:
 * element (n, c, h, w) sits at ((n*ceil(C/B) + c/B)*H*W + h*W + w)*B + c%B.
 * The padding lanes (c >= C of the last channel block) hold finite values
 * (producers write zeros) that readers ignore. */
typedef struct kiln_type {
    kiln_dtype dtype;
    kiln_shape shape;
    kiln_layout layout;
    int block;       /* channel block for KILN_LAYOUT_NCHWXC, else 0 */
    bool quantized;  /* i8/u8 values carry scale and zero point */
    double scale;
    int32_t zero_point;
} kiln_type;

/* Elements the value's storage holds per batch item (of the whole value when
 * unbatched): the shape's count for the plain layout, the count padded to
 * whole channel blocks for a blocked one. -1 on overflow, or for a blocked
 * type that is not rank 4 with block >= 1. */
int64_t kiln_type_storage_elements_per_item(const kiln_type *t);
/* The same for a given batch (ignored when unbatched). -1 on overflow. */
int64_t kiln_type_storage_elements(const kiln_type *t, int64_t batch);

/* Whether t's layout is well formed: plain (block 0), or blocked with rank 4,
 * f32, unquantized and 1 <= block <= KILN_MAX_BLOCK. 0, or -1 with a message
 * in err. */
int kiln_type_check_layout(const kiln_type *t, char *err, size_t size);

/* "f32[batch,3,224,224]" (+ layout/quantization suffixes) into buf. */
char *kiln_type_format(const kiln_type *t, const char *batch_name, char *buf, size_t size);

#endif
