/* compiler/frontend/safetensors.c: the safetensors reader and writer (see
 * safetensors.h). The JSON header is read by a small strict parser that knows
 * the header's schema: a top-level object of entries {dtype, shape,
 * data_offsets} plus an optional "__metadata__" string->string map. All
 * positions in messages are byte offsets in the file. */
#define _POSIX_C_SOURCE 200809L

#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ir/arena.h"

/* ------------------------------------------------------------------------ */
/* dtypes */

typedef struct st_dtype_info {
    const char *name;
    unsigned bits;
    kiln_dtype kiln; /* KILN_DTYPE_COUNT: kiln does not read it */
} st_dtype_info;

/* Every dtype of the safetensors format (the Rust crate's Dtype enum). */
static const st_dtype_info st_dtypes[] = {
    {"F32", 32, KILN_F32},
    {"F16", 16, KILN_F16},
    {"BF16", 16, KILN_BF16},
    {"F64", 64, KILN_F64},
    {"BOOL", 8, KILN_DTYPE_COUNT},
    {"U8", 8, KILN_DTYPE_COUNT},
    {"I8", 8, KILN_DTYPE_COUNT},
    {"F8_E5M2", 8, KILN_DTYPE_COUNT},
    {"F8_E4M3", 8, KILN_DTYPE_COUNT},
    {"F8_E8M0", 8, KILN_DTYPE_COUNT},
    {"F8_E4M3FNUZ", 8, KILN_DTYPE_COUNT},
    {"F8_E5M2FNUZ", 8, KILN_DTYPE_COUNT},
    {"I16", 16, KILN_DTYPE_COUNT},
    {"U16", 16, KILN_DTYPE_COUNT},
    {"I32", 32, KILN_DTYPE_COUNT},
    {"U32", 32, KILN_DTYPE_COUNT},
    {"I64", 64, KILN_DTYPE_COUNT},
    {"U64", 64, KILN_DTYPE_COUNT},
    {"C64", 64, KILN_DTYPE_COUNT},
    {"F4", 4, KILN_DTYPE_COUNT},
    {"F6_E2M3", 6, KILN_DTYPE_COUNT},
    {"F6_E3M2", 6, KILN_DTYPE_COUNT},
};

static const st_dtype_info *st_dtype_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, name) == 0)
            return &st_dtypes[i];
    return NULL;
}

unsigned kiln_st_dtype_bits(const char *dtype_name)
{
    const st_dtype_info *info = dtype_name ? st_dtype_lookup(dtype_name) : NULL;
    return info ? info->bits : 0;
}

/* ------------------------------------------------------------------------ */
/* the file */

typedef struct st_entry {
    kiln_st_tensor t;   /* first: kiln_st_at hands out &entry->t */
    uint64_t begin, end; /* data_offsets, relative to the data area */
    uint64_t at;        /* file offset of the entry's key, for messages */
} st_entry;

struct kiln_st_file {
    char *path;
    void *map;            /* the mapping (kiln_st_open), or NULL */
    size_t map_size;
    const unsigned char *bytes; /* the whole file */
    size_t size;
    st_entry *entries;    /* header order */
    size_t count, cap;
    st_entry **by_name;   /* sorted by name, for kiln_st_find */
    char *strings;        /* unescaped names and dtype names */
};

size_t kiln_st_count(const kiln_st_file *f) { return f ? f->count : 0; }

const kiln_st_tensor *kiln_st_at(const kiln_st_file *f, size_t i)
{
    return f && i < f->count ? &f->entries[i].t : NULL;
}

const char *kiln_st_path(const kiln_st_file *f) { return f ? f->path : NULL; }

const kiln_st_tensor *kiln_st_find(const kiln_st_file *f, const char *name)
{
    if (!f || !name)
        return NULL;
    size_t lo = 0, hi = f->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->by_name[mid]->t.name, name);
        if (c == 0)
            return &f->by_name[mid]->t;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void kiln_st_close(kiln_st_file *f)
{
    if (!f)
        return;
    if (f->map)
        munmap(f->map, f->map_size);
    kiln_free(f->by_name);
    kiln_free(f->entries);
    kiln_free(f->strings);
    kiln_free(f->path);
    kiln_free(f);
}

/* ------------------------------------------------------------------------ */
/* errors */

typedef struct st_reader {
    kiln_st_file *f;
    kiln_diag *d;
    const char *name;           /* the file's name for messages */
    const unsigned char *h;     /* the header text */
    size_t hlen;
    size_t pos;                 /* in h */
    size_t str_used;            /* bytes used in f->strings */
    uint64_t data_size;         /* bytes after the header */
    kiln_status status;         /* the first error */
} st_reader;

#define HEADER_BASE 8u /* file offset of the header's first byte */

