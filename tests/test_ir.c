/* tests/test_ir.c: the op table, the shape rules, the verifier, graph copies
 * and allocation-failure handling of the IR builder. Links kiln_ir, cunit. */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/convert.h"
#include "ir/graph.h"
#include "ir/liveness.h"

static const kiln_loc here = {"test", 1, 1};

static kiln_type f32(bool batched, int rank, ...)
{
    kiln_type t;
    memset(&t, 0, sizeof t);
    t.dtype = KILN_F32;
    t.shape.rank = rank;
    t.shape.batched = batched;
    va_list ap;
    va_start(ap, rank);
    for (int i = 0; i < rank; i++)
        t.shape.dims[i] = va_arg(ap, int);
    va_end(ap);
    if (batched)
        t.shape.dims[0] = KILN_DIM_BATCH;
    return t;
}

static kiln_id param(kiln_graph *g, const char *name, kiln_type t)
{
    kiln_param p = {.source = KILN_PARAM_RANDOM, .key = name, .seed = 1, .lo = -1, .hi = 1};
    return kiln_graph_add_param(g, name, &t, &p, here);
}

/* Adds a node, applies defaults, runs the shape rule; returns its status and
 * leaves the message in err. */
static kiln_status node(kiln_graph *g, kiln_op op, const kiln_id *in, uint32_t n, const char *name,
                        void (*attrs)(kiln_node *), char *err)
{
    kiln_id id = kiln_graph_add_node(g, op, in, n, name, name, here);
    CU_ASSERT_FATAL(id != KILN_NO_ID);
    if (attrs)
        attrs(kiln_graph_node(g, id));
    kiln_node_apply_defaults(kiln_graph_node(g, id));
    err[0] = '\0';
    return kiln_ir_infer_node(g, id, err, 256);
}

static const kiln_shape *shape_of(kiln_graph *g, const char *name)
{
    return &kiln_graph_value(g, kiln_graph_find_value(g, name))->type.shape;
}

static void test_op_table(void)
{
    for (int i = 0; i < KILN_OP_COUNT; i++) {
        const kiln_op_def *d = kiln_op_get((kiln_op)i);
        CU_ASSERT_PTR_NOT_NULL_FATAL(d->name);
        CU_ASSERT_PTR_NOT_NULL(d->infer);
        kiln_op back;
        CU_ASSERT_EQUAL(kiln_op_lookup(d->name, &back), 0);
        CU_ASSERT_EQUAL((int)back, i);
        for (int k = 0; k < d->n_attrs; k++) {
            const kiln_op_attr *a = &d->attrs[k];
            if (a->use == KILN_USE_DEFAULT) { /* every default converts with the attribute's own type */
                kiln_attr v;
                char err[128];
                CU_ASSERT_EQUAL(kiln_attr_from_text(a->id, a->default_text, 2, &v, err, sizeof err), 0);
            }
        }
    }
    kiln_op op;
    CU_ASSERT_NOT_EQUAL(kiln_op_lookup("conv3d", &op), 0);
    CU_ASSERT_EQUAL(kiln_op_param_index(KILN_OP_BATCHNORM, "running_var"), 3);
    CU_ASSERT_EQUAL(kiln_op_param_index(KILN_OP_DENSE, "gamma"), -1);
    CU_ASSERT_PTR_NOT_NULL(kiln_op_find_attr(KILN_OP_MAXPOOL2D, KILN_ATTR_CEIL_MODE));
    CU_ASSERT_PTR_NULL(kiln_op_find_attr(KILN_OP_RELU, KILN_ATTR_AXIS));
}

static void test_scalars(void)
{
    int64_t i;
    double f;
    bool b;
    CU_ASSERT_EQUAL(kiln_parse_int("-42", &i), 0);
    CU_ASSERT_EQUAL(i, -42);
    CU_ASSERT_NOT_EQUAL(kiln_parse_int("4.0", &i), 0);
    CU_ASSERT_NOT_EQUAL(kiln_parse_int("0x10", &i), 0);
    CU_ASSERT_NOT_EQUAL(kiln_parse_int("99999999999999999999", &i), 0);
    CU_ASSERT_NOT_EQUAL(kiln_parse_int("", &i), 0);
    CU_ASSERT_EQUAL(kiln_parse_float("1e-3", &f), 0);
    CU_ASSERT_DOUBLE_EQUAL(f, 1e-3, 0);
    CU_ASSERT_EQUAL(kiln_parse_float("3", &f), 0);
    CU_ASSERT_NOT_EQUAL(kiln_parse_float("inf", &f), 0);
    CU_ASSERT_NOT_EQUAL(kiln_parse_float("nan", &f), 0);
    CU_ASSERT_NOT_EQUAL(kiln_parse_float("1e999", &f), 0);
    CU_ASSERT_NOT_EQUAL(kiln_parse_float("0x1p3", &f), 0);
    CU_ASSERT_EQUAL(kiln_parse_bool("true", &b), 0);
    CU_ASSERT_NOT_EQUAL(kiln_parse_bool("yes", &b), 0);
    kiln_attr a;
    char err[128];
    CU_ASSERT_EQUAL(kiln_attr_from_text(KILN_ATTR_PADDING, "3", 4, &a, err, sizeof err), 0);
    CU_ASSERT_EQUAL(a.n, 4);
    CU_ASSERT_EQUAL(a.ints[3], 3);
    CU_ASSERT_EQUAL(kiln_attr_from_text(KILN_ATTR_STRIDE, "[1, 2]", 2, &a, err, sizeof err), 0);
    CU_ASSERT_EQUAL(a.n, 2);
    CU_ASSERT_EQUAL(a.ints[1], 2);
    CU_ASSERT_NOT_EQUAL(kiln_attr_from_text(KILN_ATTR_GROUPS, "1.5", 0, &a, err, sizeof err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "'groups' expects an integer"));
    CU_ASSERT_EQUAL(kiln_attr_from_text(KILN_ATTR_APPROXIMATE, "tanh", 0, &a, err, sizeof err), 0);
    CU_ASSERT_EQUAL(a.i, 1);
    CU_ASSERT_NOT_EQUAL(kiln_attr_from_text(KILN_ATTR_APPROXIMATE, "fast", 0, &a, err, sizeof err), 0);
}

