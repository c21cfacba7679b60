/* tests/codegen/test_codegen_ops.c: every op and attribute combination,
 * compiled (JIT) and compared with the reference interpreter at batch 1, 3
 * and 17 on 1, 2 and 3 threads (results must also be identical across
 * thread counts), with sizes around the vector width (15, 16, 17, 33) and
 * around each target's GEMM tile. One suite per target row (cg_util.h).
 *
 * The registry below holds each op's cases and tolerance, one CUnit test per
 * op; the test "op table" fails when an op of ir/ops.def lacks an
 * interpreter entry, a kernel, a registry entry or a tolerance
 * (docs/adding-an-op.md).
 *
 * KILN_TEST_ONLY="slice resize" in the environment runs only the entries
 * whose op name occurs in it (and the op table and network tests). */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "cg_util.h"

#include "compiler/interp/interp.h"

#define TOL 1e-4
/* Version 1.1 ops, about ten times the largest error measured on any target
 * row (in parentheses): copies are exact; pow's error grows with the
 * exponent (kernels/pow.c). */
#define TOL_EXACT 1e-7    /* slice, expand, abs (0) */
#define TOL_PRELU 1e-6    /* (6e-8) */
#define TOL_UNARY11 1e-6  /* erf (2.6e-7 over [-6, 6]), log (1.1e-7), softplus (1.5e-7); a softplus
                           * threshold of 10 instead of 20 is off by 4.5e-6 */
#define TOL_POW 5e-5      /* (5.5e-6 for 3^(40 x): exponents to 80) */
#define TOL_RESIZE 5e-5   /* (7.2e-6, bicubic) */
#define TOL_APOOL 5e-5    /* (4.0e-6) */
#define TOL_GN 5e-5       /* (5.4e-6) */
#define TOL_ZERO 0.0      /* convert, quantize, dequantize: equal values (see their cases) */
#define B (-1) /* the batch dimension */

/* The tolerance of the op being tested (its registry entry's). */
static double tol_now = TOL;

static void expect_ok(kiln_graph *g)
{
    double e = tg_check_default(g);
    if (!(e >= 0 && e <= tol_now))
        fprintf(stderr, "  model '%s': max error %g (tolerance %g)\n", g->name, e, tol_now);
    CU_ASSERT(e >= 0 && e <= tol_now);
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

/* A one-input op with its default attributes. */
static void cases_unary(kiln_op op) { unary_case(op, NULL, "default"); }

static void cases_gelu(kiln_op op)
{
    unary_case(op, NULL, "default");
    unary_case(op, gelu_tanh, "tanh");
}

static void cases_alpha(kiln_op op)
{
    unary_case(op, NULL, "default");
    unary_case(op, op == KILN_OP_ELU ? alpha_half : alpha_small, "alpha");
}

static void cases_clip(kiln_op op)
{
    unary_case(op, clip_both, "both");
    unary_case(op, clip_min, "min");
    unary_case(op, clip_max, "max");
}

typedef struct bshape {
    int ra, rb;
    int64_t a[5], b[5];
} bshape;

static void cases_binary(kiln_op op)
{
    static const bshape shapes[] = {
        {2, 2, {B, 17}, {B, 17}},           {3, 1, {B, 3, 5}, {5}},          {3, 2, {B, 3, 5}, {3, 1}},
        {3, 2, {B, 3, 1}, {1, 16}},         {3, 3, {B, 1, 33}, {B, 4, 1}},   {4, 3, {B, 2, 3, 4}, {1, 3, 1}},
        {3, 2, {3, 1, 15}, {4, 1}},         {2, 2, {B, 16}, {1, 16}},        {4, 4, {B, 3, 4, 5}, {B, 3, 4, 5}},
        {2, 3, {17, 1}, {B, 1, 16}},        {1, 1, {1}, {1}},
    };
    const kiln_op ops[] = {op};
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
}

/* A parameter as a value (an operand of a binary op and of matmul). */
static void cases_constant(kiln_op op)
{
    kiln_graph *g = tg_new("b_const");
    kiln_id x = tg_input(g, "x", TG_DIMS(B, 3, 4));
    kiln_id p = tg_param(g, "p", TG_DIMS(3, 4), -1, 1);
    kiln_id c = tg_node(g, op, &p, 1, "c");
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

static void gemm_tile_sizes(void);

static void cases_dense(kiln_op op)
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
    gemm_tile_sizes();
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
static void gemm_tile_sizes(void)
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

static void cases_matmul(kiln_op op)
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

static void cases_conv2d(kiln_op op)
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

static void cases_pool(kiln_op op)
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
        if (c->max != (op == KILN_OP_MAXPOOL2D))
            continue;
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
}

static void cases_global_avgpool(kiln_op op)
{
    static const int64_t gshapes[][4] = {{B, 5, 7, 9}, {B, 3, 1, 1}, {B, 17, 4, 4}, {2, 3, 5, 5}};
    for (size_t i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "gap_%zu", i);
        kiln_graph *g = tg_new(name);
        kiln_id x = tg_input(g, "x", 4, gshapes[i]);
        kiln_id y = tg_node(g, op, &x, 1, "y");
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
}

/* ---- normalization ---------------------------------------------------------------------- */

static void cases_batchnorm(kiln_op op)
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
}

static void cases_layernorm(kiln_op op)
{
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
}

