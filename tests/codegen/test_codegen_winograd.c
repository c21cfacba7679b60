/* tests/codegen/test_codegen_winograd.c: 3x3 stride-1 convolutions through
 * Winograd's F(2x2, 3x3) and F(4x4, 3x3) (kernels/winograd.c), forced on
 * with the code generator's option, against the reference interpreter at
 * batch 1, 3 and 17 on 1, 2 and 3 threads (results identical across thread
 * counts): sizes that are not multiples of the tile or of the vector,
 * asymmetric padding, few and many channels, filters not a multiple of the
 * GEMM's rows, with and without bias, fixed shapes; fused epilogues (bias,
 * residual add, relu after the passes); and which layers the AUTO heuristic
 * picks (docs/codegen.md).
 *
 * Tolerances (the error measure of cg_util.h: relative, floored at 1e-3 of
 * the tensor's largest value): F(2x2) 1e-4, as the direct convolution;
 * F(4x4) 5e-4. The largest errors seen on these cases are printed with -v
 * and recorded in docs/codegen.md. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

#include "cg_util.h"
#include "compiler/passes/passes.h"

#define B (-1)
#define TOL_F2 1e-4
#define TOL_F4 5e-4

static double worst_f2, worst_f4;

static void set_ints(kiln_node *n, kiln_attr_id id, const int64_t *v, int count) { kiln_node_set_ints(n, id, v, count); }

static kiln_id conv3x3(kiln_graph *g, kiln_id x, const char *name, int64_t c, int64_t f, const int64_t pad[4],
                       bool bias)
{
    char w[64], b[64];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(b, sizeof b, "%s.bias", name);
    kiln_id in[3] = {x, tg_param(g, w, TG_DIMS(f, c, 3, 3), -0.5, 0.5), KILN_NO_ID};
    if (bias)
        in[2] = tg_param(g, b, TG_DIMS(f), -0.5, 0.5);
    kiln_id y = tg_node(g, KILN_OP_CONV2D, in, bias ? 3 : 2, name);
    kiln_node *n = tg_last(g);
    kiln_node_set_int(n, KILN_ATTR_FILTERS, f);
    set_ints(n, KILN_ATTR_KERNEL, (const int64_t[]){3, 3}, 2);
    set_ints(n, KILN_ATTR_STRIDE, (const int64_t[]){1, 1}, 2);
    set_ints(n, KILN_ATTR_PADDING, pad, 4);
    CU_ASSERT_FATAL(tg_finish(g));
    return y;
}

/* g checked with every layer forced to tile m; returns the error. */
static double check_tile(const kiln_graph *g, int m)
{
    static const int64_t batches[] = {1, 3, 17};
    static const int threads[] = {1, 2, 3};
    kiln_cg_options o = KILN_CG_OPTIONS_INIT;
    o.winograd = m == 4 ? KILN_WINOGRAD_F4 : KILN_WINOGRAD_F2;
    return tg_check(g, &o, batches, 3, threads, 3);
}

static void expect_both(const kiln_graph *g)
{
    double e2 = check_tile(g, 2), e4 = check_tile(g, 4);
    if (!(e2 >= 0 && e2 <= TOL_F2) || !(e4 >= 0 && e4 <= TOL_F4))
        fprintf(stderr, "  model '%s': F(2x2) error %g, F(4x4) error %g\n", g->name, e2, e4);
    CU_ASSERT(e2 >= 0 && e2 <= TOL_F2);
    CU_ASSERT(e4 >= 0 && e4 <= TOL_F4);
    worst_f2 = e2 > worst_f2 ? e2 : worst_f2;
    worst_f4 = e4 > worst_f4 ? e4 : worst_f4;
}

/* The names of the kernels module m of g runs, joined. */
static void kernels_of(const kiln_graph *g, const kiln_cg_options *o, char *out, size_t size)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_cg_module *m = NULL;
    out[0] = '\0';
    if (kiln_cg_compile(g, o, &m, &d) == KILN_OK) {
        for (size_t k = 0; k < kiln_cg_step_count(m); k++) {
            strncat(out, kiln_cg_step_at(m, k)->kernel, size - strlen(out) - 1);
            strncat(out, " ", size - strlen(out) - 1);
        }
    } else {
        kiln_diag_print(&d, stderr);
    }
    kiln_cg_module_destroy(m);
    kiln_diag_release(&d);
}

typedef struct wcase {
    int64_t c, f, h, w, pad[4];
    bool bias, batched;
} wcase;

