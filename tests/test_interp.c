/* tests/test_interp.c: the reference interpreter against hand-computed
 * results. Every graph is built with the IR builder (inline parameters in
 * static arrays), typed by the ops' shape rules, and run in double precision.
 * Where a case is too large to write out, the expected values come from the
 * op's definition written as directly as possible (an explicitly padded
 * input, a window sum), independent of the interpreter's loop structure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "compiler/interp/interp.h"
#include "ir/arena.h"
#include "ir/graph.h"

/* ------------------------------------------------------------------------ */
/* Building graphs                                                           */
/* ------------------------------------------------------------------------ */

#define COUNT(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
/* rank, dims: DIMS(1, 3, 4) */
#define DIMS(...) COUNT(__VA_ARGS__), (const int64_t[]){__VA_ARGS__}
#define IDS(...) (const kiln_id[]){__VA_ARGS__}, (uint32_t)(sizeof((kiln_id[]){__VA_ARGS__}) / sizeof(kiln_id))
#define B KILN_DIM_BATCH

static kiln_graph *G;
static kiln_interp *IT;
static kiln_diag D;
static const kiln_loc LOC = {"test.yaml", 3, 5};

static void begin(void)
{
    G = kiln_graph_create("t");
    CU_ASSERT_PTR_NOT_NULL_FATAL(G);
    IT = NULL;
    kiln_diag_init(&D);
}

static void end(void)
{
    kiln_interp_destroy(IT);
    IT = NULL;
    kiln_graph_destroy(G);
    G = NULL;
    kiln_diag_release(&D);
}

static kiln_type type_of(int rank, const int64_t *dims)
{
    kiln_type t;
    memset(&t, 0, sizeof t);
    t.dtype = KILN_F32;
    t.layout = KILN_LAYOUT_PLAIN;
    t.shape.rank = rank;
    for (int i = 0; i < rank; i++)
        t.shape.dims[i] = dims[i];
    t.shape.batched = rank > 0 && dims[0] == KILN_DIM_BATCH;
    return t;
}

static kiln_id input(const char *name, int rank, const int64_t *dims)
{
    kiln_type t = type_of(rank, dims);
    kiln_id v = kiln_graph_add_input(G, name, &t, LOC);
    CU_ASSERT_NOT_EQUAL_FATAL(v, KILN_NO_ID);
    return v;
}

/* Two inputs "a" and "b", created in that order (inside one initializer
 * list the order of evaluation is unspecified). */
static kiln_id A_, B_;
static void in2(int ra, const int64_t *da, int rb, const int64_t *db)
{
    A_ = input("a", ra, da);
    B_ = input("b", rb, db);
}

/* A parameter whose data (f64) the caller keeps alive. */
static kiln_id param(const char *name, int rank, const int64_t *dims, const double *data)
{
    kiln_type t = type_of(rank, dims);
    kiln_param p;
    memset(&p, 0, sizeof p);
    p.source = KILN_PARAM_INLINE;
    p.data_dtype = KILN_F64;
    p.data = data;
    kiln_id v = kiln_graph_add_param(G, name, &t, &p, LOC);
    CU_ASSERT_NOT_EQUAL_FATAL(v, KILN_NO_ID);
    return v;
}

static kiln_id param_f32(const char *name, int rank, const int64_t *dims, const float *data)
{
    kiln_type t = type_of(rank, dims);
    kiln_param p;
    memset(&p, 0, sizeof p);
    p.source = KILN_PARAM_INLINE;
    p.data_dtype = KILN_F32;
    p.data = data;
    kiln_id v = kiln_graph_add_param(G, name, &t, &p, LOC);
    CU_ASSERT_NOT_EQUAL_FATAL(v, KILN_NO_ID);
    return v;
}

/* Adds a node; set its attributes through N(id), then call done(id). */
static kiln_id node(kiln_op op, const kiln_id *ins, uint32_t n, const char *name)
{
    kiln_id id = kiln_graph_add_node(G, op, ins, n, name, name, LOC);
    CU_ASSERT_NOT_EQUAL_FATAL(id, KILN_NO_ID);
    return id;
}

#define N(id) kiln_graph_node(G, id)

static void set_ints(kiln_id id, kiln_attr_id a, int count, const int64_t *v) { kiln_node_set_ints(N(id), a, v, count); }

/* Applies the defaults and the shape rule; returns the output value. */
static kiln_id done(kiln_id id)
{
    char err[256] = "";
    kiln_node_apply_defaults(N(id));
    kiln_status s = kiln_ir_infer_node(G, id, err, sizeof err);
    if (s != KILN_OK)
        fprintf(stderr, "\n  shape rule of '%s' failed: %s\n", N(id)->layer, err);
    CU_ASSERT_EQUAL_FATAL(s, KILN_OK);
    return N(id)->output;
}

static void output(kiln_id v) { CU_ASSERT_EQUAL_FATAL(kiln_graph_add_output(G, v), KILN_OK); }

/* Creates the interpreter, sets the inputs (in order) and runs. */
static kiln_status run_opt(int64_t batch, bool keep_all, const double *const *inputs)
{
    kiln_interp_options opt = {.keep_all = keep_all};
    kiln_interp_destroy(IT);
    IT = NULL;
    CU_ASSERT_EQUAL_FATAL(kiln_interp_create(G, batch, &opt, &IT), KILN_OK);
    for (size_t i = 0; i < G->n_inputs; i++)
        CU_ASSERT_EQUAL_FATAL(kiln_interp_set_input_f64(IT, i, inputs[i]), KILN_OK);
    kiln_status s = kiln_interp_run(IT, &D);
    if (s != KILN_OK && s != KILN_ERR_OUT_OF_MEMORY)
        kiln_diag_print(&D, stderr);
    return s;
}

/* Runs and returns output 0, checking its element count. */
static const double *run(int64_t batch, const double *const *inputs, size_t want_count)
{
    CU_ASSERT_EQUAL_FATAL(run_opt(batch, false, inputs), KILN_OK);
    size_t count = 0;
    const double *y = kiln_interp_output(IT, 0, &count);
    CU_ASSERT_PTR_NOT_NULL_FATAL(y);
    CU_ASSERT_EQUAL_FATAL(count, want_count);
    return y;
}

static int check_close(const double *got, const double *want, size_t n, double tol)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]);
        bool ok = (isnan(want[i]) && isnan(got[i])) || (isinf(want[i]) && got[i] == want[i]) ||
                  err <= tol * (1.0 + fabs(want[i]));
        if (!ok && bad++ < 5)
            fprintf(stderr, "\n  element %zu: got %.17g, want %.17g", i, got[i], want[i]);
    }
    CU_ASSERT_EQUAL(bad, 0);
    return bad;
}

