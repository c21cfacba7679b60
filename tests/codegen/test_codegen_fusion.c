/* tests/codegen/test_codegen_fusion.c: the code generator on graphs the
 * optimization passes have annotated (fusion groups, memory plan, schedule).
 * Each model is compiled twice, as built (one kernel per node, every value in
 * its own region) and after kiln_pipeline_run (fused kernels, planned
 * workspace); both are compared with the reference interpreter at batch 1, 3
 * and 17 on 1, 2 and 3 threads, and the fused build must have fewer steps
 * (the structural change) when the pass formed groups. Also: the per-step
 * profile hook, and a member the code generator declines (it then runs as a
 * kernel of its own with its operand stored outside the plan). */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg_util.h"
#include "compiler/passes/passes.h"

#define TOL 1e-4
#define TOL_WINOGRAD4 5e-4 /* where the AUTO heuristic picks F(4x4, 3x3): test_codegen_winograd.c */
#define B (-1)

static void set_ints(kiln_node *n, kiln_attr_id id, const int64_t *v, int count) { kiln_node_set_ints(n, id, v, count); }

/* The steps of g compiled for the current target row; *tol (may be NULL):
 * the tolerance its kernels allow. */
static size_t steps_of(const kiln_graph *g, double *tol)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_cg_options o = tg_target_options();
    kiln_cg_module *m = NULL;
    size_t n = 0;
    if (tol)
        *tol = TOL;
    if (kiln_cg_compile(g, &o, &m, &d) == KILN_OK) {
        n = kiln_cg_step_count(m);
        for (size_t i = 0; tol && i < g->n_nodes; i++)
            if (kiln_cg_winograd_used(m, (kiln_id)i) == 4)
                *tol = TOL_WINOGRAD4;
    } else
        kiln_diag_print(&d, stderr);
    kiln_cg_module_destroy(m);
    kiln_diag_release(&d);
    return n;
}

static uint32_t groups_of(const kiln_graph *g)
{
    uint32_t max = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].group > max)
            max = g->nodes[i].group;
    return max;
}

/* Checks g as built and after the passes; `min_groups`: groups the fuse pass
 * must form. Destroys g. */
static void check_fused(kiln_graph *g, uint32_t min_groups)
{
    double tol0, tol1;
    size_t unfused_steps = steps_of(g, &tol0);
    double e0 = tg_check_default(g);
    if (!(e0 >= 0 && e0 <= tol0))
        fprintf(stderr, "  model '%s' (unfused): max error %g\n", g->name, e0);
    CU_ASSERT(e0 >= 0 && e0 <= tol0);

    kiln_graph *f = kiln_graph_clone(g);
    CU_ASSERT_FATAL(f != NULL);
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_pipeline_options po = {.verify_each = true, .threads_hint = 2};
    kiln_status st = kiln_pipeline_run(f, &po, &d);
    if (st != KILN_OK)
        kiln_diag_print(&d, stderr);
    kiln_diag_release(&d);
    CU_ASSERT_FATAL(st == KILN_OK);
    uint32_t groups = groups_of(f);
    if (groups < min_groups)
        fprintf(stderr, "  model '%s': %u fusion groups, expected at least %u\n", g->name, groups, min_groups);
    CU_ASSERT(groups >= min_groups);
    size_t fused_steps = steps_of(f, &tol1);
    double e1 = tg_check_default(f);
    if (!(e1 >= 0 && e1 <= tol1))
        fprintf(stderr, "  model '%s' (fused): max error %g\n", g->name, e1);
    CU_ASSERT(e1 >= 0 && e1 <= tol1);
    if (groups > 0) {
        if (!(fused_steps < unfused_steps))
            fprintf(stderr, "  model '%s': %zu steps fused, %zu unfused\n", g->name, fused_steps, unfused_steps);
        CU_ASSERT(fused_steps < unfused_steps);
    }
    kiln_graph_destroy(f);
    kiln_graph_destroy(g);
}

