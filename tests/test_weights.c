/* tests/test_weights.c: binding weights files to graph parameters
 * (compiler/frontend/weights.c).
 * Links: cunit, kiln_frontend, kiln_ir. Exits non-zero on failure. */
#define _POSIX_C_SOURCE 200809L

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compiler/frontend/safetensors.h"
#include "compiler/frontend/weights.h"
#include "ir/arena.h"
#include "ir/graph.h"

static char tmpdir[256];
static char path_a[300], path_b[300], path_bad[300], path_i64[300];

static int write_raw(const char *path, const char *json, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t hlen = strlen(json);
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(json, 1, hlen, f);
    if (n)
        fwrite(data, 1, n, f);
    return fclose(f) == 0 ? 0 : -1;
}

/* a: conv1.weight [6,1,5,5], conv1.bias [6]; b: fc.weight [2,3], conv1.bias [6]
 * (a duplicate key); bad: truncated; i64: an I64 and an F16 tensor. */
static int make_files(void)
{
    snprintf(path_a, sizeof path_a, "%s/a.safetensors", tmpdir);
    snprintf(path_b, sizeof path_b, "%s/b.safetensors", tmpdir);
    snprintf(path_bad, sizeof path_bad, "%s/bad.safetensors", tmpdir);
    snprintf(path_i64, sizeof path_i64, "%s/i64.safetensors", tmpdir);
    float w[150], bias[6], fc[6];
    for (int i = 0; i < 150; i++)
        w[i] = (float)i / 8.0f;
    for (int i = 0; i < 6; i++)
        bias[i] = (float)-i, fc[i] = (float)i * 2.0f;
    const char *na[2] = {"conv1.weight", "conv1.bias"};
    int ra[2] = {4, 1};
    int64_t dw[4] = {6, 1, 5, 5}, db[1] = {6}, dfc[2] = {2, 3};
    const int64_t *da[2] = {dw, db};
    const float *va[2] = {w, bias};
    if (kiln_st_write_f32(path_a, 2, na, ra, da, va) != KILN_OK)
        return -1;
    const char *nb[2] = {"fc.weight", "conv1.bias"};
    int rb[2] = {2, 1};
    const int64_t *dbb[2] = {dfc, db};
    const float *vb[2] = {fc, bias};
    if (kiln_st_write_f32(path_b, 2, nb, rb, dbb, vb) != KILN_OK)
        return -1;
    unsigned char data[8] = {0};
    if (write_raw(path_bad, "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", data, 8) != 0)
        return -1;
    unsigned char d2[12] = {0x39, 0x30, 0, 0, 0, 0, 0, 0, 0x00, 0x3c, 0x00, 0xc0};
    return write_raw(path_i64,
              "{\"bn.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
              "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]},"
              "\"deep\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,0],\"data_offsets\":[12,12]}}",
              d2, 12);
}

static kiln_id add_param(kiln_graph *g, const char *name, const char *key, int file, int rank,
                         const int64_t *dims, uint32_t line)
{
    kiln_type t;
    memset(&t, 0, sizeof t);
    t.dtype = KILN_F32;
    t.shape.rank = rank;
    for (int i = 0; i < rank; i++)
        t.shape.dims[i] = dims[i];
    kiln_param p;
    memset(&p, 0, sizeof p);
    p.source = KILN_PARAM_FILE;
    p.file = (uint32_t)file;
    p.key = key;
    kiln_loc loc = {"model.yaml", line, 5};
    return kiln_graph_add_param(g, name, &t, &p, loc);
}

static const char *message(const kiln_diag *d, size_t i)
{
    return i < d->count ? d->entries[i].message : "(none)";
}

static int has_message(const kiln_diag *d, const char *text)
{
    for (size_t i = 0; i < d->count; i++)
        if (strstr(d->entries[i].message, text))
            return 1;
    fprintf(stderr, "\n  no message contains: %s\n", text);
    for (size_t i = 0; i < d->count; i++)
        fprintf(stderr, "  [%zu] %s\n", i, d->entries[i].message);
    return 0;
}

