"""The pruning comparison: every baseline on one plot.

:func:`compare` trains each *base* network once -- plain Adam with an L2 penalty, with an L1
penalty, and a mean-field Gaussian posterior by SVI -- and sweeps each method's scores over the
fractions of weights removed (:func:`~bayesstruct.pruning.baselines.sweep`):

========================  ==========  ==================================================
method                    base        what is removed
========================  ==========  ==================================================
``random``                L2          uniformly random weights (seeded)
``magnitude-l1``          L1          smallest ``|w|``
``magnitude-l2``          L2          smallest ``|w|``
``variational``           SVI         largest ``rho`` (smallest ``|mu / sigma|``), Graves 2011
``obd``                   L2          smallest ``H_ii w_i^2 / 2``, LeCun et al. 1990
``obs``                   L2          smallest ``w_q^2 / (2 [H^-1]_qq)`` + update, Hassibi & Stork
``<method>-retrain``      as above    the same, pruned iteratively and retrained at a lower
                                      learning rate with the mask held (Han et al. 2015);
                                      for random, magnitude-l1/l2 and obd
========================  ==========  ==================================================

The variational network is evaluated at its posterior mean, every other one at its weights.
"""

from __future__ import annotations

import json
import math
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..data import Dataset
from ..errors import NonFiniteLossError
from ..files import load_checkpoint, save_checkpoint, write_text
from ..training.plain import evaluate_net, train_plain, weight_names
from .baselines import magnitude_scores, obd_scores, obs_scores, random_scores, sweep
from .curve import DEFAULT_FRACTIONS
from .density import log_relative_density
from .hessian import EXACT_DIAG_MAX, softmax_regression
from .units import mean_network

__all__ = ["DEFAULT_METHODS", "METHODS", "TABLE_FRACTIONS", "CompareSettings", "Comparison",
           "check_methods", "compare", "table_at"]

METHODS: tuple[str, ...] = ("random", "random-retrain", "magnitude-l1", "magnitude-l1-retrain",
                            "magnitude-l2", "magnitude-l2-retrain", "variational", "obd",
                            "obd-retrain", "obs")
DEFAULT_METHODS: tuple[str, ...] = ("random", "magnitude-l1", "magnitude-l1-retrain",
                                    "magnitude-l2", "magnitude-l2-retrain", "variational", "obd",
                                    "obs")
TABLE_FRACTIONS: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95, 0.99)


def _base(method: str) -> str:
    if method == "variational":
        return "svi"
    return "l1" if method.startswith("magnitude-l1") else "l2"


@dataclass(frozen=True)
class CompareSettings:
    """Training and method settings of a comparison (all methods share the data and init).

    ``l1``/``l2`` are the penalties of the two plain bases (``mean CE + l1 |W|_1 + l2/2 |W|^2``);
    retraining runs ``retrain_epochs`` at ``lr * retrain_lr_factor`` per fraction. The
    variational base uses ``svi_epochs`` / ``svi_lr`` (default: ``epochs`` / ``lr``).
    ``obs_hessian`` defaults to the Gauss-Newton matrix: positive semi-definite (so OBS's
    inverse exists with any ``l2 > 0`` or ``obs_damping > 0``) and equal to the Hessian for
    logistic regression; an MLP's exact Hessian is usually indefinite away from a strict minimum.
    """

    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 128
    l1: float = 1e-4
    l2: float = 1e-4
    retrain_epochs: int = 3
    retrain_lr_factor: float = 0.1
    obd_hessian: str = "exact"
    obs_hessian: str = "gauss_newton"
    hutchinson_samples: int = 64
    hessian_examples: int | None = None
    obs_block: int | None = None
    obs_damping: float = 0.0
    obs_max_weights: int = 20000
    svi_epochs: int | None = None
    svi_lr: float | None = None
    init_scale: float = 1e-3
    kl_warmup_epochs: float | str = "auto"
    num_draws: int = 20
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    seed: int = 0


@dataclass
class Comparison:
    """The rows behind the figure (``method, fraction, removed, acc, nll, seconds``), the
    dense test metrics of each base and its training time."""

    rows: list[dict] = field(default_factory=list)
    bases: dict[str, dict[str, float]] = field(default_factory=dict)

    def table(self, fractions: Sequence[float] = TABLE_FRACTIONS) -> dict[str, dict[float, float]]:
        return table_at(self.rows, fractions)


def table_at(rows: Sequence[dict], fractions: Sequence[float] = TABLE_FRACTIONS
             ) -> dict[str, dict[float, float]]:
    """``method -> {fraction: test accuracy}`` at the requested fractions (``nan`` if absent)."""
    out: dict[str, dict[float, float]] = {}
    for r in rows:
        out.setdefault(r["method"], {f: float("nan") for f in fractions})
        for f in fractions:
            if abs(r["fraction"] - f) < 1e-9:
                out[r["method"]][f] = r["acc"]
    return out


