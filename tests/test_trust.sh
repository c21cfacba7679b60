#!/usr/bin/env bash
# tests/test_trust.sh KILN SOURCE_DIR: the edges a user must be able to trust
# (issue 15): kiln never destroys a file it did not create, publishes its
# outputs only when the whole command succeeded, never overwrites an input,
# reads only regular files and never blocks on one, refuses what cannot fit
# (budgets) before allocating it, contains a crash or an abort inside LLVM,
# and says what went wrong with the path and the system's reason.
#
# Every reproduction of the issue is here. Run as root, the tests that need
# an unprivileged user run through setpriv as nobody (skipped without it);
# the tests that limit the address space (ulimit -v) are skipped in a
# sanitizer build (KILN_TEST_SANITIZED=1), whose shadow memory needs more.
set -u
kiln=$(cd "$(dirname "$1")" && pwd)/$(basename "$1"); src=$(cd "$2" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-trust-XXXXXX"); chmod 755 "$work"
mounted=""
cleanup() { [ -n "$mounted" ] && umount "$mounted" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
sanitized=${KILN_TEST_SANITIZED:-0}
limit=10; [ "$sanitized" = 1 ] && limit=120   # seconds a refusal may take
passed=0; failed=0; skipped=0
ok()   { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
skip() { skipped=$((skipped + 1)); echo "skip: $*"; }
# expect STATUS DESCRIPTION -- COMMAND...: runs COMMAND (killed after $limit
# seconds), checks its exit status; stdout in $work/out, stderr in $work/err.
expect() {
  local want=$1 what=$2; shift 3
  timeout -s KILL "$limit" "$@" >"$work/out" 2>"$work/err"; local got=$?
  if [ "$got" -eq "$want" ]; then ok; else fail "$what: exit $got, expected $want"; sed 's/^/  | /' "$work/err" | head -5; fi
}
contains() { if grep -qF -- "$2" "$1"; then ok; else fail "$3: '$2' not in output"; sed 's/^/  | /' "$1" | head -5; fi; }
lacks()    { if grep -qF -- "$2" "$1"; then fail "$3: '$2' in output"; sed 's/^/  | /' "$1" | head -5; else ok; fi; }
same()     { if cmp -s "$1" "$2"; then ok; else fail "$3: $1 changed"; fi; }
# no_temps DIR: no temporary file of kiln's was left in DIR
no_temps() { if ls -A "$1" | grep -q 'kiln-'; then fail "$2: temporary files left in $1: $(ls -A "$1" | grep 'kiln-' | head -3)"; else ok; fi; }
is_chardev() { if [ -c "$1" ]; then ok; else fail "$2: $1 is no longer a character device"; fi; }

cd "$work"
cat > t.yaml <<'EOF'
kiln: 1
name: t
init: {random: 3}
inputs:
  - {name: x, shape: [batch, 8]}
layers:
  - {name: fc, op: dense, units: 4}
  - {name: out, op: relu}
EOF
cp t.yaml t.orig
cp "$src/examples/digits/digits.yaml" digits.yaml
cp "$src/examples/digits/digits.safetensors" digits.safetensors 2>/dev/null ||
  cp "$src"/examples/digits/*.safetensors . 2>/dev/null
weights=$(ls ./*.safetensors | head -1); cp "$weights" weights.orig
sample=$src/examples/digits/samples/digit_3.npy
cp "$sample" in.npy; cp in.npy in.orig
echo "old object" > keep.o; cp keep.o keep.orig
echo "old header" > keep.h; cp keep.h keep.h.orig

# ---- 1. files -----------------------------------------------------------------------

# A failed write never deletes the output, whatever it is: /dev/full (as root
# the old writers removed it), as -o, --header, --depfile and dump -o.
if [ -c /dev/full ]; then
  expect 1 "compile -o /dev/full" -- "$kiln" compile t.yaml -o /dev/full
  contains err "cannot write '/dev/full': No space left on device" "/dev/full message"
  lacks err "I/O error" "/dev/full message does not blame the model"
  is_chardev /dev/full "compile -o /dev/full"
  expect 1 "compile --header /dev/full" -- "$kiln" compile t.yaml -o new.o --header /dev/full
  is_chardev /dev/full "compile --header /dev/full"
  [ -e new.o ] && fail "a failed compile left new.o" || ok
  expect 1 "compile --depfile /dev/full" -- "$kiln" compile t.yaml -o new.o --depfile /dev/full
  is_chardev /dev/full "--depfile /dev/full"
  expect 1 "dump -o /dev/full" -- "$kiln" dump t.yaml -o /dev/full
  is_chardev /dev/full "dump -o /dev/full"
  for emit in obj asm llvm bc lib; do
    expect 1 "compile --emit $emit -o /dev/full" -- "$kiln" compile t.yaml --emit $emit -o /dev/full
    contains err "No space left on device" "--emit $emit to /dev/full"
  done
  is_chardev /dev/full "every --emit to /dev/full"
else
  skip "no /dev/full"
fi
# A character device or a FIFO as output is written into at the end, never
# replaced; /dev/null works.
expect 0 "compile -o /dev/null" -- "$kiln" compile t.yaml -o /dev/null
is_chardev /dev/null "compile -o /dev/null"
expect 0 "dump -o /dev/stdout into a pipe" -- sh -c "'$kiln' dump t.yaml -o /dev/stdout | grep -c '^graph @t'"
mkfifo out.fifo
expect 1 "compile -o FIFO without a reader" -- "$kiln" compile t.yaml -o out.fifo
contains err "no process is reading from this FIFO" "FIFO output message"
[ -p out.fifo ] && ok || fail "the FIFO output was replaced"
timeout 30 cat out.fifo > fifo.bytes 2>/dev/null </dev/null & reader=$!; sleep 0.3
expect 0 "compile -o FIFO with a reader" -- "$kiln" compile t.yaml -o out.fifo
wait $reader; [ -s fifo.bytes ] && ok || fail "nothing came through the FIFO"
expect 2 "--weights external beside a device" -- "$kiln" compile t.yaml -o /dev/null --weights external
expect 1 "dump a sidecar beside a device" -- "$kiln" dump digits.yaml --after fold_batchnorm -o /dev/null
contains err "is not a regular file" "sidecar beside a device message"
mkdir adir
expect 1 "-o a directory" -- "$kiln" compile t.yaml -o adir
contains err "cannot write 'adir': it is a directory" "directory output message"
ln -s nowhere/x.o dangling.o
expect 1 "-o a dangling symbolic link" -- "$kiln" compile t.yaml -o dangling.o
no_temps . "refused outputs"

# Outputs never overwrite inputs (device + inode, or the same normalized
# path), nor each other: refused before any work, the inputs unchanged.
expect 2 "-o the model" -- "$kiln" compile t.yaml -o t.yaml
contains err "-o 't.yaml' is the model 't.yaml'" "-o the model message"
expect 2 "--header the model" -- "$kiln" compile t.yaml -o new.o --header t.yaml
expect 2 "--depfile the model" -- "$kiln" compile t.yaml -o new.o --depfile ./t.yaml
ln -s t.yaml link.yaml; ln t.yaml hard.yaml
expect 2 "-o a symbolic link to the model" -- "$kiln" compile t.yaml -o link.yaml
expect 2 "-o a hard link to the model" -- "$kiln" compile t.yaml -o hard.yaml
expect 2 "-o x.o --header x.o" -- "$kiln" compile t.yaml -o x.o --header x.o
contains err "are the same file" "two outputs message"
expect 1 "an output in a missing directory" -- "$kiln" compile t.yaml -o sub/../x.o --header ./x.o
contains err "cannot write 'sub/../x.o': No such file or directory" "missing directory message"
mkdir -p sub
expect 2 "two new outputs through sub/.." -- "$kiln" compile t.yaml -o sub/../y.o --header y.o
expect 2 "--header the external weights file" -- "$kiln" compile t.yaml -o w.o --weights external --header w.weights
expect 1 "-o the weights file" -- "$kiln" compile digits.yaml -o "$weights"
contains err "a weights file of the model" "-o a weights file message"
expect 2 "dump -o the model" -- "$kiln" dump t.yaml -o t.yaml
expect 1 "dump sidecar over the weights file" -- "$kiln" dump digits.yaml --after fold_batchnorm -o "${weights%.safetensors}"
cp in.npy logits.npy
expect 1 "run output over an --input file" -- "$kiln" run digits.yaml --interp --input image=logits.npy --output .
contains err "an --input file" "run output over input message"
same t.yaml t.orig "the model"
same "$weights" weights.orig "the weights file"
same logits.npy in.orig "the --input file"
[ -e x.o ] || [ -e y.o ] || [ -e w.o ] && fail "a refused command wrote an output" || ok
no_temps . "refused collisions"; no_temps sub "refused collisions"

# A failed compile leaves no fresh partial output and changes no old one.
expect 1 "unwritable --header" -- "$kiln" compile t.yaml -o a.o --header nodir/a.h
contains err "cannot write 'nodir/a.h': No such file or directory" "missing directory message"
[ -e a.o ] && fail "a failed compile wrote a.o (make would think it up to date)" || ok
expect 1 "unwritable --header, old outputs" -- "$kiln" compile t.yaml -o keep.o --header nodir/a.h
same keep.o keep.orig "keep.o after a failed compile"
# a write that fails halfway (file size limit; SIGXFSZ ignored: EFBIG)
for emit in obj llvm bc; do
  expect 1 "--emit $emit over the size limit" -- bash -c "trap '' XFSZ; ulimit -f 4; exec '$kiln' compile '$src/examples/mlp/mlp.yaml' --emit $emit -o keep.o --header keep.h"
  contains err "cannot write 'keep.o': File too large" "--emit $emit size limit message"
  lacks err "LLVM cannot generate code" "--emit $emit size limit message"
  same keep.o keep.orig "keep.o after --emit $emit failed"
  same keep.h keep.h.orig "keep.h after --emit $emit failed"
done
expect 1 "header over the size limit" -- bash -c "trap '' XFSZ; ulimit -f 4; exec '$kiln' compile t.yaml -o keep.o --header keep.h --emit asm"
same keep.o keep.orig "keep.o after its header failed"
no_temps . "failed writes"
# a real full disk (root: a small tmpfs)
mkdir small
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=256k tmpfs small 2>/dev/null; then
  mounted=$work/small
  echo "old" > small/m.ll; cp small/m.ll ll.orig
  for emit in llvm bc obj; do
    expect 1 "--emit $emit on a full disk" -- "$kiln" compile "$src/examples/mlp/mlp.yaml" --emit $emit -o small/m.ll
    contains err "cannot write 'small/m.ll': No space left on device" "--emit $emit full disk message"
    lacks err "LLVM cannot generate code" "--emit $emit full disk message"
    same small/m.ll ll.orig "small/m.ll after a full disk"
  done
  no_temps small "full disk"
  umount small && mounted=""
else
  skip "full disk on a tmpfs (needs root and mount)"
fi
# permissions: a new file gets the umask's bits, an old one keeps its own, a
# shared library is executable; a symbolic link output stays a link
(umask 022; "$kiln" compile t.yaml -o perm.o >/dev/null 2>&1)
[ "$(stat -c %a perm.o)" = 644 ] && ok || fail "new output mode $(stat -c %a perm.o), expected 644"
chmod 600 perm.o
"$kiln" compile t.yaml -o perm.o >/dev/null 2>&1
[ "$(stat -c %a perm.o)" = 600 ] && ok || fail "old output mode $(stat -c %a perm.o), expected 600 kept"
if "$kiln" compile t.yaml -o lib.so >/dev/null 2>&1; then
  [ -x lib.so ] && ok || fail "lib.so is not executable"
else
  skip "--emit so (no shared runtime or cc)"
fi
echo "real" > real.o; ln -s real.o via.o
expect 0 "-o a symbolic link" -- "$kiln" compile t.yaml -o via.o
[ -L via.o ] && ok || fail "the symbolic link output was replaced by a file"
cmp -s real.o perm.o && ok || fail "the link's target was not written"
# not as root: an existing file the user may not write is refused
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
else
  nobody=()
fi
if [ "$(id -u)" != 0 ] || [ ${#nobody[@]} -gt 0 ]; then
  mkdir -p shared; chmod 777 shared; cp t.yaml shared/; cp keep.orig shared/ro.o; chmod 444 shared/ro.o
  [ "$(id -u)" = 0 ] && chmod 755 shared/ro.o && chmod 444 shared/ro.o
  expect 1 "read-only output (unprivileged)" -- "${nobody[@]}" "$kiln" compile shared/t.yaml -o shared/ro.o
  contains err "cannot write 'shared/ro.o': Permission denied" "read-only output message"
  same shared/ro.o keep.orig "a read-only output"
  no_temps shared "read-only output"
  # a writable file in a directory the user may not write: kiln cannot put
  # its temporary file beside it, and says so
  mkdir -p locked; cp keep.orig locked/w.o; chmod 666 locked/w.o; chmod 755 locked
  [ "$(id -u)" = 0 ] || chmod 555 locked
  expect 1 "output in a directory the user may not write" -- "${nobody[@]}" "$kiln" compile shared/t.yaml -o locked/w.o
  contains err "/locked' (kiln writes each output beside it, then renames it into place): Permission denied" "locked directory message"
  same locked/w.o keep.orig "an output in a locked directory"
  chmod 755 locked
else
  skip "unprivileged tests (root without setpriv)"
fi

# Only regular files are read, and nothing blocks: FIFOs, devices and
# directories as model, weights or input are refused at once.
mkfifo fifo.yaml fifo.kir fifo.npy fifo.safetensors
expect 1 "dump a FIFO model" -- "$kiln" dump fifo.yaml
contains err "fifo.yaml: error: cannot read: this is a FIFO (named pipe); a model must be a regular file" "FIFO model"
expect 1 "compile a FIFO .kir" -- "$kiln" compile fifo.kir -o new.o
mkdir dir.yaml
expect 1 "dump a directory" -- "$kiln" dump dir.yaml
contains err "this is a directory" "directory model"
ln -s /dev/zero zero.yaml
expect 1 "dump a character device" -- "$kiln" dump zero.yaml
contains err "this is a character device" "device model"
sed "s/^weights: .*/weights: fifo.safetensors/" digits.yaml > fifow.yaml
expect 1 "a FIFO as weights file" -- "$kiln" dump fifow.yaml
contains err "this is a FIFO (named pipe), not a regular file" "FIFO weights"
expect 1 "a FIFO as --input" -- "$kiln" run digits.yaml --interp --input image=fifo.npy --output outdir
contains err "this is a FIFO (named pipe), not a regular file" "FIFO input"
[ -e outdir ] && fail "a refused run created its output directory" || ok

# The guard: whatever ends the command's process (the kernel's OOM killer,
# LLVM's abort, a size limit), the parent reports it with status 1, removes
# the temporary files and leaves every output as it was.
expect 1 "killed by SIGXFSZ" -- bash -c "ulimit -f 4; exec '$kiln' compile '$src/examples/mlp/mlp.yaml' -o keep.o"
contains err "exceeded the file size limit" "SIGXFSZ message"
same keep.o keep.orig "keep.o after SIGXFSZ"
no_temps . "SIGXFSZ"
for sig in KILL ABRT SEGV; do
  "$kiln" compile "$src/examples/resnet18/resnet18.yaml" -o keep.o >/dev/null 2>"$work/err" & parent=$!
  child=""
  for _ in $(seq 100); do child=$(pgrep -P $parent | head -1); [ -n "$child" ] && ls -A | grep -q 'kiln-' && break; sleep 0.05; done
  sleep 0.2; [ -n "$child" ] && kill -$sig "$child"
  wait $parent; rc=$?
  [ "$rc" = 1 ] && ok || fail "compile whose process got SIG$sig: exit $rc, expected 1"
  # (a sanitizer catches SIGSEGV itself and exits with status 1)
  [ "$sanitized" = 1 ] && [ $sig = SEGV ] || contains err "kiln compile: error: the command" "SIG$sig message"
  same keep.o keep.orig "keep.o after SIG$sig"
  no_temps . "SIG$sig"
done
# stopped from outside (SIGTERM, or ^C: SIGINT), kiln cleans up and ends by
# the same signal, as a shell expects
"$kiln" compile "$src/examples/resnet18/resnet18.yaml" -o keep.o >/dev/null 2>/dev/null & parent=$!
for _ in $(seq 100); do ls -A | grep -q 'kiln-' && break; sleep 0.05; done
kill -TERM $parent; wait $parent; rc=$?
[ "$rc" = 143 ] && ok || fail "terminated compile: exit $rc, expected 143 (SIGTERM)"
same keep.o keep.orig "keep.o after SIGTERM"
no_temps . "SIGTERM"
timeout --preserve-status -s INT 1 "$kiln" compile "$src/examples/resnet18/resnet18.yaml" -o keep.o >/dev/null 2>&1; rc=$?
[ "$rc" = 130 ] && ok || fail "interrupted compile: exit $rc, expected 130 (SIGINT)"
same keep.o keep.orig "keep.o after SIGINT"
no_temps . "SIGINT"

# ---- 2. limits -------------------------------------------------------------------------

# The issue's model: exactly at the per-tensor limit, 16 GiB of random
# weights. dump never generates them; the commands that need them refuse
# from the shapes, at the layer, before allocating anything.
cat > big.yaml <<'EOF'
kiln: 1
name: big
inputs:
  - {name: x, shape: [batch, 65536]}
init: {random: 1}
layers:
  - {name: fc, op: dense, units: 65536}
EOF
if [ "$sanitized" = 1 ]; then vmem=(); else vmem=(bash -c 'ulimit -v 2000000; exec "$@"' limited); fi
expect 0 "dump the 16 GiB model in 2 GB" -- "${vmem[@]}" "$kiln" dump big.yaml
contains out "random 1" "dump shows the random parameter"
for cmd in "compile big.yaml -o big.o" "check big.yaml" "bench big.yaml" "dump big.yaml --after fuse" \
           "run big.yaml --input x=in.npy --output bigout"; do
  expect 1 "$cmd" -- "${vmem[@]}" "$kiln" $cmd
  contains err "big.yaml:7:5: error: the model's weights take 16.0 GiB (as f32), more than the weights budget of 4.0 GiB" "$cmd"
  contains err "'fc.weight' f32[65536,65536]" "$cmd names the tensor"
done
[ -e big.o ] && fail "a refused compile wrote big.o" || ok
expect 1 "--max-weights-bytes below the model" -- "$kiln" compile t.yaml -o new.o --max-weights-bytes 100
contains err "more than the weights budget of 100 B" "weights budget message"
expect 0 "--max-weights-bytes=1K" -- "$kiln" compile t.yaml -o new.o --max-weights-bytes=1K
for bad in 0 x 5X 1.5G -1 99999999999999999999G; do
  expect 2 "--max-weights-bytes $bad" -- "$kiln" dump t.yaml --max-weights-bytes "$bad"
done
expect 2 "--max-workspace-bytes twice" -- "$kiln" dump t.yaml --max-workspace-bytes 1G --max-workspace-bytes 2G
expect 1 "check over the workspace budget" -- "$kiln" check t.yaml --batch 100000 --max-workspace-bytes 1M
contains err "more than the workspace budget of 1.0 MiB" "workspace budget message"
contains err "t.yaml:" "workspace budget message is located"
expect 0 "check within the workspace budget" -- "$kiln" check t.yaml --batch 1000 --max-workspace-bytes 1M
expect 1 "run --interp over the workspace budget" -- "$kiln" run digits.yaml --interp --input image=in.npy --output budget.out --max-workspace-bytes 1K
[ -e budget.out ] && fail "a refused run created its output directory" || ok
expect 1 "bench over the workspace budget" -- "$kiln" bench t.yaml --batch 100000 --iterations 1 --max-workspace-bytes 1M

# Running out of memory inside LLVM (std::bad_alloc, an abort) is contained
# like any other failure: at every address-space limit, a clean result.
if [ "$sanitized" != 1 ]; then
  # (below about 350 MB OpenBLAS's thread, started when kiln loads, cannot
  # get its buffer and never returns: not a case for kiln to handle)
  for mb in 400 500 600 700 800 1200; do
    timeout -s KILL 120 bash -c "ulimit -v $((mb * 1024)); exec '$kiln' compile '$src/examples/resnet18/resnet18.yaml' -o keep.o" >out 2>err; rc=$?
    if [ "$rc" = 0 ]; then cp keep.o keep.orig; ok
    elif [ "$rc" = 1 ] && grep -q "^kiln compile: error: \|: error: " err; then ok
    elif [ "$rc" = 127 ] && grep -q "error while loading shared libraries" err; then ok # too small to start
    else fail "compile in $mb MB: exit $rc"; sed 's/^/  | /' err | head -3; fi
    [ "$rc" != 0 ] && { same keep.o keep.orig "keep.o after running out of memory in $mb MB"; }
    no_temps . "out of memory in $mb MB"
  done
else
  skip "address-space limits (sanitizer build)"
fi

# ---- 3. messages -------------------------------------------------------------------------

# a long name is shortened in the middle; the reason stays
expect 1 "a 3000-character name" -- "$kiln" dump "$src/tests/golden/errors/long_name.yaml"
contains err "', which is not defined before it" "long name keeps the reason"
contains err "..." "long name is shortened"
[ "$(head -1 err | wc -c)" -lt 1400 ] && ok || fail "long name message is $(head -1 err | wc -c) bytes"
# 200k layers, no alias: not a message about aliases
python3 - 2>/dev/null <<'EOF' || awk 'BEGIN { print "kiln: 1\nname: m\ninputs:\n  - {name: x, shape: [batch, 4]}\nlayers:"; for (i = 0; i < 200000; i++) print "  - {name: l" i ", op: relu}" }' > many.yaml
with open("many.yaml", "w") as f:
    f.write("kiln: 1\nname: m\ninputs:\n  - {name: x, shape: [batch, 4]}\nlayers:\n")
    f.writelines("  - {name: l%d, op: relu}\n" % i for i in range(200000))
EOF
expect 1 "200000 layers" -- "$kiln" dump many.yaml
contains err "many.yaml:" "200000 layers message is located"
contains err "the YAML document has more than 1000000 nodes" "200000 layers message"
lacks err "alias" "200000 layers message"
# every option once
expect 2 "-o twice" -- "$kiln" compile t.yaml -o a.o -o b.o
contains err "option '-o' is given twice" "-o twice message"
expect 2 "-o and --output" -- "$kiln" compile t.yaml -o a.o --output b.o
expect 2 "--emit twice" -- "$kiln" compile t.yaml -o a.o --emit obj --emit asm
expect 2 "--emit=obj twice" -- "$kiln" compile t.yaml -o a.o --emit=obj --emit=obj
expect 2 "-O twice" -- "$kiln" check t.yaml -O1 -O3
expect 2 "--tune twice" -- "$kiln" compile t.yaml -o a.o --tune --tune
expect 2 "--interp twice" -- "$kiln" run t.yaml --interp --interp --input x=in.npy --output o
expect 2 "--max-elements twice" -- "$kiln" dump t.yaml --max-elements 10 --max-elements=20
expect 2 "-v twice" -- "$kiln" -v dump t.yaml -v
[ -e a.o ] || [ -e b.o ] && fail "a usage error wrote an output" || ok
# every command fails when its output cannot be written; compile then
# publishes nothing
if [ -c /dev/full ]; then
  for cmd in "dump t.yaml" "check t.yaml" "bench t.yaml --iterations 2 --warmup 0" "compile t.yaml -o full.o"; do
    expect 1 "$cmd > /dev/full" -- sh -c "exec '$kiln' $cmd > /dev/full"
    contains err "cannot write to standard output: No space left on device" "$cmd > /dev/full"
  done
  [ -e full.o ] && fail "compile published full.o though its report could not be written" || ok
  expect 1 "run > /dev/full" -- sh -c "exec '$kiln' run digits.yaml --interp --input image=in.npy --output full.out > /dev/full"
  [ -e full.out/logits.npy ] && fail "run published its outputs though its report could not be written" || ok
fi
# weights that are not finite, and F64 beyond f32
golden=$src/tests/golden/errors
expect 1 "NaN and infinities in weights" -- "$kiln" dump "$golden/nonfinite_weights.yaml"
contains err "nonfinite_weights.yaml:7:5: error: weights 'fc1.weight' in" "NaN message is located, names the tensor"
contains err "element [1,2] (index 6) is NaN" "NaN message names the index"
contains err "--allow-nonfinite" "NaN message names the option"
expect 0 "--allow-nonfinite" -- "$kiln" dump "$golden/nonfinite_weights.yaml" --allow-nonfinite
expect 1 "F64 beyond f32" -- "$kiln" dump "$golden/f64_overflow.yaml"
contains err "element [1,0] (index 4) is -1e+39, beyond the range of f32" "F64 overflow message"
expect 0 "F64 beyond f32, --allow-nonfinite" -- "$kiln" dump "$golden/f64_overflow.yaml" --allow-nonfinite
# .kir: an empty random range, NaN in inline data
printf 'kiln 1\ngraph @m(%%x: f32[batch,4]) -> (%%y) {\n  param %%w: f32[4,4] = random 1 0.5 -0.5\n  %%y = dense(%%x, %%w) {units=4} : f32[batch,4]\n}\n' > range.kir
expect 1 ".kir random range low > high" -- "$kiln" dump range.kir
contains err "range.kir:3:33: error: the random range is empty" ".kir range message"
printf 'kiln 1\ngraph @m(%%x: f32[batch,2]) -> (%%y) {\n  param %%w: f32[2,2] = data f32 [0x3f800000, 0x7fc00000, 0x00000000, 0x00000000]\n  %%y = dense(%%x, %%w) {units=2} : f32[batch,2]\n}\n' > nan.kir
expect 1 ".kir inline NaN" -- "$kiln" dump nan.kir
contains err "parameter 'w' (data in the IR text): element [0,1] (index 1) is NaN" ".kir inline NaN message"

no_temps . "the whole test"
echo "trust: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
