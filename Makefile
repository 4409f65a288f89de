# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev-pluto-display-cluster-twin

.PHONY: demo test venv lint bench clean

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

bench: $(STAMP)
	$(PY) scripts/bench_waveform.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
