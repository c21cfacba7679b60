/* ir/diag.c: collecting and printing diagnostics. */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

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

static void add(kiln_diag *d, kiln_severity sev, kiln_loc loc, const char *fmt, va_list ap)
{
    if (sev == KILN_SEV_ERROR)
        d->errors++;
    if (sev == KILN_SEV_ERROR && d->errors > d->max_errors)
        return;
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    if (kiln_grow((void **)&d->entries, &d->capacity, d->count + 1, sizeof *d->entries) != 0) {
        d->oom = 1;
        return;
    }
    kiln_diag_entry *e = &d->entries[d->count];
    e->severity = sev;
    e->loc = loc;
    e->loc.file = kiln_arena_strdup(&d->arena, loc.file);
    e->message = kiln_arena_strdup(&d->arena, buf);
    if ((loc.file && !e->loc.file) || !e->message) {
        d->oom = 1;
        return;
    }
    d->count++;
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
    FILE *f = fopen(file, "rb");
    if (!f)
        return -1;
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
    for (size_t i = 0; i < d->count; i++) {
        const kiln_diag_entry *e = &d->entries[i];
        if (e->loc.file && e->loc.line)
            fprintf(out, "%s:%u:%u: ", e->loc.file, e->loc.line, e->loc.col);
        else if (e->loc.file)
            fprintf(out, "%s: ", e->loc.file);
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
