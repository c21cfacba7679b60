/* tests/codegen/test_codegen_precision.c: dense and conv2d layers with bf16
 * and f16 weights (docs/precision.md), on every target row (cg_util.h: the
 * rows this host runs are compared, the others compiled).
 *
 * Two comparisons per case:
 *   - tight, against the interpreter emulating the layer's precision (its
 *     weights, and with bf16 its input, rounded as the compiled code rounds
 *     them, the sums in double): what remains is the f32 accumulation of the
 *     compiled code. The products are exact in f32 (bf16 x bf16), or rounded
 *     once inside an FMA (f16 x f32); sums of at most a few hundred terms
 *     over K blocks add errors of a few units of 2^-24 relative to the sum of
 *     the terms' magnitudes, which the error measure (cg_util.h: relative,
 *     with a floor of 1e-2 of the output's largest magnitude) keeps under
 *     TIGHT, the tolerance of every f32 GEMM test;
 *   - loose, against the f32 model, relative to the output's largest
 *     magnitude: the error that rounding the operands costs, which must be
 *     of the format's size: at least LOW (the layer did round: a reduced-
 *     precision path ran) and at most HIGH.
 * Sizes around the register tile: 13, 14 and 15 rows (the batch of a dense
 * layer, the filters of a convolution: AVX-512 tiles have 14 rows, the
 * widening bf16 fallback 12), K odd (the last bf16 pair padded) and K over
 * the K block. */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg_util.h"
#include "compiler/codegen/codegen.h"

#define TIGHT 1e-4
/* Against f32, relative to the output's largest magnitude: about the unit
 * roundoff of the format (bf16 2^-9 = 2e-3 on both operands, f16 2^-11 =
 * 5e-4 on the weights), within a factor of 4 either way (measured on the
 * development host: bf16 1.9e-3 to 3.2e-3, f16 1.5e-4 to 3.2e-4). */
static const double LOW[] = {[KILN_PREC_BF16] = 5e-4, [KILN_PREC_F16] = 4e-5};
static const double HIGH[] = {[KILN_PREC_BF16] = 1e-2, [KILN_PREC_F16] = 1.5e-3};

static const int64_t dense_batches[] = {1, 13, 14, 15};
static const int64_t conv_batches[] = {1, 2};
static const int threads[] = {1, 3};

/* The largest errors seen, per precision (printed at the end). */
static double worst_tight[KILN_PREC_COUNT], worst_loose[KILN_PREC_COUNT], least_loose[KILN_PREC_COUNT];

static const char *prec_name(kiln_precision p) { return kiln_precision_name(p); }

static kiln_graph *dense_graph(kiln_precision p, int64_t K, int64_t units, bool relu)
{
    char name[64];
    snprintf(name, sizeof name, "dense_%s_%lld_%lld", prec_name(p), (long long)K, (long long)units);
    kiln_graph *g = tg_new(name);
    kiln_id in[3];
    in[0] = tg_input(g, "x", TG_DIMS(-1, K));
    in[1] = tg_param(g, "fc.weight", TG_DIMS(units, K), -0.5, 0.5);
    in[2] = tg_param(g, "fc.bias", TG_DIMS(units), -0.5, 0.5);
    kiln_id y = tg_node(g, KILN_OP_DENSE, in, 3, "y");
    kiln_node_set_int(tg_last(g), KILN_ATTR_UNITS, units);
    tg_last(g)->precision = p;
    CU_ASSERT_FATAL(tg_finish(g));
    if (relu) {
        y = tg_node(g, KILN_OP_RELU, &y, 1, "r");
        CU_ASSERT_FATAL(tg_finish(g));
    }
    tg_output(g, y);
    return g;
}

typedef struct conv_shape {
    int64_t C, H, W, F, k, stride, pad, groups;
} conv_shape;

static kiln_graph *conv_graph(kiln_precision p, const conv_shape *s)
{
    char name[96];
    snprintf(name, sizeof name, "conv_%s_c%lld_f%lld_k%lld_s%lld_g%lld", prec_name(p), (long long)s->C,
             (long long)s->F, (long long)s->k, (long long)s->stride, (long long)s->groups);
    kiln_graph *g = tg_new(name);
    kiln_id in[3];
    in[0] = tg_input(g, "x", TG_DIMS(-1, s->C, s->H, s->W));
    in[1] = tg_param(g, "conv.weight", TG_DIMS(s->F, s->C / s->groups, s->k, s->k), -0.4, 0.4);
    in[2] = tg_param(g, "conv.bias", TG_DIMS(s->F), -0.5, 0.5);
    kiln_id y = tg_node(g, KILN_OP_CONV2D, in, 3, "y");
    kiln_node *n = tg_last(g);
    kiln_node_set_int(n, KILN_ATTR_FILTERS, s->F);
    kiln_node_set_ints(n, KILN_ATTR_KERNEL, (const int64_t[]){s->k, s->k}, 2);
    kiln_node_set_ints(n, KILN_ATTR_STRIDE, (const int64_t[]){s->stride, s->stride}, 2);
    kiln_node_set_ints(n, KILN_ATTR_PADDING, (const int64_t[]){s->pad, s->pad, s->pad, s->pad}, 4);
    kiln_node_set_int(n, KILN_ATTR_GROUPS, s->groups);
    n->precision = p;
    CU_ASSERT_FATAL(tg_finish(g));
    tg_output(g, y);
    return g;
}

