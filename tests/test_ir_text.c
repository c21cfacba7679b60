/* tests/test_ir_text.c: the IR text form (ir/print.c, ir/parse.c) and DOT
 * export (ir/dot.c).
 *
 * Registration (tests/CMakeLists.txt): links kiln_ir and CUnit only:
 *     kiln_add_test(ir_text SOURCES test_ir_text.c LIBS kiln_ir)
 * (the `foreach(t ir ir_text)` loop there already does exactly this).
 *
 * What it checks:
 *  - graphs built with the builder API, covering every op in ops.def, every
 *    attribute type, quoted names, batched and unbatched inputs, all three
 *    param sources, inline data of every data dtype, layouts, quantization,
 *    precision annotations and a description with escapes, print, parse and
 *    print again byte-identically, and the parsed graph verifies;
 *  - weights paths: printed relative to a directory, resolved against the
 *    .kir's directory when parsed;
 *  - the text accepts comments, CRLF, blank lines and lists across lines;
 *  - each parse error: its message and line:col;
 *  - robustness: every prefix, a NUL at every position, random mutations,
 *    and every allocation failing in turn give a clean status (never a
 *    crash, never a leak under the ASan build);
 *  - DOT output names the nodes, edges and escapes labels. */
#define _POSIX_C_SOURCE 200809L
#include <CUnit/Basic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ir/graph.h"

/* ---- helpers ------------------------------------------------------------ */

#define BATCH KILN_DIM_BATCH
#define NDIMS(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
#define TY(dt, ...) make_type(dt, NDIMS(__VA_ARGS__), (int64_t[]){__VA_ARGS__})
#define INTS(...) (int64_t[]){__VA_ARGS__}, NDIMS(__VA_ARGS__)
#define ND(g, op, out, layer, ...)                                                                    \
    add_node(g, KILN_OP_##op, out, layer, (kiln_id[]){__VA_ARGS__},                                   \
             (uint32_t)(sizeof((kiln_id[]){__VA_ARGS__}) / sizeof(kiln_id)))
#define N(g, id) kiln_graph_node(g, id)

static kiln_type make_type(kiln_dtype dt, int rank, const int64_t *dims)
{
    kiln_type t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.shape.rank = rank;
    for (int i = 0; i < rank; i++)
        t.shape.dims[i] = dims[i];
    t.shape.batched = rank > 0 && dims[0] == BATCH;
    return t;
}

static kiln_type scalar_type(kiln_dtype dt)
{
    kiln_type t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    return t;
}

static kiln_id add_input(kiln_graph *g, const char *name, kiln_type t)
{
    kiln_id id = kiln_graph_add_input(g, name, &t, (kiln_loc){0});
    CU_ASSERT_FATAL(id != KILN_NO_ID);
    return id;
}

static kiln_id add_file_param(kiln_graph *g, const char *name, kiln_type t, int file, const char *key)
{
    kiln_param p;
    memset(&p, 0, sizeof p);
    p.source = KILN_PARAM_FILE;
    p.file = (uint32_t)file;
    p.key = key;
    kiln_id id = kiln_graph_add_param(g, name, &t, &p, (kiln_loc){0});
    CU_ASSERT_FATAL(id != KILN_NO_ID);
    return id;
}

static kiln_id add_random_param(kiln_graph *g, const char *name, kiln_type t, uint64_t seed, double lo, double hi)
{
    kiln_param p;
    memset(&p, 0, sizeof p);
    p.source = KILN_PARAM_RANDOM;
    p.seed = seed;
    p.lo = lo;
    p.hi = hi;
    kiln_id id = kiln_graph_add_param(g, name, &t, &p, (kiln_loc){0});
    CU_ASSERT_FATAL(id != KILN_NO_ID);
    return id;
}

/* Inline data: `bytes` bytes of element pattern, copied into the graph. */
static kiln_id add_inline_param(kiln_graph *g, const char *name, kiln_type t, kiln_dtype data_dtype,
                                const void *data, size_t bytes)
{
    kiln_param p;
    memset(&p, 0, sizeof p);
    p.source = KILN_PARAM_INLINE;
    p.data_dtype = data_dtype;
    void *copy = kiln_arena_alloc_aligned(&g->arena, bytes ? bytes : 1);
    CU_ASSERT_FATAL(copy != NULL);
    memcpy(copy, data, bytes);
    p.data = copy;
    kiln_id id = kiln_graph_add_param(g, name, &t, &p, (kiln_loc){0});
    CU_ASSERT_FATAL(id != KILN_NO_ID);
    return id;
}

static kiln_id add_node(kiln_graph *g, kiln_op op, const char *out, const char *layer, const kiln_id *ins,
                        uint32_t n)
{
    kiln_id id = kiln_graph_add_node(g, op, ins, n, out, layer, (kiln_loc){0});
    CU_ASSERT_FATAL(id != KILN_NO_ID);
    return id;
}

/* Defaults (as the frontend fills them) and the shape rule; returns the
 * node's output value. */
static kiln_id fin(kiln_graph *g, kiln_id nid)
{
    char err[256] = "";
    kiln_node_apply_defaults(N(g, nid));
    kiln_status st = kiln_ir_infer_node(g, nid, err, sizeof err);
    if (st != KILN_OK)
        fprintf(stderr, "\nshape rule of %s failed: %s\n", kiln_op_name(N(g, nid)->op), err);
    CU_ASSERT_EQUAL_FATAL(st, KILN_OK);
    return N(g, nid)->output;
}

static char *print_text(const kiln_graph *g, const char *relative_to, kiln_status *st)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CU_ASSERT_FATAL(f != NULL);
    kiln_status s = kiln_ir_print(g, f, relative_to);
    fclose(f);
    if (st != NULL)
        *st = s;
    return buf;
}

static char *dot_text(const kiln_graph *g)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_EQUAL(kiln_ir_print_dot(g, f), KILN_OK);
    fclose(f);
    return buf;
}

static kiln_status parse_len(const char *text, size_t len, const char *file, kiln_graph **g, kiln_diag *d)
{
    return kiln_ir_parse(text, len, file, g, d);
}

static void show_diag(const kiln_diag *d)
{
    for (size_t i = 0; i < d->count; i++)
        fprintf(stderr, "  diag %u:%u: %s\n", d->entries[i].loc.line, d->entries[i].loc.col,
                d->entries[i].message);
}

/* print -> parse -> print, byte-identical; the parsed graph verifies. */
static void check_round_trip(const kiln_graph *g, bool verify)
{
    kiln_status st;
    char *t1 = print_text(g, NULL, &st);
    CU_ASSERT_EQUAL(st, KILN_OK);
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_graph *g2 = NULL;
    st = parse_len(t1, strlen(t1), "mem.kir", &g2, &d);
    if (st != KILN_OK) {
        fprintf(stderr, "\n%s\n", t1);
        show_diag(&d);
    }
    CU_ASSERT_EQUAL(st, KILN_OK);
    if (g2 != NULL) {
        char *t2 = print_text(g2, NULL, &st);
        CU_ASSERT_EQUAL(st, KILN_OK);
        if (strcmp(t1, t2) != 0)
            fprintf(stderr, "\n--- first\n%s--- second\n%s", t1, t2);
        CU_ASSERT_STRING_EQUAL(t1, t2);
        if (verify) {
            kiln_diag vd;
            kiln_diag_init(&vd);
            CU_ASSERT_EQUAL(kiln_ir_verify(g2, &vd), KILN_OK);
            show_diag(&vd);
            kiln_diag_release(&vd);
        }
        free(t2);
    }
    kiln_graph_destroy(g2);
    kiln_diag_release(&d);
    free(t1);
}

/* ---- graphs ------------------------------------------------------------- */

static const char *const odd_names[] = {
    "conv1:post", "with space", "q\"uote\\back", "tab\there", "new\nline", "ctl\x01\x7f", "\xc3\xbcn\xc3\xaf\x63ode",
    "", "123", "-dash", "a.b.c", "x#y",
};

