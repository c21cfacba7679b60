/* compiler/driver/cmd_import.c: `kiln import MODEL.onnx -o OUT.yaml
 * [--weights OUT.safetensors] [--input NAME=D0xD1x...]... [--name NAME]`:
 * an ONNX model to a kiln model and its weights (docs/import.md). */
#define _XOPEN_SOURCE 700
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "compiler/frontend/onnx/onnx.h"
#include "ir/diag.h"
#include "outputs.h"

static const char help[] =
    "usage: kiln import MODEL.onnx -o OUT.yaml [--weights OUT.safetensors]\n"
    "                   [--input NAME=D0xD1x...]... [--name NAME]\n"
    "\n"
    "Reads an ONNX model and writes the same network as a kiln model (YAML,\n"
    "docs/format.md) and its weights (safetensors), which the YAML names by a\n"
    "path relative to itself.\n"
    "\n"
    "  -o OUT.yaml           the model to write (required)\n"
    "  --weights FILE        the weights file (default: OUT with .safetensors)\n"
    "  --input NAME=DIMS     pin input NAME (its ONNX name) to a shape, DIMS like\n"
    "                        1x3x224x224 ('NAME=' for a rank-0 input). Every dynamic\n"
    "                        dimension must be pinned, except a leading one, which\n"
    "                        becomes the model's batch. May be repeated.\n"
    "  --name NAME           the model's name, a C identifier (default: from OUT)\n"
    "\n"
    "Exit status: 0 written; 1 an error (a file, a pin that does not fit the\n"
    "model); 2 a usage error; 3 the model uses what kiln cannot express: one\n"
    "line per problem on standard error,\n"
    "  MODEL.onnx: node 'NAME' (OpType): unsupported: REASON\n"
    "docs/import.md lists what is supported and how each ONNX op is written.\n";

/* The directory part of a path ("." when none). */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* `to` (a file) relative to directory `from`: both directories are resolved,
 * so the YAML finds its weights wherever it is read from. NULL when a
 * directory does not exist. */
static char *relative_path(const char *from_dir, const char *to_file)
{
    char *to_dir = dir_of(to_file);
    char a[PATH_MAX], b[PATH_MAX];
    char *out = NULL;
    if (!to_dir || !realpath(from_dir, a) || !realpath(to_dir, b))
        goto done;
    /* common leading components */
    size_t i = 0, last = 0;
    while (a[i] && a[i] == b[i]) {
        if (a[i] == '/')
            last = i;
        i++;
    }
    if (!a[i] && (!b[i] || b[i] == '/'))
        last = i;
    else if (!b[i] && a[i] == '/')
        last = i;
    size_t ups = 0;
    for (const char *p = a + last; *p; p++)
        if (*p == '/')
            ups++;
    if (strcmp(a, "/") == 0)
        ups = 0;
    const char *rest = b + last;
    while (*rest == '/')
        rest++;
    size_t len = ups * 3 + strlen(rest) + strlen(base_of(to_file)) + 2;
    out = malloc(len);
    if (!out)
        goto done;
    out[0] = '\0';
    for (size_t k = 0; k < ups; k++)
        strcat(out, "../");
    if (*rest) {
        strcat(out, rest);
        strcat(out, "/");
    }
    strcat(out, base_of(to_file));
done:
    free(to_dir);
    return out;
}

/* The model name from OUT's file name: a C identifier. */
static char *name_from(const char *out)
{
    const char *base = base_of(out);
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    char *name = malloc(len + 2);
    if (!name)
        return NULL;
    size_t w = 0;
    if (len == 0 || isdigit((unsigned char)base[0]))
        name[w++] = '_';
    for (size_t k = 0; k < len; k++)
        name[w++] = isalnum((unsigned char)base[k]) ? base[k] : '_';
    name[w] = '\0';
    return name;
}

static bool is_identifier(const char *s)
{
    if (!*s || isdigit((unsigned char)*s))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return false;
    return true;
}

