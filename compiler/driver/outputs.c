/* compiler/driver/outputs.c: temporary files renamed into place at the end
 * of a successful command; inputs and outputs kept apart (see outputs.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "outputs.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "guard.h"
#include "ir/diag.h"

static mode_t the_umask(void)
{
    static mode_t mask = (mode_t)-1;
    if (mask == (mode_t)-1) { /* read once, before any thread of the command exists */
        mask = umask(022);
        umask(mask);
    }
    return mask;
}

void kiln_outputs_init(kiln_outputs *o, const char *cmd)
{
    memset(o, 0, sizeof *o);
    o->cmd = cmd;
    o->made_dir_slot = -1;
    (void)the_umask();
}

static int fail(const kiln_outputs *o, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(const kiln_outputs *o, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "kiln %s: error: ", o->cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return status;
}

/* "dir/base" with dir's own separator handling; malloc'd. */
static char *join(const char *dir, const char *base)
{
    size_t n = strlen(dir), m = strlen(base);
    char *p = malloc(n + m + 2);
    if (p) {
        memcpy(p, dir, n);
        size_t at = n;
        if (n == 0 || dir[n - 1] != '/')
            p[at++] = '/';
        memcpy(p + at, base, m + 1);
    }
    return p;
}

/* The directory and last component of path (copies; malloc'd). */
static int split(const char *path, char **dir, char **base)
{
    char *a = strdup(path), *b = strdup(path);
    *dir = a ? strdup(dirname(a)) : NULL;
    *base = b ? strdup(basename(b)) : NULL;
    free(a);
    free(b);
    if (!*dir || !*base) {
        free(*dir);
        free(*base);
        return -1;
    }
    return 0;
}

/* path made absolute, with "//", "." and ".." removed by the text alone. */
static char *lexical(const char *path)
{
    char cwd[PATH_MAX];
    const char *prefix = "";
    if (path[0] != '/') {
        if (!getcwd(cwd, sizeof cwd))
            return strdup(path);
        prefix = cwd;
    }
    size_t n = strlen(prefix) + strlen(path) + 3;
    char *all = malloc(n), *out = malloc(n);
    if (!all || !out) {
        free(all);
        free(out);
        return NULL;
    }
    snprintf(all, n, "%s/%s", prefix, path);
    size_t w = 0;
    for (char *p = all; *p;) {
        while (*p == '/')
            p++;
        char *end = p;
        while (*end && *end != '/')
            end++;
        size_t len = (size_t)(end - p);
        if (len == 0 || (len == 1 && p[0] == '.')) {
            /* nothing */
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            while (w > 0 && out[w - 1] != '/')
                w--;
            if (w > 0)
                w--;
        } else {
            out[w++] = '/';
            memcpy(out + w, p, len);
            w += len;
        }
        p = end;
    }
    if (w == 0)
        out[w++] = '/';
    out[w] = '\0';
    free(all);
    return out;
}

/* The absolute spelling two paths are compared by: the real path of the
 * file, or of its directory followed by its name when the file does not
 * exist yet, or the lexical form when neither exists. malloc'd. */
static char *normalize(const char *path)
{
    char real[PATH_MAX];
    if (realpath(path, real))
        return strdup(real);
    char *dir, *base;
    if (split(path, &dir, &base) != 0)
        return NULL;
    char *res;
    if (strcmp(base, ".") != 0 && strcmp(base, "..") != 0 && strcmp(base, "/") != 0 && realpath(dir, real))
        res = join(real, base);
    else
        res = lexical(path);
    free(dir);
    free(base);
    return res;
}

static bool same(const char *norm_a, bool exists_a, dev_t dev_a, ino_t ino_a, const char *norm_b, bool exists_b,
                 dev_t dev_b, ino_t ino_b)
{
    if (exists_a && exists_b)
        return dev_a == dev_b && ino_a == ino_b;
    return norm_a && norm_b && strcmp(norm_a, norm_b) == 0;
}

static int clash_status(unsigned flags) { return (flags & KILN_OUT_USAGE) ? 2 : 1; }

int kiln_outputs_input(kiln_outputs *o, const char *path, const char *role, unsigned flags)
{
    if (!path || !*path)
        return 0;
    if (kiln_grow((void **)&o->in, &o->cap_in, o->n_in + 1, sizeof *o->in) != 0)
        return fail(o, 1, "out of memory");
    kiln_out_input *in = &o->in[o->n_in];
    memset(in, 0, sizeof *in);
    in->path = path;
    in->role = role;
    struct stat st;
    if (stat(path, &st) == 0) {
        in->exists = true;
        in->dev = st.st_dev;
        in->ino = st.st_ino;
    }
    in->norm = normalize(path);
    o->n_in++;
    for (size_t i = 0; i < o->n_out; i++) {
        const kiln_out_file *f = o->out[i];
        if (same(f->norm, f->exists, f->dev, f->ino, in->norm, in->exists, in->dev, in->ino))
            return fail(o, clash_status(flags), "%s '%s' is %s '%s', which kiln reads: an output never replaces an "
                        "input (choose another name)", f->role, f->path, role, path);
    }
    return 0;
}

/* Creates the temporary file of f: `.BASE.kiln-XXXXXX` in the target's
 * directory, or `kiln-XXXXXX` in $TMPDIR for a device. */
static int make_temporary(kiln_outputs *o, kiln_out_file *f)
{
    char *dir = NULL, *base = NULL, *name = NULL;
    if (f->device) {
        const char *t = getenv("TMPDIR");
        dir = strdup(t && *t ? t : "/tmp");
        name = strdup("kiln-XXXXXX");
    } else if (split(f->target, &dir, &base) == 0) {
        /* a name within NAME_MAX whatever the output's length */
        size_t n = strlen(base) > 200 ? 200 : strlen(base);
        name = malloc(n + 20);
        if (name)
            snprintf(name, n + 20, ".%.*s.kiln-XXXXXX", (int)n, base);
    }
    char *tmpl = dir && name ? join(dir, name) : NULL;
    free(dir);
    free(base);
    free(name);
    if (!tmpl)
        return fail(o, 1, "out of memory");
    int fd = mkostemp(tmpl, O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        char *slash = strrchr(tmpl, '/');
        if (slash)
            *slash = '\0';
        int rc;
        if (f->device)
            rc = fail(o, 1, "cannot write '%s': cannot create a temporary file in $TMPDIR ('%s'): %s", f->path,
                      tmpl, strerror(e));
        else if (e == ENOENT || e == ENOTDIR)
            rc = fail(o, 1, "cannot write '%s': %s", f->path, strerror(e));
        else /* the file itself may be writable: say where kiln needs to write */
            rc = fail(o, 1, "cannot write '%s': cannot create a file in its directory '%s' (kiln writes each output "
                      "beside it, then renames it into place): %s", f->path, slash ? tmpl : ".", strerror(e));
        free(tmpl);
        return rc;
    }
    close(fd);
    f->tmp = tmpl;
    f->slot = kiln_guard_remember(tmpl, 0);
    return 0;
}

static void free_file(kiln_out_file *f)
{
    if (!f)
        return;
    free(f->path);
    free(f->target);
    free(f->tmp);
    free(f->norm);
    free(f);
}

int kiln_outputs_add(kiln_outputs *o, const char *path, const char *role, unsigned flags, const kiln_out_file **out)
{
    if (out)
        *out = NULL;
    if (!path || !*path)
        return fail(o, 2, "%s needs a file name", role);
    kiln_out_file *f = calloc(1, sizeof *f);
    if (!f || kiln_grow((void **)&o->out, &o->cap_out, o->n_out + 1, sizeof *o->out) != 0) {
        free(f);
        return fail(o, 1, "out of memory");
    }
    f->role = role;
    f->slot = -1;
    f->executable = (flags & KILN_OUT_EXECUTABLE) != 0;
    f->path = strdup(path);
    f->norm = normalize(path);
    int rc = 0;
    struct stat st, lst;
    if (!f->path || !f->norm) {
        rc = fail(o, 1, "out of memory");
    } else if (stat(path, &st) == 0) {
        f->exists = true;
        f->dev = st.st_dev;
        f->ino = st.st_ino;
        if (S_ISREG(st.st_mode)) {
            f->mode = st.st_mode & 0777;
            f->target = realpath(path, NULL); /* through symbolic links: the link stays */
            if (!f->target)
                rc = fail(o, 1, "cannot write '%s': %s", path, strerror(errno));
            else if (access(path, W_OK) != 0)
                rc = fail(o, 1, "cannot write '%s': %s", path, strerror(errno));
        } else if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
            f->device = true;
            f->target = strdup(path);
            if (!f->target)
                rc = fail(o, 1, "out of memory");
        } else {
            rc = fail(o, 1, "cannot write '%s': it is %s", path, kiln_diag_file_kind((unsigned)st.st_mode));
        }
    } else if (errno != ENOENT) {
        rc = fail(o, 1, "cannot write '%s': %s", path, strerror(errno));
    } else if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
        rc = fail(o, 1, "cannot write '%s': it is a symbolic link to a file that does not exist", path);
    } else if ((f->target = strdup(path)) == NULL) {
        rc = fail(o, 1, "out of memory");
    }
    for (size_t i = 0; rc == 0 && i < o->n_in; i++) {
        const kiln_out_input *in = &o->in[i];
        if (same(f->norm, f->exists, f->dev, f->ino, in->norm, in->exists, in->dev, in->ino))
            rc = fail(o, clash_status(flags), "%s '%s' is %s '%s', which kiln reads: an output never replaces an "
                      "input (choose another name)", role, path, in->role, in->path);
    }
    for (size_t i = 0; rc == 0 && i < o->n_out; i++) {
        const kiln_out_file *g = o->out[i];
        if (same(f->norm, f->exists, f->dev, f->ino, g->norm, g->exists, g->dev, g->ino))
            rc = fail(o, clash_status(flags), "%s '%s' and %s '%s' are the same file: each output needs a file of "
                      "its own", role, path, g->role, g->path);
    }
    if (rc == 0)
        rc = make_temporary(o, f);
    if (rc != 0) {
        free_file(f);
        return rc;
    }
    o->out[o->n_out++] = f;
    if (out)
        *out = f;
    return 0;
}

