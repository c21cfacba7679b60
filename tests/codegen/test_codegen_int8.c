/* tests/codegen/test_codegen_int8.c: int8 dense and conv2d layers
 * (docs/precision.md, "int8") compiled on every target row and compared with the reference
 * interpreter for EQUALITY: both quantize with ir/quant.h, sum exactly in
 * integers and apply the same f32 multiply and add, so every output element
 * must be the same float (tg_set_exact: the error is in f32 ulps, and the
 * accepted error is 0). Where a residual add is fused, the interpreter adds
 * in double; a sum of two floats is exact in double, so rounding it to f32
 * gives the compiled f32 add's result.
 *
 * Which instruction family runs depends on the row and the host: AVX512-VNNI
 * (vpdpbusd zmm) on the avx512 row of a host with it (Sapphire Rapids, Zen
 * 4), vpmaddwd on the avx2 row (x86-64-v3 has no VNNI) and on x86-64-v4,
 * plain IR on the sse row. Each row's family is read from the assembly of
 * a small layer and printed; rows the host cannot run are compiled only.
 * Explicit CPUs check the assembly whatever the host: znver4 and
 * sapphirerapids vpdpbusd, alderlake the AVX-VNNI form, znver3 vpmaddwd. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cg_util.h"
#include "compiler/codegen/codegen.h"
#include "compiler/passes/passes.h"
#include "ir/quant.h"

static const int64_t batches[] = {1, 3, 13, 14, 15, 17};
static const int threads[] = {1, 2};

/* What ran where, for the summary line. */
static char families[512];

/* The input quantization of the cases: the test's inputs are uniform in
 * [-2, 2]; a narrower, lopsided range makes the clamping and a zero point
 * away from the middle happen too. */
typedef struct act_range {
    double lo, hi;
} act_range;

/* x [batch, K] -> dense(units) int8 [-> relu] [+ r] as one fusion group
 * (after the pass pipeline) when fuse. */
static kiln_graph *int8_graph(int64_t K, int64_t units, bool relu, bool residual, act_range r, bool fuse)
{
    char name[96];
    snprintf(name, sizeof name, "int8_dense_%lld_%lld%s%s", (long long)K, (long long)units, relu ? "_relu" : "",
             residual ? "_add" : "");
    kiln_graph *g = tg_new(name);
    kiln_id in[3];
    in[0] = tg_input(g, "x", TG_DIMS(-1, K));
    kiln_id rin = residual ? tg_input(g, "r", TG_DIMS(-1, units)) : KILN_NO_ID;
    in[1] = tg_param(g, "fc.weight", TG_DIMS(units, K), -0.5, 0.5);
    in[2] = tg_param(g, "fc.bias", TG_DIMS(units), -0.5, 0.5);
    kiln_id y = tg_node(g, KILN_OP_DENSE, in, 3, "y");
    kiln_node *n = tg_last(g);
    kiln_node_set_int(n, KILN_ATTR_UNITS, units);
    float scale;
    int32_t zero;
    kiln_quant_act_from_range(r.lo, r.hi, &scale, &zero);
    kiln_node_set_float(n, KILN_ATTR_IN_SCALE, scale);
    kiln_node_set_int(n, KILN_ATTR_IN_ZERO, zero);
    n->precision = KILN_PREC_INT8;
    CU_ASSERT_FATAL(tg_finish(g));
    if (relu) {
        y = tg_node(g, KILN_OP_RELU, &y, 1, "yr");
        CU_ASSERT_FATAL(tg_finish(g));
    }
    if (residual) {
        kiln_id ops[2] = {y, rin};
        y = tg_node(g, KILN_OP_ADD, ops, 2, "ya");
        CU_ASSERT_FATAL(tg_finish(g));
    }
    tg_output(g, y);
    if (fuse) {
        kiln_diag d;
        kiln_diag_init(&d);
        kiln_pipeline_options po = {.verify_each = true, .threads_hint = 2};
        kiln_status st = kiln_pipeline_run(g, &po, &d);
        if (st != KILN_OK)
            kiln_diag_print(&d, stderr);
        kiln_diag_release(&d);
        CU_ASSERT_FATAL(st == KILN_OK);
        CU_ASSERT_EQUAL(kiln_node_precision(g, &g->nodes[0]), KILN_PREC_INT8);
    }
    return g;
}