/* Every op, every attribute type, batched input named N. */
static kiln_graph *build_all_ops(void)
{
    kiln_graph *g = kiln_graph_create("all_ops");
    CU_ASSERT_FATAL(g != NULL);
    g->batch_name = kiln_arena_strdup(&g->arena, "N");
    g->description = kiln_arena_strdup(&g->arena, "all ops: \"quoted\", back\\slash, tab\t, newline\n, bell\a, "
                                                  "del\x7f, utf-8 \xc3\xa9, # not a comment");
    int w0 = kiln_graph_add_weight_file(g, "weights/a.safetensors");
    int w1 = kiln_graph_add_weight_file(g, "b with space.safetensors");
    CU_ASSERT_FATAL(w0 == 0 && w1 == 1);

    kiln_id x = add_input(g, "x", TY(KILN_F32, BATCH, 4, 8, 8));
    kiln_id cw = add_file_param(g, "conv1.weight", TY(KILN_F32, 8, 4, 3, 3), w0, "conv1.weight");
    kiln_id cb = add_random_param(g, "conv1.bias", TY(KILN_F32, 8), 7, -0.1, 0.1);

    kiln_id n = ND(g, CONV2D, "conv1:pre", "conv1", x, cw, cb);
    kiln_node_set_int(N(g, n), KILN_ATTR_FILTERS, 8);
    kiln_node_set_ints(N(g, n), KILN_ATTR_KERNEL, INTS(3, 3));
    kiln_node_set_ints(N(g, n), KILN_ATTR_STRIDE, INTS(1, 1));
    kiln_node_set_ints(N(g, n), KILN_ATTR_PADDING, INTS(1, 1, 1, 1));
    kiln_node_set_ints(N(g, n), KILN_ATTR_DILATION, INTS(1, 1));
    kiln_node_set_int(N(g, n), KILN_ATTR_GROUPS, 1);
    kiln_id conv = fin(g, n);

    /* A conv without bias, depthwise, filters from a second file. */
    kiln_id dw = add_file_param(g, "dw.weight", TY(KILN_F32, 4, 1, 3, 3), w1, "dw.weight");
    n = ND(g, CONV2D, "dw", "dw", x, dw);
    kiln_node_set_int(N(g, n), KILN_ATTR_FILTERS, 4);
    kiln_node_set_ints(N(g, n), KILN_ATTR_KERNEL, INTS(3, 3));
    kiln_node_set_ints(N(g, n), KILN_ATTR_STRIDE, INTS(2, 2));
    kiln_node_set_ints(N(g, n), KILN_ATTR_DILATION, INTS(1, 1));
    kiln_node_set_int(N(g, n), KILN_ATTR_GROUPS, 4);
    N(g, n)->precision = KILN_PREC_BF16;
    fin(g, n);

    n = ND(g, MAXPOOL2D, "pool", "pool", conv);
    kiln_node_set_ints(N(g, n), KILN_ATTR_KERNEL, INTS(2, 2));
    kiln_node_set_bool(N(g, n), KILN_ATTR_CEIL_MODE, true);
    kiln_id pool = fin(g, n);

    n = ND(g, AVGPOOL2D, "avg", "avg", conv);
    kiln_node_set_ints(N(g, n), KILN_ATTR_KERNEL, INTS(3, 3));
    kiln_node_set_ints(N(g, n), KILN_ATTR_STRIDE, INTS(1, 1));
    kiln_node_set_ints(N(g, n), KILN_ATTR_PADDING, INTS(1, 1, 1, 1));
    kiln_node_set_bool(N(g, n), KILN_ATTR_COUNT_INCLUDE_PAD, false);
    fin(g, n);

    fin(g, ND(g, GLOBAL_AVGPOOL, "gap", "gap", pool));

    /* batchnorm with inline data of all four data dtypes. */
    float gamma[8] = {1, 0.5f, -2, 3.25f, 1e-3f, -0.0f, 7, 8};
    double beta[8] = {0.1, -0.2, 0.3, 1e300, -1e-300, 0, 5e-324, 1.0 / 3.0};
    uint16_t mean16[8] = {0x3c00, 0x0000, 0x8000, 0x7bff, 0x0001, 0x3555, 0xc000, 0x4248};
    uint16_t var16[8] = {0x3f80, 0x4000, 0x4040, 0x4080, 0x40a0, 0x40c0, 0x40e0, 0x4100};
    kiln_id bg = add_inline_param(g, "bn.weight", TY(KILN_F32, 8), KILN_F32, gamma, sizeof gamma);
    kiln_id bb = add_inline_param(g, "bn.bias", TY(KILN_F32, 8), KILN_F64, beta, sizeof beta);
    kiln_id bm = add_inline_param(g, "bn.running_mean", TY(KILN_F32, 8), KILN_F16, mean16, sizeof mean16);
    kiln_id bv = add_inline_param(g, "bn.running_var", TY(KILN_F32, 8), KILN_BF16, var16, sizeof var16);
    n = ND(g, BATCHNORM, "bn", "bn", conv, bg, bb, bm, bv);
    kiln_node_set_float(N(g, n), KILN_ATTR_EPS, 1e-3);
    kiln_id bn = fin(g, n);

    kiln_id lw = add_random_param(g, "ln.weight", TY(KILN_F32, 8), UINT64_MAX, 0.9, 1.1);
    kiln_id lb = add_random_param(g, "ln.bias", TY(KILN_F32, 8), 0, -1e-300, 1e300);
    n = ND(g, LAYERNORM, "ln", "ln", bn, lw, lb);
    kiln_node_set_float(N(g, n), KILN_ATTR_EPS, 1e-6);
    fin(g, n);
    fin(g, ND(g, LAYERNORM, "ln_plain", "ln_plain", bn));

    static const kiln_op unary[] = {KILN_OP_RELU, KILN_OP_RELU6, KILN_OP_SIGMOID, KILN_OP_TANH,
                                    KILN_OP_SILU, KILN_OP_HARDSWISH, KILN_OP_HARDSIGMOID, KILN_OP_EXP,
                                    KILN_OP_SQRT, KILN_OP_NEG};
    static const kiln_precision precs[] = {KILN_PREC_DEFAULT, KILN_PREC_F32, KILN_PREC_BF16,
                                           KILN_PREC_F16,     KILN_PREC_INT8, KILN_PREC_AUTO};
    kiln_id relu = KILN_NO_ID;
    for (size_t i = 0; i < sizeof unary / sizeof unary[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "u.%s", kiln_op_name(unary[i]));
        n = add_node(g, unary[i], name, kiln_op_name(unary[i]), &x, 1);
        N(g, n)->precision = precs[i % 6];
        kiln_id v = fin(g, n);
        if (unary[i] == KILN_OP_RELU)
            relu = v;
    }
    /* Quoted names and layers. */
    kiln_id prev = x;
    for (size_t i = 0; i < sizeof odd_names / sizeof odd_names[0]; i++) {
        n = add_node(g, KILN_OP_IDENTITY, odd_names[i], odd_names[(i + 1) % 12], &prev, 1);
        prev = fin(g, n);
    }

    n = ND(g, GELU, "gelu_tanh", "gelu_tanh", x);
    kiln_node_set_attr(N(g, n), KILN_ATTR_APPROXIMATE, &(kiln_attr){.i = 1});
    fin(g, n);
    fin(g, ND(g, GELU, "gelu", "gelu", x));
    n = ND(g, LEAKY_RELU, "leaky", "leaky", x);
    kiln_node_set_float(N(g, n), KILN_ATTR_ALPHA, 0.1);
    fin(g, n);
    fin(g, ND(g, ELU, "elu", "elu", x));
    n = ND(g, CLIP, "clip", "clip", x);
    kiln_node_set_float(N(g, n), KILN_ATTR_MIN, -1);
    kiln_node_set_float(N(g, n), KILN_ATTR_MAX, 6.5);
    fin(g, n);
    n = ND(g, CLIP, "clip_hi", "clip_hi", x);
    kiln_node_set_float(N(g, n), KILN_ATTR_MAX, 1e20);
    fin(g, n);
    n = ND(g, SOFTMAX, "softmax", "softmax", x);
    kiln_node_set_int(N(g, n), KILN_ATTR_AXIS, 1);
    fin(g, n);
    n = ND(g, LOG_SOFTMAX, "log_softmax", "log_softmax", x);
    kiln_node_set_int(N(g, n), KILN_ATTR_AXIS, 3);
    fin(g, n);

    kiln_id scale = add_random_param(g, "scale", TY(KILN_F32, 4, 1, 1), 3, 0.5, 2);
    fin(g, ND(g, ADD, "add", "add", x, relu));
    n = ND(g, SUB, "rsub", "rsub", x);
    kiln_node_set_float(N(g, n), KILN_ATTR_SCALAR, 2);
    kiln_node_set_bool(N(g, n), KILN_ATTR_REVERSE, true);
    fin(g, n);
    fin(g, ND(g, MUL, "mul", "mul", x, scale));
    n = ND(g, DIV, "div", "div", x);
    kiln_node_set_float(N(g, n), KILN_ATTR_SCALAR, 0.30000000000000004);
    fin(g, n);
    fin(g, ND(g, MAX, "max", "max", x, relu));
    n = ND(g, MIN, "min", "min", x);
    kiln_node_set_float(N(g, n), KILN_ATTR_SCALAR, -3);
    fin(g, n);

    kiln_id mw = add_random_param(g, "mm.weight", TY(KILN_F32, 8, 8), 11, -1, 1);
    n = ND(g, MATMUL, "mm", "mm", x, mw);
    kiln_node_set_bool(N(g, n), KILN_ATTR_TRANSPOSE_B, true);
    fin(g, n);

    n = ND(g, CONCAT, "cat", "cat", x, relu, conv);
    kiln_node_set_int(N(g, n), KILN_ATTR_AXIS, 1);
    fin(g, n);
    kiln_id flat = fin(g, ND(g, FLATTEN, "flat", "flat", x));
    kiln_id fw = add_random_param(g, "fc.weight", TY(KILN_F32, 10, 256), 5, -0.0625, 0.0625);
    kiln_id fb = add_file_param(g, "fc.bias", TY(KILN_F32, 10), w1, "fc.bias");
    n = ND(g, DENSE, "fc", "fc", flat, fw, fb);
    kiln_node_set_int(N(g, n), KILN_ATTR_UNITS, 10);
    fin(g, n);
    n = ND(g, DENSE, "fc_nobias", "fc_nobias", flat, fw);
    kiln_node_set_int(N(g, n), KILN_ATTR_UNITS, 10);
    fin(g, n);
    n = ND(g, RESHAPE, "reshape", "reshape", x);
    kiln_node_set_ints(N(g, n), KILN_ATTR_SHAPE, INTS(0, 4, 64));
    fin(g, n);
    n = ND(g, TRANSPOSE, "transpose", "transpose", x);
    kiln_node_set_ints(N(g, n), KILN_ATTR_PERM, INTS(0, 1, 3, 2));
    fin(g, n);
    n = ND(g, MEAN, "mean", "mean", x);
    kiln_node_set_ints(N(g, n), KILN_ATTR_AXES, INTS(2, 3));
    kiln_node_set_bool(N(g, n), KILN_ATTR_KEEPDIMS, false);
    kiln_id mean = fin(g, n);
    n = ND(g, PAD, "pad", "pad", x);
    kiln_node_set_ints(N(g, n), KILN_ATTR_PADS, INTS(1, 2, 3, 4));
    kiln_node_set_float(N(g, n), KILN_ATTR_VALUE, -0.5);
    fin(g, n);
    fin(g, ND(g, DROPOUT, "drop", "drop", x));
    /* Layouts: reorders to nchw8c, between block sizes and back; a blocked
     * relu; global_avgpool reading a blocked value. */
    kiln_id c8 = fin(g, ND(g, REORDER, "conv.nchw8c", "conv1", conv));
    kiln_graph_value(g, c8)->type.layout = KILN_LAYOUT_NCHWXC;
    kiln_graph_value(g, c8)->type.block = 8;
    kiln_id blk = fin(g, ND(g, RELU, "blk", "blk", c8));
    kiln_graph_value(g, blk)->type.layout = KILN_LAYOUT_NCHWXC;
    kiln_graph_value(g, blk)->type.block = 8;
    fin(g, ND(g, GLOBAL_AVGPOOL, "blk.gap", "blk", blk));
    kiln_id b4 = fin(g, ND(g, REORDER, "blk.nchw4c", "blk", blk));
    kiln_graph_value(g, b4)->type.layout = KILN_LAYOUT_NCHWXC;
    kiln_graph_value(g, b4)->type.block = 4;
    fin(g, ND(g, REORDER, "blk.plain", "blk", b4));

    /* Version 1.1: every new op, FLOATS (scale), the batch in expand's
     * shape, words of resize's mode, output_padding. */
    n = ND(g, SLICE, "slice", "slice", x);
    kiln_node_set_int(N(g, n), KILN_ATTR_AXIS, 1);
    kiln_node_set_int(N(g, n), KILN_ATTR_START, -3);
    kiln_node_set_int(N(g, n), KILN_ATTR_END, 9223372036854775807);
    kiln_node_set_int(N(g, n), KILN_ATTR_STEP, 2);
    fin(g, n);
    kiln_id sc = add_random_param(g, "cls", TY(KILN_F32, 1, 1, 8), 9, -1, 1);
    kiln_id cls = fin(g, ND(g, CONSTANT, "cls.value", "cls", sc));
    n = ND(g, EXPAND, "expand", "expand", cls);
    kiln_node_set_ints(N(g, n), KILN_ATTR_SHAPE, INTS(KILN_DIM_BATCH, 3, 8));
    fin(g, n);
    n = ND(g, RESIZE, "up", "up", x);
    kiln_node_set_floats(N(g, n), KILN_ATTR_SCALE, (const double[]){2.5, 0.75}, 2);
    kiln_node_set_attr(N(g, n), KILN_ATTR_MODE, &(kiln_attr){.i = KILN_RESIZE_BICUBIC});
    kiln_node_set_bool(N(g, n), KILN_ATTR_ALIGN_CORNERS, true);
    fin(g, n);
    n = ND(g, RESIZE, "up_size", "up_size", x);
    kiln_node_set_ints(N(g, n), KILN_ATTR_SIZE, INTS(5, 17));
    fin(g, n);
    kiln_id tw = add_random_param(g, "deconv.weight", TY(KILN_F32, 4, 3, 4, 4), 4, -0.1, 0.1);
    n = ND(g, CONV_TRANSPOSE2D, "deconv", "deconv", x, tw);
    kiln_node_set_int(N(g, n), KILN_ATTR_FILTERS, 3);
    kiln_node_set_ints(N(g, n), KILN_ATTR_KERNEL, INTS(4, 4));
    kiln_node_set_ints(N(g, n), KILN_ATTR_STRIDE, INTS(2, 2));
    kiln_node_set_ints(N(g, n), KILN_ATTR_PADDING, INTS(1, 1, 1, 1));
    kiln_node_set_ints(N(g, n), KILN_ATTR_OUTPUT_PADDING, INTS(1, 0));
    fin(g, n);
    n = ND(g, ADAPTIVE_AVGPOOL2D, "apool", "apool", x);
    kiln_node_set_ints(N(g, n), KILN_ATTR_SIZE, INTS(3, 12));
    fin(g, n);
    kiln_id gw = add_random_param(g, "gn.weight", TY(KILN_F32, 4), 5, 0.5, 1.5);
    kiln_id gb = add_random_param(g, "gn.bias", TY(KILN_F32, 4), 6, -0.1, 0.1);
    n = ND(g, GROUP_NORM, "gn", "gn", x, gw, gb);
    kiln_node_set_int(N(g, n), KILN_ATTR_GROUPS, 2);
    fin(g, n);
    kiln_id pw = add_random_param(g, "prelu.weight", TY(KILN_F32, 1), 8, 0, 0.5);
    fin(g, ND(g, PRELU, "prelu", "prelu", x, pw));
    fin(g, ND(g, POW, "pow", "pow", x, relu));
    n = ND(g, POW, "rpow", "rpow", x);
    kiln_node_set_float(N(g, n), KILN_ATTR_SCALAR, 2);
    kiln_node_set_bool(N(g, n), KILN_ATTR_REVERSE, true);
    fin(g, n);
    static const kiln_op reduce_ops[] = {KILN_OP_REDUCE_SUM, KILN_OP_REDUCE_MAX, KILN_OP_REDUCE_MIN};
    for (size_t i = 0; i < 3; i++) {
        n = add_node(g, reduce_ops[i], kiln_op_name(reduce_ops[i]), kiln_op_name(reduce_ops[i]), &x, 1);
        kiln_node_set_ints(N(g, n), KILN_ATTR_AXES, INTS(1, 3));
        kiln_node_set_bool(N(g, n), KILN_ATTR_KEEPDIMS, i == 1);
        fin(g, n);
    }
    static const kiln_op unary11[] = {KILN_OP_ERF, KILN_OP_ABS, KILN_OP_LOG, KILN_OP_SOFTPLUS};
    for (size_t i = 0; i < 4; i++)
        fin(g, add_node(g, unary11[i], kiln_op_name(unary11[i]), kiln_op_name(unary11[i]), &x, 1));
    n = ND(g, HARDSIGMOID, "hsig_onnx", "hsig_onnx", x);
    kiln_node_set_float(N(g, n), KILN_ATTR_ALPHA, 0.2);
    kiln_node_set_float(N(g, n), KILN_ATTR_BETA, 0.5);
    fin(g, n);
    kiln_id row = add_random_param(g, "row", TY(KILN_F32, 1, 4, 2, 8), 10, -1, 1);
    kiln_id rowc = fin(g, ND(g, CONSTANT, "row.value", "row", row));
    n = ND(g, CONCAT, "cat_bcast", "cat_bcast", x, rowc);
    kiln_node_set_int(N(g, n), KILN_ATTR_AXIS, 2);
    fin(g, n);

    /* IR only: element types. Per tensor with the type's q(...) echo, per
     * channel on axis 1 with [C] scales and zero points. */
    n = ND(g, CONVERT, "x.bf16", "cvt", x);
    kiln_node_set_attr(N(g, n), KILN_ATTR_TO, &(kiln_attr){.i = 1});
    kiln_id xb = fin(g, n);
    n = ND(g, CONVERT, "x.back", "cvt", xb);
    kiln_node_set_attr(N(g, n), KILN_ATTR_TO, &(kiln_attr){.i = 0});
    fin(g, n);
    float qs1[1] = {0.25f}, qz1[1] = {-3}, qs4[4] = {0.5f, 0.25f, 0.125f, 1.5f}, qz4[4] = {0, 1, 2, 255};
    kiln_id s1 = add_inline_param(g, "q.scale", TY(KILN_F32, 1), KILN_F32, qs1, sizeof qs1);
    kiln_id z1 = add_inline_param(g, "q.zero_point", TY(KILN_F32, 1), KILN_F32, qz1, sizeof qz1);
    n = ND(g, QUANTIZE, "xq", "q", x, s1, z1);
    kiln_node_set_attr(N(g, n), KILN_ATTR_TO, &(kiln_attr){.i = 3});
    kiln_id xq = fin(g, n);
    kiln_graph_value(g, xq)->type.quantized = true;
    kiln_graph_value(g, xq)->type.scale = 0.25;
    kiln_graph_value(g, xq)->type.zero_point = -3;
    fin(g, ND(g, DEQUANTIZE, "xdq", "q", xq, s1, z1));
    kiln_id s4 = add_inline_param(g, "qc.scale", TY(KILN_F32, 4), KILN_F32, qs4, sizeof qs4);
    kiln_id z4 = add_inline_param(g, "qc.zero_point", TY(KILN_F32, 4), KILN_F32, qz4, sizeof qz4);
    n = ND(g, QUANTIZE, "xqc", "qc", x, s4, z4);
    kiln_node_set_attr(N(g, n), KILN_ATTR_TO, &(kiln_attr){.i = 4});
    kiln_node_set_int(N(g, n), KILN_ATTR_AXIS, 1);
    kiln_id xqc = fin(g, n);
    n = ND(g, DEQUANTIZE, "xdqc", "qc", xqc, s4);
    kiln_node_set_int(N(g, n), KILN_ATTR_AXIS, 1);
    fin(g, n);

    float k[6] = {1, 2, 3, 4, 5, 6};
    kiln_id kp = add_inline_param(g, "k", TY(KILN_F32, 2, 3), KILN_F32, k, sizeof k);
    kiln_id c = fin(g, ND(g, CONSTANT, "const", "const", kp));

    CU_ASSERT_EQUAL(kiln_graph_add_output(g, mean), KILN_OK);
    CU_ASSERT_EQUAL(kiln_graph_add_output(g, prev), KILN_OK);
    CU_ASSERT_EQUAL(kiln_graph_add_output(g, c), KILN_OK);
    return g;
}

