/* compiler/driver/guard.c: the command in a child process, its temporary
 * files listed in memory shared with the parent (see guard.h). */
#include "guard.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* The list: a header, then records {uint32 size, uint8 live, uint8 dir, the
 * path and its NUL}, each padded to 4 bytes. The child appends and clears
 * `live`; the parent reads it only after the child has ended. */
#define GUARD_BYTES ((size_t)1 << 20)

typedef struct guard_list {
    uint32_t used; /* bytes of records after the header */
} guard_list;

typedef struct guard_record {
    uint32_t size; /* of the whole record */
    uint8_t live, dir;
    char path[];
} guard_record;

static guard_list *list; /* NULL: no guard */
static volatile sig_atomic_t child_pid;

static char *records(void) { return (char *)(list + 1); }

long kiln_guard_remember(const char *path, int dir)
{
    if (!list || !path)
        return -1;
    size_t len = strlen(path) + 1;
    size_t size = (sizeof(guard_record) + len + 3) & ~(size_t)3;
    if (size > GUARD_BYTES - sizeof *list - list->used)
        return -1;
    long at = (long)list->used;
    guard_record *r = (guard_record *)(void *)(records() + at);
    r->live = 0;
    r->dir = dir ? 1 : 0;
    memcpy(r->path, path, len);
    r->size = (uint32_t)size;
    list->used += (uint32_t)size;
    r->live = 1;
    return at;
}

void kiln_guard_forget(long handle)
{
    if (!list || handle < 0 || (size_t)handle + sizeof(guard_record) > list->used)
        return;
    ((guard_record *)(void *)(records() + handle))->live = 0;
}

/* After the child: remove what it left. The records come from a process
 * that may have crashed, so each is checked; only kiln's own temporary
 * files (named *.kiln-*) are unlinked, and directories only when empty. */
static void clean_up(void)
{
    size_t used = list->used < GUARD_BYTES - sizeof *list ? list->used : GUARD_BYTES - sizeof *list;
    for (size_t at = 0; at + sizeof(guard_record) <= used;) {
        guard_record *r = (guard_record *)(void *)(records() + at);
        if (r->size < sizeof *r + 1 || r->size > used - at)
            break;
        size_t n = r->size - sizeof *r;
        if (r->live && memchr(r->path, '\0', n)) {
            const char *slash = strrchr(r->path, '/');
            if (r->dir)
                rmdir(r->path);
            else if (strstr(slash ? slash : r->path, "kiln-"))
                unlink(r->path);
            r->live = 0;
        }
        at += r->size;
    }
}

int kiln_guard_flush_stdout(const char *cmd)
{
    static bool reported;
    /* A write that failed earlier left its reason in errno, unless the
     * flush fails now and gives a fresher one. */
    int before = errno;
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout))
        return 0;
    int e = errno ? errno : before;
    if (!reported)
        fprintf(stderr, "kiln %s: error: cannot write to standard output: %s\n", cmd,
                e ? strerror(e) : "an earlier write failed");
    reported = true;
    return 1;
}

static int finish(const char *cmd, int rc)
{
    if (kiln_guard_flush_stdout(cmd) != 0 && rc == 0)
        rc = 1;
    return rc;
}

static void forward(int sig)
{
    if (child_pid > 0)
        kill((pid_t)child_pid, sig);
}

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define N_FORWARDED (sizeof forwarded / sizeof forwarded[0])

static void report(const char *cmd, int sig)
{
    const char *why;
    switch (sig) {
    case SIGKILL:
        why = "was killed (SIGKILL): the kernel kills the process that exhausts the system's memory (the budgets "
              "--max-weights-bytes and --max-workspace-bytes keep kiln below them)";
        break;
    case SIGABRT:
        why = "aborted (SIGABRT): LLVM aborts when it cannot allocate memory";
        break;
    case SIGXFSZ:
        why = "exceeded the file size limit (SIGXFSZ, see ulimit -f)";
        break;
    case SIGXCPU:
        why = "exceeded the CPU time limit (SIGXCPU, see ulimit -t)";
        break;
    default:
        why = NULL;
    }
    if (why)
        fprintf(stderr, "kiln %s: error: the command %s; its temporary files were removed, no output was changed\n",
                cmd, why);
    else
        fprintf(stderr, "kiln %s: error: the command crashed (%s, signal %d); its temporary files were removed, no "
                        "output was changed\n", cmd, strsignal(sig), sig);
}

int kiln_guard_run(const char *cmd, int (*fn)(int, char **), int argc, char **argv)
{
    const char *no_fork = getenv("KILN_NO_FORK");
    if (no_fork && *no_fork && strcmp(no_fork, "0") != 0)
        return finish(cmd, fn(argc, argv));
    void *mem = mmap(NULL, GUARD_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return finish(cmd, fn(argc, argv));
    list = mem;
    list->used = 0;

    /* A signal the shell had kiln ignore (SIGINT in a background job)
     * stays ignored, in both processes. */
    struct sigaction sa, old[N_FORWARDED];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_FORWARDED; i++) {
        sigaction(forwarded[i], NULL, &old[i]);
        if (old[i].sa_handler != SIG_IGN)
            sigaction(forwarded[i], &sa, NULL);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        for (size_t i = 0; i < N_FORWARDED; i++)
            sigaction(forwarded[i], &old[i], NULL);
        /* The parent reports a crash; no core file in the user's directory. */
        struct rlimit core = {0, 0};
        getrlimit(RLIMIT_CORE, &core);
        core.rlim_cur = 0;
        setrlimit(RLIMIT_CORE, &core);
        exit(finish(cmd, fn(argc, argv)));
    }
    if (pid < 0) { /* no child: run here, unguarded */
        for (size_t i = 0; i < N_FORWARDED; i++)
            sigaction(forwarded[i], &old[i], NULL);
        munmap(mem, GUARD_BYTES);
        list = NULL;
        return finish(cmd, fn(argc, argv));
    }
    child_pid = pid;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "kiln %s: error: lost the command's process: %s\n", cmd, strerror(errno));
            status = 1 << 8; /* exited with 1 */
            break;
        }
    }
    child_pid = 0;
    clean_up();
    for (size_t i = 0; i < N_FORWARDED; i++)
        sigaction(forwarded[i], &old[i], NULL);
    munmap(mem, GUARD_BYTES);
    list = NULL;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT || sig == SIGPIPE) {
        /* Stopped from outside: end the same way, as the shell expects. */
        signal(sig, SIG_DFL);
        raise(sig);
        return 128 + sig;
    }
    report(cmd, sig);
    return 1;
}