static kiln_id conv(kiln_graph *g, kiln_id x, const char *name, int64_t c, int64_t f, int64_t k, int64_t stride,
                    int64_t pad, int64_t groups)
{
    char w[64], b[64];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(b, sizeof b, "%s.bias", name);
    kiln_id in[3] = {x, tg_param(g, w, TG_DIMS(f, c / groups, k, k), -0.3, 0.3), tg_param(g, b, TG_DIMS(f), -0.2, 0.2)};
    kiln_id y = tg_node(g, KILN_OP_CONV2D, in, 3, name);
    kiln_node *n = tg_last(g);
    kiln_node_set_int(n, KILN_ATTR_FILTERS, f);
    set_ints(n, KILN_ATTR_KERNEL, (const int64_t[]){k, k}, 2);
    set_ints(n, KILN_ATTR_STRIDE, (const int64_t[]){stride, stride}, 2);
    set_ints(n, KILN_ATTR_PADDING, (const int64_t[]){pad, pad, pad, pad}, 4);
    kiln_node_set_int(n, KILN_ATTR_GROUPS, groups);
    CU_ASSERT_FATAL(tg_finish(g));
    return y;
}

static kiln_id unary(kiln_graph *g, kiln_op op, kiln_id x, const char *name)
{
    kiln_id y = tg_node(g, op, &x, 1, name);
    CU_ASSERT_FATAL(tg_finish(g));
    return y;
}

static kiln_id binary(kiln_graph *g, kiln_op op, kiln_id a, kiln_id b, const char *name)
{
    kiln_id in[2] = {a, b};
    kiln_id y = tg_node(g, op, in, 2, name);
    CU_ASSERT_FATAL(tg_finish(g));
    return y;
}

static kiln_id dense(kiln_graph *g, kiln_id x, const char *name, int64_t in_f, int64_t units)
{
    char w[64], b[64];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(b, sizeof b, "%s.bias", name);
    /* weights ~ 1/sqrt(in) as initializers make them: outputs of order 1 */
    double r = 2.0 / sqrt((double)in_f);
    kiln_id in[3] = {x, tg_param(g, w, TG_DIMS(units, in_f), -r, r), tg_param(g, b, TG_DIMS(units), -0.2, 0.2)};
    kiln_id y = tg_node(g, KILN_OP_DENSE, in, 3, name);
    kiln_node_set_int(tg_last(g), KILN_ATTR_UNITS, units);
    CU_ASSERT_FATAL(tg_finish(g));
    return y;
}

/* conv -> batchnorm -> relu: folded, then one kernel. */
static void test_conv_bn_relu(void)
{
    kiln_graph *g = tg_new("conv_bn_relu");
    kiln_id x = tg_input(g, "x", TG_DIMS(B, 5, 11, 13));
    kiln_id c = conv(g, x, "c1", 5, 14, 3, 1, 1, 1);
    kiln_id in[5] = {c, tg_param(g, "bn.weight", TG_DIMS(14), 0.5, 1.5), tg_param(g, "bn.bias", TG_DIMS(14), -0.5, 0.5),
                     tg_param(g, "bn.running_mean", TG_DIMS(14), -0.5, 0.5),
                     tg_param(g, "bn.running_var", TG_DIMS(14), 0.5, 2.0)};
    kiln_id bn = tg_node(g, KILN_OP_BATCHNORM, in, 5, "bn");
    CU_ASSERT_FATAL(tg_finish(g));
    tg_output(g, unary(g, KILN_OP_RELU, bn, "r"));
    check_fused(g, 1);
}

/* A residual block: conv -> relu -> conv -> + x -> relu, at sizes around the
 * vector width and with K over several blocks (40 * 9 = 360 > kc). */
