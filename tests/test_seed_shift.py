"""The seed shift of the stochastic tests: ``seed(n)`` adds ``--seed-shift N`` (or
``$BAYESSTRUCT_TEST_SEED_SHIFT``; the option wins), and the autouse fixture seeds with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import SEED_SHIFT_ENV, seed, seed_shift

ROOT = Path(__file__).resolve().parents[1]
EXPECT = "_BAYESSTRUCT_TEST_EXPECTED_SHIFT"  # set by the outer test for the inner run


def test_seed_and_the_fixture_use_the_shift():
    """In any run: ``seed(n) = n + shift``, and the autouse fixture seeded torch and numpy
    with ``seed(0)``. Run in a subprocess below with a known shift."""
    shift = int(os.environ.get(EXPECT, seed_shift()))
    assert seed_shift() == shift
    assert [seed(n) for n in (0, 3, 11)] == [shift, 3 + shift, 11 + shift]
    assert torch.equal(torch.rand(4), torch.rand(4, generator=torch.Generator().manual_seed(
        shift)))
    assert np.random.random() == np.random.RandomState(shift).random()  # noqa: NPY002


def test_option_sets_the_shift_and_overrides_the_variable():
    """A pytest subprocess (about 4 s: torch and Pyro imports) with the variable at 3 and
    ``--seed-shift 7`` runs the test above expecting 7."""
    env = {**os.environ, SEED_SHIFT_ENV: "3", EXPECT: "7", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--seed-shift", "7",
         f"{Path(__file__).relative_to(ROOT)}::test_seed_and_the_fixture_use_the_shift"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout


def test_the_variable_alone_sets_the_shift(monkeypatch):
    monkeypatch.setenv(SEED_SHIFT_ENV, "4")
    assert seed(2) == 6
    monkeypatch.setenv(SEED_SHIFT_ENV, "")
    assert seed(2) == 2
    monkeypatch.setenv(SEED_SHIFT_ENV, "four")
    with pytest.raises(ValueError, match="not an integer"):
        seed(2)