static void test_shapes(void)
{
    static const wcase cases[] = {
        /* c   f   h   w   pad t l b r       bias  batched */
        {8, 8, 8, 8, {1, 1, 1, 1}, true, true},      /* whole tiles */
        {5, 7, 13, 11, {1, 1, 1, 1}, true, true},    /* partial tiles, odd channels */
        {3, 33, 9, 17, {1, 1, 1, 1}, false, true},   /* filters 33: a partial GEMM row tile */
        {16, 12, 10, 30, {0, 1, 2, 0}, true, true},  /* asymmetric padding */
        {4, 6, 6, 6, {0, 0, 0, 0}, true, true},      /* no padding: 4x4 outputs */
        {2, 3, 3, 3, {1, 1, 1, 1}, true, true},      /* one tile */
        {1, 1, 1, 1, {1, 1, 1, 1}, true, true},      /* a single pixel */
        {40, 20, 7, 7, {1, 1, 1, 1}, true, false},   /* fixed shapes */
        {24, 16, 20, 70, {2, 2, 2, 2}, false, true}, /* wide rows: one tile row per block, padding 2 */
        {300, 10, 6, 5, {1, 1, 1, 1}, true, true},   /* K over two GEMM blocks */
        {200, 30, 6, 6, {1, 1, 1, 1}, true, true},   /* two K blocks of several row tiles each */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const wcase *c = &cases[i];
        char name[64];
        snprintf(name, sizeof name, "wino_%zu", i);
        kiln_graph *g = tg_new(name);
        kiln_id x = tg_input(g, "x", TG_DIMS(c->batched ? B : 2, c->c, c->h, c->w));
        kiln_id y = conv3x3(g, x, "conv", c->c, c->f, c->pad, c->bias);
        tg_output(g, y);
        expect_both(g);
        kiln_graph_destroy(g);
    }
}

/* conv -> relu -> conv -> add(x) -> relu, through the passes: each conv
 * group's members run in the output transform. */
static void test_fused(void)
{
    /* 7x7: F(4x4) has one block per item, and so has F(2x2) with 130
     * channels, where it compacts the GEMM columns (4 tiles per row); with 2
     * planned threads such a block's filters are split in two parts (30:
     * 18 + 12; 130: 66 + 64) when the step has more tasks than blocks (batch
     * 1 and 3; not 17). */
    static const struct {
        int m;
        int64_t h, w, c;
    } runs[] = {{2, 14, 19, 12}, {4, 14, 19, 12}, {2, 7, 7, 30}, {4, 7, 7, 30}, {2, 7, 7, 130}};
    for (size_t run = 0; run < sizeof runs / sizeof runs[0]; run++) {
        const int m = runs[run].m;
        kiln_graph *g = tg_new(m == 4 ? "wino_fused4" : "wino_fused2");
        const int64_t pad[4] = {1, 1, 1, 1};
        const int64_t C = runs[run].c;
        kiln_id x = tg_input(g, "x", TG_DIMS(B, C, runs[run].h, runs[run].w));
        kiln_id a = conv3x3(g, x, "c1", C, C, pad, true);
        kiln_id r = tg_node(g, KILN_OP_RELU, &a, 1, "r1");
        CU_ASSERT_FATAL(tg_finish(g));
        kiln_id b = conv3x3(g, r, "c2", C, C, pad, true);
        kiln_id in[2] = {b, x};
        kiln_id s = tg_node(g, KILN_OP_ADD, in, 2, "sum");
        CU_ASSERT_FATAL(tg_finish(g));
        kiln_id y = tg_node(g, KILN_OP_RELU, &s, 1, "y");
        CU_ASSERT_FATAL(tg_finish(g));
        tg_output(g, y);
        kiln_diag d;
        kiln_diag_init(&d);
        kiln_pipeline_options po = {.verify_each = true, .threads_hint = 2};
        kiln_status st = kiln_pipeline_run(g, &po, &d);
        if (st != KILN_OK)
            kiln_diag_print(&d, stderr);
        kiln_diag_release(&d);
        CU_ASSERT_FATAL(st == KILN_OK);
        kiln_cg_options o = tg_target_options();
        o.winograd = m == 4 ? KILN_WINOGRAD_F4 : KILN_WINOGRAD_F2;
        char names[1024];
        kernels_of(g, &o, names, sizeof names);
        /* two kernels, both Winograd, the second with the residual add and relu fused */
        CU_ASSERT(strstr(names, m == 4 ? "f32_conv2d_3x3_bias_relu_winograd4" : "f32_conv2d_3x3_bias_relu_winograd2") != NULL);
        CU_ASSERT(strstr(names, m == 4 ? "f32_conv2d_3x3_bias_add_relu_winograd4" : "f32_conv2d_3x3_bias_add_relu_winograd2") !=
                  NULL);
        double e = check_tile(g, m);
        if (!(e >= 0 && e <= (m == 4 ? TOL_F4 : TOL_F2)))
            fprintf(stderr, "  fused F(%dx%d): error %g (kernels: %s)\n", m, m, e, names);
        CU_ASSERT(e >= 0 && e <= (m == 4 ? TOL_F4 : TOL_F2));
        kiln_graph_destroy(g);
    }
}

