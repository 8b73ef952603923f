# scalelab developer commands. `make demo` and `make test` are the two a newcomer needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0

.PHONY: install test test-all demo lint bench bench-env laws-real reproduce-ml1m reproduce-ml1m-movies reproduce-ml1m-ties reproduce-ml1m-ties-bucketed reproduce-ml1m-bucketed reproduce-ml1m-meta-bucketed reproduce-ml1m-ties-fast reproduce-ml1m-meta clean

install: $(STAMP)

# torch goes first, pinned, so that the dependency resolver does not pull a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

# pytest exits 5 when it collects no tests; that is not a failure of the suite. The 15 slowest tests
# are listed at the end (the default run must stay under 10 minutes on 2 cores).
test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15 || [ $$? -eq 5 ]

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "" || [ $$? -eq 5 ]

# The main job end to end: a depth x width sweep of HSTU on built-in synthetic data, run as Ray
# Tune trials and logged to MLflow (results/mlflow.db), then its runs table.
demo: $(STAMP)
	$(BIN)/scalelab data describe synthetic --set data.synthetic.num_users=2000 --set data.synthetic.mean_seq_len=30
	$(BIN)/scalelab sweep sweeps/quickstart.yaml --dry-run
	$(BIN)/scalelab sweep sweeps/quickstart.yaml
	$(BIN)/scalelab runs quickstart
	$(BIN)/scalelab fit --law performance --sweep quickstart --bootstrap 200
	$(BIN)/scalelab fit --law power --x params --sweep quickstart --bootstrap 200
	@echo "MLflow dashboard: .venv/bin/scalelab ui"
	$(BIN)/scalelab report quickstart

# ruff (lint and format) and mypy over the whole package; .ci/run runs it before the tests.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy scalelab fitters

