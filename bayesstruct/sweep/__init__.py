"""Sweeps: a grid of settings times seeds, one independent run per trial.

    bayesstruct sweep ard-logreg-digits --grid prior.hyper=empirical_bayes,gamma --seeds 0-4

writes, under ``--out DIR``:

    DIR/sweep.json        what the sweep is (entry, recipe, grid, seeds, fixed overrides);
                          ``--resume`` refuses another
    DIR/trials/ID/        each trial's run directory (what ``bayesstruct run`` writes)
    DIR/sweep.csv         one row per trial: settings, seed, status, seconds, error, and the
                          numbers of its ``metrics.json`` (rewritten as each trial finishes)
    DIR/summary.md        per setting: trials ok / run, mean ± sd over the seeds
    DIR/sweep.png         the main metric per setting: seeds as dots, mean ± sd

A trial that fails (a diverged loss, a crash) is recorded with its error (and its traceback in
``trials/ID/error.txt``) and the others go on; ``--resume`` runs only the trials without a
``metrics.json`` (an interrupted trial continues from its last checkpoint). Trials run on an
executor (:mod:`~bayesstruct.sweep.executors`): a local process pool, or Ray.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files import write_json, write_text
from .executors import EXECUTORS, Executor, get_executor, register_executor
from .grid import Trial, parse_grid, parse_seeds, trials
from .summary import summarise, summary_table, write_figure, write_rows
from .trial import TIMING, finished, run_trial, scalar_metrics

__all__ = ["EXECUTORS", "SPEC", "Executor", "SUMMARY_METRICS", "TIMING", "Trial", "get_executor",
           "parse_grid", "parse_seeds", "register_executor", "run_sweep", "run_trial",
           "trials"]

SPEC = "sweep.json"
# the summary's columns, where the trials' metrics have them
SUMMARY_METRICS = ("test_acc", "test_acc_pruned", "fraction_removed", "test_nll")


def _spec(entry: str, inference: str | None, grid: list, seeds: list[int],
          overrides: Sequence[str]) -> dict[str, Any]:
    return {"entry": entry, "inference": inference, "grid": [[k, v] for k, v in grid],
            "seeds": seeds, "set": list(overrides)}


def _check_out(out: Path, spec: dict[str, Any], resume: bool) -> None:
    path = out / SPEC
    if resume:
        if not path.exists():
            raise ConfigError(f"nothing to resume: {path} does not exist")
        old = json.loads(path.read_text())
        changed = [f"{k}: {old.get(k)!r} -> {spec[k]!r}" for k in spec if old.get(k) != spec[k]]
        if changed:
            raise ConfigError(f"--resume: the sweep in {out} was started with other settings ("
                              + "; ".join(changed) + "); resume it as it was or choose another "
                              "--out")
    elif path.exists():
        raise ConfigError(f"{out} already holds a sweep; pass --resume to finish it or choose "
                          "another --out")
    elif out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"--out {out} is not empty and holds no sweep; choose a new or empty "
                          "folder so nothing of yours is overwritten")


def run_sweep(entry: str, grid: Sequence[str], seeds: str | Sequence[int], out: str | Path, *,
              executor: str = "local", max_parallel: int | None = None,
              address: str | None = None, resume: bool = False,
              inference: str | None = None, overrides: Sequence[str] = (),
              metric: str = "test_acc", echo: Callable[[str], Any] = print
              ) -> list[dict[str, Any]]:
    """Run every trial of ``grid`` x ``seeds`` on ``entry`` into ``out`` (module docstring);
    return the rows of ``sweep.csv``.

    Args:
        grid: ``["key=v1,v2", ...]`` (:func:`parse_grid`); ``[]`` sweeps the seeds only.
        seeds: ``"0-4"``, ``"0,3"`` or a list of ints.
        executor: ``"local"`` or ``"ray"`` (:data:`EXECUTORS`), with ``max_parallel`` trials
            at a time and, for Ray, an existing cluster's ``address``.
        overrides: ``--set`` values every trial gets.
        metric: the figure's metric (a key of the trials' ``metrics.json``).

    Raises:
        ConfigError: a malformed grid or seed list, a trial whose config is invalid (every
            trial is resolved before any runs), an ``out`` that holds something else.
    """
    from ..config import resolve

    out = Path(out)
    parsed = parse_grid(list(grid))
    seed_list = parse_seeds(seeds) if isinstance(seeds, str) else [int(s) for s in seeds]
    if not seed_list:
        raise ConfigError("--seeds: no seed given")
    todo = trials(parsed, seed_list, list(overrides))
    for t in todo:  # bad input is refused before any trial runs
        try:
            resolve(entry, inference, t.set_args())
        except ConfigError as e:
            raise ConfigError(f"trial {t.setting} seed={t.seed}: {e}") from None
    spec = _spec(entry, inference, parsed, seed_list, overrides)
    _check_out(out, spec, resume)
    runner = get_executor(executor, max_parallel=max_parallel, address=address)
    write_json(out / SPEC, spec)
    keys = [k for k, _ in parsed]

    rows: dict[int, dict[str, Any]] = {}
    tasks = []
    for i, t in enumerate(todo):
        run_dir = out / "trials" / t.id
        base = {"trial": t.id, "setting": t.setting, "seed": t.seed, "run_dir": str(run_dir),
                **dict(t.settings)}
        done = finished(run_dir) if resume else None
        if done is not None:
            rows[i] = {**base, "status": "ok", "seconds": None, "error": "",
                       **scalar_metrics(done)}
        else:
            rows[i] = {**base, "status": "pending", "seconds": None, "error": ""}
            tasks.append((i, {"entry": entry, "inference": inference, "set": t.set_args(),
                              "out": str(run_dir), "threads": 1, "resume": resume}))
    skipped = len(todo) - len(tasks)
    echo(f"sweep of {entry}: {len(todo)} trials ({len(todo) // len(seed_list)} setting(s) x "
         f"{len(seed_list)} seed(s)) on {runner.describe()}"
         + (f"; {skipped} finished before, {len(tasks)} to run" if resume else ""))

    def save() -> None:
        write_rows([rows[i] for i in sorted(rows)], out / "sweep.csv", keys)

    save()
    for n, (i, outcome) in enumerate(runner.map(run_trial, tasks), start=1):
        row = rows[i]
        row.update(status=outcome["status"], seconds=outcome.get("seconds"),
                   error=outcome.get("error", ""), **outcome.get("metrics", {}))
        if outcome["status"] != "ok" and outcome.get("traceback"):
            write_text(Path(row["run_dir"]) / "error.txt", outcome["traceback"])
        save()
        value = row.get(metric)
        shown = (f"{metric} {value:.4g}" if isinstance(value, int | float)
                 else row["error"] if row["status"] != "ok" else "")
        secs = f" ({row['seconds']:.0f} s)" if row["seconds"] is not None else ""
        echo(f"[{n}/{len(tasks)}] {row['setting']} seed={row['seed']}: {row['status']}"
             f"{secs} {shown}".rstrip())

    ordered = [rows[i] for i in sorted(rows)]
    metrics = [m for m in dict.fromkeys([metric, *SUMMARY_METRICS])
               if any(isinstance(r.get(m), int | float) for r in ordered)]
    summary = summarise(ordered, metrics)
    table = summary_table(summary, metrics)
    failed = sum(r["status"] != "ok" for r in ordered)
    write_text(out / "summary.md", f"# Sweep of {entry}\n\nMean ± sample sd over seeds "
               f"{seeds if isinstance(seeds, str) else seed_list}; {failed} trial(s) failed "
               "(sweep.csv has their errors).\n\n"
               + summary_table(summary, metrics, markdown=True) + "\n")
    fig = (write_figure(ordered, summary, metric, out / "sweep.png", f"{entry}: {metric}")
           if metric in metrics else None)
    echo("\n" + table)
    echo(f"\n{out / 'sweep.csv'}, {out / 'summary.md'}"
         + (f", {fig}" if fig else "") + (f"; {failed} trial(s) failed" if failed else ""))
    return ordered