static void test_residual(void)
{
    static const int64_t sizes[][3] = {{16, 7, 7}, {40, 7, 7}, {8, 15, 17}, {8, 3, 3}, {40, 9, 16}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        char name[64];
        snprintf(name, sizeof name, "residual_%zu", s);
        kiln_graph *g = tg_new(name);
        int64_t C = sizes[s][0], H = sizes[s][1], W = sizes[s][2];
        kiln_id x = tg_input(g, "x", TG_DIMS(B, C, H, W));
        kiln_id a = unary(g, KILN_OP_RELU, conv(g, x, "c1", C, C, 3, 1, 1, 1), "r1");
        kiln_id b = conv(g, a, "c2", C, C, 3, 1, 1, 1);
        tg_output(g, unary(g, KILN_OP_RELU, binary(g, KILN_OP_ADD, b, x, "add"), "r2"));
        check_fused(g, 2);
    }
}

/* One input channel into several filters (the direct kernel computes 6 at
 * once) with a residual add and relu fused: each filter's plane gets its
 * own epilogue rows. */
static void test_one_channel_residual(void)
{
    kiln_graph *g = tg_new("one_channel");
    kiln_id x = tg_input(g, "x", TG_DIMS(B, 1, 13, 17));
    kiln_id r = tg_input(g, "r", TG_DIMS(B, 6, 13, 17));
    kiln_id c = conv(g, x, "c1", 1, 6, 5, 1, 2, 1);
    tg_output(g, unary(g, KILN_OP_RELU, binary(g, KILN_OP_ADD, c, r, "add"), "out"));
    check_fused(g, 1);
}

/* Depthwise (stride 1 and 2) + relu6, pointwise + per-channel mul + add. */
static void test_mobile_block(void)
{
    kiln_graph *g = tg_new("mobile");
    kiln_id x = tg_input(g, "x", TG_DIMS(B, 8, 14, 15));
    kiln_id e = unary(g, KILN_OP_RELU6, conv(g, x, "expand", 8, 24, 1, 1, 0, 1), "e6");
    kiln_id d = unary(g, KILN_OP_RELU6, conv(g, e, "dw", 24, 24, 3, 1, 1, 24), "d6");
    kiln_id p = conv(g, d, "project", 24, 8, 1, 1, 0, 1);
    kiln_id s = binary(g, KILN_OP_MUL, p, tg_param(g, "scale", TG_DIMS(8, 1, 1), 0.5, 1.5), "scaled");
    kiln_id r = binary(g, KILN_OP_ADD, s, x, "res");
    kiln_id d2 = unary(g, KILN_OP_RELU6, conv(g, r, "dw2", 8, 8, 3, 2, 1, 8), "d2");
    tg_output(g, d2);
    check_fused(g, 3);
}

/* dense + gelu, dense + [N] bias-like add + relu, a rank-3 dense with a
 * residual, matmul (run-time transpose_b: the dot kernel) * scalar, and one
 * row at widths around the one-row kernel's (4 panels). */
