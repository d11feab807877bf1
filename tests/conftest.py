"""Shared fixtures: small real data (scikit-learn digits) and seeded RNGs."""

from __future__ import annotations

import os

import pyro
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
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
