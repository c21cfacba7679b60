/* compiler/driver/guard.h: a command run under a guard.
 *
 * kiln's commands run in a child process; the parent only waits. When the
 * child cannot finish by itself (LLVM aborts when it cannot allocate memory,
 * the kernel kills the process that exhausts it, a crash), the parent
 * removes the temporary files the child had registered (outputs.h), reports
 * the cause as `kiln CMD: error: ...` and exits with status 1. Nothing the
 * user owned has been touched then: outputs are renamed into place only at
 * the end of a successful command.
 *
 * SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to the parent are passed to the
 * child (unless kiln was started with them ignored: they stay ignored);
 * when the child dies of such a signal (or of SIGPIPE), the parent cleans up
 * and dies of the same signal, as a shell expects.
 *
 * KILN_NO_FORK=1 in the environment runs the command in the kiln process
 * itself (for debuggers and profilers): the same files and messages, but no
 * clean-up after a crash. */
#ifndef KILN_DRIVER_GUARD_H
#define KILN_DRIVER_GUARD_H

/* Runs fn(argc, argv) under the guard and returns the exit status. Before
 * the command's own status is returned, standard output is flushed: a
 * failed write there makes a successful command fail (status 1). */
int kiln_guard_run(const char *cmd, int (*fn)(int, char **), int argc, char **argv);

/* Registers a temporary file (or, with dir, a directory) for the guard to
 * remove if the command dies. Returns a handle for kiln_guard_forget, or -1
 * when there is no guard (KILN_NO_FORK, a test program) or no room left
 * (the path is then simply not guarded). */
long kiln_guard_remember(const char *path, int dir);
/* The path was removed or published: the guard must leave it alone. */
void kiln_guard_forget(long handle);

/* Flushes standard output; 0, or 1 after reporting `kiln CMD: error: cannot
 * write to standard output: REASON` (once per process; the reason of an
 * earlier failed write is taken from errno, so call it right after the
 * output). Commands call it before publishing
 * their files, so a report that could not be written fails the command
 * before any file is replaced. */
int kiln_guard_flush_stdout(const char *cmd);

#endif
