# The two commands of the README. Each sets everything up on a fresh machine first.
PYTHON ?= $(shell command -v python3.12 || command -v python3)
VENV   := .venv
STAMP  := $(VENV)/.installed

.PHONY: demo test fast lint bench lock clean

# constraints.txt pins every package (made by `make lock`): pip installs it without searching,
# so a fresh clone is set up in about a minute whatever is newest on PyPI that day.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 12))' || \
	  { echo "Python >= 3.12 is needed (found $$($(PYTHON) --version))"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet pip==26.3
	$(VENV)/bin/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/python -m tests.support.demo

# one worker more than the cores (pytest-xdist; each test file on one worker, its module
# fixtures built once): the tests wait on local servers, retries and kill signals part of the
# time, and a third worker on 2 cores filled that (7 m 44 s against 8 m 45 s)
# compileall first: the suite starts many interpreters (CLI and killed builds, worker and Dask
# processes, a Jupyter kernel); with PYTHONDONTWRITEBYTECODE set (as in CI) each would compile
# gcov_index and tests/support from source again (~0.6 s of CPU each)
test: $(STAMP)
	$(VENV)/bin/ruff check gcov_index tests benchmarks
	$(VENV)/bin/python -m compileall -q gcov_index tests benchmarks
	$(VENV)/bin/python -m pytest -q -n $$(( $$(nproc) + 1 )) --dist loadfile

# the fast lane: no local servers, no full-size granules (seconds)
fast: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "not services"

bench: $(STAMP)
	$(VENV)/bin/python -m benchmarks.run

# re-pin constraints.txt to the newest releases that satisfy pyproject.toml (uv resolves in
# seconds where pip may backtrack for many minutes); run `make test` after it
lock:
	test -x $(VENV)/bin/uv || $(VENV)/bin/pip install --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --python-version 3.12 \
	  --python-platform x86_64-manylinux_2_28 --no-header --no-annotate -o constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache gcov-index-demo.json
