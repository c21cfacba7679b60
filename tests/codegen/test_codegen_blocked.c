/* tests/codegen/test_codegen_blocked.c: the kernels over the channel-blocked
 * layout (compiler/codegen/kernels/blocked.c) against the reference
 * interpreter, which computes the same graph ignoring layouts (a layout is
 * storage only). Graphs are built with blocked values directly (the layout
 * pass's choice is tested in tests/test_passes.c): a plain input, kernels
 * reading and writing nchw<B>c, B the target's lanes, and a reorder back to
 * plain for the output. Channel counts that are not whole blocks, odd sizes,
 * strides, dilation, asymmetric padding, pools with and without
 * count_include_pad, elementwise ops between blocked values, fused
 * epilogues, batch 1 / 3 / 17 on 1 / 2 / 3 threads.
 *
 * Tolerance 1e-4 (the error measure of cg_util.h), as every direct sum. One
 * case checks that padding lanes stay zero: x / x is NaN in lanes that hold
 * 0 / 0, and a convolution reading them would spread NaN into real
 * channels. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

#include "cg_util.h"
#include "compiler/passes/passes.h"

#define B (-1)
#define TOL 1e-4

static double worst;

/* Values are blocked by the lanes of the target row being tested. */
static void blocked(kiln_graph *g, kiln_id v)
{
    g->values[v].type.layout = KILN_LAYOUT_NCHWXC;
    g->values[v].type.block = tg_current_target()->lanes;
}

static void set_ints(kiln_node *n, kiln_attr_id id, const int64_t *v, int count) { kiln_node_set_ints(n, id, v, count); }

typedef struct conv_spec {
    int64_t f, kh, kw, sh, sw, pad[4], dil, groups;
    bool bias;
} conv_spec;

static kiln_id conv(kiln_graph *g, kiln_id x, const char *name, const conv_spec *s)
{
    const int64_t c = g->values[x].type.shape.dims[1];
    char w[64], b[64];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(b, sizeof b, "%s.bias", name);
    kiln_id in[3] = {x, tg_param(g, w, TG_DIMS(s->f, c / s->groups, s->kh, s->kw), -0.5, 0.5), KILN_NO_ID};
    if (s->bias)
        in[2] = tg_param(g, b, TG_DIMS(s->f), -0.5, 0.5);
    kiln_id y = tg_node(g, KILN_OP_CONV2D, in, s->bias ? 3 : 2, name);
    kiln_node *n = tg_last(g);
    kiln_node_set_int(n, KILN_ATTR_FILTERS, s->f);
    kiln_node_set_int(n, KILN_ATTR_GROUPS, s->groups);
    set_ints(n, KILN_ATTR_KERNEL, (const int64_t[]){s->kh, s->kw}, 2);
    set_ints(n, KILN_ATTR_STRIDE, (const int64_t[]){s->sh, s->sw}, 2);
    set_ints(n, KILN_ATTR_PADDING, s->pad, 4);
    set_ints(n, KILN_ATTR_DILATION, (const int64_t[]){s->dil, s->dil}, 2);
    CU_ASSERT_FATAL(tg_finish(g));
    blocked(g, y);
    return y;
}

static kiln_id pool(kiln_graph *g, kiln_op op, kiln_id x, const char *name, int64_t k, int64_t s, const int64_t pad[4],
                    bool include_pad)
{
    kiln_id y = tg_node(g, op, &x, 1, name);
    kiln_node *n = tg_last(g);
    set_ints(n, KILN_ATTR_KERNEL, (const int64_t[]){k, k}, 2);
    set_ints(n, KILN_ATTR_STRIDE, (const int64_t[]){s, s}, 2);
    set_ints(n, KILN_ATTR_PADDING, pad, 4);
    if (op == KILN_OP_AVGPOOL2D)
        kiln_node_set_int(n, KILN_ATTR_COUNT_INCLUDE_PAD, include_pad);
    CU_ASSERT_FATAL(tg_finish(g));
    blocked(g, y);
    return y;
}

static kiln_id node1(kiln_graph *g, kiln_op op, kiln_id x, const char *name, bool keep_block)
{
    kiln_id y = tg_node(g, op, &x, 1, name);
    CU_ASSERT_FATAL(tg_finish(g));
    if (keep_block)
        blocked(g, y);
    return y;
}

static kiln_id node2(kiln_graph *g, kiln_op op, kiln_id a, kiln_id b, const char *name)
{
    kiln_id in[2] = {a, b};
    kiln_id y = tg_node(g, op, in, 2, name);
    CU_ASSERT_FATAL(tg_finish(g));
    blocked(g, y);
    return y;
}

