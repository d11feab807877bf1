"""Hyperparameters by hypergradients from a catalog entry (an entry with a ``hypergrad:``
section): L2 coefficients of a network, or the RBF width of kernel logistic regression
(:mod:`~bayesstruct.experiments.hypergrad_tasks`).

    <out>/config.yaml      the resolved run config
    <out>/hypergrad.csv    the table (one row per regularisation mode, or before / after)
    <out>/hypergrad.png    the validation loss (l2) or the kernel width (kernel_width) over
                           the outer loop
    <out>/metrics.json     the table and the outer loop's history
    <out>/history.csv      the outer loop's rows (one per outer step; ``mode`` names the
                           regularisation mode of each)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from .. import logs
from ..errors import ConfigError
from ..files import write_json, write_text
from ..plots import save_figure
from ..report import format_table, write_csv
from ..rundir import open_run_dir
from ..schema import to_yaml
from . import hypergrad_tasks as tasks
from .base import build_net, new_experiment
from .registry import Section, register_experiment

if TYPE_CHECKING:
    from ..config import RunConfig

__all__ = ["HypergradConfig", "run_hypergrad"]


class HypergradConfig(Section):
    """A hypergradient experiment. ``l2``: no / one shared / one-per-parameter L2 coefficient
    on the entry's net, ``epochs_weights`` epochs with the coefficients fixed, then
    ``epochs_hyper`` epochs of the greedy loop (a ``k``-step unrolled hypergradient every
    ``k`` steps). ``kernel_width``: kernel logistic regression with the RBF width learned by
    the honest loop (Newton inner solves, implicit hypergradient by CG); it needs no net and
    no prior."""

    experiment: Literal["l2", "kernel_width"]
    # -- l2
    modes: list[Literal["none", "shared", "individual"]] = ["none", "shared", "individual"]
    epochs_weights: int = Field(20, ge=0)
    epochs_hyper: int = Field(20, ge=1)
    k: int = Field(10, ge=1)
    hyper_lr: float = Field(0.05, gt=0)
    init_decay: float = Field(1e-4, gt=0)
    optimizer: Literal["sgd", "momentum", "adam"] = "adam"
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(128, ge=1)
    # -- kernel_width
    width0: float = Field(50.0, gt=0)
    c: float = Field(1e-2, gt=0)
    jitter: float = Field(1e-2, gt=0)
    outer_steps: int = Field(60, ge=1)
    inner_tol: float = Field(1e-9, gt=0)

    def required(self) -> frozenset[str]:
        return frozenset() if self.experiment == "kernel_width" else frozenset({"net"})


@register_experiment("hypergrad", section=HypergradConfig,
                     writes=("config.yaml", "hypergrad.csv", "hypergrad.png", "metrics.json",
                             "history.csv"))
def run_hypergrad(cfg: RunConfig, out: str | Path, *, resume: bool = False,
                  progress: bool = True, echo: Callable[[str], Any] = print,
                  init_from: None = None) -> dict[str, Any]:
    """Run an entry's ``hypergrad`` experiment into ``out``."""
    out, device, ds = new_experiment(cfg, out)
    hc = cfg.hypergrad
    if hc.experiment == "kernel_width" and ds.n_classes != 2:
        raise ConfigError(f"hypergrad.experiment: kernel_width is two-class kernel logistic "
                          f"regression; data {cfg.data.name!r} has {ds.n_classes} classes")
    with open_run_dir(out, False):
        write_text(out / "config.yaml", to_yaml(cfg))
        echo(f"{cfg.name}: hypergradient experiment {hc.experiment!r} on {cfg.data.name} "
             f"({len(ds.train)} train / {len(ds.val)} val / {len(ds.test)} test)")
        if hc.experiment == "kernel_width":
            r = tasks.klr_experiment(ds.train, ds.val, ds.test, width0=hc.width0, c=hc.c,
                                     jitter=hc.jitter, outer_steps=hc.outer_steps,
                                     hyper_lr=hc.hyper_lr, inner_tol=hc.inner_tol,
                                     progress=progress)
            rows = [{"metric": "cross-entropy", "before": r.ce_before, "after": r.ce_after},
                    {"metric": "AUC", "before": r.auc_before, "after": r.auc_after}]
            metrics = {"entry": cfg.name, "experiment": hc.experiment,
                       "width_before": r.width_before, "width_after": r.width_after,
                       "test": rows, "history": r.history}
            plot_history(r.history, "lam_mean", "log kernel width", out / "hypergrad.png",
                         f"{cfg.name}: the RBF width learned by the honest loop")
            echo(format_table([[x["metric"], x["before"], x["after"]] for x in rows],
                              ["test", f"width {r.width_before:g}",
                               f"learned {r.width_after:.3g}"]))
        else:
            rows, histories = [], {}
            for mode in hc.modes:
                with logs.phase(f"regularisation mode {mode!r}"):
                    r = tasks.l2_experiment(
                        lambda: build_net(cfg, ds, pairs=False), ds.train, ds.val, ds.test,
                        mode, epochs_weights=hc.epochs_weights, epochs_hyper=hc.epochs_hyper,
                        batch_size=hc.batch_size, lr=hc.lr, k=hc.k, hyper_lr=hc.hyper_lr,
                        init_decay=hc.init_decay, optimizer=hc.optimizer, seed=cfg.seed,
                        device=device, progress=progress)
                rows.append({"mode": mode, "test_ce": r.test_ce, "one_minus_auc": r.one_minus_auc,
                             "test_acc": r.test_acc, "lam_mean": r.lam_mean, "lam_std": r.lam_std,
                             "seconds": r.seconds})
                histories[mode] = r.history
            metrics = {"entry": cfg.name, "experiment": hc.experiment, "test": rows,
                       "history": histories}
            if any(histories.values()):
                plot_history(histories, "val_loss", "validation cross-entropy",
                             out / "hypergrad.png", f"{cfg.name}: the greedy loop")
            echo(format_table([[x["mode"], x["test_ce"], x["one_minus_auc"], x["test_acc"]]
                               for x in rows],
                              ["regularisation", "test CE", "1 - AUC", "test acc"]))
        write_csv(rows, out / "hypergrad.csv")
        hist = metrics["history"]
        logs.History(out / logs.HISTORY, [{"mode": m, **row} for m, h in hist.items() for row in h]
                     if isinstance(hist, dict) else hist, tensorboard=lambda _: None).close()
        write_json(out / "metrics.json", metrics)
        echo(f"\nrun directory: {out}")
        return metrics


def plot_history(history: list[dict] | dict[str, list[dict]], key: str, label: str, path: Path,
                 title: str) -> Path:
    """One line of ``key`` per series of outer-loop rows (a list, or a dict of named lists)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = history if isinstance(history, dict) else {"": history}
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for name, rows in series.items():
        if rows:
            x = [r.get("step", r.get("outer")) for r in rows]
            ax.plot(x, [r[key] for r in rows], label=name or None)
    ax.set(xlabel="inner step" if "step" in next(r for r in series.values() if r)[0]
           else "outer step", ylabel=label)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return save_figure(fig, path, title)
