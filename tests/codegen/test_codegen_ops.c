/* tests/codegen/test_codegen_ops.c: every op and attribute combination,
 * compiled (JIT) and compared with the reference interpreter at batch 1, 3
 * and 17 on 1, 2 and 3 threads (results must also be identical across
 * thread counts), with sizes around the vector width (15, 16, 17, 33) and
 * around each target's GEMM tile. One suite per target row (cg_util.h). */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

#include "cg_util.h"

#define TOL 1e-4
#define B (-1) /* the batch dimension */

static void expect_ok(kiln_graph *g)
{
    double e = tg_check_default(g);
    if (!(e >= 0 && e <= TOL))
        fprintf(stderr, "  model '%s': max error %g\n", g->name, e);
    CU_ASSERT(e >= 0 && e <= TOL);
    kiln_graph_destroy(g);
}

static void set_ints(kiln_node *n, kiln_attr_id id, const int64_t *v, int count) { kiln_node_set_ints(n, id, v, count); }

/* ---- elementwise ------------------------------------------------------------------ */

static const int64_t widths[] = {15, 16, 17, 33};

static void unary_case(kiln_op op, void (*attrs)(kiln_node *), const char *tag)
{
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
        char name[64];
        snprintf(name, sizeof name, "u_%s_%s_%lld", kiln_op_name(op), tag, (long long)widths[w]);
        kiln_graph *g = tg_new(name);
        kiln_id x = tg_input(g, "x", TG_DIMS(B, 3, widths[w]));
        kiln_id y = tg_node(g, op, &x, 1, "y");
        if (attrs)
            attrs(tg_last(g));
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
}

static void gelu_tanh(kiln_node *n) { kiln_node_set_int(n, KILN_ATTR_APPROXIMATE, 1); }
static void alpha_small(kiln_node *n) { kiln_node_set_float(n, KILN_ATTR_ALPHA, 0.1); }
static void alpha_half(kiln_node *n) { kiln_node_set_float(n, KILN_ATTR_ALPHA, 0.5); }
static void clip_both(kiln_node *n)
{
    kiln_node_set_float(n, KILN_ATTR_MIN, -0.5);
    kiln_node_set_float(n, KILN_ATTR_MAX, 0.75);
}
static void clip_min(kiln_node *n) { kiln_node_set_float(n, KILN_ATTR_MIN, -0.25); }
static void clip_max(kiln_node *n) { kiln_node_set_float(n, KILN_ATTR_MAX, 0.3); }

static void test_unary(void)
{
    static const kiln_op ops[] = {KILN_OP_RELU, KILN_OP_RELU6,   KILN_OP_SIGMOID, KILN_OP_TANH,
                                  KILN_OP_SILU, KILN_OP_HARDSWISH, KILN_OP_HARDSIGMOID, KILN_OP_EXP,
                                  KILN_OP_SQRT, KILN_OP_NEG,     KILN_OP_GELU,    KILN_OP_LEAKY_RELU,
                                  KILN_OP_ELU};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        unary_case(ops[i], NULL, "default");
    unary_case(KILN_OP_GELU, gelu_tanh, "tanh");
    unary_case(KILN_OP_LEAKY_RELU, alpha_small, "a01");
    unary_case(KILN_OP_ELU, alpha_half, "a05");
    unary_case(KILN_OP_CLIP, clip_both, "both");
    unary_case(KILN_OP_CLIP, clip_min, "min");
    unary_case(KILN_OP_CLIP, clip_max, "max");
}

typedef struct bshape {
    int ra, rb;
    int64_t a[5], b[5];
} bshape;

