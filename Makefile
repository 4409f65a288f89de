# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev-pluto-display-cluster-twin
DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: demo test venv lint bench clean docs

$(PY):
	bash scripts/system_deps.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	bash scripts/system_deps.sh
	$(PY) -m pip install --quiet -e '.[dev,pluto,display,cluster,twin]'
	touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sdr-isac demo

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check sdr_isac tests scripts
	$(VENV)/bin/mypy sdr_isac
	if [ -f ../shared/tools/check_layers.py ]; then python3 ../shared/tools/check_layers.py .; fi

# The API reference (Sphinx + numpydoc) into docs/_build/html, from scratch, warnings as errors.
$(DOCS_STAMP): pyproject.toml | $(STAMP)
	$(PY) -m pip install --quiet -e '.[docs]'
	touch $@

docs: $(DOCS_STAMP)
	rm -rf docs/_build
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/sphinx-build -E -W --keep-going -q -b html docs/api docs/_build/html
	@echo "docs: docs/_build/html/index.html"

bench: $(STAMP)
	$(PY) scripts/bench_waveform.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