static void conv_attrs(kiln_node *n)
{
    kiln_node_set_int(n, KILN_ATTR_FILTERS, 8);
    int64_t k[2] = {3, 3}, s[2] = {2, 2}, p[4] = {1, 1, 1, 1};
    kiln_node_set_ints(n, KILN_ATTR_KERNEL, k, 2);
    kiln_node_set_ints(n, KILN_ATTR_STRIDE, s, 2);
    kiln_node_set_ints(n, KILN_ATTR_PADDING, p, 4);
}

static void big_kernel(kiln_node *n)
{
    kiln_node_set_int(n, KILN_ATTR_FILTERS, 8);
    int64_t k[2] = {9, 9};
    kiln_node_set_ints(n, KILN_ATTR_KERNEL, k, 2);
}

static void test_conv_shapes(void)
{
    kiln_graph *g = kiln_graph_create("t");
    g->batch_name = "batch";
    kiln_type xt = f32(true, 4, 0, 3, 7, 7);
    kiln_id x = kiln_graph_add_input(g, "x", &xt, here);
    kiln_id in[3] = {x, param(g, "w", f32(false, 4, 8, 3, 3, 3)), param(g, "b", f32(false, 1, 8))};
    char err[256];
    CU_ASSERT_EQUAL(node(g, KILN_OP_CONV2D, in, 3, "c", conv_attrs, err), KILN_OK);
    const kiln_shape *s = shape_of(g, "c");
    CU_ASSERT(s->batched && s->rank == 4 && s->dims[1] == 8 && s->dims[2] == 4 && s->dims[3] == 4);
    /* a kernel larger than the padded input */
    kiln_id in2[2] = {x, param(g, "w9", f32(false, 4, 8, 3, 9, 9))};
    CU_ASSERT_EQUAL(node(g, KILN_OP_CONV2D, in2, 2, "c9", big_kernel, err), KILN_ERR_SHAPE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "larger than the padded input"));
    /* a mis-shaped weight names both shapes */
    kiln_id in3[2] = {x, param(g, "wbad", f32(false, 4, 8, 4, 3, 3))};
    CU_ASSERT_EQUAL(node(g, KILN_OP_CONV2D, in3, 2, "cbad", conv_attrs, err), KILN_ERR_SHAPE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "[8,3,3,3]"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "[8,4,3,3]"));
    kiln_graph_destroy(g);
}

static void pool_ceil(kiln_node *n)
{
    int64_t k[2] = {3, 3}, s[2] = {2, 2}, p[4] = {1, 1, 1, 1};
    kiln_node_set_ints(n, KILN_ATTR_KERNEL, k, 2);
    kiln_node_set_ints(n, KILN_ATTR_STRIDE, s, 2);
    kiln_node_set_ints(n, KILN_ATTR_PADDING, p, 4);
    kiln_node_set_bool(n, KILN_ATTR_CEIL_MODE, true);
}

static void pool_2(kiln_node *n)
{
    int64_t k[2] = {2, 2};
    kiln_node_set_ints(n, KILN_ATTR_KERNEL, k, 2);
}

static void test_pool_shapes(void)
{
    kiln_graph *g = kiln_graph_create("t");
    g->batch_name = "batch";
    kiln_type xt = f32(true, 4, 0, 2, 6, 6);
    kiln_id x = kiln_graph_add_input(g, "x", &xt, here);
    char err[256];
    /* PyTorch: MaxPool2d(3, 2, 1, ceil_mode=True) on 6x6 gives 4x4, not 5x5:
     * the last window would start in the right padding. */
    CU_ASSERT_EQUAL(node(g, KILN_OP_MAXPOOL2D, &x, 1, "p", pool_ceil, err), KILN_OK);
    CU_ASSERT_EQUAL(shape_of(g, "p")->dims[2], 4);
    /* stride defaults to the kernel */
    CU_ASSERT_EQUAL(node(g, KILN_OP_AVGPOOL2D, &x, 1, "a", pool_2, err), KILN_OK);
    kiln_node *a = kiln_graph_node(g, kiln_graph_value(g, kiln_graph_find_value(g, "a"))->producer);
    CU_ASSERT_EQUAL(a->attrs[KILN_ATTR_STRIDE].ints[0], 2);
    CU_ASSERT_EQUAL(shape_of(g, "a")->dims[3], 3);
    kiln_graph_destroy(g);
}

