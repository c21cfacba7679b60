/* compiler/driver/npy.c: NumPy .npy reading and writing (see npy.h). The
 * format: "\x93NUMPY", major and minor version bytes, a little-endian header
 * length (2 bytes in 1.0, 4 in 2.0/3.0), a Python dict literal padded with
 * spaces and ended by '\n', then the raw array data. */
#define _POSIX_C_SOURCE 200809L

#include "npy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ir/arena.h"
#include "ir/diag.h"

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/* Spaces numpy leaves after the dict so the shape can grow in place. */
#define NPY_GROWTH_AXIS_MAX_DIGITS 21
#define NPY_ALIGN 64

static kiln_status npy_error(char *err, size_t err_size, const char *prefix, kiln_status status,
                             const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static kiln_status npy_error(char *err, size_t err_size, const char *prefix, kiln_status status,
                             const char *fmt, ...)
{
    if (!err || err_size == 0)
        return status;
    size_t n = 0;
    if (prefix) {
        int w = snprintf(err, err_size, "%s: ", prefix);
        n = w < 0 ? 0 : (size_t)w < err_size ? (size_t)w : err_size - 1;
    } else {
        err[0] = '\0';
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, err_size - n, fmt, ap);
    va_end(ap);
    return status;
}

void kiln_npy_free(kiln_npy *a)
{
    if (!a)
        return;
    kiln_free(a->data);
    memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------------------ */
/* the header dict */

typedef struct npy_parser {
    const unsigned char *h;
    size_t len, pos;
    size_t base; /* file offset of h[0], for messages */
    char *err;
    size_t err_size;
    const char *prefix;
    kiln_status status;
} npy_parser;

#define NPY_FAIL(p, st, ...)                                                             \
    ((p)->status == KILN_OK                                                              \
         ? ((p)->status = npy_error((p)->err, (p)->err_size, (p)->prefix, (st), __VA_ARGS__)), -1 \
         : -1)

static void npy_ws(npy_parser *p)
{
    while (p->pos < p->len && (p->h[p->pos] == ' ' || p->h[p->pos] == '\t' ||
                               p->h[p->pos] == '\n' || p->h[p->pos] == '\r'))
        p->pos++;
}

static bool npy_peek(npy_parser *p, char c)
{
    npy_ws(p);
    return p->pos < p->len && p->h[p->pos] == (unsigned char)c;
}

static unsigned long long npy_at(const npy_parser *p) { return (unsigned long long)(p->base + p->pos); }

/* A quoted string without escapes into buf. */
static int npy_string(npy_parser *p, char *buf, size_t size, const char *what)
{
    npy_ws(p);
    if (p->pos >= p->len || (p->h[p->pos] != '\'' && p->h[p->pos] != '"'))
        return NPY_FAIL(p, KILN_ERR_PARSE, "bad .npy header at byte %llu: expected %s (a quoted string)",
                        npy_at(p), what);
    unsigned char q = p->h[p->pos++];
    size_t n = 0;
    while (p->pos < p->len && p->h[p->pos] != q) {
        unsigned char c = p->h[p->pos];
        if (c == '\\' || c < 0x20 || c == 0x7f)
            return NPY_FAIL(p, KILN_ERR_PARSE,
                            "bad .npy header at byte %llu: unexpected character 0x%02x in a string",
                            npy_at(p), c);
        if (n + 1 >= size)
            return NPY_FAIL(p, KILN_ERR_PARSE, "bad .npy header at byte %llu: string too long",
                            npy_at(p));
        buf[n++] = (char)c;
        p->pos++;
    }
    if (p->pos >= p->len)
        return NPY_FAIL(p, KILN_ERR_PARSE, "bad .npy header: unterminated string");
    p->pos++;
    buf[n] = '\0';
    return 0;
}

static int npy_word(npy_parser *p, const char *w)
{
    size_t n = strlen(w);
    if (p->len - p->pos < n || memcmp(p->h + p->pos, w, n) != 0)
        return 0;
    size_t end = p->pos + n;
    if (end < p->len) {
        unsigned char c = p->h[end];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')
            return 0;
    }
    p->pos = end;
    return 1;
}

static int npy_shape(npy_parser *p, kiln_npy *out)
{
    npy_ws(p);
    if (!npy_peek(p, '('))
        return NPY_FAIL(p, KILN_ERR_PARSE, "bad .npy header at byte %llu: 'shape' must be a tuple of integers",
                        npy_at(p));
    p->pos++;
    int rank = 0;
    bool need_comma = false; /* a 1-tuple needs its trailing comma: (3,) */
    for (;;) {
        npy_ws(p);
        if (npy_peek(p, ')')) {
            if (need_comma)
                return NPY_FAIL(p, KILN_ERR_PARSE,
                                "bad .npy header at byte %llu: 'shape' must be a tuple, as (n,)",
                                npy_at(p));
            p->pos++;
            break;
        }
        if (p->pos >= p->len || p->h[p->pos] < '0' || p->h[p->pos] > '9')
            return NPY_FAIL(p, KILN_ERR_PARSE,
                            "bad .npy header at byte %llu: 'shape' entries must be non-negative integers",
                            npy_at(p));
        uint64_t v = 0;
        size_t start = p->pos;
        while (p->pos < p->len && p->h[p->pos] >= '0' && p->h[p->pos] <= '9') {
            uint64_t digit = (uint64_t)(p->h[p->pos] - '0');
            if (v > ((uint64_t)INT64_MAX - digit) / 10u)
                return NPY_FAIL(p, KILN_ERR_SHAPE, "bad .npy header at byte %llu: dimension too large",
                                (unsigned long long)(p->base + start));
            v = v * 10u + digit;
            p->pos++;
        }
        if (p->pos < p->len && p->h[p->pos] == 'L') /* written by Python 2 numpy */
            p->pos++;
        if (rank == KILN_MAX_RANK)
            return NPY_FAIL(p, KILN_ERR_UNSUPPORTED, "arrays of more than %d dimensions are not supported",
                            KILN_MAX_RANK);
        out->dims[rank++] = (int64_t)v;
        npy_ws(p);
        if (npy_peek(p, ',')) {
            p->pos++;
            need_comma = false;
            continue;
        }
        if (!npy_peek(p, ')'))
            return NPY_FAIL(p, KILN_ERR_PARSE, "bad .npy header at byte %llu: expected ',' or ')' in 'shape'",
                            npy_at(p));
        if (rank == 1)
            need_comma = true;
    }
    out->rank = rank;
    return 0;
}

enum { NPY_F4 = 1, NPY_F8 = 2 };

static int npy_header(npy_parser *p, kiln_npy *out, int *dtype)
{
    enum { SEEN_DESCR = 1, SEEN_FORTRAN = 2, SEEN_SHAPE = 4 };
    unsigned seen = 0;
    if (!npy_peek(p, '{'))
        return NPY_FAIL(p, KILN_ERR_PARSE, "bad .npy header at byte %llu: expected '{'", npy_at(p));
    p->pos++;
    for (;;) {
        if (npy_peek(p, '}')) {
            p->pos++;
            break;
        }
        char key[32];
        size_t key_at = p->pos;
        if (npy_string(p, key, sizeof key, "a key") != 0)
            return -1;
        unsigned which = strcmp(key, "descr") == 0           ? SEEN_DESCR
                         : strcmp(key, "fortran_order") == 0 ? SEEN_FORTRAN
                         : strcmp(key, "shape") == 0         ? SEEN_SHAPE
                                                             : 0;
        if (!which)
            return NPY_FAIL(p, KILN_ERR_PARSE,
                            "bad .npy header at byte %llu: unknown key '%s' (expected descr, fortran_order, shape)",
                            (unsigned long long)(p->base + key_at), key);
        if (seen & which)
            return NPY_FAIL(p, KILN_ERR_PARSE, "bad .npy header at byte %llu: key '%s' appears twice",
                            (unsigned long long)(p->base + key_at), key);
        seen |= which;
        if (!npy_peek(p, ':'))
            return NPY_FAIL(p, KILN_ERR_PARSE, "bad .npy header at byte %llu: expected ':'", npy_at(p));
        p->pos++;
        npy_ws(p);
        if (which == SEEN_DESCR) {
            char descr[64];
            if (npy_peek(p, '[') || npy_peek(p, '('))
                return NPY_FAIL(p, KILN_ERR_UNSUPPORTED,
                                "structured dtypes are not supported; kiln reads '<f4' (float32) and '<f8' (float64)");
            if (npy_string(p, descr, sizeof descr, "the dtype descr") != 0)
                return -1;
            if (strcmp(descr, "<f4") == 0)
                *dtype = NPY_F4;
            else if (strcmp(descr, "<f8") == 0)
                *dtype = NPY_F8;
            else if (strcmp(descr, ">f4") == 0 || strcmp(descr, ">f8") == 0)
                return NPY_FAIL(p, KILN_ERR_UNSUPPORTED,
                                "big-endian dtype '%s' is not supported; kiln reads '<f4' (float32) and '<f8' (float64)",
                                descr);
            else
                return NPY_FAIL(p, KILN_ERR_UNSUPPORTED,
                                "dtype '%s' is not supported; kiln reads '<f4' (float32) and '<f8' (float64)",
                                descr);
        } else if (which == SEEN_FORTRAN) {
            if (npy_word(p, "True"))
                return NPY_FAIL(p, KILN_ERR_UNSUPPORTED,
                                "Fortran-order arrays are not supported; save a C-order array (numpy.ascontiguousarray)");
            if (!npy_word(p, "False"))
                return NPY_FAIL(p, KILN_ERR_PARSE,
                                "bad .npy header at byte %llu: 'fortran_order' must be True or False", npy_at(p));
        } else {
            if (npy_shape(p, out) != 0)
                return -1;
        }
        if (npy_peek(p, ',')) {
            p->pos++;
            continue;
        }
        if (!npy_peek(p, '}'))
            return NPY_FAIL(p, KILN_ERR_PARSE, "bad .npy header at byte %llu: expected ',' or '}'", npy_at(p));
    }
    npy_ws(p);
    if (p->pos != p->len)
        return NPY_FAIL(p, KILN_ERR_PARSE, "bad .npy header at byte %llu: unexpected text after the dict",
                        npy_at(p));
    if (seen != (SEEN_DESCR | SEEN_FORTRAN | SEEN_SHAPE))
        return NPY_FAIL(p, KILN_ERR_PARSE, "bad .npy header: missing key '%s'",
                        !(seen & SEEN_DESCR) ? "descr" : !(seen & SEEN_FORTRAN) ? "fortran_order" : "shape");
    return 0;
}

/* ------------------------------------------------------------------------ */
/* reading */

static kiln_status npy_parse(const unsigned char *b, size_t size, const char *prefix, kiln_npy *out,
                             char *err, size_t err_size)
{
    memset(out, 0, sizeof *out);
    if (size < sizeof npy_magic || memcmp(b, npy_magic, sizeof npy_magic) != 0)
        return npy_error(err, err_size, prefix, KILN_ERR_PARSE,
                         "not a .npy file (it does not start with \\x93NUMPY)");
    if (size < 8)
        return npy_error(err, err_size, prefix, KILN_ERR_PARSE, "truncated .npy file (%zu bytes)", size);
    unsigned major = b[6], minor = b[7];
    size_t start, hlen;
    if (major == 1 && minor == 0) {
        if (size < 10)
            return npy_error(err, err_size, prefix, KILN_ERR_PARSE, "truncated .npy file (%zu bytes)", size);
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        start = 10;
    } else if ((major == 2 || major == 3) && minor == 0) {
        if (size < 12)
            return npy_error(err, err_size, prefix, KILN_ERR_PARSE, "truncated .npy file (%zu bytes)", size);
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        start = 12;
    } else {
        return npy_error(err, err_size, prefix, KILN_ERR_UNSUPPORTED,
                         ".npy format version %u.%u is not supported (kiln reads 1.0, 2.0 and 3.0)", major,
                         minor);
    }
    if (hlen > size - start)
        return npy_error(err, err_size, prefix, KILN_ERR_PARSE,
                         "header length %zu goes past the end of the file (%zu bytes): truncated .npy file",
                         hlen, size);

    npy_parser p = {b + start, hlen, 0, start, err, err_size, prefix, KILN_OK};
    int dtype = 0;
    kiln_npy a = {0};
    if (npy_header(&p, &a, &dtype) != 0)
        return p.status;

    size_t item = dtype == NPY_F4 ? 4 : 8;
    uint64_t count = 1;
    for (int i = 0; i < a.rank; i++) {
        uint64_t d = (uint64_t)a.dims[i];
        if (d != 0 && count > UINT64_MAX / d)
            return npy_error(err, err_size, prefix, KILN_ERR_SHAPE, "the array's size overflows");
        count *= d;
    }
    size_t avail = size - start - hlen;
    if (count > avail / item) /* also guards count * item and count * sizeof(float) */
        return npy_error(err, err_size, prefix, KILN_ERR_PARSE,
                         "truncated .npy file: the shape needs %llu elements of %zu bytes, the file has %zu bytes of data",
                         (unsigned long long)count, item, avail);
    if ((size_t)count * item != avail)
        return npy_error(err, err_size, prefix, KILN_ERR_PARSE,
                         "%zu unexpected bytes after the array data (the shape needs %llu bytes)",
                         avail - (size_t)count * item, (unsigned long long)count * item);
    a.count = (size_t)count;
    a.from_f64 = dtype == NPY_F8;
    if (a.count > 0) {
        a.data = kiln_malloc(a.count * sizeof(float));
        if (!a.data)
            return npy_error(err, err_size, prefix, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        const unsigned char *d = b + start + hlen;
        for (size_t i = 0; i < a.count; i++) {
            if (dtype == NPY_F4) {
                const unsigned char *e = d + 4 * i;
                uint32_t u = (uint32_t)e[0] | (uint32_t)e[1] << 8 | (uint32_t)e[2] << 16 |
                             (uint32_t)e[3] << 24;
                memcpy(&a.data[i], &u, 4);
            } else {
                const unsigned char *e = d + 8 * i;
                uint64_t u = 0;
                for (int k = 7; k >= 0; k--)
                    u = (u << 8) | e[k];
                double v;
                memcpy(&v, &u, 8);
                a.data[i] = (float)v;
            }
        }
    }
    *out = a;
    return KILN_OK;
}

kiln_status kiln_npy_read_memory(const void *bytes, size_t size, kiln_npy *out, char *err,
                                 size_t err_size)
{
    if (!out)
        return npy_error(err, err_size, NULL, KILN_ERR_INVALID_ARGUMENT, "no output array");
    memset(out, 0, sizeof *out);
    if (!bytes && size > 0)
        return npy_error(err, err_size, NULL, KILN_ERR_INVALID_ARGUMENT, "no bytes to read");
    return npy_parse(bytes, size, NULL, out, err, err_size);
}

kiln_status kiln_npy_read(const char *path, kiln_npy *out, char *err, size_t err_size)
{
    if (!out || !path)
        return npy_error(err, err_size, NULL, KILN_ERR_INVALID_ARGUMENT, "no file name or output array");
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* O_NONBLOCK: a FIFO must not block */
    if (fd < 0)
        return npy_error(err, err_size, path, KILN_ERR_IO, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return npy_error(err, err_size, path, KILN_ERR_IO, "cannot read: %s", strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return npy_error(err, err_size, path, KILN_ERR_IO, "cannot read: this is %s, not a regular file",
                         kiln_diag_file_kind((unsigned)st.st_mode));
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        return npy_error(err, err_size, path, KILN_ERR_IO, "file too large");
    }
    size_t size = (size_t)st.st_size;
    unsigned char *buf = kiln_malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return npy_error(err, err_size, path, KILN_ERR_OUT_OF_MEMORY, "out of memory reading the file");
    }
    size_t got = 0;
    int read_err = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            read_err = errno;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != size) {
        kiln_free(buf);
        return npy_error(err, err_size, path, KILN_ERR_IO, "cannot read: %s",
                         read_err ? strerror(read_err) : "the file shrank while being read");
    }
    kiln_status s = npy_parse(buf, size, path, out, err, err_size);
    kiln_free(buf);
    return s;
}

/* ------------------------------------------------------------------------ */
/* writing */

kiln_status kiln_npy_write(const char *path, int rank, const int64_t *dims, const float *data,
                           char *err, size_t err_size)
{
    return kiln_npy_write_to(path, path, rank, dims, data, err, err_size);
}

kiln_status kiln_npy_write_to(const char *path, const char *write_path, int rank, const int64_t *dims,
                              const float *data, char *err, size_t err_size)
{
    if (!path || !write_path)
        return npy_error(err, err_size, NULL, KILN_ERR_INVALID_ARGUMENT, "no file name");
    if (rank < 0 || rank > KILN_MAX_RANK || (rank > 0 && !dims))
        return npy_error(err, err_size, path, KILN_ERR_INVALID_ARGUMENT, "bad rank %d", rank);
    uint64_t count = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0)
            return npy_error(err, err_size, path, KILN_ERR_INVALID_ARGUMENT, "negative dimension %lld",
                             (long long)dims[i]);
        if (dims[i] != 0 && count > (UINT64_MAX / 4) / (uint64_t)dims[i])
            return npy_error(err, err_size, path, KILN_ERR_INVALID_ARGUMENT, "the array is too large");
        count *= (uint64_t)dims[i];
    }
    if (count > 0 && !data)
        return npy_error(err, err_size, path, KILN_ERR_INVALID_ARGUMENT, "no data");

    /* the header exactly as numpy.lib.format writes it */
    char header[512];
    size_t n = (size_t)snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < rank; i++)
        n += (size_t)snprintf(header + n, sizeof header - n, "%s%lld", i ? ", " : "", (long long)dims[i]);
    n += (size_t)snprintf(header + n, sizeof header - n, "%s), }", rank == 1 ? "," : "");
    if (rank > 0) {
        char first[24];
        int w = snprintf(first, sizeof first, "%lld", (long long)dims[0]);
        for (int i = w; i < NPY_GROWTH_AXIS_MAX_DIGITS; i++)
            header[n++] = ' ';
    }
    size_t hlen = n + 1; /* with the final '\n' */
    size_t pad = NPY_ALIGN - ((10 + hlen) % NPY_ALIGN);
    for (size_t i = 0; i < pad; i++)
        header[n++] = ' ';
    header[n++] = '\n';

    unsigned char prefix[10];
    memcpy(prefix, npy_magic, 6);
    prefix[6] = 1;
    prefix[7] = 0;
    prefix[8] = (unsigned char)(n & 0xff);
    prefix[9] = (unsigned char)(n >> 8);

    FILE *fp = fopen(write_path, "wb");
    if (!fp)
        return npy_error(err, err_size, path, KILN_ERR_IO, "cannot create: %s", strerror(errno));
    int ok = fwrite(prefix, 1, 10, fp) == 10 && fwrite(header, 1, n, fp) == n;
    unsigned char chunk[4096];
    size_t i = 0;
    while (ok && i < (size_t)count) {
        size_t m = 0;
        for (; i < (size_t)count && m + 4 <= sizeof chunk; i++, m += 4) {
            uint32_t u;
            memcpy(&u, &data[i], 4);
            chunk[m] = (unsigned char)u;
            chunk[m + 1] = (unsigned char)(u >> 8);
            chunk[m + 2] = (unsigned char)(u >> 16);
            chunk[m + 3] = (unsigned char)(u >> 24);
        }
        ok = fwrite(chunk, 1, m, fp) == m;
    }
    int write_err = errno;
    if (fclose(fp) != 0 && ok) {
        ok = 0;
        write_err = errno;
    }
    if (!ok)
        return npy_error(err, err_size, path, KILN_ERR_IO, "cannot write: %s", strerror(write_err ? write_err : EIO));
    return KILN_OK;
}