int kiln_outputs_make_dir(kiln_outputs *o, const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return fail(o, 1, "cannot write into '%s': it is %s, not a directory", dir,
                        kiln_diag_file_kind((unsigned)st.st_mode));
        return 0;
    }
    if (mkdir(dir, 0777) != 0)
        return fail(o, 1, "cannot create the directory '%s': %s", dir, strerror(errno));
    free(o->made_dir);
    o->made_dir = strdup(dir);
    o->made_dir_slot = kiln_guard_remember(dir, 1);
    return 0;
}

/* Writes every byte of f->tmp into the device or FIFO f->path. */
static int copy_into_device(kiln_outputs *o, kiln_out_file *f)
{
    /* No O_CREAT, no O_TRUNC: the device is written to, never made or
     * replaced. O_NONBLOCK: a FIFO without a reader is an error, not a
     * wait; the writes themselves block as usual. */
    int out = open(f->path, O_WRONLY | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    if (out < 0) {
        if (errno == ENXIO)
            return fail(o, 1, "cannot write '%s': no process is reading from this FIFO", f->path);
        return fail(o, 1, "cannot write '%s': %s", f->path, strerror(errno));
    }
    int fl = fcntl(out, F_GETFL);
    if (fl >= 0)
        fcntl(out, F_SETFL, fl & ~O_NONBLOCK);
    int in = open(f->tmp, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        int e = errno;
        close(out);
        return fail(o, 1, "cannot write '%s': cannot read back '%s': %s", f->path, f->tmp, strerror(e));
    }
    char buf[65536];
    int err = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = errno;
            break;
        }
        if (n == 0)
            break;
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                err = w < 0 ? errno : EIO;
                break;
            }
            done += w;
        }
        if (err)
            break;
    }
    close(in);
    if (close(out) != 0 && !err && errno != EINTR)
        err = errno;
    if (err)
        return fail(o, 1, "cannot write '%s': %s", f->path, strerror(err));
    return 0;
}

