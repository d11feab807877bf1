"""``benchmarks/any_network.py`` run on some entries keeps the other entries' rows of the
section already written, each with the date and command that measured it."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

OLD = """# Benchmark results

<!-- any_network:begin -->
## Any network

Measured 2026-11-30 on x86_64, 2 threads (CPU), torch 2.13.0+cpu; `python benchmarks/any_network.py`. Text.

| entry | a | b | c | d | e | f | g | h | i |
|---|---|---|---|---|---|---|---|---|---|
| `resnet-ard-fashion-mnist` | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 523 |
| `lstm-fashion-mnist` | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 1808 |
<!-- any_network:end -->

Hand-written reading.
"""  # noqa: E501


@pytest.fixture
def any_network(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    yield importlib.import_module("any_network")
    sys.modules.pop("any_network", None)
    sys.modules.pop("_results", None)


def test_an_old_section_gives_each_row_its_date_and_command(any_network):
    rows = any_network.earlier_rows(OLD)
    assert list(rows) == ["resnet-ard-fashion-mnist", "lstm-fashion-mnist"]
    cells, how = rows["lstm-fashion-mnist"]
    assert cells[0] == "`lstm-fashion-mnist`" and cells[-2:] == ["1808", "2026-11-30"]
    assert len(cells) == len(any_network.HEADER)
    assert how == ("Measured 2026-11-30 on x86_64, 2 threads (CPU), torch 2.13.0+cpu; "
                   "`python benchmarks/any_network.py`")


def test_running_one_entry_keeps_the_others(any_network, monkeypatch, tmp_path):
    (tmp_path / "RESULTS.md").write_text(OLD)
    metrics = {"n_train": 300, "epochs_run": 1, "test_acc": 0.8, "test_acc_pruned": 0.79,
               "hidden_units": {"dense": 144, "pruned": 72, "fraction_removed": 0.5},
               "macs_dense": 1000, "macs_pruned": 400, "test_inference_seconds_dense": 2.0,
               "test_inference_seconds_pruned": 1.0, "train_seconds": 12.0}
    monkeypatch.setattr(any_network.runner, "run", lambda cfg, out, progress: metrics)
    monkeypatch.setattr(sys, "argv", ["any_network.py", "--entries",
                                      "resnet-ard-fashion-mnist", "--out", str(tmp_path)])
    any_network.main()
    text = (tmp_path / "RESULTS.md").read_text()
    rows = any_network.earlier_rows(text)
    assert list(rows) == ["resnet-ard-fashion-mnist", "lstm-fashion-mnist"]  # entry order
    new, how = rows["resnet-ard-fashion-mnist"]
    assert new[5] == "72 / 144 (50.0 %)" and new[7] == "2.50x" and new[9] == "12"
    assert how.endswith("`python benchmarks/any_network.py --entries resnet-ard-fashion-mnist`")
    assert rows["lstm-fashion-mnist"][0][-2:] == ["1808", "2026-11-30"]
    assert "Hand-written reading." in text  # outside the markers: untouched
    # a second run reads the new layout back unchanged
    assert any_network.earlier_rows(text) == rows
