# The two commands a newcomer needs: `make dev` and `make test`. Both set themselves up.
# `make lint` runs the house checks (style, types, layers); CI runs it before the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test lint install clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch is pinned to the CPU wheel first so the resolver never reaches for a CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[render,embedded,test,bench,lint]'
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/sorapi dev

test: $(STAMP)
	$(BIN)/python -m pytest tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m bench.render
	$(BIN)/python -m bench.api
	$(BIN)/python -m bench.queue
	$(BIN)/python -m bench.faults

clean:
	rm -rf .sorapi