static void test_binary(void)
{
    static const bshape shapes[] = {
        {2, 2, {B, 17}, {B, 17}},           {3, 1, {B, 3, 5}, {5}},          {3, 2, {B, 3, 5}, {3, 1}},
        {3, 2, {B, 3, 1}, {1, 16}},         {3, 3, {B, 1, 33}, {B, 4, 1}},   {4, 3, {B, 2, 3, 4}, {1, 3, 1}},
        {3, 2, {3, 1, 15}, {4, 1}},         {2, 2, {B, 16}, {1, 16}},        {4, 4, {B, 3, 4, 5}, {B, 3, 4, 5}},
        {2, 3, {17, 1}, {B, 1, 16}},        {1, 1, {1}, {1}},
    };
    static const kiln_op ops[] = {KILN_OP_ADD, KILN_OP_SUB, KILN_OP_MUL, KILN_OP_DIV, KILN_OP_MAX, KILN_OP_MIN};
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            char name[64];
            snprintf(name, sizeof name, "b_%s_%zu", kiln_op_name(ops[o]), s);
            kiln_graph *g = tg_new(name);
            kiln_id in[2] = {tg_input(g, "a", shapes[s].ra, shapes[s].a), tg_input(g, "b", shapes[s].rb, shapes[s].b)};
            kiln_id y = tg_node(g, ops[o], in, 2, "y");
            CU_ASSERT_FATAL(tg_finish(g));
            tg_output(g, y);
            expect_ok(g);
        }
        for (int rev = 0; rev < 2; rev++) {
            char name[64];
            snprintf(name, sizeof name, "s_%s_%d", kiln_op_name(ops[o]), rev);
            kiln_graph *g = tg_new(name);
            kiln_id x = tg_input(g, "x", TG_DIMS(B, 2, 17));
            kiln_id y = tg_node(g, ops[o], &x, 1, "y");
            kiln_node_set_float(tg_last(g), KILN_ATTR_SCALAR, 0.625);
            kiln_node_set_bool(tg_last(g), KILN_ATTR_REVERSE, rev);
            CU_ASSERT_FATAL(tg_finish(g));
            tg_output(g, y);
            expect_ok(g);
        }
    }
    /* A parameter operand (through constant) and a chain. */
    kiln_graph *g = tg_new("b_const");
    kiln_id x = tg_input(g, "x", TG_DIMS(B, 3, 4));
    kiln_id p = tg_param(g, "p", TG_DIMS(3, 4), -1, 1);
    kiln_id c = tg_node(g, KILN_OP_CONSTANT, &p, 1, "c");
    CU_ASSERT_FATAL(tg_finish(g));
    kiln_id in[2] = {x, c};
    kiln_id y = tg_node(g, KILN_OP_MUL, in, 2, "y");
    CU_ASSERT_FATAL(tg_finish(g));
    tg_output(g, y);
    expect_ok(g);
}

/* ---- dense and matmul ---------------------------------------------------------------- */

static void dense_case(int rank, const int64_t *dims, int64_t units, bool bias)
{
    char name[64];
    snprintf(name, sizeof name, "dense_%d_%lld_%lld_%d", rank, (long long)dims[rank - 1], (long long)units, bias);
    kiln_graph *g = tg_new(name);
    kiln_id in[3];
    in[0] = tg_input(g, "x", rank, dims);
    int64_t K = dims[rank - 1];
    in[1] = tg_param(g, "fc.weight", TG_DIMS(units, K), -0.5, 0.5);
    if (bias)
        in[2] = tg_param(g, "fc.bias", TG_DIMS(units), -0.5, 0.5);
    kiln_id y = tg_node(g, KILN_OP_DENSE, in, bias ? 3 : 2, "y");
    kiln_node_set_int(tg_last(g), KILN_ATTR_UNITS, units);
    CU_ASSERT_FATAL(tg_finish(g));
    tg_output(g, y);
    expect_ok(g);
}

static void test_dense(void)
{
    static const int64_t units[] = {1, 15, 16, 17, 33, 100};
    for (size_t k = 0; k < sizeof widths / sizeof widths[0]; k++)
        for (size_t u = 0; u < sizeof units / sizeof units[0]; u++)
            dense_case(2, (const int64_t[]){B, widths[k]}, units[u], true);
    dense_case(3, (const int64_t[]){B, 5, 17}, 33, true);
    dense_case(2, (const int64_t[]){B, 33}, 17, false);
    dense_case(2, (const int64_t[]){7, 17}, 15, true);
    dense_case(2, (const int64_t[]){B, 300}, 260, true);
    /* around the K block (256) and the one-row kernel's width (64 columns) */
    dense_case(2, (const int64_t[]){B, 256}, 64, true);
    dense_case(2, (const int64_t[]){B, 257}, 65, true);
    dense_case(2, (const int64_t[]){B, 513}, 129, false);
    /* rows far apart (K a multiple of 1024, or >= 2048): the copy-A nest with
     * column blocks (several of them at 700 columns), a partial last K block */
    dense_case(2, (const int64_t[]){B, 1024}, 300, true);
    dense_case(2, (const int64_t[]){B, 2050}, 2100, false);
    dense_case(3, (const int64_t[]){B, 5, 1024}, 129, true);
}

