/* tests/test_frontend.c: the YAML frontend (compiler/frontend/): every op
 * lowered to the IR, blocks, weights and init, limits, allocation failures,
 * and the golden error files tests/golden/errors/NAME.yaml, each of which marks
 * the line an error must point at with `# error: <message substring>`.
 * Links: cunit, kiln_frontend, kiln_ir. Exits non-zero on failure. */
#define _POSIX_C_SOURCE 200809L

#include <CUnit/Basic.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compiler/frontend/frontend.h"
#include "compiler/frontend/safetensors.h"
#include "ir/arena.h"
#include "ir/graph.h"

#ifndef KILN_TEST_DIR
#define KILN_TEST_DIR "tests"
#endif

static char tmpdir[256];

/* ---- helpers ------------------------------------------------------------ */

static void print_diag(const kiln_diag *d)
{
    if (d->count)
        kiln_diag_print(d, stderr);
}

/* Loads `yaml` as if it were the file `name` in the temporary directory. */
static kiln_status load_named(const char *yaml, const char *name, kiln_graph **g, kiln_diag *d)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    kiln_diag_init(d);
    return kiln_frontend_load_yaml_text(yaml, strlen(yaml), path, g, d);
}

/* A model that must load, verify, and report nothing. */
static kiln_graph *load_ok(const char *yaml)
{
    kiln_diag d;
    kiln_graph *g = NULL;
    kiln_status st = load_named(yaml, "model.yaml", &g, &d);
    if (st != KILN_OK || g == NULL || d.count != 0)
        print_diag(&d);
    CU_ASSERT_EQUAL(st, KILN_OK);
    CU_ASSERT_PTR_NOT_NULL(g);
    CU_ASSERT_EQUAL(d.errors, 0);
    kiln_diag_release(&d);
    if (g) {
        kiln_diag v;
        kiln_diag_init(&v);
        CU_ASSERT_EQUAL(kiln_ir_verify(g, &v), KILN_OK);
        print_diag(&v);
        kiln_diag_release(&v);
    }
    return g;
}

static bool has_error(const kiln_diag *d, const char *substr, uint32_t line)
{
    for (size_t i = 0; i < d->count; ++i) {
        const kiln_diag_entry *e = &d->entries[i];
        if (e->severity == KILN_SEV_ERROR && strstr(e->message, substr) && (line == 0 || e->loc.line == line))
            return true;
    }
    return false;
}

/* A model that must fail with an error containing `substr` (at `line` when non-zero). */
static void load_fails(const char *yaml, const char *substr, uint32_t line)
{
    kiln_diag d;
    kiln_graph *g = NULL;
    kiln_status st = load_named(yaml, "bad.yaml", &g, &d);
    CU_ASSERT_NOT_EQUAL(st, KILN_OK);
    CU_ASSERT_PTR_NULL(g);
    bool found = has_error(&d, substr, line);
    if (!found) {
        fprintf(stderr, "\nexpected an error containing \"%s\" at line %u, got:\n", substr, line);
        print_diag(&d);
    }
    CU_ASSERT(found);
    kiln_graph_destroy(g);
    kiln_diag_release(&d);
}

static const kiln_node *node_of(const kiln_graph *g, const char *value_name)
{
    kiln_id v = kiln_graph_find_value(g, value_name);
    if (v == KILN_NO_ID || g->values[v].kind != KILN_VALUE_NODE) {
        fprintf(stderr, "\nno node produces '%s'\n", value_name);
        return NULL;
    }
    return &g->nodes[g->values[v].producer];
}

static const kiln_type *type_of(const kiln_graph *g, const char *value_name)
{
    kiln_id v = kiln_graph_find_value(g, value_name);
    return v == KILN_NO_ID ? NULL : &g->values[v].type;
}

/* The type of a value as text: "f32[batch,8,16,16]". */
static const char *type_text(const kiln_graph *g, const char *value_name)
{
    static char buf[256];
    const kiln_type *t = type_of(g, value_name);
    if (t == NULL)
        return "(none)";
    return kiln_type_format(t, g->batch_name, buf, sizeof buf);
}

#define CHECK_TYPE(g, name, want)                                                                  \
    do {                                                                                           \
        const char *have_ = type_text(g, name);                                                    \
        if (strcmp(have_, want) != 0)                                                              \
            fprintf(stderr, "\n%s: type %s, want %s\n", name, have_, want);                        \
        CU_ASSERT_STRING_EQUAL(have_, want);                                                       \
    } while (0)

static bool ints_equal(const kiln_node *n, kiln_attr_id id, int count, const int64_t *want)
{
    if (n == NULL || !kiln_node_has(n, id) || n->attrs[id].n != count)
        return false;
    for (int i = 0; i < count; ++i) {
        if (n->attrs[id].ints[i] != want[i])
            return false;
    }
    return true;
}

static int write_f32(const char *name, size_t count, const char *const *names, const int *ranks,
                     const int64_t *const *dims, const float *const *data)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    return kiln_st_write_f32(path, count, names, ranks, dims, data) == KILN_OK ? 0 : -1;
}

/* ---- every op ----------------------------------------------------------- */

static const char *all_ops_yaml =
    "kiln: 1\n"
    "name: all_ops\n"
    "description: every op of format version 1\n"
    "init: {random: 42}\n"
    "precision: bf16\n"
    "inputs:\n"
    "  - {name: image, shape: [batch, 3, 16, 16]}\n"
    "  - {name: tokens, shape: [batch, 6, 8], dtype: f32}\n"
    "outputs: [fc, a_min, mean, ln2, drop, pd, cl]\n"
    "layers:\n"
    "  - {name: conv, op: conv2d, filters: 8, kernel: 3, padding: same, activation: relu}\n"
    "  - {name: conv_s2, op: conv2d, filters: 8, kernel: [3, 5], stride: 2, padding: same, groups: 8, bias: false,"
    " precision: f16}\n"
    "  - {name: mp, op: maxpool2d, kernel: 2}\n"
    "  - {name: ap, op: avgpool2d, kernel: 2, stride: 1, padding: valid, ceil_mode: true, count_include_pad: false}\n"
    "  - {name: bn, op: batchnorm, eps: 0.001}\n"
    "  - {name: gap, op: global_avgpool}\n"
    "  - {name: flat, op: flatten}\n"
    "  - {name: fc, op: dense, units: 10, activation: {op: leaky_relu, alpha: 0.2}}\n"
    "  - {name: r6, op: relu6}\n"
    "  - {name: sg, op: sigmoid}\n"
    "  - {name: th, op: tanh}\n"
    "  - {name: si, op: silu}\n"
    "  - {name: hs, op: hardswish}\n"
    "  - {name: hsg, op: hardsigmoid}\n"
    "  - {name: ex, op: exp}\n"
    "  - {name: sq, op: sqrt}\n"
    "  - {name: ng, op: neg}\n"
    "  - {name: ge, op: gelu, approximate: tanh}\n"
    "  - {name: lr, op: leaky_relu}\n"
    "  - {name: el, op: elu, alpha: 0.5}\n"
    "  - {name: cl, op: clip, min: 0, max: 6}\n"
    "  - {name: sm, op: softmax}\n"
    "  - {name: lsm, op: log_softmax, input: sm, axis: 1}\n"
    "  - {name: a_add, op: add, inputs: [sm, lsm]}\n"
    "  - {name: a_sub, op: sub, scalar: 1, reverse: true}\n"
    "  - {name: a_mul, op: mul, scalar: 2.5}\n"
    "  - {name: a_div, op: div, inputs: [a_mul, a_add]}\n"
    "  - {name: a_max, op: max, scalar: 0}\n"
    "  - {name: a_min, op: min, inputs: [a_max, a_div]}\n"
    "  - {name: mm, op: matmul, inputs: [tokens, tokens], transpose_b: true}\n"
    "  - {name: cat, op: concat, inputs: [mm, mm], axis: -1}\n"
    "  - {name: rs, op: reshape, shape: [0, -1, 4]}\n"
    "  - {name: tr, op: transpose, perm: [0, -1, 1]}\n"
    "  - {name: mean, op: mean, axes: [-1], keepdims: false}\n"
    "  - {name: ln, op: layernorm, input: tokens, eps: 1e-6}\n"
    "  - {name: ln2, op: layernorm, affine: false}\n"
    "  - {name: pd, op: pad, input: image, pads: [1, 2, 3, 4], value: -1}\n"
    "  - {name: idn, op: identity, input: ln}\n"
    "  - {name: drop, op: dropout}\n";