/* Unbatched, quantized and blocked types, model precision, a custom element
 * limit, wrapped inline data, a rank-0 constant, an input as an output. */
static kiln_graph *build_small(void)
{
    kiln_graph *g = kiln_graph_create("small_v2");
    CU_ASSERT_FATAL(g != NULL);
    g->precision = KILN_PREC_BF16;
    g->max_elements = 1000000;
    kiln_type q = TY(KILN_U8, 1, 3, 4, 4);
    q.quantized = true;
    q.scale = 0.0078125;
    q.zero_point = 128;
    kiln_id img = add_input(g, "img", q);
    kiln_id feat = add_input(g, "feat", TY(KILN_F32, 1, 20, 4, 4));
    kiln_type qi = TY(KILN_I8, 2, 5);
    qi.quantized = true;
    qi.scale = 1.0 / 3.0;
    qi.zero_point = -7;
    kiln_id qin = add_input(g, "qin", qi);

    float data20[20];
    for (int i = 0; i < 20; i++)
        data20[i] = (float)i * 0.1f - 1.0f;
    add_inline_param(g, "w20", TY(KILN_F32, 4, 5), KILN_F32, data20, sizeof data20);
    double d3[3] = {1.0 / 7.0, -2.5e-310, 1e308};
    add_inline_param(g, "w64", TY(KILN_F32, 3), KILN_F64, d3, sizeof d3);
    uint16_t h9[9] = {1, 2, 3, 4, 5, 6, 7, 8, 0xffff};
    add_inline_param(g, "w16", TY(KILN_F16, 3, 3), KILN_F16, h9, sizeof h9);
    uint16_t b1 = 0x3f80;
    kiln_id s0 = add_inline_param(g, "s0", scalar_type(KILN_F32), KILN_BF16, &b1, sizeof b1);
    kiln_graph_add_weight_file(g, "../shared/w.safetensors");
    kiln_id fp = add_file_param(g, "from_file", TY(KILN_F32, 2), 0, "a \"key\"\nwith newline");

    kiln_id r = fin(g, ND(g, RELU, "r", "r", img));
    /* A layout pass's decisions, kept by the text form: 20 channels in blocks
     * of 16 (a partial block), back to plain for the model output. */
    kiln_id f16 = fin(g, ND(g, REORDER, "f16", "f", feat));
    kiln_graph_value(g, f16)->type.layout = KILN_LAYOUT_NCHWXC;
    kiln_graph_value(g, f16)->type.block = 16;
    kiln_id fb = fin(g, ND(g, RELU, "fb", "f", f16));
    kiln_graph_value(g, fb)->type.layout = KILN_LAYOUT_NCHWXC;
    kiln_graph_value(g, fb)->type.block = 16;
    kiln_id f = fin(g, ND(g, REORDER, "f", "f", fb));
    kiln_id qr = fin(g, ND(g, NEG, "qr", "qr", qin));
    /* A precision pass's decision: the rule says f32, the node computes bf16. */
    kiln_id x4 = add_input(g, "x4", TY(KILN_F32, 1, 32, 4, 4));
    kiln_id rb = fin(g, ND(g, RELU, "rb", "rb", x4));
    kiln_graph_value(g, rb)->type.dtype = KILN_BF16;
    /* A blocked value's shape is its logical shape. */
    kiln_id bl = fin(g, ND(g, REORDER, "bl", "bl", x4));
    kiln_graph_value(g, bl)->type.layout = KILN_LAYOUT_NCHWXC;
    kiln_graph_value(g, bl)->type.block = 16;
    kiln_id bls = fin(g, ND(g, SIGMOID, "bls", "bls", bl));
    kiln_graph_value(g, bls)->type = kiln_graph_value(g, bl)->type;
    fin(g, ND(g, TANH, "after_bf16", "after_bf16", rb));
    kiln_id c0 = fin(g, ND(g, CONSTANT, "c0", "c0", s0));
    kiln_id cf = fin(g, ND(g, CONSTANT, "cf", "cf", fp));
    CU_ASSERT_EQUAL(kiln_graph_add_output(g, img), KILN_OK);
    CU_ASSERT_EQUAL(kiln_graph_add_output(g, r), KILN_OK);
    CU_ASSERT_EQUAL(kiln_graph_add_output(g, f), KILN_OK);
    CU_ASSERT_EQUAL(kiln_graph_add_output(g, qr), KILN_OK);
    CU_ASSERT_EQUAL(kiln_graph_add_output(g, c0), KILN_OK);
    CU_ASSERT_EQUAL(kiln_graph_add_output(g, cf), KILN_OK);
    CU_ASSERT_EQUAL(kiln_graph_add_output(g, r), KILN_OK); /* twice: allowed */
    return g;
}