/* Compiled vs the interpreter, element for element. */
static void expect_equal(kiln_graph *g, const kiln_cg_options *o)
{
    tg_set_exact(true);
    double ulps = tg_check(g, o, batches, (int)(sizeof batches / sizeof batches[0]), threads, 2);
    tg_set_exact(false);
    if (ulps != 0)
        fprintf(stderr, "model '%s': %g ulps from the interpreter, expected 0\n", g->name, ulps);
    CU_ASSERT_EQUAL(ulps, 0);
    kiln_graph_destroy(g);
}

/* K: 1, not a multiple of 4 (the last quad padded), a multiple, long rows
 * 4 KiB apart, over the K block on every row (4099: the int32 partial sums
 * kept in C between blocks; the dense K block is 8 x the target's f32 kc,
 * at most 4096); units: 1, around the panels (16, 32 columns), prime. */
static void test_dense_shapes(void)
{
    static const int64_t Ks[] = {1, 3, 4, 5, 17, 37, 401, 1027, 4099};
    static const int64_t units[] = {1, 15, 33, 97};
    const act_range wide = {-2.0, 2.0};
    for (size_t k = 0; k < sizeof Ks / sizeof Ks[0]; k++)
        for (size_t u = 0; u < sizeof units / sizeof units[0]; u++)
            expect_equal(int8_graph(Ks[k], units[u], false, false, wide, false), NULL);
}

/* Inputs outside the range (clamped to 0 and 255), a zero point away from
 * 128, an all-positive range (zero point 0); relu and a residual add fused
 * into the GEMM's epilogue. */
static void test_dense_ranges_and_fusion(void)
{
    const act_range ranges[] = {{-0.7, 1.9}, {0.0, 1.0}, {-3.0, -1.0}, {-2.0, 2.0}};
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        expect_equal(int8_graph(37, 33, false, false, ranges[i], false), NULL);
        expect_equal(int8_graph(257, 47, true, false, ranges[i], true), NULL);
        expect_equal(int8_graph(19, 29, true, true, ranges[i], true), NULL);
        expect_equal(int8_graph(1027, 64, false, true, ranges[i], true), NULL);
    }
}

/* ---- conv2d ---- */

typedef struct conv_shape {
    int64_t C, H, W, F, k, stride, pad, groups;
} conv_shape;

static const int64_t conv_batches[] = {1, 2, 3};

/* x [batch, C, H, W] -> conv2d int8 [-> relu] [+ r] (fused after the
 * pipeline when fuse). */
