/* ir/diag.h: diagnostics. Errors are collected, not printed on the spot, so a
 * run can report several independent problems; one reporter prints them as
 * `file:line:col: error: message` with the source line and a caret. */
#ifndef KILN_IR_DIAG_H
#define KILN_IR_DIAG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"

/* A place in a source file. line and col are 1-based; 0 means unknown.
 * file is owned by whoever made the location (an arena), never freed here. */
typedef struct kiln_loc {
    const char *file;
    uint32_t line;
    uint32_t col;
} kiln_loc;

typedef enum kiln_severity { KILN_SEV_ERROR, KILN_SEV_WARNING, KILN_SEV_NOTE } kiln_severity;

typedef struct kiln_diag_entry {
    kiln_severity severity;
    kiln_loc loc;
    char *message; /* in the diag's arena */
} kiln_diag_entry;

typedef struct kiln_diag {
    kiln_arena arena;
    kiln_diag_entry *entries;
    size_t count, capacity;
    size_t errors;     /* number of KILN_SEV_ERROR entries */
    size_t max_errors; /* stop collecting past this many (default 50) */
    int oom;           /* an entry was lost to out-of-memory */
} kiln_diag;

void kiln_diag_init(kiln_diag *d);
void kiln_diag_release(kiln_diag *d);
void kiln_diag_error(kiln_diag *d, kiln_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void kiln_diag_warning(kiln_diag *d, kiln_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void kiln_diag_note(kiln_diag *d, kiln_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* kiln_diag_error with a va_list (for wrappers that report on their own
 * format). */
void kiln_diag_verror(kiln_diag *d, kiln_loc loc, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* The text fmt formats, whole (never cut), in d's arena; NULL when out of
 * memory. For wrappers that put a prefix before a message of their caller. */
char *kiln_diag_vformat(kiln_diag *d, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* A message is never cut at a fixed size: one longer than
 * KILN_DIAG_MAX_MESSAGE bytes has the middle of its longest words (names,
 * paths, keys) replaced by "...", each keeping its first and last 24 bytes,
 * so the reason around them stays whole; one still longer than
 * KILN_DIAG_MAX_MESSAGE_HARD (many short words) loses its own middle.
 * kiln_diag_shorten does that in place (at UTF-8 character boundaries). */
#define KILN_DIAG_MAX_MESSAGE 1024
#define KILN_DIAG_MAX_MESSAGE_HARD 8192
void kiln_diag_shorten(char *s, size_t max);

/* What a file of st_mode `mode` is, for messages: "a directory", "a FIFO
 * (named pipe)", "a character device", ... */
const char *kiln_diag_file_kind(unsigned mode);

static inline int kiln_diag_has_errors(const kiln_diag *d) { return d->errors > 0 || d->oom; }

/* Prints every entry in order: `file:line:col: error: message`, then the source
 * line and a caret under the column when the file can be read. */
void kiln_diag_print(const kiln_diag *d, FILE *out);
/* kiln_diag_print, with `PREFIX: ` before each entry that has no file
 * ("kiln compile: error: cannot write 'x.o': No space left on device"). */
void kiln_diag_print_prefixed(const kiln_diag *d, FILE *out, const char *prefix);

#endif