static void cases_softmax(kiln_op op)
{
    static const struct {
        int rank;
        int64_t dims[4];
        int64_t axis;
    } sm[] = {{2, {B, 17}, 1}, {3, {B, 3, 16}, 1}, {3, {B, 3, 16}, 2}, {4, {B, 4, 5, 6}, 2},
              {4, {B, 4, 5, 33}, 3}, {2, {3, 40}, 0}, {2, {3, 40}, 1}, {3, {B, 1, 1}, 2}};
    for (size_t i = 0; i < sizeof sm / sizeof sm[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s_%zu", kiln_op_name(op), i);
        kiln_graph *g = tg_new(name);
        kiln_id x = tg_input(g, "x", sm[i].rank, sm[i].dims);
        kiln_id y = tg_node(g, op, &x, 1, "y");
        kiln_node_set_int(tg_last(g), KILN_ATTR_AXIS, sm[i].axis);
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
}

/* ---- shape ops ---------------------------------------------------------------------------- */

static void cases_concat(kiln_op op)
{
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
        kiln_id y = tg_node(g, op, in, (uint32_t)cc[i].n, "y");
        kiln_node_set_int(tg_last(g), KILN_ATTR_AXIS, cc[i].axis);
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
}

static void cases_transpose(kiln_op op)
{
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
        kiln_id y = tg_node(g, op, &x, 1, "y");
        set_ints(tg_last(g), KILN_ATTR_PERM, tr[i].perm, tr[i].rank);
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
}

static void cases_mean(kiln_op op)
{
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
        kiln_id y = tg_node(g, op, &x, 1, "y");
        set_ints(tg_last(g), KILN_ATTR_AXES, mn[i].axes, mn[i].n_axes);
        kiln_node_set_bool(tg_last(g), KILN_ATTR_KEEPDIMS, mn[i].keep);
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
}

static void cases_pad(kiln_op op)
{
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "pad_%d", i);
        kiln_graph *g = tg_new(name);
        kiln_id x = i == 2 ? tg_input(g, "x", TG_DIMS(B, 16, 17)) : tg_input(g, "x", TG_DIMS(B, 3, 5, 6));
        kiln_id y = tg_node(g, op, &x, 1, "y");
        set_ints(tg_last(g), KILN_ATTR_PADS, i == 0 ? (const int64_t[]){1, 2, 0, 3} : (const int64_t[]){0, 0, 2, 17},
                 4);
        kiln_node_set_float(tg_last(g), KILN_ATTR_VALUE, i == 0 ? 0.5 : 0.0);
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
}

/* The views: each alone (as an output, and read by an op), and all four in a
 * chain whose values are outputs too. */
static void cases_view(kiln_op op)
{
    for (int read = 0; read < 2; read++) {
        char name[64];
        snprintf(name, sizeof name, "view_%s_%d", kiln_op_name(op), read);
        kiln_graph *g = tg_new(name);
        kiln_id x = tg_input(g, "x", TG_DIMS(B, 3, 4, 5));
        kiln_id y = tg_node(g, op, &x, 1, "y");
        if (op == KILN_OP_RESHAPE)
            set_ints(tg_last(g), KILN_ATTR_SHAPE, (const int64_t[]){0, 6, 10}, 3);
        CU_ASSERT_FATAL(tg_finish(g));
        if (read) {
            y = tg_node(g, KILN_OP_NEG, &y, 1, "z");
            CU_ASSERT_FATAL(tg_finish(g));
        }
        tg_output(g, y);
        expect_ok(g);
    }
    if (op != KILN_OP_FLATTEN)
        return;
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

/* plain -> reorder to the row's blocked layout -> neg (blocked) -> reorder back. */
static void cases_reorder(kiln_op op)
{
    const tg_target *t = tg_current_target();
    const int block = t ? t->lanes : kiln_cg_layout_block(NULL);
    static const int64_t shapes[][4] = {{B, 19, 3, 4}, {B, 16, 1, 1}, {2, 5, 7, 3}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "reorder_%zu", i);
        kiln_graph *g = tg_new(name);
        kiln_id x = tg_input(g, "x", 4, shapes[i]);
        kiln_id a = tg_node(g, op, &x, 1, "to_blocked");
        CU_ASSERT_FATAL(tg_finish(g));
        g->values[a].type.layout = KILN_LAYOUT_NCHWXC;
        g->values[a].type.block = block;
        kiln_id r = tg_node(g, KILN_OP_NEG, &a, 1, "neg");
        CU_ASSERT_FATAL(tg_finish(g));
        g->values[r].type.layout = KILN_LAYOUT_NCHWXC;
        g->values[r].type.block = block;
        kiln_id y = tg_node(g, op, &r, 1, "out");
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
}

/* ---- version 1.1 ---------------------------------------------------------------------- */

/* One graph x -> op -> y, attributes set by `attrs` (may be NULL); with
 * `read`, y feeds a neg too (a copy, not only a model output). */
static void one_op(const char *name, kiln_op op, int rank, const int64_t *dims, void (*attrs)(kiln_node *, const void *),
                   const void *arg, bool read)
{
    kiln_graph *g = tg_new(name);
    kiln_id x = tg_input(g, "x", rank, dims);
    kiln_id y = tg_node(g, op, &x, 1, "y");
    if (attrs)
        attrs(tg_last(g), arg);
    CU_ASSERT_FATAL(tg_finish(g));
    if (read) {
        kiln_id z = tg_node(g, KILN_OP_NEG, &y, 1, "z");
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, z);
    } else {
        tg_output(g, y);
    }
    expect_ok(g);
}

typedef struct slice_case {
    int rank;
    int64_t dims[4];
    int64_t axis, start, end, step;
    bool has_end, read;
} slice_case;

static void slice_attrs(kiln_node *n, const void *arg)
{
    const slice_case *c = arg;
    kiln_node_set_int(n, KILN_ATTR_AXIS, c->axis);
    kiln_node_set_int(n, KILN_ATTR_START, c->start);
    kiln_node_set_int(n, KILN_ATTR_STEP, c->step);
    if (c->has_end)
        kiln_node_set_int(n, KILN_ATTR_END, c->end);
}

static void cases_slice(kiln_op op)
{
    static const slice_case cases[] = {
        {3, {B, 3, 17}, 2, 1, 16, 1, true, false},     /* inner axis: vectors, a tail */
        {3, {B, 3, 33}, 2, 0, 0, 2, false, false},     /* step 2 along the vector axis: gathers */
        {4, {B, 6, 5, 16}, 1, -2, 0, 1, false, true},  /* channels of a batched value: a copy */
        {4, {B, 7, 4, 15}, 1, 1, -1, 3, true, false},  /* channels with a step */
        {4, {B, 4, 9, 16}, 2, -100, 100, 1, true, false}, /* bounds clamped: the whole axis */
        {4, {1, 8, 5, 17}, 1, 2, 6, 1, true, true},    /* unbatched channels: a view, read by neg */
        {4, {1, 8, 5, 17}, 1, 5, 8, 1, true, false},   /* a view that is the model output: copied there */
        {2, {6, 16}, 0, 2, 5, 1, true, true},          /* rows of an unbatched matrix: a view */
        {2, {6, 16}, 0, 1, 6, 7, true, true},          /* one row by a long step: a view */
        {4, {2, 3, 4, 5}, 3, 4, 5, 1, true, false},    /* one column */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "slice_%zu", i);
        one_op(name, op, cases[i].rank, cases[i].dims, slice_attrs, &cases[i], cases[i].read);
    }
    /* A view of a view of a node's output (offsets add up), and a view
     * read after its operand's region could be reused. */
    kiln_graph *g = tg_new("slice_views");
    kiln_id x = tg_input(g, "x", TG_DIMS(1, 12, 3, 17));
    kiln_id r = tg_node(g, KILN_OP_RELU, &x, 1, "r");
    CU_ASSERT_FATAL(tg_finish(g));
    kiln_id s1 = tg_node(g, KILN_OP_SLICE, &r, 1, "s1");
    slice_attrs(tg_last(g), &(slice_case){.axis = 1, .start = 3, .end = 11, .step = 1, .has_end = true});
    CU_ASSERT_FATAL(tg_finish(g));
    kiln_id s2 = tg_node(g, KILN_OP_SLICE, &s1, 1, "s2");
    slice_attrs(tg_last(g), &(slice_case){.axis = 1, .start = 2, .end = 5, .step = 1, .has_end = true});
    CU_ASSERT_FATAL(tg_finish(g));
    kiln_id f = tg_node(g, KILN_OP_FLATTEN, &s2, 1, "f");
    CU_ASSERT_FATAL(tg_finish(g));
    kiln_id y = tg_node(g, KILN_OP_EXP, &f, 1, "y");
    CU_ASSERT_FATAL(tg_finish(g));
    kiln_id s3 = tg_node(g, KILN_OP_SLICE, &r, 1, "s3");
    slice_attrs(tg_last(g), &(slice_case){.axis = 1, .start = 0, .end = 1, .step = 1, .has_end = true});
    CU_ASSERT_FATAL(tg_finish(g));
    kiln_id z = tg_node(g, KILN_OP_NEG, &s3, 1, "z");
    CU_ASSERT_FATAL(tg_finish(g));
    tg_output(g, y);
    tg_output(g, z);
    expect_ok(g);
}