static kiln_graph *conv_graph(const conv_shape *s, bool relu, bool residual, act_range r, bool fuse)
{
    char name[128];
    snprintf(name, sizeof name, "int8_conv_c%lld_f%lld_k%lld_s%lld_p%lld_g%lld%s%s", (long long)s->C, (long long)s->F,
             (long long)s->k, (long long)s->stride, (long long)s->pad, (long long)s->groups, relu ? "_relu" : "",
             residual ? "_add" : "");
    kiln_graph *g = tg_new(name);
    kiln_id in[3];
    in[0] = tg_input(g, "x", TG_DIMS(-1, s->C, s->H, s->W));
    const int64_t OH = (s->H + 2 * s->pad - s->k) / s->stride + 1, OW = (s->W + 2 * s->pad - s->k) / s->stride + 1;
    kiln_id rin = residual ? tg_input(g, "r", TG_DIMS(-1, s->F, OH, OW)) : KILN_NO_ID;
    in[1] = tg_param(g, "conv.weight", TG_DIMS(s->F, s->C / s->groups, s->k, s->k), -0.4, 0.4);
    in[2] = tg_param(g, "conv.bias", TG_DIMS(s->F), -0.5, 0.5);
    kiln_id y = tg_node(g, KILN_OP_CONV2D, in, 3, "y");
    kiln_node *n = tg_last(g);
    kiln_node_set_int(n, KILN_ATTR_FILTERS, s->F);
    kiln_node_set_ints(n, KILN_ATTR_KERNEL, (const int64_t[]){s->k, s->k}, 2);
    kiln_node_set_ints(n, KILN_ATTR_STRIDE, (const int64_t[]){s->stride, s->stride}, 2);
    kiln_node_set_ints(n, KILN_ATTR_PADDING, (const int64_t[]){s->pad, s->pad, s->pad, s->pad}, 4);
    kiln_node_set_int(n, KILN_ATTR_GROUPS, s->groups);
    float scale;
    int32_t zero;
    kiln_quant_act_from_range(r.lo, r.hi, &scale, &zero);
    kiln_node_set_float(n, KILN_ATTR_IN_SCALE, scale);
    kiln_node_set_int(n, KILN_ATTR_IN_ZERO, zero);
    n->precision = KILN_PREC_INT8;
    CU_ASSERT_FATAL(tg_finish(g));
    if (relu) {
        y = tg_node(g, KILN_OP_RELU, &y, 1, "yr");
        CU_ASSERT_FATAL(tg_finish(g));
    }
    if (residual) {
        kiln_id ops[2] = {y, rin};
        y = tg_node(g, KILN_OP_ADD, ops, 2, "ya");
        CU_ASSERT_FATAL(tg_finish(g));
    }
    tg_output(g, y);
    if (fuse) {
        kiln_diag d;
        kiln_diag_init(&d);
        kiln_pipeline_options po = {.verify_each = true, .threads_hint = 2};
        kiln_status st = kiln_pipeline_run(g, &po, &d);
        if (st != KILN_OK)
            kiln_diag_print(&d, stderr);
        kiln_diag_release(&d);
        CU_ASSERT_FATAL(st == KILN_OK);
    }
    CU_ASSERT_EQUAL(kiln_node_precision(g, &g->nodes[0]), KILN_PREC_INT8);
    return g;
}

static void expect_equal_conv(kiln_graph *g)
{
    tg_set_exact(true);
    double ulps = tg_check(g, NULL, conv_batches, (int)(sizeof conv_batches / sizeof conv_batches[0]), threads, 2);
    tg_set_exact(false);
    if (ulps != 0)
        fprintf(stderr, "model '%s': %g ulps from the interpreter, expected 0\n", g->name, ulps);
    CU_ASSERT_EQUAL(ulps, 0);
    kiln_graph_destroy(g);
}

/* The implicit GEMM (padding: quantized zeros) and the 1x1 GEMM; K = C x
 * kh x kw not a multiple of 4, over the K block (blocks of whole channels
 * and whole quads), strides, groups, prime filter counts. */
static void test_conv_shapes(void)
{
    static const conv_shape shapes[] = {
        /* C   H   W   F  k  s  p  g */
        {5, 9, 11, 13, 3, 1, 1, 1},   /* K = 45 */
        {6, 8, 7, 14, 3, 1, 1, 1},    /* K = 54 */
        {45, 6, 9, 15, 3, 1, 1, 1},   /* K = 405: over the K block */
        {7, 7, 6, 15, 3, 2, 0, 1},    /* stride 2, no padding */
        {8, 9, 9, 14, 3, 1, 1, 2},    /* two groups */
        {9, 13, 3, 13, 1, 1, 0, 1},   /* 1x1: the GEMM on the input, K = 9 */
        {3, 5, 7, 31, 1, 1, 0, 1},    /* 1x1, K = 3 */
        {200, 5, 7, 15, 1, 1, 0, 1},  /* 1x1 over the K block */
        {6, 5, 5, 15, 1, 1, 0, 3},    /* 1x1, three groups: K = 2 */
        {3, 17, 19, 37, 5, 2, 2, 1},  /* 5x5 stride 2: K = 75 */
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        expect_equal_conv(conv_graph(&shapes[i], false, false, (act_range){-2.0, 2.0}, false));
}

/* Lopsided ranges, relu and a residual add fused. */
static void test_conv_ranges_and_fusion(void)
{
    const act_range ranges[] = {{-0.7, 1.9}, {0.0, 1.0}, {-3.0, -1.0}};
    const conv_shape a = {6, 8, 7, 14, 3, 1, 1, 1}, b = {16, 6, 6, 33, 1, 1, 0, 1};
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        expect_equal_conv(conv_graph(&a, true, false, ranges[i], true));
        expect_equal_conv(conv_graph(&a, true, true, ranges[i], true));
        expect_equal_conv(conv_graph(&b, false, true, ranges[i], true));
    }
}

