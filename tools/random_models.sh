#!/usr/bin/env bash
# tools/random_models.sh: the long run of the random-model differential test
# (docs/testing.md, "Random models"): N seeds from START through the
# generator, each compiled at -O0 and -O2, plain and blocked, run at batch
# 1/3/17 on 1/2 threads against the interpreter. Failing models are written
# to DIR (default ./random_failures) as YAML files that `kiln check` reads.
#
# usage: tools/random_models.sh [--build DIR] [--seeds N] [--start S] [--save DIR] [--layers L] [-v]
#        (defaults: build/, 2000 seeds from 1000)
set -euo pipefail
build=build
args=()
seeds=2000 start=1000
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --start) start=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
exe=$build/tests/codegen/test_random_models
[ -x "$exe" ] || { echo "no $exe: build first (cmake --build $build --target test_random_models)" >&2; exit 2; }
grep -m1 "model name" /proc/cpuinfo 2>/dev/null || true
exec "$exe" --full --seeds "$seeds" --start "$start" "${args[@]}"