typedef struct mcase {
    int ra, rb;
    int64_t a[5], b[5];
    bool tb, b_param;
} mcase;

/* Sizes around every target's GEMM tile (rows: 4 SSE, 6 AVX2, 14 AVX-512;
 * columns: panels of 8, 16 or 32 and the one-row kernel's wider tiles), so
 * each row's micro-kernel variants and masked flushes run whatever row the
 * suite is on: rows tile-1, tile, tile+1 and 2 x tile; columns likewise. */
static void test_gemm_tiles(void)
{
    static const int64_t rows[] = {3, 4, 5, 6, 7, 8, 12, 13, 14, 15, 28, 29};
    static const int64_t cols[] = {7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 97, 129};
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
        dense_case(2, (const int64_t[]){rows[r], 40}, 33, r % 2 == 0);
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
        dense_case(2, (const int64_t[]){15, 24}, cols[c], true);
        dense_case(2, (const int64_t[]){1, 24}, cols[c], false);
    }
    /* convolution filters are the packed A's rows */
    static const int64_t filters[] = {3, 5, 7, 13, 14, 15, 29};
    for (size_t f = 0; f < sizeof filters / sizeof filters[0]; f++)
        for (int64_t k = 1; k <= 3; k += 2) {
            char name[64];
            snprintf(name, sizeof name, "tile_conv_%lld_%lld", (long long)filters[f], (long long)k);
            kiln_graph *g = tg_new(name);
            kiln_id in[3] = {tg_input(g, "x", TG_DIMS(B, 6, 7, 9)),
                             tg_param(g, "conv.weight", TG_DIMS(filters[f], 6, k, k), -0.5, 0.5),
                             tg_param(g, "conv.bias", TG_DIMS(filters[f]), -0.5, 0.5)};
            kiln_id y = tg_node(g, KILN_OP_CONV2D, in, 3, "y");
            kiln_node *n = tg_last(g);
            kiln_node_set_int(n, KILN_ATTR_FILTERS, filters[f]);
            set_ints(n, KILN_ATTR_KERNEL, (const int64_t[]){k, k}, 2);
            set_ints(n, KILN_ATTR_STRIDE, (const int64_t[]){1, 1}, 2);
            set_ints(n, KILN_ATTR_PADDING, (const int64_t[]){k / 2, k / 2, k / 2, k / 2}, 4);
            CU_ASSERT_FATAL(tg_finish(g));
            tg_output(g, y);
            expect_ok(g);
        }
}

