# One command for each habit: build, test, lint, format, bench.
#
# Works as root without a virtualenv: the package is installed with pip in
# editable mode, and pip builds in the tree, so target/ stays as the cache and
# a rebuild after a Rust change is incremental.

PYTHON ?= python3
PIP := $(PYTHON) -m pip
PY_PATHS := python tests bench examples
BENCH_ARGS ?=
# the interpreter that runs the benchmarks (one with the peers installed includes them)
BENCH_PYTHON ?= $(PYTHON)

export PIP_DISABLE_PIP_VERSION_CHECK ?= 1
export PIP_ROOT_USER_ACTION ?= ignore

.PHONY: help build dev test test-slow lint format bench clean

help:
	@echo "make build   compile the extension (release) and install tracker, editable"
	@echo "make test    install the test dependencies, build, run every test"
	@echo "make test-slow  the long runs behind pytest's slow marker"
	@echo "make lint    cargo fmt --check, clippy -D warnings, ruff, ruff format --check, stubtest"
	@echo "make format  cargo fmt, ruff's import sorting, ruff format"
	@echo "make bench   the benchmarks of bench/README.md (BENCH_ARGS='--threads default,1' etc.)"

build:
	$(PIP) install -e .

# build + the test and lint tools (the `test` extra)
dev:
	$(PIP) install -e '.[test]'

# pytest runs the examples and the benchmarks' correctness pass too
test: dev
	cargo test -p tracker-core
	$(PYTHON) -m pytest

# the long runs (fuzzing, memory over 10^5 steps), behind pytest's slow marker
test-slow: dev
	$(PYTHON) -m pytest -m slow

lint: dev
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(PYTHON) -m ruff check $(PY_PATHS)
	$(PYTHON) -m ruff format --check $(PY_PATHS)
	$(PYTHON) -m mypy.stubtest tracker._core

format:
	cargo fmt --all
	$(PYTHON) -m ruff check --select I --fix $(PY_PATHS)
	$(PYTHON) -m ruff format $(PY_PATHS)

bench: build
	$(BENCH_PYTHON) bench/bench.py --json bench/results.json $(BENCH_ARGS)

clean:
	cargo clean
	rm -f python/tracker/*.so
