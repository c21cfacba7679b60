/* tests/test_safetensors.c: the safetensors reader and writer
 * (compiler/frontend/safetensors.c) and the dtype conversions (ir/convert.c).
 * Links: cunit, kiln_frontend, kiln_ir. Exits non-zero on failure. */
#define _POSIX_C_SOURCE 200809L

#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compiler/frontend/safetensors.h"
#include "ir/arena.h"
#include "ir/convert.h"
#include "ir/diag.h"

static char tmpdir[256];

static void tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
}

/* [8-byte LE length][json][data] in malloc'd memory (not kiln_malloc: the
 * allocation-failure tests must only fail the reader's allocations). */
static unsigned char *st_bytes(const char *json, const void *data, size_t data_len, size_t *size)
{
    size_t hlen = strlen(json);
    *size = 8 + hlen + data_len;
    unsigned char *b = malloc(*size ? *size : 1);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(b + 8, json, hlen);
    if (data_len)
        memcpy(b + 8 + hlen, data, data_len);
    return b;
}

static unsigned char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    *size = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

static void write_bytes(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT(fwrite(b, 1, n, f) == n);
    fclose(f);
}

/* Opens the bytes, expects failure with `want` and exactly one error whose
 * message contains `substr`. */
static void expect_fail_bytes(const unsigned char *b, size_t n, kiln_status want, const char *substr)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_st_file *f = (kiln_st_file *)1;
    kiln_status s = kiln_st_open_memory(b, n, "bad.safetensors", &f, &d);
    CU_ASSERT_EQUAL(s, want);
    CU_ASSERT_PTR_NULL(f);
    CU_ASSERT_EQUAL(d.errors, 1);
    CU_ASSERT_EQUAL(d.count, 1);
    if (d.count == 1) {
        CU_ASSERT_STRING_EQUAL(d.entries[0].loc.file, "bad.safetensors");
        CU_ASSERT_EQUAL(d.entries[0].loc.line, 0);
        if (!strstr(d.entries[0].message, substr)) {
            fprintf(stderr, "\n  message: %s\n  wanted:  %s\n", d.entries[0].message, substr);
            CU_FAIL("message does not contain the expected text");
        }
    } else if (s == KILN_OK) {
        fprintf(stderr, "\n  unexpectedly accepted; wanted: %s\n", substr);
    }
    kiln_st_close(s == KILN_OK ? f : NULL);
    kiln_diag_release(&d);
}

static void expect_fail(const char *json, const void *data, size_t data_len, kiln_status want,
                        const char *substr)
{
    size_t n = 0;
    unsigned char *b = st_bytes(json, data, data_len, &n);
    expect_fail_bytes(b, n, want, substr);
    free(b);
}

static kiln_st_file *open_ok(const unsigned char *b, size_t n)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_st_file *f = NULL;
    kiln_status s = kiln_st_open_memory(b, n, "ok.safetensors", &f, &d);
    if (s != KILN_OK && d.count)
        fprintf(stderr, "\n  unexpected error: %s\n", d.entries[0].message);
    CU_ASSERT_EQUAL(s, KILN_OK);
    CU_ASSERT_EQUAL(d.count, 0);
    kiln_diag_release(&d);
    return f;
}

/* ------------------------------------------------------------------------ */
/* conversions */

