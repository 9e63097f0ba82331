# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv if there is
# none and installs what it needs (again only when requirements.txt or pyproject.toml change).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: demo test unit notebooks clean

$(INSTALLED): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

demo: $(INSTALLED)
	$(PY) -m cae_keras demo

test: $(INSTALLED)
	CAE_KERAS_FAST=1 $(PY) -m pytest tests

unit: $(INSTALLED)
	$(PY) -m pytest tests -m "not notebooks"

clean:
	rm -rf runs data/synthetic .cache notebooks/outputs
