"""Bayesian architecture search from a catalog entry (an entry with a ``nas:`` section): each
searcher searches the cell space on the training split (weights) and the validation split
(structure / selection) for each seed; the derived cell is retrained from scratch with
``retrain_channels`` channels and scored on the test split (:mod:`bayesstruct.nas`).

    <out>/config.yaml      the resolved run config
    <out>/nas.csv          one row per searcher and seed, written as each finishes
    <out>/nas.png          the spread over seeds and the stability under logit noise
    <out>/metrics.json     the per-searcher summary and every run
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from .. import logs
from .. import nas as nas_mod
from ..errors import ConfigError
from ..files import write_json, write_text
from ..report import format_table, write_csv
from ..rundir import open_run_dir
from ..schema import Seed, to_yaml
from .base import new_experiment
from .registry import Section, register_experiment

if TYPE_CHECKING:
    from ..config import RunConfig

__all__ = ["NasConfig", "run_nas"]

_NAS_OPS = Literal["conv_3x3", "sep_conv_3x3", "conv_5x5", "dil_conv_3x3", "max_pool_3x3",
                  "avg_pool_3x3", "skip_connect", "none"]


class NasConfig(Section):
    """An architecture search: ``searchers`` x ``seeds`` searches of the cell space (``ops``,
    ``n_nodes``, ``n_cells``, ``channels``), each derived cell retrained with
    ``retrain_channels`` channels for ``retrain_epochs``. The space is this section: the
    entry needs no ``net`` and no ``prior``."""

    needs: ClassVar[frozenset[str]] = frozenset()

    searchers: list[Literal["darts", "darts2", "vardarts", "random", "spos"]] = [
        "darts", "vardarts", "random", "spos"]
    seeds: list[Seed] = [0, 1, 2]
    # -- the space
    ops: list[_NAS_OPS] = ["conv_3x3", "conv_5x5", "dil_conv_3x3", "max_pool_3x3",
                           "avg_pool_3x3", "skip_connect", "none"]
    n_nodes: int = Field(4, ge=1)
    n_cells: int = Field(1, ge=1, le=4)
    channels: int = Field(8, ge=1)
    stem_stride: int = Field(2, ge=1, le=4)
    # -- search
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(3e-3, gt=0)
    arch_lr: float = Field(1e-2, gt=0)
    prior: Literal["uniform", "dirichlet"] = "uniform"
    concentration: float = Field(1.0, gt=0)
    temperature: float = Field(1.0, gt=0)
    temperature_final: float = Field(0.2, gt=0)
    random_samples: int = Field(10, ge=1)
    random_epochs: int = Field(2, ge=1)
    spos_candidates: int = Field(50, ge=1)
    # -- retraining
    retrain_channels: int = Field(16, ge=1)
    retrain_epochs: int = Field(8, ge=1)


@register_experiment("nas", section=NasConfig,
                     writes=("config.yaml", "nas.csv", "nas.png", "metrics.json"))
def run_nas(cfg: RunConfig, out: str | Path, *, resume: bool = False, progress: bool = True,
            echo: Callable[[str], Any] = print, init_from: None = None) -> dict[str, Any]:
    """Run an entry's ``nas`` experiment into ``out``."""
    out, device, ds = new_experiment(cfg, out)
    nc = cfg.nas
    if len(ds.input_shape) != 3:
        raise ConfigError(f"nas searches convolutional cells and needs image data (C, H, W); "
                          f"data {cfg.data.name!r} has input shape {ds.input_shape}")
    space = nas_mod.SearchSpace(ops=tuple(nc.ops), n_nodes=nc.n_nodes, n_cells=nc.n_cells,
                                channels=nc.channels, stem_stride=nc.stem_stride)
    wide = replace(space, channels=nc.retrain_channels)
    settings = nc.model_dump(include={"epochs", "batch_size", "lr", "arch_lr", "prior",
                                      "concentration", "temperature", "temperature_final",
                                      "random_samples", "random_epochs", "spos_candidates"})
    with open_run_dir(out, False):
        write_text(out / "config.yaml", to_yaml(cfg))
        echo(f"{cfg.name}: architecture search ({', '.join(nc.searchers)}; seeds {nc.seeds}) on "
             f"{cfg.data.name} ({len(ds.train)} train / {len(ds.val)} val / {len(ds.test)} test), "
             f"{space.n_architectures:.3g} cells in the space")
        rows, runs = [], {}
        for seed in nc.seeds:
            for name in nc.searchers:
                with logs.phase(f"{name} seed {seed}: search"):
                    found = nas_mod.build_searcher(name, **settings).search(
                        ds, space, seed=seed, device=device, progress=progress)
                with logs.phase(f"{name} seed {seed}: retraining the derived cell "
                                f"({nc.retrain_epochs} epochs)"):
                    score = nas_mod.retrain(found.genotype, wide, ds, epochs=nc.retrain_epochs,
                                            lr=nc.lr, seed=seed, device=device,
                                            progress=progress)
                rows.append({"searcher": name, "seed": seed, "test_acc": score.test_acc,
                             "val_acc": score.val_acc, "params": score.n_params,
                             "search_s": found.seconds, "retrain_s": score.seconds,
                             "genotype": str(found.genotype)})
                runs.setdefault(name, []).append(
                    {"seed": seed, "test_acc": score.test_acc, "genotype": found.genotype,
                     "logits": None if found.logits is None else found.logits.tolist()})
                write_csv(rows, out / "nas.csv")
                echo(f"  {name} seed {seed}: test {100 * score.test_acc:.2f}%, search "
                     f"{found.seconds:.1f} s, {score.n_params} parameters, cell {found.genotype}")
        summary = []
        for name, rs in runs.items():
            acc = np.array([100 * r["test_acc"] for r in rs])
            mine = [r for r in rows if r["searcher"] == name]
            change = nas_mod.cross_seed_change([r["genotype"] for r in rs])
            summary.append({
                "searcher": name, "seeds": len(rs), "test_acc_mean": float(acc.mean()),
                # one seed has no spread and nothing to compare with: null, not NaN
                "test_acc_sd": float(acc.std(ddof=1)) if len(acc) > 1 else None,
                "search_s_mean": float(np.mean([r["search_s"] for r in mine])),
                "params_mean": float(np.mean([r["params"] for r in mine])),
                "cross_seed_change": float(change) if len(rs) > 1 else None})
        nas_mod.plot_stability(runs, space, [0.1, 0.3, 1.0], out / "nas.png")
        metrics = {"entry": cfg.name, "experiment": "nas", "summary": summary, "runs": rows}
        write_json(out / "metrics.json", metrics)
        echo(summary_table(summary))
        echo("\n" + budget_note(nc, len(ds.train), len(ds.val)))
        echo(f"\nrun directory: {out}")
        return metrics