int kiln_outputs_write_devices(kiln_outputs *o)
{
    for (size_t i = 0; i < o->n_out; i++) {
        kiln_out_file *f = o->out[i];
        if (f->device && !f->committed) {
            if (copy_into_device(o, f) != 0)
                return 1;
            f->committed = true;
        }
    }
    return 0;
}

int kiln_outputs_commit(kiln_outputs *o)
{
    /* Devices first: they are where a write can still fail (a full
     * device, a FIFO nobody reads). */
    if (kiln_outputs_write_devices(o) != 0)
        return 1;
    mode_t mask = the_umask();
    for (size_t i = 0; i < o->n_out; i++) {
        kiln_out_file *f = o->out[i];
        if (f->device || f->committed)
            continue;
        mode_t mode = f->exists ? f->mode : ((f->executable ? 0777 : 0666) & ~mask);
        if (chmod(f->tmp, mode) != 0 || rename(f->tmp, f->target) != 0)
            return fail(o, 1, "cannot write '%s': %s", f->path, strerror(errno));
        f->committed = true;
        kiln_guard_forget(f->slot);
    }
    if (o->made_dir) {
        kiln_guard_forget(o->made_dir_slot);
        free(o->made_dir);
        o->made_dir = NULL;
    }
    return 0;
}

void kiln_outputs_release(kiln_outputs *o)
{
    for (size_t i = 0; i < o->n_out; i++) {
        kiln_out_file *f = o->out[i];
        if (f->tmp && (f->device || !f->committed))
            unlink(f->tmp);
        kiln_guard_forget(f->slot);
        free_file(f);
    }
    free(o->out);
    for (size_t i = 0; i < o->n_in; i++)
        free(o->in[i].norm);
    free(o->in);
    if (o->made_dir) {
        rmdir(o->made_dir); /* only when empty: nothing else of the user's goes */
        kiln_guard_forget(o->made_dir_slot);
        free(o->made_dir);
    }
    memset(o, 0, sizeof *o);
}