static void test_all_ops(void)
{
    kiln_graph *g = load_ok(all_ops_yaml);
    if (g == NULL)
        return;
    /* 39 layers; conv and fc add an activation node each */
    CU_ASSERT_EQUAL(g->n_nodes, 41);
    CU_ASSERT_STRING_EQUAL(g->name, "all_ops");
    CU_ASSERT_STRING_EQUAL(g->description, "every op of format version 1");
    CU_ASSERT_STRING_EQUAL(g->batch_name, "batch");
    CU_ASSERT_EQUAL(g->precision, KILN_PREC_BF16);
    CU_ASSERT_EQUAL(g->n_inputs, 2);
    CU_ASSERT_EQUAL(g->n_outputs, 7);

    CHECK_TYPE(g, "image", "f32[batch,3,16,16]");
    /* conv + relu: conv:pre feeds the relu named conv */
    const kiln_node *n = node_of(g, "conv:pre");
    int64_t same1[4] = {1, 1, 1, 1};
    CU_ASSERT(n && n->op == KILN_OP_CONV2D && ints_equal(n, KILN_ATTR_PADDING, 4, same1));
    CU_ASSERT(n && n->n_inputs == 3 && strcmp(n->layer, "conv") == 0);
    n = node_of(g, "conv");
    CU_ASSERT(n && n->op == KILN_OP_RELU && strcmp(n->layer, "conv") == 0);
    CHECK_TYPE(g, "conv", "f32[batch,8,16,16]");
    CHECK_TYPE(g, "conv.weight", "f32[8,3,3,3]");

    /* stride 2, kernel [3,5], same: height total 1 (0 top, 1 bottom), width total 3 (1 left, 2 right) */
    n = node_of(g, "conv_s2");
    int64_t pad2[4] = {0, 1, 1, 2}, stride2[2] = {2, 2}, k35[2] = {3, 5};
    CU_ASSERT(ints_equal(n, KILN_ATTR_PADDING, 4, pad2));
    CU_ASSERT(ints_equal(n, KILN_ATTR_STRIDE, 2, stride2));
    CU_ASSERT(ints_equal(n, KILN_ATTR_KERNEL, 2, k35));
    CU_ASSERT(n && n->attrs[KILN_ATTR_GROUPS].i == 8 && n->n_inputs == 2 && n->precision == KILN_PREC_F16);
    CHECK_TYPE(g, "conv_s2", "f32[batch,8,8,8]");
    CHECK_TYPE(g, "conv_s2.weight", "f32[8,1,3,5]");
    CU_ASSERT_EQUAL(kiln_graph_find_value(g, "conv_s2.bias"), KILN_NO_ID);

    n = node_of(g, "mp");
    CU_ASSERT(ints_equal(n, KILN_ATTR_STRIDE, 2, stride2)); /* stride defaults to the kernel */
    CHECK_TYPE(g, "mp", "f32[batch,8,4,4]");
    n = node_of(g, "ap");
    int64_t zero4[4] = {0, 0, 0, 0};
    CU_ASSERT(ints_equal(n, KILN_ATTR_PADDING, 4, zero4));
    CU_ASSERT(n && n->attrs[KILN_ATTR_CEIL_MODE].i == 1 && n->attrs[KILN_ATTR_COUNT_INCLUDE_PAD].i == 0);
    CHECK_TYPE(g, "ap", "f32[batch,8,3,3]");
    n = node_of(g, "bn");
    CU_ASSERT(n && n->n_inputs == 5 && fabs(n->attrs[KILN_ATTR_EPS].f - 0.001) < 1e-12);
    CHECK_TYPE(g, "bn.running_var", "f32[8]");
    CHECK_TYPE(g, "gap", "f32[batch,8,1,1]");
    n = node_of(g, "flat");
    CU_ASSERT(n && n->attrs[KILN_ATTR_AXIS].i == 1);
    CHECK_TYPE(g, "flat", "f32[batch,8]");

    n = node_of(g, "fc");
    CU_ASSERT(n && n->op == KILN_OP_LEAKY_RELU && fabs(n->attrs[KILN_ATTR_ALPHA].f - 0.2) < 1e-12);
    n = node_of(g, "fc:pre");
    CU_ASSERT(n && n->op == KILN_OP_DENSE && n->attrs[KILN_ATTR_UNITS].i == 10 && n->n_inputs == 3);
    CHECK_TYPE(g, "fc", "f32[batch,10]");
    CHECK_TYPE(g, "fc.weight", "f32[10,8]");
    CHECK_TYPE(g, "fc.bias", "f32[10]");

    static const char *const unary[] = {"r6", "sg", "th", "si", "hs", "hsg", "ex", "sq", "ng", "ge", "lr", "el", "cl"};
    static const kiln_op unary_ops[] = {KILN_OP_RELU6,     KILN_OP_SIGMOID,     KILN_OP_TANH, KILN_OP_SILU,
                                        KILN_OP_HARDSWISH, KILN_OP_HARDSIGMOID, KILN_OP_EXP,  KILN_OP_SQRT,
                                        KILN_OP_NEG,       KILN_OP_GELU,        KILN_OP_LEAKY_RELU, KILN_OP_ELU,
                                        KILN_OP_CLIP};
    for (size_t i = 0; i < sizeof unary / sizeof unary[0]; ++i) {
        n = node_of(g, unary[i]);
        CU_ASSERT(n && n->op == unary_ops[i] && n->n_inputs == 1);
        CHECK_TYPE(g, unary[i], "f32[batch,10]");
    }
    n = node_of(g, "ge");
    CU_ASSERT(n && n->attrs[KILN_ATTR_APPROXIMATE].i == 1); /* tanh */
    n = node_of(g, "lr");
    CU_ASSERT(n && fabs(n->attrs[KILN_ATTR_ALPHA].f - 0.01) < 1e-12);
    n = node_of(g, "cl");
    CU_ASSERT(n && n->attrs[KILN_ATTR_MIN].f == 0.0 && n->attrs[KILN_ATTR_MAX].f == 6.0);
    n = node_of(g, "sm");
    CU_ASSERT(n && n->attrs[KILN_ATTR_AXIS].i == 1); /* -1 normalized */
    n = node_of(g, "a_add");
    CU_ASSERT(n && n->n_inputs == 2 && !kiln_node_has(n, KILN_ATTR_SCALAR));
    n = node_of(g, "a_sub");
    CU_ASSERT(n && n->n_inputs == 1 && n->attrs[KILN_ATTR_SCALAR].f == 1.0 && n->attrs[KILN_ATTR_REVERSE].i == 1);
    n = node_of(g, "a_mul");
    CU_ASSERT(n && n->attrs[KILN_ATTR_SCALAR].f == 2.5 && n->attrs[KILN_ATTR_REVERSE].i == 0);
    CHECK_TYPE(g, "a_min", "f32[batch,10]");

    n = node_of(g, "mm");
    CU_ASSERT(n && n->attrs[KILN_ATTR_TRANSPOSE_B].i == 1);
    CHECK_TYPE(g, "mm", "f32[batch,6,6]");
    n = node_of(g, "cat");
    CU_ASSERT(n && n->attrs[KILN_ATTR_AXIS].i == 2 && n->n_inputs == 2);
    CHECK_TYPE(g, "cat", "f32[batch,6,12]");
    n = node_of(g, "rs");
    int64_t rs[3] = {0, 18, 4};
    CU_ASSERT(ints_equal(n, KILN_ATTR_SHAPE, 3, rs));
    CHECK_TYPE(g, "rs", "f32[batch,18,4]");
    n = node_of(g, "tr");
    int64_t perm[3] = {0, 2, 1};
    CU_ASSERT(ints_equal(n, KILN_ATTR_PERM, 3, perm));
    CHECK_TYPE(g, "tr", "f32[batch,4,18]");
    n = node_of(g, "mean");
    int64_t axes[1] = {2};
    CU_ASSERT(ints_equal(n, KILN_ATTR_AXES, 1, axes) && n->attrs[KILN_ATTR_KEEPDIMS].i == 0);
    CHECK_TYPE(g, "mean", "f32[batch,4]");
    n = node_of(g, "ln");
    CU_ASSERT(n && n->n_inputs == 3 && fabs(n->attrs[KILN_ATTR_EPS].f - 1e-6) < 1e-18);
    n = node_of(g, "ln2");
    CU_ASSERT(n && n->n_inputs == 1);
    CHECK_TYPE(g, "ln2", "f32[batch,6,8]");
    n = node_of(g, "pd");
    int64_t pads[4] = {1, 2, 3, 4};
    CU_ASSERT(ints_equal(n, KILN_ATTR_PADS, 4, pads) && n->attrs[KILN_ATTR_VALUE].f == -1.0);
    CHECK_TYPE(g, "pd", "f32[batch,3,20,22]");
    n = node_of(g, "idn");
    CU_ASSERT(n && n->op == KILN_OP_IDENTITY);
    n = node_of(g, "drop");
    CU_ASSERT(n && n->op == KILN_OP_DROPOUT && g->values[n->inputs[0]].name && strcmp(g->values[n->inputs[0]].name, "idn") == 0);
    kiln_graph_destroy(g);
}

