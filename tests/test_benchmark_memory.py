"""``benchmarks/memory.py``: the peak-memory tracker the peers benchmark uses, against steps
whose allocations are known."""

from __future__ import annotations

import importlib

import pytest
import torch

from tests.test_benchmark_outputs import BENCHMARKS

MiB = 2**20


@pytest.fixture
def memory(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("memory")


def test_peak_of_known_allocations(memory):
    """Two 1 MiB tensors alive at once, then freed, then one: the peak is 2 MiB above what was
    alive before (the same before both calls)."""
    def step():
        a = torch.ones(MiB // 4)
        b = a * 2  # both alive: 2 MiB
        del a, b
        torch.zeros(MiB // 4)  # 1 MiB after the frees: not a new peak

    base = memory.peak_step_bytes(lambda: None)
    assert memory.peak_step_bytes(step) - base == 2 * MiB


def test_backward_and_views(memory):
    """A view shares its storage (counted once); gradients made in backward are counted; the
    excluded tensors are not."""
    w = torch.zeros(MiB // 4, requires_grad=True)
    data = torch.ones(MiB // 4)

    def step():
        # w * data (1 MiB) is freed once summed (no node saves it); backward makes w.grad
        # (1 MiB): one MiB at a time, and w.grad is alive at the end
        (w * data).sum().backward()

    base = memory.peak_step_bytes(lambda: None, exclude=[data])
    peak = memory.peak_step_bytes(step, exclude=[data])
    assert MiB <= peak - base <= MiB + 64  # + the scalar loss and its gradient
    assert w.grad is not None
    view = data[: MiB // 8]
    assert memory.peak_step_bytes(lambda: view.clone(), exclude=[data]) - \
        memory.peak_step_bytes(lambda: None, exclude=[data]) == MiB // 2