/* ---- round trips -------------------------------------------------------- */

static void test_round_trip_all_ops(void)
{
    kiln_graph *g = build_all_ops();
    /* Every op of ops.def appears. */
    bool seen[KILN_OP_COUNT] = {false};
    for (size_t i = 0; i < g->n_nodes; i++)
        seen[g->nodes[i].op] = true;
    for (int op = 0; op < KILN_OP_COUNT; op++) {
        if (!seen[op])
            fprintf(stderr, "\nop %s not covered\n", kiln_op_name((kiln_op)op));
        CU_ASSERT(seen[op]);
    }
    check_round_trip(g, true);
    kiln_graph_destroy(g);
}

static void test_round_trip_small(void)
{
    kiln_graph *g = build_small();
    check_round_trip(g, true);
    kiln_graph_destroy(g);
}

/* FORMAT.md allows any batch name; one that is not an identifier is quoted. */
static void test_round_trip_batch_name(void)
{
    static const char *const names[] = {"batch", "n-batch", "0", "", "with \"quote\""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        kiln_graph *g = kiln_graph_create("b");
        CU_ASSERT_FATAL(g != NULL);
        g->batch_name = names[i];
        kiln_id x = add_input(g, "x", TY(KILN_F32, BATCH, 3));
        CU_ASSERT_EQUAL(kiln_graph_add_output(g, fin(g, ND(g, RELU, "y", "y", x))), KILN_OK);
        check_round_trip(g, true);
        kiln_graph_destroy(g);
    }
}

static void test_round_trip_empty(void)
{
    kiln_graph *g = kiln_graph_create("e");
    CU_ASSERT_FATAL(g != NULL);
    char *t = print_text(g, NULL, NULL);
    CU_ASSERT_STRING_EQUAL(t, "kiln 1\ngraph @e() -> () {\n}\n");
    free(t);
    check_round_trip(g, false);
    kiln_graph_destroy(g);
}

/* The exact text of a small graph: pins the format documented in docs/ir.md. */
static void test_print_exact(void)
{
    kiln_graph *g = kiln_graph_create("lenet");
    CU_ASSERT_FATAL(g != NULL);
    g->batch_name = "batch";
    g->description = "a\tb \"c\"\n";
    kiln_graph_add_weight_file(g, "lenet.safetensors");
    kiln_id x = add_input(g, "image", TY(KILN_F32, BATCH, 1, 8, 8));
    kiln_id w = add_file_param(g, "conv1.weight", TY(KILN_F32, 2, 1, 3, 3), 0, "conv1.weight");
    kiln_id b = add_random_param(g, "conv1.bias", TY(KILN_F32, 2), 42, -0.1, 0.1);
    float kd[2] = {1.0f, 2.0f};
    add_inline_param(g, "k", TY(KILN_F32, 2), KILN_F32, kd, sizeof kd);
    kiln_id n = ND(g, CONV2D, "conv1:pre", "conv1", x, w, b);
    kiln_node_set_int(N(g, n), KILN_ATTR_FILTERS, 2);
    kiln_node_set_ints(N(g, n), KILN_ATTR_KERNEL, INTS(3, 3));
    kiln_id c = fin(g, n);
    n = ND(g, RELU, "conv1", "conv1", c);
    N(g, n)->precision = KILN_PREC_BF16;
    kiln_id r = fin(g, n);
    n = ND(g, LEAKY_RELU, "lr", "lr", r);
    kiln_node_set_float(N(g, n), KILN_ATTR_ALPHA, 1);
    kiln_graph_add_output(g, fin(g, n));
    char *t = print_text(g, NULL, NULL);
    const char *want =
        "kiln 1\n"
        "graph @lenet(%image: f32[batch,1,8,8]) -> (%lr) {\n"
        "  description \"a\\tb \\\"c\\\"\\n\"\n"
        "  weights \"lenet.safetensors\"\n"
        "  param %conv1.weight: f32[2,1,3,3] = file 0 \"conv1.weight\"\n"
        "  param %conv1.bias: f32[2] = random 42 -0.10000000000000001 0.10000000000000001\n"
        "  param %k: f32[2] = data f32 [0x3f800000, 0x40000000]\n"
        "  %\"conv1:pre\" = conv2d(%image, %conv1.weight, %conv1.bias) {filters=2, kernel=[3,3], stride=[1,1], "
        "padding=[0,0,0,0], dilation=[1,1], groups=1} : f32[batch,2,6,6] layer \"conv1\"\n"
        "  %conv1 = relu(%\"conv1:pre\") : f32[batch,2,6,6] layer \"conv1\" precision bf16\n"
        "  %lr = leaky_relu(%conv1) {alpha=1} : f32[batch,2,6,6] layer \"lr\"\n"
        "}\n";
    if (strcmp(t, want) != 0)
        fprintf(stderr, "\n--- got\n%s--- want\n%s", t, want);
    CU_ASSERT_STRING_EQUAL(t, want);
    free(t);
    kiln_graph_destroy(g);
}