static float fbits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t bitsf(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void test_f16_scalar(void)
{
    CU_ASSERT_EQUAL(kiln_f16_to_f32(0x3c00), 1.0f);
    CU_ASSERT_EQUAL(kiln_f16_to_f32(0xc000), -2.0f);
    CU_ASSERT_EQUAL(kiln_f16_to_f32(0x7bff), 65504.0f);
    CU_ASSERT_EQUAL(kiln_f16_to_f32(0x0001), 0x1p-24f);         /* smallest subnormal */
    CU_ASSERT_EQUAL(kiln_f16_to_f32(0x03ff), 0x3ffp-24f);       /* largest subnormal */
    CU_ASSERT_EQUAL(kiln_f16_to_f32(0x0400), 0x1p-14f);         /* smallest normal */
    CU_ASSERT_EQUAL(bitsf(kiln_f16_to_f32(0x8000)), 0x80000000u); /* -0 */
    CU_ASSERT_EQUAL(bitsf(kiln_f16_to_f32(0x8001)), bitsf(-0x1p-24f));
    CU_ASSERT(isinf(kiln_f16_to_f32(0x7c00)) && kiln_f16_to_f32(0x7c00) > 0);
    CU_ASSERT(isinf(kiln_f16_to_f32(0xfc00)) && kiln_f16_to_f32(0xfc00) < 0);
    CU_ASSERT(isnan(kiln_f16_to_f32(0x7e00)));
    CU_ASSERT(isnan(kiln_f16_to_f32(0x7c01))); /* signaling NaN stays NaN */
    CU_ASSERT_EQUAL(bitsf(kiln_f16_to_f32(0xfe01)), 0xffc02000u); /* sign and payload kept */

    /* round to nearest, ties to even */
    CU_ASSERT_EQUAL(kiln_f32_to_f16(1.0f), 0x3c00);
    CU_ASSERT_EQUAL(kiln_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);        /* tie -> even */
    CU_ASSERT_EQUAL(kiln_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);    /* tie -> even */
    CU_ASSERT_EQUAL(kiln_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
    CU_ASSERT_EQUAL(kiln_f32_to_f16(65504.0f), 0x7bff);
    CU_ASSERT_EQUAL(kiln_f32_to_f16(65519.0f), 0x7bff);
    CU_ASSERT_EQUAL(kiln_f32_to_f16(65520.0f), 0x7c00); /* tie at the top rounds to infinity */
    CU_ASSERT_EQUAL(kiln_f32_to_f16(1e10f), 0x7c00);
    CU_ASSERT_EQUAL(kiln_f32_to_f16(-INFINITY), 0xfc00);
    CU_ASSERT_EQUAL(kiln_f32_to_f16(0x1p-24f), 0x0001);
    CU_ASSERT_EQUAL(kiln_f32_to_f16(0x1p-25f), 0x0000);      /* tie -> even (0) */
    CU_ASSERT_EQUAL(kiln_f32_to_f16(0x1.8p-25f), 0x0001);
    CU_ASSERT_EQUAL(kiln_f32_to_f16(3 * 0x1p-25f), 0x0002);  /* tie -> even (2) */
    CU_ASSERT_EQUAL(kiln_f32_to_f16(0x1p-14f - 0x1p-25f), 0x0400); /* rounds up into the normals */
    CU_ASSERT_EQUAL(kiln_f32_to_f16(0x1p-30f), 0x0000);
    CU_ASSERT_EQUAL(kiln_f32_to_f16(-0x1p-30f), 0x8000);
    CU_ASSERT_EQUAL(kiln_f32_to_f16(fbits(0x00000001u)), 0x0000); /* f32 subnormal */
    CU_ASSERT_EQUAL(kiln_f32_to_f16(-0.0f), 0x8000);
    uint16_t n = kiln_f32_to_f16(NAN);
    CU_ASSERT((n & 0x7c00) == 0x7c00 && (n & 0x03ff) != 0 && (n & 0x0200));
    n = kiln_f32_to_f16(fbits(0x7f800001u)); /* signaling NaN with a low payload */
    CU_ASSERT((n & 0x7c00) == 0x7c00 && (n & 0x03ff) != 0);
    CU_ASSERT_EQUAL(kiln_f32_to_f16(fbits(0xffc00000u)), 0xfe00);

    /* every f16 survives f16 -> f32 -> f16 */
    for (uint32_t h = 0; h <= 0xffff; h++) {
        float f = kiln_f16_to_f32((uint16_t)h);
        uint16_t back = kiln_f32_to_f16(f);
        if (isnan(f)) {
            if ((back & 0x7c00) != 0x7c00 || !(back & 0x3ff) || (back & 0x8000) != (h & 0x8000)) {
                CU_FAIL("NaN f16 not preserved");
                break;
            }
        } else if (back != h) {
            fprintf(stderr, "\n  f16 0x%04x -> %g -> 0x%04x\n", h, (double)f, back);
            CU_FAIL("f16 round trip");
            break;
        }
    }
}

#if defined(__FLT16_MAX__)
__extension__ typedef _Float16 test_f16;
#endif

static void test_f16_against_compiler(void)
{
#if defined(__FLT16_MAX__)
    /* the compiler's float -> _Float16 conversion rounds to nearest even */
    for (uint64_t u = 0; u <= 0xffffffffu; u += 4093) {
        float f = fbits((uint32_t)u);
        if (isnan(f))
            continue;
        test_f16 h = (test_f16)f;
        uint16_t want;
        memcpy(&want, &h, 2);
        if (kiln_f32_to_f16(f) != want) {
            fprintf(stderr, "\n  f32 0x%08x: kiln 0x%04x, compiler 0x%04x\n", (unsigned)u,
                    kiln_f32_to_f16(f), want);
            CU_FAIL("f32 -> f16 differs from the compiler");
            return;
        }
    }
    /* densely around the f16 range boundaries */
    for (uint32_t u = 0x33000000u; u < 0x39000000u; u += 7) {
        float f = fbits(u);
        test_f16 h = (test_f16)f;
        uint16_t want;
        memcpy(&want, &h, 2);
        if (kiln_f32_to_f16(f) != want) {
            fprintf(stderr, "\n  f32 0x%08x: kiln 0x%04x, compiler 0x%04x\n", u, kiln_f32_to_f16(f), want);
            CU_FAIL("f32 -> f16 differs from the compiler (subnormals)");
            return;
        }
    }
#else
    CU_PASS("no _Float16 in this compiler");
#endif
}

static void test_bf16_scalar(void)
{
    CU_ASSERT_EQUAL(kiln_bf16_to_f32(0x3f80), 1.0f);
    CU_ASSERT_EQUAL(kiln_bf16_to_f32(0xc040), -3.0f);
    CU_ASSERT(isinf(kiln_bf16_to_f32(0x7f80)));
    CU_ASSERT(isnan(kiln_bf16_to_f32(0x7fc1)));
    CU_ASSERT_EQUAL(kiln_bf16_to_f32(0x0001), fbits(0x00010000u)); /* subnormal */
    CU_ASSERT_EQUAL(kiln_f32_to_bf16(1.0f), 0x3f80);
    CU_ASSERT_EQUAL(kiln_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);     /* tie -> even */
    CU_ASSERT_EQUAL(kiln_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82); /* tie -> even */
    CU_ASSERT_EQUAL(kiln_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    CU_ASSERT_EQUAL(kiln_f32_to_bf16(fbits(0x7f7fffffu)), 0x7f80); /* FLT_MAX rounds to infinity */
    CU_ASSERT_EQUAL(kiln_f32_to_bf16(-INFINITY), 0xff80);
    CU_ASSERT_EQUAL(kiln_f32_to_bf16(fbits(0x7f800001u)), 0x7fc0); /* NaN, not infinity */
    CU_ASSERT_EQUAL(kiln_f32_to_bf16(fbits(0xffc12345u)), 0xffc1);
    CU_ASSERT_EQUAL(kiln_f32_to_bf16(fbits(0x7fffffffu)), 0x7fff);
    for (uint32_t b = 0; b <= 0xffff; b++) {
        float f = kiln_bf16_to_f32((uint16_t)b);
        uint16_t back = kiln_f32_to_bf16(f);
        if (isnan(f) ? !isnan(kiln_bf16_to_f32(back)) : back != b) {
            CU_FAIL("bf16 round trip");
            break;
        }
    }
}

static void test_bulk_convert(void)
{
    /* deliberately unaligned sources */
    unsigned char buf[64 + 1];
    float out[4];
    double outd[4];

    uint16_t h[4] = {0x3c00, 0x0001, 0xfc00, 0x7bff};
    memcpy(buf + 1, h, sizeof h);
    kiln_dtype_to_f32(KILN_F16, buf + 1, 4, out);
    CU_ASSERT_EQUAL(out[0], 1.0f);
    CU_ASSERT_EQUAL(out[1], 0x1p-24f);
    CU_ASSERT(isinf(out[2]) && out[2] < 0);
    CU_ASSERT_EQUAL(out[3], 65504.0f);
    kiln_dtype_to_f64(KILN_F16, buf + 1, 4, outd);
    CU_ASSERT_EQUAL(outd[1], 0x1p-24);

    uint16_t bf[2] = {0x3f80, 0xc040};
    memcpy(buf + 3, bf, sizeof bf);
    kiln_dtype_to_f32(KILN_BF16, buf + 3, 2, out);
    CU_ASSERT_EQUAL(out[0], 1.0f);
    CU_ASSERT_EQUAL(out[1], -3.0f);

    double dd[2] = {0.1, -1e300};
    memcpy(buf + 5, dd, sizeof dd);
    kiln_dtype_to_f64(KILN_F64, buf + 5, 2, outd);
    CU_ASSERT_EQUAL(outd[0], 0.1);
    kiln_dtype_to_f32(KILN_F64, buf + 5, 2, out);
    CU_ASSERT_EQUAL(out[0], 0.1f);
    CU_ASSERT(isinf(out[1]) && out[1] < 0);

    float ff[3] = {1.5f, -0.0f, 3e38f};
    memcpy(buf + 7, ff, sizeof ff);
    kiln_dtype_to_f32(KILN_F32, buf + 7, 3, out);
    CU_ASSERT(memcmp(out, ff, sizeof ff) == 0);
    kiln_dtype_to_f64(KILN_F32, buf + 7, 3, outd);
    CU_ASSERT_EQUAL(outd[2], (double)3e38f);

    int8_t i8[2] = {-128, 127};
    memcpy(buf + 1, i8, 2);
    kiln_dtype_to_f32(KILN_I8, buf + 1, 2, out);
    CU_ASSERT_EQUAL(out[0], -128.0f);
    CU_ASSERT_EQUAL(out[1], 127.0f);
    int32_t i32 = -7;
    memcpy(buf + 1, &i32, 4);
    kiln_dtype_to_f64(KILN_I32, buf + 1, 1, outd);
    CU_ASSERT_EQUAL(outd[0], -7.0);
    kiln_dtype_to_f32(KILN_DTYPE_COUNT, buf, 2, out);
    CU_ASSERT(isnan(out[0]) && isnan(out[1]));
    kiln_dtype_to_f32(KILN_F32, NULL, 0, out); /* count 0 touches nothing */
}

/* ------------------------------------------------------------------------ */
/* valid files */

static void test_writer_round_trip(void)
{
    char path[300];
    tmp_path(path, sizeof path, "rt.safetensors");
    const char *names[4] = {"conv1.weight", "bias", "scalar", "empty"};
    int ranks[4] = {4, 1, 0, 2};
    int64_t d0[4] = {2, 1, 2, 2}, d1[1] = {3}, d3[2] = {0, 5};
    const int64_t *dims[4] = {d0, d1, NULL, d3};
    float w[8] = {1, -2, 3.5f, 0, -0.0f, 1e-30f, 3e38f, 7};
    float b[3] = {0.25f, 0.5f, 0.75f};
    float sc = 42.0f;
    const float *data[4] = {w, b, &sc, NULL};
    CU_ASSERT_EQUAL_FATAL(kiln_st_write_f32(path, 4, names, ranks, dims, data), KILN_OK);

    kiln_diag d;
    kiln_diag_init(&d);
    kiln_st_file *f = NULL;
    CU_ASSERT_EQUAL_FATAL(kiln_st_open(path, &f, &d), KILN_OK);
    CU_ASSERT_EQUAL(d.count, 0);
    CU_ASSERT_STRING_EQUAL(kiln_st_path(f), path);
    CU_ASSERT_EQUAL_FATAL(kiln_st_count(f), 4);
    for (size_t i = 0; i < 4; i++) {
        const kiln_st_tensor *t = kiln_st_at(f, i);
        CU_ASSERT_STRING_EQUAL(t->name, names[i]); /* header order */
        CU_ASSERT_STRING_EQUAL(t->dtype_name, "F32");
        CU_ASSERT_EQUAL(t->dtype, KILN_F32);
        CU_ASSERT(t->supported);
        CU_ASSERT_EQUAL(t->rank, ranks[i]);
        for (int k = 0; k < ranks[i]; k++)
            CU_ASSERT_EQUAL(t->dims[k], dims[i][k]);
        CU_ASSERT_PTR_EQUAL(kiln_st_find(f, names[i]), t);
    }
    CU_ASSERT_PTR_NULL(kiln_st_at(f, 4));
    CU_ASSERT_PTR_NULL(kiln_st_find(f, "nope"));
    CU_ASSERT_PTR_NULL(kiln_st_find(f, ""));
    const kiln_st_tensor *t = kiln_st_find(f, "conv1.weight");
    CU_ASSERT_EQUAL(t->nbytes, sizeof w);
    float got[8];
    kiln_dtype_to_f32(t->dtype, t->data, 8, got);
    CU_ASSERT(memcmp(got, w, sizeof w) == 0);
    t = kiln_st_find(f, "scalar");
    CU_ASSERT_EQUAL(t->nbytes, 4);
    kiln_dtype_to_f32(t->dtype, t->data, 1, got);
    CU_ASSERT_EQUAL(got[0], 42.0f);
    CU_ASSERT_EQUAL(kiln_st_find(f, "empty")->nbytes, 0);
    kiln_st_close(f);
    kiln_diag_release(&d);

    /* the header is padded to a multiple of 8 with spaces */
    size_t n = 0;
    unsigned char *bytes = read_file(path, &n);
    CU_ASSERT_FATAL(bytes != NULL);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | bytes[i];
    CU_ASSERT_EQUAL(hlen % 8, 0);
    CU_ASSERT_EQUAL(n, 8 + hlen + (8 + 3 + 1) * 4);
    CU_ASSERT_EQUAL(bytes[8], '{');
    free(bytes);

    /* the writer's own checks */
    const char *dup[2] = {"a", "a"};
    int r1[2] = {1, 1};
    int64_t one[1] = {1};
    const int64_t *dd[2] = {one, one};
    const float *dv[2] = {&sc, &sc};
    CU_ASSERT_EQUAL(kiln_st_write_f32(path, 2, dup, r1, dd, dv), KILN_ERR_INVALID_ARGUMENT);
    int r9[1] = {9};
    CU_ASSERT_EQUAL(kiln_st_write_f32(path, 1, dup, r9, dd, dv), KILN_ERR_INVALID_ARGUMENT);
    int64_t neg[1] = {-1};
    const int64_t *dn[1] = {neg};
    CU_ASSERT_EQUAL(kiln_st_write_f32(path, 1, dup, r1, dn, dv), KILN_ERR_INVALID_ARGUMENT);
    const float *nodata[1] = {NULL};
    CU_ASSERT_EQUAL(kiln_st_write_f32(path, 1, dup, r1, dd, nodata), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(kiln_st_write_f32("/nonexistent-dir/x.safetensors", 1, dup, r1, dd, dv), KILN_ERR_IO);

    /* an empty file list is a valid file */
    CU_ASSERT_EQUAL(kiln_st_write_f32(path, 0, NULL, NULL, NULL, NULL), KILN_OK);
    kiln_diag_init(&d);
    CU_ASSERT_EQUAL(kiln_st_open(path, &f, &d), KILN_OK);
    CU_ASSERT_EQUAL(kiln_st_count(f), 0);
    CU_ASSERT_PTR_NULL(kiln_st_find(f, "a"));
    kiln_st_close(f);
    kiln_diag_release(&d);
    remove(path);
}

static void test_writer_escapes_names(void)
{
    char path[300];
    tmp_path(path, sizeof path, "esc.safetensors");
    const char *names[2] = {"q\"uo\\te\n\x01", "caf\xc3\xa9"};
    int ranks[2] = {0, 0};
    const int64_t *dims[2] = {NULL, NULL};
    float a = 1, b = 2;
    const float *data[2] = {&a, &b};
    CU_ASSERT_EQUAL_FATAL(kiln_st_write_f32(path, 2, names, ranks, dims, data), KILN_OK);
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_st_file *f = NULL;
    CU_ASSERT_EQUAL_FATAL(kiln_st_open(path, &f, &d), KILN_OK);
    CU_ASSERT_PTR_NOT_NULL(kiln_st_find(f, names[0]));
    CU_ASSERT_PTR_NOT_NULL(kiln_st_find(f, names[1]));
    kiln_st_close(f);
    kiln_diag_release(&d);
    remove(path);
}

/* A file with every kind of tensor, data deliberately unaligned. */
static const char all_json[] =
    "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"caf\\u00e9 \\\"x\\\"\"},"
    "\"f32\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
    "\"f16\":{\"dtype\":\"F16\",\"shape\":[6],\"data_offsets\":[8,20]},"
    "\"bf16\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[20,26]},"
    "\"f64\":{\"dtype\":\"F64\",\"shape\":[1,2],\"data_offsets\":[26,42]},"
    "\"bn.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[42,50]},"
    "\"mask\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[50,53]},"
    "\"fp8\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[53,55]},"
    "\"fp4\":{\"dtype\":\"F4\",\"shape\":[2,1],\"data_offsets\":[55,56]},"
    "\"u16\":{\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[56,58]},"
    "\"r9\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[58,62]},"
    "\"zero\":{\"dtype\":\"F16\",\"shape\":[0,3],\"data_offsets\":[62,62]}} ";

static unsigned char *all_bytes(size_t *n)
{
    unsigned char data[62];
    float f32[2] = {1.5f, -0.125f};
    uint16_t f16[6] = {0x3c00, 0x0001, 0x7bff, 0x7c00, 0x8000, 0x7e00};
    uint16_t bf16[3] = {0x3f80, 0xc040, 0x7f80};
    double f64[2] = {0.1, -2.5};
    int64_t i64 = 12345;
    memcpy(data, f32, 8);
    memcpy(data + 8, f16, 12);
    memcpy(data + 20, bf16, 6);
    memcpy(data + 26, f64, 16);
    memcpy(data + 42, &i64, 8);
    memset(data + 50, 1, 12);
    return st_bytes(all_json, data, sizeof data, n);
}

static void test_all_dtypes(void)
{
    size_t n = 0;
    unsigned char *b = all_bytes(&n);
    CU_ASSERT((8 + strlen(all_json)) % 4 != 0); /* the data is unaligned */
    kiln_st_file *f = open_ok(b, n);
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_EQUAL(kiln_st_count(f), 11); /* __metadata__ is not a tensor */
    CU_ASSERT_PTR_NULL(kiln_st_find(f, "__metadata__"));

    float out[8];
    double outd[8];
    const kiln_st_tensor *t = kiln_st_find(f, "f32");
    CU_ASSERT(t->supported && t->dtype == KILN_F32 && t->rank == 1 && t->dims[0] == 2);
    kiln_dtype_to_f32(t->dtype, t->data, 2, out);
    CU_ASSERT(out[0] == 1.5f && out[1] == -0.125f);

    t = kiln_st_find(f, "f16");
    CU_ASSERT(t->supported && t->dtype == KILN_F16 && t->nbytes == 12);
    kiln_dtype_to_f32(t->dtype, t->data, 6, out);
    CU_ASSERT_EQUAL(out[0], 1.0f);
    CU_ASSERT_EQUAL(out[1], 0x1p-24f);
    CU_ASSERT_EQUAL(out[2], 65504.0f);
    CU_ASSERT(isinf(out[3]) && out[3] > 0);
    CU_ASSERT_EQUAL(bitsf(out[4]), 0x80000000u);
    CU_ASSERT(isnan(out[5]));

    t = kiln_st_find(f, "bf16");
    CU_ASSERT(t->supported && t->dtype == KILN_BF16);
    kiln_dtype_to_f32(t->dtype, t->data, 3, out);
    CU_ASSERT(out[0] == 1.0f && out[1] == -3.0f && isinf(out[2]));

    t = kiln_st_find(f, "f64");
    CU_ASSERT(t->supported && t->dtype == KILN_F64 && t->rank == 2 && t->dims[1] == 2);
    kiln_dtype_to_f64(t->dtype, t->data, 2, outd);
    CU_ASSERT(outd[0] == 0.1 && outd[1] == -2.5);

    t = kiln_st_find(f, "bn.num_batches_tracked");
    CU_ASSERT_FATAL(t != NULL);
    CU_ASSERT(!t->supported);
    CU_ASSERT_EQUAL(t->dtype, KILN_DTYPE_COUNT);
    CU_ASSERT_STRING_EQUAL(t->dtype_name, "I64");
    CU_ASSERT_EQUAL(t->rank, 0);
    CU_ASSERT_EQUAL(t->nbytes, 8);

    CU_ASSERT(!kiln_st_find(f, "mask")->supported);
    CU_ASSERT_STRING_EQUAL(kiln_st_find(f, "fp8")->dtype_name, "F8_E4M3");
    CU_ASSERT_EQUAL(kiln_st_find(f, "fp4")->nbytes, 1);
    CU_ASSERT(!kiln_st_find(f, "u16")->supported);

    t = kiln_st_find(f, "r9"); /* rank 9: listed, not readable */
    CU_ASSERT(!t->supported);
    CU_ASSERT_EQUAL(t->rank, 9);
    CU_ASSERT_EQUAL(t->dtype, KILN_F32);

    t = kiln_st_find(f, "zero");
    CU_ASSERT(t->supported && t->nbytes == 0 && t->dims[0] == 0 && t->dims[1] == 3);
    kiln_st_close(f);
    free(b);

    CU_ASSERT_EQUAL(kiln_st_dtype_bits("F6_E3M2"), 6);
    CU_ASSERT_EQUAL(kiln_st_dtype_bits("C64"), 64);
    CU_ASSERT_EQUAL(kiln_st_dtype_bits("f32"), 0);
    CU_ASSERT_EQUAL(kiln_st_dtype_bits(NULL), 0);
}

static void test_json_forms(void)
{
    /* whitespace everywhere, escapes and unicode in names, holes, out-of-order offsets */
    static const char json[] =
        " \t\r\n{ \"a\\\"b\\\\c\\/\\u00e9\\ud83d\\ude00\\n\" : { \"shape\" : [ 1 ] , \"data_offsets\" : [ 8 , 12 ] ,"
        " \"dtype\" : \"F32\" } , \"\xc3\xa9t\xc3\xa9\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
        " \"\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[16,20]}, \"__metadata__\":{} }   ";
    unsigned char data[20] = {0};
    size_t n = 0;
    unsigned char *b = st_bytes(json, data, sizeof data, &n);
    kiln_st_file *f = open_ok(b, n);
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_EQUAL(kiln_st_count(f), 3);
    CU_ASSERT_STRING_EQUAL(kiln_st_at(f, 0)->name, "a\"b\\c/\xc3\xa9\xf0\x9f\x98\x80\n");
    CU_ASSERT_PTR_NOT_NULL(kiln_st_find(f, "\xc3\xa9t\xc3\xa9"));
    CU_ASSERT_PTR_NOT_NULL(kiln_st_find(f, ""));
    kiln_st_close(f);
    free(b);

    /* an empty header object; trailing bytes after the last tensor are allowed */
    b = st_bytes("{}", data, 3, &n);
    f = open_ok(b, n);
    CU_ASSERT_EQUAL(kiln_st_count(f), 0);
    kiln_st_close(f);
    free(b);

    /* the dims up to INT64_MAX with a zero dim: no elements, no overflow */
    b = st_bytes("{\"z\":{\"dtype\":\"F32\",\"shape\":[9223372036854775807,0,9223372036854775807],"
                 "\"data_offsets\":[0,0]}}",
                 NULL, 0, &n);
    f = open_ok(b, n);
    CU_ASSERT_EQUAL(kiln_st_find(f, "z")->dims[0], INT64_MAX);
    kiln_st_close(f);
    free(b);
}

/* ------------------------------------------------------------------------ */
/* malformed files */

#define ENTRY(dt, shape, offs) "{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

static void test_bad_length(void)
{
    unsigned char b[16] = {0};
    expect_fail_bytes(b, 0, KILN_ERR_WEIGHTS, "file is 0 bytes: too short");
    expect_fail_bytes(b, 7, KILN_ERR_WEIGHTS, "file is 7 bytes: too short");
    b[0] = 9; /* header of 9 bytes, 8 available */
    expect_fail_bytes(b, 16, KILN_ERR_WEIGHTS,
                      "header length 9 (bytes 0..7) goes past the end of the file (16 bytes)");
    memset(b, 0xff, 8);
    expect_fail_bytes(b, 16, KILN_ERR_WEIGHTS, "header length 18446744073709551615 (bytes 0..7) is larger than the limit");
    memset(b, 0, 8);
    b[3] = 0x07; /* 117440512 bytes > 100 MiB */
    expect_fail_bytes(b, 16, KILN_ERR_WEIGHTS, "is larger than the limit of 104857600 bytes");
    memset(b, 0, 8); /* a zero-length header is not JSON */
    expect_fail_bytes(b, 16, KILN_ERR_PARSE, "expected '{' (the header is a JSON object), found the end of the header");
}

static void test_bad_json(void)
{
    expect_fail("[]", NULL, 0, KILN_ERR_PARSE, "at byte 8: expected '{' (the header is a JSON object), found an array");
    expect_fail("{\"a\" {}}", NULL, 0, KILN_ERR_PARSE, "at byte 13: expected ':', found an object");
    expect_fail("{\"a\":" ENTRY("F32", "[0]", "[0,0]") ",}", NULL, 0, KILN_ERR_PARSE,
                "expected a string (a tensor name), found '}'");
    expect_fail("{\"a\":" ENTRY("F32", "[0]", "[0,0]") "", NULL, 0, KILN_ERR_PARSE,
                "expected ',' or '}' after a header entry, found the end of the header");
    expect_fail("{} x", NULL, 0, KILN_ERR_PARSE, "at byte 11: 'x' after the header object");
    expect_fail("{\"abc", NULL, 0, KILN_ERR_PARSE, "at byte 9: string not terminated");
    expect_fail("{\"a\\", NULL, 0, KILN_ERR_PARSE, "string not terminated");
    expect_fail("{\"a\\x\":1}", NULL, 0, KILN_ERR_PARSE, "at byte 11: invalid escape '\\x'");
    expect_fail("{\"\\u12G4\":1}", NULL, 0, KILN_ERR_PARSE, "\\u must be followed by 4 hex digits");
    expect_fail("{\"\\u12", NULL, 0, KILN_ERR_PARSE, "\\u must be followed by 4 hex digits");
    expect_fail("{\"\\udc00\":1}", NULL, 0, KILN_ERR_PARSE, "unpaired low surrogate \\udc00");
    expect_fail("{\"\\ud800x\":1}", NULL, 0, KILN_ERR_PARSE, "high surrogate \\ud800 not followed by a low surrogate");
    expect_fail("{\"\\ud800\\u0041\":1}", NULL, 0, KILN_ERR_PARSE, "not followed by a low surrogate");
    expect_fail("{\"\\u0000\":1}", NULL, 0, KILN_ERR_PARSE, "\\u0000 (NUL) in a string is not supported");
    expect_fail("{\"a\tb\":1}", NULL, 0, KILN_ERR_PARSE, "at byte 11: control character 0x09 in a string");
    expect_fail("{\"\xff\":1}", NULL, 0, KILN_ERR_PARSE, "at byte 10: invalid UTF-8 in a string");
    expect_fail("{\"\xc0\xaf\":1}", NULL, 0, KILN_ERR_PARSE, "invalid UTF-8"); /* overlong */
    expect_fail("{\"\xed\xa0\x80\":1}", NULL, 0, KILN_ERR_PARSE, "invalid UTF-8"); /* surrogate */
    expect_fail("{\"\xe2\x82\":1}", NULL, 0, KILN_ERR_PARSE, "invalid UTF-8"); /* cut short */
    expect_fail("{\"\xf4\x90\x80\x80\":1}", NULL, 0, KILN_ERR_PARSE, "invalid UTF-8"); /* > U+10FFFF */
    expect_fail("{1:2}", NULL, 0, KILN_ERR_PARSE, "expected a string (a tensor name), found a number");
}

static void test_bad_schema(void)
{
    expect_fail("{\"w\":[1]}", NULL, 0, KILN_ERR_PARSE,
                "at byte 13: tensor 'w' must be an object {dtype, shape, data_offsets}, found an array");
    expect_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"extra\":1}}", NULL, 0,
                KILN_ERR_PARSE, "at byte 60: tensor 'w' has unknown key 'extra'");
    expect_fail("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\"}}", NULL, 0, KILN_ERR_PARSE,
                "at byte 28: tensor 'w' has key 'dtype' twice");
    expect_fail("{\"w\":{\"shape\":[],\"data_offsets\":[0,4]}}", NULL, 0, KILN_ERR_PARSE,
                "at byte 9: tensor 'w' has no 'dtype'");
    expect_fail("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", NULL, 0, KILN_ERR_PARSE,
                "tensor 'w' has no 'shape'");
    expect_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[]}}", NULL, 0, KILN_ERR_PARSE,
                "tensor 'w' has no 'data_offsets'");
    expect_fail("{\"w\":{}}", NULL, 0, KILN_ERR_PARSE, "tensor 'w' has no 'dtype'");
    expect_fail("{\"w\":{\"dtype\":32}}", NULL, 0, KILN_ERR_PARSE,
                "at byte 22: dtype of tensor 'w' must be a string, found a number");
    expect_fail("{\"w\":{\"dtype\":\"F33\"}}", NULL, 0, KILN_ERR_PARSE,
                "at byte 22: tensor 'w' has unknown dtype 'F33'");
    expect_fail("{\"w\":{\"dtype\":\"f32\"}}", NULL, 0, KILN_ERR_PARSE, "unknown dtype 'f32'");
    expect_fail("{\"w\":{\"shape\":{}}}", NULL, 0, KILN_ERR_PARSE,
                "shape of tensor 'w' must be an array of integers, found an object");
    expect_fail("{\"w\":{\"shape\":[1,-2]}}", NULL, 0, KILN_ERR_PARSE,
                "at byte 25: a shape dimension of tensor 'w' must be a non-negative integer");
    expect_fail("{\"w\":{\"shape\":[1.5]}}", NULL, 0, KILN_ERR_PARSE,
                "a shape dimension of tensor 'w' must be an integer");
    expect_fail("{\"w\":{\"shape\":[1e3]}}", NULL, 0, KILN_ERR_PARSE,
                "a shape dimension of tensor 'w' must be an integer");
    expect_fail("{\"w\":{\"shape\":[\"3\"]}}", NULL, 0, KILN_ERR_PARSE,
                "a shape dimension of tensor 'w' must be an integer, found a string");
    expect_fail("{\"w\":{\"shape\":[true]}}", NULL, 0, KILN_ERR_PARSE, "found a boolean");
    expect_fail("{\"w\":{\"shape\":[null]}}", NULL, 0, KILN_ERR_PARSE, "found null");
    expect_fail("{\"w\":{\"shape\":[01]}}", NULL, 0, KILN_ERR_PARSE, "leading zeros");
    expect_fail("{\"w\":{\"shape\":[1,]}}", NULL, 0, KILN_ERR_PARSE, "must be an integer, found ']'");
    expect_fail("{\"w\":{\"shape\":[1 2]}}", NULL, 0, KILN_ERR_PARSE, "expected ',' or ']' in a shape, found a number");
    expect_fail("{\"w\":{\"shape\":[18446744073709551616]}}", NULL, 0, KILN_ERR_WEIGHTS,
                "a shape dimension of tensor 'w' is too large");
    expect_fail("{\"w\":{\"shape\":[9223372036854775808]}}", NULL, 0, KILN_ERR_WEIGHTS,
                "a shape dimension of tensor 'w' is too large");
    expect_fail("{\"w\":{\"data_offsets\":0}}", NULL, 0, KILN_ERR_PARSE,
                "data_offsets of tensor 'w' must be an array [begin, end], found a number");
    expect_fail("{\"w\":{\"data_offsets\":[0]}}", NULL, 0, KILN_ERR_PARSE,
                "data_offsets of tensor 'w' must have exactly 2 entries");
    expect_fail("{\"w\":{\"data_offsets\":[0,1,2]}}", NULL, 0, KILN_ERR_PARSE,
                "data_offsets of tensor 'w' must have exactly 2 entries");
    expect_fail("{\"w\":{\"data_offsets\":[-1,0]}}", NULL, 0, KILN_ERR_PARSE,
                "data_offsets of tensor 'w' must be a non-negative integer");
    expect_fail("{\"__metadata__\":{\"format\":1}}", NULL, 0, KILN_ERR_PARSE,
                "at byte 34: __metadata__ value of 'format' must be a string, found a number");
    expect_fail("{\"__metadata__\":[]}", NULL, 0, KILN_ERR_PARSE,
                "expected an object (__metadata__ maps strings to strings), found an array");
    expect_fail("{\"__metadata__\":{},\"__metadata__\":{}}", NULL, 0, KILN_ERR_PARSE,
                "at byte 27: __metadata__ appears twice");
    expect_fail("{\"__metadata__\":{\"a\":\"b\",}}", NULL, 0, KILN_ERR_PARSE,
                "expected a string key in __metadata__, found '}'");
}

