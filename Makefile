# The two commands of the README. Each sets everything up on a fresh machine first.
PYTHON ?= $(shell command -v python3.12 || command -v python3)
VENV   := .venv
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 12))' || \
	  { echo "Python >= 3.12 is needed (found $$($(PYTHON) --version))"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gcov-index demo

test: $(STAMP)
	$(VENV)/bin/ruff check gcov_index tests benchmarks
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache gcov-index-demo.json