#define CHECK(got, ...)                                                                       \
    do {                                                                                      \
        const double want_[] = {__VA_ARGS__};                                                \
        check_close(got, want_, sizeof want_ / sizeof want_[0], 1e-12);                       \
    } while (0)

/* Deterministic pseudo-random numbers in [-1, 1). */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double rnd(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}
static void fill(double *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = rnd();
}
static void iota(double *p, size_t n, double start)
{
    for (size_t i = 0; i < n; i++)
        p[i] = start + (double)i;
}

/* ------------------------------------------------------------------------ */
/* conv2d                                                                    */
/* ------------------------------------------------------------------------ */

static kiln_id conv(kiln_id x, kiln_id w, kiln_id b, int64_t filters, int64_t kh, int64_t kw)
{
    kiln_id id = b == KILN_NO_ID ? node(KILN_OP_CONV2D, IDS(x, w), "conv") : node(KILN_OP_CONV2D, IDS(x, w, b), "conv");
    kiln_node_set_int(N(id), KILN_ATTR_FILTERS, filters);
    set_ints(id, KILN_ATTR_KERNEL, DIMS(kh, kw));
    return id;
}

static void test_conv_basic(void)
{
    begin();
    static const double w[] = {1, 0, 0, -1}, b[] = {0.5};
    double x[9];
    iota(x, 9, 1);
    kiln_id in = input("x", DIMS(1, 1, 3, 3));
    kiln_id c = conv(in, param("w", DIMS(1, 1, 2, 2), w), param("b", DIMS(1), b), 1, 2, 2);
    output(done(c));
    /* x[i][j] - x[i+1][j+1] + 0.5 = -4 + 0.5 */
    CHECK(run(1, (const double *[]){x}, 4), -3.5, -3.5, -3.5, -3.5);
    end();
}

/* stride 2, padding [top 1, left 0, bottom 0, right 1], 3x3 ones. */
static void test_conv_stride_asymmetric_padding(void)
{
    begin();
    static double w[9];
    for (int i = 0; i < 9; i++)
        w[i] = 1;
    double x[16];
    iota(x, 16, 0); /* x[r][c] = 4r + c */
    kiln_id c = conv(input("x", DIMS(1, 1, 4, 4)), param("w", DIMS(1, 1, 3, 3), w), KILN_NO_ID, 1, 3, 3);
    set_ints(c, KILN_ATTR_STRIDE, DIMS(2, 2));
    set_ints(c, KILN_ATTR_PADDING, DIMS(1, 0, 0, 1));
    output(done(c));
    /* windows: rows {0,1} | {1,2,3}; cols {0,1,2} | {2,3} */
    CHECK(run(1, (const double *[]){x}, 4), 18, 18, 81, 63);
    end();
}

/* dilation 2: y = x(oy,ox) + 2 x(oy,ox+2) + 3 x(oy+2,ox) + 4 x(oy+2,ox+2) = 50 oy + 10 ox + 82 */
static void test_conv_dilation(void)
{
    begin();
    static const double w[] = {1, 2, 3, 4};
    double x[25];
    iota(x, 25, 0);
    kiln_id c = conv(input("x", DIMS(1, 1, 5, 5)), param("w", DIMS(1, 1, 2, 2), w), KILN_NO_ID, 1, 2, 2);
    set_ints(c, KILN_ATTR_DILATION, DIMS(2, 2));
    output(done(c));
    CHECK(run(1, (const double *[]){x}, 9), 82, 92, 102, 132, 142, 152, 182, 192, 202);
    end();
}

/* groups = C = 2 (depthwise), 2x2 kernels, bias. */
static void test_conv_depthwise(void)
{
    begin();
    static const double w[] = {1, 1, 1, 1, /* channel 1 */ 1, 0, 0, 1}, b[] = {0, 1};
    double x[8];
    iota(x, 8, 1); /* channel 0: 1 2 3 4, channel 1: 5 6 7 8 */
    kiln_id c = conv(input("x", DIMS(1, 2, 2, 2)), param("w", DIMS(2, 1, 2, 2), w), param("b", DIMS(2), b), 2, 2, 2);
    kiln_node_set_int(N(c), KILN_ATTR_GROUPS, 2);
    output(done(c));
    CHECK(run(1, (const double *[]){x}, 2), 10, 14);
    end();
}

/* groups = 2 with 4 channels and 4 filters: filters 0,1 read channels 0,1;
 * filters 2,3 read channels 2,3. */
static void test_conv_groups2(void)
{
    begin();
    static const double w[] = {1, 10, 2, 20, 100, 1000, 200, 2000};
    static const double x[] = {1, 2, 3, 4};
    kiln_id c = conv(input("x", DIMS(1, 4, 1, 1)), param("w", DIMS(4, 2, 1, 1), w), KILN_NO_ID, 4, 1, 1);
    kiln_node_set_int(N(c), KILN_ATTR_GROUPS, 2);
    output(done(c));
    CHECK(run(1, (const double *[]){x}, 4), 21, 42, 4300, 8600);
    end();
}

/* Every feature at once, against the definition over an explicitly padded
 * input, with batch 2 substituted into a batched input. */
static void test_conv_everything(void)
{
    enum { NB = 2, C = 4, H = 7, W = 6, F = 6, G_ = 2, KH = 3, KW = 2, SH = 2, SW = 1, DH = 1, DW = 2 };
    enum { PT = 1, PL = 0, PB = 2, PR = 1 };
    enum { HP = H + PT + PB, WP = W + PL + PR };
    enum { OH = (HP - DH * (KH - 1) - 1) / SH + 1, OW = (WP - DW * (KW - 1) - 1) / SW + 1 };
    static double x[NB * C * H * W], w[F * (C / G_) * KH * KW], b[F], want[NB * F * OH * OW];
    static double xp[NB][C][HP][WP];
    fill(x, sizeof x / sizeof x[0]);
    fill(w, sizeof w / sizeof w[0]);
    fill(b, F);
    memset(xp, 0, sizeof xp);
    for (int n = 0; n < NB; n++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++)
                    xp[n][c][i + PT][j + PL] = x[((n * C + c) * H + i) * W + j];
    for (int n = 0; n < NB; n++)
        for (int f = 0; f < F; f++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    double s = b[f];
                    int g = f / (F / G_);
                    for (int ci = 0; ci < C / G_; ci++)
                        for (int ky = 0; ky < KH; ky++)
                            for (int kx = 0; kx < KW; kx++)
                                s += w[((f * (C / G_) + ci) * KH + ky) * KW + kx] *
                                     xp[n][g * (C / G_) + ci][oy * SH + ky * DH][ox * SW + kx * DW];
                    want[((n * F + f) * OH + oy) * OW + ox] = s;
                }
    begin();
    kiln_id c = conv(input("x", DIMS(B, C, H, W)), param("w", DIMS(F, C / G_, KH, KW), w), param("b", DIMS(F), b), F,
                     KH, KW);
    set_ints(c, KILN_ATTR_STRIDE, DIMS(SH, SW));
    set_ints(c, KILN_ATTR_DILATION, DIMS(DH, DW));
    set_ints(c, KILN_ATTR_PADDING, DIMS(PT, PL, PB, PR));
    kiln_node_set_int(N(c), KILN_ATTR_GROUPS, G_);
    output(done(c));
    check_close(run(NB, (const double *[]){x}, sizeof want / sizeof want[0]), want, sizeof want / sizeof want[0], 1e-12);
    end();
}

