#!/usr/bin/env bash
# The sanitizer pass (`make sanitize`): the unit, integration, stress and property tests
# under AddressSanitizer with LeakSanitizer on, built by a nightly toolchain
# (`-Zsanitizer` is unstable). Release profile as in `make unit` (ASan works with the
# optimizer, the stress tests stay short, and the optimizer is where reorderings show).
#
#   - Every [[test]] target in Cargo.toml plus the lib's unit tests, except those named
#     in SANITIZE_SKIP: `loom` (needs --cfg loom) and `compile_fail` (trybuild: compile
#     errors, nothing to sanitize). Doc tests are left out: each one is its own
#     instrumented binary, and they only exercise the API's happy paths.
#   - The explicit --target keeps build scripts and proc-macros uninstrumented. std is
#     the prebuilt, uninstrumented one (no rust-src here, so no -Zbuild-std): ASan still
#     checks every access the crate and its tests make and intercepts every allocation.
#   - detect_stack_use_after_return=1: a frame's locals live on a fake stack that is
#     poisoned when the frame returns, so a task touching a dead join frame is reported.
#   - A LeakSanitizer report fails the binary at exit (exit 1), after its tests passed.
#     .ci/lsan.supp lists the intended leaks, each with its reason; keep it minimal.
#   - FILCH_TEST_ASAN=1 is exported for tests that need to know they run under ASan
#     (whose frames are larger: a test with a small worker stack can overflow it here).
#
# No nightly toolchain: one line and exit 0, except under CI=true, where it fails.
# Environment: CARGO, SANITIZE_TOOLCHAIN (nightly), SANITIZE_TARGET_DIR (target/asan),
# SANITIZE_SKIP, SANITIZE_ARGS (extra args for the test binaries, e.g. a test filter),
# SANITIZE_TIMEOUT (seconds per test binary, 300; 124 = timed out),
# ASAN_OPTIONS / LSAN_OPTIONS (appended, so they override the defaults below).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo=${CARGO:-cargo}
toolchain=${SANITIZE_TOOLCHAIN:-nightly}
target_dir=${SANITIZE_TARGET_DIR:-target/asan}
skip=${SANITIZE_SKIP:-loom compile_fail}

skipped() {
  if [ "${CI:-}" = true ]; then
    echo "make sanitize: FAILED: $1 (CI=true: the sanitizer pass is required)" >&2
    exit 1
  fi
  echo "make sanitize: skipped: $1"
  exit 0
}

if ! "$cargo" "+$toolchain" --version >/dev/null 2>&1; then
  skipped "no $toolchain toolchain ($cargo +$toolchain) on this machine; AddressSanitizer needs -Zsanitizer"
fi
host=$(rustc "+$toolchain" -vV | sed -n 's/^host: //p')
case "$host" in
  x86_64-unknown-linux-gnu | aarch64-unknown-linux-gnu) ;;
  *) skipped "AddressSanitizer is not supported on $host by this pass" ;;
esac

# The [[test]] targets, from Cargo.toml (autotests = false, so that list is complete).
tests=$(awk '
  /^\[\[test\]\]/ { in_test = 1; next }
  /^\[/ { in_test = 0 }
  in_test && $1 == "name" { gsub(/"/, "", $3); print $3 }' Cargo.toml)
targets=(--lib)
for t in $tests; do
  case " $skip " in *" $t "*) continue ;; esac
  targets+=(--test "$t")
done

export CARGO_TARGET_DIR=$target_dir
# Frame pointers: ASan's fast unwinder then gives whole allocation stacks in leak reports.
export RUSTFLAGS="-Zsanitizer=address -Cforce-frame-pointers=yes"
export RUSTDOCFLAGS=$RUSTFLAGS
export ASAN_OPTIONS="detect_stack_use_after_return=1:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$PWD/.ci/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export FILCH_TEST_ASAN=1
# Each test binary runs under `timeout`: a hung test fails the pass instead of stalling it.
runner_var=CARGO_TARGET_$(echo "$host" | tr 'a-z-' 'A-Z_')_RUNNER
export "$runner_var=timeout -k 10 ${SANITIZE_TIMEOUT:-300}"
cmd=("$cargo" "+$toolchain" test --release --target "$host" --no-fail-fast "${targets[@]}")

echo "sanitize: ${cmd[*]}"
echo "sanitize: RUSTFLAGS=\"$RUSTFLAGS\" ASAN_OPTIONS=$ASAN_OPTIONS LSAN_OPTIONS=$LSAN_OPTIONS CARGO_TARGET_DIR=$target_dir"
t0=$SECONDS
"${cmd[@]}" --no-run
t1=$SECONDS
log=$target_dir/sanitize.log
set +e
# shellcheck disable=SC2086 # SANITIZE_ARGS is a list of words
"${cmd[@]}" -- ${SANITIZE_ARGS:-} 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
t2=$SECONDS

# A digest of the sanitizer reports: each one's kind and the outermost frame in this
# crate (for a leak, the test that made the allocation; the count is of allocation
# sites), and for an ASan error also the innermost one.
awk '
  function flush() {
    if (what == "") return
    sub(/(::\{closure#[0-9]+\})+$/, "", outer)
    print "  " what ": " (outer ? outer : "?") (what ~ /^Address/ && inner != outer ? " <- " inner : "")
    what = ""
  }
  /==ERROR: AddressSanitizer:/ { flush(); what = $0; sub(/^.*==ERROR: /, "", what); sub(/ on address.*| on 0x.*/, "", what); inner = outer = ""; next }
  /==ERROR: LeakSanitizer:/ { flush(); next }
  /^(Direct|Indirect) leak of/ { flush(); what = "LeakSanitizer: " tolower($1) " leak"; inner = outer = ""; next }
  # An ASan error runs on through the creation stacks of its threads (the test is there).
  /^SUMMARY:|^$/ { if (what !~ /^Address/) flush(); next }
  /^==[0-9]+==ABORTING/ { flush(); next }
  what != "" && /^ *#[0-9]+ 0x[0-9a-f]+ in / && / \/[^ ]*\/(src|tests|proptests)\/[^ ]*\.rs/ && !/\/(rustc|\.cargo|\.rustup)\// {
    fn = $0; sub(/^ *#[0-9]+ 0x[0-9a-f]+ in /, "", fn); sub(/ \/[^ ]*$/, "", fn)
    if (inner == "") inner = fn
    outer = fn
  }
  END { flush() }' "$log" | sort | uniq -c | sort -rn > "$log.digest" || true

echo "sanitize: build $((t1 - t0))s, run $((t2 - t1))s (log: $log)"
if [ -s "$log.digest" ]; then
  echo "sanitize: sanitizer reports (count, kind, where):"
  cat "$log.digest"
fi
if [ "$rc" -ne 0 ]; then
  echo "make sanitize: FAILED (exit $rc)" >&2
  exit "$rc"
fi
echo "make sanitize: passed under AddressSanitizer + LeakSanitizer"