typedef struct expand_case {
    int rx, ry;
    int64_t x[4], y[4];
    bool param;
} expand_case;

static void cases_expand(kiln_op op)
{
    static const expand_case cases[] = {
        {3, 3, {1, 1, 16}, {B, 3, 16}, true},   /* a class token along the batch */
        {3, 3, {B, 3, 1}, {B, 3, 17}, false},   /* rows of one value: splats */
        {3, 3, {B, 1, 5}, {B, 4, 5}, false},    /* a row repeated */
        {2, 3, {3, 1}, {2, 3, 15}, false},      /* a new leading axis, unbatched */
        {4, 4, {1, 2, 1, 33}, {B, 2, 3, 33}, true},
        {1, 2, {1}, {B, 9}, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const expand_case *c = &cases[i];
        char name[64];
        snprintf(name, sizeof name, "expand_%zu", i);
        kiln_graph *g = tg_new(name);
        kiln_id x;
        if (c->param) {
            tg_input(g, "anchor", TG_DIMS(B, 2)); /* gives the graph its batch */
            kiln_id p = tg_param(g, "p", c->rx, c->x, -1, 1);
            x = tg_node(g, KILN_OP_CONSTANT, &p, 1, "c");
            CU_ASSERT_FATAL(tg_finish(g));
        } else {
            x = tg_input(g, "x", c->rx, c->x);
        }
        kiln_id y = tg_node(g, op, &x, 1, "y");
        set_ints(tg_last(g), KILN_ATTR_SHAPE, c->y, c->ry);
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
}

typedef struct resize_case {
    int rank;
    int64_t dims[4];
    kiln_resize_mode mode;
    bool align, by_scale;
    int64_t size[2];
    double scale[2];
} resize_case;

static void resize_attrs(kiln_node *n, const void *arg)
{
    const resize_case *c = arg;
    kiln_node_set_int(n, KILN_ATTR_MODE, c->mode);
    kiln_node_set_bool(n, KILN_ATTR_ALIGN_CORNERS, c->align);
    if (c->by_scale)
        kiln_node_set_floats(n, KILN_ATTR_SCALE, c->scale, 2);
    else
        set_ints(n, KILN_ATTR_SIZE, c->size, 2);
}

static void cases_resize(kiln_op op)
{
#define NE KILN_RESIZE_NEAREST
#define NX KILN_RESIZE_NEAREST_EXACT
#define BL KILN_RESIZE_BILINEAR
#define BC KILN_RESIZE_BICUBIC
    static const resize_case cases[] = {
        /* rank dims            mode align scale size       scale */
        {4, {B, 3, 8, 16}, NE, false, true, {0, 0}, {2, 2}},         /* 2x: shuffles */
        {4, {B, 2, 7, 9}, NE, false, false, {17, 33}, {0, 0}},       /* odd ratios: gathers */
        {4, {B, 2, 17, 40}, NE, false, false, {5, 15}, {0, 0}},      /* downsampling */
        {4, {B, 2, 10, 10}, NE, false, true, {0, 0}, {1.05, 0.7}},   /* out = in (PyTorch's copy), 1 / scale */
        {4, {B, 2, 5, 8}, NX, false, false, {16, 33}, {0, 0}},
        {4, {B, 2, 16, 32}, NX, false, true, {0, 0}, {0.5, 0.5}},    /* 2x down: two loads per vector */
        {4, {B, 3, 8, 16}, BL, false, true, {0, 0}, {2, 2}},         /* 2x bilinear: shuffles, clamped edges */
        {4, {B, 2, 9, 6}, BL, true, false, {33, 17}, {0, 0}},        /* align_corners */
        {4, {B, 2, 33, 31}, BL, false, false, {15, 16}, {0, 0}},
        {4, {B, 1, 10, 20}, BL, false, true, {0, 0}, {0.6, 1.7}},    /* recompute_scale_factor=False */
        {4, {B, 2, 6, 16}, BC, false, true, {0, 0}, {2, 2}},
        {4, {B, 2, 6, 7}, BC, true, false, {17, 16}, {0, 0}},
        {4, {B, 2, 20, 33}, BC, false, false, {9, 15}, {0, 0}},      /* bicubic down */
        {3, {B, 5, 9}, BL, false, false, {4, 32}, {0, 0}},           /* rank 3: planes of the batch */
        {2, {6, 5}, BC, false, true, {0, 0}, {3, 4}},                /* rank 2, unbatched */
        {4, {B, 2, 1, 1}, BL, false, false, {3, 17}, {0, 0}},        /* from one pixel */
        {4, {B, 2, 4, 4}, BL, false, false, {1, 1}, {0, 0}},         /* to one pixel */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "resize_%zu", i);
        one_op(name, op, cases[i].rank, cases[i].dims, resize_attrs, &cases[i], i % 3 == 0);
    }
#undef NE
#undef NX
#undef BL
#undef BC
}

typedef struct deconv_case {
    int64_t c, f, h, w, kh, kw, sh, sw, pt, pl, pb, pr, oph, opw, dh, dw, groups;
    bool bias, batched;
} deconv_case;

static void cases_conv_transpose2d(kiln_op op)
{
    static const deconv_case cases[] = {
        /* c   f  h   w  kh kw sh sw pt pl pb pr oph opw dh dw g  bias batched */
        {4, 6, 7, 9, 3, 3, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, true, true},    /* stride 1: one GEMM into the output */
        {8, 5, 6, 7, 4, 4, 2, 2, 1, 1, 1, 1, 0, 0, 1, 1, 1, true, true},    /* DCGAN's 4x4 / 2 */
        {6, 4, 5, 9, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 1, 1, 1, true, true},    /* U-Net's 2x2 / 2: taps never overlap */
        {5, 7, 7, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, false, true},   /* output_padding 1 */
        {6, 9, 4, 5, 3, 3, 3, 3, 0, 0, 0, 0, 2, 1, 1, 1, 3, true, true},    /* stride 3, groups 3 */
        {4, 4, 6, 6, 3, 3, 2, 2, 2, 2, 2, 2, 1, 1, 2, 2, 1, true, true},    /* dilation 2 */
        {3, 5, 5, 17, 3, 5, 1, 2, 0, 2, 0, 2, 0, 1, 1, 1, 1, true, true},   /* strides (1, 2), asymmetric */
        {4, 3, 5, 6, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1, 1, 1, true, true},    /* 1x1 / 2: phases without taps */
        {40, 33, 5, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, true},  /* K over blocks, 33 filters */
        {16, 20, 9, 9, 3, 3, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 4, false, true}, /* stride 1, groups 4, no padding */
        {3, 4, 4, 5, 4, 4, 2, 2, 1, 2, 0, 1, 0, 0, 1, 1, 1, true, false},   /* unbatched, asymmetric pads */
        {2, 3, 16, 33, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, true},  /* wide: several column tiles */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const deconv_case *c = &cases[i];
        char name[64];
        snprintf(name, sizeof name, "deconv_%zu", i);
        kiln_graph *g = tg_new(name);
        kiln_id in[3];
        in[0] = tg_input(g, "x", TG_DIMS(c->batched ? B : 2, c->c, c->h, c->w));
        in[1] = tg_param(g, "deconv.weight", TG_DIMS(c->c, c->f / c->groups, c->kh, c->kw), -0.5, 0.5);
        if (c->bias)
            in[2] = tg_param(g, "deconv.bias", TG_DIMS(c->f), -0.5, 0.5);
        kiln_id y = tg_node(g, op, in, c->bias ? 3 : 2, "y");
        kiln_node *n = tg_last(g);
        kiln_node_set_int(n, KILN_ATTR_FILTERS, c->f);
        set_ints(n, KILN_ATTR_KERNEL, (const int64_t[]){c->kh, c->kw}, 2);
        set_ints(n, KILN_ATTR_STRIDE, (const int64_t[]){c->sh, c->sw}, 2);
        set_ints(n, KILN_ATTR_PADDING, (const int64_t[]){c->pt, c->pl, c->pb, c->pr}, 4);
        set_ints(n, KILN_ATTR_OUTPUT_PADDING, (const int64_t[]){c->oph, c->opw}, 2);
        set_ints(n, KILN_ATTR_DILATION, (const int64_t[]){c->dh, c->dw}, 2);
        kiln_node_set_int(n, KILN_ATTR_GROUPS, c->groups);
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
}

static void size_attr(kiln_node *n, const void *arg) { set_ints(n, KILN_ATTR_SIZE, arg, 2); }

static void cases_adaptive_avgpool2d(kiln_op op)
{
    static const struct {
        int64_t dims[4], size[2];
    } cases[] = {
        {{B, 3, 7, 7}, {1, 1}},   {{B, 3, 14, 14}, {7, 7}}, {{B, 2, 10, 9}, {3, 4}},
        {{B, 2, 5, 5}, {7, 9}},   /* larger than the input: overlapping, repeated cells */
        {{B, 2, 17, 33}, {4, 16}}, {{2, 3, 6, 40}, {6, 3}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "apool_%zu", i);
        one_op(name, op, 4, cases[i].dims, size_attr, cases[i].size, false);
    }
}

static void cases_group_norm(kiln_op op)
{
    static const struct {
        int rank;
        int64_t dims[4], groups;
        bool affine;
        double eps;
    } cases[] = {
        {4, {B, 6, 5, 7}, 3, true, 1e-5},   {4, {B, 5, 4, 17}, 5, true, 1e-5},  /* groups = C: instance norm */
        {4, {B, 4, 3, 3}, 1, false, 1e-3},  {2, {B, 8}, 4, true, 1e-5},         /* rank 2: channels only */
        {4, {B, 4, 70, 70}, 2, true, 1e-5}, /* a group over several summing blocks */
        {3, {3, 6, 33}, 2, false, 1e-5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "group_norm_%zu", i);
        kiln_graph *g = tg_new(name);
        int64_t C = cases[i].dims[1];
        kiln_id in[3] = {tg_input(g, "x", cases[i].rank, cases[i].dims)};
        if (cases[i].affine) {
            in[1] = tg_param(g, "gn.weight", TG_DIMS(C), 0.5, 1.5);
            in[2] = tg_param(g, "gn.bias", TG_DIMS(C), -0.5, 0.5);
        }
        kiln_id y = tg_node(g, op, in, cases[i].affine ? 3 : 1, "y");
        kiln_node_set_int(tg_last(g), KILN_ATTR_GROUPS, cases[i].groups);
        kiln_node_set_float(tg_last(g), KILN_ATTR_EPS, cases[i].eps);
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
}

static void cases_prelu(kiln_op op)
{
    static const struct {
        int rank;
        int64_t dims[4];
        bool single;
    } cases[] = {{4, {B, 5, 3, 7}, false}, {4, {B, 5, 3, 7}, true}, {2, {B, 17}, false},
                 {3, {B, 3, 33}, true},   {4, {2, 4, 4, 16}, false}, {1, {40}, true}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "prelu_%zu", i);
        kiln_graph *g = tg_new(name);
        kiln_id in[2] = {tg_input(g, "x", cases[i].rank, cases[i].dims)};
        in[1] = tg_param(g, "prelu.weight", TG_DIMS(cases[i].single ? 1 : cases[i].dims[1]), -0.5, 0.75);
        kiln_id y = tg_node(g, op, in, 2, "y");
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
}

/* pow: the binary shapes (negative bases with fractional exponents give NaN
 * on both sides), then the exponents with a shorter form and others. */
static void cases_pow(kiln_op op)
{
    cases_binary(op);
    static const double exps[] = {0, 1, 2, 3, -1, 0.5, 2.5, -1.5, 7, -4, 0.3333};
    for (size_t i = 0; i < sizeof exps / sizeof exps[0]; i++)
        for (int rev = 0; rev < 2; rev++) {
            if (rev && exps[i] < 0)
                continue;
            char name[64];
            snprintf(name, sizeof name, "pow_%zu_%d", i, rev);
            kiln_graph *g = tg_new(name);
            kiln_id x = tg_input(g, "x", TG_DIMS(B, 3, 17));
            kiln_id y = tg_node(g, op, &x, 1, "y");
            kiln_node_set_float(tg_last(g), KILN_ATTR_SCALAR, rev ? exps[i] + 0.5 : exps[i]);
            kiln_node_set_bool(tg_last(g), KILN_ATTR_REVERSE, rev);
            CU_ASSERT_FATAL(tg_finish(g));
            tg_output(g, y);
            expect_ok(g);
        }
    /* large and tiny results: (10 x)^3.5 and 3^(40 x) (down to subnormals) */
    for (int k = 0; k < 2; k++) {
        kiln_graph *g = tg_new(k ? "pow_big_rev" : "pow_big");
        kiln_id x = tg_input(g, "x", TG_DIMS(B, 2, 33));
        kiln_id s = tg_node(g, KILN_OP_MUL, &x, 1, "s");
        kiln_node_set_float(tg_last(g), KILN_ATTR_SCALAR, k ? 40.0 : 10.0);
        CU_ASSERT_FATAL(tg_finish(g));
        kiln_id y = tg_node(g, op, &s, 1, "y");
        kiln_node_set_float(tg_last(g), KILN_ATTR_SCALAR, k ? 3.0 : 3.5);
        kiln_node_set_bool(tg_last(g), KILN_ATTR_REVERSE, k);
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
}

static void cases_reduce(kiln_op op) { cases_mean(op); }

/* A unary op on x scaled by `scale` (its whole range: log of large and
 * tiny values, softplus past its threshold), with a mul before it. */
static void scaled_unary(kiln_op op, double scale, kiln_op before)
{
    char name[64];
    snprintf(name, sizeof name, "u_%s_scaled_%g", kiln_op_name(op), scale);
    kiln_graph *g = tg_new(name);
    kiln_id x = tg_input(g, "x", TG_DIMS(B, 3, 33));
    kiln_id s = tg_node(g, KILN_OP_MUL, &x, 1, "s");
    kiln_node_set_float(tg_last(g), KILN_ATTR_SCALAR, scale);
    CU_ASSERT_FATAL(tg_finish(g));
    if (before != KILN_OP_IDENTITY) {
        s = tg_node(g, before, &s, 1, "b");
        CU_ASSERT_FATAL(tg_finish(g));
    }
    kiln_id y = tg_node(g, op, &s, 1, "y");
    CU_ASSERT_FATAL(tg_finish(g));
    tg_output(g, y);
    expect_ok(g);
}

static void cases_unary11(kiln_op op)
{
    unary_case(op, NULL, "default");
    switch (op) {
    case KILN_OP_LOG:
        scaled_unary(op, 40.0, KILN_OP_EXP); /* log(exp(t)) over [-80, 80] */
        scaled_unary(op, 1.0, KILN_OP_ABS);
        break;
    case KILN_OP_SOFTPLUS:
        scaled_unary(op, 45.0, KILN_OP_IDENTITY); /* [-90, 90]: exp(x) below, x above 20 */
        break;
    case KILN_OP_ERF:
        scaled_unary(op, 3.0, KILN_OP_IDENTITY);
        break;
    default:
        break;
    }
}

static void hsig_onnx(kiln_node *n)
{
    kiln_node_set_float(n, KILN_ATTR_ALPHA, 0.2);
    kiln_node_set_float(n, KILN_ATTR_BETA, 0.5);
}
static void hsig_other(kiln_node *n)
{
    kiln_node_set_float(n, KILN_ATTR_ALPHA, 0.5);
    kiln_node_set_float(n, KILN_ATTR_BETA, 0.25);
}

static void cases_hardsigmoid(kiln_op op)
{
    unary_case(op, NULL, "default");
    unary_case(op, hsig_onnx, "onnx");
    unary_case(op, hsig_other, "other");
}

/* concat: the base cases, then operands without the batch repeated along it. */
static void cases_concat11(kiln_op op)
{
    cases_concat(op);
    static const struct {
        int64_t axis, fixed[3], batched[3];
        bool fixed_first;
    } cases[] = {
        {1, {1, 1, 8}, {B, 5, 8}, true},   /* ViT's class token */
        {1, {1, 2, 16}, {B, 3, 16}, false},
        {2, {1, 3, 17}, {B, 3, 4}, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "concat_bcast_%zu", i);
        kiln_graph *g = tg_new(name);
        kiln_id x = tg_input(g, "x", 3, cases[i].batched);
        kiln_id p = tg_param(g, "token", 3, cases[i].fixed, -1, 1);
        kiln_id c = tg_node(g, KILN_OP_CONSTANT, &p, 1, "token_c");
        CU_ASSERT_FATAL(tg_finish(g));
        kiln_id in[3] = {cases[i].fixed_first ? c : x, cases[i].fixed_first ? x : c, x};
        kiln_id y = tg_node(g, op, in, 3, "y");
        kiln_node_set_int(tg_last(g), KILN_ATTR_AXIS, cases[i].axis);
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        expect_ok(g);
    }
}

/* ---- element types (IR only): convert, quantize, dequantize ----------------------------- */

/* These are compared with tolerance 0: the compiled code and the
 * interpreter round the same way by construction (round to nearest even on
 * the bits, compiler/interp/interp_convert.c and kernels/convert.c), and every
 * f32 operation in them (x / scale, (q - zp) * scale) is one correctly
 * rounded operation on both sides. The measure compares values: NaN equals
 * NaN and -0 equals +0. Inputs cycle through the values below (the list's
 * length is no multiple of any vector width, so each lands in every lane and
 * in masked tails). */

static float f32_of_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Ties, the largest values, subnormals and the specials of bf16 and f16,
 * then a few random values. */
static size_t convert_values(float *v, size_t cap)
{
    static const uint32_t bits[] = {
        0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, 0xbf818000, /* bf16 ties and their neighbours */
        0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000,             /* the largest f32 (bf16: inf), +-inf */
        0x7fc00000, 0xffc00001, 0x7f800001, 0x7fbfffff,             /* NaNs, quiet and signalling */
        0x00000001, 0x00008000, 0x00018000, 0x807fffff, 0x80000000, /* f32 subnormals, -0 */
        0x477fe000, 0x477fefff, 0x477ff000, 0xc77ff000,             /* 65504, below and at 65520 (f16 inf) */
        0x3f801000, 0x3f803000, 0x3f801001,                         /* f16 ties near 1 */
        0x33000000, 0x33c00000, 0x33800000, 0x387fffff, 0x38800000, /* f16 subnormal ties, 2^-24, 2^-14 */
        0x38000000, 0x38001000, 0x38003000, 0xb8003000, 0x32ffffff, /* subnormal f16 steps and ties */
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof bits / sizeof bits[0] && n < cap; i++)
        v[n++] = f32_of_bits(bits[i]);
    static const float plain[] = {0.1f, -3.14159265f, 1e5f, -1e-3f, 1.0f, 0.0f, 3e38f, 7e-39f};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0] && n < cap; i++)
        v[n++] = plain[i];
    float r[8];
    tg_fill(r, 8, 99, -4.0, 4.0);
    for (size_t i = 0; i < 8 && n < cap; i++)
        v[n++] = r[i];
    return n; /* 49 */
}

/* A parameter holding exactly `data`. */
static kiln_id param_data(kiln_graph *g, const char *name, int64_t count, const float *data)
{
    kiln_type t;
    memset(&t, 0, sizeof t);
    t.dtype = KILN_F32;
    t.shape.rank = 1;
    t.shape.dims[0] = count;
    float *copy = kiln_arena_alloc_aligned(&g->arena, (size_t)count * sizeof(float));
    if (!copy)
        return KILN_NO_ID;
    memcpy(copy, data, (size_t)count * sizeof(float));
    kiln_param p;
    memset(&p, 0, sizeof p);
    p.source = KILN_PARAM_INLINE;
    p.data_dtype = KILN_F32;
    p.data = copy;
    return kiln_graph_add_param(g, name, &t, &p, (kiln_loc){0});
}

/* x -> convert(to) [-> convert(to2)] -> convert(f32), for widths around the
 * vector lengths and an unbatched shape. `to` words: 1 bf16, 2 f16. */
static void cases_convert(kiln_op op)
{
    float vals[64];
    tg_set_input_values(vals, convert_values(vals, 64));
    static const int chains[][2] = {{1, 0}, {2, 0}, {1, 2}, {2, 1}};
    for (size_t c = 0; c < sizeof chains / sizeof chains[0]; c++)
        for (size_t w = 0; w <= sizeof widths / sizeof widths[0]; w++) {
            char name[64];
            snprintf(name, sizeof name, "convert_%zu_%zu", c, w);
            kiln_graph *g = tg_new(name);
            kiln_id x = w < sizeof widths / sizeof widths[0] ? tg_input(g, "x", TG_DIMS(B, 3, widths[w]))
                                                             : tg_input(g, "x", TG_DIMS(5, 7));
            kiln_id y = x;
            for (int k = 0; k < 3; k++) {
                int word = k < 2 ? chains[c][k] : 0;
                if (k == 1 && word == 0)
                    continue;
                char out[16];
                snprintf(out, sizeof out, "y%d", k);
                y = tg_node(g, op, &y, 1, out);
                kiln_node_set_int(tg_last(g), KILN_ATTR_TO, word);
                CU_ASSERT_FATAL(tg_finish(g));
            }
            tg_output(g, y);
            expect_ok(g);
        }
    tg_set_input_values(NULL, 0);
}

/* x -> quantize(i8 or u8) -> dequantize -> f32, per tensor and per channel
 * (axis 1 of [batch, C, w]; axis 0 of an unbatched value; the last axis),
 * with scales that make ties (powers of two) and others, zero points at the
 * ends of the range, and values that saturate, NaN and infinities. */
static void cases_quant(kiln_op op)
{
    (void)op;
    static const float specials[] = {
        0.25f, 0.75f, 1.25f, -0.25f, -0.75f, -1.25f, 2.5f, -2.5f, 0.125f, 0.375f, /* ties at scale 0.5 and 0.25 */
        63.0f, 62.0f, -65.5f, -70.0f, 200.0f, -200.0f, 1e30f, -1e30f,            /* saturation */
        INFINITY, -INFINITY, NAN, 0.0f, -0.0f, 1e-40f, 0.1f, -0.3f, 1.0f / 3.0f,
    };
    float vals[64];
    size_t n = 0;
    for (; n < sizeof specials / sizeof specials[0]; n++)
        vals[n] = specials[n];
    tg_fill(vals + n, 12, 7, -40.0, 40.0);
    n += 12;
    tg_set_input_values(vals, n);
    static const float scales[] = {0.5f, 0.25f, 1.0f / 3.0f, 2.0f, 0.1f, 0.5f, 1.5f};
    static const float zp_i8[] = {3, -5, 0, 127, -128, 1, -1}, zp_u8[] = {128, 0, 255, 10, 3, 200, 1};
    struct {
        int rank;
        int64_t dims[4];
        int axis; /* -1: per tensor */
        bool zp;
    } shapes[] = {
        {3, {B, 3, 15}, -1, true}, {3, {B, 3, 16}, -1, false}, {3, {B, 3, 17}, 1, true}, {3, {B, 3, 33}, 1, true},
        {3, {B, 3, 16}, 1, false}, {2, {6, 17}, 0, true},      {3, {B, 4, 7}, 2, true},   {2, {5, 33}, -1, true},
    };
    for (int u8 = 0; u8 < 2; u8++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            char name[64];
            snprintf(name, sizeof name, "quant_%s_%zu", u8 ? "u8" : "i8", s);
            kiln_graph *g = tg_new(name);
            kiln_id x = tg_input(g, "x", shapes[s].rank, shapes[s].dims);
            int64_t c = shapes[s].axis < 0 ? 1 : shapes[s].dims[shapes[s].axis];
            kiln_id sc = param_data(g, "q.scale", c, scales);
            kiln_id zp = shapes[s].zp ? param_data(g, "q.zero_point", c, u8 ? zp_u8 : zp_i8) : KILN_NO_ID;
            kiln_id in[3] = {x, sc, zp};
            kiln_id q = tg_node(g, KILN_OP_QUANTIZE, in, shapes[s].zp ? 3 : 2, "q");
            kiln_node_set_int(tg_last(g), KILN_ATTR_TO, u8 ? 4 : 3);
            if (shapes[s].axis >= 0)
                kiln_node_set_int(tg_last(g), KILN_ATTR_AXIS, shapes[s].axis);
            CU_ASSERT_FATAL(tg_finish(g));
            in[0] = q;
            kiln_id y = tg_node(g, KILN_OP_DEQUANTIZE, in, shapes[s].zp ? 3 : 2, "y");
            if (shapes[s].axis >= 0)
                kiln_node_set_int(tg_last(g), KILN_ATTR_AXIS, shapes[s].axis);
            CU_ASSERT_FATAL(tg_finish(g));
            tg_output(g, y);
            expect_ok(g);
        }
    tg_set_input_values(NULL, 0);
}

/* ---- the registry: every op's cases and tolerance -------------------------------------- */

typedef struct op_case {
    kiln_op op;
    void (*cases)(kiln_op op); /* builds graphs with op and checks each (expect_ok) */
    double tol;                /* the largest error allowed (cg_util.h's measure); 0: equal values */
} op_case;

static const op_case registry[] = {
    {KILN_OP_DENSE, cases_dense, TOL},
    {KILN_OP_CONV2D, cases_conv2d, TOL},
    {KILN_OP_MAXPOOL2D, cases_pool, TOL},
    {KILN_OP_AVGPOOL2D, cases_pool, TOL},
    {KILN_OP_GLOBAL_AVGPOOL, cases_global_avgpool, TOL},
    {KILN_OP_BATCHNORM, cases_batchnorm, TOL},
    {KILN_OP_LAYERNORM, cases_layernorm, TOL},
    {KILN_OP_RELU, cases_unary, TOL},
    {KILN_OP_RELU6, cases_unary, TOL},
    {KILN_OP_SIGMOID, cases_unary, TOL},
    {KILN_OP_TANH, cases_unary, TOL},
    {KILN_OP_SILU, cases_unary, TOL},
    {KILN_OP_HARDSWISH, cases_unary, TOL},
    {KILN_OP_HARDSIGMOID, cases_hardsigmoid, TOL},
    {KILN_OP_EXP, cases_unary, TOL},
    {KILN_OP_SQRT, cases_unary, TOL},
    {KILN_OP_NEG, cases_unary, TOL},
    {KILN_OP_GELU, cases_gelu, TOL},
    {KILN_OP_LEAKY_RELU, cases_alpha, TOL},
    {KILN_OP_ELU, cases_alpha, TOL},
    {KILN_OP_CLIP, cases_clip, TOL},
    {KILN_OP_SOFTMAX, cases_softmax, TOL},
    {KILN_OP_LOG_SOFTMAX, cases_softmax, TOL},
    {KILN_OP_ADD, cases_binary, TOL},
    {KILN_OP_SUB, cases_binary, TOL},
    {KILN_OP_MUL, cases_binary, TOL},
    {KILN_OP_DIV, cases_binary, TOL},
    {KILN_OP_MAX, cases_binary, TOL},
    {KILN_OP_MIN, cases_binary, TOL},
    {KILN_OP_MATMUL, cases_matmul, TOL},
    {KILN_OP_CONCAT, cases_concat11, TOL},
    {KILN_OP_FLATTEN, cases_view, TOL},
    {KILN_OP_RESHAPE, cases_view, TOL},
    {KILN_OP_TRANSPOSE, cases_transpose, TOL},
    {KILN_OP_MEAN, cases_mean, TOL},
    {KILN_OP_PAD, cases_pad, TOL},
    {KILN_OP_IDENTITY, cases_view, TOL},
    {KILN_OP_DROPOUT, cases_view, TOL},
    {KILN_OP_REORDER, cases_reorder, TOL},
    {KILN_OP_CONSTANT, cases_constant, TOL},
    {KILN_OP_SLICE, cases_slice, TOL_EXACT},
    {KILN_OP_EXPAND, cases_expand, TOL_EXACT},
    {KILN_OP_RESIZE, cases_resize, TOL_RESIZE},
    {KILN_OP_CONV_TRANSPOSE2D, cases_conv_transpose2d, TOL},
    {KILN_OP_ADAPTIVE_AVGPOOL2D, cases_adaptive_avgpool2d, TOL_APOOL},
    {KILN_OP_GROUP_NORM, cases_group_norm, TOL_GN},
    {KILN_OP_PRELU, cases_prelu, TOL_PRELU},
    {KILN_OP_POW, cases_pow, TOL_POW},
    {KILN_OP_REDUCE_SUM, cases_reduce, TOL},
    {KILN_OP_REDUCE_MAX, cases_reduce, TOL},
    {KILN_OP_REDUCE_MIN, cases_reduce, TOL},
    {KILN_OP_ERF, cases_unary11, TOL_UNARY11},
    {KILN_OP_ABS, cases_unary11, TOL_EXACT},
    {KILN_OP_LOG, cases_unary11, TOL_UNARY11},
    {KILN_OP_SOFTPLUS, cases_unary11, TOL_UNARY11},
    {KILN_OP_CONVERT, cases_convert, TOL_ZERO},
    {KILN_OP_QUANTIZE, cases_quant, TOL_ZERO},
    {KILN_OP_DEQUANTIZE, cases_quant, TOL_ZERO},
};
#define N_REGISTRY (sizeof registry / sizeof registry[0])

static const op_case *registry_entry(kiln_op op)
{
    for (size_t i = 0; i < N_REGISTRY; i++)
        if (registry[i].op == op)
            return &registry[i];
    return NULL;
}

/* Every op of ir/ops.def has an interpreter kernel, a code generator
 * kernel, and here its cases and its own tolerance. */
static void test_op_table(void)
{
    int missing = 0;
    for (int i = 0; i < KILN_OP_COUNT; i++) {
        kiln_op op = (kiln_op)i;
        const op_case *e = registry_entry(op);
        const char *why = !kiln_interp_supports(op) ? "no interpreter kernel (compiler/interp/interp.c)"
                          : !kiln_cg_supports(op)   ? "no kernel emitter (compiler/codegen/kernels/table.c)"
                          : !e || !e->cases         ? "no differential cases (registry, tests/codegen/test_codegen_ops.c)"
                          : !(e->tol >= 0)          ? "no tolerance (registry, tests/codegen/test_codegen_ops.c)"
                                                    : NULL;
        if (why) {
            fprintf(stderr, "  op '%s': %s\n", kiln_op_name(op), why);
            missing++;
        }
    }
    CU_ASSERT(missing == 0);
}

/* One CUnit test per registry entry (CUnit passes no argument: a function
 * per index). */
static void run_entry(size_t i)
{
    if (i >= N_REGISTRY)
        return;
    tol_now = registry[i].tol;
    registry[i].cases(registry[i].op);
    tol_now = TOL;
}
#define ENTRY(i) \
    static void entry_##i(void) { run_entry(i); }
ENTRY(0) ENTRY(1) ENTRY(2) ENTRY(3) ENTRY(4) ENTRY(5) ENTRY(6) ENTRY(7)
ENTRY(8) ENTRY(9) ENTRY(10) ENTRY(11) ENTRY(12) ENTRY(13) ENTRY(14) ENTRY(15)
ENTRY(16) ENTRY(17) ENTRY(18) ENTRY(19) ENTRY(20) ENTRY(21) ENTRY(22) ENTRY(23)
ENTRY(24) ENTRY(25) ENTRY(26) ENTRY(27) ENTRY(28) ENTRY(29) ENTRY(30) ENTRY(31)
ENTRY(32) ENTRY(33) ENTRY(34) ENTRY(35) ENTRY(36) ENTRY(37) ENTRY(38) ENTRY(39)
ENTRY(40) ENTRY(41) ENTRY(42) ENTRY(43) ENTRY(44) ENTRY(45) ENTRY(46) ENTRY(47)
ENTRY(48) ENTRY(49) ENTRY(50) ENTRY(51) ENTRY(52) ENTRY(53) ENTRY(54) ENTRY(55)
ENTRY(56) ENTRY(57) ENTRY(58) ENTRY(59) ENTRY(60) ENTRY(61) ENTRY(62) ENTRY(63)
ENTRY(64) ENTRY(65) ENTRY(66) ENTRY(67) ENTRY(68) ENTRY(69) ENTRY(70) ENTRY(71)
ENTRY(72) ENTRY(73) ENTRY(74) ENTRY(75) ENTRY(76) ENTRY(77) ENTRY(78) ENTRY(79)
ENTRY(80) ENTRY(81) ENTRY(82) ENTRY(83) ENTRY(84) ENTRY(85) ENTRY(86) ENTRY(87)
ENTRY(88) ENTRY(89) ENTRY(90) ENTRY(91) ENTRY(92) ENTRY(93) ENTRY(94) ENTRY(95)
static void (*const entries[])(void) = {
    entry_0, entry_1, entry_2, entry_3, entry_4, entry_5, entry_6, entry_7,
    entry_8, entry_9, entry_10, entry_11, entry_12, entry_13, entry_14, entry_15,
    entry_16, entry_17, entry_18, entry_19, entry_20, entry_21, entry_22, entry_23,
    entry_24, entry_25, entry_26, entry_27, entry_28, entry_29, entry_30, entry_31,
    entry_32, entry_33, entry_34, entry_35, entry_36, entry_37, entry_38, entry_39,
    entry_40, entry_41, entry_42, entry_43, entry_44, entry_45, entry_46, entry_47,
    entry_48, entry_49, entry_50, entry_51, entry_52, entry_53, entry_54, entry_55,
    entry_56, entry_57, entry_58, entry_59, entry_60, entry_61, entry_62, entry_63,
    entry_64, entry_65, entry_66, entry_67, entry_68, entry_69, entry_70, entry_71,
    entry_72, entry_73, entry_74, entry_75, entry_76, entry_77, entry_78, entry_79,
    entry_80, entry_81, entry_82, entry_83, entry_84, entry_85, entry_86, entry_87,
    entry_88, entry_89, entry_90, entry_91, entry_92, entry_93, entry_94, entry_95,
};
_Static_assert(N_REGISTRY <= sizeof entries / sizeof entries[0], "a test function per registry entry");

static void add_tests(CU_pSuite s)
{
    const char *only = getenv("KILN_TEST_ONLY");
    for (size_t i = 0; i < N_REGISTRY; i++)
        if (!only || strstr(only, kiln_op_name(registry[i].op)))
            CU_add_test(s, kiln_op_name(registry[i].op), entries[i]);
    CU_add_test(s, "network", test_network);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite t = CU_add_suite("codegen_ops op table", NULL, NULL);
    CU_add_test(t, "op table", test_op_table);
    tg_add_suites("codegen_ops", add_tests);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