static void st_report(kiln_diag *d, const char *name, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void st_report(kiln_diag *d, const char *name, const char *fmt, va_list ap)
{
    if (!d)
        return;
    kiln_loc loc = {name, 0, 0}; /* kiln_diag_error copies the file name */
    kiln_diag_verror(d, loc, fmt, ap);
}

static void st_fail(st_reader *r, kiln_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void st_fail(st_reader *r, kiln_status status, const char *fmt, ...)
{
    if (r->status != KILN_OK)
        return; /* report the first error only */
    r->status = status;
    va_list ap;
    va_start(ap, fmt);
    st_report(r->d, r->name, fmt, ap);
    va_end(ap);
}

static kiln_status st_fail_plain(kiln_diag *d, const char *name, kiln_status status,
                                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static kiln_status st_fail_plain(kiln_diag *d, const char *name, kiln_status status,
                                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    st_report(d, name, fmt, ap);
    va_end(ap);
    return status;
}

/* File offset of header position `pos`. */
static unsigned long long st_at(const st_reader *r, size_t pos)
{
    (void)r;
    return (unsigned long long)HEADER_BASE + pos;
}

/* Describes what is at the current position, for "expected X, found Y". */
static const char *st_found(const st_reader *r, char *buf, size_t size)
{
    if (r->pos >= r->hlen)
        return "the end of the header";
    unsigned char c = r->h[r->pos];
    switch (c) {
    case '{': return "an object";
    case '[': return "an array";
    case '"': return "a string";
    case 't': case 'f': return "a boolean";
    case 'n': return "null";
    case '-': return "a number";
    default: break;
    }
    if (c >= '0' && c <= '9')
        return "a number";
    if (c >= 0x21 && c < 0x7f)
        snprintf(buf, size, "'%c'", c);
    else
        snprintf(buf, size, "byte 0x%02x", c);
    return buf;
}

static void st_expected(st_reader *r, const char *what)
{
    char buf[32];
    st_fail(r, KILN_ERR_PARSE, "invalid JSON header at byte %llu: expected %s, found %s",
            st_at(r, r->pos), what, st_found(r, buf, sizeof buf));
}

/* ------------------------------------------------------------------------ */
/* JSON */

static void st_ws(st_reader *r)
{
    while (r->pos < r->hlen) {
        unsigned char c = r->h[r->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        r->pos++;
    }
}

/* Consumes `c` (after whitespace); 0 when it is there. */
static int st_char(st_reader *r, char c, const char *what)
{
    st_ws(r);
    if (r->pos < r->hlen && r->h[r->pos] == (unsigned char)c) {
        r->pos++;
        return 0;
    }
    st_expected(r, what);
    return -1;
}

static int st_hex4(st_reader *r, size_t at, uint32_t *out)
{
    uint32_t v = 0;
    if (r->hlen - at < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        unsigned char c = r->h[at + (size_t)i];
        uint32_t digit;
        if (c >= '0' && c <= '9')
            digit = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            digit = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            digit = (uint32_t)(c - 'A' + 10);
        else
            return -1;
        v = v * 16u + digit;
    }
    *out = v;
    return 0;
}

/* Length of the valid UTF-8 sequence at h[at] (first byte >= 0x80), or 0. */
static size_t st_utf8_len(const st_reader *r, size_t at)
{
    const unsigned char *s = r->h + at;
    size_t avail = r->hlen - at;
    unsigned char c = s[0];
    size_t n;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, cp = c & 0x1fu, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, cp = c & 0x0fu, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, cp = c & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0u) != 0x80u)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static void st_put_utf8(char *out, size_t *n, uint32_t cp)
{
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*n)++] = (char)(0xc0 | (cp >> 6));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xe0 | (cp >> 12));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*n)++] = (char)(0xf0 | (cp >> 18));
        out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    }
}

/* Reads a string (after whitespace) into f->strings; *out points at it, NUL
 * terminated. The unescaped text is never longer than the quoted source, so
 * the buffer of header length + 1 bytes always has room. `what` names the
 * string for "expected ...". */