static void test_bind_ok(void)
{
    kiln_graph *g = kiln_graph_create("t");
    CU_ASSERT_FATAL(g != NULL);
    int fa = kiln_graph_add_weight_file(g, path_a);
    CU_ASSERT_EQUAL(fa, 0);
    int64_t dw[4] = {6, 1, 5, 5}, db[1] = {6};
    kiln_id w = add_param(g, "conv1.weight", "conv1.weight", fa, 4, dw, 3);
    kiln_id b = add_param(g, "conv1.bias", "conv1.bias", fa, 1, db, 4);
    kiln_diag d;
    kiln_diag_init(&d);
    CU_ASSERT_EQUAL(kiln_weights_bind(g, &d), KILN_OK);
    CU_ASSERT_EQUAL(d.count, 0);
    float out[150];
    CU_ASSERT_EQUAL(kiln_param_read_f32(g, w, out), KILN_OK);
    CU_ASSERT(out[0] == 0.0f && out[149] == 149.0f / 8.0f);
    CU_ASSERT_EQUAL(kiln_graph_value(g, w)->param.data_dtype, KILN_F32);
    double outd[6];
    CU_ASSERT_EQUAL(kiln_param_read_f64(g, b, outd), KILN_OK);
    CU_ASSERT(outd[5] == -5.0);

    /* find, file access, idempotent rebind */
    uint32_t fi = 99;
    const kiln_st_tensor *t = kiln_weights_find(g, "conv1.bias", &fi);
    CU_ASSERT(t != NULL && fi == 0);
    CU_ASSERT_PTR_NULL(kiln_weights_find(g, "nope", &fi));
    CU_ASSERT_PTR_NOT_NULL(kiln_weights_file(g, 0));
    CU_ASSERT_PTR_NULL(kiln_weights_file(g, 1));
    CU_ASSERT_EQUAL(kiln_weights_bind_value(g, w, &d), KILN_OK);
    CU_ASSERT_EQUAL(kiln_weights_open(g, &d), KILN_OK);
    kiln_diag_release(&d);
    kiln_graph_destroy(g); /* closes the files: LeakSanitizer checks */
}

static void test_shape_dtype_missing(void)
{
    kiln_graph *g = kiln_graph_create("t");
    int fa = kiln_graph_add_weight_file(g, path_a);
    int fi = kiln_graph_add_weight_file(g, path_i64);
    int64_t dw[4] = {6, 3, 5, 5}, one[1] = {1}, two[2] = {2, 1}, h2[1] = {2}, deep[1] = {1};
    kiln_id w = add_param(g, "conv1.weight", "conv1.weight", fa, 4, dw, 7);
    add_param(g, "fc1.weight", "fc1.weight", fa, 2, two, 8);
    add_param(g, "bn.nbt", "bn.num_batches_tracked", fi, 0, one, 9);
    kiln_id h = add_param(g, "h", "h", fi, 1, h2, 10);
    add_param(g, "deep", "deep", fi, 1, deep, 11);
    add_param(g, "scalar_vs_vec", "conv1.bias", fa, 0, one, 12);
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_status s = kiln_weights_bind(g, &d);
    CU_ASSERT_EQUAL(s, KILN_ERR_WEIGHTS);
    CU_ASSERT_EQUAL(d.errors, 5);
    char want[600];
    snprintf(want, sizeof want, "weights 'conv1.weight' in %s: expected [6,3,5,5], found [6,1,5,5]", path_a);
    CU_ASSERT_STRING_EQUAL(message(&d, 0), want);
    CU_ASSERT_EQUAL(d.entries[0].loc.line, 7); /* at the value */
    CU_ASSERT_STRING_EQUAL(d.entries[0].loc.file, "model.yaml");
    snprintf(want, sizeof want, "weights 'fc1.weight' not found in %s", path_a);
    CU_ASSERT_STRING_EQUAL(message(&d, 1), want);
    CU_ASSERT_EQUAL(d.entries[1].loc.line, 8);
    snprintf(want, sizeof want, "tensor 'bn.num_batches_tracked' in %s has dtype I64; kiln reads F32, F16, BF16, F64",
             path_i64);
    CU_ASSERT_STRING_EQUAL(message(&d, 2), want);
    snprintf(want, sizeof want, "tensor 'deep' in %s has rank 9; kiln reads tensors of rank up to 8", path_i64);
    CU_ASSERT_STRING_EQUAL(message(&d, 3), want);
    snprintf(want, sizeof want, "weights 'conv1.bias' in %s: expected [], found [6]", path_a);
    CU_ASSERT_STRING_EQUAL(message(&d, 4), want);
    CU_ASSERT_PTR_NULL(kiln_graph_value(g, w)->param.data);
    /* the F16 tensor bound fine, unaligned and converted */
    CU_ASSERT_EQUAL(kiln_graph_value(g, h)->param.data_dtype, KILN_F16);
    float out[2];
    CU_ASSERT_EQUAL(kiln_param_read_f32(g, h, out), KILN_OK);
    CU_ASSERT(out[0] == 1.0f && out[1] == -2.0f);
    kiln_diag_release(&d);
    kiln_graph_destroy(g);
}