static void test_bad_offsets(void)
{
    unsigned char data[16] = {0};
    expect_fail("{\"w\":" ENTRY("F32", "[1]", "[4,0]") "}", data, 16, KILN_ERR_WEIGHTS,
                "at byte 9: tensor 'w' has data_offsets [4, 0]: begin is after end");
    expect_fail("{\"w\":" ENTRY("F32", "[4]", "[4,20]") "}", data, 16, KILN_ERR_WEIGHTS,
                "tensor 'w' (header byte 9) has data_offsets [4, 20] past the end of the data area (16 bytes");
    expect_fail("{\"w\":" ENTRY("F32", "[1]", "[18446744073709551615,18446744073709551615]") "}",
                data, 16, KILN_ERR_WEIGHTS, "past the end of the data area");
    expect_fail("{\"w\":" ENTRY("F32", "[3]", "[0,8]") "}", data, 16, KILN_ERR_WEIGHTS,
                "tensor 'w' (header byte 9) has data_offsets [0, 8] (8 bytes), but 3 elements of F32 need 12 bytes");
    expect_fail("{\"w\":" ENTRY("F16", "[2,2]", "[0,4]") "}", data, 16, KILN_ERR_WEIGHTS,
                "but 4 elements of F16 need 8 bytes");
    expect_fail("{\"w\":" ENTRY("F32", "[]", "[0,0]") "}", data, 16, KILN_ERR_WEIGHTS,
                "but 1 elements of F32 need 4 bytes");
    expect_fail("{\"w\":" ENTRY("F4", "[3]", "[0,2]") "}", data, 16, KILN_ERR_WEIGHTS,
                "tensor 'w': 3 elements of F4 (4 bits) are not a whole number of bytes");
    expect_fail("{\"w\":" ENTRY("F32", "[4294967296,4294967296]", "[0,0]") "}", data, 16,
                KILN_ERR_WEIGHTS, "tensor 'w': the size of its shape overflows");
    expect_fail("{\"w\":" ENTRY("F32", "[4294967296,4294967295,2]", "[0,0]") "}", data, 16,
                KILN_ERR_WEIGHTS, "the size of its shape overflows");
    expect_fail("{\"a\":" ENTRY("F32", "[2]", "[0,8]") ",\"b\":" ENTRY("F32", "[2]", "[4,12]") "}", data,
                16, KILN_ERR_WEIGHTS,
                "tensors 'a' (data_offsets [0, 8], header byte 9) and 'b' (data_offsets [4, 12], header byte 62) overlap");
    /* overlap found whatever the header order; an empty tensor inside another is fine */
    expect_fail("{\"a\":" ENTRY("F32", "[1]", "[12,16]") ",\"e\":" ENTRY("F32", "[0]", "[2,2]") ",\"b\":"
                ENTRY("F32", "[4]", "[0,16]") "}",
                data, 16, KILN_ERR_WEIGHTS, "tensors 'b' (data_offsets [0, 16]");
    expect_fail("{\"a\":" ENTRY("F32", "[1]", "[0,4]") ",\"a\":" ENTRY("F32", "[1]", "[4,8]") "}", data,
                16, KILN_ERR_PARSE, "at byte 62: tensor 'a' appears twice (first at byte 9)");
    expect_fail("{\"\\u0061\":" ENTRY("F32", "[1]", "[0,4]") ",\"a\":" ENTRY("F32", "[1]", "[4,8]") "}",
                data, 16, KILN_ERR_PARSE, "tensor 'a' appears twice");
}