/* The kernel of the graph's first node starts with "kiln.<prefix>" when
 * compiled for the current row. */
static void expect_kernel(const kiln_graph *g, const char *prefix)
{
    kiln_cg_options o = tg_target_options();
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_cg_module *m = NULL;
    CU_ASSERT_FATAL(kiln_cg_compile(g, &o, &m, &d) == KILN_OK);
    bool found = false;
    for (size_t k = 0; k < kiln_cg_step_count(m); k++) {
        const kiln_cg_step_info *s = kiln_cg_step_at(m, k);
        if (s->first_node == 0) {
            found = strncmp(s->kernel, "kiln.", 5) == 0 && strncmp(s->kernel + 5, prefix, strlen(prefix)) == 0;
            if (!found)
                fprintf(stderr, "model '%s': kernel %s, expected kiln.%s...\n", g->name, s->kernel, prefix);
        }
    }
    CU_ASSERT(found);
    kiln_cg_module_destroy(m);
    kiln_diag_release(&d);
}

static void check_pair(kiln_graph *g, kiln_graph *f32, kiln_precision p, const int64_t *batches, int n_batches,
                       const char *kernel_prefix)
{
    double tight = tg_check(g, NULL, batches, n_batches, threads, 2);
    CU_ASSERT(tight >= 0 && tight <= TIGHT);
    const tg_target *row = tg_current_target();
    if (!row || row->runnable) {
        double loose = tg_check_ref(g, f32, NULL, batches, n_batches, threads, 1, 1.0, HIGH[p]);
        if (!(loose >= LOW[p] && loose <= HIGH[p]))
            fprintf(stderr, "model '%s': error against f32 %.3g, expected within [%.0e, %.0e]\n", g->name, loose,
                    LOW[p], HIGH[p]);
        CU_ASSERT(loose >= LOW[p] && loose <= HIGH[p]);
        if (loose > worst_loose[p])
            worst_loose[p] = loose;
        if (least_loose[p] == 0 || loose < least_loose[p])
            least_loose[p] = loose;
        if (tight > worst_tight[p])
            worst_tight[p] = tight;
    }
    expect_kernel(g, kernel_prefix);
    kiln_graph_destroy(g);
    kiln_graph_destroy(f32);
}

static void dense_cases(kiln_precision p)
{
    /* K: odd (a padded pair), under the K block, over it (the packed B's K
     * blocks), 1024 + 3 (rows 4 KiB apart: the copy-A nest, partial blocks) */
    static const int64_t Ks[] = {1, 17, 37, 192, 401, 1027};
    static const int64_t units[] = {15, 33, 100};
    const char *prefix = p == KILN_PREC_BF16 ? "bf16_dense_bias" : "f16_dense_bias";
    for (size_t k = 0; k < sizeof Ks / sizeof Ks[0]; k++)
        for (size_t u = 0; u < sizeof units / sizeof units[0]; u++)
            check_pair(dense_graph(p, Ks[k], units[u], u == 1), dense_graph(KILN_PREC_F32, Ks[k], units[u], u == 1), p,
                       dense_batches, 4, prefix);
}

static void test_dense_bf16(void) { dense_cases(KILN_PREC_BF16); }
static void test_dense_f16(void) { dense_cases(KILN_PREC_F16); }

static const conv_shape conv_shapes[] = {
    /* C   H   W   F  k  s  p  g */
    {5, 9, 11, 13, 3, 1, 1, 1},  /* K = 45: odd, one block */
    {6, 8, 7, 14, 3, 1, 1, 1},   /* K = 54: even */
    {45, 6, 9, 15, 3, 1, 1, 1},  /* K = 405: odd, over the K block (blocks of whole channels, even) */
    {7, 7, 6, 15, 3, 2, 0, 1},   /* stride 2, no padding */
    {8, 9, 9, 14, 3, 1, 1, 2},   /* two groups */
    {9, 13, 3, 13, 1, 1, 0, 1},  /* 1x1: the GEMM on the input, K = 9 */
    {200, 5, 7, 15, 1, 1, 0, 1}, /* 1x1 over the K block */
    {6, 5, 5, 15, 1, 1, 0, 3},   /* 1x1, three groups: K = 2 */
};

