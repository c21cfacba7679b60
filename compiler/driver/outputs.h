/* compiler/driver/outputs.h: the files a command writes, published only when
 * the whole command succeeded.
 *
 * Each output is written to a temporary file of kiln's own (created next to
 * it, `.NAME.kiln-XXXXXX`, so the final rename stays on one file system) and
 * renamed over the output by kiln_outputs_commit; kiln_outputs_release
 * removes what was not committed. kiln never removes, truncates or opens for
 * writing a path the user gave before the commit, whatever fails.
 *
 * An output that is a character device or a FIFO (/dev/null, /dev/stdout
 * on a pipe) cannot be replaced: its bytes go to a temporary file in $TMPDIR
 * and are copied into the device at the commit (a FIFO must then have a
 * reader). A directory, a block device or a socket as output is refused.
 *
 * Inputs (the model, its weights files, .npy inputs) are registered too: an
 * output that is an input, or that is another output, is refused before
 * anything is written. Two paths are the same file when they have the same
 * device and inode, or (when one does not exist yet) the same absolute
 * spelling once symbolic links, "." and ".." are resolved. */
#ifndef KILN_DRIVER_OUTPUTS_H
#define KILN_DRIVER_OUTPUTS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* One output; owned by its kiln_outputs. */
typedef struct kiln_out_file {
    char *path;       /* as the user gave it (messages) */
    const char *role; /* "-o", "--header", "output 'logits'": messages; borrowed */
    char *target;     /* a regular output: the file the rename replaces (symlinks followed) */
    char *tmp;        /* where the command writes */
    char *norm;       /* the absolute spelling compared with other paths */
    bool exists;      /* the output existed when it was registered */
    bool device;      /* a character device or FIFO: copied into at the commit */
    bool executable;  /* new files get the execute bits the umask allows (shared libraries) */
    bool committed;
    dev_t dev;
    ino_t ino;
    mode_t mode; /* permission bits of an existing regular output (kept) */
    long slot;   /* the temporary file's entry in the guard's list (guard.h) */
} kiln_out_file;

typedef struct kiln_out_input {
    const char *path, *role; /* borrowed */
    char *norm;
    bool exists;
    dev_t dev;
    ino_t ino;
} kiln_out_input;

typedef struct kiln_outputs {
    const char *cmd; /* for messages */
    kiln_out_file **out;
    size_t n_out, cap_out;
    kiln_out_input *in;
    size_t n_in, cap_in;
    char *made_dir; /* a directory kiln_outputs_make_dir created: removed again if still empty on failure */
    long made_dir_slot;
} kiln_outputs;

/* Flags of kiln_outputs_add and kiln_outputs_input. */
enum {
    /* A clash with another path is a usage error (exit status 2): both
     * paths come from the command line itself. Otherwise status 1. */
    KILN_OUT_USAGE = 1u << 0,
    /* The file is a program or library: new files get execute bits. */
    KILN_OUT_EXECUTABLE = 1u << 1,
};

void kiln_outputs_init(kiln_outputs *o, const char *cmd);

/* Registers a file the command reads (path and role are borrowed). Returns
 * 0, or the exit status (1, or 2 with KILN_OUT_USAGE) after reporting that
 * an output registered earlier is that file. */
int kiln_outputs_input(kiln_outputs *o, const char *path, const char *role, unsigned flags);

/* Registers an output and creates its temporary file; *out (may be NULL)
 * gets the entry, whose `tmp` is where to write. Returns 0, or the exit
 * status after reporting why it cannot be written: it is an input or another
 * output (1, or 2 with KILN_OUT_USAGE), a directory or another kind of file
 * that cannot be written, a path whose directory is missing or not writable,
 * an existing file kiln may not write (1). */
int kiln_outputs_add(kiln_outputs *o, const char *path, const char *role, unsigned flags, const kiln_out_file **out);

/* Creates directory `dir` when it does not exist (kiln run --output DIR);
 * release removes it again when the command failed and it is still empty.
 * 0, or 1 after an error (not a directory, cannot create). */
int kiln_outputs_make_dir(kiln_outputs *o, const char *dir);

/* Publishes every output: device outputs are copied into first, then each
 * temporary file is renamed over its output (an existing file keeps its
 * permission bits). Returns 0, or 1 after reporting the first failure (the
 * outputs not yet published stay untouched; release removes their temporary
 * files). */
int kiln_outputs_commit(kiln_outputs *o);

/* The first half of the commit: copies into the device outputs (where a
 * write can still fail: /dev/full, a FIFO without a reader). A command calls
 * it before printing that it wrote them. 0, or 1 after an error. */
int kiln_outputs_write_devices(kiln_outputs *o);

/* Removes every temporary file not committed (and a directory made for the
 * command, when empty and nothing was committed), and frees o. */
void kiln_outputs_release(kiln_outputs *o);

#endif