static void expect_ok(const kiln_graph *g, bool fuse)
{
    kiln_graph *work = kiln_graph_clone(g);
    CU_ASSERT_FATAL(work != NULL);
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_status st = kiln_ir_verify(work, &d);
    if (st == KILN_OK && fuse)
        st = kiln_pass_fuse(work, &d);
    if (st != KILN_OK)
        kiln_diag_print(&d, stderr);
    kiln_diag_release(&d);
    CU_ASSERT_FATAL(st == KILN_OK);
    double e = tg_check_default(work);
    if (!(e >= 0 && e <= TOL))
        fprintf(stderr, "  model '%s'%s: error %g\n", g->name, fuse ? " (fused)" : "", e);
    CU_ASSERT(e >= 0 && e <= TOL);
    if (e > worst)
        worst = e;
    kiln_graph_destroy(work);
}

/* plain image -> conv (blocked out) -> depthwise -> 1x1 -> ... -> reorder. */
static void test_mobile_block(void)
{
    static const int64_t sizes[][3] = {{3, 17, 13}, {1, 7, 7}, {4, 1, 1}, {3, 30, 9}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        kiln_graph *g = tg_new("blocked_mobile");
        kiln_id x = tg_input(g, "x", TG_DIMS(B, sizes[i][0], sizes[i][1], sizes[i][2]));
        conv_spec stem = {12, 3, 3, 2, 2, {1, 1, 1, 1}, 1, 1, true};
        kiln_id a = conv(g, x, "stem", &stem);
        kiln_id a6 = node1(g, KILN_OP_RELU6, a, "stem.relu", true);
        conv_spec dw = {12, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 12, true};
        kiln_id b = node1(g, KILN_OP_RELU, conv(g, a6, "dw", &dw), "dw.relu", true);
        conv_spec pw = {21, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, true};
        kiln_id c = conv(g, b, "pw", &pw);
        conv_spec dw2 = {21, 5, 5, 2, 2, {2, 1, 2, 3}, 1, 21, false};
        kiln_id d = conv(g, c, "dw2", &dw2);
        conv_spec pw2 = {21, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, false};
        kiln_id e = node2(g, KILN_OP_ADD, conv(g, d, "pw2", &pw2), d, "res");
        kiln_id f = node1(g, KILN_OP_SIGMOID, e, "sig", true);
        tg_output(g, node1(g, KILN_OP_REORDER, f, "out", false));
        tg_output(g, node1(g, KILN_OP_GLOBAL_AVGPOOL, f, "gap", false));
        expect_ok(g, false);
        expect_ok(g, true);
        kiln_graph_destroy(g);
    }
}

/* Convolutions of one group: kernels, strides, dilation, padding, channel
 * counts around the block and the GEMM tile; plain and blocked inputs. */