static void test_dense_chains(void)
{
    kiln_graph *g = tg_new("mlp_chain");
    kiln_id x = tg_input(g, "x", TG_DIMS(B, 37));
    kiln_id h = unary(g, KILN_OP_GELU, dense(g, x, "fc1", 37, 65), "g");
    kiln_id h2 = binary(g, KILN_OP_ADD, dense(g, h, "fc2", 65, 64), tg_param(g, "shift", TG_DIMS(64), -1, 1), "shifted");
    tg_output(g, unary(g, KILN_OP_RELU, h2, "out"));
    check_fused(g, 2);

    g = tg_new("seq_chain");
    x = tg_input(g, "x", TG_DIMS(B, 9, 24));
    kiln_id y = dense(g, x, "proj", 24, 24);
    kiln_id r = binary(g, KILN_OP_ADD, y, x, "res");
    kiln_id q = dense(g, r, "q", 24, 24), k = dense(g, r, "k", 24, 24);
    kiln_id in[2] = {q, k};
    kiln_id sc = tg_node(g, KILN_OP_MATMUL, in, 2, "scores");
    kiln_node_set_bool(tg_last(g), KILN_ATTR_TRANSPOSE_B, true);
    CU_ASSERT_FATAL(tg_finish(g));
    kiln_id scaled = tg_node(g, KILN_OP_MUL, &sc, 1, "scaled");
    kiln_node_set_float(tg_last(g), KILN_ATTR_SCALAR, 0.25);
    CU_ASSERT_FATAL(tg_finish(g));
    kiln_id sm = tg_node(g, KILN_OP_SOFTMAX, &scaled, 1, "weights");
    kiln_node_set_int(tg_last(g), KILN_ATTR_AXIS, 2);
    CU_ASSERT_FATAL(tg_finish(g));
    tg_output(g, sm);
    check_fused(g, 2);

    static const int64_t widths[][2] = {{255, 63}, {256, 64}, {257, 65}, {513, 200}, {40, 129}};
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
        char name[64];
        snprintf(name, sizeof name, "gemv_%lld_%lld", (long long)widths[w][0], (long long)widths[w][1]);
        g = tg_new(name);
        x = tg_input(g, "x", TG_DIMS(B, widths[w][0]));
        tg_output(g, unary(g, KILN_OP_TANH, dense(g, x, "fc", widths[w][0], widths[w][1]), "t"));
        check_fused(g, 1);
    }
}

/* An elementwise chain: add with broadcasting -> relu -> mul by a row -> sigmoid. */
static void test_elementwise_chain(void)
{
    kiln_graph *g = tg_new("ew_chain");
    kiln_id a = tg_input(g, "a", TG_DIMS(B, 3, 17)), b = tg_input(g, "b", TG_DIMS(3, 1));
    kiln_id s = unary(g, KILN_OP_RELU, binary(g, KILN_OP_ADD, a, b, "sum"), "r");
    kiln_id m = binary(g, KILN_OP_MUL, s, tg_param(g, "row", TG_DIMS(17), -1, 1), "m");
    tg_output(g, unary(g, KILN_OP_SIGMOID, m, "y"));
    check_fused(g, 1);
}

/* conv_transpose2d with a fused chain: relu, a per-channel scale, a
 * residual of the output's shape, softplus. Stride 1: the epilogue in the
 * GEMM's registers; stride 2: one step per phase, then the epilogue over
 * the output in place. */
static void test_deconv_epilogue(void)
{
    static const int64_t cfg[][4] = {{3, 1, 1, 0}, {4, 2, 1, 0}, {3, 2, 1, 1}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "deconv_chain_%zu", i);
        kiln_graph *g = tg_new(name);
        const int64_t k = cfg[i][0], s = cfg[i][1], p = cfg[i][2], op = cfg[i][3], H = 6, W = 9, F = 7;
        const int64_t OH = (H - 1) * s - 2 * p + k + op, OW = (W - 1) * s - 2 * p + k + op;
        kiln_id x = tg_input(g, "x", TG_DIMS(B, 5, H, W));
        kiln_id r = tg_input(g, "r", TG_DIMS(B, F, OH, OW));
        kiln_id in[3] = {x, tg_param(g, "dc.weight", TG_DIMS(5, F, k, k), -0.3, 0.3),
                         tg_param(g, "dc.bias", TG_DIMS(F), -0.2, 0.2)};
        kiln_id y = tg_node(g, KILN_OP_CONV_TRANSPOSE2D, in, 3, "dc");
        kiln_node *n = tg_last(g);
        kiln_node_set_int(n, KILN_ATTR_FILTERS, F);
        set_ints(n, KILN_ATTR_KERNEL, (const int64_t[]){k, k}, 2);
        set_ints(n, KILN_ATTR_STRIDE, (const int64_t[]){s, s}, 2);
        set_ints(n, KILN_ATTR_PADDING, (const int64_t[]){p, p, p, p}, 4);
        set_ints(n, KILN_ATTR_OUTPUT_PADDING, (const int64_t[]){op, op}, 2);
        CU_ASSERT_FATAL(tg_finish(g));
        kiln_id a = unary(g, KILN_OP_RELU, y, "relu");
        kiln_id m = binary(g, KILN_OP_MUL, a, tg_param(g, "scale", TG_DIMS(F, 1, 1), 0.5, 1.5), "scaled");
        kiln_id sum = binary(g, KILN_OP_ADD, m, r, "res");
        tg_output(g, unary(g, KILN_OP_SOFTPLUS, sum, "out"));
        check_fused(g, 1);
    }
}