/* ------------------------------------------------------------------------ */
/* Pools                                                                     */
/* ------------------------------------------------------------------------ */

/* ceil_mode with padding. Height: 4 rows, kernel 3, stride 2, padding 1:
 * windows start at -1, 1, 3 (ceil adds the third). Width: 5 columns, kernel
 * 2, stride 2, padding 1: ceil would give 4, but the 4th window would start
 * at 5 = in the right padding, so PyTorch drops it: 3. Input negative, so a
 * padding taken as 0 instead of -inf would show. */
static void test_maxpool_ceil_padding(void)
{
    begin();
    double x[20];
    for (int i = 0; i < 20; i++)
        x[i] = -i - 1; /* x[r][c] = -(5r + c) - 1 */
    kiln_id p = node(KILN_OP_MAXPOOL2D, IDS(input("x", DIMS(1, 1, 4, 5))), "pool");
    set_ints(p, KILN_ATTR_KERNEL, DIMS(3, 2));
    set_ints(p, KILN_ATTR_STRIDE, DIMS(2, 2));
    set_ints(p, KILN_ATTR_PADDING, DIMS(1, 1, 1, 1));
    kiln_node_set_bool(N(p), KILN_ATTR_CEIL_MODE, true);
    output(done(p));
    /* max = the smallest valid row and column: rows 0,1,3; cols 0,1,3 */
    CHECK(run(1, (const double *[]){x}, 9), -1, -2, -4, -6, -7, -9, -16, -17, -19);
    end();
}

static void test_maxpool_dilation_nan(void)
{
    begin();
    double x[16];
    iota(x, 16, 0);
    x[5] = NAN;
    kiln_id p = node(KILN_OP_MAXPOOL2D, IDS(input("x", DIMS(1, 1, 4, 4))), "pool");
    set_ints(p, KILN_ATTR_KERNEL, DIMS(2, 2));
    set_ints(p, KILN_ATTR_STRIDE, DIMS(1, 1));
    set_ints(p, KILN_ATTR_DILATION, DIMS(2, 2));
    output(done(p));
    /* window (oy,ox): cells (oy,ox),(oy,ox+2),(oy+2,ox),(oy+2,ox+2): max is
     * (oy+2,ox+2) = 4(oy+2)+ox+2; (1,1) sees the NaN at x[1][1] */
    CHECK(run(1, (const double *[]){x}, 4), 10, 11, 14, NAN);
    end();
}

/* kernel 3, stride 2, padding 1, ceil_mode on a 4x4 input x[r][c] = 4r+c+1:
 * windows over rows {-1..1}, {1..3}, {3..5}; the last is clipped to the
 * padded input (rows 3, 4) for the divisor with count_include_pad, and to
 * the input (row 3) without. */
static void avgpool_case(bool include_pad, const double *want)
{
    begin();
    double x[16];
    iota(x, 16, 1);
    kiln_id p = node(KILN_OP_AVGPOOL2D, IDS(input("x", DIMS(1, 1, 4, 4))), "pool");
    set_ints(p, KILN_ATTR_KERNEL, DIMS(3, 3));
    set_ints(p, KILN_ATTR_STRIDE, DIMS(2, 2));
    set_ints(p, KILN_ATTR_PADDING, DIMS(1, 1, 1, 1));
    kiln_node_set_bool(N(p), KILN_ATTR_CEIL_MODE, true);
    kiln_node_set_bool(N(p), KILN_ATTR_COUNT_INCLUDE_PAD, include_pad);
    output(done(p));
    check_close(run(1, (const double *[]){x}, 9), want, 9, 1e-12);
    end();
}

static void test_avgpool_ceil_include_pad(void)
{
    /* sums 14 30 12 / 57 99 36 / 27 45 16; divisors 9 9 6 / 9 9 6 / 6 6 4 */
    static const double want[] = {14.0 / 9, 30.0 / 9, 2, 57.0 / 9, 11, 6, 4.5, 7.5, 4};
    avgpool_case(true, want);
}

static void test_avgpool_ceil_exclude_pad(void)
{
    /* divisors 4 6 2 / 6 9 3 / 2 3 1 */
    static const double want[] = {3.5, 5, 6, 9.5, 11, 12, 13.5, 15, 16};
    avgpool_case(false, want);
}

/* Asymmetric padding [0, 1, 1, 0] with count_include_pad: the padded cells
 * count on the padded sides only. */
static void test_avgpool_asymmetric(void)
{
    begin();
    static const double x[] = {1, 2, 3, 4};
    kiln_id p = node(KILN_OP_AVGPOOL2D, IDS(input("x", DIMS(1, 1, 2, 2))), "pool");
    set_ints(p, KILN_ATTR_KERNEL, DIMS(2, 2));
    set_ints(p, KILN_ATTR_STRIDE, DIMS(1, 1));
    set_ints(p, KILN_ATTR_PADDING, DIMS(0, 1, 1, 0));
    output(done(p));
    /* padded (3x3): rows 0,1 input, row 2 pad; col 0 pad, cols 1,2 input:
     * windows: (0,0): 0+1+0+3 = 4/4; (0,1): 1+2+3+4 = 10/4; (1,0): 0+3+0+0 = 3/4; (1,1): 3+4 = 7/4 */
    CHECK(run(1, (const double *[]){x}, 4), 1, 2.5, 0.75, 1.75);
    end();
}

static void test_global_avgpool(void)
{
    begin();
    double x[2 * 3 * 2 * 2];
    iota(x, 24, 0);
    output(done(node(KILN_OP_GLOBAL_AVGPOOL, IDS(input("x", DIMS(B, 3, 2, 2))), "gap")));
    CHECK(run(2, (const double *[]){x}, 6), 1.5, 5.5, 9.5, 13.5, 17.5, 21.5);
    end();
}

/* ------------------------------------------------------------------------ */
/* Elementwise                                                               */
/* ------------------------------------------------------------------------ */

static const double *unary(kiln_op op, const double *x, size_t n, void (*attrs)(kiln_node *))
{
    kiln_id id = node(op, IDS(input("x", DIMS((int64_t)n))), "y");
    if (attrs)
        attrs(N(id));
    output(done(id));
    return run(1, (const double *[]){x}, n);
}