static void test_broadcast_and_batch(void)
{
    kiln_graph *g = kiln_graph_create("t");
    g->batch_name = "batch";
    kiln_type xt = f32(true, 4, 0, 3, 1, 5), yt = f32(false, 2, 4, 1), zt = f32(false, 2, 4, 5);
    kiln_id in[2] = {kiln_graph_add_input(g, "x", &xt, here), kiln_graph_add_input(g, "y", &yt, here)};
    char err[256];
    CU_ASSERT_EQUAL(node(g, KILN_OP_ADD, in, 2, "s", NULL, err), KILN_OK);
    const kiln_shape *s = shape_of(g, "s");
    CU_ASSERT(s->batched && s->rank == 4 && s->dims[1] == 3 && s->dims[2] == 4 && s->dims[3] == 5);
    /* a batched rank-2 value meeting a fixed rank-3 one would move the batch */
    kiln_type bt = f32(true, 2, 0, 5), ct = f32(false, 3, 2, 1, 5);
    kiln_id in2[2] = {kiln_graph_add_input(g, "b", &bt, here), kiln_graph_add_input(g, "c", &ct, here)};
    CU_ASSERT_EQUAL(node(g, KILN_OP_MUL, in2, 2, "m", NULL, err), KILN_ERR_SHAPE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "batch"));
    kiln_id in3[2] = {in[1], kiln_graph_add_input(g, "z", &zt, here)};
    kiln_type wt = f32(false, 2, 3, 5);
    kiln_id in4[2] = {in3[1], kiln_graph_add_input(g, "w", &wt, here)};
    CU_ASSERT_EQUAL(node(g, KILN_OP_SUB, in3, 2, "ok", NULL, err), KILN_OK);
    CU_ASSERT_EQUAL(node(g, KILN_OP_SUB, in4, 2, "bad", NULL, err), KILN_ERR_SHAPE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "dimension 0 is 4 vs 3"));
    kiln_graph_destroy(g);
}

static void tb(kiln_node *n) { kiln_node_set_bool(n, KILN_ATTR_TRANSPOSE_B, true); }

static void test_matmul_shapes(void)
{
    kiln_graph *g = kiln_graph_create("t");
    g->batch_name = "batch";
    kiln_type q = f32(true, 4, 0, 4, 16, 8), k = f32(true, 4, 0, 4, 16, 8), v = f32(false, 1, 8),
              w = f32(false, 3, 2, 8, 3), r = f32(true, 2, 0, 8);
    kiln_id in[2] = {kiln_graph_add_input(g, "q", &q, here), kiln_graph_add_input(g, "k", &k, here)};
    char err[256];
    CU_ASSERT_EQUAL(node(g, KILN_OP_MATMUL, in, 2, "att", tb, err), KILN_OK);
    const kiln_shape *s = shape_of(g, "att");
    CU_ASSERT(s->batched && s->rank == 4 && s->dims[2] == 16 && s->dims[3] == 16);
    kiln_id in2[2] = {in[0], kiln_graph_add_input(g, "v", &v, here)}; /* [b,4,16,8] @ [8] -> [b,4,16] */
    CU_ASSERT_EQUAL(node(g, KILN_OP_MATMUL, in2, 2, "mv", NULL, err), KILN_OK);
    CU_ASSERT_EQUAL(shape_of(g, "mv")->rank, 3);
    kiln_id in3[2] = {kiln_graph_add_input(g, "r", &r, here), kiln_graph_add_input(g, "w", &w, here)};
    CU_ASSERT_EQUAL(node(g, KILN_OP_MATMUL, in3, 2, "moved", NULL, err), KILN_ERR_SHAPE);
    kiln_id in4[2] = {in[0], in[1]}; /* [..,16,8] @ [..,16,8] without transpose: 8 vs 16 */
    CU_ASSERT_EQUAL(node(g, KILN_OP_MATMUL, in4, 2, "bad", NULL, err), KILN_ERR_SHAPE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "inner dimensions 8 and 16"));
    kiln_graph_destroy(g);
}

static void flat0(kiln_node *n) { kiln_node_set_int(n, KILN_ATTR_AXIS, 0); }
static void reshape_ok(kiln_node *n)
{
    int64_t s[3] = {0, 6, 4};
    kiln_node_set_ints(n, KILN_ATTR_SHAPE, s, 3);
}
static void reshape_bad(kiln_node *n)
{
    int64_t s[2] = {0, 5};
    kiln_node_set_ints(n, KILN_ATTR_SHAPE, s, 2);
}
static void perm_bad(kiln_node *n)
{
    int64_t p[3] = {1, 0, 2};
    kiln_node_set_ints(n, KILN_ATTR_PERM, p, 3);
}
static void mean_12(kiln_node *n)
{
    int64_t a[2] = {1, 2};
    kiln_node_set_ints(n, KILN_ATTR_AXES, a, 2);
    kiln_node_set_bool(n, KILN_ATTR_KEEPDIMS, false);
}
static void axis1(kiln_node *n) { kiln_node_set_int(n, KILN_ATTR_AXIS, 1); }