# RecBole 1.2.1, the peer that bench/bench_train.py runs beside scalelab, in its own environment: it
# needs numpy 1 and older pandas / scipy / scikit-learn (../shared/reference/peers.md). If it cannot
# be installed, bench_train.py records RecBole as skipped and the other benchmarks still run.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed:
	test -x $(BENCH_VENV)/bin/python || $(PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet "torch==$(TORCH_VERSION)"
	$(BENCH_VENV)/bin/pip install --quiet recbole==1.2.1 numpy==1.26.4 pandas==2.2.3 scipy==1.13.1 \
		scikit-learn==1.5.2 ray==2.6.3
	touch $@

# antropy and EntropyHub, the ApEn peers of bench/bench_apen.py, in the same environment.
$(BENCH_VENV)/.apen-installed:
	test -x $(BENCH_VENV)/bin/python || $(PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet antropy==0.2.3 EntropyHub==2.0
	touch $@

bench-env: $(BENCH_VENV)/.installed $(BENCH_VENV)/.apen-installed

bench: $(STAMP)
	-@$(MAKE) --no-print-directory bench-env
	@if ls bench/bench_*.py >/dev/null 2>&1; then \
		for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done; \
	else echo "no benchmarks yet"; fi

# The ML-1M reproduction of Meta's published numbers (hours on CPU). Re-running resumes every run
# from its last checkpoint; finished runs are skipped. Results in results/reproduction/.
ML1M ?= ../shared/datasets/ml-1m/interactions.tsv.gz
REPRO_MODELS ?= hstu sasrec  # also: hstu_large fuxi_alpha (depth 8, 2 heads)
# $(call repro,SUFFIX,EXTRA SETTINGS): train every model of REPRO_MODELS into
# results/reproduction/ml1m-<model>SUFFIX, skipping finished runs and resuming interrupted ones.
# REPRO_SET adds settings to every run, e.g. REPRO_SET="--set train.length_groups=8 --set train.cpu_workers=2"
# (the same batches and gradient, about half the time of a deep model on two cores; a run resumes only
# with the settings it started with).
define repro
	@for m in $(REPRO_MODELS); do \
		out=results/reproduction/ml1m-$$m$(1); \
		if [ -f $$out/summary.json ] && grep -q '"status": "finished"' $$out/summary.json; then \
			echo "$$out finished"; continue; fi; \
		$(BIN)/scalelab train configs/ml1m_$$m.yaml --set data.path=$(ML1M) $(2) $(REPRO_SET) -o $$out || exit 1; \
	done
endef

reproduce-ml1m: $(STAMP)
	$(call repro,,)

# The same with Meta's catalogue: every movie of movies.dat is a candidate (rated or not).
ML1M_MOVIES ?= $(dir $(ML1M))movies.dat
reproduce-ml1m-movies: $(STAMP)
	$(call repro,-movies,--set data.catalogue=$(ML1M_MOVIES))

# The same with events of equal timestamp in a seeded random order (as Meta's unstable sort leaves them).
# SEED=N (optional) repeats it with another tie order and training seed, into ml1m-<model>-ties-seedN.
SEED ?=
SEED_RUN := $(if $(SEED),-seed$(SEED),)
SEED_SET := $(if $(SEED),--set data.tie_seed=$(SEED) --set train.seed=$(SEED),)
reproduce-ml1m-ties: $(STAMP)
	$(call repro,-ties$(SEED_RUN),--set data.ties=shuffle $(SEED_SET))

# Ties shuffled, length-bucketed batches: Meta's per-position negatives, only the batch composition
# differs (users of similar length share a batch); about half the epoch time of HSTU-large at length 200.
BUCKETED := --set train.bucket_pool=50
reproduce-ml1m-ties-bucketed: $(STAMP)
	$(call repro,-ties-bucketed,--set data.ties=shuffle $(BUCKETED))

# File order (same-second events as the file has them) on length-bucketed batches, with the divisor (201)
# and exact time buckets the -ties-bucketed runs had: their twin with only the tie order changed, which
# isolates what the order is worth at depth 8.
reproduce-ml1m-bucketed: $(STAMP)
	$(call repro,-bucketed,$(BUCKETED) --set model.max_seq_len=201 --set model.time_buckets=exact)

# Meta-exact and ties shuffled as reproduce-ml1m-meta, on length-bucketed batches with uniform target
# weights (every target weighs the same, as on shuffled batches): whether bucketing with the default
# path's objective lands where the default path does.
reproduce-ml1m-meta-bucketed: $(STAMP)
	$(call repro,-meta-bucketed-uniform,--set data.ties=shuffle $(BUCKETED) --set train.target_weights=uniform)

# Ties shuffled, on the fast training path: length-bucketed batches and negatives drawn once per
# sequence (each position still scores 128 uniform negatives; positions of a user share them).
FAST := $(BUCKETED) --set train.negatives_per=sequence
reproduce-ml1m-ties-fast: $(STAMP)
	$(call repro,-ties-fast,--set data.ties=shuffle $(FAST))

# Meta-exact (configs as shipped: divisor 211, float32 time buckets), ties shuffled, Meta's per-position
# negatives on the default path. SEED=N as above, into ml1m-<model>-meta-seedN.
reproduce-ml1m-meta: $(STAMP)
	$(call repro,-meta$(SEED_RUN),--set data.ties=shuffle $(SEED_SET))

# Real held-out validation of the laws (results/reference/laws-real.md): HSTU sweeps on ML-100K, ML-1M,
# Amazon Beauty and Video Games (hours each on 2 cores; re-running resumes), then the record.
# The runs tables are kept in results/reference/laws_real/ (bench/laws_real.py writes them): a sweep
# resumes from its kept table (--resume-from), so cells finished on another machine are not run again.
# (laws_real_ml100k and laws_real_ml1m are complete, and add them to rerun them; laws_real_beauty and
# laws_real_ml1m_data are complete too and are carried from their kept tables.)
LAWS_REAL ?= laws_real_beauty laws_real_ml1m_data laws_real_games
LAWS_REAL_KEPT := results/reference/laws_real
laws-real: $(STAMP)
	@for s in $(LAWS_REAL); do \
		kept=$(LAWS_REAL_KEPT)/$$s.csv; \
		$(BIN)/scalelab sweep sweeps/$$s.yaml $$([ -f $$kept ] && echo --resume-from $$kept); rc=$$?; \
		$(BIN)/python bench/laws_real.py --sweeps $$s --archive-only; \
		[ $$rc -eq 0 ] || exit $$rc; \
	done
	$(BIN)/python bench/laws_real.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
