/* ir/parse.c: the IR text form, reader side (grammar in docs/ir.md).
 *
 * A hand-written lexer and a flat statement parser: the grammar has no
 * nesting beyond one level of brackets, so nothing recurses. The graph is
 * built through the builder API; every node's type goes through its op's
 * shape rule and must equal the type written in the text. Errors go to the
 * kiln_diag with file:line:col; after an error the rest of the line is skipped
 * and parsing goes on, so independent errors are all reported. On failure the
 * partial graph is destroyed and *out is NULL. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"

/* Past this many errors in one parse, stop. */
#define MAX_PARSE_ERRORS 50
/* Longest number token converted (a %.17g double is under 30 characters). */
#define MAX_NUMBER_LEN 400

typedef enum tok_kind {
    T_EOF,
    T_NL,
    T_IDENT,  /* [A-Za-z_][A-Za-z0-9_]* */
    T_NUM,    /* a number: decimal, float, or 0x hex */
    T_VALUE,  /* %name or %"name"; str holds the name */
    T_AT,     /* @name; start/len hold the name after '@' */
    T_STRING, /* "..."; str holds the decoded text */
    T_LPAREN,
    T_RPAREN,
    T_LBRACK,
    T_RBRACK,
    T_LBRACE,
    T_RBRACE,
    T_COMMA,
    T_COLON,
    T_EQ,
    T_ARROW,
    T_ERROR, /* a lexical error; the message is in parser.lexmsg */
} tok_kind;

typedef struct token {
    tok_kind kind;
    uint32_t line, col;
    const char *start; /* raw text */
    size_t len;
    char *str; /* T_VALUE, T_STRING: decoded, NUL-terminated, in parser.scratch */
} token;

typedef struct parser {
    const char *src;
    size_t len, pos;
    uint32_t line, col;
    token tok;
    char lexmsg[160];

    kiln_diag *d;
    const char *dfile; /* filename for diagnostics (in d's arena) */
    const char *gfile; /* filename for value/node locations (in g's arena) */
    const char *dir;   /* directory part of filename, or NULL (in keep) */
    kiln_graph *g;

    kiln_arena scratch; /* strings of the current statement; reset between statements */
    kiln_arena keep;    /* strings that live until the end of the parse */

    int errors;
    bool oom, stop;

    /* `weights` lines: text index -> graph index */
    int *wmap;
    size_t n_wmap, cap_wmap;
    /* operands of the node being parsed */
    kiln_id *ops;
    size_t cap_ops;
    /* outputs named in the header, resolved at the end */
    struct pending_output {
        const char *name;
        uint32_t line, col;
    } *outs;
    size_t n_outs, cap_outs;
    /* bad[v]: value v was defined by a statement that failed; uses of it fail
     * silently instead of cascading */
    unsigned char *bad;
    size_t cap_bad;

    bool seen_description, seen_precision, seen_max_elements, seen_param, seen_memory, seen_schedule;
} parser;

/* ---- diagnostics -------------------------------------------------------- */

static void out_of_memory(parser *p)
{
    if (!p->oom) {
        p->oom = true;
        kiln_diag_error(p->d, (kiln_loc){p->dfile, p->tok.line, p->tok.col}, "out of memory while parsing");
    }
    p->stop = true;
}

static void error_at(parser *p, uint32_t line, uint32_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void error_at(parser *p, uint32_t line, uint32_t col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kiln_diag_verror(p->d, (kiln_loc){p->dfile, line, col}, fmt, ap);
    va_end(ap);
    p->errors++;
    if (p->errors >= MAX_PARSE_ERRORS || (p->d->max_errors > 0 && p->d->errors >= p->d->max_errors))
        p->stop = true;
}

/* Printable excerpt of raw text for messages: at most 32 bytes, escaped. */
static void excerpt(char *buf, size_t size, const char *s, size_t len)
{
    size_t w = 0;
    size_t n = len > 32 ? 32 : len;
    for (size_t i = 0; i < n && w + 5 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\'' || c == '\\' || c < 0x20 || c >= 0x7f)
            w += (size_t)snprintf(buf + w, size - w, "\\x%02x", c);
        else
            buf[w++] = (char)c;
    }
    if (n < len && w + 4 < size) {
        memcpy(buf + w, "...", 3);
        w += 3;
    }
    buf[w < size ? w : size - 1] = 0;
}

/* "'x'", "end of line", "end of input": what the current token is. */
static const char *tok_desc(const parser *p, char *buf, size_t size)
{
    switch (p->tok.kind) {
    case T_EOF: return "end of input";
    case T_NL: return "end of line";
    default: break;
    }
    char ex[160];
    excerpt(ex, sizeof ex, p->tok.start, p->tok.len);
    snprintf(buf, size, "'%s'", ex);
    return buf;
}

/* "expected WHAT, found X" at the current token; a lexical error token reports
 * its own message instead. */
static void expected(parser *p, const char *what)
{
    if (p->tok.kind == T_ERROR) {
        error_at(p, p->tok.line, p->tok.col, "%s", p->lexmsg);
        return;
    }
    char buf[200];
    error_at(p, p->tok.line, p->tok.col, "expected %s, found %s", what, tok_desc(p, buf, sizeof buf));
}

/* ---- lexer -------------------------------------------------------------- */