static void test_shape_ops(void)
{
    kiln_graph *g = kiln_graph_create("t");
    g->batch_name = "batch";
    kiln_type xt = f32(true, 3, 0, 4, 6), yt = f32(true, 3, 0, 2, 6), zt = f32(true, 3, 0, 2, 5);
    kiln_id x = kiln_graph_add_input(g, "x", &xt, here);
    kiln_id y = kiln_graph_add_input(g, "y", &yt, here);
    kiln_id z = kiln_graph_add_input(g, "z", &zt, here);
    char err[256];
    CU_ASSERT_EQUAL(node(g, KILN_OP_FLATTEN, &x, 1, "f0", flat0, err), KILN_ERR_SHAPE);
    CU_ASSERT_EQUAL(node(g, KILN_OP_FLATTEN, &x, 1, "f1", NULL, err), KILN_OK);
    CU_ASSERT_EQUAL(shape_of(g, "f1")->dims[1], 24);
    CU_ASSERT_EQUAL(node(g, KILN_OP_RESHAPE, &x, 1, "r", reshape_ok, err), KILN_OK);
    CU_ASSERT_EQUAL(node(g, KILN_OP_RESHAPE, &x, 1, "rbad", reshape_bad, err), KILN_ERR_SHAPE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "24 elements"));
    CU_ASSERT_EQUAL(node(g, KILN_OP_TRANSPOSE, &x, 1, "tbad", perm_bad, err), KILN_ERR_SHAPE);
    CU_ASSERT_EQUAL(node(g, KILN_OP_MEAN, &x, 1, "m", mean_12, err), KILN_OK);
    CU_ASSERT_EQUAL(shape_of(g, "m")->rank, 1);
    kiln_id cin[2] = {x, y}, cbad[2] = {x, z};
    CU_ASSERT_EQUAL(node(g, KILN_OP_CONCAT, cin, 2, "c", axis1, err), KILN_OK);
    CU_ASSERT_EQUAL(shape_of(g, "c")->dims[1], 6);
    CU_ASSERT_EQUAL(node(g, KILN_OP_CONCAT, cbad, 2, "cbad", axis1, err), KILN_ERR_SHAPE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "input 2"));
    /* arity: add with no second operand and no scalar */
    CU_ASSERT_EQUAL(node(g, KILN_OP_ADD, &x, 1, "half", NULL, err), KILN_ERR_SHAPE);
    /* the default axis (-1) and negative perm entries are stored counted from the front */
    CU_ASSERT_EQUAL(node(g, KILN_OP_SOFTMAX, &x, 1, "sm", NULL, err), KILN_OK);
    kiln_node *sm = kiln_graph_node(g, kiln_graph_value(g, kiln_graph_find_value(g, "sm"))->producer);
    CU_ASSERT_EQUAL(sm->attrs[KILN_ATTR_AXIS].i, 2);
    /* clip needs a bound */
    CU_ASSERT_EQUAL(node(g, KILN_OP_CLIP, &x, 1, "clip", NULL, err), KILN_ERR_SHAPE);
    kiln_graph_destroy(g);
}

static void units10(kiln_node *n) { kiln_node_set_int(n, KILN_ATTR_UNITS, 10); }

static kiln_graph *small_mlp(void)
{
    kiln_graph *g = kiln_graph_create("mlp");
    g->batch_name = "batch";
    kiln_type xt = f32(true, 2, 0, 4);
    kiln_id x = kiln_graph_add_input(g, "x", &xt, here);
    kiln_id in[3] = {x, param(g, "fc.weight", f32(false, 2, 10, 4)), param(g, "fc.bias", f32(false, 1, 10))};
    char err[256];
    CU_ASSERT_EQUAL(node(g, KILN_OP_DENSE, in, 3, "fc", units10, err), KILN_OK);
    kiln_id fc = kiln_graph_find_value(g, "fc");
    CU_ASSERT_EQUAL(node(g, KILN_OP_RELU, &fc, 1, "act", NULL, err), KILN_OK);
    kiln_graph_add_output(g, kiln_graph_find_value(g, "act"));
    return g;
}

static void test_verify(void)
{
    kiln_graph *g = small_mlp();
    kiln_diag d;
    kiln_diag_init(&d);
    CU_ASSERT_EQUAL(kiln_ir_verify(g, &d), KILN_OK);
    CU_ASSERT_EQUAL(d.count, 0);
    /* break invariants one at a time: each must be reported */
    g->values[kiln_graph_find_value(g, "act")].type.shape.dims[1] = 11;
    CU_ASSERT_NOT_EQUAL(kiln_ir_verify(g, &d), KILN_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(d.entries[d.count - 1].message, "shape rule gives"));
    g->values[kiln_graph_find_value(g, "act")].type.shape.dims[1] = 10;
    kiln_node *relu = &g->nodes[1];
    relu->inputs[0] = 999;
    size_t before = d.errors;
    CU_ASSERT_NOT_EQUAL(kiln_ir_verify(g, &d), KILN_OK);
    CU_ASSERT(d.errors > before);
    relu->inputs[0] = relu->output; /* a node reading its own output is not topological */
    before = d.errors;
    CU_ASSERT_NOT_EQUAL(kiln_ir_verify(g, &d), KILN_OK);
    CU_ASSERT(d.errors > before);
    kiln_diag_release(&d);
    kiln_graph_destroy(g);
}

/* ---- blocked layouts: storage sizes and conversions ---------------------- */

static kiln_type blocked(kiln_type t, int block)
{
    t.layout = KILN_LAYOUT_NCHWXC;
    t.block = block;
    return t;
}

static void test_layout_storage(void)
{
    kiln_type p = f32(true, 4, 0, 5, 3, 2);
    CU_ASSERT_EQUAL(kiln_type_storage_elements_per_item(&p), 30);
    CU_ASSERT_EQUAL(kiln_type_storage_elements(&p, 3), 90);
    kiln_type b8 = blocked(p, 8), b5 = blocked(p, 5), b1 = blocked(p, 1), b4 = blocked(p, 4);
    CU_ASSERT_EQUAL(kiln_type_storage_elements_per_item(&b8), 8 * 6);  /* 5 channels padded to 8 */
    CU_ASSERT_EQUAL(kiln_type_storage_elements_per_item(&b5), 30);     /* a whole block: no padding */
    CU_ASSERT_EQUAL(kiln_type_storage_elements_per_item(&b1), 30);
    CU_ASSERT_EQUAL(kiln_type_storage_elements_per_item(&b4), 8 * 6);  /* two blocks of 4 */
    CU_ASSERT_EQUAL(kiln_type_storage_elements(&b8, 2), 96);
    CU_ASSERT_EQUAL(kiln_type_storage_elements(&b8, -1), -1);
    kiln_type u = blocked(f32(false, 4, 2, 9, 1, 1), 8); /* unbatched: N counts */
    CU_ASSERT_EQUAL(kiln_type_storage_elements_per_item(&u), 2 * 16);
    CU_ASSERT_EQUAL(kiln_type_storage_elements(&u, 7), 32);
    /* not a valid blocked type: no count */
    kiln_type r3 = blocked(f32(true, 3, 0, 5, 3), 8), b0 = blocked(p, 0);
    CU_ASSERT_EQUAL(kiln_type_storage_elements_per_item(&r3), -1);
    CU_ASSERT_EQUAL(kiln_type_storage_elements_per_item(&b0), -1);
    /* overflow */
    kiln_type big = blocked(f32(false, 4, 2147483647, 2147483647, 2147483647, 2147483647), 64);
    CU_ASSERT_EQUAL(kiln_type_storage_elements_per_item(&big), -1);
    /* the memory plan counts the padding */
    kiln_graph *g = kiln_graph_create("g");
    CU_ASSERT_FATAL(g != NULL);
    kiln_id x = kiln_graph_add_input(g, "x", &b8, here);
    CU_ASSERT_EQUAL(kiln_value_bytes(g, x), 48 * 4);
    kiln_graph_destroy(g);
}

