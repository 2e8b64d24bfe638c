# wganx: the two commands of the README, and what they need.
#   make train   trains on a bundled toy dataset and shows where the results are
#   make test    runs the whole test suite (all three backends) and builds the docs
# Both create the project's virtual environment (.venv, Python 3.10) first when it is absent.
#   make matrix  the other two legs of the compatibility matrix CI runs after make test:
#                test-newest (newest Python and packages, from built wheels, no NNabla) and
#                test-oldest (every declared lower bound, exactly; torch and TensorFlow)

PYTHON_VERSION ?= 3.10
NEWEST_PYTHON_VERSION ?= 3.13
VENV ?= .venv
PY := $(VENV)/bin/python
WGANX := $(VENV)/bin/wganx
# The first Python $(1).x found through pyenv or on the PATH.
find_python = $(shell \
	for p in "$$(pyenv root 2>/dev/null)/versions/$(1)"*/bin/python \
		"$${PYENV_ROOT:-$$HOME/.pyenv}/versions/$(1)"*/bin/python python$(1); do \
		if command -v "$$p" >/dev/null 2>&1; then echo "$$p"; break; fi; done)
# Python 3.10: NNabla ships wheels for CPython 3.8 to 3.10 only.
BASE_PYTHON ?= $(call find_python,$(PYTHON_VERSION))
PYPROJECTS := pyproject.toml backends/torch/pyproject.toml backends/tensorflow/pyproject.toml \
	backends/nnabla/pyproject.toml plugins/example/pyproject.toml benchmarks/pyproject.toml
DISTRIBUTIONS := -e . -e backends/torch -e backends/tensorflow -e backends/nnabla -e plugins/example -e benchmarks
RESULTS ?= results/quickstart

.PHONY: install train test docs parity bench clean matrix test-newest test-oldest

$(VENV)/.installed: $(PYPROJECTS)
	@$(call make_venv,$(VENV),$(BASE_PYTHON),$(PYTHON_VERSION))
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

# -- the compatibility matrix ------------------------------------------------------------------
# $(call make_venv,FOLDER,PYTHON,VERSION): create FOLDER with PYTHON (of VERSION) unless it exists
make_venv = if [ ! -x $(1)/bin/python ]; then \
		if [ -z "$(2)" ]; then echo "error: Python $(3) not found; install it, e.g. pyenv install $(3)"; exit 1; fi; \
		echo "creating $(1) with $(2)"; $(2) -m venv $(1); fi

matrix: test-newest test-oldest

# (b) The newest Python with both torch and TensorFlow wheels, the newest packages that resolve,
# no NNabla; wganx installed from its built wheels (not the source tree), and the suite run from
# a folder outside the tree, so a file missing from a wheel or an entry point that works only
# from the source fails here.
NEWEST_VENV ?= .venv-newest
NEWEST_PY := $(NEWEST_VENV)/bin/python
NEWEST_WHEELS := $(NEWEST_VENV)/wheels
# ./ for each: "benchmarks" alone is a name pip looks up on PyPI
NEWEST_DISTS := ./ ./backends/torch/ ./backends/tensorflow/ ./plugins/example/ ./benchmarks/

$(NEWEST_VENV)/.installed: $(PYPROJECTS)
	@$(call make_venv,$(NEWEST_VENV),$(call find_python,$(NEWEST_PYTHON_VERSION)),$(NEWEST_PYTHON_VERSION))
	$(NEWEST_PY) -m pip install --quiet --upgrade pip
	@touch $@

# setuptools builds in each folder's build/ and would reuse a stale one (a deleted module included)
BUILD_DIRS := $(addsuffix build,$(NEWEST_DISTS))

# The wheels of this tree; the newest releases of what they need (eager, so a venv kept from an
# earlier run moves up too); then the wheels themselves again, as their version does not change.
test-newest: $(NEWEST_VENV)/.installed
	rm -rf $(NEWEST_WHEELS) $(BUILD_DIRS)
	$(NEWEST_PY) -m pip wheel --quiet --no-deps -w $(NEWEST_WHEELS) $(NEWEST_DISTS)
	rm -rf $(BUILD_DIRS)
	$(NEWEST_PY) -m pip install --quiet --upgrade --upgrade-strategy eager \
		"$$(ls $(NEWEST_WHEELS)/wganx-*.whl)[test,docs,digits,tensorboard]" $(NEWEST_WHEELS)/wganx_*.whl
	$(NEWEST_PY) -m pip install --quiet --no-deps --force-reinstall $(NEWEST_WHEELS)/*.whl
	@$(NEWEST_PY) -m pip list --format freeze | grep -iE '^(numpy|torch|tensorflow|typer|safetensors|matplotlib|scipy|protobuf|wganx.*)=='
	cd "$$(mktemp -d)" && WGANX_REQUIRE_BACKENDS=torch,tensorflow WGANX_TEST_INSTALLED=wheels \
		$(CURDIR)/$(NEWEST_VENV)/bin/pytest -q -c $(CURDIR)/pyproject.toml --rootdir $(CURDIR) -p no:cacheprovider \
		$(CURDIR)/tests $(CURDIR)/backends/torch/tests $(CURDIR)/backends/tensorflow/tests $(PYTEST_ARGS)

# (c) Every lower bound the project declares, installed exactly (.ci/lowest_requirements.py
# reads them from the pyproject files), with the torch and TensorFlow backends: train,
# generate, resume, checkpoints and parity between the two.
OLDEST_VENV ?= .venv-oldest
OLDEST_PY := $(OLDEST_VENV)/bin/python
OLDEST_TESTS := tests/test_core.py tests/test_plugins.py tests/test_config.py tests/test_optim.py \
	tests/test_session.py tests/test_checkpoint.py tests/test_training.py tests/test_parity.py

$(OLDEST_VENV)/.installed: $(PYPROJECTS) .ci/lowest_requirements.py
	@$(call make_venv,$(OLDEST_VENV),$(BASE_PYTHON),$(PYTHON_VERSION))
	$(OLDEST_PY) -m pip install --quiet --upgrade pip tomli packaging
	$(OLDEST_PY) .ci/lowest_requirements.py "pyproject.toml[digits]" backends/torch/pyproject.toml \
		backends/tensorflow/pyproject.toml > $(OLDEST_VENV)/lowest.txt
	$(OLDEST_PY) -m pip install --quiet -c $(OLDEST_VENV)/lowest.txt -e ".[digits]" -e backends/torch \
		-e backends/tensorflow "pytest>=7"
	@touch $@

test-oldest: $(OLDEST_VENV)/.installed
	@$(OLDEST_PY) -m pip list --format freeze | grep -iE "^($$(cut -d= -f1 $(OLDEST_VENV)/lowest.txt | paste -sd'|'))=="
	WGANX_REQUIRE_BACKENDS=torch,tensorflow $(OLDEST_PY) -m pytest -q -p no:cacheprovider $(OLDEST_TESTS) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(NEWEST_VENV) $(OLDEST_VENV) docs/_build build dist *.egg-info