/* Fixed shapes, default output, padding forms, names that look like numbers. */
/* ---- version 1.1 ----------------------------------------------------------- */

/* Every 1.1 op lowered: attributes as the IR holds them (expand's batch as
 * -1, resize's scale as numbers, conv_transpose2d's [ph, pw] as four pads,
 * slice's absent end), parameters and their shapes, prelu's [1] weight from
 * a file, the activation map on conv_transpose2d, the batch broadcast of
 * concat. */
static void test_ops_v11(void)
{
    float one = 0.25f, tok[8] = {0};
    const char *names[2] = {"pr1.weight", "cls.value"};
    int ranks[2] = {1, 3};
    int64_t d1[1] = {1}, d2[3] = {1, 1, 8};
    const int64_t *dims[2] = {d1, d2};
    const float *data[2] = {&one, tok};
    CU_ASSERT_EQUAL_FATAL(write_f32("v11.safetensors", 2, names, ranks, dims, data), 0);
    kiln_graph *g = load_ok("kiln: 1\n"
                            "name: v11\n"
                            "weights: v11.safetensors\n"
                            "init: {random: 5}\n"
                            "inputs:\n"
                            "  - {name: x, shape: [batch, 4, 6, 6]}\n"
                            "  - {name: t, shape: [batch, 3, 8]}\n"
                            "layers:\n"
                            "  - {name: s, op: slice, input: x, axis: -3, start: 1}\n"
                            "  - {name: s2, op: slice, input: x, axis: 3, start: -5, end: 100, step: 2}\n"
                            "  - {name: up, op: resize, input: x, scale: [2, 1.5], mode: bicubic, align_corners: true}\n"
                            "  - {name: up2, op: resize, input: x, size: 9}\n"
                            "  - {name: dc, op: conv_transpose2d, input: x, filters: 6, kernel: [3, 2], stride: 2,"
                            " padding: [1, 0], output_padding: [1, 0], groups: 2, bias: false,"
                            " activation: {op: hardsigmoid, alpha: 0.2, beta: 0.4}}\n"
                            "  - {name: ap, op: adaptive_avgpool2d, input: x, size: [3, 9]}\n"
                            "  - {name: gn, op: group_norm, input: x, groups: 2, eps: 0.001}\n"
                            "  - {name: gn2, op: group_norm, input: x, groups: 4, affine: false}\n"
                            "  - {name: pr, op: prelu, input: x}\n"
                            "  - {name: pr1, op: prelu, input: x}\n"
                            "  - {name: pw, op: pow, inputs: [x, x]}\n"
                            "  - {name: pw2, op: pow, input: x, scalar: 2, reverse: true}\n"
                            "  - {name: rs, op: reduce_sum, input: x, axes: [-1, 2], keepdims: false}\n"
                            "  - {name: rmax, op: reduce_max, input: x, axes: 1}\n"
                            "  - {name: rmin, op: reduce_min, input: x, axes: [3]}\n"
                            "  - {name: er, op: erf, input: x}\n"
                            "  - {name: ab, op: abs}\n"
                            "  - {name: lg, op: log}\n"
                            "  - {name: sp, op: softplus}\n"
                            "  - {name: hs, op: hardsigmoid}\n"
                            "  - {name: cls, op: constant}\n"
                            "  - {name: ex, op: expand, input: cls, shape: [batch, 2, 8]}\n"
                            "  - {name: cat, op: concat, inputs: [cls, t], axis: 1}\n");
    if (g == NULL)
        return;
    const kiln_node *n = node_of(g, "s");
    CU_ASSERT(n && n->op == KILN_OP_SLICE && n->attrs[KILN_ATTR_AXIS].i == 1 && n->attrs[KILN_ATTR_START].i == 1 &&
              n->attrs[KILN_ATTR_STEP].i == 1 && !kiln_node_has(n, KILN_ATTR_END));
    CHECK_TYPE(g, "s", "f32[batch,3,6,6]");
    n = node_of(g, "s2");
    CU_ASSERT(n && n->attrs[KILN_ATTR_START].i == -5 && n->attrs[KILN_ATTR_END].i == 100 && n->attrs[KILN_ATTR_STEP].i == 2);
    CHECK_TYPE(g, "s2", "f32[batch,4,6,3]");
    n = node_of(g, "up");
    CU_ASSERT(n && n->attrs[KILN_ATTR_SCALE].n == 2 && n->attrs[KILN_ATTR_SCALE].floats[0] == 2.0 &&
              n->attrs[KILN_ATTR_SCALE].floats[1] == 1.5 && n->attrs[KILN_ATTR_MODE].i == KILN_RESIZE_BICUBIC &&
              n->attrs[KILN_ATTR_ALIGN_CORNERS].i == 1 && !kiln_node_has(n, KILN_ATTR_SIZE));
    CHECK_TYPE(g, "up", "f32[batch,4,12,9]");
    n = node_of(g, "up2");
    int64_t nine[2] = {9, 9};
    CU_ASSERT(ints_equal(n, KILN_ATTR_SIZE, 2, nine) && n->attrs[KILN_ATTR_MODE].i == KILN_RESIZE_NEAREST);
    CHECK_TYPE(g, "up2", "f32[batch,4,9,9]");
    n = node_of(g, "dc:pre");
    int64_t pads[4] = {1, 0, 1, 0}, op10[2] = {1, 0};
    CU_ASSERT(n && n->op == KILN_OP_CONV_TRANSPOSE2D && ints_equal(n, KILN_ATTR_PADDING, 4, pads) &&
              ints_equal(n, KILN_ATTR_OUTPUT_PADDING, 2, op10) && n->n_inputs == 2);
    CHECK_TYPE(g, "dc.weight", "f32[4,3,3,2]"); /* [C, filters / groups, kh, kw] */
    CHECK_TYPE(g, "dc:pre", "f32[batch,6,12,12]");
    n = node_of(g, "dc");
    CU_ASSERT(n && n->op == KILN_OP_HARDSIGMOID && n->attrs[KILN_ATTR_ALPHA].f == 0.2 && n->attrs[KILN_ATTR_BETA].f == 0.4);
    CHECK_TYPE(g, "ap", "f32[batch,4,3,9]");
    n = node_of(g, "gn");
    CU_ASSERT(n && n->n_inputs == 3 && n->attrs[KILN_ATTR_GROUPS].i == 2 && n->attrs[KILN_ATTR_EPS].f == 0.001);
    CHECK_TYPE(g, "gn.bias", "f32[4]");
    n = node_of(g, "gn2");
    CU_ASSERT(n && n->n_inputs == 1);
    CHECK_TYPE(g, "pr.weight", "f32[4]");
    CHECK_TYPE(g, "pr1.weight", "f32[1]"); /* [1] from the file: one slope for every channel */
    n = node_of(g, "pr1");
    CU_ASSERT(n && g->values[n->inputs[1]].param.source == KILN_PARAM_FILE);
    n = node_of(g, "pw2");
    CU_ASSERT(n && n->op == KILN_OP_POW && n->attrs[KILN_ATTR_SCALAR].f == 2.0 && n->attrs[KILN_ATTR_REVERSE].i == 1);
    int64_t ax23[2] = {2, 3}, ax1[1] = {1};
    CU_ASSERT(ints_equal(node_of(g, "rs"), KILN_ATTR_AXES, 2, ax23)); /* normalized and sorted */
    CHECK_TYPE(g, "rs", "f32[batch,4]");
    CU_ASSERT(ints_equal(node_of(g, "rmax"), KILN_ATTR_AXES, 1, ax1));
    CHECK_TYPE(g, "rmax", "f32[batch,1,6,6]");
    CHECK_TYPE(g, "rmin", "f32[batch,4,6,1]");
    n = node_of(g, "hs");
    CU_ASSERT(n && n->attrs[KILN_ATTR_ALPHA].f == 1.0 / 6.0 && n->attrs[KILN_ATTR_BETA].f == 0.5);
    n = node_of(g, "ex");
    int64_t eshape[3] = {KILN_DIM_BATCH, 2, 8};
    CU_ASSERT(ints_equal(n, KILN_ATTR_SHAPE, 3, eshape));
    CHECK_TYPE(g, "ex", "f32[batch,2,8]");
    CHECK_TYPE(g, "cat", "f32[batch,4,8]");
    kiln_graph_destroy(g);

    /* expand without a batch dimension in the model; prelu's [1] beside a
     * per-channel layer that reads the same key */
    load_fails("kiln: 1\nname: e\ninputs:\n  - {name: x, shape: [2, 3]}\nlayers:\n"
               "  - {name: ex, op: expand, shape: [batch, 3]}\n",
               "entries are sizes in 1..2147483647 (the model has no batch dimension)", 6);
    load_fails("kiln: 1\nname: e\ninit: {random: 1}\ninputs:\n  - {name: x, shape: [batch, 3, 4]}\nlayers:\n"
               "  - {name: p, op: prelu}\n"
               "  - {name: q, op: prelu, params: {weight: p.weight}}\n"
               "  - {name: r, op: prelu, input: x, params: {weight: p.weight}}\n"
               "  - {name: s, op: slice, axis: 1, end: 2}\n"
               "  - {name: u, op: prelu, params: {weight: p.weight}}\n",
               "parameter 'weight' reads 'p.weight' as [2], but layer 'p' (line 7) reads it as [3]", 11);
}

