# wganx: the two commands of the README, and what they need.
#   make train   trains on a bundled toy dataset and shows where the results are
#   make test    runs the whole test suite (all three backends) and builds the docs
# Both create the project's virtual environment (.venv, Python 3.10) first when it is absent.

PYTHON_VERSION ?= 3.10
VENV ?= .venv
PY := $(VENV)/bin/python
WGANX := $(VENV)/bin/wganx
# Python 3.10: NNabla ships wheels for CPython 3.8 to 3.10 only.
BASE_PYTHON ?= $(shell \
	for p in "$$(pyenv root 2>/dev/null)/versions/$(PYTHON_VERSION)"*/bin/python \
		"$${PYENV_ROOT:-$$HOME/.pyenv}/versions/$(PYTHON_VERSION)"*/bin/python python$(PYTHON_VERSION); do \
		if command -v "$$p" >/dev/null 2>&1; then echo "$$p"; break; fi; done)
DISTRIBUTIONS := -e . -e backends/torch -e backends/tensorflow -e backends/nnabla -e plugins/example -e benchmarks
RESULTS ?= results/quickstart

.PHONY: install train test docs parity bench clean

$(VENV)/.installed: pyproject.toml backends/torch/pyproject.toml backends/tensorflow/pyproject.toml \
		backends/nnabla/pyproject.toml plugins/example/pyproject.toml benchmarks/pyproject.toml
	@if [ ! -x $(PY) ]; then \
		if [ -z "$(BASE_PYTHON)" ]; then \
			echo "error: Python $(PYTHON_VERSION) not found (NNabla needs 3.8-3.10); install it, e.g. pyenv install $(PYTHON_VERSION)"; exit 1; fi; \
		echo "creating $(VENV) with $(BASE_PYTHON)"; $(BASE_PYTHON) -m venv $(VENV); fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(DISTRIBUTIONS) -e ".[test,docs,digits,tensorboard]"
	@touch $@

install: $(VENV)/.installed

# The main job: WGAN-GP on the paper's 8-Gaussians toy set (about 3 minutes on 2 CPU cores);
# each run replaces the previous quickstart (--overwrite).
train: install
	$(WGANX) train --dataset 8gaussians --arch mlp --maps 128 --latent 2 -b 256 --lambda 0.1 \
		-i 4000 --save-interval 500 --monitor-path $(RESULTS) --overwrite
	@echo "samples: $(RESULTS)/samples/  losses: $(RESULTS)/losses.png  checkpoint: $(RESULTS)/params_004000.safetensors"

test: install
	WGANX_REQUIRE_BACKENDS=torch,tensorflow,nnabla $(PY) -m pytest -q $(PYTEST_ARGS)

docs: install
	$(PY) -m sphinx -W -q -b html docs docs/_build/html

parity: install
	$(WGANX) parity

bench: install
	$(WGANX) bench

clean:
	rm -rf $(VENV) docs/_build build dist *.egg-info