/* The instruction family of the current row's code, from its assembly:
 * "vpdpbusd", "vpmaddwd" or "plain". */
static const char *family_of(const kiln_cg_options *opt, bool *ok)
{
    kiln_graph *g = int8_graph(37, 33, false, false, (act_range){-2.0, 2.0}, false);
    kiln_cg_options o = opt ? *opt : tg_target_options();
    o.jit = false;
    char path[] = "/tmp/kiln-int8-XXXXXX";
    int fd = mkstemp(path);
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_cg_module *m = NULL;
    *ok = fd >= 0 && kiln_cg_compile(g, &o, &m, &d) == KILN_OK && kiln_cg_emit(m, KILN_CG_EMIT_ASM, path, &d) == KILN_OK;
    if (!*ok)
        kiln_diag_print(&d, stderr);
    const char *fam = "plain";
    bool named = false;
    FILE *f = *ok ? fopen(path, "r") : NULL;
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        if (strstr(line, "vpdpbusd"))
            fam = "vpdpbusd";
        else if (strstr(line, "vpmaddwd") && strcmp(fam, "plain") == 0)
            fam = "vpmaddwd";
        named |= strstr(line, "kiln.int8_dense_bias_") != NULL;
    }
    if (f)
        fclose(f);
    if (!named)
        fprintf(stderr, "model '%s': no kernel named int8_dense_bias_...\n", g->name);
    *ok = *ok && named;
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    kiln_cg_module_destroy(m);
    kiln_diag_release(&d);
    kiln_graph_destroy(g);
    return fam;
}

/* Each row's family, by what its CPU has (the host's own row: the host's). */
static void test_row_family(void)
{
    const tg_target *row = tg_current_target();
    bool ok;
    const char *fam = family_of(NULL, &ok);
    CU_ASSERT(ok);
    if (row && strcmp(row->name, "avx2") == 0 && row->cpu)
        CU_ASSERT_STRING_EQUAL(fam, "vpmaddwd"); /* x86-64-v3 */
    if (row && strcmp(row->name, "sse") == 0)
        CU_ASSERT_STRING_EQUAL(fam, "plain");
    if (row && strcmp(row->name, "avx512") == 0 && row->cpu)
        CU_ASSERT_STRING_EQUAL(fam, "vpmaddwd"); /* x86-64-v4: AVX512BW, no VNNI */
    size_t len = strlen(families);
    snprintf(families + len, sizeof families - len, "%s%s %s (%s)", len ? ", " : "", row ? row->name : "host", fam,
             row && !row->runnable ? "compiled only" : "ran");
}