static const double UX[] = {-4, -3, -1, -0.5, 0, 0.5, 1, 3, 7};
enum { NUX = sizeof UX / sizeof UX[0] };

static void test_unary_simple(void)
{
    double want[NUX];
    static const struct {
        kiln_op op;
        double (*f)(double);
    } cases[] = {{KILN_OP_TANH, tanh}, {KILN_OP_EXP, exp}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        begin();
        for (int i = 0; i < NUX; i++)
            want[i] = cases[c].f(UX[i]);
        check_close(unary(cases[c].op, UX, NUX, NULL), want, NUX, 1e-15);
        end();
    }
    begin();
    CHECK(unary(KILN_OP_RELU, UX, NUX, NULL), 0, 0, 0, 0, 0, 0.5, 1, 3, 7);
    end();
    begin();
    CHECK(unary(KILN_OP_RELU6, UX, NUX, NULL), 0, 0, 0, 0, 0, 0.5, 1, 3, 6);
    end();
    begin();
    CHECK(unary(KILN_OP_NEG, UX, NUX, NULL), 4, 3, 1, 0.5, 0, -0.5, -1, -3, -7);
    end();
    /* hardsigmoid = relu6(x + 3) / 6 */
    begin();
    CHECK(unary(KILN_OP_HARDSIGMOID, UX, NUX, NULL), 0, 0, 2.0 / 6, 2.5 / 6, 0.5, 3.5 / 6, 4.0 / 6, 1, 1);
    end();
    /* hardswish = x * relu6(x + 3) / 6 */
    begin();
    CHECK(unary(KILN_OP_HARDSWISH, UX, NUX, NULL), 0, 0, -2.0 / 6, -1.25 / 6, 0, 1.75 / 6, 4.0 / 6, 3, 7);
    end();
    begin();
    static const double sx[] = {0, 0.25, 4, 9};
    CHECK(unary(KILN_OP_SQRT, sx, 4, NULL), 0, 0.5, 2, 3);
    end();
    begin();
    for (int i = 0; i < NUX; i++)
        want[i] = 1 / (1 + exp(-UX[i]));
    check_close(unary(KILN_OP_SIGMOID, UX, NUX, NULL), want, NUX, 1e-15);
    end();
    begin();
    for (int i = 0; i < NUX; i++)
        want[i] = UX[i] / (1 + exp(-UX[i]));
    check_close(unary(KILN_OP_SILU, UX, NUX, NULL), want, NUX, 1e-15);
    end();
}

static void attrs_gelu_tanh(kiln_node *n) { kiln_node_set_int(n, KILN_ATTR_APPROXIMATE, 1); }

static void test_gelu(void)
{
    double want[NUX];
    begin();
    for (int i = 0; i < NUX; i++)
        want[i] = 0.5 * UX[i] * (1 + erf(UX[i] / sqrt(2.0)));
    const double *y = unary(KILN_OP_GELU, UX, NUX, NULL); /* default: approximate = none */
    check_close(y, want, NUX, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(y[6], 0.8413447460685429, 1e-15); /* torch.nn.functional.gelu(1.0, float64) */
    end();
    begin();
    for (int i = 0; i < NUX; i++)
        want[i] = 0.5 * UX[i] * (1 + tanh(sqrt(2 / acos(-1.0)) * (UX[i] + 0.044715 * pow(UX[i], 3))));
    y = unary(KILN_OP_GELU, UX, NUX, attrs_gelu_tanh);
    check_close(y, want, NUX, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(y[6], 0.8411919906082768, 1e-15); /* approximate='tanh' */
    end();
}

static void attrs_alpha(kiln_node *n) { kiln_node_set_float(n, KILN_ATTR_ALPHA, 0.5); }
static void attrs_clip_both(kiln_node *n)
{
    kiln_node_set_float(n, KILN_ATTR_MIN, -1);
    kiln_node_set_float(n, KILN_ATTR_MAX, 2);
}
static void attrs_clip_min(kiln_node *n) { kiln_node_set_float(n, KILN_ATTR_MIN, 0.25); }

static void test_unary_attrs(void)
{
    begin();
    CHECK(unary(KILN_OP_LEAKY_RELU, UX, NUX, NULL), -0.04, -0.03, -0.01, -0.005, 0, 0.5, 1, 3, 7);
    end();
    begin();
    CHECK(unary(KILN_OP_LEAKY_RELU, UX, NUX, attrs_alpha), -2, -1.5, -0.5, -0.25, 0, 0.5, 1, 3, 7);
    end();
    begin();
    CHECK(unary(KILN_OP_ELU, UX, NUX, attrs_alpha), 0.5 * expm1(-4), 0.5 * expm1(-3), 0.5 * expm1(-1), 0.5 * expm1(-0.5),
          0, 0.5, 1, 3, 7);
    end();
    begin();
    CHECK(unary(KILN_OP_CLIP, UX, NUX, attrs_clip_both), -1, -1, -1, -0.5, 0, 0.5, 1, 2, 2);
    end();
    begin();
    CHECK(unary(KILN_OP_CLIP, UX, NUX, attrs_clip_min), 0.25, 0.25, 0.25, 0.25, 0.25, 0.5, 1, 3, 7);
    end();
    begin();
    static const double nx[] = {NAN, -1, 1};
    CHECK(unary(KILN_OP_RELU, nx, 3, NULL), NAN, 0, 1);
    end();
}

/* [2,1,3] op [4,1] -> [2,4,3]: a[i][0][k] = 10i + k, b[j][0] = 100j + 1 */
static void test_broadcast(void)
{
    static const kiln_op ops[] = {KILN_OP_ADD, KILN_OP_SUB, KILN_OP_MUL, KILN_OP_DIV, KILN_OP_MAX, KILN_OP_MIN};
    double a[6], b[4], want[24];
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 3; k++)
            a[i * 3 + k] = 10 * i + k;
    for (int j = 0; j < 4; j++)
        b[j] = j % 2 ? 100 * j + 1 : -(double)j;
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        begin();
        in2(DIMS(2, 1, 3), DIMS(4, 1));
        kiln_id id = node(ops[o], IDS(A_, B_), "y");
        output(done(id));
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 4; j++)
                for (int k = 0; k < 3; k++) {
                    double x = a[i * 3 + k], y = b[j];
                    double r = ops[o] == KILN_OP_ADD ? x + y
                               : ops[o] == KILN_OP_SUB ? x - y
                               : ops[o] == KILN_OP_MUL ? x * y
                               : ops[o] == KILN_OP_DIV ? x / y
                               : ops[o] == KILN_OP_MAX ? (x > y ? x : y)
                                                        : (x < y ? x : y);
                    want[(i * 4 + j) * 3 + k] = r;
                }
        check_close(run(1, (const double *[]){a, b}, 24), want, 24, 1e-15);
        end();
    }
    /* batched [batch,3] + [3] with batch 2 */
    begin();
    static const double x[] = {1, 2, 3, 4, 5, 6}, y[] = {10, 20, 30};
    output(done(node(KILN_OP_ADD, IDS(input("x", DIMS(B, 3)), param("y", DIMS(3), y)), "s")));
    CHECK(run(2, (const double *[]){x}, 6), 11, 22, 33, 14, 25, 36);
    end();
}