static void test_forms(void)
{
    kiln_graph *g;
    g = load_ok("kiln: 1\n"
                "name: forms\n"
                "init: {random: 0}\n"
                "inputs:\n"
                "  - {name: '0', shape: [1, 2, 9, 9]}\n"
                "layers:\n"
                "  - {name: 1, op: conv2d, filters: 4, kernel: 3, padding: [1, 2]}\n"
                "  - {name: c2, op: conv2d, filters: 4, kernel: 3, padding: [0, 1, 2, 3], dilation: 2}\n"
                "  - {name: c3, op: conv2d, filters: 4, kernel: 3, stride: [1, 2], padding: same,"
                " dilation: [2, 1], input: '0'}\n"
                "  - {name: p, op: maxpool2d, kernel: 3, stride: 2, padding: same, input: c3}\n"
                "  - {name: q, op: avgpool2d, kernel: [2, 2], padding: 1}\n"
                "  - {name: last, op: \"relu\"}\n");
    if (g == NULL)
        return;
    CU_ASSERT_PTR_NULL(g->batch_name);
    CHECK_TYPE(g, "0", "f32[1,2,9,9]");
    const kiln_node *n = node_of(g, "1");
    int64_t p12[4] = {1, 2, 1, 2};
    CU_ASSERT(ints_equal(n, KILN_ATTR_PADDING, 4, p12));
    CHECK_TYPE(g, "1", "f32[1,4,9,11]");
    CHECK_TYPE(g, "1.weight", "f32[4,2,3,3]");
    n = node_of(g, "c2");
    int64_t p0123[4] = {0, 1, 2, 3};
    CU_ASSERT(ints_equal(n, KILN_ATTR_PADDING, 4, p0123));
    /* c3: height: k_eff 5, stride 1 -> total 4 (2, 2); width: k_eff 3, stride 2, in 9 -> out 5, total 2 (1, 1) */
    n = node_of(g, "c3");
    int64_t p3[4] = {2, 1, 2, 1};
    CU_ASSERT(ints_equal(n, KILN_ATTR_PADDING, 4, p3));
    CHECK_TYPE(g, "c3", "f32[1,4,9,5]");
    /* p: in [9,5], k 3, s 2: out [5,3], totals 2 and 2 */
    n = node_of(g, "p");
    int64_t pp[4] = {1, 1, 1, 1};
    CU_ASSERT(ints_equal(n, KILN_ATTR_PADDING, 4, pp));
    CHECK_TYPE(g, "p", "f32[1,4,5,3]");
    n = node_of(g, "q");
    int64_t one4[4] = {1, 1, 1, 1};
    CU_ASSERT(ints_equal(n, KILN_ATTR_PADDING, 4, one4));
    /* default output: the last layer */
    CU_ASSERT_EQUAL(g->n_outputs, 1);
    CU_ASSERT(g->n_outputs == 1 && strcmp(g->values[g->outputs[0]].name, "last") == 0);
    kiln_graph_destroy(g);
}

/* ---- blocks ------------------------------------------------------------- */

static const char *blocks_yaml =
    "kiln: 1\n"
    "name: blocks\n"
    "init: {random: 9}\n"
    "inputs:\n"
    "  - {name: x, shape: [n, 4, 8, 8]}\n"
    "blocks:\n"
    "  cbr:\n"
    "    args: {ch: ~, k: 3, act: relu}\n"
    "    inputs: [x]\n"
    "    layers:\n"
    "      - {name: conv, op: conv2d, filters: $ch, kernel: $k, padding: same, bias: false}\n"
    "      - {name: bn, op: batchnorm}\n"
    "      - {name: act, op: $act}\n"
    "  res:\n"
    "    args: [ch, skip]\n"
    "    inputs: [x]\n"
    "    layers:\n"
    "      - {name: a, use: cbr, with: {ch: $ch}}\n"
    "      - {name: b, use: cbr, with: {ch: $ch, k: [1, 1], act: sigmoid}, precision: int8}\n"
    "      - {name: sum, op: add, inputs: [$skip, b]}\n"
    "      - {name: out, op: relu}\n"
    "      - {name: unused, op: tanh, input: a}\n"
    "    output: out\n"
    "  pair:\n"
    "    inputs: [p, q]\n"
    "    layers:\n"
    "      - {name: cat, op: concat, inputs: [p, q]}\n"
    "layers:\n"
    "  - {name: stem, use: cbr, with: {ch: 4}}\n"
    "  - {name: stage.0, use: res, with: {ch: 4, skip: x}}\n"
    "  - {name: both, use: pair, inputs: [stem, stage.0]}\n"
    "outputs: [both, stage.0]\n";