/* What the parser stores: param fields, inline bytes, locations. */
static void test_parse_contents(void)
{
    kiln_graph *g = build_all_ops();
    char *t = print_text(g, NULL, NULL);
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_graph *g2 = NULL;
    CU_ASSERT_EQUAL_FATAL(parse_len(t, strlen(t), "dir/all.kir", &g2, &d), KILN_OK);
    CU_ASSERT_STRING_EQUAL(g2->name, "all_ops");
    CU_ASSERT_STRING_EQUAL(g2->description, g->description);
    CU_ASSERT_STRING_EQUAL(g2->batch_name, "N");
    CU_ASSERT_EQUAL(g2->n_nodes, g->n_nodes);
    CU_ASSERT_EQUAL(g2->n_values, g->n_values);
    CU_ASSERT_EQUAL_FATAL(g2->n_weight_files, 2);
    CU_ASSERT_STRING_EQUAL(g2->weight_files[0], "dir/weights/a.safetensors");
    CU_ASSERT_STRING_EQUAL(g2->weight_files[1], "dir/b with space.safetensors");
    for (size_t i = 0; i < g->n_values; i++) {
        const kiln_value *a = &g->values[i];
        kiln_id j = kiln_graph_find_value(g2, a->name);
        CU_ASSERT_FATAL(j != KILN_NO_ID);
        const kiln_value *b = &g2->values[j];
        CU_ASSERT_EQUAL(a->kind, b->kind);
        CU_ASSERT(kiln_shape_equal(&a->type.shape, &b->type.shape));
        CU_ASSERT_EQUAL(a->type.dtype, b->type.dtype);
        CU_ASSERT(b->loc.line > 0 && b->loc.col > 0);
        CU_ASSERT_STRING_EQUAL(b->loc.file, "dir/all.kir");
        if (a->kind != KILN_VALUE_PARAM)
            continue;
        CU_ASSERT_EQUAL(a->param.source, b->param.source);
        switch (a->param.source) {
        case KILN_PARAM_FILE:
            CU_ASSERT_EQUAL(a->param.file, b->param.file);
            CU_ASSERT_STRING_EQUAL(a->param.key, b->param.key);
            break;
        case KILN_PARAM_RANDOM:
            CU_ASSERT_EQUAL(a->param.seed, b->param.seed);
            CU_ASSERT(memcmp(&a->param.lo, &b->param.lo, sizeof(double)) == 0);
            CU_ASSERT(memcmp(&a->param.hi, &b->param.hi, sizeof(double)) == 0);
            break;
        case KILN_PARAM_INLINE: {
            CU_ASSERT_EQUAL(a->param.data_dtype, b->param.data_dtype);
            size_t bytes = (size_t)kiln_shape_elements(&a->type.shape, 1) * kiln_dtype_size(a->param.data_dtype);
            CU_ASSERT_FATAL(b->param.data != NULL);
            CU_ASSERT(((uintptr_t)b->param.data & 63) == 0);
            CU_ASSERT(memcmp(a->param.data, b->param.data, bytes) == 0);
            break;
        }
        }
    }
    /* Node locations: the line of the statement, column of its '%'. */
    for (size_t i = 0; i < g2->n_nodes; i++) {
        CU_ASSERT(g2->nodes[i].loc.line > 2);
        CU_ASSERT_EQUAL(g2->nodes[i].loc.col, 3);
        CU_ASSERT_EQUAL(g2->nodes[i].attr_set, g->nodes[i].attr_set);
        CU_ASSERT_EQUAL(g2->nodes[i].precision, g->nodes[i].precision);
        CU_ASSERT_STRING_EQUAL(g2->nodes[i].layer, g->nodes[i].layer);
    }
    kiln_graph_destroy(g2);
    kiln_diag_release(&d);
    free(t);
    kiln_graph_destroy(g);
}

/* Defaults left out of hand-written text are filled in (and then printed),
 * so the graph verifies; layer defaults to the value's name. */
static void test_parse_defaults(void)
{
    const char *text = "kiln 1\n"
                       "graph @m(%x: f32[b,3,8,8]) -> (%p) {\n"
                       "  %p = maxpool2d(%x) {kernel=[2,2]} : f32[b,3,4,4]\n"
                       "}\n";
    const char *want = "kiln 1\n"
                       "graph @m(%x: f32[b,3,8,8]) -> (%p) {\n"
                       "  %p = maxpool2d(%x) {kernel=[2,2], stride=[2,2], padding=[0,0,0,0], dilation=[1,1], "
                       "ceil_mode=false} : f32[b,3,4,4] layer \"p\"\n"
                       "}\n";
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_graph *g = NULL;
    CU_ASSERT_EQUAL_FATAL(parse_len(text, strlen(text), "m.kir", &g, &d), KILN_OK);
    char *t = print_text(g, NULL, NULL);
    CU_ASSERT_STRING_EQUAL(t, want);
    kiln_diag vd;
    kiln_diag_init(&vd);
    CU_ASSERT_EQUAL(kiln_ir_verify(g, &vd), KILN_OK);
    kiln_diag_release(&vd);
    free(t);
    kiln_graph_destroy(g);
    kiln_diag_release(&d);
}

/* Comments, CRLF, blank lines, lists across lines, hex-free floats written
 * in other ways: all read, and printed back canonically. */
static void test_parse_lenient_layout(void)
{
    const char *text = "# leading comment\r\n"
                       "\r\n"
                       "kiln 1   # version\r\n"
                       "graph @m(   # inputs follow\r\n"
                       "    %x: f32[batch,\r\n"
                       "            4],\r\n"
                       "    %\"y z\": f32[batch,4]\r\n"
                       ") -> (%s,\r\n"
                       "      %x) {   # body\r\n"
                       "\r\n"
                       "  param %w: f32[3] = data f32 [\r\n"
                       "     0x3F800000,  # one\r\n"
                       "     0x0, 0x00000001\r\n"
                       "  ]\r\n"
                       "  param %r: f32[4] = random 1 -1e-1 +.5\r\n"
                       "  %s = add(%x,\r\n"
                       "           %\"y z\") : f32[batch,4]  # sum\r\n"
                       "}\r\n"
                       "# trailing comment";
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_graph *g = NULL;
    kiln_status st = parse_len(text, strlen(text), "m.kir", &g, &d);
    show_diag(&d);
    CU_ASSERT_EQUAL_FATAL(st, KILN_OK);
    char *t = print_text(g, NULL, NULL);
    const char *want = "kiln 1\n"
                       "graph @m(%x: f32[batch,4], %\"y z\": f32[batch,4]) -> (%s, %x) {\n"
                       "  param %w: f32[3] = data f32 [0x3f800000, 0x00000000, 0x00000001]\n"
                       "  param %r: f32[4] = random 1 -0.10000000000000001 0.5\n"
                       "  %s = add(%x, %\"y z\") {reverse=false} : f32[batch,4] layer \"s\"\n"
                       "}\n";
    if (strcmp(t, want) != 0)
        fprintf(stderr, "\n%s", t);
    CU_ASSERT_STRING_EQUAL(t, want);
    free(t);
    kiln_graph_destroy(g);
    kiln_diag_release(&d);
}

/* ---- weights paths ------------------------------------------------------ */

static void check_rel(const char *path, const char *base, const char *want)
{
    kiln_graph *g = kiln_graph_create("p");
    CU_ASSERT_FATAL(g != NULL);
    kiln_graph_add_weight_file(g, path);
    char *t = print_text(g, base, NULL);
    char line[1024];
    snprintf(line, sizeof line, "  weights \"%s\"\n", want);
    if (strstr(t, line) == NULL)
        fprintf(stderr, "\nrelative(%s, %s): want %s, got\n%s", path, base, want, t);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, line));
    free(t);
    kiln_graph_destroy(g);
}

static void test_weights_paths(void)
{
    check_rel("m/w.st", NULL, "m/w.st");
    check_rel("./m//w.st", NULL, "./m//w.st");
    check_rel("m/w.st", ".", "m/w.st");
    check_rel("m/w.st", "", "m/w.st");
    check_rel("m/w.st", "m", "w.st");
    check_rel("m/w.st", "./m/", "w.st");
    check_rel("m/w.st", "out", "../m/w.st");
    check_rel("m/w.st", "m/sub/deeper", "../../w.st");
    check_rel("./m/../w.st", "x", "../w.st");
    check_rel("../w.st", "d", "../../w.st");
    check_rel("../w.st", "..", "w.st");
    check_rel("/data/w.st", "/data/models", "../w.st");
    check_rel("/data/w.st", "/data", "w.st");
    check_rel("/data/w.st", "/", "data/w.st");
    check_rel("/data/w.st", "/other/dir/", "../../data/w.st");

    char cwd[4096];
    CU_ASSERT_FATAL(getcwd(cwd, sizeof cwd) != NULL);
    char base[4200], abs_path[4200];
    snprintf(base, sizeof base, "%s/sub", cwd);
    check_rel("w.st", base, "../w.st");
    snprintf(abs_path, sizeof abs_path, "%s/models/w.st", cwd);
    check_rel(abs_path, "models", "w.st");
    check_rel(abs_path, ".", "models/w.st");

    /* Parse: relative to the .kir's directory. */
    static const struct {
        const char *file, *path, *want;
    } cases[] = {
        {"x.kir", "w.st", "w.st"},
        {"models/x.kir", "w.st", "models/w.st"},
        {"models/x.kir", "./w.st", "models/w.st"},
        {"models/x.kir", "../w.st", "models/../w.st"},
        {"models/x.kir", "/abs/w.st", "/abs/w.st"},
        {"/x.kir", "w.st", "/w.st"},
        {"/a/b/x.kir", "sub/w.st", "/a/b/sub/w.st"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "kiln 1\ngraph @p() -> () {\n  weights \"%s\"\n}\n", cases[i].path);
        kiln_diag d;
        kiln_diag_init(&d);
        kiln_graph *g = NULL;
        CU_ASSERT_EQUAL_FATAL(parse_len(text, strlen(text), cases[i].file, &g, &d), KILN_OK);
        CU_ASSERT_EQUAL_FATAL(g->n_weight_files, 1);
        CU_ASSERT_STRING_EQUAL(g->weight_files[0], cases[i].want);
        kiln_graph_destroy(g);
        kiln_diag_release(&d);
    }

    /* A dump written next to its weights reads back to the same paths. */
    kiln_graph *g = kiln_graph_create("p");
    kiln_graph_add_weight_file(g, "out/models/w.st");
    char *t = print_text(g, "out", NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "weights \"models/w.st\""));
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_graph *g2 = NULL;
    CU_ASSERT_EQUAL_FATAL(parse_len(t, strlen(t), "out/dump.kir", &g2, &d), KILN_OK);
    CU_ASSERT_STRING_EQUAL(g2->weight_files[0], "out/models/w.st");
    kiln_graph_destroy(g2);
    kiln_diag_release(&d);
    free(t);
    kiln_graph_destroy(g);
}