static const double *scalar_op(kiln_op op, double s, bool reverse, const double *x, size_t n)
{
    kiln_id id = node(op, IDS(input("x", DIMS((int64_t)n))), "y");
    kiln_node_set_float(N(id), KILN_ATTR_SCALAR, s);
    if (reverse)
        kiln_node_set_bool(N(id), KILN_ATTR_REVERSE, true);
    output(done(id));
    return run(1, (const double *[]){x}, n);
}

static void test_scalar(void)
{
    static const double x[] = {1, 2, 4};
    begin();
    CHECK(scalar_op(KILN_OP_SUB, 10, false, x, 3), -9, -8, -6);
    end();
    begin();
    CHECK(scalar_op(KILN_OP_SUB, 10, true, x, 3), 9, 8, 6);
    end();
    begin();
    CHECK(scalar_op(KILN_OP_DIV, 2, false, x, 3), 0.5, 1, 2);
    end();
    begin();
    CHECK(scalar_op(KILN_OP_DIV, 2, true, x, 3), 2, 1, 0.5);
    end();
    begin();
    CHECK(scalar_op(KILN_OP_MAX, 1.5, false, x, 3), 1.5, 2, 4);
    end();
    begin();
    CHECK(scalar_op(KILN_OP_MIN, 1.5, true, x, 3), 1, 1.5, 1.5);
    end();
}

/* ------------------------------------------------------------------------ */
/* dense, matmul                                                             */
/* ------------------------------------------------------------------------ */

static void test_dense(void)
{
    begin();
    static const double w[] = {1, 2, 3, -1, 0, 1}, b[] = {0.5, -0.5};
    static const double x[] = {1, 1, 1, 1, 2, 3, /* batch item 2 */ 0, 0, 0, -1, 0, 2};
    kiln_id d = node(KILN_OP_DENSE, IDS(input("x", DIMS(B, 2, 3)), param("w", DIMS(2, 3), w), param("b", DIMS(2), b)),
                     "fc");
    kiln_node_set_int(N(d), KILN_ATTR_UNITS, 2);
    output(done(d));
    CHECK(run(2, (const double *[]){x}, 8), 6.5, -0.5, 14.5, 1.5, 0.5, -0.5, 5.5, 2.5);
    end();
    begin(); /* no bias, f32 weights */
    static const float wf[] = {0.5f, 0.25f};
    d = node(KILN_OP_DENSE, IDS(input("x", DIMS(1, 2)), param_f32("w", DIMS(1, 2), wf)), "fc");
    kiln_node_set_int(N(d), KILN_ATTR_UNITS, 1);
    output(done(d));
    static const double x2[] = {4, 8};
    CHECK(run(1, (const double *[]){x2}, 1), 4);
    end();
}

static void matmul_ref(const double *a, const double *b, double *o, int M, int K, int Nn, bool tb)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < Nn; n++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += a[m * K + k] * (tb ? b[n * K + k] : b[k * Nn + n]);
            o[m * Nn + n] = s;
        }
}

/* [2,1,2,3] @ [3,3,2] -> [2,3,2,2]; and with transpose_b [3,2,3]. */
static void test_matmul_batched(void)
{
    for (int tb = 0; tb < 2; tb++) {
        double a[2 * 1 * 2 * 3], b[3 * 3 * 2], want[2 * 3 * 2 * 2];
        fill(a, 12);
        fill(b, 18);
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++)
                matmul_ref(a + i * 6, b + j * 6, want + (i * 3 + j) * 4, 2, 3, 2, tb);
        begin();
        kiln_id av = input("a", DIMS(2, 1, 2, 3)); /* inputs in order: a, b */
        kiln_id bv = tb ? input("b", DIMS(3, 2, 3)) : input("b", DIMS(3, 3, 2));
        kiln_id m = node(KILN_OP_MATMUL, IDS(av, bv), "mm");
        kiln_node_set_bool(N(m), KILN_ATTR_TRANSPOSE_B, tb);
        output(done(m));
        check_close(run(1, (const double *[]){a, b}, 24), want, 24, 1e-14);
        end();
    }
}

static void test_matmul_vectors(void)
{
    static const double m23[] = {1, 2, 3, 4, 5, 6}, m32[] = {1, 2, 3, 4, 5, 6}, v3[] = {1, 0, -1}, u3[] = {2, 3, 4};
    /* [3] @ [3,2] -> [2] */
    begin();
    in2(DIMS(3), DIMS(3, 2));
    output(done(node(KILN_OP_MATMUL, IDS(A_, B_), "mm")));
    CHECK(run(1, (const double *[]){v3, m32}, 2), -4, -4);
    end();
    /* [2,3] @ [3] -> [2] */
    begin();
    in2(DIMS(2, 3), DIMS(3));
    output(done(node(KILN_OP_MATMUL, IDS(A_, B_), "mm")));
    CHECK(run(1, (const double *[]){m23, v3}, 2), -2, -2);
    end();
    /* [3] @ [3] -> scalar */
    begin();
    in2(DIMS(3), DIMS(3));
    kiln_id y = done(node(KILN_OP_MATMUL, IDS(A_, B_), "mm"));
    CU_ASSERT_EQUAL(G->values[y].type.shape.rank, 0);
    output(y);
    CHECK(run(1, (const double *[]){v3, u3}, 1), -2);
    end();
    /* [batch,2,3] @ [3] -> [batch,2] */
    begin();
    static const double x[] = {1, 2, 3, 4, 5, 6, 0, 0, 1, 1, 0, 0};
    output(done(node(KILN_OP_MATMUL, IDS(input("a", DIMS(B, 2, 3)), param("b", DIMS(3), u3)), "mm")));
    CHECK(run(2, (const double *[]){x}, 4), 20, 47, 4, 2);
    end();
}

/* ------------------------------------------------------------------------ */
/* Normalizations                                                            */
/* ------------------------------------------------------------------------ */

