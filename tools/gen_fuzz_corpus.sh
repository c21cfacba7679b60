#!/usr/bin/env bash
# tools/gen_fuzz_corpus.sh: (re)writes the seed corpora of the fuzz targets
# under tests/fuzz/corpus/ from the project's own inputs, so that a
# campaign starts from models and files that reach deep into each reader:
#   model/        the examples, the PyTorch fixtures' models (each with its
#                 weights after the fuzz_model.h mark when they are small)
#                 and the golden error cases: fuzz_frontend, fuzz_passes and
#                 fuzz_codegen start from these
#   ir_parse/     the golden IR dumps (.kir)
#   safetensors/  small weights files of the fixtures and golden cases
#   npy/          small .npy fixtures
# (fuzz_onnx's seeds, tests/fuzz/corpus/onnx, are the ONNX fixtures.)
set -euo pipefail
cd "$(dirname "$0")/.."
out=tests/fuzz/corpus
mark=$'\n#kiln-fuzz-weights\n'
rm -rf "$out/model" "$out/ir_parse" "$out/safetensors" "$out/npy"
mkdir -p "$out/model" "$out/ir_parse" "$out/safetensors" "$out/npy"

# model: YAML [+ mark + weights], weights named w.safetensors
add_model() { # NAME YAML [WEIGHTS]
  local name=$1 yaml=$2 w=${3:-}
  if [ -n "$w" ] && [ -f "$w" ] && [ "$(stat -c %s "$w")" -le 65536 ]; then
    { sed 's/^weights: .*/weights: w.safetensors/' "$yaml"; printf '%s' "$mark"; cat "$w"; } >"$out/model/$name"
  else
    cp "$yaml" "$out/model/$name"
  fi
}
for y in examples/*/*.yaml; do
  w=$(sed -n 's/^weights: *\([^ ]*\)$/\1/p' "$y")
  add_model "example_$(basename "$y" .yaml)" "$y" "${w:+$(dirname "$y")/$w}"
done
for d in tests/fixtures/torch/*/; do
  [ -f "$d/model.yaml" ] || continue
  add_model "torch_$(basename "$d")" "$d/model.yaml" "$d/weights.safetensors"
done
for y in tests/golden/errors/*.yaml; do
  cp "$y" "$out/model/error_$(basename "$y" .yaml)"
done

for k in $(find tests/golden -name '*.kir' | sort); do
  cp "$k" "$out/ir_parse/$(echo "${k#tests/golden/}" | tr / _)"
done
for s in $(find tests/golden tests/fixtures -name '*.safetensors' -size -64k | sort); do
  cp "$s" "$out/safetensors/$(echo "${s#tests/}" | tr / _)"
done
for n in $(find tests/fixtures -name '*.npy' -size -8k | sort | awk 'NR % 4 == 1'); do
  cp "$n" "$out/npy/$(echo "${n#tests/fixtures/}" | tr / _)"
done
for d in model ir_parse safetensors npy; do
  echo "$out/$d: $(ls "$out/$d" | wc -l) seeds, $(du -sh "$out/$d" | cut -f1)"
done