static void test_blocks(void)
{
    kiln_graph *g = load_ok(blocks_yaml);
    if (g == NULL)
        return;
    CU_ASSERT_STRING_EQUAL(g->batch_name, "n");
    /* stem: 3, stage.0: 3 + 3 + 3, pair: 1 */
    CU_ASSERT_EQUAL(g->n_nodes, 13);
    /* an instance's layers are I.L; its output value is called I */
    const kiln_node *n = node_of(g, "stem.conv");
    CU_ASSERT(n && n->attrs[KILN_ATTR_FILTERS].i == 4 && n->n_inputs == 2 && strcmp(n->layer, "stem.conv") == 0);
    n = node_of(g, "stem");
    CU_ASSERT(n && n->op == KILN_OP_RELU && strcmp(n->layer, "stem.act") == 0);
    CHECK_TYPE(g, "stem.conv.weight", "f32[4,4,3,3]");
    CHECK_TYPE(g, "stem.bn.running_mean", "f32[4]");
    /* nested: stage.0.a.conv, stage.0.b's output named stage.0.b */
    n = node_of(g, "stage.0.a.conv");
    CU_ASSERT(n && n->attrs[KILN_ATTR_KERNEL].ints[0] == 3);
    n = node_of(g, "stage.0.b.conv");
    int64_t k11[2] = {1, 1};
    CU_ASSERT(ints_equal(n, KILN_ATTR_KERNEL, 2, k11));
    CU_ASSERT(n && n->precision == KILN_PREC_INT8); /* inherited from the instance */
    n = node_of(g, "stage.0.b");
    CU_ASSERT(n && n->op == KILN_OP_SIGMOID && n->precision == KILN_PREC_INT8);
    n = node_of(g, "stage.0.a");
    CU_ASSERT(n && n->op == KILN_OP_RELU && n->precision == KILN_PREC_DEFAULT);
    /* $skip in a list names the template's input x (which hides the model's x),
     * bound to the instance's operand: the previous layer, stem */
    n = node_of(g, "stage.0.sum");
    CU_ASSERT(n && n->n_inputs == 2 && strcmp(g->values[n->inputs[0]].name, "stem") == 0 &&
              strcmp(g->values[n->inputs[1]].name, "stage.0.b") == 0);
    /* output: out (not the last layer) */
    n = node_of(g, "stage.0");
    CU_ASSERT(n && n->op == KILN_OP_RELU && strcmp(n->layer, "stage.0.out") == 0);
    CU_ASSERT_PTR_NOT_NULL(node_of(g, "stage.0.unused"));
    /* two inputs bound in order */
    n = node_of(g, "both");
    CU_ASSERT(n && n->op == KILN_OP_CONCAT && strcmp(g->values[n->inputs[0]].name, "stem") == 0 &&
              strcmp(g->values[n->inputs[1]].name, "stage.0") == 0);
    CHECK_TYPE(g, "both", "f32[n,8,8,8]");
    CU_ASSERT(g->n_outputs == 2 && strcmp(g->values[g->outputs[1]].name, "stage.0") == 0);
    kiln_graph_destroy(g);
}

/* `input: $arg`, a list given to a block argument, an instance that passes
 * its input through, and quoted `$` references. */
static void test_block_substitution(void)
{
    kiln_graph *g = load_ok("kiln: 1\n"
                            "name: subst\n"
                            "init: {random: 2}\n"
                            "inputs:\n"
                            "  - {name: x, shape: [batch, 6]}\n"
                            "blocks:\n"
                            "  pick:\n"
                            "    args: {src: a, dims: [0, 2, 3], act: {op: leaky_relu, alpha: 0.3}}\n"
                            "    inputs: [a, b]\n"
                            "    layers:\n"
                            "      - {name: r, op: reshape, input: $src, shape: \"$dims\"}\n"
                            "      - {name: fc, op: dense, units: 3, input: b, activation: $act}\n"
                            "      - {name: s, op: relu, input: $src}\n"
                            "    output: s\n"
                            "  same:\n"
                            "    inputs: [v]\n"
                            "    layers: [{name: unused, op: neg}]\n"
                            "    output: v\n"
                            "layers:\n"
                            "  - {name: y, op: neg}\n"
                            "  - {name: p, use: pick, inputs: [x, y], with: {src: b, dims: [0, 3, 2]}}\n"
                            "  - {name: q, use: same}\n"
                            "outputs: [p, q]\n");
    if (g == NULL)
        return;
    const kiln_node *n = node_of(g, "p.r");
    int64_t dims[3] = {0, 3, 2};
    CU_ASSERT(ints_equal(n, KILN_ATTR_SHAPE, 3, dims));
    CU_ASSERT(n && strcmp(g->values[n->inputs[0]].name, "y") == 0); /* src: b, the instance's second input */
    n = node_of(g, "p.fc");
    CU_ASSERT(n && n->op == KILN_OP_LEAKY_RELU && fabs(n->attrs[KILN_ATTR_ALPHA].f - 0.3) < 1e-12);
    n = node_of(g, "p");
    CU_ASSERT(n && n->op == KILN_OP_RELU && strcmp(g->values[n->inputs[0]].name, "y") == 0);
    /* q's output is its input, p: an identity node gives it the name q */
    n = node_of(g, "q");
    CU_ASSERT(n && n->op == KILN_OP_IDENTITY && strcmp(g->values[n->inputs[0]].name, "p") == 0);
    CU_ASSERT(g->n_outputs == 2 && strcmp(g->values[g->outputs[1]].name, "q") == 0);
    kiln_graph_destroy(g);
}

static void test_block_errors(void)
{
    static const char *head = "kiln: 1\nname: m\ninit: {random: 1}\ninputs:\n  - {name: x, shape: [batch, 4]}\n";
    char buf[2048];
    /* template scoping: a template does not see the model's names */
    snprintf(buf, sizeof buf,
             "%sblocks:\n  b:\n    inputs: [i]\n    layers:\n      - {name: r, op: add, inputs: [i, x]}\n"
             "layers:\n  - {name: y, op: relu}\n  - {name: inst, use: b}\n",
             head);
    load_fails(buf, "in block 'b' layer 'r' (instance 'inst'): reads 'x', which is not defined before it", 13);
    /* outside, only the instance is visible */
    snprintf(buf, sizeof buf,
             "%sblocks:\n  b:\n    inputs: [i]\n    layers:\n      - {name: r, op: relu}\n"
             "layers:\n  - {name: inst, use: b}\n  - {name: z, op: relu, input: inst.r}\n",
             head);
    load_fails(buf, "reads 'inst.r', which is not defined before it", 13);
    /* wrong number of instance inputs */
    snprintf(buf, sizeof buf,
             "%sblocks:\n  b:\n    inputs: [i, j]\n    layers:\n      - {name: r, op: add, inputs: [i, j]}\n"
             "layers:\n  - {name: inst, use: b}\n",
             head);
    load_fails(buf, "block 'b' takes 2 input(s), got 1", 12);
    /* recursion through an argument */
    snprintf(buf, sizeof buf,
             "%sblocks:\n  b:\n    args: {blk: b}\n    inputs: [i]\n    layers:\n      - {name: r, use: $blk}\n"
             "layers:\n  - {name: inst, use: b}\n",
             head);
    load_fails(buf, "block recursion: 'b' is already being expanded", 13);
    /* an op given by an argument is checked per instance */
    snprintf(buf, sizeof buf,
             "%sblocks:\n  b:\n    args: {o: relu}\n    inputs: [i]\n    layers:\n      - {name: r, op: $o, units: 3}\n"
             "layers:\n  - {name: ok, use: b, with: {o: dense}}\n  - {name: bad, use: b, with: {o: relu}}\n",
             head);
    load_fails(buf, "in block 'b' layer 'r' (instance 'bad'): unknown key 'units' (relu takes no attributes)", 14);
    /* unknown block, unknown key in an instance, output not a layer */
    snprintf(buf, sizeof buf, "%slayers:\n  - {name: inst, use: nothing}\n", head);
    load_fails(buf, "unknown block 'nothing'", 7);
    snprintf(buf, sizeof buf,
             "%sblocks:\n  b:\n    inputs: [i]\n    layers: [{name: r, op: relu}]\n    output: q\n"
             "layers:\n  - {name: inst, use: b, filters: 3}\n",
             head);
    load_fails(buf, "unknown key 'filters' in block instance", 12);
    load_fails(buf, "block 'b': output 'q' is not one of its layers", 10);
    /* a layer name that would collide with an instance's layer */
    snprintf(buf, sizeof buf,
             "%sblocks:\n  b:\n    inputs: [i]\n    layers: [{name: r, op: relu}, {name: s, op: relu}]\n"
             "layers:\n  - {name: inst, use: b}\n  - {name: inst.r, op: relu}\n",
             head);
    load_fails(buf, "its output would be named 'inst.r', which is already the output of layer 'inst.r' (line 11)",
               12);
}

