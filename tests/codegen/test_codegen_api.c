/* tests/codegen/test_codegen_api.c: the generated API and the emitted files.
 *
 *   - bad arguments give statuses (never a crash); workspace rules;
 *   - the model info matches the model; workspace sizes and overflow;
 *   - two instances in two threads give identical results;
 *   - external weights: mapped, checked (missing, corrupt, truncated);
 *   - every --emit kind; only the model's symbols exported; a second
 *     machine-code emission refused; AArch64 (NEON) and AVX-512 code;
 *   - the header compiles as C99 -pedantic and as C++;
 *   - two models compiled to objects (one through a static archive) linked
 *     into one C program with libkiln_rt, run in two threads each, checked
 *     against the interpreter; a shared library loaded with dlopen. */
#define _GNU_SOURCE
#include <CUnit/Basic.h>
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cg_util.h"
#include "compiler/interp/interp.h"
#include "compiler/target/target.h"

#ifndef KILN_RT_LIBDIR
#error "KILN_RT_LIBDIR must name the directory of libkiln_rt"
#endif
/* The compilers kiln was built with, and its sanitizer flags (a sanitized
 * libkiln_rt needs a program built the same way). */
#ifndef KILN_TEST_CC
#define KILN_TEST_CC "cc"
#endif
#ifndef KILN_TEST_CXX
#define KILN_TEST_CXX "c++"
#endif
#ifndef KILN_TEST_CFLAGS
#define KILN_TEST_CFLAGS ""
#endif

#define B (-1)

static char tmpdir[256];

static void path_in_tmp(char *buf, size_t size, const char *name)
{
    int n = snprintf(buf, size, "%s/%s", tmpdir, name);
    if (n < 0 || (size_t)n >= size)
        fprintf(stderr, "path too long: %s/%s\n", tmpdir, name);
}

/* A small model: conv -> relu -> pool -> dense -> softmax, with a second
 * output (the pooled features). `name` prefixes its symbols. */
static kiln_graph *small_model(const char *name, bool batched, uint64_t salt)
{
    kiln_graph *g = tg_new(name);
    char wname[64];
    kiln_id x = tg_input(g, "image", TG_DIMS(batched ? B : 1, 2, 9, 10));
    snprintf(wname, sizeof wname, "c.weight%llu", (unsigned long long)salt);
    kiln_id in[3] = {x, tg_param(g, wname, TG_DIMS(5, 2, 3, 3), -0.5, 0.5), tg_param(g, "c.bias", TG_DIMS(5), -0.1, 0.1)};
    kiln_id c = tg_node(g, KILN_OP_CONV2D, in, 3, "conv");
    kiln_node_set_int(tg_last(g), KILN_ATTR_FILTERS, 5);
    kiln_node_set_ints(tg_last(g), KILN_ATTR_KERNEL, (const int64_t[]){3, 3}, 2);
    kiln_node_set_ints(tg_last(g), KILN_ATTR_PADDING, (const int64_t[]){1, 1, 1, 1}, 4);
    tg_finish(g);
    kiln_id r = tg_node(g, KILN_OP_RELU, &c, 1, "relu");
    tg_finish(g);
    kiln_id p = tg_node(g, KILN_OP_MAXPOOL2D, &r, 1, "pool.out");
    kiln_node_set_ints(tg_last(g), KILN_ATTR_KERNEL, (const int64_t[]){2, 2}, 2);
    tg_finish(g);
    kiln_id f = tg_node(g, KILN_OP_FLATTEN, &p, 1, "flat");
    tg_finish(g);
    kiln_id din[3] = {f, tg_param(g, "fc.weight", TG_DIMS(7, 100), -0.3, 0.3), tg_param(g, "fc.bias", TG_DIMS(7), -0.1, 0.1)};
    kiln_id d = tg_node(g, KILN_OP_DENSE, din, 3, "fc");
    kiln_node_set_int(tg_last(g), KILN_ATTR_UNITS, 7);
    tg_finish(g);
    kiln_id s = tg_node(g, KILN_OP_SOFTMAX, &d, 1, "probs");
    kiln_node_set_int(tg_last(g), KILN_ATTR_AXIS, 1);
    tg_finish(g);
    tg_output(g, s);
    tg_output(g, p);
    g->description = kiln_arena_strdup(&g->arena, "A test model: conv, pool, dense. Tricky */ text ?" "?/ here");
    return g;
}

typedef struct jitted {
    kiln_cg_module *m;
    kiln_cg_jit *j;
    kiln_cg_entry e;
} jitted;

static bool jit_open(jitted *t, const kiln_graph *g, const kiln_cg_options *opt)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_cg_options o = KILN_CG_OPTIONS_INIT;
    if (opt)
        o = *opt;
    o.jit = true;
    t->m = NULL;
    t->j = NULL;
    bool ok = kiln_cg_compile(g, &o, &t->m, &d) == KILN_OK && kiln_cg_jit_create(t->m, &t->j, &d) == KILN_OK &&
              kiln_cg_jit_entry(t->j, &t->e, &d) == KILN_OK;
    if (!ok)
        kiln_diag_print(&d, stderr);
    kiln_diag_release(&d);
    return ok;
}

static void jit_close(jitted *t)
{
    kiln_cg_jit_destroy(t->j);
    kiln_cg_module_destroy(t->m);
}

/* ---- bad arguments and workspace rules -------------------------------------------- */

/* An application's parallel_for: every task on the calling thread, last
 * index first; counts the kernels it ran. */
static kiln_status backwards_parallel_for(void *arg, int64_t count, kiln_rt_task_fn task, void *ctx)
{
    ++*(int *)arg;
    for (int64_t i = count - 1; i >= 0; i--)
        task(ctx, i, count);
    return KILN_OK;
}

