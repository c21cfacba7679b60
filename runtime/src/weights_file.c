/* weights_file.c: read-only mapping and FNV-1a checking of external weight
 * files. */
#define _POSIX_C_SOURCE 200809L
#include "kiln/runtime.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define FNV64_OFFSET_BASIS UINT64_C(14695981039346656037)
#define FNV64_PRIME UINT64_C(1099511628211)

/* What kiln_rt_map_file hands out as the opaque handle. */
typedef struct kiln_rt_mapping {
    void *addr;  /* NULL for an empty file */
    size_t size;
} kiln_rt_mapping;

KILN_RT_API uint64_t kiln_rt_checksum(const void *data, size_t size)
{
    const unsigned char *p = (const unsigned char *)data;
    uint64_t h = FNV64_OFFSET_BASIS;
    if (p == NULL)
        return h;
    for (size_t i = 0; i < size; ++i) {
        h ^= p[i];
        h *= FNV64_PRIME;
    }
    return h;
}

/* The text of errno value e (strerror is not thread-safe, and strerror_r
 * has two incompatible forms). */
static const char *errno_text(int e)
{
    switch (e) {
    case ENOENT: return "no such file";
    case EACCES: return "permission denied";
    case EISDIR: return "is a directory";
    case ENOMEM: return "out of memory";
    case EMFILE:
    case ENFILE: return "too many open files";
    case ENODEV: return "cannot be mapped";
    default: return "cannot be opened or read";
    }
}

/* What a file that is not a regular one is, for messages. */
static const char *file_kind(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "not a plain file";
}

static kiln_status why_fail(char *why, size_t size, kiln_status st, const char *fmt, ...) KILN_RT_PRINTF(4, 5);
static kiln_status why_fail(char *why, size_t size, kiln_status st, const char *fmt, ...)
{
    if (why != NULL && size > 0) {
        va_list ap;
        va_start(ap, fmt);
        if (vsnprintf(why, size, fmt, ap) < 0)
            why[0] = '\0';
        va_end(ap);
    }
    return st;
}

kiln_status kiln_rt_map_file_why(const char *path, size_t expected_size, uint64_t expected_checksum,
                                 const void **data, void **handle, char *why, size_t why_size)
{
    struct stat st;
    kiln_rt_mapping *m;
    void *addr = NULL;
    int fd;

    if (why != NULL && why_size > 0)
        why[0] = '\0';
    if (data != NULL)
        *data = NULL;
    if (handle != NULL)
        *handle = NULL;
    if (path == NULL || data == NULL || handle == NULL)
        return why_fail(why, why_size, KILN_ERR_INVALID_ARGUMENT, "a NULL argument");

    /* O_NONBLOCK: opening a FIFO must not wait for a writer; only a regular
     * file is read (a regular file ignores the flag). */
    do {
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return why_fail(why, why_size, KILN_ERR_IO, "%s", errno_text(errno));
    if (fstat(fd, &st) != 0) {
        close(fd);
        return why_fail(why, why_size, KILN_ERR_IO, "cannot be read");
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return why_fail(why, why_size, KILN_ERR_IO, "not a regular file (%s)", file_kind(st.st_mode));
    }
    if (st.st_size < 0 || (uintmax_t)st.st_size != (uintmax_t)expected_size) {
        close(fd);
        return why_fail(why, why_size, KILN_ERR_WEIGHTS,
                        "the file is %jd bytes, the model was compiled with %zu (another file, or truncated?)",
                        (intmax_t)st.st_size, expected_size);
    }
    if (expected_size > 0) {
        addr = mmap(NULL, expected_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (addr == MAP_FAILED) {
            int e = errno;
            close(fd);
            return why_fail(why, why_size, KILN_ERR_IO, "cannot be mapped: %s", errno_text(e));
        }
    }
    close(fd); /* the mapping keeps the file referenced */

    if (addr != NULL)
        (void)posix_madvise(addr, expected_size, POSIX_MADV_SEQUENTIAL);
    uint64_t sum = kiln_rt_checksum(addr, expected_size);
    if (sum != expected_checksum) {
        if (addr != NULL)
            munmap(addr, expected_size);
        return why_fail(why, why_size, KILN_ERR_WEIGHTS,
                        "checksum %016llx, the model was compiled with %016llx (the file was changed or replaced)",
                        (unsigned long long)sum, (unsigned long long)expected_checksum);
    }
    if (addr != NULL)
        (void)posix_madvise(addr, expected_size, POSIX_MADV_NORMAL);

    m = (kiln_rt_mapping *)malloc(sizeof *m);
    if (m == NULL) {
        if (addr != NULL)
            munmap(addr, expected_size);
        return why_fail(why, why_size, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    m->addr = addr;
    m->size = expected_size;
    /* An empty file has no mapping; hand out a valid non-NULL pointer to zero
     * readable bytes instead. */
    *data = addr != NULL ? (const void *)addr : (const void *)m;
    *handle = m;
    return KILN_OK;
}

KILN_RT_API kiln_status kiln_rt_map_file(const char *path, size_t expected_size,
                                         uint64_t expected_checksum, const void **data,
                                         void **handle)
{
    return kiln_rt_map_file_why(path, expected_size, expected_checksum, data, handle, NULL, 0);
}

KILN_RT_API void kiln_rt_unmap_file(void *handle)
{
    kiln_rt_mapping *m = (kiln_rt_mapping *)handle;
    if (m == NULL)
        return;
    if (m->addr != NULL)
        munmap(m->addr, m->size);
    free(m);
}