static void test_batchnorm(void)
{
    begin();
    static const double w[] = {2, 1}, b[] = {1, 0}, mean[] = {1, -1}, var[] = {3, 0.25};
    static const double x[] = {1, 2, 3, 4, 5, 6, 7, 8};
    kiln_id n = node(KILN_OP_BATCHNORM,
                     IDS(input("x", DIMS(B, 2, 2)), param("w", DIMS(2), w), param("b", DIMS(2), b),
                         param("m", DIMS(2), mean), param("v", DIMS(2), var)),
                     "bn");
    kiln_node_set_float(N(n), KILN_ATTR_EPS, 1.0);
    output(done(n));
    /* channel 0: (x-1)/2*2+1 = x; channel 1: (x+1)/sqrt(1.25) */
    const double s = 1 / sqrt(1.25);
    CHECK(run(2, (const double *[]){x}, 8), 1, 2, 4 * s, 5 * s, 5, 6, 8 * s, 9 * s);
    end();
}

static void test_layernorm_no_affine(void)
{
    begin();
    static const double x[] = {1, 2, 3, 4, 2, 4, 6, 8};
    output(done(node(KILN_OP_LAYERNORM, IDS(input("x", DIMS(B, 4))), "ln")));
    /* row 1: mean 2.5, var 1.25; row 2: mean 5, var 5 (eps 1e-5) */
    const double s1 = 1 / sqrt(1.25 + 1e-5), s2 = 1 / sqrt(5 + 1e-5);
    CHECK(run(2, (const double *[]){x}, 8), -1.5 * s1, -0.5 * s1, 0.5 * s1, 1.5 * s1, -3 * s2, -1 * s2, 1 * s2, 3 * s2);
    end();
    begin(); /* with weight and bias */
    static const double w[] = {1, 2, 3, 4}, b[] = {0, 0, 0, 10};
    kiln_id n = node(KILN_OP_LAYERNORM, IDS(input("x", DIMS(1, 4)), param("w", DIMS(4), w), param("b", DIMS(4), b)), "ln");
    kiln_node_set_float(N(n), KILN_ATTR_EPS, 0.0);
    output(done(n));
    const double s = 1 / sqrt(1.25);
    CHECK(run(1, (const double *[]){x}, 4), -1.5 * s, -1 * s, 1.5 * s, 6 * s + 10);
    end();
}

/* softmax over axis 1 of [2,3,2]. */
static void test_softmax_axis1(void)
{
    double x[12], want[12], lwant[12];
    fill(x, 12);
    x[0] = 700; /* large: the maximum is subtracted first */
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++) {
            double m = -INFINITY, s = 0;
            for (int j = 0; j < 3; j++)
                m = fmax(m, x[(i * 3 + j) * 2 + k]);
            for (int j = 0; j < 3; j++)
                s += exp(x[(i * 3 + j) * 2 + k] - m);
            for (int j = 0; j < 3; j++) {
                want[(i * 3 + j) * 2 + k] = exp(x[(i * 3 + j) * 2 + k] - m) / s;
                lwant[(i * 3 + j) * 2 + k] = x[(i * 3 + j) * 2 + k] - m - log(s);
            }
        }
    CU_ASSERT_DOUBLE_EQUAL(want[0], 1.0, 1e-15);
    for (int log_form = 0; log_form < 2; log_form++) {
        begin();
        kiln_id n = node(log_form ? KILN_OP_LOG_SOFTMAX : KILN_OP_SOFTMAX, IDS(input("x", DIMS(2, 3, 2))), "sm");
        kiln_node_set_int(N(n), KILN_ATTR_AXIS, 1);
        output(done(n));
        check_close(run(1, (const double *[]){x}, 12), log_form ? lwant : want, 12, 1e-14);
        end();
    }
    /* the last axis, by hand: softmax([0, ln 3]) = [1/4, 3/4] */
    begin();
    static const double y[] = {0, 1.0986122886681098};
    kiln_id n = node(KILN_OP_SOFTMAX, IDS(input("x", DIMS(1, 2))), "sm");
    kiln_node_set_int(N(n), KILN_ATTR_AXIS, 1);
    output(done(n));
    CHECK(run(1, (const double *[]){y}, 2), 0.25, 0.75);
    end();
}

/* ------------------------------------------------------------------------ */
/* Shape ops                                                                 */
/* ------------------------------------------------------------------------ */

static void test_mean(void)
{
    double x[24];
    iota(x, 24, 0); /* [2,3,4]: x[i][j][k] = 12i + 4j + k */
    begin();
    kiln_id n = node(KILN_OP_MEAN, IDS(input("x", DIMS(2, 3, 4))), "m");
    set_ints(n, KILN_ATTR_AXES, DIMS(1));
    kiln_node_set_bool(N(n), KILN_ATTR_KEEPDIMS, false);
    kiln_id y = done(n);
    CU_ASSERT_EQUAL(G->values[y].type.shape.rank, 2);
    output(y);
    CHECK(run(1, (const double *[]){x}, 8), 4, 5, 6, 7, 16, 17, 18, 19);
    end();
    begin();
    n = node(KILN_OP_MEAN, IDS(input("x", DIMS(B, 3, 4))), "m");
    set_ints(n, KILN_ATTR_AXES, DIMS(1, 2));
    kiln_node_set_bool(N(n), KILN_ATTR_KEEPDIMS, false);
    output(done(n));
    CHECK(run(2, (const double *[]){x}, 2), 5.5, 17.5);
    end();
    begin(); /* keepdims (default) over the last axis */
    n = node(KILN_OP_MEAN, IDS(input("x", DIMS(2, 3, 4))), "m");
    set_ints(n, KILN_ATTR_AXES, DIMS(2));
    output(done(n));
    CHECK(run(1, (const double *[]){x}, 6), 1.5, 5.5, 9.5, 13.5, 17.5, 21.5);
    end();
}

static void test_transpose(void)
{
    double x[6];
    iota(x, 6, 0); /* [1,2,3] */
    begin();
    kiln_id n = node(KILN_OP_TRANSPOSE, IDS(input("x", DIMS(1, 2, 3))), "t");
    set_ints(n, KILN_ATTR_PERM, DIMS(0, 2, 1));
    output(done(n));
    CHECK(run(1, (const double *[]){x}, 6), 0, 3, 1, 4, 2, 5);
    end();
    double y[24];
    iota(y, 24, 0); /* [2,3,4] -> perm [2,0,1] -> [4,2,3]: out[k][i][j] = x[i][j][k] */
    begin();
    n = node(KILN_OP_TRANSPOSE, IDS(input("x", DIMS(2, 3, 4))), "t");
    set_ints(n, KILN_ATTR_PERM, DIMS(2, 0, 1));
    output(done(n));
    double want[24];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++)
                want[(k * 2 + i) * 3 + j] = y[(i * 3 + j) * 4 + k];
    check_close(run(1, (const double *[]){y}, 24), want, 24, 0);
    end();
}