static void test_conv_shapes(void)
{
    static const struct {
        int64_t c, h, w;
        bool blocked_in;
        conv_spec s;
    } cases[] = {
        {3, 15, 11, false, {8, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, true}},
        {5, 12, 12, true, {17, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, true}},
        {16, 9, 10, true, {40, 1, 1, 2, 2, {0, 0, 0, 0}, 1, 1, false}},
        {9, 11, 7, true, {33, 3, 3, 2, 1, {0, 1, 2, 0}, 1, 1, true}},
        {8, 13, 13, true, {8, 3, 3, 1, 1, {2, 2, 2, 2}, 2, 1, true}},
        {24, 5, 5, true, {7, 5, 5, 1, 1, {2, 2, 2, 2}, 1, 1, true}},
        {1, 20, 20, false, {16, 7, 7, 2, 2, {3, 3, 3, 3}, 1, 1, true}},
        {70, 3, 4, true, {70, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, true}},
        /* remainders after whole tiles: a half tile then single pixels
         * (49 = 3 x 14 + 7 on AVX-512; 10 = 6 + 3 + 1 on AVX2, 2 x 4 + 2 on SSE) */
        {40, 7, 7, true, {36, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, true}},
        {20, 7, 7, true, {20, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, false}},
        {33, 5, 2, true, {18, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, true}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kiln_graph *g = tg_new("blocked_conv");
        kiln_id x = tg_input(g, "x", TG_DIMS(B, cases[i].c, cases[i].h, cases[i].w));
        if (cases[i].blocked_in) {
            conv_spec id = {cases[i].c, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, true};
            x = conv(g, x, "to_blocked", &id);
        }
        kiln_id y = conv(g, x, "conv", &cases[i].s);
        tg_output(g, node1(g, KILN_OP_REORDER, node1(g, KILN_OP_RELU, y, "relu", true), "out", false));
        expect_ok(g, false);
        expect_ok(g, true);
        kiln_graph_destroy(g);
    }
}

static void test_pools(void)
{
    static const int64_t pads[][4] = {{0, 0, 0, 0}, {1, 1, 1, 1}, {1, 0, 1, 1}};
    for (int p = 0; p < 3; p++)
        for (int inc = 0; inc < 2; inc++) {
            kiln_graph *g = tg_new("blocked_pool");
            kiln_id x = tg_input(g, "x", TG_DIMS(B, 3, 14, 11));
            conv_spec s = {13, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, true};
            kiln_id a = conv(g, x, "c", &s);
            kiln_id m = pool(g, KILN_OP_MAXPOOL2D, a, "max", 3, 2, pads[p], false);
            kiln_id v = pool(g, KILN_OP_AVGPOOL2D, a, "avg", 3, 1, pads[p], inc);
            tg_output(g, node1(g, KILN_OP_REORDER, m, "max_out", false));
            tg_output(g, node1(g, KILN_OP_REORDER, v, "avg_out", false));
            expect_ok(g, false);
            kiln_graph_destroy(g);
        }
}

/* x / x is 0 / 0 = NaN in the padding lanes unless the kernel writes zeros
 * there; the 1x1 convolution after it reads every lane of the last block. */
static void test_padding_lanes(void)
{
    kiln_graph *g = tg_new("blocked_pad");
    kiln_id x = tg_input(g, "x", TG_DIMS(B, 2, 6, 5));
    conv_spec s = {11, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, true};
    kiln_id a = conv(g, x, "c", &s);
    kiln_id q = node2(g, KILN_OP_DIV, a, a, "q");
    conv_spec t = {9, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, true};
    kiln_id y = conv(g, q, "mix", &t);
    conv_spec dw = {9, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 9, true};
    kiln_id z = conv(g, node2(g, KILN_OP_DIV, y, y, "q2"), "dw", &dw);
    tg_output(g, node1(g, KILN_OP_REORDER, z, "out", false));
    expect_ok(g, false);
    expect_ok(g, true); /* div fused into the 1x1 convolution's epilogue */
    kiln_graph_destroy(g);
}

/* Reorders between plain and blocked both ways. */
static void test_reorder(void)
{
    kiln_graph *g = tg_new("blocked_reorder");
    kiln_id x = tg_input(g, "x", TG_DIMS(B, 19, 3, 4));
    kiln_id a = node1(g, KILN_OP_REORDER, x, "to_blocked", true);
    kiln_id r = node1(g, KILN_OP_NEG, a, "neg", true);
    tg_output(g, node1(g, KILN_OP_REORDER, r, "out", false));
    expect_ok(g, false);
    kiln_graph_destroy(g);
}

/* resize between blocked convolutions, every mode, up and down, channels
 * that are not whole blocks (13), lanes of zeros kept zero (x / x before). */
static void test_resize(void)
{
    static const struct {
        kiln_resize_mode mode;
        bool align, by_scale;
        int64_t size[2];
        double scale[2];
    } cases[] = {
        {KILN_RESIZE_NEAREST, false, true, {0, 0}, {2, 2}},
        {KILN_RESIZE_NEAREST_EXACT, false, false, {11, 5}, {0, 0}},
        {KILN_RESIZE_BILINEAR, false, true, {0, 0}, {2, 2}},
        {KILN_RESIZE_BILINEAR, true, false, {13, 20}, {0, 0}},
        {KILN_RESIZE_BICUBIC, false, true, {0, 0}, {1.5, 0.75}},
        {KILN_RESIZE_BICUBIC, true, false, {4, 17}, {0, 0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kiln_graph *g = tg_new("blocked_resize");
        kiln_id x = tg_input(g, "x", TG_DIMS(B, 3, 7, 9));
        conv_spec s = {13, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, true};
        kiln_id a = conv(g, x, "c", &s);
        kiln_id q = node2(g, KILN_OP_DIV, a, a, "q");
        kiln_id m = node2(g, KILN_OP_MUL, a, q, "m");
        kiln_id up = tg_node(g, KILN_OP_RESIZE, &m, 1, "up");
        kiln_node *n = tg_last(g);
        kiln_node_set_int(n, KILN_ATTR_MODE, cases[i].mode);
        kiln_node_set_bool(n, KILN_ATTR_ALIGN_CORNERS, cases[i].align);
        if (cases[i].by_scale)
            kiln_node_set_floats(n, KILN_ATTR_SCALE, cases[i].scale, 2);
        else
            set_ints(n, KILN_ATTR_SIZE, cases[i].size, 2);
        CU_ASSERT_FATAL(tg_finish(g));
        blocked(g, up);
        conv_spec t = {9, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, true};
        kiln_id y = conv(g, up, "mix", &t);
        tg_output(g, node1(g, KILN_OP_REORDER, y, "out", false));
        tg_output(g, node1(g, KILN_OP_REORDER, up, "up_out", false));
        expect_ok(g, false);
        expect_ok(g, true);
        kiln_graph_destroy(g);
    }
}

static void report(void) { fprintf(stderr, "\n  largest error of the blocked kernels: %.3g\n", worst); }

static void add_tests(CU_pSuite s)
{
    CU_add_test(s, "mobile block", test_mobile_block);
    CU_add_test(s, "conv shapes", test_conv_shapes);
    CU_add_test(s, "pools", test_pools);
    CU_add_test(s, "padding lanes", test_padding_lanes);
    CU_add_test(s, "reorder", test_reorder);
    CU_add_test(s, "resize", test_resize);
    CU_add_test(s, "report", report);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    tg_add_suites("codegen_blocked", add_tests);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
