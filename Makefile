# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv if there is
# none and installs what it needs (again only when requirements.txt or pyproject.toml change).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: demo test unit notebooks real-figure bench gpu-check clean

$(INSTALLED): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

demo: $(INSTALLED)
	$(PY) -m cae_keras demo

# Unit tests, then every notebook in fast mode under nbval, with a fresh cache each time.
test: $(INSTALLED)
	cache=$$(mktemp -d) && CAE_KERAS_FAST=1 CAE_KERAS_CACHE=$$cache $(PY) -m pytest tests notebooks \
	  --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg; \
	  status=$$?; rm -rf $$cache; exit $$status

unit: $(INSTALLED)
	$(PY) -m pytest tests

# Executes every notebook (full mode; FAST=1 for fast mode) into notebooks/outputs/, with HTML
# copies, and prints each one's wall time.
FAST ?=
notebooks: $(INSTALLED)
	mkdir -p notebooks/outputs
	for nb in notebooks/[0-9][0-9]_*.ipynb; do \
	  start=$$(date +%s); \
	  CAE_KERAS_FAST=$(FAST) $(VENV)/bin/jupyter nbconvert --to notebook --execute \
	    --ExecutePreprocessor.timeout=-1 --output-dir notebooks/outputs $$nb || exit 1; \
	  $(VENV)/bin/jupyter nbconvert --to html --output-dir notebooks/outputs notebooks/outputs/$$(basename $$nb); \
	  echo "$$nb: $$(( $$(date +%s) - start )) s (CAE_KERAS_FAST=$(FAST))"; \
	done

# Notebook 05's real-vs-synthetic figure: pixel_stats and patch_nn on the synthetic bottle and on
# real MVTec screw and tire (never needed by tests or notebooks; REAL names their dataset root).
REAL ?= ../shared/datasets
real-figure: $(INSTALLED)
	$(PY) -c "from cae_keras import workshop; workshop.save_real_figure('$(REAL)')"

# Speed and memory of seed_cae and conv_cae at 256 px, as JSON under docs/bench/.
bench: $(INSTALLED)
	mkdir -p docs/bench
	for model in seed_cae conv_cae; do $(PY) -m cae_keras bench --model $$model --out docs/bench/$$model.json; done

# On a GPU machine: benchmark (float32, XLA, mixed float16) and the export parity check, as JSON.
gpu-check: $(INSTALLED)
	$(PY) -m cae_keras.gpu_check --out gpu_check.json

clean:
	rm -rf runs data/synthetic .cache notebooks/outputs
