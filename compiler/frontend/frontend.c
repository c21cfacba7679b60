/* compiler/frontend/frontend.c: the frontend's entry points: reading the
 * file, choosing YAML or IR text, and the YAML pipeline's set-up. */
#define _POSIX_C_SOURCE 200809L
#include "frontend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fe.h"
#include "weights.h"

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* IR files carry folded weights as text after the passes, so they may be far
 * larger than a model description: FORMAT.md's 64 MiB limit is for YAML. */
#define KILN_KIR_MAX_BYTES ((size_t)4 << 30)

/* Reads a whole regular file of at most max_bytes into a kiln_malloc'd
 * buffer. A FIFO, a device or a directory is refused without reading from it:
 * the open does not wait for a FIFO's writer (O_NONBLOCK), and the file's
 * kind is checked before the first read. */
static kiln_status read_file(const char *path, size_t max_bytes, char **text, size_t *len, kiln_diag *d)
{
    kiln_loc loc = {path, 0, 0};
    *text = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        kiln_diag_error(d, loc, "cannot open: %s", strerror(errno));
        return KILN_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        kiln_diag_error(d, loc, "cannot read: %s", strerror(errno));
        close(fd);
        return KILN_ERR_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        kiln_diag_error(d, loc, "cannot read: this is %s; a model must be a regular file",
                        kiln_diag_file_kind((unsigned)st.st_mode));
        close(fd);
        return KILN_ERR_IO;
    }
    if ((uint64_t)st.st_size > max_bytes) {
        kiln_diag_error(d, loc, "file is larger than %zu MiB; refused", max_bytes >> 20);
        close(fd);
        return KILN_ERR_PARSE;
    }
    size_t size = (size_t)st.st_size;
    char *buf = kiln_malloc(size + 1);
    if (buf == NULL) {
        kiln_diag_error(d, loc, "out of memory reading the file");
        close(fd);
        return KILN_ERR_OUT_OF_MEMORY;
    }
    size_t got = 0;
    int err = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            err = errno;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != size) {
        if (err)
            kiln_diag_error(d, loc, "cannot read: %s", strerror(err));
        else
            kiln_diag_error(d, loc, "cannot read: the file shrank while it was read");
        kiln_free(buf);
        return KILN_ERR_IO;
    }
    buf[size] = '\0';
    *text = buf;
    *len = size;
    return KILN_OK;
}

kiln_status kiln_frontend_load_yaml_text_opts(const char *text, size_t len, const char *filename,
                                              const kiln_frontend_options *opt, kiln_graph **out, kiln_diag *d)
{
    kiln_fe fe;
    memset(&fe, 0, sizeof fe);
    *out = NULL;
    fe.d = d;
    fe.max_elements = opt ? opt->max_elements : 0;
    kiln_arena_init(&fe.arena);
    kiln_strmap_init(&fe.top, &fe.arena);
    kiln_strmap_init(&fe.reserved, &fe.arena);
    kiln_strmap_init(&fe.params, &fe.arena);
    kiln_strmap_init(&fe.blocks, &fe.arena);

    if (filename == NULL)
        filename = "<input>";
    fe.file = kiln_arena_strdup(&fe.arena, filename);
    const char *slash = strrchr(filename, '/');
    fe.dir = slash ? kiln_arena_strndup(&fe.arena, filename, (size_t)(slash - filename) + 1) : "";
    if (fe.file == NULL || fe.dir == NULL) {
        kiln_loc loc = {filename, 0, 0};
        kiln_diag_error(d, loc, "out of memory");
        kiln_arena_release(&fe.arena);
        return KILN_ERR_OUT_OF_MEMORY;
    }

    kiln_yaml_node *root = NULL;
    kiln_status st = kiln_yaml_parse(text, len, fe.file, &fe.arena, &root, d);
    if (st == KILN_OK)
        st = kiln_fe_load_model(&fe, root);
    if (st == KILN_OK && fe.status != KILN_OK)
        st = fe.status;
    if (st == KILN_OK && !(opt && opt->allow_nonfinite))
        st = kiln_weights_check_values(fe.g, d);
    if (st == KILN_OK) {
        *out = fe.g; /* ownership: to the caller */
    } else {
        kiln_graph_destroy(fe.g);
    }
    kiln_free(fe.layers);
    kiln_arena_release(&fe.arena);
    return st;
}

kiln_status kiln_frontend_load_yaml_text(const char *text, size_t len, const char *filename, kiln_graph **out,
                                         kiln_diag *d)
{
    return kiln_frontend_load_yaml_text_opts(text, len, filename, NULL, out, d);
}

kiln_status kiln_frontend_load(const char *path, kiln_graph **out, kiln_diag *d)
{
    return kiln_frontend_load_opts(path, NULL, out, d);
}

kiln_status kiln_frontend_load_opts(const char *path, const kiln_frontend_options *opt, kiln_graph **out,
                                    kiln_diag *d)
{
    *out = NULL;
    bool yaml = ends_with(path, ".yaml") || ends_with(path, ".yml");
    bool kir = ends_with(path, ".kir");
    if (!yaml && !kir) {
        kiln_loc loc = {path, 0, 0};
        kiln_diag_error(d, loc, "unknown kind of model file: expected .yaml, .yml or .kir");
        return KILN_ERR_INVALID_ARGUMENT;
    }
    char *text;
    size_t len;
    kiln_status st = read_file(path, yaml ? KILN_YAML_MAX_BYTES : KILN_KIR_MAX_BYTES, &text, &len, d);
    if (st != KILN_OK)
        return st;
    if (yaml) {
        st = kiln_frontend_load_yaml_text_opts(text, len, path, opt, out, d);
    } else {
        kiln_graph *g = NULL;
        st = kiln_ir_parse(text, len, path, &g, d);
        if (st == KILN_OK && opt && opt->max_elements > 0)
            g->max_elements = opt->max_elements; /* the parser checked against the default */
        if (st == KILN_OK)
            st = kiln_weights_bind(g, d);
        if (st == KILN_OK && !(opt && opt->allow_nonfinite))
            st = kiln_weights_check_values(g, d);
        if (st == KILN_OK)
            *out = g;
        else
            kiln_graph_destroy(g);
    }
    kiln_free(text);
    return st;
}