static void test_layout_convert(void)
{
    /* sizes around the block: C = B-1, B, B+1, 2B, for blocks 1, 4, 8 */
    static const int blocks[] = {1, 4, 8};
    for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
        int B = blocks[bi];
        int cs[] = {B > 1 ? B - 1 : 1, B, B + 1, 2 * B};
        for (size_t ci = 0; ci < 4; ci++) {
            int C = cs[ci], H = 3, W = 2, N = 2;
            kiln_type t = blocked(f32(true, 4, 0, C, H, W), B);
            size_t plain_n = (size_t)(N * C * H * W);
            int64_t stored = kiln_type_storage_elements(&t, N);
            CU_ASSERT_FATAL(stored >= (int64_t)plain_n);
            float *plain = malloc(plain_n * sizeof *plain), *back = malloc(plain_n * sizeof *back);
            float *blk = malloc((size_t)stored * sizeof *blk);
            CU_ASSERT_FATAL(plain && back && blk);
            for (size_t i = 0; i < plain_n; i++)
                plain[i] = (float)i + 0.5f;
            for (int64_t i = 0; i < stored; i++)
                blk[i] = -99.0f; /* must all be overwritten */
            kiln_layout_from_plain(&t, N, plain, blk);
            int CB = (C + B - 1) / B;
            for (int n = 0; n < N; n++)
                for (int c = 0; c < CB * B; c++)
                    for (int h = 0; h < H; h++)
                        for (int w = 0; w < W; w++) {
                            /* the formula of ir/type.h */
                            size_t at = ((size_t)((n * CB + c / B) * H * W + h * W + w)) * (size_t)B + (size_t)(c % B);
                            float want = c < C ? plain[((n * C + c) * H + h) * W + w] : 0.0f;
                            if (blk[at] != want) {
                                CU_FAIL("kiln_layout_from_plain: wrong element");
                                fprintf(stderr, "\nB=%d C=%d (n,c,h,w)=(%d,%d,%d,%d): %g, want %g\n", B, C, n, c, h, w,
                                        (double)blk[at], (double)want);
                                n = N, c = CB * B, h = H, w = W; /* report once */
                            }
                        }
            /* padding lanes are ignored on the way back */
            for (int64_t i = 0; i < stored; i++)
                if ((i % B) >= C - (i / (B * H * W) % CB) * B)
                    blk[i] = 1e30f;
            kiln_layout_to_plain(&t, N, blk, back);
            CU_ASSERT(memcmp(back, plain, plain_n * sizeof *plain) == 0);
            free(plain);
            free(back);
            free(blk);
        }
    }
    /* plain: a copy */
    kiln_type p = f32(false, 2, 2, 3);
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {0};
    kiln_layout_to_plain(&p, 1, a, b);
    CU_ASSERT(memcmp(a, b, sizeof a) == 0);
    memset(b, 0, sizeof b);
    kiln_layout_from_plain(&p, 1, a, b);
    CU_ASSERT(memcmp(a, b, sizeof a) == 0);
    /* an invalid type writes nothing */
    kiln_type bad = blocked(f32(false, 2, 2, 3), 8);
    memset(b, 0, sizeof b);
    kiln_layout_to_plain(&bad, 1, a, b);
    kiln_layout_from_plain(&bad, 1, a, b);
    CU_ASSERT(b[0] == 0 && b[5] == 0);
}

/* The verifier's layout rules, on a graph edited behind the reader's back:
 * each broken rule is reported once, naming the value or node. */
static const char *verify_message(const kiln_graph *g)
{
    static char all[2048]; /* every message, each ending in "; " */
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_status st = kiln_ir_verify(g, &d);
    size_t w = 0;
    all[0] = 0;
    for (size_t i = 0; i < d.count && w < sizeof all; i++)
        w += (size_t)snprintf(all + w, sizeof all - w, "%s; ", d.entries[i].message);
    if (st != KILN_OK && d.count == 0)
        snprintf(all, sizeof all, "failed without a message");
    kiln_diag_release(&d);
    return all;
}

static void set_layout(kiln_graph *g, const char *name, int block)
{
    kiln_type *t = &g->values[kiln_graph_find_value(g, name)].type;
    t->layout = block ? KILN_LAYOUT_NCHWXC : KILN_LAYOUT_PLAIN;
    t->block = block;
}

