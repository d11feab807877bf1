"""The pruning comparison: the variational criterion against magnitude, random, OBD and OBS
pruning of plain networks, each at a list of fractions removed (``bayesstruct compare``, or an
entry with a ``compare:`` section).

    <out>/config.yaml      the resolved run config
    <out>/comparison.csv   method, fraction, removed, acc, nll, seconds (the figure's data)
    <out>/comparison.png   test accuracy against weights removed, one line per method
    <out>/metrics.json     each base's dense test metrics, accuracy at 50/80/90/95/99 %
    <out>/checkpoints/     base-*.pt and rows.json (what --resume reuses)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import torch
from pydantic import Field

from .. import priors, pruning
from ..errors import ConfigError
from ..files import write_json, write_text
from ..inference import SVIConfig
from ..plots import plot_comparison
from ..report import format_table, write_csv
from ..rundir import check_out, open_run_dir
from ..schema import to_yaml
from .base import build_net, load_data, refuse_resume_changes, resolve_device
from .registry import Section, register_experiment

if TYPE_CHECKING:
    from ..config import RunConfig

__all__ = ["COMPARE_METHODS", "CompareConfig", "run_compare"]

COMPARE_METHODS = ("random", "random-retrain", "magnitude-l1", "magnitude-l1-retrain",
                   "magnitude-l2", "magnitude-l2-retrain", "variational", "obd", "obd-retrain",
                   "obs")


class CompareConfig(Section):
    """A pruning comparison (:mod:`bayesstruct.pruning.comparison`).

    ``epochs``, ``lr`` and ``batch_size`` default to the inference recipe's; the variational
    base is trained by the recipe (SVI with the entry's prior)."""

    methods: list[Literal[COMPARE_METHODS]] = [  # type: ignore[valid-type]
        "random", "magnitude-l1", "magnitude-l1-retrain", "magnitude-l2",
        "magnitude-l2-retrain", "variational", "obd", "obs"]
    epochs: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    batch_size: int | None = Field(None, ge=1)
    l1: float = Field(1e-4, ge=0)
    l2: float = Field(1e-4, ge=0)
    retrain_epochs: int = Field(3, ge=1)
    retrain_lr_factor: float = Field(0.1, gt=0, le=1)
    obd_hessian: Literal["exact", "gauss_newton", "hutchinson"] = "exact"
    obs_hessian: Literal["exact", "gauss_newton"] = "gauss_newton"
    hutchinson_samples: int = Field(64, ge=1)
    hessian_examples: int | None = Field(None, ge=1)
    obs_block: int | None = Field(None, ge=1)
    obs_damping: float = Field(0.0, ge=0)
    obs_max_weights: int = Field(20000, ge=1)
    fractions: list[Annotated[float, Field(ge=0, lt=1)]] = [
        0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99]


@register_experiment("compare", section=CompareConfig, resumable=True,
                     writes=("config.yaml", "comparison.csv", "comparison.png", "metrics.json",
                             "checkpoints/"))
def run_compare(cfg: RunConfig, out: str | Path, *, methods: list[str] | None = None,
                resume: bool = False, progress: bool = True,
                echo: Callable[[str], Any] = print, init_from: None = None) -> dict[str, Any]:
    """The pruning comparison of ``cfg`` (its ``compare`` section, or the defaults) into ``out``.

    The plain bases train with ``compare.epochs/lr/batch_size`` (default: the recipe's), the
    variational base by the recipe (SVI, mean-field guide) with the entry's prior.
    """
    from ..config import validate  # config builds its model from this package's registry

    cc = cfg.compare or CompareConfig()
    if methods is not None:
        cc = validate(CompareConfig, {**cc.model_dump(), "methods": methods}, "--methods")
    cfg = cfg.model_copy(update={"compare": cc})
    out = check_out(out, resume)
    if resume:
        refuse_resume_changes(cfg, out)
    inf = cfg.inference
    if not isinstance(inf, SVIConfig):
        raise ConfigError(f"compare trains its bases with an SVI recipe's epochs, lr and "
                          f"batch_size; recipe {cfg.recipe!r} has engine {inf.engine!r} (use "
                          "--inference svi-meanfield)")
    if "variational" in cc.methods and inf.guide != "meanfield":
        raise ConfigError(f"method 'variational' needs the meanfield guide; recipe "
                          f"{cfg.recipe!r} has guide {inf.guide!r} (use --inference "
                          "svi-meanfield or drop 'variational' from the methods)")
    device = resolve_device(cfg)
    ds = load_data(cfg, device)
    settings = pruning.CompareSettings(
        epochs=cc.epochs or inf.epochs, lr=cc.lr or inf.lr,
        batch_size=cc.batch_size or inf.batch_size, l1=cc.l1, l2=cc.l2,
        retrain_epochs=cc.retrain_epochs, retrain_lr_factor=cc.retrain_lr_factor,
        obd_hessian=cc.obd_hessian, obs_hessian=cc.obs_hessian,
        hutchinson_samples=cc.hutchinson_samples, hessian_examples=cc.hessian_examples,
        obs_block=cc.obs_block, obs_damping=cc.obs_damping, obs_max_weights=cc.obs_max_weights,
        svi_epochs=inf.epochs, svi_lr=inf.lr, init_scale=inf.init_scale,
        kl_warmup_epochs=inf.kl_warmup_epochs, num_draws=min(inf.num_draws, 20),
        fractions=tuple(cc.fractions), seed=cfg.seed)
    prior = priors.from_config(cfg.prior)

    def make_net() -> torch.nn.Module:
        return build_net(cfg, ds)

    try:
        pruning.check_methods(make_net(), cc.methods, settings)
    except ValueError as e:
        raise ConfigError(f"compare: {e}") from None
    with open_run_dir(out, resume):
        write_text(out / "config.yaml", to_yaml(cfg))

        echo(f"{cfg.name}: pruning comparison, {cfg.net.kind} on {cfg.data.name} "
             f"({len(ds.train)} train / {len(ds.test)} test), methods {', '.join(cc.methods)}")
        t0 = time.perf_counter()
        res = pruning.compare(make_net, ds, cc.methods, settings, prior=prior, device=device,
                              progress=progress, checkpoint_dir=out / "checkpoints", echo=echo)
        write_csv(res.rows, out / "comparison.csv")
        plot_comparison(res.rows, out / "comparison.png",
                        title=f"{cfg.name}: {cfg.net.kind} on {cfg.data.name} (test accuracy)")
        table = res.table()
        header = ["method"] + [f"{100 * f:g}% removed" for f in pruning.TABLE_FRACTIONS]
        echo("")
        echo(format_table([[m] + [f"{100 * a:.2f}" for a in accs.values()]
                           for m, accs in table.items()], header))
        metrics = {
            "entry": cfg.name,
            "dataset": cfg.data.name,
            "net": cfg.net.kind,
            "methods": list(cc.methods),
            "bases": res.bases,
            "test_acc_at": {m: {f"{f:g}": a for f, a in accs.items()} for m, accs in table.items()},
            "settings": {k: list(v) if isinstance(v, tuple) else v
                         for k, v in asdict(settings).items()},
            "seconds": time.perf_counter() - t0,
            "device": str(device),
        }
        write_json(out / "metrics.json", metrics)
        echo(f"\nrun directory: {out} (comparison.csv, comparison.png, metrics.json)")
        return metrics