static void test_matmul(void)
{
    static const mcase cases[] = {
        {2, 2, {B, 17}, {17, 15}, false, true},
        {3, 2, {B, 4, 5}, {5, 17}, false, true},
        {4, 4, {B, 3, 4, 5}, {B, 3, 5, 6}, false, false},
        {4, 4, {B, 2, 7, 16}, {B, 2, 9, 16}, true, false},
        {4, 4, {B, 2, 7, 33}, {B, 2, 17, 33}, true, false},
        {3, 2, {B, 5, 17}, {15, 17}, true, true},
        {3, 1, {B, 5, 17}, {17}, false, true},
        {3, 1, {B, 5, 17}, {17}, true, true},
        {4, 3, {B, 3, 4, 5}, {1, 5, 6}, false, true},
        {2, 3, {4, 5}, {B, 5, 6}, false, false},
        {1, 3, {5}, {B, 5, 6}, false, false},
        {3, 3, {B, 16, 16}, {B, 16, 16}, false, false},
        {4, 3, {B, 2, 3, 4}, {2, 4, 3}, false, true},
        {2, 2, {6, 7}, {7, 5}, false, false},
        {2, 2, {B, 40}, {40, 70}, false, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const mcase *c = &cases[i];
        char name[64];
        snprintf(name, sizeof name, "matmul_%zu", i);
        kiln_graph *g = tg_new(name);
        kiln_id in[2];
        in[0] = tg_input(g, "a", c->ra, c->a);
        if (c->b_param) {
            kiln_id p = tg_param(g, "w", c->rb, c->b, -1, 1);
            in[1] = tg_node(g, KILN_OP_CONSTANT, &p, 1, "wc");
            CU_ASSERT_FATAL(tg_finish(g));
        } else {
            in[1] = tg_input(g, "b", c->rb, c->b);
        }
        kiln_id y = tg_node(g, KILN_OP_MATMUL, in, 2, "y");
        kiln_node_set_bool(tg_last(g), KILN_ATTR_TRANSPOSE_B, c->tb);
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
}

/* ---- conv and pools --------------------------------------------------------------------- */

typedef struct ccase {
    int64_t c, f, h, w, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, groups;
    bool bias, batched;
} ccase;

static void test_conv2d(void)
{
    static const ccase cases[] = {
        /* c  f   h   w  kh kw sh sw pt pl pb pr dh dw g  bias batched */
        {3, 8, 15, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, true},
        {4, 6, 16, 16, 3, 3, 2, 2, 0, 1, 1, 2, 1, 1, 1, true, true},
        {4, 4, 17, 15, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 4, true, true},   /* depthwise */
        {4, 8, 16, 17, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 4, true, true},   /* depthwise, multiplier 2 */
        {4, 4, 9, 33, 5, 3, 1, 2, 2, 0, 1, 2, 2, 1, 4, false, true},   /* depthwise, dilation, asym */
        {6, 9, 13, 14, 3, 5, 2, 1, 1, 2, 0, 1, 2, 1, 3, true, true},   /* groups 3, dilation */
        {8, 16, 7, 9, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, true, true},    /* 1x1 */
        {8, 16, 7, 9, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1, true, true},    /* 1x1 stride 2 */
        {8, 12, 5, 6, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 2, false, true},   /* 1x1 grouped */
        {1, 6, 28, 28, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1, true, true},   /* lenet conv1: 6 filters per pass */
        {1, 16, 12, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, true},  /* one channel: two passes of 8 filters */
        {2, 12, 10, 11, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 2, true, false}, /* groups 2 of 6 filters, fixed shapes */
        {2, 22, 9, 10, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2, false, true},  /* groups of 11 filters: one per pass */
        {3, 5, 9, 9, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1, false, false},   /* fixed shapes */
        {3, 17, 20, 19, 7, 7, 2, 2, 3, 3, 3, 3, 1, 1, 1, true, true},  /* stem-like */
        {16, 33, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, true},   /* filters 33 */
        /* implicit GEMM: K over two blocks (40*9 = 360) on 7x7 (vectors span rows) */
        {40, 12, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, true},
        {6, 10, 9, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, true, true},    /* stride 2 across rows: gathers */
        {5, 7, 13, 12, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1, false, true},  /* 5x5, 12 wide */
        {3, 4, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, true},     /* 3 wide: 3 rows per vector */
        {3, 4, 2, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, true},     /* 2 wide: gathers */
        {16, 20, 10, 10, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1, true, true}, /* dilation 2 */
        {8, 300, 5, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, true, true},   /* 300 filters: row blocks */
        {24, 24, 30, 30, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 24, true, true},/* depthwise, stride 2, interior */
        {6, 6, 14, 28, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 6, true, true},   /* depthwise, stride 2, 14 wide: borders */
        {4, 4, 9, 40, 3, 36, 1, 1, 1, 2, 1, 2, 1, 1, 4, true, true},   /* depthwise, 36 wide kernel: masks per tap */
        {5, 5, 11, 19, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 5, false, true},  /* depthwise, stride 3: gathers */
        /* implicit GEMM with several K blocks and several row tiles of the K-block-major weights */
        {40, 33, 9, 10, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, true, true},
        {70, 45, 6, 7, 3, 3, 1, 1, 1, 1, 1, 1, 2, 2, 1, false, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const ccase *c = &cases[i];
        char name[64];
        snprintf(name, sizeof name, "conv_%zu", i);
        kiln_graph *g = tg_new(name);
        kiln_id in[3];
        in[0] = tg_input(g, "x", TG_DIMS(c->batched ? B : 2, c->c, c->h, c->w));
        in[1] = tg_param(g, "conv.weight", TG_DIMS(c->f, c->c / c->groups, c->kh, c->kw), -0.5, 0.5);
        if (c->bias)
            in[2] = tg_param(g, "conv.bias", TG_DIMS(c->f), -0.5, 0.5);
        kiln_id y = tg_node(g, KILN_OP_CONV2D, in, c->bias ? 3 : 2, "y");
        kiln_node *n = tg_last(g);
        kiln_node_set_int(n, KILN_ATTR_FILTERS, c->f);
        set_ints(n, KILN_ATTR_KERNEL, (const int64_t[]){c->kh, c->kw}, 2);
        set_ints(n, KILN_ATTR_STRIDE, (const int64_t[]){c->sh, c->sw}, 2);
        set_ints(n, KILN_ATTR_PADDING, (const int64_t[]){c->pt, c->pl, c->pb, c->pr}, 4);
        set_ints(n, KILN_ATTR_DILATION, (const int64_t[]){c->dh, c->dw}, 2);
        kiln_node_set_int(n, KILN_ATTR_GROUPS, c->groups);
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
}

typedef struct pcase {
    bool max;
    int64_t h, w, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw;
    bool ceil_mode, include_pad;
} pcase;

static void test_pools(void)
{
    static const pcase cases[] = {
        /* max h   w  kh kw sh sw pt pl pb pr dh dw ceil incl */
        {true, 16, 17, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, false, true},
        {true, 15, 33, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false, true},
        {true, 15, 16, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1, true, true},
        {true, 17, 17, 3, 2, 1, 2, 1, 0, 0, 1, 2, 1, false, true},
        {true, 9, 10, 2, 3, 3, 2, 1, 1, 0, 1, 1, 2, true, true},
        {false, 16, 17, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, false, true},
        {false, 15, 33, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false, true},
        {false, 15, 33, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false, false},
        {false, 15, 16, 3, 3, 2, 2, 1, 0, 1, 1, 1, 1, true, true},
        {false, 15, 16, 3, 3, 2, 2, 1, 0, 1, 1, 1, 1, true, false},
        {false, 7, 7, 7, 7, 1, 1, 0, 0, 0, 0, 1, 1, false, true},
        {false, 10, 11, 3, 2, 1, 3, 0, 1, 1, 0, 1, 1, true, false},
        {true, 6, 40, 2, 35, 1, 1, 0, 2, 0, 3, 1, 1, false, true},   /* kernel wider than 32: masks per tap */
        {false, 6, 40, 1, 34, 1, 2, 0, 1, 0, 1, 1, 1, false, false}, /* likewise, stride 2 */
        {true, 8, 21, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false, true},    /* stride 2: every row ends at a border */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const pcase *c = &cases[i];
        char name[64];
        snprintf(name, sizeof name, "pool_%zu", i);
        kiln_graph *g = tg_new(name);
        kiln_id x = tg_input(g, "x", TG_DIMS(B, 3, c->h, c->w));
        kiln_id y = tg_node(g, c->max ? KILN_OP_MAXPOOL2D : KILN_OP_AVGPOOL2D, &x, 1, "y");
        kiln_node *n = tg_last(g);
        set_ints(n, KILN_ATTR_KERNEL, (const int64_t[]){c->kh, c->kw}, 2);
        set_ints(n, KILN_ATTR_STRIDE, (const int64_t[]){c->sh, c->sw}, 2);
        set_ints(n, KILN_ATTR_PADDING, (const int64_t[]){c->pt, c->pl, c->pb, c->pr}, 4);
        if (c->max)
            set_ints(n, KILN_ATTR_DILATION, (const int64_t[]){c->dh, c->dw}, 2);
        else
            kiln_node_set_bool(n, KILN_ATTR_COUNT_INCLUDE_PAD, c->include_pad);
        kiln_node_set_bool(n, KILN_ATTR_CEIL_MODE, c->ceil_mode);
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
    static const int64_t gshapes[][4] = {{B, 5, 7, 9}, {B, 3, 1, 1}, {B, 17, 4, 4}, {2, 3, 5, 5}};
    for (size_t i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "gap_%zu", i);
        kiln_graph *g = tg_new(name);
        kiln_id x = tg_input(g, "x", 4, gshapes[i]);
        kiln_id y = tg_node(g, KILN_OP_GLOBAL_AVGPOOL, &x, 1, "y");
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
}

/* ---- normalization ---------------------------------------------------------------------- */

static void test_norm(void)
{
    static const int64_t bn_shapes[][4] = {{B, 5, 4, 4}, {B, 17, 0, 0}, {B, 3, 5, 0}, {B, 16, 3, 7}};
    static const int bn_ranks[] = {4, 2, 3, 4};
    for (size_t i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "bn_%zu", i);
        kiln_graph *g = tg_new(name);
        int64_t C = bn_shapes[i][1];
        kiln_id in[5] = {tg_input(g, "x", bn_ranks[i], bn_shapes[i]), tg_param(g, "bn.weight", TG_DIMS(C), 0.5, 1.5),
                         tg_param(g, "bn.bias", TG_DIMS(C), -0.5, 0.5), tg_param(g, "bn.mean", TG_DIMS(C), -0.5, 0.5),
                         tg_param(g, "bn.var", TG_DIMS(C), 0.5, 2.0)};
        kiln_id y = tg_node(g, KILN_OP_BATCHNORM, in, 5, "y");
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
    static const int64_t ln_shapes[][3] = {{B, 17, 0}, {B, 4, 33}, {B, 3, 16}, {5, 15, 0}};
    static const int ln_ranks[] = {2, 3, 3, 2};
    for (size_t i = 0; i < 4; i++) {
        for (int affine = 0; affine < 3; affine += 2) { /* no parameters, or weight and bias */
            char name[64];
            snprintf(name, sizeof name, "ln_%zu_%d", i, affine);
            kiln_graph *g = tg_new(name);
            int64_t D = ln_shapes[i][ln_ranks[i] - 1];
            kiln_id in[3] = {tg_input(g, "x", ln_ranks[i], ln_shapes[i]), KILN_NO_ID, KILN_NO_ID};
            uint32_t n_in = 1;
            if (affine >= 1)
                in[n_in++] = tg_param(g, "ln.weight", TG_DIMS(D), 0.5, 1.5);
            if (affine >= 2)
                in[n_in++] = tg_param(g, "ln.bias", TG_DIMS(D), -0.5, 0.5);
            kiln_id y = tg_node(g, KILN_OP_LAYERNORM, in, n_in, "y");
            kiln_node_set_float(tg_last(g), KILN_ATTR_EPS, affine == 1 ? 1e-3 : 1e-5);
            CU_ASSERT_FATAL(tg_finish(g));
            tg_output(g, y);
            expect_ok(g);
        }
    }
    static const struct {
        int rank;
        int64_t dims[4];
        int64_t axis;
    } sm[] = {{2, {B, 17}, 1}, {3, {B, 3, 16}, 1}, {3, {B, 3, 16}, 2}, {4, {B, 4, 5, 6}, 2},
              {4, {B, 4, 5, 33}, 3}, {2, {3, 40}, 0}, {2, {3, 40}, 1}, {3, {B, 1, 1}, 2}};
    for (size_t i = 0; i < sizeof sm / sizeof sm[0]; i++) {
        for (int lg = 0; lg < 2; lg++) {
            char name[64];
            snprintf(name, sizeof name, "softmax_%zu_%d", i, lg);
            kiln_graph *g = tg_new(name);
            kiln_id x = tg_input(g, "x", sm[i].rank, sm[i].dims);
            kiln_id y = tg_node(g, lg ? KILN_OP_LOG_SOFTMAX : KILN_OP_SOFTMAX, &x, 1, "y");
            kiln_node_set_int(tg_last(g), KILN_ATTR_AXIS, sm[i].axis);
            CU_ASSERT_FATAL(tg_finish(g));
            tg_output(g, y);
            expect_ok(g);
        }
    }
}

/* ---- shape ops ---------------------------------------------------------------------------- */

static void test_shape(void)
{
    /* concat */
    static const struct {
        int64_t axis;
        int n;
        int64_t d[3][3];
    } cc[] = {{1, 2, {{B, 3, 4}, {B, 5, 4}}}, {2, 3, {{B, 3, 4}, {B, 3, 1}, {B, 3, 17}}}, {1, 2, {{B, 1, 16}, {B, 2, 16}}}};
    for (size_t i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "concat_%zu", i);
        kiln_graph *g = tg_new(name);
        kiln_id in[3];
        for (int k = 0; k < cc[i].n; k++) {
            char nm[8];
            snprintf(nm, sizeof nm, "x%d", k);
            in[k] = tg_input(g, nm, 3, cc[i].d[k]);
        }
        kiln_id y = tg_node(g, KILN_OP_CONCAT, in, (uint32_t)cc[i].n, "y");
        kiln_node_set_int(tg_last(g), KILN_ATTR_AXIS, cc[i].axis);
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
    /* transpose */
    static const struct {
        int rank;
        int64_t dims[4], perm[4];
    } tr[] = {{4, {B, 3, 4, 5}, {0, 2, 1, 3}}, {4, {B, 3, 4, 17}, {0, 3, 1, 2}}, {4, {B, 3, 4, 5}, {0, 3, 2, 1}},
              {2, {17, 15}, {1, 0}},           {3, {B, 16, 33}, {0, 2, 1}},     {4, {B, 1, 4, 5}, {0, 2, 3, 1}}};
    for (size_t i = 0; i < sizeof tr / sizeof tr[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "transpose_%zu", i);
        kiln_graph *g = tg_new(name);
        kiln_id x = tg_input(g, "x", tr[i].rank, tr[i].dims);
        kiln_id y = tg_node(g, KILN_OP_TRANSPOSE, &x, 1, "y");
        set_ints(tg_last(g), KILN_ATTR_PERM, tr[i].perm, tr[i].rank);
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
    /* mean */
    static const struct {
        int n_axes;
        int64_t axes[3];
        bool keep;
    } mn[] = {{2, {2, 3}, true}, {1, {1}, false}, {2, {1, 3}, true}, {1, {2}, false}, {3, {1, 2, 3}, false}};
    for (size_t i = 0; i < sizeof mn / sizeof mn[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "mean_%zu", i);
        kiln_graph *g = tg_new(name);
        kiln_id x = tg_input(g, "x", TG_DIMS(B, 3, 17, 5));
        kiln_id y = tg_node(g, KILN_OP_MEAN, &x, 1, "y");
        set_ints(tg_last(g), KILN_ATTR_AXES, mn[i].axes, mn[i].n_axes);
        kiln_node_set_bool(tg_last(g), KILN_ATTR_KEEPDIMS, mn[i].keep);
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
    /* pad */
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "pad_%d", i);
        kiln_graph *g = tg_new(name);
        kiln_id x = i == 2 ? tg_input(g, "x", TG_DIMS(B, 16, 17)) : tg_input(g, "x", TG_DIMS(B, 3, 5, 6));
        kiln_id y = tg_node(g, KILN_OP_PAD, &x, 1, "y");
        set_ints(tg_last(g), KILN_ATTR_PADS, i == 0 ? (const int64_t[]){1, 2, 0, 3} : (const int64_t[]){0, 0, 2, 17},
                 4);
        kiln_node_set_float(tg_last(g), KILN_ATTR_VALUE, i == 0 ? 0.5 : 0.0);
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
    /* aliases: flatten, reshape, identity, dropout, in a chain and as outputs */
    kiln_graph *g = tg_new("alias");
    kiln_id x = tg_input(g, "x", TG_DIMS(B, 3, 4, 5));
    kiln_id f = tg_node(g, KILN_OP_FLATTEN, &x, 1, "flat");
    CU_ASSERT_FATAL(tg_finish(g));
    kiln_id r = tg_node(g, KILN_OP_RESHAPE, &f, 1, "resh");
    set_ints(tg_last(g), KILN_ATTR_SHAPE, (const int64_t[]){0, 6, 10}, 3);
    CU_ASSERT_FATAL(tg_finish(g));
    kiln_id id = tg_node(g, KILN_OP_IDENTITY, &r, 1, "ident");
    CU_ASSERT_FATAL(tg_finish(g));
    kiln_id dr = tg_node(g, KILN_OP_DROPOUT, &id, 1, "drop");
    CU_ASSERT_FATAL(tg_finish(g));
    kiln_id relu = tg_node(g, KILN_OP_RELU, &dr, 1, "relu");
    CU_ASSERT_FATAL(tg_finish(g));
    kiln_id fl2 = tg_node(g, KILN_OP_FLATTEN, &relu, 1, "flat2");
    CU_ASSERT_FATAL(tg_finish(g));
    tg_output(g, fl2);
    tg_output(g, id);
    expect_ok(g);
}

/* A small network through every path at once, also with expose_values. */
static void test_network(void)
{
    for (int expose = 0; expose < 2; expose++) {
        kiln_graph *g = tg_new(expose ? "net_exposed" : "net");
        kiln_id x = tg_input(g, "image", TG_DIMS(B, 1, 12, 12));
        kiln_id in[3] = {x, tg_param(g, "c1.weight", TG_DIMS(4, 1, 3, 3), -0.5, 0.5),
                         tg_param(g, "c1.bias", TG_DIMS(4), -0.1, 0.1)};
        kiln_id c1 = tg_node(g, KILN_OP_CONV2D, in, 3, "c1");
        kiln_node_set_int(tg_last(g), KILN_ATTR_FILTERS, 4);
        set_ints(tg_last(g), KILN_ATTR_KERNEL, (const int64_t[]){3, 3}, 2);
        set_ints(tg_last(g), KILN_ATTR_PADDING, (const int64_t[]){1, 1, 1, 1}, 4);
        CU_ASSERT_FATAL(tg_finish(g));
        kiln_id r1 = tg_node(g, KILN_OP_RELU, &c1, 1, "r1");
        CU_ASSERT_FATAL(tg_finish(g));
        kiln_id p1 = tg_node(g, KILN_OP_MAXPOOL2D, &r1, 1, "p1");
        set_ints(tg_last(g), KILN_ATTR_KERNEL, (const int64_t[]){2, 2}, 2);
        CU_ASSERT_FATAL(tg_finish(g));
        kiln_id fl = tg_node(g, KILN_OP_FLATTEN, &p1, 1, "flat");
        CU_ASSERT_FATAL(tg_finish(g));
        kiln_id din[3] = {fl, tg_param(g, "fc.weight", TG_DIMS(10, 144), -0.2, 0.2),
                          tg_param(g, "fc.bias", TG_DIMS(10), -0.1, 0.1)};
        kiln_id fc = tg_node(g, KILN_OP_DENSE, din, 3, "fc");
        kiln_node_set_int(tg_last(g), KILN_ATTR_UNITS, 10);
        CU_ASSERT_FATAL(tg_finish(g));
        kiln_id sm = tg_node(g, KILN_OP_SOFTMAX, &fc, 1, "probs");
        kiln_node_set_int(tg_last(g), KILN_ATTR_AXIS, 1);
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, sm);
        kiln_cg_options o = KILN_CG_OPTIONS_INIT;
        o.expose_values = expose;
        static const int64_t batches[] = {1, 3, 17};
        static const int threads[] = {1, 2, 3};
        double e = tg_check(g, &o, batches, 3, threads, 3);
        CU_ASSERT(e >= 0 && e <= TOL);
        /* -O0 and -O3 too */
        o.opt_level = expose ? 0 : 3;
        e = tg_check(g, &o, batches, 1, threads, 1);
        CU_ASSERT(e >= 0 && e <= TOL);
        kiln_graph_destroy(g);
    }
}

static void add_tests(CU_pSuite s)
{
    CU_add_test(s, "unary", test_unary);
    CU_add_test(s, "binary", test_binary);
    CU_add_test(s, "dense", test_dense);
    CU_add_test(s, "gemm tiles", test_gemm_tiles);
    CU_add_test(s, "matmul", test_matmul);
    CU_add_test(s, "conv2d", test_conv2d);
    CU_add_test(s, "pools", test_pools);
    CU_add_test(s, "norm", test_norm);
    CU_add_test(s, "shape", test_shape);
    CU_add_test(s, "network", test_network);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    tg_add_suites("codegen_ops", add_tests);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
