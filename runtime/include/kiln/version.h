/* kiln/version.h: the version of the kiln headers. The project's CMake
 * version (project(kiln VERSION ...)) must match; the build checks it.
 * kiln_version() (kiln/runtime.h) gives the version of the libkiln_rt an
 * application runs with. Self-contained C99; usable from C++. */
#ifndef KILN_VERSION_H
#define KILN_VERSION_H

#define KILN_VERSION_MAJOR 0
#define KILN_VERSION_MINOR 2
#define KILN_VERSION_PATCH 0
#define KILN_VERSION_STRING "0.2.0"

#endif