static int st_string(st_reader *r, const char **out, const char *what)
{
    st_ws(r);
    if (r->pos >= r->hlen || r->h[r->pos] != '"') {
        st_expected(r, what);
        return -1;
    }
    size_t start = r->pos;
    r->pos++;
    char *buf = r->f->strings + r->str_used;
    size_t n = 0;
    for (;;) {
        if (r->pos >= r->hlen) {
            st_fail(r, KILN_ERR_PARSE,
                    "invalid JSON header at byte %llu: string not terminated before the end of the header",
                    st_at(r, start));
            return -1;
        }
        unsigned char c = r->h[r->pos];
        if (c == '"') {
            r->pos++;
            break;
        }
        if (c < 0x20) {
            st_fail(r, KILN_ERR_PARSE,
                    "invalid JSON header at byte %llu: control character 0x%02x in a string",
                    st_at(r, r->pos), c);
            return -1;
        }
        if (c >= 0x80) {
            size_t len = st_utf8_len(r, r->pos);
            if (len == 0) {
                st_fail(r, KILN_ERR_PARSE,
                        "invalid JSON header at byte %llu: invalid UTF-8 in a string",
                        st_at(r, r->pos));
                return -1;
            }
            memcpy(buf + n, r->h + r->pos, len);
            n += len;
            r->pos += len;
            continue;
        }
        if (c != '\\') {
            buf[n++] = (char)c;
            r->pos++;
            continue;
        }
        size_t esc = r->pos;
        if (r->pos + 1 >= r->hlen) {
            st_fail(r, KILN_ERR_PARSE,
                    "invalid JSON header at byte %llu: string not terminated before the end of the header",
                    st_at(r, start));
            return -1;
        }
        unsigned char e = r->h[r->pos + 1];
        r->pos += 2;
        switch (e) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (st_hex4(r, r->pos, &cp) != 0) {
                st_fail(r, KILN_ERR_PARSE,
                        "invalid JSON header at byte %llu: \\u must be followed by 4 hex digits",
                        st_at(r, esc));
                return -1;
            }
            r->pos += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                st_fail(r, KILN_ERR_PARSE,
                        "invalid JSON header at byte %llu: unpaired low surrogate \\u%04x",
                        st_at(r, esc), (unsigned)cp);
                return -1;
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                uint32_t lo;
                if (r->hlen - r->pos < 6 || r->h[r->pos] != '\\' || r->h[r->pos + 1] != 'u' ||
                    st_hex4(r, r->pos + 2, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff) {
                    st_fail(r, KILN_ERR_PARSE,
                            "invalid JSON header at byte %llu: high surrogate \\u%04x not followed by a low surrogate",
                            st_at(r, esc), (unsigned)cp);
                    return -1;
                }
                r->pos += 6;
                cp = 0x10000u + ((cp - 0xd800u) << 10) + (lo - 0xdc00u);
            }
            if (cp == 0) {
                st_fail(r, KILN_ERR_PARSE,
                        "invalid JSON header at byte %llu: \\u0000 (NUL) in a string is not supported",
                        st_at(r, esc));
                return -1;
            }
            /* 6 source bytes (12 for a pair) give at most 3 (4) UTF-8 bytes */
            st_put_utf8(buf, &n, cp);
            break;
        }
        default:
            st_fail(r, KILN_ERR_PARSE, "invalid JSON header at byte %llu: invalid escape '\\%c'",
                    st_at(r, esc), (e >= 0x21 && e < 0x7f) ? (char)e : '?');
            return -1;
        }
    }
    buf[n] = '\0';
    r->str_used += n + 1;
    *out = buf;
    return 0;
}

/* A non-negative JSON integer (after whitespace). `what` describes it in
 * messages ("a shape dimension of tensor 'x'"). */
