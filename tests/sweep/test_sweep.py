"""Sweeps end to end: the local pool and a real local Ray instance give the same trials; a
failed trial is recorded and the rest go on; ``--resume`` runs only what is unfinished."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bayesstruct.errors import ConfigError
from bayesstruct.sweep import TIMING, run_sweep

ENTRY = "ard-logreg-digits"
GRID = ["prior.hyper=empirical_bayes,gamma"]
FAST = ["inference.epochs=15", "inference.num_draws=20", "pruning.snr_curve=false"]


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "sweep.csv") as f:
        return {r["trial"]: r for r in csv.DictReader(f)}


def _results(rows: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Every column but the machine's timings and the paths."""
    assert set(TIMING) <= {k for r in rows.values() for k in r} | {"seconds"}
    return {t: {k: v for k, v in r.items() if "seconds" not in k and k != "run_dir"}
            for t, r in rows.items()}


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "local"
    run_sweep(ENTRY, GRID, "0-2", out, executor="local", max_parallel=2, overrides=FAST,
              echo=lambda _m: None)
    return out


def test_local_sweep_writes_every_trial(local_sweep):
    rows = _rows(local_sweep)
    assert len(rows) == 6 and {r["status"] for r in rows.values()} == {"ok"}
    for r in rows.values():
        metrics = json.loads((Path(r["run_dir"]) / "metrics.json").read_text())
        assert float(r["test_acc"]) == metrics["test_acc"]  # the row is the run's own figure
    summary = (local_sweep / "summary.md").read_text()
    assert "| prior.hyper=gamma | 3 / 3 |" in summary
    assert (local_sweep / "sweep.png").stat().st_size > 0
    # seeds differ, so a setting's trials are not copies of one another
    accs = {r["test_acc"] for r in rows.values() if r["prior.hyper"] == "gamma"}
    assert len(accs) > 1


def test_ray_gives_the_same_trials(local_sweep, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    run_sweep(ENTRY, GRID, "0-2", out, executor="ray", max_parallel=2, overrides=FAST,
              echo=lambda _m: None)
    assert _results(_rows(out)) == _results(_rows(local_sweep))


def test_a_failed_trial_is_recorded_and_resume_reruns_only_the_unfinished(tmp_path):
    out = tmp_path / "mixed"
    lines: list[str] = []
    grid = [*GRID, "inference.lr=0.01,1e9"]
    run_sweep(ENTRY, grid, "0", out, max_parallel=2, overrides=FAST, echo=lines.append)
    rows = _rows(out)
    failed = [r for r in rows.values() if r["status"] == "failed"]
    assert len(rows) == 4 and len(failed) == 2  # lr=1e9 diverges; the others finished
    assert all("NonFiniteLossError" in r["error"] for r in failed)
    assert all((Path(r["run_dir"]) / "error.txt").exists() for r in failed)
    assert "2 trial(s) failed" in lines[-1]
    ok = {t: Path(r["run_dir"]) / "metrics.json" for t, r in rows.items()
          if r["status"] == "ok"}
    stamps = {t: p.stat().st_mtime_ns for t, p in ok.items()}
    lines.clear()
    run_sweep(ENTRY, grid, "0", out, max_parallel=2, overrides=FAST, resume=True,
              echo=lines.append)
    assert "2 finished before, 2 to run" in lines[0]
    assert {t: p.stat().st_mtime_ns for t, p in ok.items()} == stamps  # not run again
    assert _results(_rows(out)) == _results(rows)  # the reruns fail the same way


def test_resume_refuses_another_grid_and_a_new_sweep_an_old_folder(local_sweep):
    with pytest.raises(ConfigError, match="other settings"):
        run_sweep(ENTRY, ["prior.hyper=gamma"], "0-2", local_sweep, resume=True,
                  overrides=FAST, echo=lambda _m: None)
    with pytest.raises(ConfigError, match="already holds a sweep"):
        run_sweep(ENTRY, GRID, "0-2", local_sweep, overrides=FAST, echo=lambda _m: None)


def test_invalid_trial_configs_are_refused_before_any_run(tmp_path):
    with pytest.raises(ConfigError,
                       match="(?s)trial prior.kind=nope seed=0: .*prior.kind: unknown"):
        run_sweep(ENTRY, ["prior.kind=ard,nope"], "0", tmp_path / "bad", echo=lambda _m: None)
    assert not (tmp_path / "bad").exists()


def test_unknown_executor_names_the_allowed(tmp_path):
    with pytest.raises(ConfigError, match="allowed: local, ray"):
        run_sweep(ENTRY, GRID, "0", tmp_path / "x", executor="slurm", echo=lambda _m: None)
