# Two commands for a fresh machine: `make demo` and `make test` (see README.md).
# Both create .venv with a Python 3.9-3.11 interpreter (TensorFlow 2.15.1 supports no other) and install
# requirements.txt. GPU boxes: `make demo REQUIREMENTS=requirements-gpu.txt`.

SHELL := /bin/bash
VENV ?= .venv
REQUIREMENTS ?= requirements.txt
PY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONDONTWRITEBYTECODE = 1

# The first interpreter on PATH whose version TensorFlow 2.15.1 supports.
FIND_PYTHON = for p in $${PYTHON:-} python3.11 python3.10 python3.9 python3; do \
  if command -v "$$p" >/dev/null 2>&1 && "$$p" -c 'import sys; sys.exit(not (3, 9) <= sys.version_info[:2] <= (3, 11))' 2>/dev/null; then \
    echo "$$p"; break; fi; done

.PHONY: test demo bench lint clean venv gpu-check

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-base.txt requirements-gpu.txt requirements-test.txt requirements-vocab.txt
	@py="$$($(FIND_PYTHON))"; \
	if [ -z "$$py" ]; then \
	  echo "ERROR: no Python 3.9, 3.10 or 3.11 found on PATH; TensorFlow 2.15.1 needs one of them. Install python3.11 (or set PYTHON=/path/to/python3.11) and run make again." >&2; \
	  exit 1; fi; \
	if [ ! -x "$(PY)" ]; then echo "Creating $(VENV) with $$py"; "$$py" -m venv "$(VENV)"; fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r $(REQUIREMENTS) -r requirements-test.txt
	@touch $@

# The linter first (seconds), then the tests: a style error fails fast.
test: lint
	$(PY) -m pytest -q tests

demo: venv
	$(PY) demo.py

bench: venv
	$(PY) bench/run_all.py

# On a GPU box: make gpu-check REQUIREMENTS=requirements-gpu.txt (see README, GPUs).
gpu-check: venv
	$(PY) bench/gpu_check.py --output_dir=bench/results/gpu

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .cache demo_output