static kiln_id slice1(kiln_graph *g, kiln_id x, const char *name, int64_t axis, int64_t start, int64_t end)
{
    kiln_id y = tg_node(g, KILN_OP_SLICE, &x, 1, name);
    kiln_node_set_int(tg_last(g), KILN_ATTR_AXIS, axis);
    kiln_node_set_int(tg_last(g), KILN_ATTR_START, start);
    kiln_node_set_int(tg_last(g), KILN_ATTR_END, end);
    CU_ASSERT_FATAL(tg_finish(g));
    return y;
}

/* g as built and after the passes, against the interpreter (no structural
 * expectation: under the memory plan a view may become a copy). */
static void check_planned(kiln_graph *g)
{
    double e0 = tg_check_default(g);
    CU_ASSERT(e0 >= 0 && e0 <= TOL);
    kiln_graph *f = kiln_graph_clone(g);
    CU_ASSERT_FATAL(f != NULL);
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_pipeline_options po = {.verify_each = true, .threads_hint = 2};
    kiln_status st = kiln_pipeline_run(f, &po, &d);
    if (st != KILN_OK)
        kiln_diag_print(&d, stderr);
    kiln_diag_release(&d);
    CU_ASSERT_FATAL(st == KILN_OK);
    double e1 = tg_check_default(f);
    if (!(e0 >= 0 && e0 <= TOL && e1 >= 0 && e1 <= TOL))
        fprintf(stderr, "  model '%s': error %g as built, %g after the passes\n", g->name, e0, e1);
    CU_ASSERT(e1 >= 0 && e1 <= TOL);
    kiln_graph_destroy(f);
    kiln_graph_destroy(g);
}

/* Slices of channels of an unbatched value are views (its buffer at an
 * offset: no step of their own), read by a conv, an elementwise op and a
 * flatten (a view of a view); also under the memory plan, where the
 * operand's region may be reused and a view becomes a copy (the planner
 * does not know about views, as for flatten and reshape). And a ViT-like
 * head: the class token expanded and concatenated, the token's row sliced
 * back out (batched: a copy). */
static void test_slice_views_planned(void)
{
    kiln_graph *g = tg_new("slice_views");
    kiln_id x = tg_input(g, "x", TG_DIMS(1, 12, 6, 7));
    kiln_id r = unary(g, KILN_OP_RELU, conv(g, x, "c", 12, 12, 1, 1, 0, 1), "r");
    kiln_id lo = slice1(g, r, "lo", 1, 0, 6), hi = slice1(g, r, "hi", 1, 6, 12);
    kiln_id c2 = conv(g, lo, "c2", 6, 8, 3, 1, 1, 1);
    kiln_id t = unary(g, KILN_OP_TANH, hi, "t");
    kiln_id in[2] = {c2, t};
    kiln_id cat = tg_node(g, KILN_OP_CONCAT, in, 2, "cat");
    CU_ASSERT_FATAL(tg_finish(g));
    kiln_id f = unary(g, KILN_OP_FLATTEN, slice1(g, lo, "lo2", 1, 2, 5), "f");
    tg_output(g, cat);
    tg_output(g, unary(g, KILN_OP_EXP, f, "e"));
    CU_ASSERT_EQUAL(steps_of(g, NULL), 6); /* c, r, c2, t, cat, e: the slices and flatten emit nothing */
    check_planned(g);

    g = tg_new("class_token");
    kiln_id p = tg_input(g, "patches", TG_DIMS(B, 5, 16));
    kiln_id tok = tg_node(g, KILN_OP_CONSTANT, (kiln_id[]){tg_param(g, "cls", TG_DIMS(1, 1, 16), -1, 1)}, 1, "cls_c");
    CU_ASSERT_FATAL(tg_finish(g));
    kiln_id ex = tg_node(g, KILN_OP_EXPAND, &tok, 1, "cls_x");
    kiln_node_set_ints(tg_last(g), KILN_ATTR_SHAPE, (const int64_t[]){KILN_DIM_BATCH, 1, 16}, 3);
    CU_ASSERT_FATAL(tg_finish(g));
    kiln_id seq_in[2] = {ex, p};
    kiln_id seq = tg_node(g, KILN_OP_CONCAT, seq_in, 2, "seq");
    CU_ASSERT_FATAL(tg_finish(g));
    kiln_id h = unary(g, KILN_OP_GELU, dense(g, seq, "mlp", 16, 16), "h");
    kiln_id head = unary(g, KILN_OP_FLATTEN, slice1(g, h, "first", 1, 0, 1), "head");
    tg_output(g, dense(g, head, "logits", 16, 10));
    check_fused(g, 1);
}