static void test_reshape_flatten(void)
{
    double x[12];
    iota(x, 12, 0);
    begin();
    kiln_id n = node(KILN_OP_RESHAPE, IDS(input("x", DIMS(B, 2, 3))), "r");
    set_ints(n, KILN_ATTR_SHAPE, DIMS(0, 3, 2));
    kiln_id y = done(n);
    CU_ASSERT(G->values[y].type.shape.batched);
    CU_ASSERT_EQUAL(G->values[y].type.shape.dims[0], KILN_DIM_BATCH);
    output(y);
    const double *r = run(2, (const double *[]){x}, 12);
    check_close(r, x, 12, 0);
    end();
    begin();
    output(done(node(KILN_OP_FLATTEN, IDS(input("x", DIMS(B, 2, 3))), "f")));
    check_close(run(2, (const double *[]){x}, 12), x, 12, 0);
    end();
    begin();
    kiln_id id = node(KILN_OP_IDENTITY, IDS(input("x", DIMS(3, 4))), "i");
    output(done(node(KILN_OP_DROPOUT, IDS(done(id)), "d")));
    check_close(run(1, (const double *[]){x}, 12), x, 12, 0);
    end();
}

static void test_concat(void)
{
    static const double a[] = {1, 2, 3, 4}, b[] = {5, 6, 7, 8, 9, 10};
    begin(); /* [batch,2,1] ++ [batch,3,1] on axis 1 */
    in2(DIMS(B, 2, 1), DIMS(B, 3, 1));
    output(done(node(KILN_OP_CONCAT, IDS(A_, B_), "c")));
    CHECK(run(2, (const double *[]){a, b}, 10), 1, 2, 5, 6, 7, 3, 4, 8, 9, 10);
    end();
    begin(); /* [2,2] ++ [2,3] on the last axis */
    in2(DIMS(2, 2), DIMS(2, 3));
    kiln_id n = node(KILN_OP_CONCAT, IDS(A_, B_), "c");
    kiln_node_set_int(N(n), KILN_ATTR_AXIS, 1);
    output(done(n));
    CHECK(run(1, (const double *[]){a, b}, 10), 1, 2, 5, 6, 7, 3, 4, 8, 9, 10);
    end();
}

static void test_pad(void)
{
    static const double x[] = {1, 2, 3, 4, 5, 6}; /* [1,2,3] */
    begin();
    kiln_id n = node(KILN_OP_PAD, IDS(input("x", DIMS(1, 2, 3))), "p");
    set_ints(n, KILN_ATTR_PADS, DIMS(1, 0, 0, 2));
    kiln_node_set_float(N(n), KILN_ATTR_VALUE, -1);
    output(done(n));
    CHECK(run(1, (const double *[]){x}, 15), -1, -1, -1, -1, -1, 1, 2, 3, -1, -1, 4, 5, 6, -1, -1);
    end();
}

static void test_constant(void)
{
    begin();
    static const double c[] = {1, 2, 3};
    static const double x[] = {10, 20, 30};
    kiln_id k = done(node(KILN_OP_CONSTANT, IDS(param("c", DIMS(3), c)), "k"));
    output(done(node(KILN_OP_MUL, IDS(input("x", DIMS(3)), k), "y")));
    CHECK(run(1, (const double *[]){x}, 3), 10, 40, 90);
    end();
}

/* ------------------------------------------------------------------------ */
/* The driver                                                                */
/* ------------------------------------------------------------------------ */

/* x -> relu -> neg -> add(., x): with keep_all the middle values stay,
 * without they are freed; the input and output always stay. Runs twice. */
static void test_keep_and_rerun(void)
{
    static const double x[] = {-1, 2}, x2[] = {3, -4};
    for (int keep = 0; keep < 2; keep++) {
        begin();
        kiln_id in = input("x", DIMS(2));
        kiln_id r = done(node(KILN_OP_RELU, IDS(in), "r"));
        kiln_id n = done(node(KILN_OP_NEG, IDS(r), "n"));
        kiln_id dead = done(node(KILN_OP_EXP, IDS(r), "dead"));
        kiln_id y = done(node(KILN_OP_ADD, IDS(n, in), "y"));
        output(y);
        CU_ASSERT_EQUAL(run_opt(1, keep, (const double *[]){x}), KILN_OK);
        size_t count;
        CHECK(kiln_interp_output(IT, 0, &count), -1, 0);
        CU_ASSERT_EQUAL(count, 2);
        CU_ASSERT_PTR_NOT_NULL(kiln_interp_value(IT, in, NULL));
        CU_ASSERT_EQUAL(kiln_interp_value(IT, r, NULL) != NULL, keep);
        CU_ASSERT_EQUAL(kiln_interp_value(IT, n, NULL) != NULL, keep);
        CU_ASSERT_EQUAL(kiln_interp_value(IT, dead, NULL) != NULL, keep);
        if (keep)
            CHECK(kiln_interp_value(IT, r, NULL), 0, 2);
        /* Again with a new input, then the same input kept. */
        CU_ASSERT_EQUAL(kiln_interp_set_input_f64(IT, 0, x2), KILN_OK);
        CU_ASSERT_EQUAL(kiln_interp_run(IT, &D), KILN_OK);
        CHECK(kiln_interp_output(IT, 0, NULL), 0, -4);
        CU_ASSERT_EQUAL(kiln_interp_run(IT, &D), KILN_OK);
        CHECK(kiln_interp_output(IT, 0, NULL), 0, -4);
        CU_ASSERT_PTR_NULL(kiln_interp_output(IT, 1, &count));
        CU_ASSERT_EQUAL(count, 0);
        end();
    }
}

