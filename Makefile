# scalelab developer commands. `make demo` and `make test` are the two a newcomer needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0

.PHONY: install test test-all demo lint bench clean

install: $(STAMP)

# torch goes first, pinned, so that the dependency resolver does not pull a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ""

demo: $(STAMP)
	$(BIN)/python -m scalelab.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	@if ls bench/bench_*.py >/dev/null 2>&1; then \
		for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done; \
	else echo "no benchmarks yet"; fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
