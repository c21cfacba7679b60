/* examples/app/digits_app.c: a small C program that links the compiled digit
 * classifier (examples/digits/digits.yaml) and nothing but libkiln_rt.
 *
 *   kiln compile examples/digits/digits.yaml -o digits.o --header digits.h
 *   cc -I. $(pkg-config --cflags kiln-rt) examples/app/digits_app.c digits.o \
 *      $(pkg-config --libs kiln-rt) -o digits_app
 *   ./digits_app examples/digits/samples/digit_*.npy
 *
 * (tools/demo.sh builds it by hand from the build tree; examples/cmake-app
 * and examples/make-app build it against an installed kiln.)
 *
 * Each argument is a float32 .npy image of shape (1, 1, 28, 28), values in
 * [0, 1]. The program draws each image and prints the class the model picks. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digits.h"

/* Reads a little-endian float32 .npy file of exactly `count` elements. A
 * deliberately small reader: version 1-3 headers, '<f4', C order. */
static int read_image(const char *path, float *dst, size_t count)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    unsigned char magic[10];
    int ok = fread(magic, 1, 8, f) == 8 && memcmp(magic, "\x93NUMPY", 6) == 0;
    uint32_t header_len = 0;
    if (ok && magic[6] == 1) {
        unsigned char b[2];
        ok = fread(b, 1, 2, f) == 2;
        header_len = (uint32_t)b[0] | (uint32_t)b[1] << 8;
    } else if (ok) {
        unsigned char b[4];
        ok = fread(b, 1, 4, f) == 4;
        header_len = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    }
    char header[1024];
    ok = ok && header_len < sizeof header && fread(header, 1, header_len, f) == header_len;
    if (ok) {
        header[header_len] = '\0';
        ok = strstr(header, "'<f4'") && strstr(header, "False");
    }
    ok = ok && fread(dst, sizeof(float), count, f) == count && fgetc(f) == EOF;
    fclose(f);
    return ok ? 0 : -1;
}

static void draw(const float *image)
{
    static const char shades[] = " .:-=+*#%@";
    for (int y = 0; y < 28; y += 2) { /* two rows per line: terminal cells are tall */
        fputs("    ", stdout);
        for (int x = 0; x < 28; x++) {
            float v = (image[y * 28 + x] + image[(y + 1) * 28 + x]) / 2;
            int i = (int)(v * 9.99f);
            putchar(shades[i < 0 ? 0 : i > 9 ? 9 : i]);
        }
        putchar('\n');
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s IMAGE.npy ...\n", argv[0]);
        return 2;
    }
    const kiln_model_info *info = digits_info();
    printf("model '%s': %s\n", info->name, info->description ? info->description : "");

    printf("libkiln_rt %s\n", kiln_version());

    /* The defaults (one thread per core), and a place for create's reason
     * should it fail. */
    char why[256];
    kiln_options opt = KILN_OPTIONS_INIT;
    opt.error = why;
    opt.error_size = sizeof why;
    digits *model = NULL;
    kiln_status st = digits_create(&model, &opt);
    if (st != KILN_OK) {
        fprintf(stderr, "digits_create: %s: %s\n", kiln_status_string(st), why);
        return 1;
    }
    int rc = 0;
    for (int a = 1; a < argc; a++) {
        float image[digits_image_ELEMENTS_PER_ITEM], logits[digits_logits_ELEMENTS_PER_ITEM],
            probs[digits_probs_ELEMENTS_PER_ITEM];
        if (read_image(argv[a], image, digits_image_ELEMENTS_PER_ITEM) != 0) {
            fprintf(stderr, "%s: not a float32 (1, 1, 28, 28) .npy file\n", argv[a]);
            rc = 1;
            continue;
        }
        /* The checked run compares each buffer's size with what batch 1 needs. */
        st = digits_run_checked(model, 1, image, sizeof image, logits, sizeof logits, probs, sizeof probs);
        if (st != KILN_OK) {
            fprintf(stderr, "digits_run: %s: %s\n", kiln_status_string(st), digits_last_error(model));
            rc = 1;
            break;
        }
        int best = 0;
        for (int k = 1; k < 10; k++)
            if (probs[k] > probs[best])
                best = k;
        printf("\n%s\n", argv[a]);
        draw(image);
        printf("    -> %d  (probability %.4f)\n", best, probs[best]);
    }
    digits_destroy(model);
    return rc;
}