/* ---- parse errors ------------------------------------------------------- */

#define HEAD "kiln 1\ngraph @m(%x: f32[batch,3,8,8]) -> (%x) {\n"

static const struct error_case {
    const char *text;
    const char *message;
    unsigned line, col;
} error_cases[] = {
    {"", "expected 'kiln 1' at the start of the IR text, found end of input", 1, 1},
    {"kiln 2\n", "unsupported IR version 2 (this kiln reads version 1)", 1, 6},
    {"kiln 1\ngraf @m() -> () {\n}\n", "expected 'graph', found 'graf'", 2, 1},
    {"kiln 1\ngraph @1m() -> () {\n}\n", "the graph's name '@1m' is not a C identifier", 2, 7},
    {"kiln 1\ngraph @m() -> () { %x\n}\n", "expected end of line after '{', found '%x'", 2, 20},
    {"kiln 1\ngraph @m(%x f32[1]) -> () {\n}\n", "expected ':' after the input's name, found 'f32'", 2, 13},
    {HEAD "  %y = conv3d(%x) : f32[batch,3,8,8]\n}\n", "unknown op 'conv3d'", 3, 8},
    {HEAD "  %y = relu(%x : f32[batch,3,8,8]\n}\n", "expected ',' or ')' after an operand, found ':'", 3, 16},
    {HEAD "  %y = conv2d(%x) {filters=4, kernel=[3,3], strid=[1,1]} : f32[batch,4,6,6]\n}\n",
     "unknown attribute 'strid' for conv2d", 3, 45},
    {HEAD "  %y = relu(%x) {alpha=1} : f32[batch,3,8,8]\n}\n", "unknown attribute 'alpha' for relu", 3, 18},
    {HEAD "  %y = maxpool2d(%x) {kernel=2} : f32[batch,3,4,4]\n}\n",
     "attribute 'kernel' expects a list of integers, found '2'", 3, 30},
    {HEAD "  %y = maxpool2d(%x) {kernel=[2,2], kernel=[2,2]} : f32[batch,3,4,4]\n}\n",
     "attribute 'kernel' given twice", 3, 37},
    {HEAD "  %y = maxpool2d(%x) {kernel=[1,2,3,4,5,6,7,8,9]} : f32[batch,3,4,4]\n}\n",
     "attribute 'kernel' has more than 8 entries", 3, 47},
    {HEAD "  %y = maxpool2d(%x) {kernel=[2,2], ceil_mode=yes} : f32[batch,3,4,4]\n}\n",
     "attribute 'ceil_mode' expects true or false, found 'yes'", 3, 47},
    {HEAD "  %y = gelu(%x) {approximate=fast} : f32[batch,3,8,8]\n}\n",
     "attribute 'approximate' expects one of: none, tanh; found 'fast'", 3, 30},
    {HEAD "  %y = leaky_relu(%x) {alpha=1e999} : f32[batch,3,8,8]\n}\n", "number 1e999 is out of range", 3, 30},
    {HEAD "  %y = leaky_relu(%x) {alpha=0x10} : f32[batch,3,8,8]\n}\n",
     "expected a number for attribute 'alpha', found '0x10'", 3, 30},
    {HEAD "  %y = softmax(%x) {axis=1.5} : f32[batch,3,8,8]\n}\n",
     "expected an integer for attribute 'axis', found '1.5'", 3, 26},
    {HEAD "  %y = mean(%x) {axes=[99999999999999999999]} : f32[batch]\n}\n",
     "integer 99999999999999999999 is out of range", 3, 24},
    {HEAD "  %y = maxpool2d(%x) {kernel=[2,2], padding=[9223372036854775807,0,0,0]} : f32[batch,3,4,4]\n}\n",
     "attribute 'padding': 9223372036854775807 is out of range (-2147483647 to 2147483647)", 3, 46},
    {HEAD "  %y = relu(%foo) : f32[batch,3,8,8]\n}\n", "undefined value %foo", 3, 13},
    {HEAD "  %y = relu(%x) : f32[batch,3,8,8]\n  %y = relu(%x) : f32[batch,3,8,8]\n}\n",
     "value %y defined twice (first at line 3, column 3)", 4, 3},
    {HEAD "  %x = relu(%x) : f32[batch,3,8,8]\n}\n", "value %x defined twice (first at line 2, column 10)", 3, 3},
    {HEAD "  %y = relu(%x) : f32[batch,3,8,8] layer \"abc\n}\n",
     "unterminated string (a string ends on the line where it starts)", 3, 42},
    {HEAD "  %y = relu(%x) : f32[batch,3,8,8] layer \"a\\qb\"\n}\n",
     "unknown escape '\\q' in string (use \\\\ \\\" \\n \\t \\r or \\xHH)", 3, 44},
    {HEAD "  %y = relu(%x) : f32[batch,3,8,8] layer \"a\\x0\"\n}\n", "'\\x' in a string needs two hex digits",
     3, 44},
    {HEAD "  %y = relu(%x) : f32[batch,3,8,8] layer \"a\\x00\"\n}\n", "a string cannot contain '\\x00'", 3, 44},
    {HEAD "  %y = relu(%x) : f32[1,2,3,4,5,6,7,8,9]\n}\n", "a shape has at most 8 dimensions", 3, 39},
    {HEAD "  %y = relu(%x) : f31[batch,3,8,8]\n}\n",
     "unknown dtype 'f31' (expected f32, bf16, f16, i8, u8, i32 or f64)", 3, 19},
    {HEAD "  %y = relu(%x) : f32[batch,3,8,9]\n}\n",
     "declared f32[batch,3,8,9] but the shape rule gives f32[batch,3,8,8]", 3, 19},
    {HEAD "  %y = relu(%x) : bf16[batch,3,8,9] q(scale=1, zp=0)\n}\n",
     "declared bf16[batch,3,8,9] q(scale=1, zp=0) but the shape rule gives bf16[batch,3,8,8] q(scale=1, zp=0)", 3, 19},
    {HEAD "  param %w: f32[batch,3] = random 1 0 1\n}\n", "a param cannot have the batch dimension", 3, 13},
    {HEAD "  %y = relu(%x) : f32[3,batch]\n}\n", "only the first dimension can be the batch; found 'batch' at axis 1",
     3, 25},
    {HEAD "  %y = relu(%x) : f32[n,3,8,8]\n}\n", "the batch dimension is called 'n' here but 'batch' before", 3,
     23},
    {HEAD "  %y = relu(%x) : f32[batch,0,8,8]\n}\n", "dimension 0 is out of range (1 to 2147483647)", 3, 29},
    {HEAD "  %y = relu(%x) : f32[batch,3,8,8] nchwc\n}\n",
     "unknown layout 'nchwc' (expected nchw<block>c, e.g. nchw16c)", 3, 36},
    /* layouts (docs/ir.md "Layouts") */
    {"kiln 1\ngraph @m(%x: f32[batch,3,8,8] nchw8c) -> (%x) {\n}\n",
     "a model input is plain: the layout pass blocks only values that nodes compute", 2, 14},
    {HEAD "  param %w: f32[4,3,3,3] nchw8c = random 1 0 1\n}\n",
     "a param is plain: the layout pass blocks only values that nodes compute", 3, 13},
    {"kiln 1\ngraph @m(%x: f32[batch,3,8,8]) -> (%b) {\n  %b = reorder(%x) : f32[batch,3,8,8] nchw8c\n}\n",
     "model output %b is blocked: model outputs are plain (a reorder converts)", 2, 36},
    {HEAD "  %y = reorder(%x) : f32[batch,1,8,8,8] nchw8c\n}\n",
     "declared f32[batch,1,8,8,8] nchw8c but the shape rule gives f32[batch,3,8,8] nchw8c", 3, 22},
    {HEAD "  %y = reorder(%x) : f32[batch,3,8,8] nchw65c\n}\n", "channel block 65 is outside 1..64", 3, 22},
    {"kiln 1\ngraph @m(%x: f32[batch,3,8]) -> (%x) {\n  %y = reorder(%x) : f32[batch,3,8] nchw8c\n}\n",
     "a blocked value must have rank 4 [N,C,H,W], not rank 3", 3, 22},
    {HEAD "  %y = reorder(%x) : bf16[batch,3,8,8] nchw8c\n}\n", "a blocked value must be f32, not bf16", 3, 22},
    {HEAD "  %y = relu(%x) : f32[batch,3,8,8] nchw8c\n}\n",
     "relu keeps its operands' layout, but operand 'x' is plain and the output nchw8c", 3, 19},
    {HEAD "  %b = reorder(%x) : f32[batch,3,8,8] nchw8c\n  %f = flatten(%b) : f32[batch,192]\n}\n",
     "flatten reads the plain layout only, but operand 'b' is nchw8c (a reorder must convert it)", 4, 22},
    {HEAD "  %p = pad(%x) {pads=[1,1,1,1]} : f32[batch,3,10,10] nchw8c\n}\n",
     "pad writes the plain layout only, not nchw8c", 3, 35},
    {HEAD "  %b = reorder(%x) : f32[batch,3,8,8] nchw4c\n  %g = global_avgpool(%b) : f32[batch,3,1,1] nchw4c\n}\n",
     "global_avgpool reads any layout but writes a plain output, not nchw4c", 4, 29},
    {HEAD "  %b = reorder(%x) : f32[batch,3,8,8] nchw8c\n  %m = maxpool2d(%b) {kernel=[2,2]} : f32[batch,3,4,4]\n}\n",
     "maxpool2d keeps its operands' layout, but operand 'b' is nchw8c and the output plain", 4, 39},
    {HEAD "  %b = reorder(%x) : f32[batch,3,8,8] nchw8c\n  %c = reorder(%x) : f32[batch,3,8,8] nchw4c\n"
          "  %a = add(%b, %c) : f32[batch,3,8,8] nchw8c\n}\n",
     "add keeps its operands' layout, but operand 'c' is nchw4c and the output nchw8c", 5, 22},
    {HEAD "  %b = reorder(%x) : f32[batch,3,8,8] nchw8c\n  %g = global_avgpool(%b) : f32[batch,3,1,1]\n"
          "  %g8 = reorder(%g) : f32[batch,3,1,1] nchw8c\n  %a = add(%b, %g8) : f32[batch,3,8,8] nchw8c\n}\n",
     "add on blocked values does not broadcast: operand 'g8' is [batch,3,1,1], the output [batch,3,8,8]", 6, 23},
    {HEAD "  %y = relu(%x) : f32[batch,3,8,8] precision f8\n}\n",
     "unknown precision 'f8' (expected f32, bf16, f16, int8 or auto)", 3, 46},
    {HEAD "  %y = relu(%x, %x) : f32[batch,3,8,8]\n}\n", "relu takes 1 operand, found 2", 3, 8},
    {HEAD "  %y = concat() : f32[batch,3,8,8]\n}\n", "concat takes at least 1 operand, found 0", 3, 8},
    {HEAD "  param %w: f32[4,3,3,3] = random 1 0 1\n  %y = conv2d(%x, %w) {filters=4} : f32[batch,4,6,6]\n}\n",
     "conv2d needs attribute 'kernel'", 4, 8},
    {HEAD "  param %w: f32[5,4] = random 1 0 1\n  %y = dense(%x, %w) {units=5} : f32[batch,3,8,5]\n}\n",
     "parameter 'weight' (w) must have shape [5,8], has [5,4]", 4, 8},
    {HEAD "  param %w: f32[4] = file 0 \"w\"\n}\n",
     "weights file 0 does not exist (0 'weights' lines before this point)", 3, 27},
    {HEAD "  param %w: f32[4] = data f32 [0x1, 0x2]\n}\n", "the shape has 4 elements but the data has 2", 3, 31},
    {HEAD "  param %w: f32[1] = data f32 [0x100000000]\n}\n",
     "0x100000000 does not fit in 32 bits (0x + 8 hex digits)", 3, 32},
    {HEAD "  param %w: f32[1] = data i8 [0x1]\n}\n", "inline data must be f32, f64, f16 or bf16, not 'i8'", 3, 27},
    {HEAD "  param %w: f32[1] = zeros\n}\n", "expected 'file', 'random' or 'data', found 'zeros'", 3, 22},
    {HEAD "  param %w: f32[1] = random -1 0 1\n}\n",
     "expected the seed (an unsigned integer), found '-1'", 3, 29},
    {HEAD "  description \"a\"\n  description \"b\"\n}\n", "description given twice", 4, 3},
    {HEAD "  %y = relu(%x) : f32[batch,3,8,8]\n  max_elements 10\n}\n",
     "max_elements must come before the params and nodes", 4, 3},
    {HEAD "  precision fp32\n}\n", "unknown precision 'fp32' (expected f32, bf16, f16, int8 or auto)", 3, 13},
    {HEAD "  $x\n}\n", "unexpected character '$'", 3, 3},
    {HEAD "  schedule threads 2\n  schedule threads 2\n}\n", "schedule given twice", 4, 3},
    {HEAD "  schedule threads 0\n}\n", "'threads' must be in 1..4294967295, got 0", 3, 20},
    {HEAD "  schedule tasks 2\n}\n", "expected 'threads', found 'tasks'", 3, 12},
    {HEAD "  %\n}\n", "expected a value name after '%' ([A-Za-z0-9_.]+ or a quoted string)", 3, 3},
    {HEAD "  layer \"x\"\n}\n",
     "expected a statement (param, weights, description, precision, max_elements, schedule, memory, "
     "%name = op(...)) or '}', found 'layer'",
     3, 3},
    {HEAD "  %y = relu(%x) : f32[batch,3,8,8]\n", "expected '}' at the end of the graph, found end of input", 4, 1},
    {HEAD "}\nx\n", "expected end of input after the graph's closing '}', found 'x'", 4, 1},
    {"kiln 1\ngraph @m(%x: f32[2]) -> (%x, %nope) {\n}\n", "undefined value %nope", 2, 30},
    /* element types (IR only) */
    {HEAD "  %y = convert(%x) {to=bf16} : f16[batch,3,8,8]\n}\n", "declared f16[batch,3,8,8] but convert makes bf16",
     3, 32},
    {HEAD "  %y = convert(%x) {to=i8} : i8[batch,3,8,8]\n}\n",
     "convert makes f32, bf16 or f16, not i8 (quantize makes i8 and u8)", 3, 8},
    {HEAD "  %y = convert(%x) {to=f64} : f64[batch,3,8,8]\n}\n",
     "attribute 'to' expects one of: f32, bf16, f16, i8, u8; found 'f64'", 3, 24},
    {HEAD "  param %s: f32[1] = data f32 [0x3f000000]\n  %y = quantize(%x, %s) {to=f16} : f16[batch,3,8,8]\n}\n",
     "quantize makes i8 or u8, not f16 (convert makes float types)", 4, 8},
    {HEAD "  param %s: f32[1] = data f32 [0x3f000000]\n  %y = dequantize(%x, %s) : f32[batch,3,8,8]\n}\n",
     "dequantize reads i8 or u8, not f32", 4, 8},
    {HEAD "  param %s: f32[1] = data f32 [0x3f000000]\n  %y = quantize(%x, %s) {to=i8, axis=0} : i8[batch,3,8,8]\n}\n",
     "axis 0 of [batch,3,8,8] is the batch dimension: quantize scales per channel of a fixed axis", 4, 8},
    {HEAD "  param %s: f32[1] = data f32 [0x3f000000]\n  %y = quantize(%x, %s) {to=i8, axis=4} : i8[batch,3,8,8]\n}\n",
     "axis 4 is out of range for [batch,3,8,8]", 4, 8},
    {HEAD "  param %s: f32[1] = data f32 [0x3f000000]\n  %y = quantize(%x, %s) {to=i8, axis=1} : i8[batch,3,8,8]\n}\n",
     "parameter 'scale' (s) must have shape [3], has [1]", 4, 8},
    {HEAD "  param %s: f32[1] = data f32 [0xbf000000]\n  %y = quantize(%x, %s) {to=i8} : i8[batch,3,8,8]\n}\n",
     "scale 0 is -0.5: scales must be positive and finite as f32", 4, 35},
    {HEAD "  param %s: f32[1] = data f32 [0x3f000000]\n  param %z: f32[1] = data f32 [0x43800000]\n"
          "  %y = quantize(%x, %s, %z) {to=u8} : u8[batch,3,8,8]\n}\n",
     "zero_point 0 is 256: it must be an integer in u8's range 0..255", 5, 39},
    {HEAD "  param %s: f32[1] = data f32 [0x3f000000]\n"
          "  %y = quantize(%x, %s) {to=i8} : i8[batch,3,8,8] q(scale=0.25, zp=0)\n}\n",
     "the type says q(scale=0.25, zp=0) but the parameters are scale 0.5, zero_point 0", 4, 35},
    {HEAD "  param %w: f32[4] = random 1 0.5 -0.5\n}\n",
     "the random range is empty: its low end 0.5 is above its high end -0.5", 3, 31},
};