static int st_uint(st_reader *r, uint64_t *out, const char *what)
{
    char buf[32];
    st_ws(r);
    size_t start = r->pos;
    if (r->pos < r->hlen && r->h[r->pos] == '-') {
        st_fail(r, KILN_ERR_PARSE, "invalid header at byte %llu: %s must be a non-negative integer",
                st_at(r, start), what);
        return -1;
    }
    if (r->pos >= r->hlen || r->h[r->pos] < '0' || r->h[r->pos] > '9') {
        st_fail(r, KILN_ERR_PARSE, "invalid header at byte %llu: %s must be an integer, found %s",
                st_at(r, start), what, st_found(r, buf, sizeof buf));
        return -1;
    }
    uint64_t v = 0;
    int overflow = 0;
    if (r->h[r->pos] == '0') {
        r->pos++;
        if (r->pos < r->hlen && r->h[r->pos] >= '0' && r->h[r->pos] <= '9') {
            st_fail(r, KILN_ERR_PARSE,
                    "invalid JSON header at byte %llu: a number must not have leading zeros",
                    st_at(r, start));
            return -1;
        }
    } else {
        while (r->pos < r->hlen && r->h[r->pos] >= '0' && r->h[r->pos] <= '9') {
            uint64_t digit = (uint64_t)(r->h[r->pos] - '0');
            if (v > (UINT64_MAX - digit) / 10u)
                overflow = 1;
            v = v * 10u + digit;
            r->pos++;
        }
    }
    if (r->pos < r->hlen && (r->h[r->pos] == '.' || r->h[r->pos] == 'e' || r->h[r->pos] == 'E')) {
        st_fail(r, KILN_ERR_PARSE, "invalid header at byte %llu: %s must be an integer",
                st_at(r, start), what);
        return -1;
    }
    if (overflow) {
        st_fail(r, KILN_ERR_WEIGHTS, "invalid header at byte %llu: %s is too large",
                st_at(r, start), what);
        return -1;
    }
    *out = v;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* the header's schema */

/* "__metadata__": {string: string, ...}; read and ignored. */
static int st_metadata(st_reader *r)
{
    size_t mark = r->str_used;
    if (st_char(r, '{', "an object (__metadata__ maps strings to strings)") != 0)
        return -1;
    st_ws(r);
    if (r->pos < r->hlen && r->h[r->pos] == '}') {
        r->pos++;
        return 0;
    }
    for (;;) {
        const char *key, *value;
        if (st_string(r, &key, "a string key in __metadata__") != 0)
            return -1;
        if (st_char(r, ':', "':'") != 0)
            return -1;
        st_ws(r);
        if (r->pos >= r->hlen || r->h[r->pos] != '"') {
            char buf[32];
            size_t at = r->pos;
            st_fail(r, KILN_ERR_PARSE,
                    "invalid header at byte %llu: __metadata__ value of '%.100s' must be a string, found %s",
                    st_at(r, at), key, st_found(r, buf, sizeof buf));
            return -1;
        }
        if (st_string(r, &value, "a string") != 0)
            return -1;
        r->str_used = mark; /* metadata is not kept */
        st_ws(r);
        if (r->pos < r->hlen && r->h[r->pos] == ',') {
            r->pos++;
            continue;
        }
        return st_char(r, '}', "',' or '}' in __metadata__");
    }
}

enum { KEY_DTYPE = 1, KEY_SHAPE = 2, KEY_OFFSETS = 4 };

/* The value of one tensor entry, into e (whose name is set). */
static int st_entry_value(st_reader *r, st_entry *e)
{
    const char *tname = e->t.name;
    char what[200];
    unsigned seen = 0;
    uint64_t elements = 1;
    int has_zero = 0, overflow = 0;
    unsigned bits = 0;
    size_t dtype_at = 0;

    st_ws(r);
    if (r->pos >= r->hlen || r->h[r->pos] != '{') {
        char buf[32];
        st_fail(r, KILN_ERR_PARSE,
                "invalid header at byte %llu: tensor '%.100s' must be an object {dtype, shape, data_offsets}, found %s",
                st_at(r, r->pos), tname, st_found(r, buf, sizeof buf));
        return -1;
    }
    r->pos++;
    st_ws(r);
    if (r->pos < r->hlen && r->h[r->pos] == '}') {
        r->pos++;
    } else {
        for (;;) {
            st_ws(r);
            size_t key_at = r->pos;
            size_t mark = r->str_used;
            const char *key;
            if (st_string(r, &key, "a string key") != 0)
                return -1;
            unsigned which = strcmp(key, "dtype") == 0          ? KEY_DTYPE
                             : strcmp(key, "shape") == 0        ? KEY_SHAPE
                             : strcmp(key, "data_offsets") == 0 ? KEY_OFFSETS
                                                                : 0;
            if (which == 0) {
                st_fail(r, KILN_ERR_PARSE,
                        "invalid header at byte %llu: tensor '%.100s' has unknown key '%.100s' (an entry has dtype, shape and data_offsets)",
                        st_at(r, key_at), tname, key);
                return -1;
            }
            if (seen & which) {
                st_fail(r, KILN_ERR_PARSE,
                        "invalid header at byte %llu: tensor '%.100s' has key '%s' twice",
                        st_at(r, key_at), tname, key);
                return -1;
            }
            seen |= which;
            r->str_used = mark; /* the key is not kept */
            if (st_char(r, ':', "':'") != 0)
                return -1;
            st_ws(r);
            if (which == KEY_DTYPE) {
                dtype_at = r->pos;
                if (r->pos >= r->hlen || r->h[r->pos] != '"') {
                    char buf[32];
                    st_fail(r, KILN_ERR_PARSE,
                            "invalid header at byte %llu: dtype of tensor '%.100s' must be a string, found %s",
                            st_at(r, r->pos), tname, st_found(r, buf, sizeof buf));
                    return -1;
                }
                if (st_string(r, &e->t.dtype_name, "a string") != 0)
                    return -1;
                const st_dtype_info *info = st_dtype_lookup(e->t.dtype_name);
                if (!info) {
                    st_fail(r, KILN_ERR_PARSE,
                            "invalid header at byte %llu: tensor '%.100s' has unknown dtype '%.40s'",
                            st_at(r, dtype_at), tname, e->t.dtype_name);
                    return -1;
                }
                bits = info->bits;
                e->t.dtype = info->kiln;
            } else if (which == KEY_SHAPE) {
                if (r->pos >= r->hlen || r->h[r->pos] != '[') {
                    char buf[32];
                    st_fail(r, KILN_ERR_PARSE,
                            "invalid header at byte %llu: shape of tensor '%.100s' must be an array of integers, found %s",
                            st_at(r, r->pos), tname, st_found(r, buf, sizeof buf));
                    return -1;
                }
                r->pos++;
                int rank = 0;
                st_ws(r);
                if (r->pos < r->hlen && r->h[r->pos] == ']') {
                    r->pos++;
                } else {
                    snprintf(what, sizeof what, "a shape dimension of tensor '%.100s'", tname);
                    for (;;) {
                        uint64_t dim;
                        size_t dim_at = r->pos;
                        if (st_uint(r, &dim, what) != 0)
                            return -1;
                        if (dim > (uint64_t)INT64_MAX) {
                            st_fail(r, KILN_ERR_WEIGHTS,
                                    "invalid header at byte %llu: %s is too large",
                                    st_at(r, dim_at), what);
                            return -1;
                        }
                        if (rank < KILN_MAX_RANK)
                            e->t.dims[rank] = (int64_t)dim;
                        if (rank == INT32_MAX) {
                            st_fail(r, KILN_ERR_WEIGHTS, "invalid header: tensor '%.100s' has too many dimensions",
                                    tname);
                            return -1;
                        }
                        rank++;
                        if (dim == 0)
                            has_zero = 1;
                        else if (elements > UINT64_MAX / dim)
                            overflow = 1;
                        else
                            elements *= dim;
                        st_ws(r);
                        if (r->pos < r->hlen && r->h[r->pos] == ',') {
                            r->pos++;
                            continue;
                        }
                        if (st_char(r, ']', "',' or ']' in a shape") != 0)
                            return -1;
                        break;
                    }
                }
                e->t.rank = rank;
            } else {
                if (r->pos >= r->hlen || r->h[r->pos] != '[') {
                    char buf[32];
                    st_fail(r, KILN_ERR_PARSE,
                            "invalid header at byte %llu: data_offsets of tensor '%.100s' must be an array [begin, end], found %s",
                            st_at(r, r->pos), tname, st_found(r, buf, sizeof buf));
                    return -1;
                }
                size_t arr_at = r->pos;
                r->pos++;
                snprintf(what, sizeof what, "data_offsets of tensor '%.100s'", tname);
                if (st_uint(r, &e->begin, what) != 0)
                    return -1;
                st_ws(r);
                if (r->pos < r->hlen && r->h[r->pos] == ',') {
                    r->pos++;
                    if (st_uint(r, &e->end, what) != 0)
                        return -1;
                    st_ws(r);
                    if (r->pos < r->hlen && r->h[r->pos] == ']') {
                        r->pos++;
                    } else {
                        st_fail(r, KILN_ERR_PARSE,
                                "invalid header at byte %llu: data_offsets of tensor '%.100s' must have exactly 2 entries [begin, end]",
                                st_at(r, arr_at), tname);
                        return -1;
                    }
                } else {
                    st_fail(r, KILN_ERR_PARSE,
                            "invalid header at byte %llu: data_offsets of tensor '%.100s' must have exactly 2 entries [begin, end]",
                            st_at(r, arr_at), tname);
                    return -1;
                }
            }
            st_ws(r);
            if (r->pos < r->hlen && r->h[r->pos] == ',') {
                r->pos++;
                continue;
            }
            if (st_char(r, '}', "',' or '}' in a tensor entry") != 0)
                return -1;
            break;
        }
    }

    unsigned long long at = (unsigned long long)e->at;
    if (seen != (KEY_DTYPE | KEY_SHAPE | KEY_OFFSETS)) {
        const char *missing = !(seen & KEY_DTYPE) ? "dtype" : !(seen & KEY_SHAPE) ? "shape" : "data_offsets";
        st_fail(r, KILN_ERR_PARSE, "invalid header at byte %llu: tensor '%.100s' has no '%s'", at,
                tname, missing);
        return -1;
    }

    /* sizes: elements x bits must be a whole number of bytes */
    if (has_zero)
        elements = 0, overflow = 0;
    if (overflow || elements > UINT64_MAX / bits) {
        st_fail(r, KILN_ERR_WEIGHTS,
                "invalid header at byte %llu: tensor '%.100s': the size of its shape overflows", at, tname);
        return -1;
    }
    uint64_t total_bits = elements * bits;
    if (total_bits % 8u != 0) {
        st_fail(r, KILN_ERR_WEIGHTS,
                "invalid header at byte %llu: tensor '%.100s': %llu elements of %s (%u bits) are not a whole number of bytes",
                at, tname, (unsigned long long)elements, e->t.dtype_name, bits);
        return -1;
    }
    uint64_t need = total_bits / 8u;
    if (e->begin > e->end) {
        st_fail(r, KILN_ERR_WEIGHTS,
                "invalid header at byte %llu: tensor '%.100s' has data_offsets [%llu, %llu]: begin is after end",
                at, tname, (unsigned long long)e->begin, (unsigned long long)e->end);
        return -1;
    }
    if (e->end > r->data_size) {
        st_fail(r, KILN_ERR_WEIGHTS,
                "tensor '%.100s' (header byte %llu) has data_offsets [%llu, %llu] past the end of the data area (%llu bytes, file bytes %llu..%llu): the file is truncated or the offsets are wrong",
                tname, at, (unsigned long long)e->begin, (unsigned long long)e->end,
                (unsigned long long)r->data_size, (unsigned long long)(HEADER_BASE + r->hlen),
                (unsigned long long)(HEADER_BASE + r->hlen + r->data_size));
        return -1;
    }
    if (e->end - e->begin != need) {
        st_fail(r, KILN_ERR_WEIGHTS,
                "tensor '%.100s' (header byte %llu) has data_offsets [%llu, %llu] (%llu bytes), but %llu elements of %s need %llu bytes",
                tname, at, (unsigned long long)e->begin, (unsigned long long)e->end,
                (unsigned long long)(e->end - e->begin), (unsigned long long)elements,
                e->t.dtype_name, (unsigned long long)need);
        return -1;
    }
    e->t.nbytes = (size_t)need;
    e->t.data = r->f->bytes + HEADER_BASE + r->hlen + e->begin;
    e->t.supported = e->t.dtype != KILN_DTYPE_COUNT && e->t.rank <= KILN_MAX_RANK;
    return 0;
}

/* The top-level object. */
static int st_header(st_reader *r)
{
    int metadata_seen = 0;
    if (st_char(r, '{', "'{' (the header is a JSON object)") != 0)
        return -1;
    st_ws(r);
    if (r->pos < r->hlen && r->h[r->pos] == '}') {
        r->pos++;
    } else {
        for (;;) {
            st_ws(r);
            size_t key_at = r->pos;
            size_t mark = r->str_used;
            const char *key;
            if (st_string(r, &key, "a string (a tensor name)") != 0)
                return -1;
            if (st_char(r, ':', "':'") != 0)
                return -1;
            if (strcmp(key, "__metadata__") == 0) {
                if (metadata_seen) {
                    st_fail(r, KILN_ERR_PARSE, "invalid header at byte %llu: __metadata__ appears twice",
                            st_at(r, key_at));
                    return -1;
                }
                metadata_seen = 1;
                r->str_used = mark;
                if (st_metadata(r) != 0)
                    return -1;
            } else {
                kiln_st_file *f = r->f;
                if (kiln_grow((void **)&f->entries, &f->cap, f->count + 1, sizeof(st_entry)) != 0) {
                    st_fail(r, KILN_ERR_OUT_OF_MEMORY, "out of memory reading the header");
                    return -1;
                }
                st_entry *e = &f->entries[f->count];
                memset(e, 0, sizeof *e);
                e->t.name = key;
                e->t.dtype = KILN_DTYPE_COUNT;
                e->at = HEADER_BASE + key_at;
                if (st_entry_value(r, e) != 0)
                    return -1;
                f->count++;
            }
            st_ws(r);
            if (r->pos < r->hlen && r->h[r->pos] == ',') {
                r->pos++;
                continue;
            }
            if (st_char(r, '}', "',' or '}' after a header entry") != 0)
                return -1;
            break;
        }
    }
    st_ws(r);
    if (r->pos != r->hlen) {
        char buf[32];
        st_fail(r, KILN_ERR_PARSE,
                "invalid JSON header at byte %llu: %s after the header object (only spaces may pad it)",
                st_at(r, r->pos), st_found(r, buf, sizeof buf));
        return -1;
    }
    return 0;
}

static int st_cmp_name(const void *a, const void *b)
{
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    int c = strcmp(x->t.name, y->t.name);
    if (c != 0)
        return c;
    return x < y ? -1 : x > y; /* same array: header order */
}

static int st_cmp_offset(const void *a, const void *b)
{
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Name index, duplicates, overlaps. */
static int st_check(st_reader *r)
{
    kiln_st_file *f = r->f;
    if (f->count == 0)
        return 0;
    f->by_name = kiln_malloc(f->count * sizeof *f->by_name);
    st_entry **by_offset = kiln_malloc(f->count * sizeof *by_offset);
    if (!f->by_name || !by_offset) {
        kiln_free(by_offset);
        st_fail(r, KILN_ERR_OUT_OF_MEMORY, "out of memory reading the header");
        return -1;
    }
    for (size_t i = 0; i < f->count; i++)
        f->by_name[i] = by_offset[i] = &f->entries[i];
    qsort(f->by_name, f->count, sizeof *f->by_name, st_cmp_name);
    for (size_t i = 1; i < f->count; i++) {
        if (strcmp(f->by_name[i - 1]->t.name, f->by_name[i]->t.name) == 0) {
            st_fail(r, KILN_ERR_PARSE,
                    "invalid header at byte %llu: tensor '%.100s' appears twice (first at byte %llu)",
                    (unsigned long long)f->by_name[i]->at, f->by_name[i]->t.name,
                    (unsigned long long)f->by_name[i - 1]->at);
            kiln_free(by_offset);
            return -1;
        }
    }
    qsort(by_offset, f->count, sizeof *by_offset, st_cmp_offset);
    const st_entry *prev = NULL;
    for (size_t i = 0; i < f->count; i++) {
        const st_entry *e = by_offset[i];
        if (e->begin == e->end)
            continue; /* empty tensors overlap nothing */
        if (prev && prev->end > e->begin) {
            st_fail(r, KILN_ERR_WEIGHTS,
                    "tensors '%.100s' (data_offsets [%llu, %llu], header byte %llu) and '%.100s' (data_offsets [%llu, %llu], header byte %llu) overlap",
                    prev->t.name, (unsigned long long)prev->begin, (unsigned long long)prev->end,
                    (unsigned long long)prev->at, e->t.name, (unsigned long long)e->begin,
                    (unsigned long long)e->end, (unsigned long long)e->at);
            kiln_free(by_offset);
            return -1;
        }
        prev = e;
    }
    kiln_free(by_offset);
    return 0;
}

/* Validates f->bytes[0..size) and fills f. */
static kiln_status st_parse(kiln_st_file *f, const char *name, kiln_diag *d)
{
    const unsigned char *b = f->bytes;
    if (f->size < 8)
        return st_fail_plain(d, name, KILN_ERR_WEIGHTS,
                             "file is %zu bytes: too short for a safetensors file (it starts with an 8-byte header length)",
                             f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | b[i];
    if (hlen > KILN_ST_MAX_HEADER)
        return st_fail_plain(d, name, KILN_ERR_WEIGHTS,
                             "header length %llu (bytes 0..7) is larger than the limit of %llu bytes: not a safetensors file, or a corrupt one",
                             (unsigned long long)hlen, (unsigned long long)KILN_ST_MAX_HEADER);
    if (hlen > f->size - 8)
        return st_fail_plain(d, name, KILN_ERR_WEIGHTS,
                             "header length %llu (bytes 0..7) goes past the end of the file (%zu bytes): the file is truncated or not a safetensors file",
                             (unsigned long long)hlen, f->size);
    f->strings = kiln_malloc((size_t)hlen + 1);
    if (!f->strings)
        return st_fail_plain(d, name, KILN_ERR_OUT_OF_MEMORY, "out of memory reading the header");

    st_reader r = {0};
    r.f = f;
    r.d = d;
    r.name = name;
    r.h = b + HEADER_BASE;
    r.hlen = (size_t)hlen;
    r.data_size = (uint64_t)(f->size - HEADER_BASE - (size_t)hlen);
    r.status = KILN_OK;
    if (st_header(&r) == 0)
        st_check(&r);
    return r.status;
}

static kiln_st_file *st_new(const char *name, kiln_diag *d)
{
    kiln_st_file *f = kiln_calloc(1, sizeof *f);
    size_t n = strlen(name);
    char *path = f ? kiln_malloc(n + 1) : NULL;
    if (!path) {
        kiln_free(f);
        st_fail_plain(d, name, KILN_ERR_OUT_OF_MEMORY, "out of memory opening the file");
        return NULL;
    }
    memcpy(path, name, n + 1);
    f->path = path;
    return f;
}

kiln_status kiln_st_open_memory(const void *bytes, size_t size, const char *name,
                                kiln_st_file **out, kiln_diag *d)
{
    if (!out)
        return KILN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!name)
        name = "<memory>";
    if (!bytes && size > 0)
        return st_fail_plain(d, name, KILN_ERR_INVALID_ARGUMENT, "no bytes to read");
    kiln_st_file *f = st_new(name, d);
    if (!f)
        return KILN_ERR_OUT_OF_MEMORY;
    f->bytes = bytes;
    f->size = size;
    kiln_status s = st_parse(f, name, d);
    if (s != KILN_OK) {
        kiln_st_close(f);
        return s;
    }
    *out = f;
    return KILN_OK;
}

kiln_status kiln_st_open(const char *path, kiln_st_file **out, kiln_diag *d)
{
    if (!out)
        return KILN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!path)
        return st_fail_plain(d, "<null>", KILN_ERR_INVALID_ARGUMENT, "no file name");
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* O_NONBLOCK: a FIFO must not block */
    if (fd < 0)
        return st_fail_plain(d, path, KILN_ERR_IO, "cannot open weights file: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return st_fail_plain(d, path, KILN_ERR_IO, "cannot read weights file: %s", strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return st_fail_plain(d, path, KILN_ERR_IO, "cannot read weights file: this is %s, not a regular file",
                             kiln_diag_file_kind((unsigned)st.st_mode));
    }
    if (st.st_size < 8 || (uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        if (st.st_size < 8)
            return st_fail_plain(d, path, KILN_ERR_WEIGHTS,
                                 "file is %lld bytes: too short for a safetensors file (it starts with an 8-byte header length)",
                                 (long long)st.st_size);
        return st_fail_plain(d, path, KILN_ERR_IO, "file too large to map");
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_err = errno;
    close(fd); /* the mapping stays valid */
    if (map == MAP_FAILED)
        return st_fail_plain(d, path, KILN_ERR_IO, "cannot map weights file: %s", strerror(map_err));
    kiln_st_file *f = st_new(path, d);
    if (!f) {
        munmap(map, size);
        return KILN_ERR_OUT_OF_MEMORY;
    }
    /* ownership of the mapping passes to f: kiln_st_close unmaps it */
    f->map = map;
    f->map_size = size;
    f->bytes = map;
    f->size = size;
    kiln_status s = st_parse(f, path, d);
    if (s != KILN_OK) {
        kiln_st_close(f);
        return s;
    }
    *out = f;
    return KILN_OK;
}

/* ------------------------------------------------------------------------ */
/* writer */

typedef struct st_buf {
    char *p;
    size_t n, cap;
    int oom;
} st_buf;

static void buf_put(st_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (kiln_grow((void **)&b->p, &b->cap, b->n + n + 1, 1) != 0) {
        b->oom = 1;
        return;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void buf_puts(st_buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_json_string(st_buf *b, const char *s)
{
    buf_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\', esc[1] = (char)*p;
            buf_put(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            buf_put(b, esc, 6);
        } else {
            buf_put(b, (const char *)p, 1);
        }
    }
    buf_put(b, "\"", 1);
}

static int st_write_floats(FILE *fp, const float *data, size_t count)
{
    unsigned char chunk[4096];
    size_t i = 0;
    while (i < count) {
        size_t n = 0;
        for (; i < count && n + 4 <= sizeof chunk; i++, n += 4) {
            uint32_t u;
            memcpy(&u, &data[i], 4);
            chunk[n] = (unsigned char)u;
            chunk[n + 1] = (unsigned char)(u >> 8);
            chunk[n + 2] = (unsigned char)(u >> 16);
            chunk[n + 3] = (unsigned char)(u >> 24);
        }
        if (fwrite(chunk, 1, n, fp) != n)
            return -1;
    }
    return 0;
}

kiln_status kiln_st_write_f32(const char *path, size_t count, const char *const *names,
                              const int *ranks, const int64_t *const *dims,
                              const float *const *data)
{
    if (!path || (count > 0 && (!names || !ranks || !dims || !data)))
        return KILN_ERR_INVALID_ARGUMENT;
    size_t *elements = kiln_calloc(count ? count : 1, sizeof *elements);
    if (!elements)
        return KILN_ERR_OUT_OF_MEMORY;
    kiln_status status = KILN_OK;
    st_buf b = {0};
    uint64_t offset = 0;
    buf_puts(&b, "{");
    for (size_t i = 0; i < count && status == KILN_OK; i++) {
        if (!names[i] || ranks[i] < 0 || ranks[i] > KILN_MAX_RANK || (ranks[i] > 0 && !dims[i])) {
            status = KILN_ERR_INVALID_ARGUMENT;
            break;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                status = KILN_ERR_INVALID_ARGUMENT;
        uint64_t n = 1;
        for (int k = 0; k < ranks[i] && status == KILN_OK; k++) {
            if (dims[i][k] < 0)
                status = KILN_ERR_INVALID_ARGUMENT;
            else if (dims[i][k] > 0 && n > (UINT64_MAX / 4) / (uint64_t)dims[i][k])
                status = KILN_ERR_INVALID_ARGUMENT;
            else
                n *= (uint64_t)dims[i][k];
        }
        if (status != KILN_OK)
            break;
        if (n > SIZE_MAX / 4 || offset > UINT64_MAX - 4 * n || (n > 0 && !data[i])) {
            status = KILN_ERR_INVALID_ARGUMENT;
            break;
        }
        elements[i] = (size_t)n;
        char tmp[64];
        if (i > 0)
            buf_puts(&b, ",");
        buf_json_string(&b, names[i]);
        buf_puts(&b, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int k = 0; k < ranks[i]; k++) {
            snprintf(tmp, sizeof tmp, "%s%lld", k ? "," : "", (long long)dims[i][k]);
            buf_puts(&b, tmp);
        }
        snprintf(tmp, sizeof tmp, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                 (unsigned long long)(offset + 4 * n));
        buf_puts(&b, tmp);
        offset += 4 * n;
    }
    buf_puts(&b, "}");
    while (!b.oom && b.n % 8 != 0)
        buf_puts(&b, " ");
    if (status == KILN_OK && b.oom)
        status = KILN_ERR_OUT_OF_MEMORY;
    if (status != KILN_OK) {
        kiln_free(b.p);
        kiln_free(elements);
        return status;
    }

    FILE *fp = fopen(path, "wb");
    if (!fp) {
        kiln_free(b.p);
        kiln_free(elements);
        return KILN_ERR_IO;
    }
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)b.n >> (8 * i));
    int ok = fwrite(len, 1, 8, fp) == 8 && fwrite(b.p, 1, b.n, fp) == b.n;
    for (size_t i = 0; ok && i < count; i++)
        ok = st_write_floats(fp, data[i], elements[i]) == 0;
    if (fclose(fp) != 0)
        ok = 0;
    kiln_free(b.p);
    kiln_free(elements);
    if (!ok)
        return KILN_ERR_IO; /* never remove(path): it may be anything the caller named */
    return KILN_OK;
}
