# The README's commands. `make demo` and `make test` work on a fresh machine: they create .venv if missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench chain clean

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