/* Reads the whole of regular file `path`; a FIFO, device or directory is
 * refused before any read (the open does not wait for a FIFO's writer). */
static char *read_file(const char *path, size_t *size, char *err, size_t err_size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, err_size, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (errno == 0 || S_ISREG(st.st_mode))
            snprintf(err, err_size, "cannot read '%s': %s", path, strerror(errno));
        else
            snprintf(err, err_size, "cannot read '%s': this is %s; a model must be a regular file", path,
                     kiln_diag_file_kind((unsigned)st.st_mode));
        close(fd);
        return NULL;
    }
    char *data = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            size_t want = cap ? cap * 2 : (size_t)1 << 20;
            char *p = realloc(data, want);
            if (!p) {
                snprintf(err, err_size, "'%s' does not fit in memory", path);
                free(data);
                close(fd);
                return NULL;
            }
            data = p;
            cap = want;
        }
        ssize_t got = read(fd, data + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(err, err_size, "cannot read '%s': %s", path, strerror(errno));
            free(data);
            close(fd);
            return NULL;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    *size = n;
    return data;
}

int kiln_cmd_import(int argc, char **argv)
{
    kiln_args a = {.argc = argc, .argv = argv, .i = 1, .cmd = "import"};
    const char *model = NULL, *out = NULL, *weights = NULL, *name = NULL;
    kiln_onnx_pin *pins = calloc((size_t)argc, sizeof *pins);
    char **pin_names = calloc((size_t)argc, sizeof *pin_names);
    size_t n_pins = 0;
    int rc = 2;
    char *data = NULL, *dir = NULL, *wpath = NULL, *wref = NULL, *mname = NULL, *odir = NULL;
    kiln_onnx_result *res = NULL;
    kiln_outputs outs;
    kiln_outputs_init(&outs, "import");
    const kiln_out_file *out_yaml = NULL, *out_weights = NULL;
    if (!pins || !pin_names) {
        rc = kiln_cli_error("import", "out of memory");
        goto done;
    }
    for (; a.i < argc; a.i++) {
        const char *v, *arg = argv[a.i];
        int r;
        if (kiln_args_flag(&a, "--help") || kiln_args_flag(&a, "-h")) {
            fputs(help, stdout);
            rc = 0;
            goto done;
        }
        if ((r = kiln_args_value(&a, "-o", &out)) || (r = kiln_args_value(&a, "--output", &out)) ||
            (r = kiln_args_value(&a, "--weights", &weights)) || (r = kiln_args_value(&a, "--name", &name))) {
            if (r < 0)
                goto done;
            continue;
        }
        if ((r = kiln_args_value(&a, "--input", &v))) {
            if (r < 0)
                goto done;
            size_t len = strlen(v) + 1;
            char err[512];
            if (!(pin_names[n_pins] = malloc(len))) {
                rc = kiln_cli_error("import", "out of memory");
                goto done;
            }
            if (kiln_onnx_pin_parse(v, &pins[n_pins], pin_names[n_pins], len, err, sizeof err) != 0) {
                n_pins++;
                kiln_cli_usage_error("import", "%s", err);
                goto done;
            }
            n_pins++;
            continue;
        }
        if (arg[0] != '-' && !model) {
            model = arg;
            continue;
        }
        rc = kiln_args_unknown(&a);
        goto done;
    }
    if (!model) {
        rc = kiln_cli_usage_error("import", "no model given (see 'kiln import --help')");
        goto done;
    }
    if (!out) {
        rc = kiln_cli_usage_error("import", "-o OUT.yaml is required");
        goto done;
    }
    if (name && !is_identifier(name)) {
        rc = kiln_cli_usage_error("import", "--name must be a C identifier, got '%s'", name);
        goto done;
    }
    rc = 1;
    if (!weights) {
        const char *base = base_of(out), *dot = strrchr(base, '.');
        size_t stem = dot && dot != base ? (size_t)(dot - out) : strlen(out);
        if (!(wpath = malloc(stem + 13))) {
            kiln_cli_error("import", "out of memory");
            goto done;
        }
        memcpy(wpath, out, stem);
        strcpy(wpath + stem, ".safetensors");
        weights = wpath;
    }
    /* The ONNX model may be neither output; the outputs are published only
     * when both are written (compiler/driver/outputs.h). */
    if ((rc = kiln_outputs_input(&outs, model, "the ONNX model", KILN_OUT_USAGE)) != 0 ||
        (rc = kiln_outputs_add(&outs, out, "-o", KILN_OUT_USAGE, &out_yaml)) != 0)
        goto done;
    rc = 1;
    odir = dir_of(out);
    if (!odir || !(wref = relative_path(odir, weights))) {
        kiln_cli_error("import", "cannot place '%s' relative to '%s': does the directory exist?", weights, out);
        goto done;
    }
    mname = name ? strdup(name) : name_from(out);
    dir = dir_of(model);
    if (!mname || !dir) {
        kiln_cli_error("import", "out of memory");
        goto done;
    }
    size_t size = 0;
    char err[512];
    if (!(data = read_file(model, &size, err, sizeof err))) {
        kiln_cli_error("import", "%s", err);
        goto done;
    }
    kiln_onnx_options opt = {.model_name = mname, .source_name = base_of(model), .weights_ref = wref,
                             .base_dir = dir, .pins = pins, .n_pins = n_pins};
    double t0 = kiln_cli_seconds();
    kiln_status st = kiln_onnx_import(data, size, &opt, &res);
    double t1 = kiln_cli_seconds();
    for (size_t k = 0; res && k < res->n_problems; k++)
        fprintf(stderr, "%s: %s\n", model, res->problems[k].text);
    if (st == KILN_ERR_UNSUPPORTED) {
        fprintf(stderr, "kiln import: %s was not imported: %zu problem%s\n", model, res->n_problems,
                res->n_problems == 1 ? "" : "s");
        rc = 3;
        goto done;
    }
    if (st != KILN_OK) {
        kiln_cli_error("import", "%s: %s", model, kiln_status_string(st));
        goto done;
    }
    if (res->n_tensors > 0) {
        if ((rc = kiln_outputs_add(&outs, weights, weights == wpath ? "the weights file" : "--weights",
                                   weights == wpath ? 0 : KILN_OUT_USAGE, &out_weights)) != 0)
            goto done;
        rc = 1;
        st = kiln_onnx_write_weights(res, out_weights->tmp);
        if (st != KILN_OK) {
            kiln_cli_error("import", "cannot write '%s': %s", weights, kiln_status_string(st));
            goto done;
        }
    }
    FILE *f = fopen(out_yaml->tmp, "w");
    if (!f || fwrite(res->yaml, 1, res->yaml_len, f) != res->yaml_len || fclose(f) != 0) {
        if (f && errno == 0)
            errno = EIO;
        kiln_cli_error("import", "cannot write '%s': %s", out, strerror(errno));
        goto done;
    }
    if (kiln_outputs_commit(&outs) != 0)
        goto done;
    double bytes = 0;
    for (size_t k = 0; k < res->n_tensors; k++) {
        double c = 4;
        for (int d = 0; d < res->tensors[k].rank; d++)
            c *= (double)res->tensors[k].dims[d];
        bytes += c;
    }
    printf("wrote %s (%zu layers from %zu ONNX nodes, operator set %lld)", out, res->n_layers, res->n_nodes,
           (long long)res->opset);
    if (res->n_tensors)
        printf(", %s (%zu tensors, %.1f MiB)", weights, res->n_tensors, bytes / (1024.0 * 1024.0));
    printf(" in %.3f s\n", t1 - t0);
    rc = 0;
done:
    kiln_outputs_release(&outs);
    kiln_onnx_result_destroy(res);
    for (size_t k = 0; k < n_pins; k++)
        free(pin_names[k]);
    free(pin_names);
    free(pins);
    free(data);
    free(dir);
    free(odir);
    free(wpath);
    free(wref);
    free(mname);
    return rc;
}