def _check_settings(s: CompareSettings) -> None:
    """The settings' ranges, before any training (the argument, its value, what is allowed)."""
    for name in ("epochs", "lr", "batch_size", "retrain_epochs", "retrain_lr_factor",
                 "init_scale", "num_draws", "hutchinson_samples"):
        v = getattr(s, name)
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (
                math.isfinite(v) and v > 0):
            raise ValueError(f"need {name} > 0, a finite number (got {name}={v!r})")
    for name in ("svi_epochs", "svi_lr"):
        v = getattr(s, name)
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ValueError(f"need {name} > 0 or None (got {name}={v!r})")
    for name in ("l1", "l2", "obs_damping", "kl_warmup_epochs"):
        v = getattr(s, name)
        if name == "kl_warmup_epochs" and v == "auto":
            continue
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"need {name} >= 0, a finite number (got {name}={v!r})")
    bad = [f for f in s.fractions if not 0.0 <= f <= 1.0]
    if bad or not s.fractions:
        raise ValueError(f"fractions must be in [0, 1] (got fractions={tuple(s.fractions)})")


def check_methods(net: nn.Module, methods: Sequence[str], settings: CompareSettings) -> None:
    """Refuse, before any training, what cannot run: unknown names, OBS beyond
    ``obs_max_weights``, an exact OBD diagonal of a large non-linear model."""
    _check_settings(settings)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; allowed: {', '.join(METHODS)}")
    if not methods:
        raise ValueError(f"no methods given; allowed: {', '.join(METHODS)}")
    p = sum(dict(net.named_parameters())[n].numel() for n in weight_names(net))
    if "obs" in methods and p > settings.obs_max_weights:
        raise ValueError(f"method 'obs' needs a {p}x{p} inverse Hessian; the limit is "
                         f"obs_max_weights={settings.obs_max_weights} weights (raise it if "
                         "memory allows, or drop 'obs')")
    if (any(m.startswith("obd") for m in methods) and settings.obd_hessian == "exact"
            and softmax_regression(net) is None and p > EXACT_DIAG_MAX):
        raise ValueError(f"obd_hessian 'exact' on a non-linear model of {p} weights (limit "
                         f"{EXACT_DIAG_MAX}); use obd_hessian 'gauss_newton' or 'hutchinson'")


def _diverged(what: str, e: NonFiniteLossError, ckpt: Path | None) -> NonFiniteLossError:
    """``e`` with the comparison's context: which base or method, and what is kept on disk."""
    kept = sorted(p.name for p in ckpt.glob("base-*.pt")) if ckpt is not None else []
    if ckpt is not None and (ckpt / "rows.json").exists():
        kept.append("rows.json")
    where = (f"the finished bases and methods are kept in {ckpt} ({', '.join(kept)}) and a "
             "repeated call reuses them" if kept else "no comparison checkpoint was written")
    return NonFiniteLossError(f"pruning comparison, {what}: {e} ({where})")