static void test_two_files(void)
{
    kiln_graph *g = kiln_graph_create("t");
    kiln_graph_add_weight_file(g, path_a);
    kiln_graph_add_weight_file(g, path_b);
    int64_t dfc[2] = {2, 3};
    kiln_id fc = add_param(g, "fc.weight", "fc.weight", (int)KILN_WEIGHTS_ANY_FILE, 2, dfc, 3);
    kiln_diag d;
    kiln_diag_init(&d);
    CU_ASSERT_EQUAL(kiln_weights_open(g, &d), KILN_ERR_WEIGHTS);
    CU_ASSERT_EQUAL(d.errors, 1);
    char want[800];
    snprintf(want, sizeof want, "tensor 'conv1.bias' is in two weights files, %s and %s", path_a, path_b);
    CU_ASSERT_STRING_EQUAL(message(&d, 0), want);
    CU_ASSERT_STRING_EQUAL(d.entries[0].loc.file, path_b);
    /* reported once; the search binds the key from the file that has it */
    CU_ASSERT_EQUAL(kiln_weights_open(g, &d), KILN_ERR_WEIGHTS);
    CU_ASSERT_EQUAL(kiln_weights_bind_value(g, fc, &d), KILN_OK);
    CU_ASSERT_EQUAL(d.errors, 1);
    CU_ASSERT_EQUAL(kiln_graph_value(g, fc)->param.file, 1);
    float out[6];
    CU_ASSERT_EQUAL(kiln_param_read_f32(g, fc, out), KILN_OK);
    CU_ASSERT(out[5] == 10.0f);
    CU_ASSERT_EQUAL(kiln_weights_bind(g, &d), KILN_ERR_WEIGHTS); /* the duplicate stays an error */
    CU_ASSERT_EQUAL(d.errors, 1);

    /* search miss over several files */
    int64_t one[1] = {1};
    kiln_id m = add_param(g, "missing", "missing.key", (int)KILN_WEIGHTS_ANY_FILE, 1, one, 9);
    CU_ASSERT_EQUAL(kiln_weights_bind_value(g, m, &d), KILN_ERR_WEIGHTS);
    CU_ASSERT(has_message(&d, "weights 'missing.key' not found in any of the 2 weights files"));
    kiln_diag_release(&d);
    kiln_graph_destroy(g);
}