/* Blocks that expand exponentially are cut off, not expanded. */
static void test_block_explosion(void)
{
    char buf[8192];
    size_t n = (size_t)snprintf(buf, sizeof buf,
                                "kiln: 1\nname: m\ninit: {random: 1}\ninputs:\n  - {name: x, shape: [batch, 4]}\n"
                                "blocks:\n  b0:\n    inputs: [i]\n    layers: [{name: r, op: relu}]\n");
    for (int i = 1; i <= 24; ++i)
        n += (size_t)snprintf(buf + n, sizeof buf - n,
                              "  b%d:\n    inputs: [i]\n    layers: [{name: a, use: b%d}, {name: b, use: b%d}]\n", i,
                              i - 1, i - 1);
    snprintf(buf + n, sizeof buf - n, "layers:\n  - {name: top, use: b24}\n");
    load_fails(buf, "the model expands to more than 100000 layers", 0);
}

/* ---- weights ------------------------------------------------------------ */

static void test_weights_and_constant(void)
{
    float w[12], b[3], c[6];
    for (int i = 0; i < 12; ++i)
        w[i] = (float)i;
    for (int i = 0; i < 3; ++i)
        b[i] = (float)-i;
    for (int i = 0; i < 6; ++i)
        c[i] = 0.5f * (float)i;
    const char *names[3] = {"fc.weight", "shared.bias", "table"};
    int ranks[3] = {2, 1, 2};
    int64_t dw[2] = {3, 4}, db[1] = {3}, dc[2] = {2, 3};
    const int64_t *dims[3] = {dw, db, dc};
    const float *data[3] = {w, b, c};
    CU_ASSERT_EQUAL_FATAL(write_f32("w.safetensors", 3, names, ranks, dims, data), 0);

    kiln_graph *g = load_ok("kiln: 1\n"
                            "name: w\n"
                            "weights: w.safetensors\n"
                            "init: {random: 3}\n"
                            "inputs:\n"
                            "  - {name: x, shape: [batch, 4]}\n"
                            "layers:\n"
                            "  - {name: fc, op: dense, units: 3, params: {bias: shared.bias}}\n"
                            "  - {name: fc.weight, op: dense, units: 3, params: {weight: fc2.w, bias: shared.bias}}\n"
                            "  - {name: k, op: constant, params: {value: table}}\n"
                            "  - {name: mixed, op: add, inputs: [fc, fc.weight]}\n");
    if (g == NULL)
        return;
    /* fc.weight from the file; the layer fc.weight takes the name, the parameter gets fc.weight#1 */
    kiln_id v = kiln_graph_find_value(g, "fc.weight#1");
    CU_ASSERT_FATAL(v != KILN_NO_ID);
    CU_ASSERT_EQUAL(g->values[v].kind, KILN_VALUE_PARAM);
    CU_ASSERT_EQUAL(g->values[v].param.source, KILN_PARAM_FILE);
    CU_ASSERT_STRING_EQUAL(g->values[v].param.key, "fc.weight");
    float got[12];
    CU_ASSERT_EQUAL(kiln_param_read_f32(g, v, got), KILN_OK);
    CU_ASSERT(got[5] == 5.0f && got[11] == 11.0f);
    /* the shared bias is one value */
    const kiln_node *a = node_of(g, "fc"), *b2 = node_of(g, "fc.weight");
    CU_ASSERT(a && b2 && a->inputs[2] == b2->inputs[2]);
    CU_ASSERT(a && g->values[a->inputs[2]].param.source == KILN_PARAM_FILE);
    /* fc2.w is not in the file: random [3,3], dense range 1/sqrt(fan_in 3) */
    v = kiln_graph_find_value(g, "fc2.w");
    CU_ASSERT_FATAL(v != KILN_NO_ID);
    CU_ASSERT_EQUAL(g->values[v].param.source, KILN_PARAM_RANDOM);
    CU_ASSERT_EQUAL(g->values[v].param.seed, 3);
    double bound = 1.0 / sqrt(3.0);
    CU_ASSERT_DOUBLE_EQUAL(g->values[v].param.lo, -bound, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(g->values[v].param.hi, bound, 1e-12);
    CU_ASSERT_EQUAL(kiln_param_read_f32(g, v, got), KILN_OK);
    for (int i = 0; i < 9; ++i)
        CU_ASSERT(got[i] >= -bound && got[i] <= bound);
    /* the constant takes the tensor's shape */
    const kiln_node *k = node_of(g, "k");
    CU_ASSERT(k && k->op == KILN_OP_CONSTANT && k->n_inputs == 1);
    CHECK_TYPE(g, "k", "f32[2,3]");
    CHECK_TYPE(g, "table", "f32[2,3]");
    kiln_graph_destroy(g);
}

static void test_random_ranges(void)
{
    kiln_graph *g = load_ok("kiln: 1\n"
                            "name: r\n"
                            "init: {random: 77}\n"
                            "inputs:\n"
                            "  - {name: x, shape: [batch, 2, 5, 5]}\n"
                            "layers:\n"
                            "  - {name: c, op: conv2d, filters: 6, kernel: 3}\n"
                            "  - {name: bn, op: batchnorm}\n"
                            "  - {name: ln, op: layernorm}\n");
    if (g == NULL)
        return;
    struct {
        const char *name;
        double lo, hi;
    } want[] = {
        {"c.weight", -1 / sqrt(18.0), 1 / sqrt(18.0)}, {"c.bias", -1 / sqrt(18.0), 1 / sqrt(18.0)},
        {"bn.weight", 0.5, 1.5},   {"bn.bias", -0.1, 0.1}, {"bn.running_mean", -0.1, 0.1},
        {"bn.running_var", 0.5, 1.5}, {"ln.weight", 0.5, 1.5}, {"ln.bias", -0.1, 0.1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; ++i) {
        kiln_id v = kiln_graph_find_value(g, want[i].name);
        CU_ASSERT_FATAL(v != KILN_NO_ID);
        CU_ASSERT_EQUAL(g->values[v].param.source, KILN_PARAM_RANDOM);
        CU_ASSERT_DOUBLE_EQUAL(g->values[v].param.lo, want[i].lo, 1e-12);
        CU_ASSERT_DOUBLE_EQUAL(g->values[v].param.hi, want[i].hi, 1e-12);
        /* generated when read, never held by the graph */
        CU_ASSERT_PTR_NULL(g->values[v].param.data);
        float got[128]; /* c.weight: 6 x 2 x 3 x 3 */
        CU_ASSERT_FATAL(kiln_shape_elements(&g->values[v].type.shape, 1) <= 128);
        CU_ASSERT_EQUAL(kiln_param_read_f32(g, v, got), KILN_OK);
        for (int64_t k = 0; k < kiln_shape_elements(&g->values[v].type.shape, 1); k++)
            CU_ASSERT(got[k] >= want[i].lo && got[k] <= want[i].hi);
    }
    kiln_graph_destroy(g);
}

static void test_constant_random_refused(void)
{
    load_fails("kiln: 1\nname: m\ninit: {random: 1}\ninputs:\n  - {name: x, shape: [2]}\n"
               "layers:\n  - {name: k, op: constant}\n",
               "a constant cannot come from init: random", 7);
}

/* ---- scalars, names, outputs -------------------------------------------- */

static void test_scalars(void)
{
    static const char *head = "kiln: 1\nname: m\ninit: {random: 1}\ninputs:\n  - {name: x, shape: [batch, 4]}\n";
    char buf[1024];
    /* quoted numbers are numbers; an int is fine for a float; 1e-3 is a float */
    snprintf(buf, sizeof buf, "%slayers:\n  - {name: a, op: leaky_relu, alpha: 1e-3}\n"
             "  - {name: b, op: dense, units: \"3\"}\n  - {name: c, op: elu, alpha: 2}\n", head);
    kiln_graph *g = load_ok(buf);
    if (g) {
        const kiln_node *n = node_of(g, "a");
        CU_ASSERT(n && fabs(n->attrs[KILN_ATTR_ALPHA].f - 1e-3) < 1e-15);
        n = node_of(g, "b");
        CU_ASSERT(n && n->attrs[KILN_ATTR_UNITS].i == 3);
        n = node_of(g, "c");
        CU_ASSERT(n && n->attrs[KILN_ATTR_ALPHA].f == 2.0);
    }
    kiln_graph_destroy(g);
    /* `~` is only a value where args allow it */
    snprintf(buf, sizeof buf, "%slayers:\n  - {name: a, op: dense, units: ~}\n", head);
    load_fails(buf, "'units' expects an integer, got '~'", 7);
    snprintf(buf, sizeof buf, "%slayers:\n  - {name: a, op: dense, units: 0}\n", head);
    load_fails(buf, "'units' must be in 1..2147483647, got 0", 7);
    snprintf(buf, sizeof buf, "%slayers:\n  - {name: a, op: maxpool2d, kernel: [2, 2, 2]}\n", head);
    load_fails(buf, "'kernel' takes one integer or a list of 2", 7);
    snprintf(buf, sizeof buf, "%slayers:\n  - {name: a, op: gelu, approximate: exact}\n", head);
    load_fails(buf, "'approximate' must be one of: none, tanh", 7);
    snprintf(buf, sizeof buf, "%slayers:\n  - {name: a, op: clip}\n", head);
    load_fails(buf, "clip needs 'min', 'max' or both", 7);
    snprintf(buf, sizeof buf, "%slayers:\n  - {name: a, op: add}\n", head);
    load_fails(buf, "add needs two operands (inputs: [a, b]) or one operand and 'scalar'", 7);
    snprintf(buf, sizeof buf, "%slayers:\n  - {name: a, op: add, inputs: [x, x], scalar: 1}\n", head);
    load_fails(buf, "not both", 7);
    snprintf(buf, sizeof buf, "%slayers:\n  - {name: a, op: relu, activation: relu}\n", head);
    load_fails(buf, "unknown key 'activation' in a relu layer", 7);
    snprintf(buf, sizeof buf, "%slayers:\n  - {name: a, op: dense, units: 2, activation: softmax}\n", head);
    load_fails(buf, "'softmax' cannot be an activation", 7);
    snprintf(buf, sizeof buf, "%slayers:\n  - {name: a, op: dense, units: 2, params: {kernel: k}}\n", head);
    load_fails(buf, "dense has no parameter 'kernel' (its parameters: weight, bias)", 7);
    snprintf(buf, sizeof buf, "%slayers:\n  - {name: a, op: relu, precision: f8}\n", head);
    load_fails(buf, "'precision' must be one of f32, bf16, f16, int8, auto, got 'f8'", 7);
    snprintf(buf, sizeof buf, "%slayers:\n  - {name: a, op: constant, input: x}\n", head);
    load_fails(buf, "constant takes no operand", 7);
    snprintf(buf, sizeof buf, "%slayers:\n  - {name: a, op: relu}\noutputs: [a, nope]\n", head);
    load_fails(buf, "output 'nope' is not defined", 8);
    snprintf(buf, sizeof buf, "%slayers:\n  - {name: x, op: relu}\n", head);
    load_fails(buf, "layer name 'x' is already the name of an input (line 5)", 7);
    load_fails("kiln: 2\nname: m\n", "format version 2 is not supported", 1);
    load_fails("name: m\ninputs: [{name: x, shape: [1]}]\nlayers: [{name: a, op: relu}]\n",
               "the model has no 'kiln' (the format version", 1);
    load_fails("", "the file holds no model", 1);
    load_fails("- 1\n- 2\n", "a model is a mapping", 1);
    load_fails("kiln: 1\nname: m\ninputs: [{name: x, shape: [batch, 4], dtype: i8}]\nlayers: [{name: a, op: relu}]\n",
               "input dtype i8 is not supported", 3);
    load_fails("kiln: 1\nname: m\ninputs: [{name: x, shape: [batch, 0]}]\nlayers: [{name: a, op: relu}]\n",
               "dimension 1 of input 'x' is 0, outside 1..2147483647", 3);
    load_fails("kiln: 1\nname: m\ninputs: [{name: x, shape: [65536, 65536, 2]}]\nlayers: [{name: a, op: relu}]\n",
               "input 'x' has more than 4294967296 elements", 3);
    load_fails("kiln: 1\nname: m\ninputs: [{name: x, shape: [1]}]\nlayers: [{name: a, op: relu}]\nx: !!str 1\n",
               "YAML tags ('tag:yaml.org,2002:str') are not supported", 5);
    load_fails("kiln: 1\nname: m\ninputs: [{name: x, shape: [1]}]\nlayers: [{name: a, op: relu}]\n---\nkiln: 1\n",
               "a kiln model is one YAML document", 5);
    load_fails("kiln: 1\nname: m\ninputs: *nothing\n", "YAML alias '*nothing' refers to no anchor", 3);
    load_fails("kiln: 1\nname: \"m\\0\"\n", "a NUL character in a scalar is not allowed", 2);
    load_fails("kiln: 1\nname: m\n\xff\xfe: 1\n", "YAML: invalid", 3);
}

/* ---- limits and robustness ---------------------------------------------- */

static void test_too_big(void)
{
    size_t len = ((size_t)64 << 20) + 1;
    char *text = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    memset(text, ' ', len);
    kiln_diag d;
    kiln_graph *g = NULL;
    kiln_diag_init(&d);
    CU_ASSERT_NOT_EQUAL(kiln_frontend_load_yaml_text(text, len, "big.yaml", &g, &d), KILN_OK);
    CU_ASSERT_PTR_NULL(g);
    CU_ASSERT(has_error(&d, "larger than 64 MiB", 0));
    kiln_diag_release(&d);
    free(text);
}

/* The element limit can be lowered (the command line can raise it). */
static void test_max_elements(void)
{
    const char *yaml = "kiln: 1\nname: m\ninit: {random: 1}\ninputs:\n  - {name: x, shape: [batch, 64]}\n"
                       "layers:\n  - {name: fc, op: dense, units: 32}\n";
    kiln_frontend_options opt = {.max_elements = 1000};
    kiln_diag d;
    kiln_graph *g = NULL;
    kiln_diag_init(&d);
    CU_ASSERT_NOT_EQUAL(kiln_frontend_load_yaml_text_opts(yaml, strlen(yaml), "m.yaml", &opt, &g, &d), KILN_OK);
    CU_ASSERT_PTR_NULL(g);
    CU_ASSERT(has_error(&d, "parameter 'weight' (fc.weight) would have more than 1000 elements", 7));
    kiln_diag_release(&d);
    opt.max_elements = 4096;
    kiln_diag_init(&d);
    CU_ASSERT_EQUAL(kiln_frontend_load_yaml_text_opts(yaml, strlen(yaml), "m.yaml", &opt, &g, &d), KILN_OK);
    CU_ASSERT(g && g->max_elements == 4096);
    kiln_graph_destroy(g);
    kiln_diag_release(&d);
}

/* The n-th allocation fails: a clean error, no leak, no crash (ASan/LSan). */
static void test_alloc_failures(void)
{
    const char *yaml = blocks_yaml;
    int completed = 0;
    for (long n = 0; n < 5000; ++n) {
        kiln_diag d;
        kiln_graph *g = NULL;
        kiln_diag_init(&d);
        kiln_alloc_fail_after(n, n % 2);
        kiln_status st = kiln_frontend_load_yaml_text(yaml, strlen(yaml), "/nonexistent/alloc.yaml", &g, &d);
        kiln_alloc_fail_after(-1, 0);
        if (st == KILN_OK) {
            CU_ASSERT_PTR_NOT_NULL(g);
            completed++;
        } else {
            CU_ASSERT_PTR_NULL(g);
        }
        kiln_graph_destroy(g);
        kiln_diag_release(&d);
        if (completed > 4)
            break;
    }
    CU_ASSERT(completed > 0);
}

/* A model written as IR text loads through the same entry point. */
static void test_kir(void)
{
    kiln_graph *g = load_ok(blocks_yaml);
    if (g == NULL)
        return;
    char path[512];
    snprintf(path, sizeof path, "%s/model.kir", tmpdir);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(kiln_ir_print(g, f, tmpdir), KILN_OK);
    fclose(f);
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_graph *h = NULL;
    kiln_status st = kiln_frontend_load(path, &h, &d);
    if (st != KILN_OK)
        print_diag(&d);
    CU_ASSERT_EQUAL(st, KILN_OK);
    CU_ASSERT(h && h->n_nodes == g->n_nodes && h->n_values == g->n_values);
    kiln_diag_release(&d);
    kiln_graph_destroy(h);
    kiln_graph_destroy(g);

    kiln_diag_init(&d);
    CU_ASSERT_EQUAL(kiln_frontend_load("model.txt", &h, &d), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT(has_error(&d, "expected .yaml, .yml or .kir", 0));
    kiln_diag_release(&d);
    kiln_diag_init(&d);
    CU_ASSERT_EQUAL(kiln_frontend_load("/nonexistent/model.yaml", &h, &d), KILN_ERR_IO);
    CU_ASSERT_PTR_NULL(h);
    kiln_diag_release(&d);
}

/* The examples load. */
static void test_examples(void)
{
    static const char *const models[] = {"lenet/lenet.yaml", "mlp/mlp.yaml", "resnet18/resnet18.yaml",
                                         "resnet20/resnet20.yaml", "mobilenetv2/mobilenetv2.yaml",
                                         "transformer/transformer.yaml"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; ++i) {
        char path[512];
        snprintf(path, sizeof path, "%s/../examples/%s", KILN_TEST_DIR, models[i]);
        kiln_diag d;
        kiln_diag_init(&d);
        kiln_graph *g = NULL;
        kiln_status st = kiln_frontend_load(path, &g, &d);
        if (st != KILN_OK)
            print_diag(&d);
        CU_ASSERT_EQUAL(st, KILN_OK);
        if (g) {
            kiln_diag v;
            kiln_diag_init(&v);
            CU_ASSERT_EQUAL(kiln_ir_verify(g, &v), KILN_OK);
            kiln_diag_release(&v);
        }
        kiln_graph_destroy(g);
        kiln_diag_release(&d);
    }
}

/* ---- golden error files ------------------------------------------------- */

typedef struct expectation {
    uint32_t line;
    char text[256];
    bool seen;
} expectation;

/* Collects every `# error: TEXT` (several may share a line). */
static size_t read_expectations(const char *path, expectation *out, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    static char line[1 << 16];
    size_t n = 0;
    uint32_t no = 0;
    while (fgets(line, sizeof line, f)) {
        no++;
        char *p = line;
        while ((p = strstr(p, "# error: ")) != NULL && n < max) {
            p += strlen("# error: ");
            char *end = strstr(p, " # error: ");
            size_t len = end ? (size_t)(end - p) : strcspn(p, "\r\n");
            if (len >= sizeof out[n].text)
                len = sizeof out[n].text - 1;
            memcpy(out[n].text, p, len);
            out[n].text[len] = '\0';
            out[n].line = no;
            out[n].seen = false;
            n++;
        }
    }
    fclose(f);
    return n;
}

static int golden_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_golden_errors(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/golden/errors", KILN_TEST_DIR);
    DIR *dp = opendir(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dp);
    char *files[256];
    size_t n_files = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL && n_files < 256) {
        size_t len = strlen(de->d_name);
        if (len > 5 && strcmp(de->d_name + len - 5, ".yaml") == 0)
            files[n_files++] = strdup(de->d_name);
    }
    closedir(dp);
    qsort(files, n_files, sizeof files[0], golden_cmp);
    CU_ASSERT(n_files >= 25);
    for (size_t i = 0; i < n_files; ++i) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        expectation want[32];
        size_t n_want = read_expectations(path, want, 32);
        kiln_diag d;
        kiln_diag_init(&d);
        kiln_graph *g = NULL;
        kiln_status st = kiln_frontend_load(path, &g, &d);
        bool ok = st != KILN_OK && g == NULL && n_want > 0;
        /* every expected error is there, at its line, in this file, with a column */
        for (size_t k = 0; k < d.count; ++k) {
            const kiln_diag_entry *e = &d.entries[k];
            if (e->severity != KILN_SEV_ERROR || e->loc.line == 0)
                continue; /* notes, and errors about other files (the weights) */
            bool matched = false;
            for (size_t w = 0; w < n_want && !matched; ++w) {
                if (!want[w].seen && want[w].line == e->loc.line && strstr(e->message, want[w].text) &&
                    e->loc.col > 0 && e->loc.file && strcmp(e->loc.file, path) == 0) {
                    want[w].seen = matched = true;
                }
            }
            if (!matched) { /* no error beyond the expected ones: nothing cascades */
                fprintf(stderr, "\n%s: unexpected error %u:%u: %s\n", files[i], e->loc.line, e->loc.col, e->message);
                ok = false;
            }
        }
        for (size_t w = 0; w < n_want; ++w) {
            if (!want[w].seen) {
                fprintf(stderr, "\n%s:%u: expected error \"%s\" not reported\n", files[i], want[w].line,
                        want[w].text);
                ok = false;
            }
        }
        if (!ok)
            print_diag(&d);
        CU_ASSERT(ok);
        kiln_graph_destroy(g);
        kiln_diag_release(&d);
        free(files[i]);
    }
}

/* ---- main --------------------------------------------------------------- */

static void remove_tmpdir(void)
{
    DIR *dp = opendir(tmpdir);
    if (dp) {
        struct dirent *de;
        while ((de = readdir(dp)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char path[600];
            snprintf(path, sizeof path, "%s/%s", tmpdir, de->d_name);
            unlink(path);
        }
        closedir(dp);
    }
    rmdir(tmpdir);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kiln_test_frontend_XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("frontend", NULL, NULL);
    if (s == NULL || !CU_add_test(s, "all ops", test_all_ops) || !CU_add_test(s, "ops 1.1", test_ops_v11) ||
        !CU_add_test(s, "forms", test_forms) ||
        !CU_add_test(s, "blocks", test_blocks) || !CU_add_test(s, "block substitution", test_block_substitution) || !CU_add_test(s, "block errors", test_block_errors) ||
        !CU_add_test(s, "block explosion", test_block_explosion) ||
        !CU_add_test(s, "weights and constant", test_weights_and_constant) ||
        !CU_add_test(s, "random ranges", test_random_ranges) ||
        !CU_add_test(s, "constant not random", test_constant_random_refused) ||
        !CU_add_test(s, "scalars and names", test_scalars) || !CU_add_test(s, "too big", test_too_big) ||
        !CU_add_test(s, "max elements", test_max_elements) ||
        !CU_add_test(s, "allocation failures", test_alloc_failures) || !CU_add_test(s, "kir", test_kir) ||
        !CU_add_test(s, "examples", test_examples) || !CU_add_test(s, "golden errors", test_golden_errors)) {
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    remove_tmpdir();
    return failed ? 1 : 0;
}