static void pool_2x2(kiln_node *n) { kiln_node_set_ints(n, KILN_ATTR_KERNEL, (int64_t[]){2, 2}, 2); }
static void conv_dw(kiln_node *n)
{
    kiln_node_set_int(n, KILN_ATTR_FILTERS, 12);
    kiln_node_set_ints(n, KILN_ATTR_KERNEL, (int64_t[]){3, 3}, 2);
    kiln_node_set_ints(n, KILN_ATTR_PADDING, (int64_t[]){1, 1, 1, 1}, 4);
    kiln_node_set_int(n, KILN_ATTR_GROUPS, 12);
}
static void scalar_2(kiln_node *n) { kiln_node_set_float(n, KILN_ATTR_SCALAR, 2.0); }

#define EXPECT_VERIFY(g, needle)                                                                      \
    do {                                                                                              \
        const char *m_ = verify_message(g);                                                           \
        if ((needle)[0] ? !strstr(m_, needle) : m_[0] != 0)                                           \
            fprintf(stderr, "\n  line %d: verify said '%s', expected '%s'\n", __LINE__, m_, needle); \
        CU_ASSERT((needle)[0] ? strstr(m_, needle) != NULL : m_[0] == 0);                            \
    } while (0)

static void test_verify_layouts(void)
{
    /* x -> dw conv -> relu -> mul(scalar) -> add(relu, mul) -> maxpool -> gap -> flatten;
     * x -> reorder (any to any) */
    kiln_graph *g = kiln_graph_create("lay");
    CU_ASSERT_FATAL(g != NULL);
    g->batch_name = "batch";
    char err[256];
    kiln_type xt = f32(true, 4, 0, 12, 8, 8);
    kiln_id x = kiln_graph_add_input(g, "x", &xt, here);
    kiln_id w = param(g, "w", f32(false, 4, 12, 1, 3, 3));
    CU_ASSERT_EQUAL(node(g, KILN_OP_CONV2D, (kiln_id[]){x, w}, 2, "dw", conv_dw, err), KILN_OK);
    kiln_id dw = kiln_graph_find_value(g, "dw");
    CU_ASSERT_EQUAL(node(g, KILN_OP_RELU, &dw, 1, "r", NULL, err), KILN_OK);
    kiln_id r = kiln_graph_find_value(g, "r");
    CU_ASSERT_EQUAL(node(g, KILN_OP_MUL, &r, 1, "m", scalar_2, err), KILN_OK);
    kiln_id m = kiln_graph_find_value(g, "m");
    CU_ASSERT_EQUAL(node(g, KILN_OP_ADD, (kiln_id[]){r, m}, 2, "a", NULL, err), KILN_OK);
    kiln_id a = kiln_graph_find_value(g, "a");
    CU_ASSERT_EQUAL(node(g, KILN_OP_MAXPOOL2D, &a, 1, "p", pool_2x2, err), KILN_OK);
    kiln_id pv = kiln_graph_find_value(g, "p");
    CU_ASSERT_EQUAL(node(g, KILN_OP_GLOBAL_AVGPOOL, &pv, 1, "gap", NULL, err), KILN_OK);
    kiln_id gap = kiln_graph_find_value(g, "gap");
    CU_ASSERT_EQUAL(node(g, KILN_OP_FLATTEN, &gap, 1, "flat", NULL, err), KILN_OK);
    CU_ASSERT_EQUAL(node(g, KILN_OP_REORDER, &x, 1, "xr", NULL, err), KILN_OK);
    CU_ASSERT_EQUAL(kiln_graph_add_output(g, kiln_graph_find_value(g, "flat")), KILN_OK);
    EXPECT_VERIFY(g, "");
    /* the blocked region dw .. p, as the layout pass would make it */
    static const char *const region[] = {"dw", "r", "m", "a", "p"};
    for (size_t i = 0; i < 5; i++)
        set_layout(g, region[i], 8);
    EXPECT_VERIFY(g, "");
    set_layout(g, "xr", 16); /* reorder: any to any */
    EXPECT_VERIFY(g, "");
    /* conv2d: any layout in and out (the kernel reads plain x as block 1) */
    set_layout(g, "dw", 0);
    EXPECT_VERIFY(g, "relu keeps its operands' layout, but operand 'dw' is plain and the output nchw8c");
    set_layout(g, "dw", 8);
    /* elementwise: one layout, operands and output */
    set_layout(g, "m", 16);
    EXPECT_VERIFY(g, "mul keeps its operands' layout, but operand 'r' is nchw8c and the output nchw16c; "
                     "IR node 3 (add, layer 'a'): add keeps its operands' layout, but operand 'm' is nchw16c");
    set_layout(g, "m", 8);
    set_layout(g, "a", 0);
    EXPECT_VERIFY(g, "add keeps its operands' layout, but operand 'r' is nchw8c and the output plain; "
                     "IR node 4 (maxpool2d, layer 'p'): maxpool2d keeps its operands' layout, but operand 'a' is "
                     "plain and the output nchw8c; ");
    set_layout(g, "a", 8);
    set_layout(g, "p", 4);
    EXPECT_VERIFY(g, "maxpool2d keeps its operands' layout, but operand 'a' is nchw8c and the output nchw4c");
    set_layout(g, "p", 8);
    /* global_avgpool: any in, plain out */
    set_layout(g, "gap", 8); /* ... and flatten reads plain only */
    EXPECT_VERIFY(g, "IR node 5 (global_avgpool, layer 'gap'): global_avgpool reads any layout but writes a plain "
                     "output, not nchw8c; IR node 6 (flatten, layer 'flat'): flatten reads the plain layout only, "
                     "but operand 'gap' is nchw8c (a reorder must convert it); ");
    set_layout(g, "gap", 0);
    EXPECT_VERIFY(g, "");
    /* types: block range, rank, dtype, plain with a block */
    set_layout(g, "xr", 65);
    EXPECT_VERIFY(g, "IR value 'xr': channel block 65 is outside 1..64");
    set_layout(g, "xr", 0);
    kiln_graph_value(g, kiln_graph_find_value(g, "xr"))->type.block = 8;
    EXPECT_VERIFY(g, "IR value 'xr': a plain type has channel block 8 (0 expected)");
    set_layout(g, "xr", 8);
    kiln_graph_value(g, kiln_graph_find_value(g, "xr"))->type.dtype = KILN_BF16;
    EXPECT_VERIFY(g, "IR value 'xr': a blocked value must be f32, not bf16");
    kiln_graph_value(g, kiln_graph_find_value(g, "xr"))->type.dtype = KILN_F32;
    kiln_graph_value(g, kiln_graph_find_value(g, "xr"))->type.layout = (kiln_layout)7;
    EXPECT_VERIFY(g, "IR value 'xr': unknown layout 7");
    set_layout(g, "xr", 8);
    EXPECT_VERIFY(g, "");
    /* inputs, params and model outputs are plain */
    kiln_graph_value(g, x)->type.layout = KILN_LAYOUT_NCHWXC;
    kiln_graph_value(g, x)->type.block = 8;
    EXPECT_VERIFY(g, "IR input 'x' is blocked (nchw8c): model inputs and params are plain");
    kiln_graph_value(g, x)->type = xt;
    kiln_type wt = kiln_graph_value(g, w)->type;
    kiln_graph_value(g, w)->type.layout = KILN_LAYOUT_NCHWXC;
    kiln_graph_value(g, w)->type.block = 8;
    EXPECT_VERIFY(g, "IR parameter 'w' is blocked (nchw8c): model inputs and params are plain");
    kiln_graph_value(g, w)->type = wt;
    CU_ASSERT_EQUAL(kiln_graph_add_output(g, a), KILN_OK);
    EXPECT_VERIFY(g, "IR graph output 'a' is blocked (nchw8c): model outputs are plain");
    g->n_outputs--;
    EXPECT_VERIFY(g, "");
    kiln_graph_destroy(g);

    /* a binary op on blocked values does not broadcast */
    g = kiln_graph_create("bcast");
    CU_ASSERT_FATAL(g != NULL);
    g->batch_name = "batch";
    x = kiln_graph_add_input(g, "x", &xt, here);
    CU_ASSERT_EQUAL(node(g, KILN_OP_REORDER, &x, 1, "x8", NULL, err), KILN_OK);
    kiln_id x8 = kiln_graph_find_value(g, "x8");
    CU_ASSERT_EQUAL(node(g, KILN_OP_GLOBAL_AVGPOOL, &x8, 1, "g", NULL, err), KILN_OK);
    kiln_id gv = kiln_graph_find_value(g, "g");
    CU_ASSERT_EQUAL(node(g, KILN_OP_REORDER, &gv, 1, "g8", NULL, err), KILN_OK);
    kiln_id g8 = kiln_graph_find_value(g, "g8");
    CU_ASSERT_EQUAL(node(g, KILN_OP_ADD, (kiln_id[]){x8, g8}, 2, "s", NULL, err), KILN_OK);
    kiln_id sv = kiln_graph_find_value(g, "s");
    CU_ASSERT_EQUAL(node(g, KILN_OP_REORDER, &sv, 1, "out", NULL, err), KILN_OK);
    CU_ASSERT_EQUAL(kiln_graph_add_output(g, kiln_graph_find_value(g, "out")), KILN_OK);
    EXPECT_VERIFY(g, ""); /* plain broadcasting is fine */
    set_layout(g, "x8", 8);
    set_layout(g, "g8", 8);
    set_layout(g, "s", 8);
    EXPECT_VERIFY(g, "add on blocked values does not broadcast: operand 'g8' is [batch,12,1,1], the output "
                     "[batch,12,8,8]");
    kiln_graph_destroy(g);
}