static void test_open_path_errors(void)
{
    char path[300];
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_st_file *f = (kiln_st_file *)1;
    tmp_path(path, sizeof path, "missing.safetensors");
    CU_ASSERT_EQUAL(kiln_st_open(path, &f, &d), KILN_ERR_IO);
    CU_ASSERT_PTR_NULL(f);
    CU_ASSERT_EQUAL_FATAL(d.count, 1);
    CU_ASSERT_STRING_EQUAL(d.entries[0].loc.file, path);
    CU_ASSERT_PTR_NOT_NULL(strstr(d.entries[0].message, "cannot open weights file: No such file"));

    CU_ASSERT_EQUAL(kiln_st_open(tmpdir, &f, &d), KILN_ERR_IO);
    CU_ASSERT_EQUAL_FATAL(d.count, 2);
    CU_ASSERT_STRING_EQUAL(d.entries[1].message, "cannot read weights file: this is a directory, not a regular file");

    tmp_path(path, sizeof path, "empty.safetensors");
    write_bytes(path, "", 0);
    CU_ASSERT_EQUAL(kiln_st_open(path, &f, &d), KILN_ERR_WEIGHTS);
    CU_ASSERT_EQUAL_FATAL(d.count, 3);
    CU_ASSERT_STRING_EQUAL(d.entries[2].loc.file, path);
    CU_ASSERT_PTR_NOT_NULL(strstr(d.entries[2].message, "file is 0 bytes"));

    /* a file whose header lies, opened through the mapping */
    size_t n = 0;
    unsigned char *b = all_bytes(&n);
    tmp_path(path, sizeof path, "cut.safetensors");
    write_bytes(path, b, n - 1);
    CU_ASSERT_EQUAL(kiln_st_open(path, &f, &d), KILN_ERR_WEIGHTS);
    CU_ASSERT_EQUAL_FATAL(d.count, 4);
    CU_ASSERT_PTR_NOT_NULL(strstr(d.entries[3].message, "tensor 'r9'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(d.entries[3].message, "past the end of the data area"));
    write_bytes(path, b, n);
    CU_ASSERT_EQUAL(kiln_st_open(path, &f, &d), KILN_OK);
    CU_ASSERT_EQUAL(kiln_st_count(f), 11);
    kiln_st_close(f);
    kiln_st_close(NULL);
    remove(path);
    tmp_path(path, sizeof path, "empty.safetensors");
    remove(path);
    free(b);

    /* a NULL diag is allowed */
    unsigned char z[8] = {0};
    CU_ASSERT_EQUAL(kiln_st_open_memory(z, 8, NULL, &f, NULL), KILN_ERR_PARSE);
    CU_ASSERT_EQUAL(kiln_st_open_memory(NULL, 0, "x", &f, NULL), KILN_ERR_WEIGHTS);
    kiln_diag_release(&d);
}

/* Every strict prefix of a valid file is refused cleanly (the last tensor is
 * not empty, so any cut loses data or header). */
static void check_every_prefix(const unsigned char *b, size_t n)
{
    for (size_t len = 0; len < n; len++) {
        unsigned char *copy = malloc(len ? len : 1); /* exact size: ASan sees any overread */
        memcpy(copy, b, len);
        kiln_diag d;
        kiln_diag_init(&d);
        kiln_st_file *f = NULL;
        kiln_status s = kiln_st_open_memory(copy, len, "cut.safetensors", &f, &d);
        if (s == KILN_OK || f != NULL || d.errors != 1) {
            fprintf(stderr, "\n  prefix of %zu bytes: status %d, %zu errors\n", len, (int)s, d.errors);
            CU_FAIL("a truncated file was not refused with one error");
            kiln_st_close(f);
            kiln_diag_release(&d);
            free(copy);
            return;
        }
        kiln_diag_release(&d);
        free(copy);
    }
}

static void test_truncated_everywhere(void)
{
    size_t n = 0;
    unsigned char *b = all_bytes(&n);
    check_every_prefix(b, n);
    /* the full file still opens from an exact-size copy */
    kiln_st_file *f = open_ok(b, n);
    kiln_st_close(f);
    free(b);

    char path[300];
    tmp_path(path, sizeof path, "prefix.safetensors");
    const char *names[2] = {"w", "b"};
    int ranks[2] = {2, 1};
    int64_t d0[2] = {2, 3}, d1[1] = {2};
    const int64_t *dims[2] = {d0, d1};
    float w[6] = {1, 2, 3, 4, 5, 6}, bb[2] = {7, 8};
    const float *data[2] = {w, bb};
    CU_ASSERT_EQUAL_FATAL(kiln_st_write_f32(path, 2, names, ranks, dims, data), KILN_OK);
    b = read_file(path, &n);
    check_every_prefix(b, n);
    free(b);
    remove(path);
}

/* Random corruption of a valid file: never a crash, a leak or an overread
 * (run under ASan/UBSan), and the result is either a file or one error. */
static void test_mutations(void)
{
    size_t n = 0;
    unsigned char *orig = all_bytes(&n);
    unsigned char *b = malloc(n);
    uint64_t rng = 0x12345678u;
    int accepted = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(b, orig, n);
        int edits = 1 + (int)(rng % 3);
        for (int e = 0; e < edits; e++) {
            rng = rng * 6364136223846793005u + 1442695040888963407u;
            size_t pos = (size_t)(rng >> 33) % n;
            static const unsigned char interesting[] = {'"', '\\', '{', '}', '[', ']', ',', ':', '0', '9', '-', ' ', 0, 0xff, 0x80, 'u'};
            b[pos] = (rng & 1) ? (unsigned char)(rng >> 20) : interesting[(rng >> 12) % sizeof interesting];
        }
        kiln_diag d;
        kiln_diag_init(&d);
        kiln_st_file *f = NULL;
        kiln_status s = kiln_st_open_memory(b, n, "m", &f, &d);
        if (s == KILN_OK) {
            accepted++;
            for (size_t i = 0; i < kiln_st_count(f); i++) {
                const kiln_st_tensor *t = kiln_st_at(f, i);
                CU_ASSERT(kiln_st_find(f, t->name) == t);
                volatile unsigned char sink = 0;
                for (size_t k = 0; k < t->nbytes; k++)
                    sink ^= ((const unsigned char *)t->data)[k];
                (void)sink;
            }
            kiln_st_close(f);
        } else if (d.errors != 1) {
            CU_FAIL("a refused file must have exactly one error");
        }
        kiln_diag_release(&d);
    }
    CU_ASSERT(accepted > 0); /* some edits hit the data only */
    free(b);
    free(orig);
}

static void test_alloc_failures(void)
{
    size_t n = 0;
    unsigned char *b = all_bytes(&n);
    for (int sticky = 0; sticky <= 1; sticky++) {
        int done = 0;
        for (long k = 1; k < 1000 && !done; k++) {
            kiln_diag d;
            kiln_diag_init(&d);
            kiln_st_file *f = NULL;
            kiln_alloc_fail_after(k, sticky);
            kiln_status s = kiln_st_open_memory(b, n, "oom.safetensors", &f, &d);
            long used = kiln_alloc_count();
            kiln_alloc_fail_after(-1, 0);
            if (s == KILN_OK) {
                CU_ASSERT_EQUAL(kiln_st_count(f), 11);
                kiln_st_close(f);
                if (used < k)
                    done = 1; /* no allocation failed: every point was tried */
            } else {
                CU_ASSERT_EQUAL(s, KILN_ERR_OUT_OF_MEMORY);
                CU_ASSERT_PTR_NULL(f);
                CU_ASSERT(kiln_diag_has_errors(&d));
            }
            kiln_diag_release(&d);
        }
        CU_ASSERT(done);
    }
    free(b);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kiln-test-st-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("safetensors", NULL, NULL);
    CU_add_test(s, "f16 scalar conversions", test_f16_scalar);
    CU_add_test(s, "f32 -> f16 against the compiler", test_f16_against_compiler);
    CU_add_test(s, "bf16 scalar conversions", test_bf16_scalar);
    CU_add_test(s, "bulk conversions, unaligned", test_bulk_convert);
    CU_add_test(s, "writer round trip", test_writer_round_trip);
    CU_add_test(s, "writer escapes names", test_writer_escapes_names);
    CU_add_test(s, "every dtype", test_all_dtypes);
    CU_add_test(s, "JSON forms", test_json_forms);
    CU_add_test(s, "bad header length", test_bad_length);
    CU_add_test(s, "bad JSON", test_bad_json);
    CU_add_test(s, "bad schema", test_bad_schema);
    CU_add_test(s, "bad offsets", test_bad_offsets);
    CU_add_test(s, "open errors", test_open_path_errors);
    CU_add_test(s, "every truncation", test_truncated_everywhere);
    CU_add_test(s, "random corruption", test_mutations);
    CU_add_test(s, "allocation failures", test_alloc_failures);
    CU_basic_set_mode(CU_BRM_NORMAL);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    rmdir(tmpdir);
    return failed ? 1 : 0;
}