/* The 1.1 elementwise ops in one chain: pow by 2 and 2.5, erf, abs, log,
 * softplus, an ONNX hardsigmoid, and pow with a broadcast exponent. */
static void test_elementwise_chain_v11(void)
{
    kiln_graph *g = tg_new("ew_chain_v11");
    kiln_id a = tg_input(g, "a", TG_DIMS(B, 3, 33)), e = tg_input(g, "e", TG_DIMS(3, 1));
    kiln_id sq = tg_node(g, KILN_OP_POW, &a, 1, "sq");
    kiln_node_set_float(tg_last(g), KILN_ATTR_SCALAR, 2.0);
    CU_ASSERT_FATAL(tg_finish(g));
    kiln_id er = unary(g, KILN_OP_ERF, sq, "er");
    kiln_id ab = unary(g, KILN_OP_ABS, binary(g, KILN_OP_SUB, er, a, "d"), "ab");
    kiln_id lg = unary(g, KILN_OP_LOG, ab, "lg");
    kiln_id sp = unary(g, KILN_OP_SOFTPLUS, lg, "sp");
    kiln_id hs = tg_node(g, KILN_OP_HARDSIGMOID, &sp, 1, "hs");
    kiln_node_set_float(tg_last(g), KILN_ATTR_ALPHA, 0.2);
    kiln_node_set_float(tg_last(g), KILN_ATTR_BETA, 0.5);
    CU_ASSERT_FATAL(tg_finish(g));
    kiln_id pw = binary(g, KILN_OP_POW, hs, e, "pw");
    kiln_id p25 = tg_node(g, KILN_OP_POW, &pw, 1, "p25");
    kiln_node_set_float(tg_last(g), KILN_ATTR_SCALAR, 2.5);
    CU_ASSERT_FATAL(tg_finish(g));
    tg_output(g, p25);
    check_fused(g, 1);
}

/* A member whose other operand varies along the conv's rows of pixels but
 * not as a contiguous row ([H, 1]): the code generator declines it, stores
 * the conv's output outside the memory plan and runs the rest on its own. */
static void test_declined_member(void)
{
    kiln_graph *g = tg_new("declined");
    kiln_id x = tg_input(g, "x", TG_DIMS(B, 4, 6, 9));
    kiln_id c = conv(g, x, "c", 4, 6, 3, 1, 1, 1);
    kiln_id m = binary(g, KILN_OP_MUL, c, tg_param(g, "by_row", TG_DIMS(6, 1), 0.5, 1.5), "m");
    tg_output(g, unary(g, KILN_OP_RELU, m, "r"));
    check_fused(g, 1);
}

