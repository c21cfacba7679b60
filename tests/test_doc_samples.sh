#!/usr/bin/env bash
# tests/test_doc_samples.sh KILN SOURCE_DIR [FILE.md ...]: the sample outputs
# in the documentation are the real ones. A sample is a fenced block right
# after a line `<!-- sample -->`:
#
#     <!-- sample -->
#     ```
#     $ kiln compile examples/lenet/lenet.yaml -o lenet.o --cpu x86-64-v3
#     wrote lenet.o (obj)
#     ...
#     ```
#
# The `$ ` line is run with bash in a scratch directory that sees the source
# tree's examples/ (kiln is the binary under test); its standard output must
# match the rest of the block, where a line `...` stands for any number of
# lines. Figures that change from run to run or machine to machine are
# masked on both sides before comparing (see mask() below): durations,
# throughputs, the target triple's vendor, the host's CPU where kiln chose
# it (JIT reports), error magnitudes, the vector width in layouts and
# kernel names, and the code size in a compile report (a kiln built by
# another C compiler emits the same instructions in another order: the
# kernels pass LLVM builder calls as arguments of other calls, whose
# evaluation order C leaves open). Samples that depend on the target give
# --cpu. Any other block that starts with
# a `$ ` line must be marked too, so that no unchecked sample creeps in.
#
# Regenerate a sample by running its command from the repository root and
# pasting the output.
set -u
kiln=$(cd "$(dirname "$1")" && pwd)/$(basename "$1"); src=$(cd "$2" && pwd); shift 2
if [ $# -gt 0 ]; then files=("$@"); else files=("$src/README.md" "$src"/docs/*.md); fi
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-docs-XXXXXX"); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/run"
ln -s "$kiln" "$work/bin/kiln"
ln -s "$src/examples" "$work/run/examples"
passed=0; failed=0

mask() {
  sed -E \
    -e 's/[0-9]+(\.[0-9]+)? ?(s|ms|us|µs)\b/<t>/g' \
    -e 's/[0-9]+(\.[0-9]+)? items\/s/<n> items\/s/g' \
    -e 's/x86_64-([a-z0-9_]+-)?linux-gnu/<triple>/g' \
    -e 's/cpu (x86-64(-v[234])?|generic|cortex-a76),/cpu @\1,/g' \
    -e 's/cpu [A-Za-z0-9_][A-Za-z0-9_.-]*( \(the host.s\))?, [a-z0-9]+ \([0-9]+ x f32\)(, caches [^()]*\(host\))?/cpu <host>/g' \
    -e 's/cpu @/cpu /g' \
    -e 's/[0-9]+(\.[0-9]+)?e[-+][0-9]+/<e>/g' \
    -e 's/^([A-Za-z0-9_.+:-]+ +[a-z0-9_]+ +[A-Za-z0-9_.:+-]+) +[0-9.<>e]+ +[0-9.<>e]+$/\1 <e> <e>/' \
    -e 's/nchw[0-9]+c/nchw<B>c/g' \
    -e 's/object +[0-9.]+ (B|KiB|MiB): code [0-9.]+ (B|KiB|MiB)/object <size>: code <size>/' \
    -e 's/_(avx512|avx2|sse|neon|generic)(_[0-9]+x[0-9]+)?\b/_<isa>/g' \
    -e 's/ +/ /g' -e 's/ $//'
}

# lines_match EXP ACT: both files of lines; `...` in EXP matches any run of
# lines of ACT (the shortest that lets the rest match).
lines_match() {
  mapfile -t E <"$1"; mapfile -t A <"$2"
  match_from 0 0
}
match_from() {
  local i=$1 j=$2
  while [ "$i" -lt "${#E[@]}" ]; do
    if [ "${E[$i]}" = "..." ]; then
      local k
      for ((k = j; k <= ${#A[@]}; k++)); do
        match_from $((i + 1)) "$k" && return 0
      done
      return 1
    fi
    [ "$j" -lt "${#A[@]}" ] && [ "${E[$i]}" = "${A[$j]}" ] || return 1
    i=$((i + 1)); j=$((j + 1))
  done
  [ "$j" -eq "${#A[@]}" ]
}

for md in "${files[@]}"; do
  name=${md#"$src"/}
  n=0; marked=0; in_block=0; block=()
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    if [ $in_block -eq 0 ]; then
      if [[ "$line" =~ ^\<!--\ sample\ --\>$ ]]; then marked=1; continue; fi
      if [[ "$line" =~ ^\`\`\` ]]; then in_block=1; start=$n; block=(); continue; fi
      [ -n "$line" ] && marked=0
      continue
    fi
    if [[ "$line" =~ ^\`\`\`$ ]]; then
      in_block=0
      if [ ${#block[@]} -gt 0 ] && [[ "${block[0]}" == '$ '* ]]; then
        if [ $marked -eq 0 ]; then
          failed=$((failed + 1)); echo "FAIL: $name:$start: a sample without <!-- sample --> (not checked)"
        else
          cmd=${block[0]#'$ '}
          printf '%s\n' "${block[@]:1}" | mask >"$work/expected"
          (cd "$work/run" && PATH="$work/bin:$PATH" bash -c "$cmd" 2>"$work/stderr") | mask >"$work/actual"
          if lines_match "$work/expected" "$work/actual"; then
            passed=$((passed + 1))
          else
            failed=$((failed + 1))
            echo "FAIL: $name:$start: \$ $cmd"
            diff "$work/expected" "$work/actual" | head -20 | sed 's/^/  | /'
            sed 's/^/  stderr| /' "$work/stderr" | head -5
          fi
        fi
      fi
      marked=0
      continue
    fi
    block+=("$line")
  done <"$md"
done
echo "doc samples: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
