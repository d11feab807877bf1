"""Shared fixtures: small real data (scikit-learn digits) and seeded RNGs; the seed shift.

``--seed-shift N`` (or ``BAYESSTRUCT_TEST_SEED_SHIFT=N``; the option wins) adds ``N`` to every
seed a stochastic test takes through :func:`tests.helpers.seed`, and to the seed of the RNGs
below: ``pytest -m stochastic --seed-shift 3`` reruns the stochastic tests on other draws
(``make test-seeds``: shifts 1-5)."""

from __future__ import annotations

import os

import pyro
import pytest
import torch

from tests.helpers import SEED_SHIFT_ENV, seed, seed_shift

os.environ.setdefault("MPLBACKEND", "Agg")
# at most 2 torch threads a test process; under pytest-xdist (`make test` runs one worker per
# core) the cores are shared out, so that workers never oversubscribe them
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, torch.get_num_threads(), (os.cpu_count() or 1) // _WORKERS)))


def pytest_addoption(parser):
    parser.addoption("--seed-shift", type=int, default=None, metavar="N",
                     help=f"add N to the seeds of the stochastic tests (overrides "
                          f"${SEED_SHIFT_ENV}; default: that variable, else 0)")


_ENV_BEFORE = pytest.StashKey[str | None]()


def pytest_configure(config):
    shift = config.getoption("--seed-shift", default=None)
    config.stash[_ENV_BEFORE] = os.environ.get(SEED_SHIFT_ENV)  # restored at unconfigure
    if shift is not None:  # the helper reads the variable: set it for every test module
        os.environ[SEED_SHIFT_ENV] = str(shift)
    try:  # a malformed shift fails here, once, not in every test
        if seed_shift() < 0:
            raise ValueError(f"the seed shift must be >= 0 (got {seed_shift()}): seeds are "
                             "non-negative")
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None


def pytest_unconfigure(config):
    if _ENV_BEFORE not in config.stash:
        return
    before = config.stash[_ENV_BEFORE]
    if before is None:
        os.environ.pop(SEED_SHIFT_ENV, None)
    else:
        os.environ[SEED_SHIFT_ENV] = before


def pytest_report_header(config):
    return f"seed shift: {seed_shift()} (--seed-shift N or ${SEED_SHIFT_ENV})"


@pytest.fixture(autouse=True)
def _seed():
    pyro.clear_param_store()
    pyro.set_rng_seed(seed(0))
    yield
    pyro.clear_param_store()


@pytest.fixture(scope="session")
def digits():
    from bayesstruct import data

    return data.load("digits", seed=0)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def fashion_mnist():
    """Fashion-MNIST from wherever bayesstruct finds it; skipped (with the reason) if absent."""
    from bayesstruct import data

    try:
        return data.load("fashion-mnist", seed=0, download=False)
    except data.DataNotFoundError as e:
        pytest.skip(f"Fashion-MNIST not available ({str(e).splitlines()[0]}); "
                    "`make data` installs it as root")
