/* tests/onnx/test_onnx_import.c: the importer's library interface: pin
 * parsing, the result (YAML text, tensors and their keys), every prefix of a
 * model (a truncated file is refused or imported, never a crash), and
 * allocation failures at every point (a clean KILN_ERR_OUT_OF_MEMORY, no
 * leak: the ASan build checks). Fixtures: tests/fixtures/onnx
 * (tools/gen_onnx_fixtures.py). */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/frontend/onnx/onnx.h"
#include "ir/arena.h"

#ifndef KILN_SOURCE_DIR
#define KILN_SOURCE_DIR "."
#endif

static char *read_fixture(const char *name, size_t *size)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/onnx/%s", KILN_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t)n + 1);
    if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return data;
}

static void test_pin_parse(void)
{
    kiln_onnx_pin pin;
    char buf[64], err[256];
    CU_ASSERT_EQUAL(kiln_onnx_pin_parse("x=1x3x224x224", &pin, buf, sizeof buf, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(pin.name, "x");
    CU_ASSERT_EQUAL(pin.rank, 4);
    CU_ASSERT_EQUAL(pin.dims[0], 1);
    CU_ASSERT_EQUAL(pin.dims[3], 224);
    /* split at the last '=': a name may hold '=' */
    CU_ASSERT_EQUAL(kiln_onnx_pin_parse("a=b=2x3", &pin, buf, sizeof buf, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(pin.name, "a=b");
    CU_ASSERT_EQUAL(pin.rank, 2);
    /* NAME= pins a rank-0 input */
    CU_ASSERT_EQUAL(kiln_onnx_pin_parse("s=", &pin, buf, sizeof buf, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(pin.name, "s");
    CU_ASSERT_EQUAL(pin.rank, 0);
    static const char *const bad[] = {"x", "=1", "x=1x", "x=0", "x=1xx2", "x=-1", "x=1x2y", "x=2147483648",
                                      "x=1x1x1x1x1x1x1x1x1", "x= 1"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        err[0] = '\0';
        CU_ASSERT_EQUAL(kiln_onnx_pin_parse(bad[k], &pin, buf, sizeof buf, err, sizeof err), -1);
        CU_ASSERT(err[0] != '\0');
    }
}

static void test_result(void)
{
    size_t size;
    char *bytes = read_fixture("classifier.onnx", &size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
    kiln_onnx_options opt = {.model_name = "clf", .weights_ref = "w/clf.safetensors"};
    kiln_onnx_result *r = NULL;
    CU_ASSERT_EQUAL(kiln_onnx_import(bytes, size, &opt, &r), KILN_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(r->n_problems, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(r->yaml, "\nname: clf\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r->yaml, "\nweights: w/clf.safetensors\n"));
    CU_ASSERT_EQUAL(r->yaml_len, strlen(r->yaml));
    CU_ASSERT_EQUAL(r->n_nodes, 5);
    CU_ASSERT_EQUAL(r->opset, 13);
    /* PyTorch's keys, shapes as the layers read them */
    static const char *const keys[] = {"conv1.weight", "conv1.bias", "fc.weight", "fc.bias"};
    static const int ranks[] = {4, 1, 2, 1};
    CU_ASSERT_EQUAL_FATAL(r->n_tensors, 4);
    for (size_t k = 0; k < 4; k++) {
        CU_ASSERT_STRING_EQUAL(r->tensors[k].key, keys[k]);
        CU_ASSERT_EQUAL(r->tensors[k].rank, ranks[k]);
        CU_ASSERT_PTR_NOT_NULL(r->tensors[k].data);
    }
    CU_ASSERT_EQUAL(r->tensors[2].dims[0], 10);
    CU_ASSERT_EQUAL(r->tensors[2].dims[1], 16);
    kiln_onnx_result_destroy(r);
    free(bytes);
}

/* Every prefix of a model: imported or refused with a reason, never more. */
static void test_every_prefix(void)
{
    size_t size;
    char *bytes = read_fixture("classifier.onnx", &size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
    size_t imported = 0, refused = 0;
    for (size_t n = 0; n <= size; n++) {
        char *copy = malloc(n ? n : 1); /* exactly n bytes: ASan sees any read past them */
        memcpy(copy, bytes, n);
        kiln_onnx_result *r = NULL;
        kiln_status st = kiln_onnx_import(copy, n, NULL, &r);
        CU_ASSERT_PTR_NOT_NULL(r);
        if (st == KILN_OK) {
            imported++;
            CU_ASSERT(r && r->yaml && r->n_problems == 0);
        } else {
            refused++;
            CU_ASSERT_EQUAL(st, KILN_ERR_UNSUPPORTED);
            CU_ASSERT(r && !r->yaml && r->n_problems > 0);
        }
        kiln_onnx_result_destroy(r);
        free(copy);
    }
    CU_ASSERT_EQUAL(imported, 1); /* only the whole file */
    CU_ASSERT_EQUAL(imported + refused, size + 1);
    free(bytes);
}

/* The n-th allocation fails (and every one after it): out of memory,
 * reported, nothing leaked; until n is past the last allocation. */
static void test_allocation_failures(void)
{
    static const char *const models[] = {"classifier.onnx", "refusals.onnx", "names.onnx"};
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
        size_t size;
        char *bytes = read_fixture(models[m], &size);
        CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
        kiln_onnx_result *r = NULL;
        kiln_status want = kiln_onnx_import(bytes, size, NULL, &r);
        kiln_onnx_result_destroy(r);
        long n = 1, ooms = 0;
        for (; n < 20000; n++) {
            kiln_alloc_fail_after(n, 1);
            r = NULL;
            kiln_status st = kiln_onnx_import(bytes, size, NULL, &r);
            kiln_alloc_fail_after(0, 0);
            if (st == KILN_ERR_OUT_OF_MEMORY) {
                CU_ASSERT_PTR_NULL(r);
                ooms++;
                continue;
            }
            CU_ASSERT_EQUAL(st, want);
            kiln_onnx_result_destroy(r);
            break;
        }
        CU_ASSERT(ooms > 10);
        CU_ASSERT(n < 20000);
        free(bytes);
    }
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("onnx_import", NULL, NULL);
    CU_add_test(s, "pin parsing", test_pin_parse);
    CU_add_test(s, "the result: YAML, tensors, keys", test_result);
    CU_add_test(s, "every prefix of a model", test_every_prefix);
    CU_add_test(s, "allocation failures", test_allocation_failures);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failures = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failures ? 1 : 0;
}