/* AUTO: F(4x4) on wide layers, F(2x2) where 4x4 tiles pad too much,
 * none where the transforms would cost more than they save or the conv is
 * not 3x3 stride 1; OFF: none. The choice depends on the target row (the
 * GEMM panel width decides how much of a tile row is padding), so each row
 * is compiled explicitly and has its own expectations: those measured best
 * on an AVX2 host (Zen 3) and on an AVX-512 host (Xeon; docs/codegen.md):
 * there F(2x2) won on 128 at 28x28 (0.92 ms against F(4x4) 1.25 and the
 * implicit GEMM 1.57) and on 512 at 7x7 (1.54 against 2.11), and tied with
 * the implicit GEMM on 256 at 14x14 (1.73 against 1.70). */
static void test_auto_choice(void)
{
    static const struct {
        const char *row, *cpu;
    } targets[] = {{"avx2", "x86-64-v3"}, {"avx512", "x86-64-v4"}};
    struct {
        int64_t c, hw;
        const char *expect[2]; /* substring of the kernel name, per target above */
    } cases[] = {
        {64, 56, {"winograd4", "winograd4"}}, {128, 28, {"winograd4", "winograd2"}},
        {256, 14, {"winograd2", "igemm"}},    {16, 32, {"winograd4", "winograd2"}},
        {32, 16, {"winograd2", "igemm"}},     {64, 8, {"igemm", "igemm"}},
        {512, 7, {"winograd2", "winograd2"}},     {3, 32, {"igemm", "igemm"}},
    };
    for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            kiln_graph *g = tg_new("wino_auto");
            const int64_t pad[4] = {1, 1, 1, 1};
            kiln_id x = tg_input(g, "x", TG_DIMS(B, cases[i].c, cases[i].hw, cases[i].hw));
            tg_output(g, conv3x3(g, x, "conv", cases[i].c, cases[i].c, pad, true));
            kiln_cg_options o = KILN_CG_OPTIONS_INIT;
            o.triple = "x86_64-unknown-linux-gnu";
            o.cpu = targets[t].cpu;
            char names[512];
            kernels_of(g, &o, names, sizeof names);
            const char *want = cases[i].expect[t];
            if (!strstr(names, want) || !strstr(names, targets[t].row))
                fprintf(stderr, "  %s: %lld channels at %lldx%lld: kernels '%s', expected %s\n", targets[t].row,
                        (long long)cases[i].c, (long long)cases[i].hw, (long long)cases[i].hw, names, want);
            CU_ASSERT(strstr(names, want) != NULL && strstr(names, targets[t].row) != NULL);
            o.winograd = KILN_WINOGRAD_OFF;
            kernels_of(g, &o, names, sizeof names);
            CU_ASSERT(strstr(names, "winograd") == NULL);
            kiln_graph_destroy(g);
        }
    /* not eligible even when forced: stride 2, 5x5, dilation, groups */
    kiln_graph *g = tg_new("wino_stride2");
    kiln_id x = tg_input(g, "x", TG_DIMS(B, 8, 9, 9));
    kiln_id in[2] = {x, tg_param(g, "w", TG_DIMS(8, 8, 3, 3), -0.5, 0.5)};
    kiln_id y = tg_node(g, KILN_OP_CONV2D, in, 2, "y");
    kiln_node *n = tg_last(g);
    kiln_node_set_int(n, KILN_ATTR_FILTERS, 8);
    set_ints(n, KILN_ATTR_KERNEL, (const int64_t[]){3, 3}, 2);
    set_ints(n, KILN_ATTR_STRIDE, (const int64_t[]){2, 2}, 2);
    CU_ASSERT_FATAL(tg_finish(g));
    tg_output(g, y);
    kiln_cg_options o = KILN_CG_OPTIONS_INIT;
    o.winograd = KILN_WINOGRAD_F4;
    char names[512];
    kernels_of(g, &o, names, sizeof names);
    CU_ASSERT(strstr(names, "winograd") == NULL && strstr(names, "igemm") != NULL);
    kiln_graph_destroy(g);
}

static void test_report(void)
{
    printf("\n  largest error: F(2x2, 3x3) %.3g, F(4x4, 3x3) %.3g ", worst_f2, worst_f4);
    CU_ASSERT(worst_f4 > 0); /* the shapes ran */
}

static void add_tests(CU_pSuite s)
{
    CU_add_test(s, "shapes", test_shapes);
    CU_add_test(s, "fused epilogues", test_fused);
    CU_add_test(s, "largest errors", test_report);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    tg_add_suites("codegen_winograd", add_tests);
    CU_pSuite s = CU_add_suite("codegen_winograd choice (x86-64 rows, compiled)", NULL, NULL);
    CU_add_test(s, "auto choice", test_auto_choice);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
