# The README's commands. `make demo` and `make test` work on a fresh machine: they create .venv if missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test check lint bench chain clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Reinstall when the dependency list changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,atari]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/rlx train cartpole --noise eps --seeds 8

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

# The edit-test loop: lint and every test not marked slow (no learning runs, no whole trainings); under 3 minutes
# on 2 cores. `make test` (CI) runs everything.
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/pip install --quiet -e ".[test,atari,bench]"
	$(BIN)/python bench/bench.py

clean:
	rm -rf $(VENV) runs

# The N-chain figure (Plappert et al. Fig. 4): every N x noise cell, 5 seeds each; resumable.
chain: $(STAMP)
	$(BIN)/rlx sweep chain

# The GPU check (bench/gpu_check.py; docs/benchmarks.md, "GPU check"): CartPole seed scaling, Pong PQN with
# parameter noise and the 4096-unit LM, in under 9 minutes. On a lent GPU machine, run `python bench/gpu_check.py`
# there with the image's Python, bench/wheels copied along (make gpu-wheels).
.PHONY: gpu-check gpu-wheels
GPU_PYTHON ?= 3.12
GPU_WHEELS ?= bench/wheels

gpu-check: $(STAMP)
	$(BIN)/python bench/gpu_check.py

# Once, with network: the wheels the GPU image lacks (gpu_check.py --requirements), for its Python (GPU_PYTHON) on
# x86-64 Linux; the check installs the missing ones from there offline.
gpu-wheels: | $(BIN)/python
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version $(GPU_PYTHON) \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d $(GPU_WHEELS) $$($(BIN)/python bench/gpu_check.py --requirements)
	$(BIN)/python -m pip wheel --quiet --no-deps -w $(GPU_WHEELS) $$($(BIN)/python bench/gpu_check.py --source-requirements)