static void test_bad_file(void)
{
    kiln_graph *g = kiln_graph_create("t");
    int fbad = kiln_graph_add_weight_file(g, path_bad);
    int fa = kiln_graph_add_weight_file(g, path_a);
    int64_t four[1] = {4}, db[1] = {6};
    add_param(g, "x", "x", fbad, 1, four, 3);
    add_param(g, "y", "y", fbad, 1, four, 4);
    kiln_id b = add_param(g, "conv1.bias", "conv1.bias", fa, 1, db, 5);
    kiln_diag d;
    kiln_diag_init(&d);
    CU_ASSERT_EQUAL(kiln_weights_bind(g, &d), KILN_ERR_WEIGHTS);
    CU_ASSERT_EQUAL(d.errors, 1); /* the file's error, once */
    CU_ASSERT_EQUAL_FATAL(d.count, 2);
    CU_ASSERT_STRING_EQUAL(d.entries[0].loc.file, path_bad);
    CU_ASSERT(has_message(&d, "tensor 'x' (header byte 9) has data_offsets [0, 16] past the end of the data area"));
    CU_ASSERT_EQUAL(d.entries[1].severity, KILN_SEV_NOTE); /* at the first reader */
    CU_ASSERT_EQUAL(d.entries[1].loc.line, 3);
    char want[600];
    snprintf(want, sizeof want, "weights 'x' are read from %s, which could not be loaded", path_bad);
    CU_ASSERT_STRING_EQUAL(message(&d, 1), want);
    CU_ASSERT_PTR_NOT_NULL(kiln_graph_value(g, b)->param.data); /* the good file still binds */
    kiln_diag_release(&d);
    kiln_graph_destroy(g);

    /* a file that does not exist */
    g = kiln_graph_create("t");
    kiln_graph_add_weight_file(g, "/nonexistent-dir/w.safetensors");
    kiln_diag_init(&d);
    CU_ASSERT_EQUAL(kiln_weights_open(g, &d), KILN_ERR_IO);
    CU_ASSERT(has_message(&d, "cannot open weights file"));
    kiln_diag_release(&d);
    kiln_graph_destroy(g);

    /* no weights file at all */
    g = kiln_graph_create("t");
    int64_t one[1] = {1};
    kiln_id p = add_param(g, "p", "p", 0, 1, one, 2);
    kiln_diag_init(&d);
    CU_ASSERT_EQUAL(kiln_weights_bind_value(g, p, &d), KILN_ERR_WEIGHTS);
    CU_ASSERT_STRING_EQUAL(message(&d, 0), "weights 'p': the model has no weights file");
    kiln_diag_release(&d);
    kiln_graph_destroy(g);
}

static void test_random_and_inline(void)
{
    kiln_graph *g = kiln_graph_create("t");
    kiln_type t;
    memset(&t, 0, sizeof t);
    t.dtype = KILN_F32;
    t.shape.rank = 2;
    t.shape.dims[0] = 3;
    t.shape.dims[1] = 4;
    kiln_param p;
    memset(&p, 0, sizeof p);
    p.source = KILN_PARAM_RANDOM;
    p.seed = 7;
    p.key = "fc1.weight";
    p.lo = -0.5;
    p.hi = 0.5;
    kiln_loc loc = {"m.yaml", 1, 1};
    kiln_id r = kiln_graph_add_param(g, "fc1.weight", &t, &p, loc);
    static const float inline_data[12] = {1, 2, 3};
    p.source = KILN_PARAM_INLINE;
    p.key = NULL;
    p.data = inline_data;
    p.data_dtype = KILN_F32;
    kiln_id in = kiln_graph_add_param(g, "c", &t, &p, loc);
    /* A larger one (more than one chunk of the f64 reader), under its name. */
    t.shape.dims[0] = 50;
    t.shape.dims[1] = 61;
    p.source = KILN_PARAM_RANDOM;
    p.key = NULL;
    p.data = NULL;
    kiln_id big = kiln_graph_add_param(g, "big", &t, &p, loc);
    kiln_diag d;
    kiln_diag_init(&d);
    CU_ASSERT_EQUAL(kiln_weights_bind(g, &d), KILN_OK);
    CU_ASSERT_EQUAL(d.count, 0);
    /* Random parameters hold no memory: they are generated when read. */
    const kiln_value *v = kiln_graph_value(g, r);
    CU_ASSERT_EQUAL(v->param.data_dtype, KILN_F32);
    CU_ASSERT_PTR_NULL(v->param.data);
    float want[12], got[12];
    kiln_param_random(7, "fc1.weight", -0.5, 0.5, want, 12);
    CU_ASSERT_EQUAL(kiln_param_read_f32(g, r, got), KILN_OK);
    CU_ASSERT(memcmp(got, want, sizeof want) == 0);
    for (int i = 0; i < 12; i++)
        CU_ASSERT(want[i] >= -0.5f && want[i] <= 0.5f);
    static float want_big[50 * 61], got_big[50 * 61];
    static double got_big64[50 * 61];
    kiln_param_random(7, "big", -0.5, 0.5, want_big, 50 * 61);
    CU_ASSERT_EQUAL(kiln_param_read_f32(g, big, got_big), KILN_OK);
    CU_ASSERT_EQUAL(kiln_param_read_f64(g, big, got_big64), KILN_OK);
    CU_ASSERT(memcmp(got_big, want_big, sizeof want_big) == 0);
    int same = 1;
    for (int i = 0; i < 50 * 61; i++)
        same &= got_big64[i] == (double)want_big[i];
    CU_ASSERT(same);
    CU_ASSERT_EQUAL(kiln_weights_bind_value(g, r, &d), KILN_OK);
    CU_ASSERT_PTR_NULL(kiln_graph_value(g, r)->param.data); /* still nothing held */
    CU_ASSERT_PTR_EQUAL(kiln_graph_value(g, in)->param.data, inline_data);
    kiln_diag_release(&d);
    kiln_graph_destroy(g);
}

