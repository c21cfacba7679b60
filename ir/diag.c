/* ir/diag.c: collecting and printing diagnostics. */
#include "diag.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void kiln_diag_init(kiln_diag *d)
{
    memset(d, 0, sizeof *d);
    kiln_arena_init(&d->arena);
    d->max_errors = 50;
}

void kiln_diag_release(kiln_diag *d)
{
    kiln_arena_release(&d->arena);
    kiln_free(d->entries);
    d->entries = NULL;
    d->count = d->capacity = d->errors = 0;
}

/* Bytes at each end of a word that shorten_word keeps, at least. */
#define KEEP_WORD 24

static bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t'; }

/* Removes bytes [from, to) of s (length *len) and puts "..." in their place;
 * the cut moves outwards to UTF-8 character boundaries. */
static void cut_middle(char *s, size_t *len, size_t from, size_t to)
{
    while (from > 0 && ((unsigned char)s[from] & 0xC0) == 0x80)
        from--;
    while (to < *len && ((unsigned char)s[to] & 0xC0) == 0x80)
        to++;
    memcpy(s + from, "...", 3);
    memmove(s + from + 3, s + to, *len - to + 1);
    *len = from + 3 + (*len - to);
}

void kiln_diag_shorten(char *s, size_t max)
{
    size_t len = strlen(s);
    /* The longest words first (a name, a path, a key): their middles give
     * way, so the reason around them stays whole. */
    while (len > max) {
        size_t best = 0, best_len = 0;
        for (size_t i = 0; i < len;) {
            if (is_space(s[i])) {
                i++;
                continue;
            }
            size_t j = i;
            while (j < len && !is_space(s[j]))
                j++;
            if (j - i > best_len) {
                best = i;
                best_len = j - i;
            }
            i = j;
        }
        if (best_len <= 2 * KEEP_WORD + 3)
            break;
        size_t remove = len - max + 3; /* what goes, with room for "..." */
        if (remove > best_len - 2 * KEEP_WORD)
            remove = best_len - 2 * KEEP_WORD;
        size_t from = best + (best_len - remove) / 2;
        cut_middle(s, &len, from, from + remove);
    }
    /* Many short words: the middle of the whole message goes. */
    if (len > KILN_DIAG_MAX_MESSAGE_HARD)
        cut_middle(s, &len, KILN_DIAG_MAX_MESSAGE_HARD / 2, len - KILN_DIAG_MAX_MESSAGE_HARD / 2 + 3);
}

char *kiln_diag_vformat(kiln_diag *d, const char *fmt, va_list ap)
{
    char small[512];
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    char *s = NULL;
    if (n < 0) {
        s = kiln_arena_strdup(&d->arena, "(a message that could not be formatted)");
    } else if ((size_t)n < sizeof small) {
        s = kiln_arena_strdup(&d->arena, small);
    } else if ((s = kiln_arena_alloc(&d->arena, (size_t)n + 1)) != NULL) {
        vsnprintf(s, (size_t)n + 1, fmt, again);
    }
    va_end(again);
    return s;
}

static void add(kiln_diag *d, kiln_severity sev, kiln_loc loc, const char *fmt, va_list ap)
{
    if (sev == KILN_SEV_ERROR)
        d->errors++;
    if (sev == KILN_SEV_ERROR && d->errors > d->max_errors)
        return;
    char *message = kiln_diag_vformat(d, fmt, ap);
    if (!message || kiln_grow((void **)&d->entries, &d->capacity, d->count + 1, sizeof *d->entries) != 0) {
        d->oom = 1;
        return;
    }
    kiln_diag_shorten(message, KILN_DIAG_MAX_MESSAGE);
    kiln_diag_entry *e = &d->entries[d->count];
    e->severity = sev;
    e->loc = loc;
    e->loc.file = kiln_arena_strdup(&d->arena, loc.file);
    e->message = message;
    if (loc.file && !e->loc.file) {
        d->oom = 1;
        return;
    }
    d->count++;
}

void kiln_diag_verror(kiln_diag *d, kiln_loc loc, const char *fmt, va_list ap)
{
    add(d, KILN_SEV_ERROR, loc, fmt, ap);
}

void kiln_diag_error(kiln_diag *d, kiln_loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add(d, KILN_SEV_ERROR, loc, fmt, ap);
    va_end(ap);
}

void kiln_diag_warning(kiln_diag *d, kiln_loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add(d, KILN_SEV_WARNING, loc, fmt, ap);
    va_end(ap);
}

void kiln_diag_note(kiln_diag *d, kiln_loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add(d, KILN_SEV_NOTE, loc, fmt, ap);
    va_end(ap);
}

/* Copies line `line` (1-based) of `file` into buf; 0 when found. Reads at most
 * a bounded prefix of the file so a huge file cannot stall the reporter. */
static int source_line(const char *file, uint32_t line, char *buf, size_t size)
{
    /* Never blocks (a FIFO) and reads nothing but a regular file. */
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -1;
    struct stat st;
    FILE *f = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? fdopen(fd, "rb") : NULL;
    if (!f) {
        close(fd);
        return -1;
    }
    uint32_t current = 1;
    size_t n = 0;
    int c;
    long budget = 64L * 1024 * 1024;
    while ((c = fgetc(f)) != EOF && budget-- > 0) {
        if (current == line) {
            if (c == '\n' || c == '\r')
                break;
            if (n + 1 < size)
                buf[n++] = (char)c;
        } else if (c == '\n') {
            current++;
        } else if (current > line) {
            break;
        }
    }
    fclose(f);
    if (current != line)
        return -1;
    buf[n] = '\0';
    return 0;
}

static const char *severity_word(kiln_severity s)
{
    switch (s) {
    case KILN_SEV_ERROR: return "error";
    case KILN_SEV_WARNING: return "warning";
    case KILN_SEV_NOTE: return "note";
    }
    return "error";
}

void kiln_diag_print(const kiln_diag *d, FILE *out)
{
    kiln_diag_print_prefixed(d, out, NULL);
}

void kiln_diag_print_prefixed(const kiln_diag *d, FILE *out, const char *prefix)
{
    for (size_t i = 0; i < d->count; i++) {
        const kiln_diag_entry *e = &d->entries[i];
        if (e->loc.file && e->loc.line)
            fprintf(out, "%s:%u:%u: ", e->loc.file, e->loc.line, e->loc.col);
        else if (e->loc.file)
            fprintf(out, "%s: ", e->loc.file);
        else if (prefix)
            fprintf(out, "%s: ", prefix);
        fprintf(out, "%s: %s\n", severity_word(e->severity), e->message);
        char text[512];
        if (e->loc.file && e->loc.line && source_line(e->loc.file, e->loc.line, text, sizeof text) == 0) {
            fprintf(out, "  %s\n  ", text);
            for (uint32_t c = 1; c < e->loc.col && c < sizeof text; c++)
                fputc(text[c - 1] == '\t' ? '\t' : ' ', out);
            fputs("^\n", out);
        }
    }
    if (d->errors > d->max_errors)
        fprintf(out, "error: %zu more errors not shown\n", d->errors - d->max_errors);
    if (d->oom)
        fputs("error: out of memory while reporting errors\n", out);
}

const char *kiln_diag_file_kind(unsigned mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFIFO: return "a FIFO (named pipe)";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFSOCK: return "a socket";
    case S_IFLNK: return "a symbolic link";
    default: return "not a regular file";
    }
}