static void test_clone_and_lookup(void)
{
    kiln_graph *g = small_mlp();
    kiln_graph *c = kiln_graph_clone(g);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->n_nodes, g->n_nodes);
    CU_ASSERT_EQUAL(kiln_graph_find_value(c, "fc.bias"), kiln_graph_find_value(g, "fc.bias"));
    c->nodes[0].inputs[0] = 1; /* editing the copy leaves the original alone */
    CU_ASSERT_EQUAL(g->nodes[0].inputs[0], kiln_graph_find_value(g, "x"));
    /* names are unique */
    kiln_type t = f32(false, 1, 3);
    CU_ASSERT_EQUAL(kiln_graph_add_input(g, "fc", &t, here), KILN_NO_ID);
    /* many values: the name index grows */
    char name[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "v%d", i);
        CU_ASSERT_FATAL(param(g, name, t) != KILN_NO_ID);
    }
    CU_ASSERT_STRING_EQUAL(kiln_graph_value(g, kiln_graph_find_value(g, "v1234"))->name, "v1234");
    kiln_graph_destroy(c);
    kiln_graph_destroy(g);
}

static void test_alloc_failures(void)
{
    /* Every allocation of building a graph may fail: the builder reports it
     * and destroying the partial graph leaks nothing (run under ASan/LSan). */
    for (long n = 1; n < 200; n++) {
        kiln_alloc_fail_after(n, 1);
        kiln_graph *g = kiln_graph_create("t");
        if (g) {
            kiln_type t = f32(false, 2, 3, 4);
            kiln_id x = kiln_graph_add_input(g, "x", &t, here);
            for (int i = 0; x != KILN_NO_ID && i < 40; i++) {
                char name[16];
                snprintf(name, sizeof name, "r%d", i);
                kiln_id id = kiln_graph_add_node(g, KILN_OP_RELU, &x, 1, name, name, here);
                if (id == KILN_NO_ID)
                    break;
            }
        }
        kiln_alloc_fail_after(0, 0);
        kiln_graph_destroy(g);
    }
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_alloc_fail_after(1, 1);
    kiln_diag_error(&d, here, "lost");
    kiln_alloc_fail_after(0, 0);
    CU_ASSERT(kiln_diag_has_errors(&d));
    kiln_diag_release(&d);
}