/* The n-th allocation fails: always a clean status, never a leak or crash. */
static void test_alloc_failures(void)
{
    int done = 0;
    for (long k = 1; k < 2000 && !done; k++) {
        kiln_graph *g = kiln_graph_create("t");
        CU_ASSERT_FATAL(g != NULL);
        kiln_graph_add_weight_file(g, path_a);
        kiln_graph_add_weight_file(g, path_b);
        int64_t dw[4] = {6, 1, 5, 5}, dfc[2] = {2, 3};
        add_param(g, "conv1.weight", "conv1.weight", 0, 4, dw, 3);
        add_param(g, "fc.weight", "fc.weight", (int)KILN_WEIGHTS_ANY_FILE, 2, dfc, 4);
        kiln_type t;
        memset(&t, 0, sizeof t);
        t.dtype = KILN_F32;
        t.shape.rank = 1;
        t.shape.dims[0] = 100000; /* larger than an arena chunk */
        kiln_param p;
        memset(&p, 0, sizeof p);
        p.source = KILN_PARAM_RANDOM;
        p.key = "r";
        p.hi = 1;
        kiln_graph_add_param(g, "r", &t, &p, (kiln_loc){"m.yaml", 1, 1});
        kiln_diag d;
        kiln_diag_init(&d);
        kiln_alloc_fail_after(k, 1);
        kiln_status s = kiln_weights_bind(g, &d);
        long used = kiln_alloc_count();
        kiln_alloc_fail_after(-1, 0);
        /* the duplicate conv1.bias makes the status an error even without failures */
        CU_ASSERT(s == KILN_ERR_WEIGHTS || s == KILN_ERR_OUT_OF_MEMORY);
        if (used < k) {
            done = 1;
            CU_ASSERT_EQUAL(s, KILN_ERR_WEIGHTS);
            CU_ASSERT_EQUAL(d.errors, 1);
        }
        kiln_diag_release(&d);
        kiln_graph_destroy(g);
    }
    CU_ASSERT(done);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kiln-test-weights-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("weights", NULL, NULL);
    if (make_files() != 0) {
        fprintf(stderr, "cannot write the test files in %s\n", tmpdir);
        return 1;
    }
    CU_add_test(s, "bind", test_bind_ok);
    CU_add_test(s, "shape, dtype, rank, missing key", test_shape_dtype_missing);
    CU_add_test(s, "two files, duplicate key, search", test_two_files);
    CU_add_test(s, "a bad file", test_bad_file);
    CU_add_test(s, "random and inline", test_random_and_inline);
    CU_add_test(s, "allocation failures", test_alloc_failures);
    CU_basic_set_mode(CU_BRM_NORMAL);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    remove(path_a);
    remove(path_b);
    remove(path_bad);
    remove(path_i64);
    rmdir(tmpdir);
    return failed ? 1 : 0;
}