/* Flatten / reshape (aliases) under a memory plan, between fused kernels. */
static void test_aliases_planned(void)
{
    kiln_graph *g = tg_new("alias_plan");
    kiln_id x = tg_input(g, "x", TG_DIMS(B, 2, 8, 8));
    kiln_id c = unary(g, KILN_OP_RELU, conv(g, x, "c", 2, 4, 3, 1, 1, 1), "r");
    kiln_id f = unary(g, KILN_OP_FLATTEN, c, "flat");
    kiln_id d = unary(g, KILN_OP_RELU, dense(g, f, "fc", 256, 32), "r2");
    kiln_id e = dense(g, d, "fc2", 32, 10);
    kiln_id sum = binary(g, KILN_OP_ADD, e, dense(g, f, "skip", 256, 10), "sum");
    tg_output(g, sum);
    check_fused(g, 2);
}

/* run_profiled calls the hook once per step, in order. */
static int64_t hook_calls, hook_last;
static void hook(void *arg, int64_t step)
{
    (void)arg;
    if (step == hook_last + 1)
        hook_calls++;
    hook_last = step;
}

static void test_profile_hook(void)
{
    kiln_graph *g = tg_new("profiled");
    kiln_id x = tg_input(g, "x", TG_DIMS(B, 3, 8, 8));
    tg_output(g, unary(g, KILN_OP_RELU, conv(g, x, "c", 3, 5, 3, 1, 1, 1), "r"));
    if (!tg_current_target()->runnable) { /* nothing to run */
        kiln_graph_destroy(g);
        return;
    }
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_cg_options o = tg_target_options();
    o.jit = true;
    kiln_cg_module *m = NULL;
    kiln_cg_jit *j = NULL;
    kiln_cg_entry e;
    CU_ASSERT_FATAL(kiln_cg_compile(g, &o, &m, &d) == KILN_OK);
    CU_ASSERT_FATAL(kiln_cg_jit_create(m, &j, &d) == KILN_OK);
    CU_ASSERT_FATAL(kiln_cg_jit_entry(j, &e, &d) == KILN_OK);
    void *inst = NULL;
    CU_ASSERT_FATAL(e.create(&inst, NULL) == KILN_OK);
    float in[3 * 64 * 2], out[5 * 64 * 2];
    tg_fill(in, sizeof in / sizeof in[0], 5, -1, 1);
    const float *ins[1] = {in};
    float *outs[1] = {out};
    hook_calls = 0;
    hook_last = -1;
    CU_ASSERT(e.run_profiled(inst, 2, ins, outs, hook, NULL) == KILN_OK);
    CU_ASSERT(hook_calls == (int64_t)kiln_cg_step_count(m) && hook_calls > 0);
    for (size_t k = 0; k < kiln_cg_step_count(m); k++) {
        const kiln_cg_step_info *s = kiln_cg_step_at(m, k);
        CU_ASSERT(s && s->kernel && strncmp(s->kernel, "kiln.f32_", 9) == 0);
    }
    e.destroy(inst);
    kiln_cg_jit_destroy(j);
    kiln_cg_module_destroy(m);
    kiln_diag_release(&d);
    kiln_graph_destroy(g);
}

/* The OpenBLAS candidate, forced on every dense / 1x1 conv (fused epilogues
 * included), and kiln_cg_tune's choice. */
