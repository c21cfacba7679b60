#!/bin/sh
# kiln benchmark: kiln vs ONNX Runtime vs PyTorch on the example models.
#   bench/run.sh [--quick] [--models a,b] [--threads 1,2] [--out FILE]
#                [--precision f32,bf16,f16,int8,auto] [--help]
# Builds kiln (Release) if needed, then runs bench/bench.py; see docs/performance.md.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)
exec "$py" "$here/bench.py" "$@"
