# scalelab developer commands. `make demo` and `make test` are the two a newcomer needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0

.PHONY: install test test-all demo lint bench reproduce-ml1m clean

install: $(STAMP)

# torch goes first, pinned, so that the dependency resolver does not pull a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

# pytest exits 5 when it collects no tests; that is not a failure of the suite.
test: $(STAMP)
	$(BIN)/python -m pytest -q || [ $$? -eq 5 ]

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "" || [ $$? -eq 5 ]

DEMO := results/demo
demo: $(STAMP)
	@mkdir -p $(DEMO)
	$(BIN)/scalelab data synth $(DEMO)/synthetic.tsv.gz
	$(BIN)/scalelab data describe $(DEMO)/synthetic.tsv.gz --m 1 --m 2
	@echo "ApEn follows the generator's randomness knob (pooled, m=2):"
	@for r in 0.0 0.3 1.0; do \
		printf "  randomness %s: " $$r; \
		$(BIN)/scalelab data describe synthetic --set data.synthetic.randomness=$$r --json \
			| $(BIN)/python -c "import json,sys; print(round(json.load(sys.stdin)['apen'][0]['pooled'], 3))"; \
	done
	@if [ -f ../shared/datasets/ml-1m/interactions.tsv.gz ]; then \
		$(BIN)/scalelab data describe ../shared/datasets/ml-1m/interactions.tsv.gz; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	@if ls bench/bench_*.py >/dev/null 2>&1; then \
		for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done; \
	else echo "no benchmarks yet"; fi

# The ML-1M reproduction of Meta's published numbers (hours on CPU). Re-running resumes every run
# from its last checkpoint; finished runs are skipped. Results in results/reproduction/.
ML1M ?= ../shared/datasets/ml-1m/interactions.tsv.gz
REPRO_MODELS ?= hstu sasrec
reproduce-ml1m: $(STAMP)
	@for m in $(REPRO_MODELS); do \
		if [ -f results/reproduction/ml1m-$$m/summary.json ] && grep -q '"status": "finished"' results/reproduction/ml1m-$$m/summary.json; then \
			echo "ml1m-$$m finished"; continue; fi; \
		$(BIN)/scalelab train configs/ml1m_$$m.yaml --set data.path=$(ML1M) -o results/reproduction/ml1m-$$m || exit 1; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