/* A message is never cut at a fixed size: long words lose their middle,
 * the words around them stay (a 3000-byte name cannot push the reason
 * out), and a cut never splits a UTF-8 character. */
static void test_diag_long_messages(void)
{
    static char name[3001];
    memset(name, 'a', 3000);
    for (int i = 0; i + 1 < 3000; i += 7)
        memcpy(name + i, "\xc3\xa9", 2); /* e-acute, now and then */
    name[3000] = '\0';
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_loc here = {"m.yaml", 3, 5};
    kiln_diag_error(&d, here, "layer '%s' reads '%s', which is not defined before it", name, name);
    kiln_diag_error(&d, here, "short: %s", "kept as it is");
    CU_ASSERT_EQUAL_FATAL(d.count, 2);
    const char *m = d.entries[0].message;
    size_t len = strlen(m);
    CU_ASSERT(len <= KILN_DIAG_MAX_MESSAGE);
    CU_ASSERT(len > KILN_DIAG_MAX_MESSAGE / 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "which is not defined before it"));
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "..."));
    CU_ASSERT(strncmp(m, "layer '\xc3\xa9" "aaaaa", 14) == 0); /* the start of the name stays */
    /* every byte sequence is still valid UTF-8 */
    bool valid = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)m[i];
        if (c >= 0x80) {
            if (c != 0xc3 || i + 1 >= len || ((unsigned char)m[i + 1] & 0xc0) != 0x80)
                valid = false;
            i++;
        }
    }
    CU_ASSERT(valid);
    CU_ASSERT_STRING_EQUAL(d.entries[1].message, "short: kept as it is");
    /* many short words: the middle of the whole message goes */
    static char words[4 * 5000 + 1];
    for (int i = 0; i < 5000; i++)
        memcpy(words + 4 * i, "abc ", 4);
    words[4 * 5000] = '\0';
    kiln_diag_error(&d, here, "%send of the reason", words);
    CU_ASSERT_EQUAL_FATAL(d.count, 3);
    CU_ASSERT(strlen(d.entries[2].message) <= KILN_DIAG_MAX_MESSAGE_HARD);
    CU_ASSERT_PTR_NOT_NULL(strstr(d.entries[2].message, "end of the reason"));
    kiln_diag_release(&d);
}

static void test_params(void)
{
    float a[6], b[6];
    kiln_param_random(7, "w", -0.5, 0.5, a, 6);
    kiln_param_random(7, "w", -0.5, 0.5, b, 6);
    CU_ASSERT_EQUAL(memcmp(a, b, sizeof a), 0);
    kiln_param_random(8, "w", -0.5, 0.5, b, 6);
    CU_ASSERT_NOT_EQUAL(memcmp(a, b, sizeof a), 0);
    for (int i = 0; i < 6; i++)
        CU_ASSERT(a[i] >= -0.5f && a[i] <= 0.5f);
    /* inline f64 data reads back through both conversions */
    kiln_graph *g = kiln_graph_create("p");
    static const double data[3] = {1.5, -2.25, 1e-3};
    kiln_type t = f32(false, 1, 3);
    kiln_param p = {.source = KILN_PARAM_INLINE, .data_dtype = KILN_F64, .data = data};
    kiln_id id = kiln_graph_add_param(g, "c", &t, &p, here);
    double d[3];
    float f[3];
    CU_ASSERT_EQUAL(kiln_param_read_f64(g, id, d), KILN_OK);
    CU_ASSERT_EQUAL(kiln_param_read_f32(g, id, f), KILN_OK);
    CU_ASSERT_DOUBLE_EQUAL(d[1], -2.25, 0);
    CU_ASSERT_DOUBLE_EQUAL(f[2], 1e-3, 1e-9);
    p.data = NULL;
    kiln_id unbound = kiln_graph_add_param(g, "u", &t, &p, here);
    CU_ASSERT_EQUAL(kiln_param_read_f64(g, unbound, d), KILN_ERR_WEIGHTS);
    kiln_graph_destroy(g);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("ir", NULL, NULL);
    CU_add_test(s, "op table", test_op_table);
    CU_add_test(s, "scalars", test_scalars);
    CU_add_test(s, "conv shapes", test_conv_shapes);
    CU_add_test(s, "pool shapes", test_pool_shapes);
    CU_add_test(s, "broadcast and batch", test_broadcast_and_batch);
    CU_add_test(s, "matmul shapes", test_matmul_shapes);
    CU_add_test(s, "shape ops", test_shape_ops);
    CU_add_test(s, "verify", test_verify);
    CU_add_test(s, "blocked layout: storage sizes", test_layout_storage);
    CU_add_test(s, "blocked layout: verifier rules", test_verify_layouts);
    CU_add_test(s, "blocked layout: conversions", test_layout_convert);
    CU_add_test(s, "clone and lookup", test_clone_and_lookup);
    CU_add_test(s, "allocation failures", test_alloc_failures);
    CU_add_test(s, "params", test_params);
    CU_add_test(s, "diagnostics: long messages", test_diag_long_messages);
    CU_basic_set_mode(CU_BRM_NORMAL);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
