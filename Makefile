# filch — every target installs what it needs; a fresh machine needs nothing by hand.
#
#   make test     what CI runs: fmt check, lint, clippy, unit/integration/doc tests,
#                 proptests, loom models (bounded) with their mutation checks
#   make loom     the loom suite with deeper preemption bounds
#   make bench    criterion benchmarks (filch beside its peers, same run), then the
#                 idle-CPU / wake-latency measurement (examples/idle.rs)
#   make lint     the sync-shim rule and clippy

CARGO        ?= cargo
LOOM_TARGET  := target/loom
LOOM_FLAGS   := --cfg loom -C debug-assertions
# Bounded for CI; `make loom` goes deeper.
LOOM_TEST_PREEMPTIONS ?= 2
LOOM_DEEP_PREEMPTIONS ?= 4

.PHONY: test fmt-check lint clippy unit loom-quick loom bench

test: fmt-check lint unit loom-quick
	@echo "make test: all checks passed"

fmt-check:
	$(CARGO) fmt --all -- --check

lint: clippy
	./.ci/lint-shim.sh

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

# Unit, integration, doc tests and proptests. Release mode: the property and stress
# tests do real work, and the optimizer is where reorderings would show.
unit:
	$(CARGO) test --release

loom-quick:
	LOOM_MAX_PREEMPTIONS=$(LOOM_TEST_PREEMPTIONS) RUSTFLAGS="$(LOOM_FLAGS)" CARGO_TARGET_DIR=$(LOOM_TARGET) \
		$(CARGO) test --release --test loom

loom:
	LOOM_MAX_PREEMPTIONS=$(LOOM_DEEP_PREEMPTIONS) RUSTFLAGS="$(LOOM_FLAGS)" CARGO_TARGET_DIR=$(LOOM_TARGET) \
		$(CARGO) test --release --test loom -- --test-threads=1

bench:
	$(CARGO) bench
	$(CARGO) run --release --example idle
