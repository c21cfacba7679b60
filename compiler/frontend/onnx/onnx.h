/* compiler/frontend/onnx/onnx.h: `kiln import`: an ONNX model (protobuf,
 * read with protobuf-c over Debian's onnx.proto) to a kiln model in the YAML
 * format of FORMAT.md and the float32 tensors of its weights.
 *
 * The importer never prints, exits or aborts: whatever the bytes, it returns
 * a status and, in the result, one line per problem. docs/import.md is the
 * user's description of what it accepts and how each ONNX op is written. */
#ifndef KILN_FRONTEND_ONNX_ONNX_H
#define KILN_FRONTEND_ONNX_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "ir/type.h"
#include "kiln/status.h"

/* `--input NAME=D0xD1x...`: the shape an input is pinned to. */
typedef struct kiln_onnx_pin {
    const char *name; /* the ONNX input name, as written in the model */
    int rank;         /* 0 for `NAME=` */
    int64_t dims[KILN_MAX_RANK];
} kiln_onnx_pin;

/* Parses the text after `--input ` (NAME=D0xD1x..., split at the last '=';
 * `NAME=` pins a rank-0 input). `name` points into `text`'s copy in *pin's
 * storage `buf` (size `buf_size`). Returns 0, or -1 with a message in err. */
int kiln_onnx_pin_parse(const char *text, kiln_onnx_pin *pin, char *buf, size_t buf_size, char *err, size_t err_size);

typedef struct kiln_onnx_options {
    const char *model_name;  /* the YAML `name:`, a C identifier; NULL: "model" */
    const char *source_name; /* the model file's name for the description; NULL: none */
    const char *weights_ref; /* what `weights:` says (relative to the YAML); NULL: "weights.safetensors" */
    const char *base_dir;    /* directory of external-data files; NULL: external data is refused */
    const kiln_onnx_pin *pins;
    size_t n_pins;
    /* The largest tensor, in elements, that the importer folds or writes
     * (0: 2^28). Larger constants are refused. */
    int64_t max_elements;
} kiln_onnx_options;

/* A weights tensor of the imported model (float32, C order). */
typedef struct kiln_onnx_tensor {
    const char *key;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    const float *data;
} kiln_onnx_tensor;

typedef enum kiln_onnx_problem_kind {
    KILN_ONNX_REFUSED, /* the model uses something kiln cannot express (exit status 3) */
    KILN_ONNX_ERROR,   /* the command line and the model disagree, e.g. a pin (exit status 1) */
} kiln_onnx_problem_kind;

typedef struct kiln_onnx_problem {
    kiln_onnx_problem_kind kind;
    /* One line without the file name: `node 'NAME' (OpType): unsupported: REASON`,
     * `input 'x': unsupported: ...`, `unsupported: ...` (the whole model) or
     * `error: ...`. The caller prefixes `MODEL.onnx: `. */
    const char *text;
} kiln_onnx_problem;

typedef struct kiln_onnx_result {
    const char *yaml;         /* the model (NUL-terminated); NULL unless the status is KILN_OK */
    size_t yaml_len;
    const kiln_onnx_tensor *tensors; /* its weights, in the order the YAML first reads them */
    size_t n_tensors;
    const kiln_onnx_problem *problems; /* in the order found */
    size_t n_problems;
    /* Counts for reports. */
    size_t n_nodes;  /* ONNX nodes */
    size_t n_layers; /* kiln layers written */
    int64_t opset;   /* the model's ai.onnx opset */
} kiln_onnx_result;

/* Imports the ONNX model in bytes[0..size). On success (KILN_OK) the result
 * has the YAML and the tensors; otherwise the problems say why:
 * KILN_ERR_UNSUPPORTED when the model is refused (a malformed protobuf is
 * refused too), KILN_ERR_INVALID_ARGUMENT when a pin does not fit the model,
 * KILN_ERR_OUT_OF_MEMORY. *out is always set (destroy it) unless memory ran
 * out before it was made (then NULL). */
kiln_status kiln_onnx_import(const void *bytes, size_t size, const kiln_onnx_options *opt,
                             kiln_onnx_result **out);
void kiln_onnx_result_destroy(kiln_onnx_result *r);

/* Writes the result's tensors as a safetensors file (F32). */
kiln_status kiln_onnx_write_weights(const kiln_onnx_result *r, const char *path);

#endif