static void test_parse_errors(void)
{
    for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
        const struct error_case *c = &error_cases[i];
        kiln_diag d;
        kiln_diag_init(&d);
        kiln_graph *g = (kiln_graph *)&d; /* must be reset to NULL */
        kiln_status st = parse_len(c->text, strlen(c->text), "t.kir", &g, &d);
        CU_ASSERT_EQUAL(st, KILN_ERR_PARSE);
        CU_ASSERT_PTR_NULL(g);
        bool ok = d.count >= 1 && strcmp(d.entries[0].message, c->message) == 0 &&
                  d.entries[0].loc.line == c->line && d.entries[0].loc.col == c->col &&
                  d.entries[0].loc.file != NULL && strcmp(d.entries[0].loc.file, "t.kir") == 0;
        if (!ok) {
            fprintf(stderr, "\ncase %zu: want %u:%u: %s\n", i, c->line, c->col, c->message);
            show_diag(&d);
        }
        CU_ASSERT(ok);
        kiln_diag_release(&d);
    }
}

/* Independent errors are all reported; uses of a value whose definition
 * failed are not reported again. */
static void test_parse_several_errors(void)
{
    const char *text = HEAD
        "  %a = conv3d(%x) : f32[batch,3,8,8]\n"          /* 3: unknown op */
        "  %b = relu(%a) : f32[batch,3,8,8]\n"            /* 4: quiet: %a failed */
        "  %c = relu(%b) : f32[batch,3,8,8]\n"            /* 5: quiet */
        "  param %k: f32[3] = data f32 [0x1, 0x2,\n"      /* 6: count (after line 7) */
        "     0x3, 0x4]\n"                                 /* 7 */
        "  %d = relu(%x) : f32[batch,3,8,9]\n"            /* 8: declared type */
        "  %e = relu(%nope) : f32[batch,3,8,8]\n"         /* 9: undefined */
        "  %f = relu(%x) : f32[batch,3,8,8]\n"            /* 10: fine */
        "  %g = relu(%f, %zz) : f32[batch,3,8,8]\n"       /* 11: undefined */
        "  %h = relu(%x) {\n"                              /* 12: broken list */
        "     alpha=1} : f32[batch,3,8,8]\n"               /* 13 */
        "}\n";
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_graph *g = NULL;
    CU_ASSERT_EQUAL(parse_len(text, strlen(text), "t.kir", &g, &d), KILN_ERR_PARSE);
    CU_ASSERT_PTR_NULL(g);
    static const unsigned lines[] = {3, 6, 8, 9, 11, 13};
    if (d.count != 6)
        show_diag(&d);
    CU_ASSERT_EQUAL_FATAL(d.count, 6);
    for (size_t i = 0; i < 6; i++)
        CU_ASSERT_EQUAL(d.entries[i].loc.line, lines[i]);
    kiln_diag_release(&d);
}