static void test_bad_arguments(void)
{
    kiln_graph *g = small_model("api", true, 0);
    jitted t;
    CU_ASSERT_FATAL(jit_open(&t, g, NULL));
    float in[3 * 180], out0[3 * 7], out1[3 * 100];
    tg_fill(in, 3 * 180, 5, -1, 1);
    const float *ins[1] = {in};
    float *outs[2] = {out0, out1};
    float *bad_outs[2] = {out0, NULL};
    const float *bad_ins[1] = {NULL};
    void *m = NULL;

    CU_ASSERT_EQUAL(t.e.create(NULL, NULL), KILN_ERR_INVALID_ARGUMENT);
    kiln_options o = KILN_OPTIONS_INIT;
    o.num_threads = -1;
    CU_ASSERT_EQUAL(t.e.create(&m, &o), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_EQUAL(t.e.create(&m, NULL), KILN_OK);
    CU_ASSERT_EQUAL(t.e.run_array(NULL, 1, ins, outs), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(t.e.run_array(m, 0, ins, outs), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(t.e.run_array(m, -5, ins, outs), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(t.e.run_array(m, INT64_MAX, ins, outs), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(t.e.run_array(m, 1, bad_ins, outs), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(t.e.run_array(m, 1, ins, bad_outs), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(t.e.run_array(m, 1, NULL, outs), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(t.e.run_array(m, 1, ins, NULL), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(t.e.run_array(m, 3, ins, outs), KILN_OK);
    CU_ASSERT_STRING_EQUAL(t.e.last_error(m), "");
    /* Each failure leaves its message on the instance. */
    CU_ASSERT_EQUAL(t.e.run_array(m, 0, ins, outs), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_STRING_EQUAL(t.e.last_error(m), "batch 0: the batch must be at least 1");
    CU_ASSERT_EQUAL(t.e.run_array(m, 1, ins, bad_outs), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_STRING_EQUAL(t.e.last_error(m), "output 1 'pool.out' is NULL");
    CU_ASSERT_EQUAL(t.e.run_array(m, INT64_MAX, ins, outs), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT(strstr(t.e.last_error(m), "too large") != NULL);
    CU_ASSERT(strlen(t.e.last_error(NULL)) > 0);
    /* The checked run: sizes in bytes; batch 3 of [batch,5,4,5] is 300 floats. */
    size_t in_bytes[1] = {sizeof in}, out_bytes[2] = {sizeof out0, sizeof out1};
    CU_ASSERT_EQUAL(t.e.run_checked_array(m, 3, ins, in_bytes, outs, out_bytes), KILN_OK);
    out_bytes[1] = 3 * 100 * sizeof(float) - 1;
    CU_ASSERT_EQUAL(t.e.run_checked_array(m, 3, ins, in_bytes, outs, out_bytes), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_STRING_EQUAL(t.e.last_error(m), "output 1 'pool.out' is 1199 bytes; batch 3 of [batch,5,4,5] needs 1200 (300 floats)");
    CU_ASSERT_EQUAL(t.e.run_checked_array(m, 2, ins, in_bytes, outs, out_bytes), KILN_OK);
    in_bytes[0] = 180 * sizeof(float);
    CU_ASSERT_EQUAL(t.e.run_checked_array(m, 2, ins, in_bytes, outs, out_bytes), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT(strstr(t.e.last_error(m), "input 0 'image' is 720 bytes; batch 2") != NULL);
    t.e.destroy(m);
    t.e.destroy(NULL);
    /* create's reason, through the options. */
    char why[200];
    o.num_threads = 0;
    o.error = why;
    o.error_size = sizeof why;
    kiln_rt_pool *shared = NULL;
    CU_ASSERT_EQUAL_FATAL(kiln_rt_pool_create(2, &shared), KILN_OK);
    o.pool = shared;
    o.num_threads = 3;
    CU_ASSERT_EQUAL(t.e.create(&m, &o), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT(strstr(why, "num_threads is 3 with a shared pool") != NULL);
    o.num_threads = 0;
    /* Two instances on the shared pool give the own pool's results. */
    void *m2 = NULL;
    float r0[3 * 7], r1[3 * 100];
    float *routs[2] = {r0, r1};
    CU_ASSERT_EQUAL_FATAL(t.e.create(&m, &o), KILN_OK);
    CU_ASSERT_EQUAL_FATAL(t.e.create(&m2, &o), KILN_OK);
    CU_ASSERT_EQUAL(t.e.run_array(m, 3, ins, outs), KILN_OK);
    CU_ASSERT_EQUAL(t.e.run_array(m2, 3, ins, routs), KILN_OK);
    CU_ASSERT(memcmp(out0, r0, sizeof r0) == 0 && memcmp(out1, r1, sizeof r1) == 0);
    t.e.destroy(m);
    t.e.destroy(m2);
    kiln_rt_pool_destroy(shared);
    o.pool = NULL;
    /* The application's threads: every kernel goes through its callback. */
    int jobs = 0;
    o.parallel_for = backwards_parallel_for;
    o.parallel_for_arg = &jobs;
    CU_ASSERT_EQUAL_FATAL(t.e.create(&m, &o), KILN_OK);
    memset(r0, 0, sizeof r0);
    memset(r1, 0, sizeof r1);
    CU_ASSERT_EQUAL(t.e.run_array(m, 3, ins, routs), KILN_OK);
    CU_ASSERT(memcmp(out0, r0, sizeof r0) == 0 && memcmp(out1, r1, sizeof r1) == 0);
    CU_ASSERT_EQUAL((size_t)jobs, kiln_cg_step_count(t.m));
    t.e.destroy(m);
    o.parallel_for = NULL;
    o.parallel_for_arg = NULL;
    o.error = NULL;
    o.error_size = 0;

    /* Workspace sizes and the caller's workspace. */
    size_t fixed, per, wbytes;
    kiln_cg_footprint(t.m, &fixed, &per, &wbytes);
    CU_ASSERT_EQUAL(t.e.workspace_size(1), fixed + per);
    CU_ASSERT_EQUAL(t.e.workspace_size(3), fixed + 3 * per);
    CU_ASSERT_EQUAL(t.e.workspace_size(0), 0);
    CU_ASSERT_EQUAL(t.e.workspace_size(INT64_MAX), SIZE_MAX);
    CU_ASSERT(per > 0);
    size_t need = t.e.workspace_size(2);
    unsigned char *raw = kiln_rt_aligned_alloc(need + 64);
    o.num_threads = 1;
    o.workspace = raw + 4; /* misaligned */
    o.workspace_size = need;
    CU_ASSERT_EQUAL(t.e.create(&m, &o), KILN_ERR_WORKSPACE);
    o.workspace = raw;
    o.workspace_size = t.e.workspace_size(1) - 1; /* too small for batch 1 */
    CU_ASSERT_EQUAL(t.e.create(&m, &o), KILN_ERR_WORKSPACE);
    o.workspace_size = need;
    CU_ASSERT_EQUAL_FATAL(t.e.create(&m, &o), KILN_OK);
    float ref0[3 * 7];
    CU_ASSERT_EQUAL(t.e.run_array(m, 2, ins, outs), KILN_OK);
    memcpy(ref0, out0, 2 * 7 * sizeof(float));
    CU_ASSERT_EQUAL(t.e.run_array(m, 3, ins, outs), KILN_ERR_WORKSPACE); /* too small for batch 3 */
    t.e.destroy(m);
    /* The same results with the instance's own workspace. */
    CU_ASSERT_EQUAL(t.e.create(&m, NULL), KILN_OK);
    CU_ASSERT_EQUAL(t.e.run_array(m, 2, ins, outs), KILN_OK);
    CU_ASSERT(memcmp(ref0, out0, 2 * 7 * sizeof(float)) == 0);
    t.e.destroy(m);
    kiln_rt_aligned_free(raw);

    /* Model info. */
    const kiln_model_info *info = t.e.info();
    CU_ASSERT_STRING_EQUAL(info->name, "api");
    CU_ASSERT(strstr(info->description, "Tricky */ text") != NULL);
    CU_ASSERT_EQUAL(info->num_inputs, 1);
    CU_ASSERT_EQUAL(info->num_outputs, 2);
    CU_ASSERT_STRING_EQUAL(info->inputs[0].name, "image");
    CU_ASSERT_EQUAL(info->inputs[0].rank, 4);
    CU_ASSERT_EQUAL(info->inputs[0].dims[0], -1);
    CU_ASSERT_EQUAL(info->inputs[0].dims[3], 10);
    CU_ASSERT_EQUAL(info->inputs[0].dtype, KILN_DTYPE_F32);
    CU_ASSERT_STRING_EQUAL(info->outputs[1].name, "pool.out");
    CU_ASSERT_STRING_EQUAL(info->outputs[1].c_name, "pool_out");
    CU_ASSERT_EQUAL(info->outputs[1].dims[1], 5);
    CU_ASSERT_EQUAL(info->weight_bytes, wbytes);
    CU_ASSERT_EQUAL(info->workspace_fixed_bytes, fixed);
    CU_ASSERT_EQUAL(info->workspace_per_batch_bytes, per);
    jit_close(&t);
    kiln_graph_destroy(g);

    /* The layers as compiled, in order, with the precision each computes in:
     * here the dense layer asks for bf16. */
    g = small_model("layers", true, 0);
    for (size_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == KILN_OP_DENSE)
            g->nodes[i].precision = KILN_PREC_BF16;
    CU_ASSERT_FATAL(jit_open(&t, g, NULL));
    info = t.e.info();
    CU_ASSERT_EQUAL_FATAL(info->num_layers, 6);
    const char *const layer_names[6] = {"conv", "relu", "pool.out", "flat", "fc", "probs"};
    const char *const layer_ops[6] = {"conv2d", "relu", "maxpool2d", "flatten", "dense", "softmax"};
    for (int i = 0; i < 6; i++) {
        CU_ASSERT_STRING_EQUAL(info->layers[i].name, layer_names[i]);
        CU_ASSERT_STRING_EQUAL(info->layers[i].op, layer_ops[i]);
        CU_ASSERT_STRING_EQUAL(info->layers[i].precision, i == 4 ? "bf16" : "f32");
    }
    jit_close(&t);
    kiln_graph_destroy(g);

    /* A model with fixed shapes runs with batch 1 only, and says so. */
    g = small_model("fixed", false, 0);
    CU_ASSERT_FATAL(jit_open(&t, g, NULL));
    CU_ASSERT_EQUAL(t.e.create(&m, NULL), KILN_OK);
    CU_ASSERT_EQUAL(t.e.run_array(m, 2, ins, outs), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_STRING_EQUAL(t.e.last_error(m), "batch 2 but model 'fixed' has fixed shapes [1,2,9,10]; run it with batch 1");
    CU_ASSERT_EQUAL(t.e.run_array(m, 1, ins, outs), KILN_OK);
    CU_ASSERT_STRING_EQUAL(t.e.last_error(m), "");
    t.e.destroy(m);
    jit_close(&t);
    kiln_graph_destroy(g);
}

/* ---- compile-time errors ------------------------------------------------------------- */

static void test_compile_errors(void)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_cg_module *m = NULL;
    /* Names that collide in C. */
    kiln_graph *g = tg_new("collide");
    kiln_id a = tg_input(g, "a.b", TG_DIMS(B, 4));
    kiln_id b = tg_input(g, "a_b", TG_DIMS(B, 4));
    kiln_id in[2] = {a, b};
    kiln_id y = tg_node(g, KILN_OP_ADD, in, 2, "y");
    tg_finish(g);
    tg_output(g, y);
    CU_ASSERT_EQUAL(kiln_cg_compile(g, NULL, &m, &d), KILN_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT(d.errors > 0);
    kiln_graph_destroy(g);
    /* A model named like a C keyword. */
    g = tg_new("int");
    a = tg_input(g, "x", TG_DIMS(B, 4));
    y = tg_node(g, KILN_OP_RELU, &a, 1, "y");
    tg_finish(g);
    tg_output(g, y);
    CU_ASSERT_EQUAL(kiln_cg_compile(g, NULL, &m, &d), KILN_ERR_UNSUPPORTED);
    kiln_graph_destroy(g);
    /* Another dtype. */
    g = tg_new("bf");
    a = tg_input(g, "x", TG_DIMS(B, 4));
    y = tg_node(g, KILN_OP_RELU, &a, 1, "y");
    tg_finish(g);
    tg_output(g, y);
    kiln_graph_value(g, y)->type.dtype = KILN_BF16;
    kiln_graph_value(g, a)->type.dtype = KILN_BF16;
    CU_ASSERT_EQUAL(kiln_cg_compile(g, NULL, &m, &d), KILN_ERR_UNSUPPORTED);
    kiln_graph_destroy(g);
    /* A graph that does not verify (no outputs). */
    g = tg_new("broken");
    a = tg_input(g, "x", TG_DIMS(B, 4));
    CU_ASSERT_NOT_EQUAL(kiln_cg_compile(g, NULL, &m, &d), KILN_OK);
    kiln_graph_destroy(g);
    /* An unknown target. */
    g = small_model("tgt", true, 0);
    kiln_cg_options o = KILN_CG_OPTIONS_INIT;
    o.triple = "nonsense-unknown-none";
    CU_ASSERT_EQUAL(kiln_cg_compile(g, &o, &m, &d), KILN_ERR_UNSUPPORTED);
    /* The JIT wants the host. */
    o.triple = "aarch64-linux-gnu";
    o.jit = true;
    CU_ASSERT_EQUAL(kiln_cg_compile(g, &o, &m, &d), KILN_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(kiln_cg_compile(NULL, NULL, &m, &d), KILN_ERR_INVALID_ARGUMENT);
    kiln_graph_destroy(g);
    kiln_diag_release(&d);
}

/* ---- two instances in two threads ---------------------------------------------------- */

typedef struct worker {
    const kiln_cg_entry *e;
    void *m;
    const float *in;
    float out0[17 * 7], out1[17 * 100];
    const float *expect0;
    int mismatches;
    kiln_status st;
} worker;

static void *work(void *p)
{
    worker *w = p;
    const float *ins[1] = {w->in};
    float *outs[2] = {w->out0, w->out1};
    for (int i = 0; i < 50 && w->st == KILN_OK; i++) {
        w->st = w->e->run_array(w->m, 17, ins, outs);
        if (memcmp(w->out0, w->expect0, sizeof w->out0) != 0)
            w->mismatches++;
    }
    return NULL;
}

static void test_concurrent_instances(void)
{
    kiln_graph *g = small_model("conc", true, 0);
    jitted t;
    CU_ASSERT_FATAL(jit_open(&t, g, NULL));
    static float in[17 * 180], expect0[17 * 7], expect1[17 * 100];
    tg_fill(in, 17 * 180, 9, -1, 1);
    void *m0 = NULL;
    kiln_options o = KILN_OPTIONS_INIT;
    o.num_threads = 1;
    CU_ASSERT_EQUAL_FATAL(t.e.create(&m0, &o), KILN_OK);
    const float *ins[1] = {in};
    float *outs[2] = {expect0, expect1};
    CU_ASSERT_EQUAL(t.e.run_array(m0, 17, ins, outs), KILN_OK);
    t.e.destroy(m0);
    static worker w[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].e = &t.e;
        w[i].in = in;
        w[i].expect0 = expect0;
        o.num_threads = i + 1;
        CU_ASSERT_EQUAL_FATAL(t.e.create(&w[i].m, &o), KILN_OK);
    }
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, work, &w[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(w[i].st, KILN_OK);
        CU_ASSERT_EQUAL(w[i].mismatches, 0);
        CU_ASSERT(memcmp(w[i].out1, expect1, sizeof expect1) == 0);
        t.e.destroy(w[i].m);
    }
    jit_close(&t);
    kiln_graph_destroy(g);
}

/* ---- external weights ------------------------------------------------------------------- */

static void test_external_weights(void)
{
    kiln_graph *g = small_model("ext", true, 0);
    char wpath[512];
    path_in_tmp(wpath, sizeof wpath, "ext.weights");
    jitted emb, ext;
    CU_ASSERT_FATAL(jit_open(&emb, g, NULL));
    kiln_cg_options o = KILN_CG_OPTIONS_INIT;
    o.weights = KILN_CG_WEIGHTS_EXTERNAL;
    o.weights_path = wpath;
    CU_ASSERT_FATAL(jit_open(&ext, g, &o));
    kiln_diag d;
    kiln_diag_init(&d);
    CU_ASSERT_EQUAL(kiln_cg_write_weights(ext.m, wpath, &d), KILN_OK);
    CU_ASSERT_EQUAL(kiln_cg_write_weights(emb.m, wpath, &d), KILN_ERR_INVALID_ARGUMENT); /* embedded */
    kiln_diag_release(&d);

    float in[2 * 180], a0[2 * 7], a1[2 * 100], b0[2 * 7], b1[2 * 100];
    tg_fill(in, 2 * 180, 3, -1, 1);
    const float *ins[1] = {in};
    float *oa[2] = {a0, a1}, *ob[2] = {b0, b1};
    void *m = NULL;
    CU_ASSERT_EQUAL_FATAL(emb.e.create(&m, NULL), KILN_OK);
    CU_ASSERT_EQUAL(emb.e.run_array(m, 2, ins, oa), KILN_OK);
    emb.e.destroy(m);
    CU_ASSERT_EQUAL_FATAL(ext.e.create(&m, NULL), KILN_OK);
    CU_ASSERT_EQUAL(ext.e.run_array(m, 2, ins, ob), KILN_OK);
    ext.e.destroy(m);
    CU_ASSERT(memcmp(a0, b0, sizeof a0) == 0 && memcmp(a1, b1, sizeof a1) == 0);

    /* Another path through the options; then missing, corrupt, truncated. */
    char moved[512];
    path_in_tmp(moved, sizeof moved, "moved.weights");
    CU_ASSERT_EQUAL(rename(wpath, moved), 0);
    CU_ASSERT_EQUAL(ext.e.create(&m, NULL), KILN_ERR_IO);
    CU_ASSERT_PTR_NULL(m);
    kiln_options ko = KILN_OPTIONS_INIT;
    ko.weights_path = moved;
    CU_ASSERT_EQUAL(ext.e.create(&m, &ko), KILN_OK);
    ext.e.destroy(m);
    FILE *f = fopen(moved, "r+b");
    CU_ASSERT_FATAL(f != NULL);
    fseek(f, 100, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 100, SEEK_SET);
    fputc(c ^ 0x40, f);
    fclose(f);
    CU_ASSERT_EQUAL(ext.e.create(&m, &ko), KILN_ERR_WEIGHTS);
    CU_ASSERT_EQUAL(truncate(moved, 64), 0);
    CU_ASSERT_EQUAL(ext.e.create(&m, &ko), KILN_ERR_WEIGHTS);
    remove(moved);
    /* A FIFO as the weights path: refused at once, with the reason (opening
     * it must not wait for a writer; the alarm fails a test that blocks). */
    char fifo[512], why[256] = "";
    path_in_tmp(fifo, sizeof fifo, "fifo.weights");
    CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
    ko.weights_path = fifo;
    ko.error = why;
    ko.error_size = sizeof why;
    alarm(20);
    CU_ASSERT_EQUAL(ext.e.create(&m, &ko), KILN_ERR_IO);
    alarm(0);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT(strstr(why, "FIFO") != NULL);
    remove(fifo);
    jit_close(&emb);
    jit_close(&ext);
    kiln_graph_destroy(g);
}

/* ---- emission ------------------------------------------------------------------------- */

static bool file_starts_with(const char *path, const void *magic, size_t n)
{
    unsigned char buf[64];
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    return got == n && memcmp(buf, magic, n) == 0;
}

static bool file_contains(const char *path, const char *text)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    bool found = false;
    if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = 0;
        found = memmem(buf, (size_t)n, text, strlen(text)) != NULL;
    }
    free(buf);
    fclose(f);
    return found;
}

static kiln_status emit_one(const kiln_graph *g, const kiln_cg_options *o, kiln_cg_emit_kind kind, const char *path)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_cg_module *m = NULL;
    kiln_status st = kiln_cg_compile(g, o, &m, &d);
    if (st == KILN_OK)
        st = kiln_cg_emit(m, kind, path, &d);
    if (st != KILN_OK)
        kiln_diag_print(&d, stderr);
    kiln_diag_release(&d);
    kiln_cg_module_destroy(m);
    return st;
}

/* Every defined global symbol of an object starts with prefix (nm). */
static int exported_symbols_ok(const char *obj, const char *prefix, int *count)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "nm -g --defined-only '%s' 2>/dev/null", obj);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char line[512];
    int ok = 1;
    *count = 0;
    while (fgets(line, sizeof line, p)) {
        char *sym = strrchr(line, ' ');
        if (!sym)
            continue;
        sym++;
        sym[strcspn(sym, "\n")] = 0;
        if (strncmp(sym, prefix, strlen(prefix)) != 0 || sym[strlen(prefix)] != '_')
            ok = 0;
        (*count)++;
    }
    return pclose(p) == 0 ? ok : -1;
}

static void test_emit(void)
{
    kiln_graph *g = small_model("emit", true, 0);
    char path[512];
    kiln_cg_options o = KILN_CG_OPTIONS_INIT;
    path_in_tmp(path, sizeof path, "emit.o");
    CU_ASSERT_EQUAL(emit_one(g, &o, KILN_CG_EMIT_OBJ, path), KILN_OK);
    CU_ASSERT(file_starts_with(path, "\x7f" "ELF", 4));
    int count = 0;
    int ok = exported_symbols_ok(path, "emit", &count);
    if (ok >= 0) {
        CU_ASSERT_EQUAL(ok, 1);
        CU_ASSERT_EQUAL(count, 7); /* create, run, run_checked, last_error, workspace_size, info, destroy */
    }
    path_in_tmp(path, sizeof path, "emit.s");
    CU_ASSERT_EQUAL(emit_one(g, &o, KILN_CG_EMIT_ASM, path), KILN_OK);
    CU_ASSERT(file_contains(path, "emit_run:"));
    path_in_tmp(path, sizeof path, "emit.ll");
    CU_ASSERT_EQUAL(emit_one(g, &o, KILN_CG_EMIT_LLVM, path), KILN_OK);
    CU_ASSERT(file_contains(path, "define i32 @emit_run("));
    path_in_tmp(path, sizeof path, "emit.bc");
    CU_ASSERT_EQUAL(emit_one(g, &o, KILN_CG_EMIT_BC, path), KILN_OK);
    CU_ASSERT(file_starts_with(path, "BC\xc0\xde", 4));
    path_in_tmp(path, sizeof path, "libemit.a");
    CU_ASSERT_EQUAL(emit_one(g, &o, KILN_CG_EMIT_LIB, path), KILN_OK);
    CU_ASSERT(file_starts_with(path, "!<arch>\n/ ", 10));
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "ar t '%s' >/dev/null 2>&1", path);
    if (system("ar --version >/dev/null 2>&1") == 0)
        CU_ASSERT_EQUAL(system(cmd), 0);

    /* A member name longer than 15 characters goes through the // table. */
    kiln_graph *lg = small_model("a_model_with_a_long_name", true, 0);
    path_in_tmp(path, sizeof path, "liblong.a");
    CU_ASSERT_EQUAL(emit_one(lg, &o, KILN_CG_EMIT_LIB, path), KILN_OK);
    CU_ASSERT(file_contains(path, "//              ") && file_contains(path, "a_model_with_a_long_name.o/\n"));
    if (system("ar --version >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd, "ar t '%s' | grep -qx a_model_with_a_long_name.o", path);
        CU_ASSERT_EQUAL(system(cmd), 0);
    }
    if (system("nm --version >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd, "nm -s '%s' | grep -q 'a_model_with_a_long_name_run in a_model_with_a_long_name.o'",
                 path);
        CU_ASSERT_EQUAL(system(cmd), 0);
    }
    kiln_graph_destroy(lg);

    /* Machine code once per module. */
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_cg_module *m = NULL;
    CU_ASSERT_EQUAL_FATAL(kiln_cg_compile(g, &o, &m, &d), KILN_OK);
    path_in_tmp(path, sizeof path, "twice.o");
    CU_ASSERT_EQUAL(kiln_cg_emit(m, KILN_CG_EMIT_OBJ, path, &d), KILN_OK);
    CU_ASSERT_EQUAL(kiln_cg_emit(m, KILN_CG_EMIT_ASM, path, &d), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(kiln_cg_emit(m, KILN_CG_EMIT_OBJ, "/nonexistent-dir/x.o", &d), KILN_ERR_INVALID_ARGUMENT);
    kiln_cg_module_destroy(m);
    m = NULL;
    CU_ASSERT_EQUAL_FATAL(kiln_cg_compile(g, &o, &m, &d), KILN_OK);
    CU_ASSERT_EQUAL(kiln_cg_emit(m, KILN_CG_EMIT_OBJ, "/nonexistent-dir/x.o", &d), KILN_ERR_IO);
    kiln_cg_module_destroy(m);
    kiln_diag_release(&d);

    /* AArch64: an ELF object for EM_AARCH64 (183) and NEON code. */
    kiln_cg_options a64 = KILN_CG_OPTIONS_INIT;
    a64.triple = "aarch64-linux-gnu";
    path_in_tmp(path, sizeof path, "emit_a64.o");
    CU_ASSERT_EQUAL(emit_one(g, &a64, KILN_CG_EMIT_OBJ, path), KILN_OK);
    unsigned char hdr[20];
    FILE *f = fopen(path, "rb");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_EQUAL(fread(hdr, 1, 20, f), 20);
    fclose(f);
    CU_ASSERT(memcmp(hdr, "\x7f" "ELF", 4) == 0 && hdr[4] == 2 /* 64-bit */ && hdr[18] == 183);
    path_in_tmp(path, sizeof path, "emit_a64.s");
    CU_ASSERT_EQUAL(emit_one(g, &a64, KILN_CG_EMIT_ASM, path), KILN_OK);
    CU_ASSERT(file_contains(path, "fmla") && file_contains(path, ".4s"));
    /* AVX-512 when the CPU has it, whatever the host. */
    kiln_cg_options z4 = KILN_CG_OPTIONS_INIT;
    z4.triple = "x86_64-pc-linux-gnu";
    z4.cpu = "znver4";
    path_in_tmp(path, sizeof path, "emit_z4.s");
    CU_ASSERT_EQUAL(emit_one(g, &z4, KILN_CG_EMIT_ASM, path), KILN_OK);
    CU_ASSERT(file_contains(path, "zmm"));
    z4.cpu = "haswell";
    path_in_tmp(path, sizeof path, "emit_hsw.s");
    CU_ASSERT_EQUAL(emit_one(g, &z4, KILN_CG_EMIT_ASM, path), KILN_OK);
    CU_ASSERT(file_contains(path, "ymm") && !file_contains(path, "zmm"));
    z4.cpu = "x86-64"; /* the baseline: SSE2 */
    path_in_tmp(path, sizeof path, "emit_sse.s");
    CU_ASSERT_EQUAL(emit_one(g, &z4, KILN_CG_EMIT_ASM, path), KILN_OK);
    CU_ASSERT(file_contains(path, "xmm") && !file_contains(path, "ymm"));
    kiln_graph_destroy(g);
}

/* NAME_create checks that the running CPU has the extensions the code was
 * generated for. The runtime's check (CPUID, XGETBV) agrees with LLVM's own
 * detection of the host for every extension kiln checks; a model built for
 * an extension this host lacks is refused with KILN_ERR_UNSUPPORTED before
 * any of its code runs. */
static void test_cpu_check(void)
{
    kiln_graph *g = small_model("cpucheck", true, 0);
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_cg_options o = KILN_CG_OPTIONS_INIT;
    kiln_cg_module *m = NULL;
    CU_ASSERT_FATAL(kiln_cg_compile(g, &o, &m, &d) == KILN_OK);
    char host[512];
    snprintf(host, sizeof host, "%s", kiln_cg_required_features(m));
    kiln_cg_module_destroy(m);
    CU_ASSERT(kiln_rt_cpu_check(host, NULL, 0) == KILN_OK);
    const char *lacking = NULL;
    for (const char *const *f = kiln_target_checkable_features(); *f; f++) {
        bool llvm = kiln_target_list_has(host, *f);
        bool rt = kiln_rt_cpu_check(*f, NULL, 0) == KILN_OK;
        if (llvm != rt)
            fprintf(stderr, "  extension %s: LLVM says %s, the runtime says %s\n", *f, llvm ? "yes" : "no",
                    rt ? "yes" : "no");
        CU_ASSERT(llvm == rt);
        if (!rt && !lacking)
            lacking = *f;
    }
    char missing[64];
    CU_ASSERT(kiln_rt_cpu_check("avx2,no-such-extension", missing, sizeof missing) == KILN_ERR_UNSUPPORTED);
    CU_ASSERT(strstr(missing, "no-such-extension") != NULL);
    CU_ASSERT(kiln_rt_cpu_check("", NULL, 0) == KILN_OK && kiln_rt_cpu_check(NULL, NULL, 0) == KILN_OK);
#if defined(__x86_64__)
    if (!lacking) {
        printf("\n  this host has every extension kiln checks: no refusal to test ");
    } else {
        char features[64];
        snprintf(features, sizeof features, "+%s", lacking);
        o.cpu = "x86-64-v2";
        o.features = features;
        o.jit = true;
        kiln_cg_jit *j = NULL;
        kiln_cg_entry e;
        CU_ASSERT_FATAL(kiln_cg_compile(g, &o, &m, &d) == KILN_OK);
        CU_ASSERT(kiln_target_list_has(kiln_cg_required_features(m), lacking));
        CU_ASSERT_FATAL(kiln_cg_jit_create(m, &j, &d) == KILN_OK && kiln_cg_jit_entry(j, &e, &d) == KILN_OK);
        void *inst = (void *)1;
        char why[256] = "";
        kiln_options ko = KILN_OPTIONS_INIT;
        ko.error = why;
        ko.error_size = sizeof why;
        CU_ASSERT(e.create(&inst, &ko) == KILN_ERR_UNSUPPORTED);
        CU_ASSERT(inst == NULL);
        CU_ASSERT(strstr(why, lacking) != NULL && strstr(why, "cpucheck") != NULL);
        printf("\n  a model for +%s is refused on this host ", lacking);
        kiln_cg_jit_destroy(j);
        kiln_cg_module_destroy(m);
    }
#endif
    kiln_diag_release(&d);
    kiln_graph_destroy(g);
}

/* The model as 1 to 4 code generation units: an object that exports what a
 * single module's does and leaves no unit's glue undefined; LLVM IR and
 * assembly joined into one module again. (test_aot runs them.) */
static void test_units(void)
{
    kiln_graph *g = small_model("units", true, 0);
    kiln_cg_options o = KILN_CG_OPTIONS_INIT;
    char path[512], cmd[1200];
    bool have_nm = system("nm --version >/dev/null 2>&1") == 0;
    for (int jobs = 1; jobs <= 4; jobs++) {
        o.jobs = jobs;
        snprintf(cmd, sizeof cmd, "units%d.o", jobs);
        path_in_tmp(path, sizeof path, cmd);
        CU_ASSERT_EQUAL(emit_one(g, &o, KILN_CG_EMIT_OBJ, path), KILN_OK);
        kiln_diag d;
        kiln_diag_init(&d);
        kiln_cg_module *m = NULL;
        CU_ASSERT_EQUAL_FATAL(kiln_cg_compile(g, &o, &m, &d), KILN_OK);
        CU_ASSERT_EQUAL(kiln_cg_emit(m, KILN_CG_EMIT_OBJ, path, &d), KILN_OK);
        kiln_cg_report rep;
        kiln_cg_get_report(m, &rep);
        CU_ASSERT_EQUAL(rep.units, jobs);
        CU_ASSERT(rep.code_bytes > 0 && rep.data_bytes >= rep.weight_bytes);
        kiln_cg_module_destroy(m);
        kiln_diag_release(&d);
        if (!have_nm)
            continue;
        int count = 0;
        CU_ASSERT_EQUAL(exported_symbols_ok(path, "units", &count), 1);
        CU_ASSERT_EQUAL(count, 7);
        /* undefined: the runtime (and libc) only */
        snprintf(cmd, sizeof cmd, "nm -u '%s' | grep -v ' kiln_rt_' | grep -q 'kiln\\.'", path);
        CU_ASSERT_NOT_EQUAL(system(cmd), 0);
        /* the weights: one local object written by elf.c (one unit: LLVM's private, no symbol) */
        snprintf(cmd, sizeof cmd, "nm '%s' | grep -q ' r units.weights$'", path);
        CU_ASSERT_EQUAL(system(cmd) == 0, jobs > 1);
    }
    o.jobs = 3;
    path_in_tmp(path, sizeof path, "units.ll");
    CU_ASSERT_EQUAL(emit_one(g, &o, KILN_CG_EMIT_LLVM, path), KILN_OK);
    CU_ASSERT(file_contains(path, "define private void @kiln.") && !file_contains(path, " hidden ") &&
              file_contains(path, "@units.weights = private unnamed_addr constant"));
    path_in_tmp(path, sizeof path, "units.s");
    CU_ASSERT_EQUAL(emit_one(g, &o, KILN_CG_EMIT_ASM, path), KILN_OK);
    CU_ASSERT(file_contains(path, "units_run:"));
    /* AArch64: merged as well */
    o.triple = "aarch64-linux-gnu";
    path_in_tmp(path, sizeof path, "units_a64.o");
    CU_ASSERT_EQUAL(emit_one(g, &o, KILN_CG_EMIT_OBJ, path), KILN_OK);
    if (have_nm) {
        int count = 0;
        CU_ASSERT_EQUAL(exported_symbols_ok(path, "units", &count), 1);
        CU_ASSERT_EQUAL(count, 7);
    }
    kiln_graph_destroy(g);
}

/* ---- the header, AOT programs, a shared library --------------------------------------- */

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    return rc;
}

static kiln_status compile_to(const kiln_graph *g, kiln_cg_emit_kind kind, const char *out, const char *header,
                              int jobs)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_cg_module *m = NULL;
    kiln_cg_options o = KILN_CG_OPTIONS_INIT;
    o.jobs = jobs;
    o.rt_libdir = KILN_RT_LIBDIR;
    o.rpath = KILN_RT_LIBDIR; /* the shared library finds libkiln_rt.so there when loaded */
    o.cc = KILN_TEST_CC;
    kiln_status st = kiln_cg_compile(g, &o, &m, &d);
    if (st == KILN_OK)
        st = kiln_cg_emit(m, kind, out, &d);
    if (st == KILN_OK && header)
        st = kiln_cg_write_header(m, header, &d);
    if (st != KILN_OK)
        kiln_diag_print(&d, stderr);
    kiln_diag_release(&d);
    kiln_cg_module_destroy(m);
    return st;
}

/* Expected outputs from the interpreter, written as raw floats. */
static bool write_reference(const kiln_graph *g, int64_t batch, const float *in, const char *path)
{
    kiln_interp *it = NULL;
    if (kiln_interp_create(g, batch, NULL, &it) != KILN_OK || kiln_interp_set_input(it, 0, in) != KILN_OK ||
        kiln_interp_run(it, NULL) != KILN_OK) {
        kiln_interp_destroy(it);
        return false;
    }
    FILE *f = fopen(path, "wb");
    for (size_t k = 0; f && k < g->n_outputs; k++) {
        size_t n = 0;
        const double *y = kiln_interp_output(it, k, &n);
        for (size_t i = 0; i < n; i++) {
            float v = (float)y[i];
            fwrite(&v, sizeof v, 1, f);
        }
    }
    bool ok = f && fclose(f) == 0;
    kiln_interp_destroy(it);
    return ok;
}

/* The program: both models, two threads each, checked against the
 * interpreter's outputs (relative error as in cg_util.h). */
static const char app_source[] =
    "#include <math.h>\n#include <pthread.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
    "#include \"alpha.h\"\n#include \"beta.h\"\n"
    "#define BATCH 3\n"
    "static float in[BATCH * alpha_image_ELEMENTS_PER_ITEM];\n"
    "static float ref_a[BATCH * (alpha_probs_ELEMENTS_PER_ITEM + alpha_pool_out_ELEMENTS_PER_ITEM)];\n"
    "static float ref_b[BATCH * (beta_probs_ELEMENTS_PER_ITEM + beta_pool_out_ELEMENTS_PER_ITEM)];\n"
    "static int load(const char *p, float *x, size_t n) { FILE *f = fopen(p, \"rb\"); if (!f) return -1;\n"
    "  size_t got = fread(x, sizeof *x, n, f); fclose(f); return got == n ? 0 : -1; }\n"
    "static int close_to(const float *a, const float *b, size_t n) { double mx = 0;\n"
    "  for (size_t i = 0; i < n; i++) if (fabs(b[i]) > mx) mx = fabs(b[i]);\n"
    "  for (size_t i = 0; i < n; i++) { double s = fabs(b[i]) > 0.01 * mx ? fabs(b[i]) : 0.01 * mx;\n"
    "    if (fabs(a[i] - b[i]) > 1e-4 * s + 1e-30) { fprintf(stderr, \"%zu: %g vs %g\\n\", i, a[i], b[i]); return 0; } }\n"
    "  return 1; }\n"
    "typedef struct job { int which; int ok; } job;\n"
    "static void *work(void *p) { job *j = p; kiln_options o = KILN_OPTIONS_INIT; o.num_threads = 2; j->ok = 1;\n"
    "  float probs[BATCH * 7], pool[BATCH * 100];\n"
    "  if (j->which == 0) { alpha *m; if (alpha_create(&m, &o) != KILN_OK) { j->ok = 0; return NULL; }\n"
    "    for (int i = 0; i < 20; i++) { if (alpha_run(m, BATCH, in, probs, pool) != KILN_OK) j->ok = 0;\n"
    "      if (!close_to(probs, ref_a, BATCH * 7) || !close_to(pool, ref_a + BATCH * 7, BATCH * 100)) j->ok = 0; }\n"
    "    alpha_destroy(m);\n"
    "  } else { beta *m; if (beta_create(&m, NULL) != KILN_OK) { j->ok = 0; return NULL; }\n"
    "    for (int i = 0; i < 20; i++) { if (beta_run(m, BATCH, in, probs, pool) != KILN_OK) j->ok = 0;\n"
    "      if (!close_to(probs, ref_b, BATCH * 7) || !close_to(pool, ref_b + BATCH * 7, BATCH * 100)) j->ok = 0; }\n"
    "    beta_destroy(m); }\n"
    "  return NULL; }\n"
    "int main(int argc, char **argv) { if (argc < 4) return 2;\n"
    "  if (load(argv[1], in, sizeof in / sizeof in[0]) || load(argv[2], ref_a, sizeof ref_a / sizeof ref_a[0])\n"
    "      || load(argv[3], ref_b, sizeof ref_b / sizeof ref_b[0])) return 3;\n"
    "  if (alpha_run(NULL, 1, in, NULL, NULL) != KILN_ERR_INVALID_ARGUMENT) return 4;\n"
    "  if (alpha_workspace_size(2) != alpha_WORKSPACE_FIXED_BYTES + 2 * alpha_WORKSPACE_PER_BATCH_BYTES) return 5;\n"
    "  if (strcmp(beta_info()->name, \"beta\") != 0 || alpha_info()->weight_bytes != alpha_WEIGHT_BYTES) return 6;\n"
    "  { alpha *m; float probs[BATCH * 7], pool[BATCH * 100];\n"
    "    if (alpha_create(&m, NULL) != KILN_OK) return 8;\n"
    "    if (alpha_run_checked(m, BATCH, in, sizeof in, probs, sizeof probs, pool, sizeof pool) != KILN_OK) return 9;\n"
    "    if (alpha_run_checked(m, BATCH, in, sizeof in, probs, sizeof probs - 1, pool, sizeof pool) != KILN_ERR_INVALID_ARGUMENT\n"
    "        || strstr(alpha_last_error(m), \"output 0 'probs'\") == NULL) return 10;\n"
    "    if (strcmp(kiln_version(), KILN_VERSION_STRING) != 0 || alpha_NEEDS_BLAS != 0) return 11;\n"
    "    alpha_destroy(m); }\n"
    "  job jobs[4] = {{0, 0}, {1, 0}, {0, 0}, {1, 0}}; pthread_t t[4];\n"
    "  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, work, &jobs[i]);\n"
    "  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);\n"
    "  for (int i = 0; i < 4; i++) if (!jobs[i].ok) return 7;\n"
    "  puts(\"ok\"); return 0; }\n";

static void test_aot(void)
{
    if (system(KILN_TEST_CC " --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "no C compiler (cc): AOT test skipped\n");
        return;
    }
    kiln_graph *ga = small_model("alpha", true, 1), *gb = small_model("beta", true, 2);
    char oa[512], ha[512], lb[512], hb[512], app[512], exe[512], inp[512], ra[512], rb[512], so[512];
    path_in_tmp(oa, sizeof oa, "alpha.o");
    path_in_tmp(ha, sizeof ha, "alpha.h");
    path_in_tmp(lb, sizeof lb, "libbeta.a");
    path_in_tmp(hb, sizeof hb, "beta.h");
    path_in_tmp(app, sizeof app, "app.c");
    path_in_tmp(exe, sizeof exe, "app");
    path_in_tmp(inp, sizeof inp, "in.bin");
    path_in_tmp(ra, sizeof ra, "ref_alpha.bin");
    path_in_tmp(rb, sizeof rb, "ref_beta.bin");
    path_in_tmp(so, sizeof so, "libalpha.so");
    CU_ASSERT_EQUAL_FATAL(compile_to(ga, KILN_CG_EMIT_OBJ, oa, ha, 0), KILN_OK);
    CU_ASSERT_EQUAL_FATAL(compile_to(gb, KILN_CG_EMIT_LIB, lb, hb, 1), KILN_OK);

    /* The header alone: C99 -pedantic and C++. */
    CU_ASSERT_EQUAL(run("cd '%s' && echo '#include \"alpha.h\"' | " KILN_TEST_CC " -std=c99 -pedantic -Wall -Wextra -Werror "
                        "-fsyntax-only -I'%s/runtime/include' -x c -",
                        tmpdir, KILN_SOURCE_DIR),
                    0);
    if (system(KILN_TEST_CXX " --version >/dev/null 2>&1") == 0)
        CU_ASSERT_EQUAL(run("cd '%s' && echo '#include \"alpha.h\"\n#include \"beta.h\"' | " KILN_TEST_CXX " -std=c++11 -Wall -Wextra "
                            "-pedantic -Werror -fsyntax-only -I'%s/runtime/include' -x c++ -",
                            tmpdir, KILN_SOURCE_DIR),
                        0);

    float in[3 * 180];
    tg_fill(in, 3 * 180, 77, -1, 1);
    FILE *f = fopen(inp, "wb");
    CU_ASSERT_FATAL(f != NULL);
    fwrite(in, sizeof in, 1, f);
    fclose(f);
    CU_ASSERT_FATAL(write_reference(ga, 3, in, ra) && write_reference(gb, 3, in, rb));
    f = fopen(app, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs(app_source, f);
    fclose(f);
    CU_ASSERT_EQUAL_FATAL(run(KILN_TEST_CC " " KILN_TEST_CFLAGS " -std=c99 -Wall -Werror -o '%s' '%s' -I'%s' -I'%s/runtime/include' '%s' '%s' "
                              "-L'%s' -Wl,-rpath,'%s' -lkiln_rt -lpthread -lm",
                              exe, app, tmpdir, KILN_SOURCE_DIR, oa, lb, KILN_RT_LIBDIR, KILN_RT_LIBDIR),
                          0);
    CU_ASSERT_EQUAL(run("'%s' '%s' '%s' '%s' >/dev/null", exe, inp, ra, rb), 0);

    /* A shared library of alpha, loaded at run time: as one code generation
     * unit, two (the default) and four. */
    kiln_graph_destroy(ga);
    ga = small_model("alpha", true, 1);
    float ref[3 * 107];
    f = fopen(ra, "rb");
    CU_ASSERT_FATAL(f && fread(ref, sizeof ref, 1, f) == 1);
    fclose(f);
    for (int jobs = 1; jobs <= 4; jobs *= 2) {
        char name[64];
        snprintf(name, sizeof name, "libalpha%d.so", jobs);
        path_in_tmp(so, sizeof so, name);
        CU_ASSERT_EQUAL_FATAL(compile_to(ga, KILN_CG_EMIT_SO, so, NULL, jobs), KILN_OK);
        void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
        CU_ASSERT_FATAL(h != NULL);
        const kiln_model_info *(*info)(void) = (const kiln_model_info *(*)(void))dlsym(h, "alpha_info");
        kiln_status (*create)(void **, const kiln_options *) =
            (kiln_status(*)(void **, const kiln_options *))dlsym(h, "alpha_create");
        kiln_status (*runf)(void *, int64_t, const float *, float *, float *) =
            (kiln_status(*)(void *, int64_t, const float *, float *, float *))dlsym(h, "alpha_run");
        void (*destroy)(void *) = (void (*)(void *))dlsym(h, "alpha_destroy");
        CU_ASSERT_FATAL(info && create && runf && destroy);
        CU_ASSERT_STRING_EQUAL(info()->name, "alpha");
        void *m = NULL;
        float probs[3 * 7], pool[3 * 100];
        CU_ASSERT_EQUAL_FATAL(create(&m, NULL), KILN_OK);
        CU_ASSERT_EQUAL(runf(m, 3, in, probs, pool), KILN_OK);
        destroy(m);
        for (int i = 0; i < 21; i++)
            CU_ASSERT(fabs(probs[i] - ref[i]) <= 1e-4 * fmax(fabs(ref[i]), 0.01));
        for (int i = 0; i < 300; i++)
            CU_ASSERT(fabs(pool[i] - ref[21 + i]) <= 1e-4 * fmax(fabs(ref[21 + i]), 0.01));
        dlclose(h);
    }
    kiln_graph_destroy(ga);
    kiln_graph_destroy(gb);
}

static int suite_init(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/kiln-cg-test-XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int suite_clean(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite s = CU_add_suite("codegen_api", suite_init, suite_clean);
    CU_add_test(s, "bad arguments", test_bad_arguments);
    CU_add_test(s, "compile errors", test_compile_errors);
    CU_add_test(s, "concurrent instances", test_concurrent_instances);
    CU_add_test(s, "external weights", test_external_weights);
    CU_add_test(s, "emit", test_emit);
    CU_add_test(s, "units", test_units);
    CU_add_test(s, "cpu check", test_cpu_check);
    CU_add_test(s, "aot", test_aot);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