static void conv_cases(kiln_precision p)
{
    for (size_t i = 0; i < sizeof conv_shapes / sizeof conv_shapes[0]; i++) {
        const conv_shape *s = &conv_shapes[i];
        const char *prefix = p == KILN_PREC_BF16 ? "bf16_conv2d" : "f16_conv2d";
        check_pair(conv_graph(p, s), conv_graph(KILN_PREC_F32, s), p, conv_batches, 2, prefix);
    }
}

static void test_conv_bf16(void) { conv_cases(KILN_PREC_BF16); }
static void test_conv_f16(void) { conv_cases(KILN_PREC_F16); }

/* A depthwise convolution asking for bf16 has no reduced-precision kernel:
 * it computes (and its kernel is named) f32, and the interpreter agrees at
 * f32's tolerance. */
static void test_depthwise_stays_f32(void)
{
    conv_shape s = {8, 9, 9, 8, 3, 1, 1, 8};
    kiln_graph *g = conv_graph(KILN_PREC_BF16, &s);
    CU_ASSERT_EQUAL(kiln_node_precision(g, &g->nodes[0]), KILN_PREC_F32);
    double e = tg_check(g, NULL, conv_batches, 2, threads, 1);
    CU_ASSERT(e >= 0 && e <= TIGHT);
    expect_kernel(g, "f32_conv2d");
    kiln_graph_destroy(g);
}

/* The weights blob holds what is stored: half the bytes of the f32 weights
 * for bf16 and f16 (the bias stays f32; B panels of 32 columns on AVX-512,
 * 16 on AVX2 and 8 on SSE: 64 units fill them exactly). */
static void test_weight_bytes(void)
{
    size_t bytes[3];
    const kiln_precision ps[3] = {KILN_PREC_F32, KILN_PREC_BF16, KILN_PREC_F16};
    for (int i = 0; i < 3; i++) {
        kiln_graph *g = dense_graph(ps[i], 64, 64, false);
        kiln_cg_options o = tg_target_options();
        kiln_diag d;
        kiln_diag_init(&d);
        kiln_cg_module *m = NULL;
        CU_ASSERT_FATAL(kiln_cg_compile(g, &o, &m, &d) == KILN_OK);
        kiln_cg_report r;
        kiln_cg_get_report(m, &r);
        bytes[i] = r.weight_bytes;
        kiln_cg_module_destroy(m);
        kiln_diag_release(&d);
        kiln_graph_destroy(g);
    }
    CU_ASSERT_EQUAL(bytes[0], 64 * 64 * 4 + 64 * 4);
    CU_ASSERT_EQUAL(bytes[1], 64 * 64 * 2 + 64 * 4);
    CU_ASSERT_EQUAL(bytes[2], 64 * 64 * 2 + 64 * 4);
}

/* On an AVX-512 host: the 512-bit widening fallback (x86-64-v4 has no
 * AVX512-BF16), run, beside the host's own code. */
static void test_avx512_without_bf16(void)
{
    const tg_target *row = tg_current_target();
    if (!row || strcmp(row->name, "avx512") != 0)
        return;
    kiln_graph *g = dense_graph(KILN_PREC_BF16, 37, 33, false);
    kiln_cg_options o = KILN_CG_OPTIONS_INIT;
    o.cpu = "x86-64-v4";
    double e = tg_check(g, &o, dense_batches, 4, threads, 1);
    CU_ASSERT(e >= 0 && e <= TIGHT);
    kiln_graph_destroy(g);
    conv_shape s = {5, 9, 11, 13, 3, 1, 1, 1};
    g = conv_graph(KILN_PREC_BF16, &s);
    e = tg_check(g, &o, conv_batches, 2, threads, 1);
    CU_ASSERT(e >= 0 && e <= TIGHT);
    kiln_graph_destroy(g);
}

static void summary(void)
{
    for (int p = KILN_PREC_BF16; p <= KILN_PREC_F16; p++)
        printf("%s: largest error against the emulating interpreter %.3g (tolerance %.0e); against f32 %.3g to "
               "%.3g (accepted %.2g to %.2g)\n",
               prec_name((kiln_precision)p), worst_tight[p], TIGHT, least_loose[p], worst_loose[p], LOW[p], HIGH[p]);
}

static void add_tests(CU_pSuite s)
{
    CU_add_test(s, "dense bf16", test_dense_bf16);
    CU_add_test(s, "dense f16", test_dense_f16);
    CU_add_test(s, "conv2d bf16", test_conv_bf16);
    CU_add_test(s, "conv2d f16", test_conv_f16);
    CU_add_test(s, "depthwise stays f32", test_depthwise_stays_f32);
    CU_add_test(s, "weight bytes", test_weight_bytes);
    CU_add_test(s, "avx512 without bf16", test_avx512_without_bf16);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    atexit(summary);
    tg_add_suites("codegen_precision", add_tests);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
