/* tests/codegen/aot_app.c: a small application of a compiled model, built
 * by aot_examples.sh for every example as
 *
 *   cc -DKILN_MODEL=lenet -include lenet.h aot_app.c lenet.o -lkiln_rt
 *
 * It makes deterministic inputs (batch 2 when the model has a batch), writes
 * them to DIR/inputs/<name>.npy, runs the model through the generated API
 * and writes the outputs to DIR/compiled/<name>.npy. Only the generated
 * header and libkiln_rt are used: this is what a user's program does. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define F(s) CAT(KILN_MODEL, s)
#define NIN CAT(KILN_MODEL, _NUM_INPUTS)
#define NOUT CAT(KILN_MODEL, _NUM_OUTPUTS)

#if NIN == 1
#define IN_ARGS in[0]
#elif NIN == 2
#define IN_ARGS in[0], in[1]
#elif NIN == 3
#define IN_ARGS in[0], in[1], in[2]
#elif NIN == 4
#define IN_ARGS in[0], in[1], in[2], in[3]
#else
#error "aot_app handles 1 to 4 inputs"
#endif
#if NOUT == 1
#define OUT_ARGS out[0]
#elif NOUT == 2
#define OUT_ARGS out[0], out[1]
#elif NOUT == 3
#define OUT_ARGS out[0], out[1], out[2]
#elif NOUT == 4
#define OUT_ARGS out[0], out[1], out[2], out[3]
#else
#error "aot_app handles 1 to 4 outputs"
#endif

static int write_npy(const char *path, const kiln_tensor_info *t, int64_t batch, const float *data, size_t n)
{
    char shape[256] = "", dict[512], header[576];
    for (int i = 0; i < t->rank; i++) {
        size_t len = strlen(shape);
        snprintf(shape + len, sizeof shape - len, "%lld,%s", (long long)(t->dims[i] < 0 ? batch : t->dims[i]),
                 i + 1 < t->rank ? " " : "");
    }
    if (t->rank > 1) /* (2, 3) rather than (2, 3,) */
        shape[strlen(shape) - 1] = '\0';
    snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", shape);
    size_t len = strlen(dict), total = 10 + len + 1;
    size_t pad = (64 - total % 64) % 64;
    memcpy(header, "\x93NUMPY\x01\x00", 8);
    uint16_t hl = (uint16_t)(len + 1 + pad);
    header[8] = (char)(hl & 0xff);
    header[9] = (char)(hl >> 8);
    memcpy(header + 10, dict, len);
    memset(header + 10 + len, ' ', pad);
    header[10 + len + pad] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int bad = fwrite(header, 1, 10 + len + pad + 1, f) != 10 + len + pad + 1 || fwrite(data, sizeof *data, n, f) != n;
    return fclose(f) != 0 || bad ? -1 : 0;
}

static size_t elements(const kiln_tensor_info *t, int64_t batch)
{
    size_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= (size_t)(t->dims[i] < 0 ? batch : t->dims[i]);
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const kiln_model_info *info = F(_info)();
    const int64_t batch = CAT(KILN_MODEL, _BATCHED) ? 2 : 1;
    float *in[NIN], *out[NOUT];
    char path[4096];
    snprintf(path, sizeof path, "%s/inputs", argv[1]);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/compiled", argv[1]);
    mkdir(path, 0777);
    uint64_t s = 12345;
    for (int k = 0; k < NIN; k++) {
        size_t n = elements(&info->inputs[k], batch);
        in[k] = malloc(n * sizeof(float));
        if (!in[k])
            return 1;
        for (size_t i = 0; i < n; i++) { /* a fixed LCG: uniform in [-1, 1) */
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            in[k][i] = (float)((double)(s >> 11) / 4503599627370496.0 - 1.0);
        }
        snprintf(path, sizeof path, "%s/inputs/%s.npy", argv[1], info->inputs[k].name);
        if (write_npy(path, &info->inputs[k], batch, in[k], n) != 0)
            return 1;
    }
    for (int k = 0; k < NOUT; k++)
        if (!(out[k] = malloc(elements(&info->outputs[k], batch) * sizeof(float))))
            return 1;
    KILN_MODEL *m = NULL;
    kiln_status st = F(_create)(&m, NULL);
    if (st == KILN_OK)
        st = F(_run)(m, batch, IN_ARGS, OUT_ARGS);
    F(_destroy)(m);
    if (st != KILN_OK) {
        fprintf(stderr, "%s: %s\n", info->name, kiln_status_string(st));
        return 1;
    }
    for (int k = 0; k < NOUT; k++) {
        snprintf(path, sizeof path, "%s/compiled/%s.npy", argv[1], info->outputs[k].name);
        if (write_npy(path, &info->outputs[k], batch, out[k], elements(&info->outputs[k], batch)) != 0)
            return 1;
    }
    for (int k = 0; k < NIN; k++)
        free(in[k]);
    for (int k = 0; k < NOUT; k++)
        free(out[k]);
    return 0;
}