/* Named CPUs, whatever the host: the family in the assembly. */
static void test_cpu_families(void)
{
    const tg_target *row = tg_current_target();
    if (!row || strcmp(row->name, tg_target_at(0)->name) != 0)
        return; /* once, on the widest row's suite */
    static const struct {
        const char *cpu, *family;
    } want[] = {{"znver4", "vpdpbusd"},   {"sapphirerapids", "vpdpbusd"}, {"alderlake", "vpdpbusd"},
                {"znver3", "vpmaddwd"},   {"skylake-avx512", "vpmaddwd"}, {"x86-64-v2", "plain"}};
#if defined(__x86_64__)
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        kiln_cg_options o = KILN_CG_OPTIONS_INIT;
        o.cpu = want[i].cpu;
        bool ok;
        const char *fam = family_of(&o, &ok);
        CU_ASSERT(ok);
        if (strcmp(fam, want[i].family) != 0)
            fprintf(stderr, "--cpu %s: int8 code uses %s, expected %s\n", want[i].cpu, fam, want[i].family);
        CU_ASSERT_STRING_EQUAL(fam, want[i].family);
    }
#endif
}

/* On an AVX-512 host: the 512-bit vpmaddwd form (x86-64-v4 has no VNNI), run. */
static void test_avx512_without_vnni(void)
{
    const tg_target *row = tg_current_target();
    if (!row || strcmp(row->name, "avx512") != 0 || !row->runnable || row->cpu)
        return;
    kiln_cg_options o = KILN_CG_OPTIONS_INIT;
    o.cpu = "x86-64-v4";
    expect_equal(int8_graph(401, 97, false, false, (act_range){-0.7, 1.9}, false), &o);
    expect_equal(int8_graph(19, 29, true, true, (act_range){-0.7, 1.9}, true), &o);
    size_t len = strlen(families);
    snprintf(families + len, sizeof families - len, ", avx512 x86-64-v4 vpmaddwd (ran)");
}

/* The weights blob holds s8 weights (B panels padded to whole panels and
 * quads) and, per channel, the scale, the compensation and the bias: 64 x
 * 64 takes 64 * 64 + 12 * 64 bytes, against 64 * 64 * 4 + 64 * 4 in f32. */
static void test_weight_bytes(void)
{
    kiln_graph *g = int8_graph(64, 64, false, false, (act_range){-2.0, 2.0}, false);
    kiln_cg_options o = tg_target_options();
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_cg_module *m = NULL;
    CU_ASSERT_FATAL(kiln_cg_compile(g, &o, &m, &d) == KILN_OK);
    kiln_cg_report r;
    kiln_cg_get_report(m, &r);
    /* each blob allocation is 64-byte aligned: 4096 + 768 */
    CU_ASSERT_EQUAL(r.weight_bytes, 64 * 64 + 12 * 64);
    kiln_cg_module_destroy(m);
    kiln_diag_release(&d);
    kiln_graph_destroy(g);
}

/* An int8 node without its input's quantization: a clean error. */
static void test_missing_params(void)
{
    kiln_graph *g = int8_graph(17, 15, false, false, (act_range){-2.0, 2.0}, false);
    g->nodes[0].attr_set &= ~((uint64_t)1 << KILN_ATTR_IN_ZERO);
    kiln_cg_options o = tg_target_options();
    o.jit = false;
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_cg_module *m = NULL;
    CU_ASSERT_EQUAL(kiln_cg_compile(g, &o, &m, &d), KILN_ERR_INVALID_ARGUMENT);
    kiln_cg_module_destroy(m);
    kiln_diag_release(&d);
    kiln_graph_destroy(g);
}

static void summary(void) { printf("int8 families: %s\n", families); }

static void add_tests(CU_pSuite s)
{
    CU_add_test(s, "dense shapes", test_dense_shapes);
    CU_add_test(s, "dense ranges and fusion", test_dense_ranges_and_fusion);
    CU_add_test(s, "conv2d shapes", test_conv_shapes);
    CU_add_test(s, "conv2d ranges and fusion", test_conv_ranges_and_fusion);
    CU_add_test(s, "row family", test_row_family);
    CU_add_test(s, "cpu families", test_cpu_families);
    CU_add_test(s, "avx512 without vnni", test_avx512_without_vnni);
    CU_add_test(s, "weight bytes", test_weight_bytes);
    CU_add_test(s, "missing params", test_missing_params);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    atexit(summary);
    tg_add_suites("codegen_int8", add_tests);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