def compare(make_net: Callable[[], nn.Module], ds: Dataset,
            methods: Sequence[str] = DEFAULT_METHODS, settings: CompareSettings | None = None,
            *, prior=None, device: str | torch.device = "cpu", progress: bool = True,
            checkpoint_dir: str | Path | None = None,
            echo: Callable[[str], object] = print) -> Comparison:
    """Train the bases the ``methods`` need and sweep every method (module docstring).

    Args:
        make_net: builds the plain network (called under ``torch.manual_seed(seed)``, so every
            base starts from the same weights).
        ds: the data; bases train on ``ds.train``, Hessians use ``ds.train``, curves
            ``ds.test``.
        prior (Prior | None): the prior of the variational base (default ``Gaussian()``).
        checkpoint_dir: where each trained base (``base-<name>.pt``, ``weights_only``
            loadable) and each finished method's rows (``rows.json``) are kept; a repeated call
            with the same directory reuses them (resume after an interruption; a base whose
            methods have all finished is not even loaded).

    Raises:
        NonFiniteLossError: a base or a retraining diverged; the message names it and the
            checkpoints already written, which are left as they were.
    """
    from ..guides import MeanField
    from ..inference.svi import svi
    from ..models import BayesianNet
    from ..priors import Gaussian

    s = settings or CompareSettings()
    check_methods(make_net(), methods, s)
    device = torch.device(device)
    ds = ds.to(device)
    fractions = sorted(s.fractions)
    result = Comparison()
    nets: dict[str, nn.Module] = {}
    var_scores = None

    def fresh() -> nn.Module:
        torch.manual_seed(s.seed)
        return make_net().to(device)

    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    done: dict[str, list[dict]] = {}
    if ckpt is not None:
        ckpt.mkdir(parents=True, exist_ok=True)
        if (ckpt / "rows.json").exists():
            saved = json.loads((ckpt / "rows.json").read_text())
            done, result.bases = saved["rows"], saved["bases"]
    for base in dict.fromkeys(_base(m) for m in methods if m not in done):
        t0 = time.perf_counter()
        path = ckpt / f"base-{base}.pt" if ckpt is not None else None
        if path is not None and path.exists():
            saved = load_checkpoint(path, map_location=device)
            nets[base] = fresh()
            nets[base].load_state_dict(saved["net"])
            if base == "svi":
                var_scores = {k: v.numpy(force=True) for k, v in saved["scores"].items()}
            result.bases[base] = {**evaluate_net(nets[base], ds.test),
                                  "seconds": float(saved["seconds"])}
            echo(f"base {base}: loaded from {path}")
            continue
        try:
            if base == "svi":
                model = BayesianNet(fresh(), prior if prior is not None else Gaussian(),
                                    "categorical", num_data=len(ds.train))
                post = svi(model, MeanField(init_scale=s.init_scale), ds,
                           epochs=s.svi_epochs or s.epochs, batch_size=s.batch_size,
                           lr=s.svi_lr or s.lr, lr_schedule="cosine",
                           kl_warmup_epochs=s.kl_warmup_epochs, device=device, seed=s.seed,
                           num_draws=s.num_draws, progress=progress)
                nets[base] = mean_network(post, model)
                var_scores = log_relative_density(post, model=model)
            else:
                net = fresh()
                train_plain(net, ds, epochs=s.epochs, lr=s.lr, batch_size=s.batch_size,
                            l1=s.l1 if base == "l1" else 0.0, l2=s.l2 if base == "l2" else 0.0,
                            seed=s.seed, progress=progress, desc=f"train ({base})")
                nets[base] = net
        except NonFiniteLossError as e:
            raise _diverged(f"base {base!r}", e, ckpt) from None
        ev = evaluate_net(nets[base], ds.test)
        result.bases[base] = {**ev, "seconds": time.perf_counter() - t0}
        if path is not None:
            extra = ({"scores": {k: torch.as_tensor(v) for k, v in var_scores.items()}}
                     if base == "svi" else {})
            save_checkpoint({"net": nets[base].state_dict(),
                             "seconds": result.bases[base]["seconds"], **extra}, path)
        echo(f"base {base}: test acc {100 * ev['acc']:.2f}%, NLL {ev['nll']:.4f} "
             f"({result.bases[base]['seconds']:.1f} s)")

    hess_kw = {"max_examples": s.hessian_examples, "seed": s.seed}
    for m in methods:
        if m in done:
            result.rows += done[m]
            echo(f"{m}: loaded from {ckpt / 'rows.json'}")
            continue
        t0 = time.perf_counter()
        base = _base(m)
        net = nets[base]
        l1 = s.l1 if base == "l1" else 0.0
        l2 = s.l2 if base == "l2" else 0.0
        retrain = None
        if m.endswith("-retrain"):
            def retrain(pruned, masks, l1=l1, l2=l2):
                train_plain(pruned, ds, epochs=s.retrain_epochs, lr=s.lr * s.retrain_lr_factor,
                            batch_size=s.batch_size, l1=l1, l2=l2, masks=masks, seed=s.seed)
        kind = m.removesuffix("-retrain")
        network = None
        if kind == "random":
            scores = lambda n: random_scores(n, s.seed)  # noqa: E731
        elif kind.startswith("magnitude"):
            scores = magnitude_scores
        elif kind == "variational":
            scores = var_scores
        elif kind == "obd":
            kw = {**hess_kw, "samples": s.hutchinson_samples} \
                if s.obd_hessian == "hutchinson" else hess_kw
            scores = lambda n, kw=kw, l2=l2: obd_scores(  # noqa: E731
                n, ds.train, method=s.obd_hessian, l2=l2, **kw)
        else:  # obs
            scores, network = obs_scores(
                net, ds.train, fractions, method=s.obs_hessian, l2=l2, block=s.obs_block,
                damping=s.obs_damping, max_params=s.obs_max_weights, progress=progress,
                **hess_kw)
        try:
            rows = sweep(net, scores, ds.test, fractions, retrain=retrain, network=network,
                         method=m, progress=progress)
        except NonFiniteLossError as e:
            raise _diverged(f"method {m!r}", e, ckpt) from None
        result.rows += rows
        if ckpt is not None:
            done[m] = rows
            write_text(ckpt / "rows.json", json.dumps({"rows": done, "bases": result.bases}))
        acc = {r["fraction"]: r["acc"] for r in rows}
        echo(f"{m}: " + ", ".join(f"{100 * f:g}%: {100 * acc[f]:.2f}" for f in TABLE_FRACTIONS
                                  if f in acc) + f" ({time.perf_counter() - t0:.1f} s)")
    return result