def summary_table(summary: list[dict[str, Any]]) -> str:
    """The per-searcher table: accuracies in % to 2 decimals, the parameter count as an integer
    (a mean over seeds, rounded), and ``n/a (1 seed)`` where one seed gives no spread and no
    second cell to compare with."""
    def one_seed(value: float | None, fmt: str) -> str:
        return "n/a (1 seed)" if value is None else format(value, fmt)

    return format_table([[s["searcher"], f"{s['test_acc_mean']:.2f}",
                          one_seed(s["test_acc_sd"], ".2f"), f"{s['search_s_mean']:.1f}",
                          f"{round(s['params_mean']):d}", one_seed(s["cross_seed_change"], ".2f")]
                         for s in summary],
                        ["searcher", "test top-1 %", "sd over seeds", "search s", "params",
                         "cell change across seeds"])


def budget_note(nc: NasConfig, n_train: int, n_val: int) -> str:
    """What the run's budget is, in words: the accuracies above belong to it, not to the cells'
    capacity, and are not comparable with full-budget figures quoted elsewhere."""
    batch = nas_mod.retrain.__kwdefaults__["batch_size"]
    steps = math.ceil(n_train / batch) * nc.retrain_epochs
    text = (f"budget: search {nc.epochs} epoch(s) on {n_train} training / {n_val} validation "
            f"images; each derived cell retrained from scratch with {nc.retrain_channels} "
            f"channels for {nc.retrain_epochs} epoch(s) (about {steps} Adam steps of {batch} "
            "images). The test accuracies are those of networks trained for this budget only: "
            "they are not comparable with published top-1 figures for these searchers, which "
            "come from full-budget runs (hundreds of retraining epochs on a GPU).")
    if steps < 300:
        text += (" With this few steps they rank under-trained networks, not the cells: raise "
                 "nas.retrain_epochs for a converged retrain.")
    return textwrap.fill(text, width=92)