/* ---- robustness --------------------------------------------------------- */

/* Parses any bytes: a clean status and, when it parses, a stable print. */
static void check_any(const char *text, size_t len)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_graph *g = NULL;
    kiln_status st = parse_len(text, len, "fuzz.kir", &g, &d);
    CU_ASSERT(st == KILN_OK || st == KILN_ERR_PARSE);
    if (st == KILN_OK) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(g);
        char *t1 = print_text(g, NULL, NULL);
        kiln_graph *g2 = NULL;
        kiln_diag d2;
        kiln_diag_init(&d2);
        CU_ASSERT_EQUAL(parse_len(t1, strlen(t1), "fuzz.kir", &g2, &d2), KILN_OK);
        if (g2 != NULL) {
            char *t2 = print_text(g2, NULL, NULL);
            CU_ASSERT_STRING_EQUAL(t1, t2);
            free(t2);
        }
        kiln_graph_destroy(g2);
        kiln_diag_release(&d2);
        free(t1);
    } else {
        CU_ASSERT_PTR_NULL(g);
        CU_ASSERT(d.errors > 0);
    }
    kiln_graph_destroy(g);
    kiln_diag_release(&d);
}

static void test_every_prefix(void)
{
    kiln_graph *g = build_small();
    char *t = print_text(g, NULL, NULL);
    size_t len = strlen(t);
    for (size_t n = 0; n < len; n++) {
        /* A copy of exactly n bytes, so reading past the end shows under ASan. */
        char *copy = malloc(n ? n : 1);
        memcpy(copy, t, n);
        check_any(copy, n);
        free(copy);
    }
    free(t);
    kiln_graph_destroy(g);
}

static void test_nul_everywhere(void)
{
    kiln_graph *g = build_small();
    char *t = print_text(g, NULL, NULL);
    size_t len = strlen(t);
    for (size_t i = 0; i < len; i++) {
        char saved = t[i];
        t[i] = 0;
        kiln_diag d;
        kiln_diag_init(&d);
        kiln_graph *g2 = NULL;
        CU_ASSERT_EQUAL(parse_len(t, len, "nul.kir", &g2, &d), KILN_ERR_PARSE);
        CU_ASSERT_PTR_NULL(g2);
        kiln_diag_release(&d);
        t[i] = saved;
    }
    free(t);
    kiln_graph_destroy(g);
}

static void test_random_mutations(void)
{
    kiln_graph *g = build_all_ops();
    char *t = print_text(g, NULL, NULL);
    size_t len = strlen(t);
    static const char alphabet[] = "%@\"\\#[](){},:=-> \n\t0123456789abcxyz.e+_\x80\xff";
    uint64_t s = 0x9E3779B97F4A7C15ull;
    char *m = malloc(len + 16);
    for (int iter = 0; iter < 1500; iter++) {
        memcpy(m, t, len);
        size_t mlen = len;
        int edits = 1 + iter % 4;
        for (int e = 0; e < edits; e++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            size_t at = (size_t)(s >> 16) % mlen;
            int kind = (int)(s & 3);
            char c = alphabet[(s >> 8) % (sizeof alphabet - 1)];
            if (kind == 0 || kind == 1) {
                m[at] = c;
            } else if (kind == 2 && mlen > 1) {
                memmove(m + at, m + at + 1, mlen - at - 1);
                mlen--;
            } else if (mlen < len + 15) {
                memmove(m + at + 1, m + at, mlen - at);
                m[at] = c;
                mlen++;
            }
        }
        check_any(m, mlen);
    }
    free(m);
    free(t);
    kiln_graph_destroy(g);
}

/* Deeply nested-looking and huge inputs do not recurse or allocate wildly. */
static void test_pathological(void)
{
    size_t n = 200000;
    char *t = malloc(n + 64);
    strcpy(t, HEAD "  %y = relu(");
    size_t at = strlen(t);
    memset(t + at, '(', n - at);
    check_any(t, n);
    strcpy(t, HEAD "  param %w: f32[2147483647,2147483647] = data f32 [");
    at = strlen(t);
    for (size_t i = at; i + 5 < n; i += 5)
        memcpy(t + i, "0x1, ", 5);
    check_any(t, n - 8);
    strcpy(t, "kiln 1\ngraph @m() -> () {\n  description \"");
    at = strlen(t);
    memset(t + at, 'a', n - at);
    check_any(t, n);
    free(t);
}

static void test_alloc_failures(void)
{
    kiln_graph *g = build_small();
    char *t = print_text(g, NULL, NULL);
    size_t len = strlen(t);
    bool done = false;
    for (long n = 1; n < 100000 && !done; n++) {
        kiln_diag d;
        kiln_diag_init(&d);
        kiln_graph *g2 = NULL;
        kiln_alloc_fail_after(n, 1);
        kiln_status st = parse_len(t, len, "dir/oom.kir", &g2, &d);
        kiln_alloc_fail_after(-1, 0);
        if (st == KILN_OK) {
            done = true;
            char *t2 = print_text(g2, "dir", NULL);
            CU_ASSERT_STRING_EQUAL(t, t2);
            free(t2);
        } else {
            CU_ASSERT_EQUAL(st, KILN_ERR_OUT_OF_MEMORY);
            CU_ASSERT_PTR_NULL(g2);
        }
        kiln_graph_destroy(g2);
        kiln_diag_release(&d);
    }
    CU_ASSERT(done);
    /* The printer allocates only for relative paths. */
    kiln_alloc_fail_after(1, 1);
    kiln_status st;
    char *t3 = print_text(g, "elsewhere", &st);
    kiln_alloc_fail_after(-1, 0);
    CU_ASSERT_EQUAL(st, KILN_ERR_OUT_OF_MEMORY);
    free(t3);
    free(t);
    kiln_graph_destroy(g);
}

/* A graph the text form cannot express says so. */
static void test_print_invalid(void)
{
    kiln_graph *g = kiln_graph_create("bad");
    kiln_param p;
    memset(&p, 0, sizeof p);
    p.source = KILN_PARAM_INLINE; /* but no data */
    kiln_type t = TY(KILN_F32, 2);
    kiln_graph_add_param(g, "w", &t, &p, (kiln_loc){0});
    kiln_status st;
    char *text = print_text(g, NULL, &st);
    CU_ASSERT_EQUAL(st, KILN_ERR_INVALID_ARGUMENT);
    free(text);
    CU_ASSERT_EQUAL(kiln_ir_print(NULL, stdout, NULL), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(kiln_ir_parse("x", 1, "f", NULL, NULL), KILN_ERR_INVALID_ARGUMENT);
    kiln_graph *out = NULL;
    CU_ASSERT_EQUAL(kiln_ir_parse("x", 1, NULL, &out, NULL), KILN_ERR_PARSE); /* NULL diag is fine */
    CU_ASSERT_PTR_NULL(out);
    kiln_graph_destroy(g);
}

/* ---- DOT ---------------------------------------------------------------- */

static void test_dot(void)
{
    kiln_graph *g = build_all_ops();
    char *t = dot_text(g);
    CU_ASSERT(strncmp(t, "digraph \"all_ops\" {\n", 20) == 0);
    CU_ASSERT(t[strlen(t) - 2] == '}');
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "  v0 [shape=invhouse"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "label=\"x\\nf32[N,4,8,8]\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "label=\"conv2d\\nconv1\\n%conv1:pre\\nf32[N,8,8,8]\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "  v0 -> n0;\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "  v1 -> n0 [style=dashed"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "  n0 -> n2;\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "precision bf16"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "q\\\"uote\\\\back"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "new\\nline"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "ctl\\\\x01\\\\x7f"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "out0 [shape=house"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, " -> out2;\n"));
    /* One DOT node per IR node. */
    size_t boxes = 0;
    for (const char *p = t; (p = strstr(p, "[shape=box")) != NULL; p++)
        boxes++;
    CU_ASSERT_EQUAL(boxes, g->n_nodes);
    /* No raw control bytes or unescaped quotes break the DOT syntax: every
     * line ends in ';', '{' or '}'. */
    for (const char *line = t; *line;) {
        const char *end = strchr(line, '\n');
        CU_ASSERT_FATAL(end != NULL);
        char last = end[-1];
        CU_ASSERT(last == ';' || last == '{' || last == '}');
        line = end + 1;
    }
    free(t);
    kiln_graph_destroy(g);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite s = CU_add_suite("ir_text", NULL, NULL);
    if (s == NULL)
        return 2;
    CU_add_test(s, "round trip: every op", test_round_trip_all_ops);
    CU_add_test(s, "round trip: types, precision, inline data", test_round_trip_small);
    CU_add_test(s, "round trip: batch names", test_round_trip_batch_name);
    CU_add_test(s, "round trip: empty graph", test_round_trip_empty);
    CU_add_test(s, "print: exact text", test_print_exact);
    CU_add_test(s, "parse: stored contents", test_parse_contents);
    CU_add_test(s, "parse: defaults filled", test_parse_defaults);
    CU_add_test(s, "parse: comments, CRLF, multi-line lists", test_parse_lenient_layout);
    CU_add_test(s, "weights paths", test_weights_paths);
    CU_add_test(s, "parse errors: message and line:col", test_parse_errors);
    CU_add_test(s, "parse errors: several at once", test_parse_several_errors);
    CU_add_test(s, "robust: every prefix", test_every_prefix);
    CU_add_test(s, "robust: NUL bytes", test_nul_everywhere);
    CU_add_test(s, "robust: random mutations", test_random_mutations);
    CU_add_test(s, "robust: pathological inputs", test_pathological);
    CU_add_test(s, "robust: allocation failures", test_alloc_failures);
    CU_add_test(s, "print: invalid graphs", test_print_invalid);
    CU_add_test(s, "dot", test_dot);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed == 0 ? 0 : 1;
}