static void check_blas(kiln_graph *g)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_pipeline_options po = {.verify_each = true, .threads_hint = 2};
    CU_ASSERT_FATAL(kiln_pipeline_run(g, &po, &d) == KILN_OK);
    kiln_cg_gemm_impl *impl = calloc(g->n_nodes, sizeof *impl);
    CU_ASSERT_FATAL(impl != NULL);
    size_t candidates = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        impl[i] = KILN_CG_GEMM_BLAS;
        candidates += kiln_cg_gemm_candidate(g, &g->nodes[i]);
    }
    CU_ASSERT(candidates > 0);
    kiln_cg_options o = tg_target_options();
    o.gemm_impl = impl;
    static const int64_t batches[] = {1, 3, 17};
    static const int threads[] = {1, 2, 3};
    double e = tg_check(g, &o, batches, 3, threads, 3);
    if (!(e >= 0 && e <= TOL))
        fprintf(stderr, "  model '%s' (OpenBLAS): max error %g\n", g->name, e);
    CU_ASSERT(e >= 0 && e <= TOL);
    if (tg_current_target()->cpu) { /* what follows runs on the host's own row only */
        free(impl);
        kiln_diag_release(&d);
        kiln_graph_destroy(g);
        return;
    }
    kiln_cg_module *m = NULL;
    o.jit = true;
    CU_ASSERT_FATAL(kiln_cg_compile(g, &o, &m, &d) == KILN_OK);
    for (size_t i = 0; i < g->n_nodes; i++)
        CU_ASSERT(kiln_cg_gemm_used(m, (kiln_id)i) ==
                  (kiln_cg_gemm_candidate(g, &g->nodes[i]) ? KILN_CG_GEMM_BLAS : KILN_CG_GEMM_AUTO) || g->nodes[i].group);
    kiln_cg_module_destroy(m);
    /* --tune: a choice for each candidate, timings for both */
    double *tg = calloc(g->n_nodes, sizeof *tg), *tb = calloc(g->n_nodes, sizeof *tb);
    CU_ASSERT(kiln_cg_tune(g, NULL, 2, 1, 3, impl, tg, tb, &d) == KILN_OK);
    for (size_t i = 0; i < g->n_nodes; i++) {
        bool cand = kiln_cg_gemm_candidate(g, &g->nodes[i]);
        CU_ASSERT(cand ? (impl[i] != KILN_CG_GEMM_AUTO && tg[i] > 0 && tb[i] > 0) : impl[i] == KILN_CG_GEMM_AUTO);
    }
    kiln_diag_print(&d, stderr);
    free(tg);
    free(tb);
    free(impl);
    kiln_diag_release(&d);
    kiln_graph_destroy(g);
}

static void test_blas(void)
{
    kiln_graph *g = tg_new("blas_dense");
    kiln_id x = tg_input(g, "x", TG_DIMS(B, 5, 33));
    kiln_id h = unary(g, KILN_OP_RELU, dense(g, x, "fc1", 33, 70), "r");
    kiln_id y = binary(g, KILN_OP_ADD, dense(g, h, "fc2", 70, 33), x, "res");
    tg_output(g, y);
    check_blas(g);

    g = tg_new("blas_conv");
    x = tg_input(g, "x", TG_DIMS(B, 12, 9, 11));
    kiln_id c = unary(g, KILN_OP_RELU6, conv(g, x, "pw1", 12, 20, 1, 1, 0, 1), "r6");
    kiln_id p = binary(g, KILN_OP_ADD, conv(g, c, "pw2", 20, 12, 1, 1, 0, 1), x, "res");
    tg_output(g, p);
    check_blas(g);
}

static void add_tests(CU_pSuite s)
{
    CU_add_test(s, "conv_bn_relu", test_conv_bn_relu);
    CU_add_test(s, "residual", test_residual);
    CU_add_test(s, "mobile_block", test_mobile_block);
    CU_add_test(s, "one_channel_residual", test_one_channel_residual);
    CU_add_test(s, "dense_chains", test_dense_chains);
    CU_add_test(s, "elementwise_chain", test_elementwise_chain);
    CU_add_test(s, "deconv_epilogue", test_deconv_epilogue);
    CU_add_test(s, "elementwise_chain_v11", test_elementwise_chain_v11);
    CU_add_test(s, "slice_views_planned", test_slice_views_planned);
    CU_add_test(s, "declined_member", test_declined_member);
    CU_add_test(s, "aliases_planned", test_aliases_planned);
    CU_add_test(s, "profile_hook", test_profile_hook);
    CU_add_test(s, "blas", test_blas);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    tg_add_suites("codegen_fusion", add_tests);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
