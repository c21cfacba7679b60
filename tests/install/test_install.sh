#!/usr/bin/env bash
# tests/install/test_install.sh BUILD_DIR SOURCE_DIR: kiln as a user installs
# it. Installs BUILD_DIR into a temporary prefix, copies the examples out of
# the source tree, and then, with only the prefix on PATH, CMAKE_PREFIX_PATH
# and PKG_CONFIG_PATH:
#   - examples/cmake-app (find_package + kiln_add_model) and
#     examples/make-app (a Makefile + pkg-config) build and predict every
#     sample digit as PyTorch did;
#   - a second build does nothing; touching the weights file (or the YAML)
#     recompiles the model, in both;
#   - nothing they build refers to the source or the build tree;
#   - the shared runtime has a SONAME and no OpenBLAS; the digit app does not
#     need libkiln_rt_blas, an app whose model calls sgemm does;
#   - find_package(kiln 0.1) is refused (0.x: the minor version must match),
#     and the version is the same everywhere.
# Environment: CC (the compiler kiln was built with), KILN_APP_CFLAGS (its
# sanitizer flags: an instrumented libkiln_rt needs an instrumented app).
set -u
build=$(cd "$1" && pwd); src=$(cd "$2" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-install-XXXXXX"); trap 'rm -rf "$work"' EXIT
passed=0; failed=0
ok()   { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
# check DESCRIPTION -- COMMAND...: the command must succeed (its output in $work/log).
check() {
  local what=$1; shift 2
  if "$@" >"$work/log" 2>&1; then ok; else fail "$what"; sed 's/^/  | /' "$work/log" | tail -15; fi
}
# no_match PATTERN FILE DESCRIPTION / has_match PATTERN FILE DESCRIPTION
has_match() { if grep -q -- "$1" "$2"; then ok; else fail "$3: '$1' not found"; sed 's/^/  | /' "$2" | tail -8; fi; }
no_match()  { if grep -q -- "$1" "$2"; then fail "$3: '$1' found"; grep -- "$1" "$2" | head -3 | sed 's/^/  | /'; else ok; fi; }

prefix=$work/prefix
cflags=${KILN_APP_CFLAGS:-}
export CC=${CC:-cc}

# ---- install ----------------------------------------------------------------
check "cmake --install" -- cmake --install "$build" --prefix "$prefix"
for f in bin/kiln include/kiln/runtime.h include/kiln/instance.h include/kiln/status.h include/kiln/version.h \
         include/kiln/blas.h lib/libkiln_rt.a lib/libkiln_rt_blas.a lib/cmake/kiln/kilnConfig.cmake \
         lib/cmake/kiln/kilnConfigVersion.cmake lib/cmake/kiln/KilnAddModel.cmake lib/pkgconfig/kiln-rt.pc \
         lib/pkgconfig/kiln-rt-blas.pc; do
  if [ -e "$prefix/$f" ]; then ok; else fail "installed file $f is missing"; fi
done
rt_so=$(ls "$prefix"/lib/libkiln_rt.so.*.*.* 2>/dev/null | head -1)
if [ -n "$rt_so" ]; then
  readelf -d "$rt_so" >"$work/rt.dyn"
  has_match "SONAME.*libkiln_rt\.so\.0\.2\]" "$work/rt.dyn" "libkiln_rt SONAME"
  no_match "openblas" "$work/rt.dyn" "libkiln_rt's dependencies"
  no_match "gfortran" "$work/rt.dyn" "libkiln_rt's dependencies"
  readelf -d "$prefix/lib/libkiln_rt_blas.so" >"$work/blas.dyn"
  has_match "NEEDED.*openblas" "$work/blas.dyn" "libkiln_rt_blas links OpenBLAS"
else
  fail "no versioned libkiln_rt.so in $prefix/lib"
fi

export PATH="$prefix/bin:$PATH" CMAKE_PREFIX_PATH="$prefix" PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
version=$(sed -n 's/^#define KILN_VERSION_STRING "\(.*\)"/\1/p' "$src/runtime/include/kiln/version.h")
kiln --version >"$work/v" 2>&1; has_match "^kiln $version" "$work/v" "kiln --version"
pkg-config --modversion kiln-rt >"$work/v" 2>&1; has_match "^$version\$" "$work/v" "pkg-config --modversion"

# The examples, away from the source tree (the apps refer to ../app and ../digits).
mkdir -p "$work/examples"
cp -r "$src/examples/cmake-app" "$src/examples/make-app" "$src/examples/app" "$src/examples/digits" "$work/examples/"
cp -r "$src/tests/install/blas" "$work/blas"

# predictions APP: every sample as PyTorch classified it.
predictions() {
  local app=$1 good=0 file label got
  while read -r file label; do
    case "$file" in \#*|"") continue ;; esac
    got=$("$app" "$work/examples/digits/samples/$file" | sed -n 's/^    -> \([0-9]\).*/\1/p')
    if [ "$got" = "$label" ]; then good=$((good + 1)); else echo "$file: app says '$got', PyTorch said $label"; fi
  done <"$work/examples/digits/expected.txt"
  [ "$good" -eq 10 ]
}

# ---- the CMake app --------------------------------------------------------------
capp=$work/build-cmake-app
check "cmake-app: configure" -- cmake -S "$work/examples/cmake-app" -B "$capp" -DCMAKE_BUILD_TYPE= \
  "-DCMAKE_C_FLAGS=$cflags" "-DCMAKE_EXE_LINKER_FLAGS=$cflags"
check "cmake-app: build" -- cmake --build "$capp"
has_match "kiln: compiling" "$work/log" "cmake-app: the first build compiles the model"
check "cmake-app: predictions" -- predictions "$capp/digits_app"
readelf -d "$capp/digits_app" >"$work/app.dyn" 2>&1
has_match "NEEDED.*libkiln_rt\.so\.0\.2\]" "$work/app.dyn" "cmake-app links the shared runtime"
no_match "libkiln_rt_blas" "$work/app.dyn" "cmake-app (no sgemm in digits) links no BLAS glue"
no_match "openblas" "$work/app.dyn" "cmake-app links no OpenBLAS"
check "cmake-app: second build" -- cmake --build "$capp"
no_match "kiln: compiling" "$work/log" "cmake-app: a second build recompiles nothing"
sleep 1
touch "$work/examples/digits/digits.safetensors"
check "cmake-app: build after touching the weights" -- cmake --build "$capp"
has_match "kiln: compiling" "$work/log" "cmake-app: editing the weights file recompiles the model"
check "cmake-app: predictions after the rebuild" -- predictions "$capp/digits_app"
sleep 1
touch "$work/examples/digits/digits.yaml"
check "cmake-app: build after touching the YAML" -- cmake --build "$capp"
has_match "kiln: compiling" "$work/log" "cmake-app: editing the YAML recompiles the model"

# ---- the Makefile app -----------------------------------------------------------
mapp=$work/examples/make-app
check "make-app: make" -- make -C "$mapp" CC="$CC" "CFLAGS=-O2 -Wall $cflags" "LDFLAGS=$cflags"
has_match "kiln compile" "$work/log" "make-app: the first make compiles the model"
check "make-app: predictions" -- predictions "$mapp/digits_app"
check "make-app: second make" -- make -C "$mapp" CC="$CC" "CFLAGS=-O2 -Wall $cflags" "LDFLAGS=$cflags"
no_match "kiln compile" "$work/log" "make-app: a second make recompiles nothing"
sleep 1
touch "$work/examples/digits/digits.safetensors"
check "make-app: make after touching the weights" -- make -C "$mapp" CC="$CC" "CFLAGS=-O2 -Wall $cflags" "LDFLAGS=$cflags"
has_match "kiln compile" "$work/log" "make-app: editing the weights file recompiles the model (depfile)"
check "make-app: predictions after the rebuild" -- predictions "$mapp/digits_app"

# ---- the runtime built on its own (as for another machine), used by make-app ----------
rtb=$work/build-runtime
check "runtime alone: configure" -- cmake -S "$src/runtime" -B "$rtb" -DKILN_RT_WITH_BLAS=OFF \
  "-DCMAKE_C_FLAGS=$cflags" "-DCMAKE_SHARED_LINKER_FLAGS=$cflags"
check "runtime alone: build" -- cmake --build "$rtb"
check "runtime alone: install" -- cmake --install "$rtb" --prefix "$work/rt-prefix"
if [ -e "$work/rt-prefix/lib/libkiln_rt_blas.so" ] || [ -e "$work/rt-prefix/bin/kiln" ]; then
  fail "the runtime alone installed more than the runtime"
else
  ok
fi
cp -r "$src/examples/make-app" "$work/examples/make-app-rt"
check "make-app against the runtime alone" -- env PKG_CONFIG_PATH="$work/rt-prefix/lib/pkgconfig" \
  make -C "$work/examples/make-app-rt" CC="$CC" "CFLAGS=-O2 -Wall $cflags" "LDFLAGS=$cflags"
check "make-app against the runtime alone: predictions" -- predictions "$work/examples/make-app-rt/digits_app"
readelf -d "$work/examples/make-app-rt/digits_app" >"$work/rt.app.dyn" 2>&1
has_match "RUNPATH.*rt-prefix" "$work/rt.app.dyn" "make-app uses the runtime alone's libkiln_rt"

# ---- a model that calls OpenBLAS ------------------------------------------------------
bapp=$work/build-blas
check "blas app: configure" -- cmake -S "$work/blas" -B "$bapp" -DCMAKE_BUILD_TYPE= \
  "-DCMAKE_C_FLAGS=$cflags" "-DCMAKE_EXE_LINKER_FLAGS=$cflags"
check "blas app: build" -- cmake --build "$bapp"
has_match "libkiln_rt_blas" "$work/log" "the compile report names libkiln_rt_blas"
check "blas app: run" -- "$bapp/blas_app"
has_match "NEEDS_BLAS 1" "$work/log" "blasnet's header says it needs BLAS"
readelf -d "$bapp/blas_app" >"$work/blas_app.dyn" 2>&1
has_match "NEEDED.*libkiln_rt_blas" "$work/blas_app.dyn" "the sgemm model's app links libkiln_rt_blas"

# ---- no path into the source or the build tree ---------------------------------------
: >"$work/leaks"
for d in "$capp" "$mapp" "$bapp" "$work/examples/make-app-rt"; do
  grep -rl --binary-files=text -e "$src" -e "$build" "$d" >>"$work/leaks" 2>/dev/null
done
if [ -s "$work/leaks" ]; then fail "the apps' builds refer to the source or build tree:"; head -5 "$work/leaks"; else ok; fi

# ---- the package's version rules ----------------------------------------------------
mkdir -p "$work/old"
cat >"$work/old/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.24)
project(kiln_version_check NONE)
find_package(kiln 0.1 CONFIG REQUIRED)
EOF
if cmake -S "$work/old" -B "$work/old/build" >"$work/log" 2>&1; then
  fail "find_package(kiln 0.1) accepted kiln $version"
else
  ok
fi

echo "install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
