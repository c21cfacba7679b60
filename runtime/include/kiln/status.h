/* kiln/status.h: the status codes shared by the runtime, the generated code and
 * the compiler. Self-contained C99; usable from C++. */
#ifndef KILN_STATUS_H
#define KILN_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kiln_status {
    KILN_OK = 0,
    KILN_ERR_INVALID_ARGUMENT, /* a NULL pointer, batch < 1, a bad option */
    KILN_ERR_OUT_OF_MEMORY,    /* an allocation failed */
    KILN_ERR_IO,               /* a file could not be opened, read or written */
    KILN_ERR_PARSE,            /* malformed input text (YAML, IR, JSON header) */
    KILN_ERR_SHAPE,            /* shapes that do not fit an op's rule */
    KILN_ERR_WEIGHTS,          /* weights missing, mis-shaped, truncated, bad checksum */
    KILN_ERR_UNSUPPORTED,      /* valid input that this build cannot handle */
    KILN_ERR_WORKSPACE,        /* the caller's workspace is too small or misaligned */
    KILN_ERR_THREAD,           /* a thread could not be started */
    KILN_ERR_INTERNAL,         /* a broken invariant: a bug in kiln */
    KILN_STATUS_COUNT
} kiln_status;

/* A static, human-readable description of a status ("invalid argument").
 * Never NULL, also for values outside the enum. */
const char *kiln_status_string(kiln_status status);

#ifdef __cplusplus
}
#endif

#endif
