# Two commands do all the set-up on a fresh machine (Python 3.11 + pip):
#   make test   - lint, type-check and run the whole test suite
#   make demo   - run the function on local emulators
# By hand, in three terminals: make up / make host / make seed JOBS="nightly-42" then .venv/bin/deleter ...
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PIP_FLAGS ?= --quiet --disable-pip-version-check

.PHONY: venv lint typecheck test unit bench chaos schema demo up host seed clean lock

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --require-hashes -r requirements-dev.txt
	# the project itself, for the `deleter` console script only (its dependencies are the lines above); built with
	# the locked setuptools, so nothing unpinned is fetched
	$(BIN)/python -m pip install $(PIP_FLAGS) --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# In parallel (pytest-xdist): each worker starts its own emulators on free ports. The tests mostly wait
# on real processes (4 workers on 2 cores used under half the CPU), so 8 workers; worksteal hands a long
# test's neighbours to idle workers. PYTEST_WORKERS=0 runs them in this one process.
PYTEST_WORKERS ?= 8
test: lint typecheck
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(if $(filter 0,$(PYTEST_WORKERS)),,--dist worksteal)

demo: $(STAMP)
	$(BIN)/python -m emulators.demo

up: $(STAMP)
	$(BIN)/python -m emulators up

# The function on the local Functions host, fed by the emulators `make up` started (7071: func's port).
HOST_PORT ?= 7071
host: $(STAMP)
	$(BIN)/python -m emulators.host --port $(HOST_PORT)

# Jobs for the function to delete, in the running Batch emulator: make seed JOBS="nightly-42 nightly-43"
JOBS ?= nightly-42
seed: $(STAMP)
	$(BIN)/python -m emulators seed $(JOBS)

schema: $(STAMP)
	$(BIN)/python -m delete_job.request > schemas/deletion-request.schema.json

# The whole benchmark, side by side in one process tree, written to bench/RESULTS.md (about 5 minutes on
# 2 cores); make bench BENCH_SIZE=tiny runs every section in seconds (figures meaningless) and writes
# bench/out/RESULTS-tiny.md instead (git ignores bench/out/). Every run ends with the targets, held or missed.
BENCH_SIZE ?= full
bench: $(STAMP)
	$(BIN)/python -m bench --size $(BENCH_SIZE)

# The large chaos run (the test suite runs a small one): make chaos CHAOS_MESSAGES=2000 CHAOS_SEED=1
CHAOS_MESSAGES ?= 2000
CHAOS_SEED ?= 1
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos --messages $(CHAOS_MESSAGES) --seed $(CHAOS_SEED)

# requirements.txt and requirements-dev.txt are generated: every version pinned, every file hashed (what Azure's
# remote build installs is exactly what the tests ran with). Edit the ranges in the .in files, then `make lock`;
# `make lock UPGRADE=1` moves every pin to the newest release the ranges allow.
LOCK_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
	--no-emit-trusted-host --resolver=backtracking
lock: $(STAMP)
	$(BIN)/pip-compile $(LOCK_FLAGS) $(if $(UPGRADE),--upgrade) -o requirements.txt requirements.in
	$(BIN)/pip-compile $(LOCK_FLAGS) $(if $(UPGRADE),--upgrade) -o requirements-dev.txt requirements-dev.in

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