static bool is_ident_start(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static bool is_ident_char(unsigned char c) { return is_ident_start(c) || is_digit(c); }
static bool is_bare_char(unsigned char c) { return is_ident_char(c) || c == '.'; }
static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static unsigned char peekc(const parser *p, size_t ahead)
{
    return p->pos + ahead < p->len ? (unsigned char)p->src[p->pos + ahead] : 0;
}
static bool at_end(const parser *p, size_t ahead) { return p->pos + ahead >= p->len; }

static void bump(parser *p, size_t n)
{
    p->pos += n;
    if (p->col <= UINT32_MAX - n)
        p->col += (uint32_t)n;
}

static void lex_error(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lex_error(parser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->lexmsg, sizeof p->lexmsg, fmt, ap);
    va_end(ap);
    p->tok.kind = T_ERROR;
}

/* A double-quoted string starting at p->pos (the quote). On success p->tok.str
 * holds the decoded text. Strings end on their line. */
static void lex_string(parser *p)
{
    size_t open = p->pos, end = open + 1;
    bool closed = false;
    while (end < p->len) {
        char c = p->src[end];
        if (c == '"') {
            closed = true;
            break;
        }
        if (c == '\n')
            break;
        if (c == '\\' && end + 1 < p->len && p->src[end + 1] != '\n')
            end++;
        end++;
    }
    size_t stop = closed ? end + 1 : end; /* where the token ends */
    p->tok.len = stop - open;
    if (!closed) {
        bump(p, stop - open);
        lex_error(p, "unterminated string (a string ends on the line where it starts)");
        return;
    }
    char *out = kiln_arena_alloc(&p->scratch, end - open);
    if (out == NULL) {
        bump(p, stop - open);
        out_of_memory(p);
        lex_error(p, "out of memory");
        return;
    }
    size_t w = 0;
    for (size_t i = open + 1; i < end; i++) {
        unsigned char c = (unsigned char)p->src[i];
        uint32_t col = p->col + (uint32_t)(i - open);
        if (c == 0) {
            p->tok.line = p->line;
            p->tok.col = col;
            bump(p, stop - open);
            lex_error(p, "NUL byte in string");
            return;
        }
        if (c != '\\') {
            out[w++] = (char)c;
            continue;
        }
        unsigned char e = i + 1 < end ? (unsigned char)p->src[i + 1] : 0;
        i++;
        switch (e) {
        case '\\': out[w++] = '\\'; break;
        case '"': out[w++] = '"'; break;
        case 'n': out[w++] = '\n'; break;
        case 't': out[w++] = '\t'; break;
        case 'r': out[w++] = '\r'; break;
        case 'x': {
            int h1 = i + 1 < end ? hex_value((unsigned char)p->src[i + 1]) : -1;
            int h2 = i + 2 < end ? hex_value((unsigned char)p->src[i + 2]) : -1;
            if (h1 < 0 || h2 < 0) {
                p->tok.line = p->line;
                p->tok.col = col;
                bump(p, stop - open);
                lex_error(p, "'\\x' in a string needs two hex digits");
                return;
            }
            if (h1 == 0 && h2 == 0) {
                p->tok.line = p->line;
                p->tok.col = col;
                bump(p, stop - open);
                lex_error(p, "a string cannot contain '\\x00'");
                return;
            }
            out[w++] = (char)(h1 * 16 + h2);
            i += 2;
            break;
        }
        default: {
            char ex[16];
            excerpt(ex, sizeof ex, p->src + i, e != 0 ? 1 : 0);
            p->tok.line = p->line;
            p->tok.col = col;
            bump(p, stop - open);
            lex_error(p, "unknown escape '\\%s' in string (use \\\\ \\\" \\n \\t \\r or \\xHH)", ex);
            return;
        }
        }
    }
    out[w] = 0;
    bump(p, stop - open);
    p->tok.str = out;
}

static void lex(parser *p)
{
    for (;;) {
        if (at_end(p, 0))
            break;
        unsigned char c = peekc(p, 0);
        if (c == ' ' || c == '\t' || c == '\r') {
            bump(p, 1);
        } else if (c == '#') {
            while (!at_end(p, 0) && peekc(p, 0) != '\n')
                bump(p, 1);
        } else {
            break;
        }
    }
    token *t = &p->tok;
    t->line = p->line;
    t->col = p->col;
    t->start = p->src + p->pos;
    t->len = 0;
    t->str = NULL;
    if (at_end(p, 0)) {
        t->kind = T_EOF;
        return;
    }
    unsigned char c = peekc(p, 0);
    size_t n = 1;
    switch (c) {
    case '\n':
        t->kind = T_NL;
        t->len = 1;
        p->pos++;
        if (p->line < UINT32_MAX)
            p->line++;
        p->col = 1;
        return;
    case '(': t->kind = T_LPAREN; break;
    case ')': t->kind = T_RPAREN; break;
    case '[': t->kind = T_LBRACK; break;
    case ']': t->kind = T_RBRACK; break;
    case '{': t->kind = T_LBRACE; break;
    case '}': t->kind = T_RBRACE; break;
    case ',': t->kind = T_COMMA; break;
    case ':': t->kind = T_COLON; break;
    case '=': t->kind = T_EQ; break;
    case '"':
        t->kind = T_STRING;
        lex_string(p);
        return;
    case '%':
        t->kind = T_VALUE;
        if (peekc(p, 1) == '"' && !at_end(p, 1)) {
            bump(p, 1);
            lex_string(p);
            t->len++; /* the '%' */
            return;
        }
        while (!at_end(p, n) && is_bare_char(peekc(p, n)))
            n++;
        if (n == 1) {
            bump(p, 1);
            t->len = 1;
            lex_error(p, "expected a value name after '%%' ([A-Za-z0-9_.]+ or a quoted string)");
            return;
        }
        t->str = kiln_arena_strndup(&p->scratch, t->start + 1, n - 1);
        if (t->str == NULL) {
            out_of_memory(p);
            t->kind = T_ERROR;
            snprintf(p->lexmsg, sizeof p->lexmsg, "out of memory");
        }
        break;
    case '@':
        t->kind = T_AT;
        while (!at_end(p, n) && is_bare_char(peekc(p, n)))
            n++;
        break;
    default:
        if (c == '-' && peekc(p, 1) == '>' && !at_end(p, 1)) {
            t->kind = T_ARROW;
            n = 2;
        } else if (is_ident_start(c)) {
            t->kind = T_IDENT;
            while (!at_end(p, n) && is_ident_char(peekc(p, n)))
                n++;
        } else if (is_digit(c) || ((c == '-' || c == '+' || c == '.') && !at_end(p, 1) &&
                                   (is_digit(peekc(p, 1)) || (c != '.' && peekc(p, 1) == '.' &&
                                                              !at_end(p, 2) && is_digit(peekc(p, 2)))))) {
            /* A number: sign, then digits, letters and dots; a sign only right
             * after an exponent letter (e for decimal, p for hex). */
            t->kind = T_NUM;
            size_t body = (c == '-' || c == '+') ? 1 : 0;
            bool hex = peekc(p, body) == '0' && (peekc(p, body + 1) | 0x20) == 'x' && !at_end(p, body + 1);
            while (!at_end(p, n)) {
                unsigned char d = peekc(p, n);
                unsigned char prev = (unsigned char)(peekc(p, n - 1) | 0x20);
                if (is_ident_char(d) || d == '.')
                    n++;
                else if ((d == '+' || d == '-') && (hex ? prev == 'p' : prev == 'e'))
                    n++;
                else
                    break;
            }
        } else if (c == 0) {
            t->len = 1;
            bump(p, 1);
            lex_error(p, "unexpected NUL byte");
            return;
        } else {
            char ex[16];
            excerpt(ex, sizeof ex, (const char *)p->src + p->pos, 1);
            t->len = 1;
            bump(p, 1);
            lex_error(p, "unexpected character '%s'", ex);
            return;
        }
    }
    t->len = n;
    bump(p, n);
}

static void advance(parser *p) { lex(p); }

static void skip_nl(parser *p)
{
    while (p->tok.kind == T_NL)
        advance(p);
}

static bool tok_is(const parser *p, const char *word)
{
    size_t l = strlen(word);
    return p->tok.kind == T_IDENT && p->tok.len == l && memcmp(p->tok.start, word, l) == 0;
}

/* The current identifier as a C string (truncated copies never match a
 * keyword, so a long identifier is simply unknown). */
static const char *tok_word(const parser *p, char *buf, size_t size)
{
    size_t l = p->tok.len < size - 1 ? p->tok.len : size - 1;
    memcpy(buf, p->tok.start, l);
    buf[l] = 0;
    return buf;
}

static bool expect(parser *p, tok_kind kind, const char *what)
{
    if (p->tok.kind != kind) {
        expected(p, what);
        return false;
    }
    advance(p);
    return true;
}

/* ---- numbers ------------------------------------------------------------ */

/* Decimal integer, full token, with overflow checks. */
static bool num_int64(parser *p, int64_t *out, const char *what)
{
    char ex[160];
    if (p->tok.kind != T_NUM) {
        expected(p, what);
        return false;
    }
    const char *s = p->tok.start;
    size_t len = p->tok.len, i = 0;
    bool neg = false;
    if (s[0] == '-' || s[0] == '+') {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == len) {
        expected(p, what);
        return false;
    }
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    bool overflow = false;
    for (; i < len; i++) {
        if (!is_digit((unsigned char)s[i])) {
            expected(p, what);
            return false;
        }
        unsigned dg = (unsigned)(s[i] - '0');
        if (v > (limit - dg) / 10)
            overflow = true;
        else
            v = v * 10 + dg;
    }
    if (overflow) {
        excerpt(ex, sizeof ex, s, len);
        error_at(p, p->tok.line, p->tok.col, "integer %s is out of range", ex);
        return false;
    }
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    advance(p);
    return true;
}

static bool num_uint64(parser *p, uint64_t *out, const char *what)
{
    char ex[160];
    if (p->tok.kind != T_NUM || !is_digit((unsigned char)p->tok.start[0])) {
        expected(p, what);
        return false;
    }
    uint64_t v = 0;
    bool overflow = false;
    for (size_t i = 0; i < p->tok.len; i++) {
        unsigned char c = (unsigned char)p->tok.start[i];
        if (!is_digit(c)) {
            expected(p, what);
            return false;
        }
        unsigned dg = c - '0';
        if (v > (UINT64_MAX - dg) / 10)
            overflow = true;
        else
            v = v * 10 + dg;
    }
    if (overflow) {
        excerpt(ex, sizeof ex, p->tok.start, p->tok.len);
        error_at(p, p->tok.line, p->tok.col, "integer %s is out of range", ex);
        return false;
    }
    *out = v;
    advance(p);
    return true;
}

/* A float as FORMAT.md reads it (kiln_parse_float: strtod over the full
 * token, no hex, finite). An integer is a float too. */
static bool num_double(parser *p, double *out, const char *what)
{
    char buf[MAX_NUMBER_LEN + 1], ex[160];
    if (p->tok.kind != T_NUM) {
        expected(p, what);
        return false;
    }
    excerpt(ex, sizeof ex, p->tok.start, p->tok.len);
    if (p->tok.len > MAX_NUMBER_LEN) {
        error_at(p, p->tok.line, p->tok.col, "number %s is too long", ex);
        return false;
    }
    memcpy(buf, p->tok.start, p->tok.len);
    buf[p->tok.len] = 0;
    double v;
    if (kiln_parse_float(buf, &v) != 0) {
        char *end;
        double raw = strtod(buf, &end);
        if (*end == 0 && !isfinite(raw) && strpbrk(buf, "xX") == NULL)
            error_at(p, p->tok.line, p->tok.col, "number %s is out of range", ex);
        else
            expected(p, what);
        return false;
    }
    *out = v;
    advance(p);
    return true;
}

/* 0x followed by hex digits; value at most `max`. */
static bool num_hex(parser *p, uint64_t max, uint64_t *out, const char *what)
{
    char ex[160];
    const char *s = p->tok.start;
    size_t len = p->tok.len;
    if (p->tok.kind != T_NUM || len < 3 || s[0] != '0' || (s[1] | 0x20) != 'x') {
        expected(p, what);
        return false;
    }
    uint64_t v = 0;
    bool overflow = false;
    for (size_t i = 2; i < len; i++) {
        int h = hex_value((unsigned char)s[i]);
        if (h < 0) {
            expected(p, what);
            return false;
        }
        if (v > (UINT64_MAX >> 4))
            overflow = true;
        v = v << 4 | (uint64_t)h;
    }
    if (overflow || v > max) {
        excerpt(ex, sizeof ex, s, len);
        error_at(p, p->tok.line, p->tok.col, "%s does not fit in %s", ex, what);
        return false;
    }
    *out = v;
    advance(p);
    return true;
}

/* ---- memory helpers ----------------------------------------------------- */

static char *keep_str(parser *p, const char *s)
{
    char *c = kiln_arena_strdup(&p->keep, s);
    if (c == NULL)
        out_of_memory(p);
    return c;
}

static char *graph_str(parser *p, const char *s)
{
    char *c = kiln_arena_strdup(&p->g->arena, s);
    if (c == NULL)
        out_of_memory(p);
    return c;
}

static bool is_bad(const parser *p, kiln_id id) { return id < p->cap_bad && p->bad[id]; }

static void mark_bad(parser *p, kiln_id id)
{
    if (id == KILN_NO_ID)
        return;
    if (id >= p->cap_bad) {
        size_t old = p->cap_bad;
        void *items = p->bad;
        if (kiln_grow(&items, &p->cap_bad, (size_t)id + 1, 1) < 0) {
            out_of_memory(p);
            return;
        }
        p->bad = items;
        memset(p->bad + old, 0, p->cap_bad - old);
    }
    p->bad[id] = 1;
}

/* A statement that defines `name` failed: define a placeholder so that later
 * uses fail quietly instead of reporting "undefined value" again. */
static void poison(parser *p, const char *name)
{
    if (name == NULL || p->g == NULL || p->oom)
        return;
    kiln_id id = kiln_graph_find_value(p->g, name);
    if (id == KILN_NO_ID) {
        kiln_type t;
        memset(&t, 0, sizeof t);
        const char *gname = graph_str(p, name);
        if (gname == NULL)
            return;
        id = kiln_graph_add_input(p->g, gname, &t, (kiln_loc){p->gfile, 0, 0});
        if (id == KILN_NO_ID) {
            out_of_memory(p);
            return;
        }
    }
    mark_bad(p, id);
}

/* ---- types -------------------------------------------------------------- */

static bool set_batch_name(parser *p, const char *name, uint32_t line, uint32_t col)
{
    char buf[200];
    if (p->g->batch_name == NULL) {
        p->g->batch_name = graph_str(p, name);
        return p->g->batch_name != NULL;
    }
    if (strcmp(p->g->batch_name, name) != 0) {
        excerpt(buf, sizeof buf, name, strlen(name));
        error_at(p, line, col, "the batch dimension is called '%s' here but '%s' before", buf, p->g->batch_name);
        return false;
    }
    return true;
}

/* dtype '[' dims ']' [nchw<B>c] [q(scale=S, zp=Z)] */
static bool parse_type(parser *p, kiln_type *t)
{
    char word[64], buf[200];
    memset(t, 0, sizeof *t);
    if (p->tok.kind != T_IDENT) {
        expected(p, "a type (e.g. f32[batch,3,224,224])");
        return false;
    }
    if (kiln_dtype_parse(tok_word(p, word, sizeof word), &t->dtype) != 0) {
        error_at(p, p->tok.line, p->tok.col, "unknown dtype %s (expected f32, bf16, f16, i8, u8, i32 or f64)",
                 tok_desc(p, buf, sizeof buf));
        return false;
    }
    advance(p);
    if (!expect(p, T_LBRACK, "'[' after the dtype"))
        return false;
    skip_nl(p);
    while (p->tok.kind != T_RBRACK) {
        if (t->shape.rank > 0) {
            if (!expect(p, T_COMMA, "',' or ']' in the shape"))
                return false;
            skip_nl(p);
        }
        if (t->shape.rank == KILN_MAX_RANK) {
            error_at(p, p->tok.line, p->tok.col, "a shape has at most %d dimensions", KILN_MAX_RANK);
            return false;
        }
        if (p->tok.kind == T_IDENT || p->tok.kind == T_STRING) {
            if (t->shape.rank != 0) {
                error_at(p, p->tok.line, p->tok.col,
                         "only the first dimension can be the batch; found %s at axis %d",
                         tok_desc(p, buf, sizeof buf), t->shape.rank);
                return false;
            }
            const char *name = p->tok.kind == T_STRING
                                   ? p->tok.str
                                   : kiln_arena_strndup(&p->scratch, p->tok.start, p->tok.len);
            if (name == NULL) {
                out_of_memory(p);
                return false;
            }
            if (!set_batch_name(p, name, p->tok.line, p->tok.col))
                return false;
            t->shape.batched = true;
            t->shape.dims[t->shape.rank++] = KILN_DIM_BATCH;
            advance(p);
        } else {
            int64_t v;
            uint32_t line = p->tok.line, col = p->tok.col;
            if (!num_int64(p, &v, "a dimension (an integer, or the batch name first)"))
                return false;
            if (v < 1 || v > KILN_MAX_DIM) {
                error_at(p, line, col, "dimension %" PRId64 " is out of range (1 to %" PRId64 ")", v,
                         KILN_MAX_DIM);
                return false;
            }
            t->shape.dims[t->shape.rank++] = v;
        }
        skip_nl(p);
    }
    advance(p); /* ']' */
    if (p->tok.kind == T_IDENT && p->tok.len >= 4 && memcmp(p->tok.start, "nchw", 4) == 0) {
        const char *s = p->tok.start;
        size_t l = p->tok.len;
        if (l == 4) {
            t->layout = KILN_LAYOUT_PLAIN;
        } else {
            int64_t block = 0;
            size_t i = 4;
            for (; i < l && is_digit((unsigned char)s[i]) && block <= 1000000; i++)
                block = block * 10 + (s[i] - '0');
            if (i == 4 || i != l - 1 || s[l - 1] != 'c' || block < 1 || block > 1000000) {
                error_at(p, p->tok.line, p->tok.col, "unknown layout %s (expected nchw<block>c, e.g. nchw16c)",
                         tok_desc(p, buf, sizeof buf));
                return false;
            }
            t->layout = KILN_LAYOUT_NCHWXC;
            t->block = (int)block;
        }
        advance(p);
    }
    if (tok_is(p, "q")) {
        int64_t zp;
        uint32_t line, col;
        advance(p);
        if (!expect(p, T_LPAREN, "'(' after 'q'"))
            return false;
        if (!tok_is(p, "scale")) {
            expected(p, "'scale'");
            return false;
        }
        advance(p);
        if (!expect(p, T_EQ, "'=' after 'scale'") || !num_double(p, &t->scale, "a number for the scale") ||
            !expect(p, T_COMMA, "',' after the scale"))
            return false;
        if (!tok_is(p, "zp")) {
            expected(p, "'zp'");
            return false;
        }
        advance(p);
        if (!expect(p, T_EQ, "'=' after 'zp'"))
            return false;
        line = p->tok.line;
        col = p->tok.col;
        if (!num_int64(p, &zp, "an integer for the zero point"))
            return false;
        if (zp < INT32_MIN || zp > INT32_MAX) {
            error_at(p, line, col, "zero point %" PRId64 " is out of range", zp);
            return false;
        }
        t->zero_point = (int32_t)zp;
        t->quantized = true;
        if (!expect(p, T_RPAREN, "')' after the zero point"))
            return false;
    }
    return true;
}

/* Text of a type for messages. */
static const char *type_text(const kiln_graph *g, const kiln_type *t, char *buf, size_t size)
{
    return kiln_type_format(t, g->batch_name != NULL ? g->batch_name : "batch", buf, size);
}

/* ---- statements --------------------------------------------------------- */

static bool end_of_statement(parser *p)
{
    if (p->tok.kind != T_NL && p->tok.kind != T_EOF) {
        expected(p, "end of line");
        return false;
    }
    return true;
}

/* A value name being defined: must not exist yet. */
static bool check_new_name(parser *p, const char *name, uint32_t line, uint32_t col)
{
    char buf[200];
    kiln_id id = kiln_graph_find_value(p->g, name);
    if (id == KILN_NO_ID)
        return true;
    const kiln_value *v = kiln_graph_value(p->g, id);
    excerpt(buf, sizeof buf, name, strlen(name));
    if (v->loc.line != 0)
        error_at(p, line, col, "value %%%s defined twice (first at line %" PRIu32 ", column %" PRIu32 ")", buf,
                 v->loc.line, v->loc.col);
    else
        error_at(p, line, col, "value %%%s defined twice", buf);
    return false;
}

/* An operand: a defined value. *quiet is set when the failure has already been
 * reported (a use of a value whose definition failed). */
static kiln_id resolve(parser *p, const char *name, uint32_t line, uint32_t col, bool *quiet)
{
    char buf[200];
    kiln_id id = kiln_graph_find_value(p->g, name);
    if (id != KILN_NO_ID && is_bad(p, id)) {
        *quiet = true;
        return KILN_NO_ID;
    }
    if (id == KILN_NO_ID) {
        excerpt(buf, sizeof buf, name, strlen(name));
        error_at(p, line, col, "undefined value %%%s", buf);
    }
    return id;
}

static const char *resolve_weights_path(parser *p, const char *path)
{
    if (path[0] == '/' || p->dir == NULL)
        return graph_str(p, path);
    while (path[0] == '.' && path[1] == '/')
        path += 2;
    char *s = kiln_arena_printf(&p->g->arena, "%s%s%s", p->dir,
                                p->dir[strlen(p->dir) - 1] == '/' ? "" : "/", path);
    if (s == NULL)
        out_of_memory(p);
    return s;
}

/* weights "PATH" */
static bool parse_weights(parser *p)
{
    advance(p);
    if (p->tok.kind != T_STRING) {
        expected(p, "a quoted path after 'weights'");
        return false;
    }
    const char *path = resolve_weights_path(p, p->tok.str);
    if (path == NULL)
        return false;
    advance(p);
    if (!end_of_statement(p))
        return false;
    int idx = kiln_graph_add_weight_file(p->g, path);
    if (idx < 0) {
        out_of_memory(p);
        return false;
    }
    void *items = p->wmap;
    if (kiln_grow(&items, &p->cap_wmap, p->n_wmap + 1, sizeof *p->wmap) < 0) {
        out_of_memory(p);
        return false;
    }
    p->wmap = items;
    p->wmap[p->n_wmap++] = idx;
    return true;
}

/* description "TEXT" */
static bool parse_description(parser *p)
{
    uint32_t line = p->tok.line, col = p->tok.col;
    advance(p);
    if (p->tok.kind != T_STRING) {
        expected(p, "a quoted string after 'description'");
        return false;
    }
    if (p->seen_description) {
        error_at(p, line, col, "description given twice");
        return false;
    }
    p->seen_description = true;
    p->g->description = graph_str(p, p->tok.str);
    if (p->g->description == NULL)
        return false;
    advance(p);
    return end_of_statement(p);
}

static bool parse_precision_word(parser *p, kiln_precision *out)
{
    char word[64], buf[200];
    if (p->tok.kind != T_IDENT) {
        expected(p, "a precision (f32, bf16, f16, int8 or auto)");
        return false;
    }
    if (kiln_precision_parse(tok_word(p, word, sizeof word), out) != 0) {
        error_at(p, p->tok.line, p->tok.col, "unknown precision %s (expected f32, bf16, f16, int8 or auto)",
                 tok_desc(p, buf, sizeof buf));
        return false;
    }
    advance(p);
    return true;
}

/* precision P */
static bool parse_graph_precision(parser *p)
{
    uint32_t line = p->tok.line, col = p->tok.col;
    kiln_precision prec;
    advance(p);
    if (!parse_precision_word(p, &prec))
        return false;
    if (p->seen_precision) {
        error_at(p, line, col, "precision given twice");
        return false;
    }
    p->seen_precision = true;
    p->g->precision = prec;
    return end_of_statement(p);
}

/* max_elements N */
static bool parse_max_elements(parser *p)
{
    uint32_t line = p->tok.line, col = p->tok.col;
    int64_t v;
    advance(p);
    uint32_t vline = p->tok.line, vcol = p->tok.col;
    if (!num_int64(p, &v, "an integer after 'max_elements'"))
        return false;
    if (v < 0) {
        error_at(p, vline, vcol, "max_elements must not be negative");
        return false;
    }
    if (p->seen_max_elements) {
        error_at(p, line, col, "max_elements given twice");
        return false;
    }
    if (p->g->n_nodes > 0 || p->seen_param) {
        /* Shape rules already checked against the old limit. */
        error_at(p, line, col, "max_elements must come before the params and nodes");
        return false;
    }
    p->seen_max_elements = true;
    p->g->max_elements = v;
    return end_of_statement(p);
}

/* data DTYPE [0x.., ...]: count must match the shape */
static bool parse_inline_data(parser *p, const kiln_type *type, kiln_param *prm)
{
    char word[64], buf[200];
    advance(p); /* 'data' */
    if (p->tok.kind != T_IDENT) {
        expected(p, "the dtype of the data (f32, f64, f16 or bf16)");
        return false;
    }
    kiln_dtype dt;
    if (kiln_dtype_parse(tok_word(p, word, sizeof word), &dt) != 0 ||
        (dt != KILN_F32 && dt != KILN_F64 && dt != KILN_F16 && dt != KILN_BF16)) {
        error_at(p, p->tok.line, p->tok.col, "inline data must be f32, f64, f16 or bf16, not %s",
                 tok_desc(p, buf, sizeof buf));
        return false;
    }
    advance(p);
    size_t esize = dt == KILN_F64 ? 8 : dt == KILN_F32 ? 4 : 2;
    uint64_t max = esize == 8 ? UINT64_MAX : (UINT64_C(1) << (8 * esize)) - 1;
    uint32_t line = p->tok.line, col = p->tok.col;
    if (!expect(p, T_LBRACK, "'[' before the data"))
        return false;
    int64_t want = kiln_shape_elements(&type->shape, 1);
    if (want < 0) {
        error_at(p, line, col, "the param's shape has too many elements");
        return false;
    }
    /* Every element takes at least two bytes of text ("0x0,"), so a count
     * beyond that cannot match: do not allocate for it. */
    unsigned char *data = NULL;
    if ((uint64_t)want <= (p->len - p->pos) / 2 + 1) {
        data = kiln_arena_alloc_aligned(&p->g->arena, (size_t)want * esize > 0 ? (size_t)want * esize : 1);
        if (data == NULL) {
            out_of_memory(p);
            return false;
        }
    }
    int64_t count = 0;
    skip_nl(p);
    while (p->tok.kind != T_RBRACK) {
        if (count > 0) {
            if (!expect(p, T_COMMA, "',' or ']' in the data"))
                return false;
            skip_nl(p);
        }
        uint64_t bits;
        if (!num_hex(p, max, &bits, esize == 8 ? "64 bits (0x + 16 hex digits)"
                                    : esize == 4 ? "32 bits (0x + 8 hex digits)"
                                                 : "16 bits (0x + 4 hex digits)"))
            return false;
        if (data != NULL && count < want) {
            unsigned char *e = data + (size_t)count * esize;
            if (esize == 2) {
                uint16_t x = (uint16_t)bits;
                memcpy(e, &x, 2);
            } else if (esize == 4) {
                uint32_t x = (uint32_t)bits;
                memcpy(e, &x, 4);
            } else {
                memcpy(e, &bits, 8);
            }
        }
        count++;
        skip_nl(p);
    }
    if (count != want) {
        error_at(p, line, col, "the shape has %" PRId64 " elements but the data has %" PRId64, want, count);
        return false;
    }
    advance(p); /* ']' */
    prm->data_dtype = dt;
    prm->data = data;
    return true;
}

/* param %NAME: TYPE = file N "KEY" | random SEED LO HI | data DTYPE [...] */
static bool parse_param(parser *p)
{
    p->seen_param = true;
    advance(p);
    if (p->tok.kind != T_VALUE) {
        expected(p, "a value name after 'param'");
        return false;
    }
    const char *name = p->tok.str;
    uint32_t line = p->tok.line, col = p->tok.col;
    if (!check_new_name(p, name, line, col))
        return false;
    advance(p);
    kiln_type type;
    kiln_param prm;
    memset(&prm, 0, sizeof prm);
    bool ok = expect(p, T_COLON, "':' after the param's name");
    uint32_t tline = p->tok.line, tcol = p->tok.col;
    ok = ok && parse_type(p, &type);
    if (ok && type.shape.batched) {
        error_at(p, tline, tcol, "a param cannot have the batch dimension");
        ok = false;
    }
    if (ok && type.layout != KILN_LAYOUT_PLAIN) {
        error_at(p, tline, tcol, "a param is plain: the layout pass blocks only values that nodes compute");
        ok = false;
    }
    ok = ok && expect(p, T_EQ, "'=' after the param's type");
    if (ok && tok_is(p, "file")) {
        int64_t idx;
        advance(p);
        uint32_t iline = p->tok.line, icol = p->tok.col;
        ok = num_int64(p, &idx, "the index of a weights file");
        if (ok && (idx < 0 || (uint64_t)idx >= p->n_wmap)) {
            error_at(p, iline, icol,
                     "weights file %" PRId64 " does not exist (%zu 'weights' line%s before this point)", idx,
                     p->n_wmap, p->n_wmap == 1 ? "" : "s");
            ok = false;
        }
        if (ok && p->tok.kind != T_STRING) {
            expected(p, "the tensor's key (a quoted string)");
            ok = false;
        }
        if (ok) {
            prm.source = KILN_PARAM_FILE;
            prm.file = (uint32_t)p->wmap[idx];
            prm.key = graph_str(p, p->tok.str);
            ok = prm.key != NULL;
            advance(p);
        }
    } else if (ok && tok_is(p, "random")) {
        advance(p);
        prm.source = KILN_PARAM_RANDOM;
        ok = num_uint64(p, &prm.seed, "the seed (an unsigned integer)");
        uint32_t rline = p->tok.line, rcol = p->tok.col;
        ok = ok && num_double(p, &prm.lo, "the low end of the range (a number)") &&
             num_double(p, &prm.hi, "the high end of the range (a number)");
        if (ok && prm.lo > prm.hi) {
            error_at(p, rline, rcol, "the random range is empty: its low end %.17g is above its high end %.17g",
                     prm.lo, prm.hi);
            ok = false;
        }
    } else if (ok && tok_is(p, "data")) {
        prm.source = KILN_PARAM_INLINE;
        ok = parse_inline_data(p, &type, &prm);
    } else if (ok) {
        expected(p, "'file', 'random' or 'data'");
        ok = false;
    }
    if (ok)
        ok = end_of_statement(p);
    if (!ok) {
        poison(p, name);
        return false;
    }
    const char *gname = graph_str(p, name);
    if (gname == NULL)
        return false;
    kiln_id id = kiln_graph_add_param(p->g, gname, &type, &prm, (kiln_loc){p->gfile, line, col});
    if (id == KILN_NO_ID) {
        out_of_memory(p);
        return false;
    }
    return true;
}

/* One attribute value of the type of attribute `id`, into *a. */
/* An INTS or FLOATS attribute: "[a, b, ...]", newlines allowed inside,
 * at most KILN_MAX_INTS entries; integers within a dimension's range. */
static bool parse_number_list(parser *p, const kiln_attr_def *def, bool floats, kiln_attr *a)
{
    char buf[200], what[200];
    if (p->tok.kind != T_LBRACK) {
        if (p->tok.kind == T_ERROR) {
            expected(p, "");
            return false;
        }
        error_at(p, p->tok.line, p->tok.col, "attribute '%s' expects a list of %s, found %s", def->name,
                 floats ? "numbers" : "integers", tok_desc(p, buf, sizeof buf));
        return false;
    }
    advance(p);
    skip_nl(p);
    snprintf(what, sizeof what, "%s in attribute '%s'", floats ? "a number" : "an integer", def->name);
    while (p->tok.kind != T_RBRACK) {
        if (a->n > 0) {
            if (!expect(p, T_COMMA, "',' or ']' in the list"))
                return false;
            skip_nl(p);
        }
        if (a->n == KILN_MAX_INTS) {
            error_at(p, p->tok.line, p->tok.col, "attribute '%s' has more than %d entries", def->name,
                     KILN_MAX_INTS);
            return false;
        }
        uint32_t eline = p->tok.line, ecol = p->tok.col;
        if (floats ? !num_double(p, &a->floats[a->n], what) : !num_int64(p, &a->ints[a->n], what))
            return false;
        /* Sizes, axes, permutations and pads: nothing valid is beyond a
         * dimension's range, and the shape rules multiply these. */
        if (!floats && (a->ints[a->n] < -KILN_MAX_DIM || a->ints[a->n] > KILN_MAX_DIM)) {
            error_at(p, eline, ecol, "attribute '%s': %" PRId64 " is out of range (-%" PRId64 " to %" PRId64 ")",
                     def->name, a->ints[a->n], KILN_MAX_DIM, KILN_MAX_DIM);
            return false;
        }
        a->n++;
        skip_nl(p);
    }
    advance(p);
    return true;
}

static bool parse_attr_value(parser *p, kiln_attr_id id, kiln_attr *a)
{
    const kiln_attr_def *def = &kiln_attr_defs[id];
    char what[200], buf[200];
    memset(a, 0, sizeof *a);
    switch (def->type) {
    case KILN_ATTR_T_INT:
        snprintf(what, sizeof what, "an integer for attribute '%s'", def->name);
        return num_int64(p, &a->i, what);
    case KILN_ATTR_T_FLOAT:
        snprintf(what, sizeof what, "a number for attribute '%s'", def->name);
        return num_double(p, &a->f, what);
    case KILN_ATTR_T_BOOL:
        if (tok_is(p, "true") || tok_is(p, "false")) {
            a->i = tok_is(p, "true");
            advance(p);
            return true;
        }
        if (p->tok.kind == T_ERROR) {
            expected(p, "");
            return false;
        }
        error_at(p, p->tok.line, p->tok.col, "attribute '%s' expects true or false, found %s", def->name,
                 tok_desc(p, buf, sizeof buf));
        return false;
    case KILN_ATTR_T_INTS:
    case KILN_ATTR_T_FLOATS:
        return parse_number_list(p, def, def->type == KILN_ATTR_T_FLOATS, a);
    case KILN_ATTR_T_WORD: {
        char list[200];
        size_t w = 0;
        list[0] = 0;
        const char *const *words = kiln_attr_words(id);
        for (int k = 0; words != NULL && words[k] != NULL; k++) {
            if (p->tok.kind == T_IDENT && strlen(words[k]) == p->tok.len &&
                memcmp(words[k], p->tok.start, p->tok.len) == 0) {
                a->i = k;
                advance(p);
                return true;
            }
            if (w < sizeof list)
                w += (size_t)snprintf(list + w, sizeof list - w, "%s%s", k > 0 ? ", " : "", words[k]);
        }
        if (p->tok.kind == T_ERROR) {
            expected(p, "");
            return false;
        }
        error_at(p, p->tok.line, p->tok.col, "attribute '%s' expects one of: %s; found %s", def->name, list,
                 tok_desc(p, buf, sizeof buf));
        return false;
    }
    }
    return false;
}

static void arity_text(char *buf, size_t size, int lo, int hi)
{
    if (hi < 0)
        snprintf(buf, size, "at least %d operand%s", lo, lo == 1 ? "" : "s");
    else if (lo == hi)
        snprintf(buf, size, "%d operand%s", lo, lo == 1 ? "" : "s");
    else
        snprintf(buf, size, "%d to %d operands", lo, hi);
}

/* What the passes write after a node: group, implementation, tasks, memory. */
typedef struct node_annotations {
    uint32_t group, tasks;
    kiln_mem_region mem;
    uint64_t mem_offset;
    kiln_impl impl;
    uint64_t scratch_bytes, scratch_offset;
} node_annotations;

/* A count in 1..UINT32_MAX after `word`. */
static bool parse_count32(parser *p, const char *word, uint32_t *out)
{
    char what[64];
    snprintf(what, sizeof what, "a positive integer after '%s'", word);
    uint32_t line = p->tok.line, col = p->tok.col;
    uint64_t v;
    if (!num_uint64(p, &v, what))
        return false;
    if (v < 1 || v > UINT32_MAX) {
        error_at(p, line, col, "'%s' must be in 1..%" PRIu32 ", got %" PRIu64, word, UINT32_MAX, v);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* [group N] [impl NAME] [tasks N] [scratch BYTES at OFFSET] [mem fixed|batch OFFSET] */
static bool parse_annotations(parser *p, node_annotations *a)
{
    if (tok_is(p, "group")) {
        advance(p);
        if (!parse_count32(p, "group", &a->group))
            return false;
    }
    if (tok_is(p, "impl")) {
        advance(p);
        char word[32];
        if (p->tok.kind != T_IDENT || kiln_impl_lookup(tok_word(p, word, sizeof word), &a->impl) != 0) {
            expected(p, "an implementation after 'impl' (gemm, igemm, winograd2, winograd4, direct, blocked, "
                        "blas, dot)");
            return false;
        }
        advance(p);
    }
    if (tok_is(p, "tasks")) {
        advance(p);
        if (!parse_count32(p, "tasks", &a->tasks))
            return false;
    }
    if (tok_is(p, "scratch")) {
        advance(p);
        uint32_t line = p->tok.line, col = p->tok.col;
        if (!num_uint64(p, &a->scratch_bytes, "the scratch size in bytes (an unsigned integer)"))
            return false;
        if (a->scratch_bytes == 0) {
            error_at(p, line, col, "'scratch' must be a positive size (leave it out for none)");
            return false;
        }
        if (!tok_is(p, "at")) {
            expected(p, "'at' and the scratch's offset");
            return false;
        }
        advance(p);
        if (!num_uint64(p, &a->scratch_offset, "the scratch's offset in bytes (an unsigned integer)"))
            return false;
    }
    if (tok_is(p, "mem")) {
        advance(p);
        if (tok_is(p, "fixed"))
            a->mem = KILN_MEM_FIXED;
        else if (tok_is(p, "batch"))
            a->mem = KILN_MEM_BATCH;
        else {
            expected(p, "'fixed' or 'batch' after 'mem'");
            return false;
        }
        advance(p);
        if (!num_uint64(p, &a->mem_offset, "the offset in bytes (an unsigned integer)"))
            return false;
    }
    return true;
}

/* schedule threads N */
static bool parse_schedule(parser *p)
{
    uint32_t line = p->tok.line, col = p->tok.col;
    uint32_t v;
    advance(p);
    if (!tok_is(p, "threads")) {
        expected(p, "'threads'");
        return false;
    }
    advance(p);
    if (!parse_count32(p, "threads", &v))
        return false;
    if (p->seen_schedule) {
        error_at(p, line, col, "schedule given twice");
        return false;
    }
    p->seen_schedule = true;
    p->g->sched_threads = v;
    return end_of_statement(p);
}

/* memory fixed N batch N lower_bound N */
static bool parse_memory(parser *p)
{
    uint32_t line = p->tok.line, col = p->tok.col;
    uint64_t v[3];
    static const char *const words[3] = {"fixed", "batch", "lower_bound"};
    advance(p);
    for (int i = 0; i < 3; i++) {
        if (!tok_is(p, words[i])) {
            char what[64];
            snprintf(what, sizeof what, "'%s'", words[i]);
            expected(p, what);
            return false;
        }
        advance(p);
        if (!num_uint64(p, &v[i], "a size in bytes (an unsigned integer)"))
            return false;
    }
    if (p->seen_memory) {
        error_at(p, line, col, "memory given twice");
        return false;
    }
    p->seen_memory = true;
    p->g->mem_fixed_bytes = v[0];
    p->g->mem_batch_bytes = v[1];
    p->g->mem_lower_bound_bytes = v[2];
    return end_of_statement(p);
}

/* %OUT = OP(%a, ...) [{attr=v, ...}] : TYPE [layer "L"] [precision P]
 *      [group N] [tasks N] [mem fixed|batch OFFSET] */
static bool parse_node(parser *p)
{
    char buf[512], word[64], t1[256], t2[256];
    const char *out_name = p->tok.str;
    uint32_t line = p->tok.line, col = p->tok.col;
    if (!check_new_name(p, out_name, line, col))
        return false;
    advance(p);
    bool ok = true, quiet = false;
    kiln_op op = KILN_OP_COUNT;
    uint32_t op_line = 0, op_col = 0;
    size_t n_ops = 0;
    uint64_t attr_set = 0;
    kiln_attr attrs[KILN_ATTR_COUNT];
    kiln_type type;
    uint32_t type_line = 0, type_col = 0;
    const char *layer = out_name;
    kiln_precision prec = KILN_PREC_DEFAULT;
    node_annotations annot = {0, 0, KILN_MEM_NONE, 0, KILN_IMPL_NONE, 0, 0};

    if (!expect(p, T_EQ, "'=' after the value's name"))
        goto fail;
    if (p->tok.kind != T_IDENT) {
        expected(p, "an op name");
        goto fail;
    }
    op_line = p->tok.line;
    op_col = p->tok.col;
    if (kiln_op_lookup(tok_word(p, word, sizeof word), &op) != 0 || p->tok.len >= sizeof word) {
        error_at(p, op_line, op_col, "unknown op %s", tok_desc(p, buf, sizeof buf));
        goto fail;
    }
    advance(p);
    if (!expect(p, T_LPAREN, "'(' after the op name"))
        goto fail;
    skip_nl(p);
    while (p->tok.kind != T_RPAREN) {
        if (n_ops > 0) {
            if (!expect(p, T_COMMA, "',' or ')' after an operand"))
                goto fail;
            skip_nl(p);
        }
        if (p->tok.kind != T_VALUE) {
            expected(p, n_ops > 0 ? "an operand (%name)" : "an operand (%name) or ')'");
            goto fail;
        }
        kiln_id id = resolve(p, p->tok.str, p->tok.line, p->tok.col, &quiet);
        if (id == KILN_NO_ID)
            ok = false; /* reported (or quiet); keep reading the line for more */
        if (n_ops >= UINT32_MAX - 1) {
            error_at(p, p->tok.line, p->tok.col, "too many operands");
            goto fail;
        }
        void *items = p->ops;
        if (kiln_grow(&items, &p->cap_ops, n_ops + 1, sizeof *p->ops) < 0) {
            out_of_memory(p);
            goto fail;
        }
        p->ops = items;
        p->ops[n_ops++] = id;
        advance(p);
        skip_nl(p);
    }
    advance(p); /* ')' */

    memset(attrs, 0, sizeof attrs);
    if (p->tok.kind == T_LBRACE) {
        advance(p);
        skip_nl(p);
        bool first = true;
        while (p->tok.kind != T_RBRACE) {
            if (!first) {
                if (!expect(p, T_COMMA, "',' or '}' after an attribute"))
                    goto fail;
                skip_nl(p);
            }
            first = false;
            if (p->tok.kind != T_IDENT) {
                expected(p, "an attribute name");
                goto fail;
            }
            kiln_attr_id aid;
            uint32_t aline = p->tok.line, acol = p->tok.col;
            if (p->tok.len >= sizeof word || kiln_attr_lookup(tok_word(p, word, sizeof word), &aid) != 0 ||
                kiln_op_find_attr(op, aid) == NULL) {
                error_at(p, aline, acol, "unknown attribute %s for %s", tok_desc(p, buf, sizeof buf),
                         kiln_op_name(op));
                goto fail;
            }
            if ((attr_set >> aid) & 1u) {
                error_at(p, aline, acol, "attribute '%s' given twice", kiln_attr_defs[aid].name);
                goto fail;
            }
            advance(p);
            if (!expect(p, T_EQ, "'=' after the attribute name"))
                goto fail;
            if (!parse_attr_value(p, aid, &attrs[aid]))
                goto fail;
            attr_set |= (uint64_t)1 << aid;
            skip_nl(p);
        }
        advance(p); /* '}' */
    }
    if (!expect(p, T_COLON, "':' and the result type"))
        goto fail;
    type_line = p->tok.line;
    type_col = p->tok.col;
    if (!parse_type(p, &type))
        goto fail;
    if (tok_is(p, "layer")) {
        advance(p);
        if (p->tok.kind != T_STRING) {
            expected(p, "the layer name (a quoted string) after 'layer'");
            goto fail;
        }
        layer = p->tok.str;
        advance(p);
    }
    if (tok_is(p, "precision")) {
        advance(p);
        if (!parse_precision_word(p, &prec))
            goto fail;
    }
    if (!parse_annotations(p, &annot))
        goto fail;
    if (!end_of_statement(p))
        goto fail;
    if (!ok)
        goto fail;

    /* Operand count and required attributes, before the shape rule sees them. */
    const kiln_op_def *def = kiln_op_get(op);
    int n_roles = 0;
    while (n_roles < KILN_MAX_OP_PARAMS && def->params[n_roles] != NULL)
        n_roles++;
    int lo = def->min_inputs + def->min_params;
    int hi = def->max_inputs < 0 ? -1 : def->max_inputs + n_roles;
    if (n_ops < (size_t)lo || (hi >= 0 && n_ops > (size_t)hi)) {
        arity_text(t1, sizeof t1, lo, hi);
        error_at(p, op_line, op_col, "%s takes %s, found %zu", kiln_op_name(op), t1, n_ops);
        goto fail;
    }
    for (int i = 0; i < def->n_attrs; i++) {
        if (def->attrs[i].use == KILN_USE_REQUIRED && !((attr_set >> def->attrs[i].id) & 1u)) {
            error_at(p, op_line, op_col, "%s needs attribute '%s'", kiln_op_name(op),
                     kiln_attr_defs[def->attrs[i].id].name);
            goto fail;
        }
    }

    /* Names and layers are copied into the graph's arena here, whatever the
     * builder does with them: the scratch arena is reset after this line. */
    const char *gname = graph_str(p, out_name);
    const char *glayer = gname != NULL ? graph_str(p, layer) : NULL;
    if (glayer == NULL)
        return false;
    kiln_id nid = kiln_graph_add_node(p->g, op, p->ops, (uint32_t)n_ops, gname, glayer,
                                      (kiln_loc){p->gfile, line, col});
    if (nid == KILN_NO_ID) {
        out_of_memory(p);
        return false;
    }
    kiln_node *n = kiln_graph_node(p->g, nid);
    for (int i = 0; i < KILN_ATTR_COUNT; i++)
        if ((attr_set >> i) & 1u)
            kiln_node_set_attr(n, (kiln_attr_id)i, &attrs[i]);
    n->precision = prec;
    n->loc = (kiln_loc){p->gfile, line, col};

    /* An absent attribute means its default: fill it in, as the frontend does
     * for YAML, so the graph verifies and passes see every attribute. */
    kiln_node_apply_defaults(n);
    char err[256] = "";
    kiln_status st = kiln_ir_infer_node(p->g, nid, err, sizeof err);
    n = kiln_graph_node(p->g, nid);
    kiln_value *v = kiln_graph_value(p->g, n->output);
    if (st != KILN_OK) {
        if (err[0] == 0)
            snprintf(err, sizeof err, "the shape rule of %s fails", kiln_op_name(op));
        error_at(p, op_line, op_col, "%s", err);
        mark_bad(p, n->output);
        return false;
    }
    /* The same checks as kiln_ir_verify, so that every graph that verifies
     * reads back: the shape must be the rule's (shapes are logical in every
     * layout). dtype, layout and quantization are decisions of passes
     * (precision, layout, quantization), not of the shape rule: the text's
     * word stands, within the layout rules. */
    if (!kiln_shape_equal(&v->type.shape, &type.shape)) {
        kiln_type rule = type; /* show only the difference that matters */
        rule.shape = v->type.shape;
        error_at(p, type_line, type_col, "declared %s but the shape rule gives %s",
                 type_text(p->g, &type, t1, sizeof t1), type_text(p->g, &rule, t2, sizeof t2));
        v->type = type;
        return false;
    }
    /* convert, quantize and dequantize decide the dtype themselves */
    if ((kiln_op_get(op)->flags & KILN_OPF_SETS_DTYPE) && v->type.dtype != type.dtype) {
        error_at(p, type_line, type_col, "declared %s but %s makes %s", type_text(p->g, &type, t1, sizeof t1),
                 kiln_op_name(op), kiln_dtype_name(v->type.dtype));
        v->type = type;
        return false;
    }
    v->type = type;
    if (kiln_type_check_layout(&type, buf, sizeof buf) != 0 ||
        kiln_ir_check_node_layout(p->g, n, buf, sizeof buf) != 0 || kiln_ir_check_quant(p->g, n, buf, sizeof buf) != 0) {
        error_at(p, type_line, type_col, "%s", buf);
        mark_bad(p, n->output); /* its readers would only repeat the complaint */
        return false;
    }
    n->group = annot.group;
    n->impl = annot.impl;
    n->scratch_bytes = annot.scratch_bytes;
    n->scratch_offset = annot.scratch_offset;
    n->tasks = annot.tasks;
    v->mem = annot.mem;
    v->mem_offset = annot.mem_offset;
    return true;

fail:
    poison(p, out_name);
    return false;
}

static bool starts_statement(const parser *p)
{
    return p->tok.kind == T_VALUE || p->tok.kind == T_RBRACE || tok_is(p, "param") || tok_is(p, "weights") ||
           tok_is(p, "description") || tok_is(p, "precision") || tok_is(p, "max_elements") ||
           tok_is(p, "memory") || tok_is(p, "schedule");
}

static bool parse_statement(parser *p)
{
    if (p->tok.kind == T_VALUE)
        return parse_node(p);
    if (tok_is(p, "param"))
        return parse_param(p);
    if (tok_is(p, "weights"))
        return parse_weights(p);
    if (tok_is(p, "description"))
        return parse_description(p);
    if (tok_is(p, "precision"))
        return parse_graph_precision(p);
    if (tok_is(p, "max_elements"))
        return parse_max_elements(p);
    if (tok_is(p, "memory"))
        return parse_memory(p);
    if (tok_is(p, "schedule"))
        return parse_schedule(p);
    expected(p, "a statement (param, weights, description, precision, max_elements, schedule, memory, "
                "%name = op(...)) "
                "or '}'");
    return false;
}

static void skip_line(parser *p)
{
    while (p->tok.kind != T_NL && p->tok.kind != T_EOF)
        advance(p);
}

/* ---- header ------------------------------------------------------------- */

/* kiln 1 NL graph @NAME(%in: TYPE, ...) -> (%out, ...) { NL */
static bool parse_header(parser *p)
{
    char buf[200];
    int64_t version;
    skip_nl(p);
    if (!tok_is(p, "kiln")) {
        expected(p, "'kiln 1' at the start of the IR text");
        return false;
    }
    advance(p);
    uint32_t vline = p->tok.line, vcol = p->tok.col;
    if (!num_int64(p, &version, "the IR version after 'kiln'"))
        return false;
    if (version != 1) {
        error_at(p, vline, vcol, "unsupported IR version %" PRId64 " (this kiln reads version 1)", version);
        return false;
    }
    if (!end_of_statement(p))
        return false;
    skip_nl(p);
    if (!tok_is(p, "graph")) {
        expected(p, "'graph'");
        return false;
    }
    advance(p);
    if (p->tok.kind != T_AT) {
        expected(p, "'@' and the graph's name");
        return false;
    }
    bool ident = p->tok.len > 1 && is_ident_start((unsigned char)p->tok.start[1]);
    for (size_t i = 1; i < p->tok.len && ident; i++)
        ident = is_ident_char((unsigned char)p->tok.start[i]);
    if (!ident) {
        error_at(p, p->tok.line, p->tok.col, "the graph's name %s is not a C identifier",
                 tok_desc(p, buf, sizeof buf));
        return false;
    }
    char *name = kiln_arena_strndup(&p->keep, p->tok.start + 1, p->tok.len - 1);
    if (name == NULL) {
        out_of_memory(p);
        return false;
    }
    p->g = kiln_graph_create(name);
    if (p->g == NULL) {
        out_of_memory(p);
        return false;
    }
    if ((p->g->name = graph_str(p, name)) == NULL)
        return false;
    p->gfile = graph_str(p, p->dfile);
    if (p->gfile == NULL)
        return false;
    advance(p);

    if (!expect(p, T_LPAREN, "'(' and the graph's inputs"))
        return false;
    skip_nl(p);
    size_t n = 0;
    while (p->tok.kind != T_RPAREN) {
        if (n++ > 0) {
            if (!expect(p, T_COMMA, "',' or ')' after an input"))
                return false;
            skip_nl(p);
        }
        if (p->tok.kind != T_VALUE) {
            expected(p, "an input (%name: type)");
            return false;
        }
        const char *iname = p->tok.str;
        uint32_t line = p->tok.line, col = p->tok.col;
        kiln_type type;
        advance(p);
        if (!expect(p, T_COLON, "':' after the input's name"))
            return false;
        uint32_t tline = p->tok.line, tcol = p->tok.col;
        if (!parse_type(p, &type))
            return false;
        if (type.layout != KILN_LAYOUT_PLAIN) {
            error_at(p, tline, tcol, "a model input is plain: the layout pass blocks only values that nodes compute");
            return false;
        }
        if (check_new_name(p, iname, line, col)) {
            const char *gname = graph_str(p, iname);
            if (gname == NULL)
                return false;
            if (kiln_graph_add_input(p->g, gname, &type, (kiln_loc){p->gfile, line, col}) == KILN_NO_ID) {
                out_of_memory(p);
                return false;
            }
        }
        skip_nl(p);
    }
    advance(p); /* ')' */
    if (!expect(p, T_ARROW, "'->' and the graph's outputs") || !expect(p, T_LPAREN, "'(' before the outputs"))
        return false;
    skip_nl(p);
    n = 0;
    while (p->tok.kind != T_RPAREN) {
        if (n++ > 0) {
            if (!expect(p, T_COMMA, "',' or ')' after an output"))
                return false;
            skip_nl(p);
        }
        if (p->tok.kind != T_VALUE) {
            expected(p, "an output (%name)");
            return false;
        }
        void *items = p->outs;
        if (kiln_grow(&items, &p->cap_outs, p->n_outs + 1, sizeof *p->outs) < 0) {
            out_of_memory(p);
            return false;
        }
        p->outs = items;
        struct pending_output *o = &p->outs[p->n_outs];
        if ((o->name = keep_str(p, p->tok.str)) == NULL)
            return false;
        o->line = p->tok.line;
        o->col = p->tok.col;
        p->n_outs++;
        advance(p);
        skip_nl(p);
    }
    advance(p); /* ')' */
    if (!expect(p, T_LBRACE, "'{' before the graph's body"))
        return false;
    if (p->tok.kind != T_NL) {
        expected(p, "end of line after '{'");
        return false;
    }
    return true;
}

/* ---- entry -------------------------------------------------------------- */

static void parser_release(parser *p)
{
    kiln_arena_release(&p->scratch);
    kiln_arena_release(&p->keep);
    kiln_free(p->wmap);
    kiln_free(p->ops);
    kiln_free(p->outs);
    kiln_free(p->bad);
}

kiln_status kiln_ir_parse(const char *text, size_t len, const char *filename, kiln_graph **out, kiln_diag *d)
{
    if (out == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (text == NULL && len > 0)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_diag local;
    if (d == NULL) {
        kiln_diag_init(&local);
        d = &local;
    }
    parser p;
    memset(&p, 0, sizeof p);
    p.src = text != NULL ? text : "";
    p.len = len;
    p.line = 1;
    p.col = 1;
    p.d = d;
    kiln_arena_init(&p.scratch);
    kiln_arena_init(&p.keep);

    if (filename == NULL)
        filename = "<input>";
    p.dfile = kiln_arena_strdup(&d->arena, filename);
    if (p.dfile == NULL) {
        /* Diagnostics without a file name are still better than none. */
        p.dfile = "<input>";
        d->oom = 1;
        p.oom = true;
    }
    const char *slash = strrchr(filename, '/');
    if (slash != NULL && !p.oom) {
        p.dir = kiln_arena_strndup(&p.keep, filename, slash == filename ? 1 : (size_t)(slash - filename));
        if (p.dir == NULL)
            out_of_memory(&p);
    }

    if (!p.oom) {
        advance(&p);
        if (parse_header(&p)) {
            bool closed = false, resync = false;
            while (!p.stop) {
                if (p.tok.kind == T_NL) {
                    /* Between statements: nothing refers to scratch any more. */
                    kiln_arena_release(&p.scratch);
                    advance(&p);
                    continue;
                }
                if (p.tok.kind == T_EOF) {
                    expected(&p, "'}' at the end of the graph");
                    break;
                }
                if (p.tok.kind == T_RBRACE) {
                    advance(&p);
                    closed = true;
                    break;
                }
                if (resync && !starts_statement(&p)) {
                    /* The rest of a broken multi-line statement. */
                    skip_line(&p);
                    continue;
                }
                resync = false;
                if (!parse_statement(&p)) {
                    skip_line(&p);
                    resync = true;
                }
            }
            if (closed && !p.stop) {
                skip_nl(&p);
                if (p.tok.kind != T_EOF)
                    expected(&p, "end of input after the graph's closing '}'");
            }
            for (size_t i = 0; closed && i < p.n_outs && !p.stop; i++) {
                bool quiet = false;
                kiln_id id = resolve(&p, p.outs[i].name, p.outs[i].line, p.outs[i].col, &quiet);
                if (id != KILN_NO_ID && kiln_graph_value(p.g, id)->type.layout != KILN_LAYOUT_PLAIN)
                    error_at(&p, p.outs[i].line, p.outs[i].col,
                             "model output %%%s is blocked: model outputs are plain (a reorder converts)",
                             kiln_graph_value(p.g, id)->name);
                else if (id != KILN_NO_ID && p.errors == 0 && kiln_graph_add_output(p.g, id) != KILN_OK)
                    out_of_memory(&p);
            }
            /* Fusion groups and the memory plan must make sense as a whole:
             * the verifier's rules, reported at the nodes' lines. */
            if (closed && !p.stop && p.errors == 0 && !p.oom) {
                size_t before = d->errors;
                kiln_status ast = kiln_ir_verify_annotations(p.g, d);
                if (ast == KILN_ERR_OUT_OF_MEMORY)
                    p.oom = true;
                else if (ast != KILN_OK || d->errors > before)
                    p.errors++;
            }
        }
    }

    kiln_status st = KILN_OK;
    if (p.oom)
        st = KILN_ERR_OUT_OF_MEMORY;
    else if (p.errors > 0 || p.g == NULL)
        st = KILN_ERR_PARSE;
    if (st != KILN_OK) {
        kiln_graph_destroy(p.g);
    } else {
        *out = p.g;
    }
    parser_release(&p);
    if (d == &local) {
        kiln_diag_release(&local);
    }
    return st;
}