static void test_f32_input(void)
{
    begin();
    output(done(node(KILN_OP_RELU, IDS(input("x", DIMS(B, 2))), "r")));
    CU_ASSERT_EQUAL_FATAL(kiln_interp_create(G, 2, NULL, &IT), KILN_OK);
    static const float x[] = {-1.5f, 0.25f, 3, -0.f};
    CU_ASSERT_EQUAL(kiln_interp_set_input(IT, 0, x), KILN_OK);
    CU_ASSERT_EQUAL(kiln_interp_set_input(IT, 1, x), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(kiln_interp_run(IT, &D), KILN_OK);
    CHECK(kiln_interp_output(IT, 0, NULL), 0, 0.25, 3, 0);
    end();
}

static void test_errors(void)
{
    /* An unset input is a diagnostic, not a crash. */
    begin();
    output(done(node(KILN_OP_RELU, IDS(input("x", DIMS(2))), "r")));
    CU_ASSERT_EQUAL(kiln_interp_create(G, 0, NULL, &IT), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_PTR_NULL(IT);
    CU_ASSERT_EQUAL_FATAL(kiln_interp_create(G, 1, NULL, &IT), KILN_OK);
    CU_ASSERT_EQUAL(kiln_interp_run(IT, &D), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT(kiln_diag_has_errors(&D));
    CU_ASSERT(D.count >= 1 && strstr(D.entries[0].message, "'x'") != NULL);
    CU_ASSERT_PTR_NULL(kiln_interp_output(IT, 0, NULL));
    end();

    /* Layouts are storage: a blocked value is computed as its logical
     * tensor, and reorder passes it on unchanged. */
    begin();
    kiln_id r = done(node(KILN_OP_NEG, IDS(input("x", DIMS(1, 5, 1, 2))), "act1"));
    G->values[r].type.layout = KILN_LAYOUT_NCHWXC;
    G->values[r].type.block = 8;
    kiln_id back = done(node(KILN_OP_REORDER, IDS(r), "act1.plain"));
    CU_ASSERT_EQUAL(G->values[back].type.layout, KILN_LAYOUT_PLAIN);
    CU_ASSERT(kiln_shape_equal(&G->values[back].type.shape, &G->values[r].type.shape));
    output(back);
    double x[10];
    iota(x, 10, -4);
    const double *got = run(1, (const double *[]){x}, 10);
    CHECK(got, 4, 3, 2, 1, 0, -1, -2, -3, -4, -5);
    end();

    /* A type that disagrees with the op's rule is an internal error, never an
     * out-of-bounds write. */
    begin();
    kiln_id p = node(KILN_OP_MAXPOOL2D, IDS(input("x", DIMS(1, 1, 4, 4))), "pool");
    set_ints(p, KILN_ATTR_KERNEL, DIMS(2, 2));
    kiln_id y = done(p);
    G->values[y].type.shape.dims[3] = 3;
    output(y);
    static const double x16[16];
    CU_ASSERT_EQUAL(run_opt(1, false, (const double *[]){x16}), KILN_ERR_INTERNAL);
    CU_ASSERT(D.count >= 1 && strstr(D.entries[0].message, "pool") != NULL);
    end();

    /* Unbound weights (a FILE parameter whose tensor was never bound; a
     * RANDOM one is generated when read). */
    begin();
    kiln_type t = type_of(DIMS(2, 2));
    kiln_param prm;
    memset(&prm, 0, sizeof prm);
    prm.source = KILN_PARAM_FILE;
    prm.key = "fc.weight";
    kiln_id w = kiln_graph_add_param(G, "fc.weight", &t, &prm, LOC);
    kiln_id d = node(KILN_OP_DENSE, IDS(input("x", DIMS(1, 2)), w), "fc");
    kiln_node_set_int(N(d), KILN_ATTR_UNITS, 2);
    output(done(d));
    CU_ASSERT_EQUAL(run_opt(1, false, (const double *[]){x16}), KILN_ERR_WEIGHTS);
    CU_ASSERT(D.count >= 1 && strstr(D.entries[0].message, "fc.weight") != NULL);
    end();
}

/* The n-th allocation fails, for every n: a clean KILN_ERR_OUT_OF_MEMORY,
 * no crash, no leak (under AddressSanitizer). */
static void test_out_of_memory(void)
{
    static const double w[] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, x[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    begin();
    kiln_id c = conv(input("x", DIMS(B, 1, 3, 2)), param("w", DIMS(1, 1, 3, 1), w), KILN_NO_ID, 1, 3, 1);
    kiln_id r = done(node(KILN_OP_RELU, IDS(done(c)), "r"));
    output(done(node(KILN_OP_ADD, IDS(r, r), "y")));
    bool finished = false;
    for (long n = 1; n < 100 && !finished; n++) {
        kiln_interp *it = NULL;
        kiln_diag d;
        kiln_diag_init(&d); /* its own allocations are not counted below */
        kiln_alloc_fail_after(n, 1);
        bool input_set = false;
        kiln_status s = kiln_interp_create(G, 2, NULL, &it);
        if (s == KILN_OK && (s = kiln_interp_set_input_f64(it, 0, x)) == KILN_OK) {
            input_set = true;
            s = kiln_interp_run(it, NULL);
        }
        kiln_alloc_fail_after(-1, 0);
        CU_ASSERT(s == KILN_OK || s == KILN_ERR_OUT_OF_MEMORY);
        if (s == KILN_OK) {
            finished = true;
            CHECK(kiln_interp_output(it, 0, NULL), 44, 56, 116, 128);
        } else if (input_set) {
            /* The interpreter is still usable after a failed run. */
            CU_ASSERT_EQUAL(kiln_interp_run(it, &d), KILN_OK);
            CHECK(kiln_interp_output(it, 0, NULL), 44, 56, 116, 128);
        }
        kiln_interp_destroy(it);
        kiln_diag_release(&d);
    }
    CU_ASSERT(finished);
    end();
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite s = CU_add_suite("interp", NULL, NULL);
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"conv basic", test_conv_basic},
        {"conv stride 2, asymmetric padding", test_conv_stride_asymmetric_padding},
        {"conv dilation 2", test_conv_dilation},
        {"conv depthwise", test_conv_depthwise},
        {"conv groups 2", test_conv_groups2},
        {"conv everything vs definition", test_conv_everything},
        {"maxpool ceil_mode + padding", test_maxpool_ceil_padding},
        {"maxpool dilation, NaN", test_maxpool_dilation_nan},
        {"avgpool ceil, count_include_pad", test_avgpool_ceil_include_pad},
        {"avgpool ceil, exclude pad", test_avgpool_ceil_exclude_pad},
        {"avgpool asymmetric padding", test_avgpool_asymmetric},
        {"global_avgpool", test_global_avgpool},
        {"unary", test_unary_simple},
        {"gelu both forms", test_gelu},
        {"unary with attributes", test_unary_attrs},
        {"broadcasting [2,1,3] op [4,1]", test_broadcast},
        {"scalar and reverse", test_scalar},
        {"dense", test_dense},
        {"matmul batched broadcasting", test_matmul_batched},
        {"matmul 1-D", test_matmul_vectors},
        {"batchnorm", test_batchnorm},
        {"layernorm", test_layernorm_no_affine},
        {"softmax non-last axis", test_softmax_axis1},
        {"mean", test_mean},
        {"transpose", test_transpose},
        {"reshape 0, flatten, identity", test_reshape_flatten},
        {"concat", test_concat},
        {"pad", test_pad},
        {"constant", test_constant},
        {"keep_all and rerun", test_keep_and_rerun},
        {"f32 input", test_f32_input},
        {"errors", test_errors},
        {"out of memory", test_out_of_memory},
    };
    for (size_t i = 0; s && i < sizeof tests / sizeof tests[0]; i++)
        if (!CU_add_test(s, tests[i].name, tests[i].fn))
            s = NULL;
    if (!s) {
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
