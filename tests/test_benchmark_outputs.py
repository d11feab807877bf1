"""The benchmarks write into an output folder by default and touch the tracked
``benchmarks/RESULTS.md`` and ``benchmarks/figures/`` only when given ``--write-results``
(``benchmarks/_results.py``)."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
OLD = "# Benchmark results\n\n<!-- demo:begin -->\nold text\n<!-- demo:end -->\n\ntail\n"


@pytest.fixture
def results(monkeypatch, tmp_path):
    """``_results`` with its tracked folder (``benchmarks/``) and its default output folder
    moved into ``tmp_path``, so no test can touch the real ones."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    mod = importlib.import_module("_results")
    tracked = tmp_path / "benchmarks"
    tracked.mkdir()
    (tracked / "RESULTS.md").write_text(OLD)
    monkeypatch.setattr(mod, "BENCHMARKS", tracked)
    monkeypatch.setattr(mod, "DEFAULT_OUT", tmp_path / "runs" / "benchmarks")
    return mod


def _args(mod, argv):
    ap = argparse.ArgumentParser()
    mod.add_output_args(ap)
    return ap.parse_args(argv)


def test_without_the_flag_the_tracked_results_are_untouched(results, tmp_path):
    out = results.Output(_args(results, ["--out", str(tmp_path / "mine")]))
    out.section("demo", "new text")
    out.figure("f.png").write_bytes(b"png")
    assert (tmp_path / "benchmarks" / "RESULTS.md").read_text() == OLD
    assert not (tmp_path / "benchmarks" / "figures").exists()
    text = (tmp_path / "mine" / "RESULTS.md").read_text()
    assert "<!-- demo:begin -->\nnew text\n<!-- demo:end -->" in text
    assert (tmp_path / "mine" / "figures" / "f.png").read_bytes() == b"png"
    # no --out: the default folder (under runs/, which git ignores); --no-write still parses
    default = results.Output(_args(results, ["--no-write"]))
    default.section("demo", "x")
    assert (tmp_path / "runs" / "benchmarks" / "RESULTS.md").is_file()
    assert (tmp_path / "benchmarks" / "RESULTS.md").read_text() == OLD


def test_with_the_flag_the_section_is_replaced_in_place(results, tmp_path):
    out = results.Output(_args(results, ["--write-results"]))
    out.section("demo", "new text")
    out.figure("f.png").write_bytes(b"png")
    text = (tmp_path / "benchmarks" / "RESULTS.md").read_text()
    assert text == OLD.replace("old text", "new text")
    assert (tmp_path / "benchmarks" / "figures" / "f.png").is_file()
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv", [["--write-results", "--no-write"],
                                  ["--write-results", "--out", "somewhere"]])
def test_contradicting_flags_are_refused(results, argv):
    with pytest.raises(SystemExit):
        results.Output(_args(results, argv))


def test_a_benchmark_script_writes_into_its_output_folder(results, tmp_path):
    """``benchmarks/ibp_prior.py`` at a tiny size: figure and section under ``--out``."""
    ibp_prior = importlib.import_module("ibp_prior")
    ibp_prior.main(["--customers", "4", "--draws", "5", "--out", str(tmp_path / "o")])
    assert (tmp_path / "o" / "figures" / "ibp-prior-predictive.png").is_file()
    assert "<!-- ibp-prior:begin -->" in (tmp_path / "o" / "RESULTS.md").read_text()
    assert (tmp_path / "benchmarks" / "RESULTS.md").read_text() == OLD
    assert not (tmp_path / "benchmarks" / "figures").exists()


def test_the_zoo_collapse_table_keeps_one_row_per_entry_and_setting(results, tmp_path):
    """``benchmarks/zoo_collapse.py`` on the default entry at a tiny budget: each run adds the
    collapse check's figures as a row, a rerun of the same entry and overrides replaces its row,
    and the section lists every row kept."""
    import json

    zoo = importlib.import_module("zoo_collapse")
    names = zoo.checked_entries()
    assert "ard-logreg-digits" in names and "lenet300-sbp" in names
    # a comparison, a search, a hypergradient run and a sampler have no collapse check
    for other in ("logreg-prune-compare", "nas-digits", "hypergrad-l2-lenet", "logreg-digits01"):
        assert other not in names
    with pytest.raises(SystemExit):
        zoo.main(["--entries", "nas-digits", "--out", str(tmp_path / "o")])
    out = tmp_path / "o"
    for epochs in (2, 3, 2):
        zoo.main(["--entries", "ard-logreg-digits", "--set", f"inference.epochs={epochs}",
                  "--out", str(out)])
    rows = json.loads((out / "figures" / "zoo_collapse.json").read_text())
    assert [r["entry"] for r in rows] == ["ard-logreg-digits `inference.epochs=2`",
                                          "ard-logreg-digits `inference.epochs=3`"]
    for r in rows:
        assert 0.0 < r["val_acc"] <= 1.0 and 0.0 < r["plain_val_acc"] <= 1.0
        assert r["n_val"] > 0 and r["epochs"] in (2, 3)
    text = (out / "RESULTS.md").read_text()
    assert "<!-- zoo-collapse:begin -->" in text and text.count("| ard-logreg-digits") == 2
    assert (tmp_path / "benchmarks" / "RESULTS.md").read_text() == OLD
