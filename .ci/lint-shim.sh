#!/usr/bin/env bash
# Fails if any library code other than the sync shim reaches for atomics, fences,
# UnsafeCell, threads or spin hints directly: all of them must come from
# `crate::shim`, so that loom builds model every one of them. A file's trailing
# `#[cfg(...test...)]` module (unit tests, which run on real threads) is not scanned.
set -euo pipefail
cd "$(dirname "$0")/.."
pattern='(std|core)::sync::atomic|(std|core)::cell::UnsafeCell|(std|core)::hint::spin_loop|std::thread\b|(^|[^:])\batomic::fence\b'
bad=$(find src -name '*.rs' ! -path src/shim.rs -print0 | xargs -0 awk -v pat="$pattern" '
  FNR == 1 { in_tests = 0 }
  /^#\[cfg\(.*test.*\)\]/ { in_tests = 1 }
  !in_tests && $0 ~ pat && $0 !~ /^[[:space:]]*\/\// { print FILENAME ":" FNR ": " $0 }')
if [ -n "$bad" ]; then
  echo "lint: use crate::shim instead of these direct imports:" >&2
  echo "$bad" >&2
  exit 1
fi
echo "lint: every atomic, fence, cell, thread and spin hint in src/ goes through src/shim.rs"
