"""Stochastic variational inference, minibatch, on CPU or CUDA.

The loop optimises the guide's one-sample negative-ELBO estimate

    L(theta) = N/B sum_{i in batch} -log p(y_i | x_i, w) + beta_t KL(q || p),

with ``beta_t = kl_weight * min(1, t / warm-up steps)`` (linear KL warm-up). For the
bayesstruct guides the estimate comes from :meth:`Guide.loss` (local reparameterisation and the
prior's closed-form KL: ``benchmarks/svi_throughput.py`` measures why); any other Pyro guide
(an ``AutoNormal``, say) runs through ``pyro.infer.SVI`` with ``TraceMeanField_ELBO``.

Around it: a progress bar (loss per example, validation NLL and accuracy), a checkpoint at the
end of every epoch (atomic; ``weights_only``-loadable), ``resume``, early stopping on validation
NLL with the best state restored, empirical-Bayes prior updates after every step, and a NaN
guard that stops with the last good checkpoint untouched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import pyro
import torch
from pydantic import Field
from torch import nn

from .. import guides as guides_mod
from .. import logs, parallel
from .. import posterior as posterior_mod
from ..data import Dataset, Split
from ..errors import CheckpointError, ConfigError, NonFiniteLossError
from ..files import load_latest_checkpoint, previous_path, save_checkpoint
from ..guides.base import Guide
from ..models.bayesnet import BayesianNet
from ..training import (
    Minibatches,
    confusion_matrix,
    cosine_factor,
    evaluate,
    macro_f1,
    make_adam,
)
from .registry import EngineConfig, FitOptions, register_engine

__all__ = ["Minibatches", "NonFiniteLossError", "SVIConfig", "check_resume", "confusion_matrix",
           "evaluate", "fit_svi", "macro_f1", "make_adam", "prior_updates", "svi",
           "training_settings"]

CHECKPOINT = "last.pt"
LR_SCHEDULES = ("constant", "cosine")


def _as_splits(data: Dataset | Split, val: Split | None) -> tuple[Split, Split | None]:
    if isinstance(data, Dataset):
        return data.train, val if val is not None else data.val
    return data, val


def svi(model: BayesianNet, guide, data: Dataset | Split, *, val: Split | None = None,
        epochs: int = 10, batch_size: int = 128, lr: float = 1e-3,
        lr_schedule: str = "constant", kl_weight: float = 1.0,
        kl_warmup_epochs: float | str = "auto", device: str | torch.device = "cpu",
        seed: int = 0,
        patience: int | None = None, checkpoint_dir: str | Path | None = None,
        resume: bool = False, num_draws: int = 100, eb_every: int = 1,
        eb_start_epochs: float | str = "auto", prior_update: str = "auto",
        temperature: float | None = None,
        temperature_final: float | None = None, progress: bool = True,
        callbacks: Sequence[Callable[[dict], None]] = (),
        init_from: str | Path | dict | None = None,
        history_path: str | Path | None = None) -> posterior_mod.InferenceData:
    """Fit ``guide`` to ``model`` by SVI and return the posterior as ``InferenceData``.

    Args:
        model: the Pyro model (its ``num_data`` is set to the training-set size).
        guide (Guide | Callable): a bayesstruct guide (bound to ``model`` here if it is not yet)
            or any Pyro guide.
        data: a :class:`~bayesstruct.data.Dataset` (its train/val splits) or a training split.
        lr_schedule: ``"constant"`` or ``"cosine"`` (per step from ``lr`` to ``lr / 100`` over
            ``epochs``).
        kl_weight: the KL weight beta of the objective; ``kl_warmup_epochs`` ramps it linearly
            from 0. ``"auto"``: :data:`KL_WARMUP_FRACTION` of ``epochs`` for priors that ask for
            a warm-up (:attr:`~bayesstruct.priors.Prior.kl_warmup`: the log-uniform prior,
            whose KL pulls every weight it reaches towards zero with a force ``1/|theta|``,
            so that a small network started under the full KL loses every weight before the
            likelihood has picked the useful ones: a 4-32-32-3 MLP on iris ends at chance),
            no warm-up for the others. The default was chosen by ``benchmarks/tabular.py
            --sweep log-uniform``.
        patience: stop after this many epochs without a better validation NLL (needs ``val``)
            and restore the best state.
        checkpoint_dir: where ``last.pt`` is written after every epoch (the one before kept as
            ``last.prev.pt``, the fallback when the newest cannot be read); ``resume``
            continues it. The checkpoint records the settings that shape training
            (:func:`training_settings`): a resume that changes any of them is refused with a
            :class:`~bayesstruct.errors.CheckpointError` naming each field, old and new value.
            Raising ``epochs`` is allowed: training continues to the new last epoch (a cosine
            schedule is recomputed over the new length, so the lr steps onto the longer curve);
            ``epochs`` below the checkpoint's epoch is refused.
        init_from: a checkpoint file (or a dict loaded from one) whose variational parameters
            and prior hyperparameters start this run; the optimiser, schedule and step count
            start afresh (e.g. to go on with a lower ``lr`` after a NaN stop).
        prior_update: ``"closed_form"`` sets the prior's hyperparameters to their closed-form
            empirical-Bayes values every ``eb_every`` gradient steps, ``"none"`` holds them
            fixed, ``"auto"`` follows the prior's own ``empirical_bayes`` setting.
        eb_every: steps between empirical-Bayes prior updates.
        eb_start_epochs: epochs of plain SVI under the prior's initial hyperparameters before
            the first empirical-Bayes update (``"auto"``: :data:`EB_START_FRACTION` of
            ``epochs``). Updating from the first step sets ``alpha_i = 1 / (m_i^2 + s_i^2)``
            while every ``m_i`` is still near its small initial value, so the precisions jump
            and pull the weights to zero before the likelihood has shaped them (a small
            network then collapses: MacKay 1992 and Tipping 2001 re-estimate the precisions
            only after the weights have been fitted). The default was chosen by the sweep in
            ``benchmarks/tabular.py``.
        temperature: the Concrete temperature of a prior's relaxed structure (IBP masks,
            a metaparameter of the objective; ``None`` keeps the prior's own);
            ``temperature_final`` anneals it geometrically per step,
            ``t_s = t_0 (t_1 / t_0)^(s / S)`` over the ``S`` steps.
        callbacks: called after every epoch (and its checkpoint) with the epoch's record.
        history_path: ``history.csv`` gets the epoch's record as a row after every epoch
            (:class:`~bayesstruct.logs.History`; a resume rewrites it from the checkpoint's
            records first, so no row is duplicated).
    """
    _check_positive(epochs=epochs, batch_size=batch_size, num_draws=num_draws, eb_every=eb_every)
    if eb_start_epochs != "auto" and not (isinstance(eb_start_epochs, (int, float))
                                          and math.isfinite(eb_start_epochs)
                                          and eb_start_epochs >= 0):
        raise ValueError(f"eb_start_epochs must be a finite number >= 0 or 'auto' (got "
                         f"{eb_start_epochs!r})")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0 (got {lr})")
    if not (math.isfinite(kl_weight) and kl_weight >= 0):
        raise ValueError(f"kl_weight must be a finite number >= 0 (got {kl_weight})")
    if kl_warmup_epochs != "auto" and not (isinstance(kl_warmup_epochs, (int, float))
                                           and math.isfinite(kl_warmup_epochs)
                                           and kl_warmup_epochs >= 0):
        raise ValueError(f"kl_warmup_epochs must be a finite number >= 0 or 'auto' (got "
                         f"{kl_warmup_epochs!r})")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be >= 1 or None (got {patience})")
    if resume and init_from is not None:
        raise ValueError("resume continues a checkpoint and init_from starts a new run from "
                         "one: pass one of them")
    device = torch.device(device)
    train, val = _as_splits(data, val)
    train, val = train.to(device), (val.to(device) if val is not None else None)
    model.to(device)
    model.num_data = len(train)
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES} (got {lr_schedule!r})")
    eb = prior_updates(model.prior, prior_update)
    if patience is not None and val is None:
        raise ValueError("early stopping (patience) needs a validation split")
    ranks = parallel.ranks()
    if not isinstance(guide, Guide):
        if ranks.world > 1:
            raise ValueError("a data-parallel run needs a bayesstruct guide (meanfield, "
                             "lognormal, delta), "
                             f"not {type(guide).__name__}")
        if checkpoint_dir is not None or resume or lr_schedule != "constant":
            raise ValueError("checkpoints, resume and lr schedules need a bayesstruct guide "
                             f"(meanfield, lognormal, delta), not {type(guide).__name__}")
        return _svi_pyro(model, guide, train, val, epochs=epochs, batch_size=batch_size, lr=lr,
                         kl_weight=kl_weight, seed=seed, num_draws=num_draws, progress=progress,
                         history_path=history_path)
    anneal = _temperature_schedule(model.prior, temperature, temperature_final)
    torch.manual_seed(seed)
    guide.setup(model)
    guide.to(device)
    objective = parallel.wrap(_Objective(guide))  # DistributedDataParallel over W > 1 ranks
    optim = make_adam(guide.parameters(), lr)
    batches = Minibatches(train.x, train.y, batch_size, seed)
    sched = (torch.optim.lr_scheduler.LambdaLR(optim, cosine_factor(epochs * len(batches)))
             if lr_schedule == "cosine" else None)
    if kl_warmup_epochs == "auto":
        warmup = KL_WARMUP_FRACTION * epochs if model.prior.kl_warmup else 0.0
    else:
        warmup = float(kl_warmup_epochs)
    warmup_steps = warmup * len(batches)
    eb_start = math.ceil((EB_START_FRACTION * epochs if eb_start_epochs == "auto"
                          else eb_start_epochs) * len(batches)) if eb else 0
    total_steps = epochs * len(batches)
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None

    settings = training_settings(
        model, guide, train, batch_size=batch_size, lr=lr, lr_schedule=lr_schedule,
        kl_weight=kl_weight, seed=seed, patience=patience,
        # 'auto' where it asks for a warm-up (the steps it chose are in the checkpoint), else
        # the number of epochs: 0.0 for the others, as checkpoints before 'auto' recorded it
        kl_warmup_epochs="auto" if kl_warmup_epochs == "auto" and warmup > 0 else warmup,
        prior_update="closed_form" if eb else "none", eb_every=eb_every,
        **({"eb_start_epochs": eb_start_epochs} if eb and eb_start_epochs != "auto" else {}),
        temperature=temperature, temperature_final=temperature_final)
    state = {"epoch": 0, "step": 0, "history": [], "best_nll": math.inf, "best_epoch": -1}
    best: dict | None = None
    if init_from is not None:
        ck = init_from if isinstance(init_from, dict) else \
            load_latest_checkpoint(init_from, map_location=device)[0]
        _load_states(guide, model, ck, str(init_from) if not isinstance(init_from, dict)
                     else "init_from")
    if resume and ckpt_path is not None and (ckpt_path.exists()
                                             or previous_path(ckpt_path).exists()):
        ck, _ = load_latest_checkpoint(ckpt_path, map_location=device)
        check_resume(ck, settings, epochs, ckpt_path)
        _load_states(guide, model, ck, str(ckpt_path))
        model.prior.load_state_dict(ck["prior"])
        optim.load_state_dict(ck["optim"])
        if sched is not None:
            sched.load_state_dict(ck["sched"])
        torch.set_rng_state(ck["rng"])
        state = {k: ck[k] for k in state}
        eb_start = ck.get("eb_start", 0)  # the step it chose (a raised epochs keeps it)
        warmup_steps = ck.get("warmup_steps", warmup_steps)  # likewise
        best = ck.get("best")

    bar = logs.progress(total=epochs, initial=state["epoch"], desc="svi", unit="epoch",
                        enabled=progress)
    history = logs.History(history_path, state["history"], prefix="svi/")
    try:
        for epoch in range(state["epoch"], epochs):
            t0 = time.perf_counter()
            total = torch.zeros((), device=device)
            for x, y in batches.epoch(epoch):
                step = state["step"]
                model.kl_weight = kl_weight * (min(1.0, (step + 1) / warmup_steps)
                                               if warmup_steps > 0 else 1.0)
                if anneal is not None:
                    model.prior.temperature = anneal(step / total_steps)
                with parallel.shard_of(x.shape[0]) as rows:  # this rank's rows (all in 1)
                    loss = objective(x[rows], y[rows])
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()
                guide.constrain_()
                if sched is not None:
                    sched.step()
                if eb and step >= eb_start and (step - eb_start) % eb_every == 0:
                    model.prior.empirical_bayes_(*guide.moments())
                total = total + loss.detach()
                state["step"] = step + 1
            epoch_loss = float(parallel.all_reduce_mean(total)) / len(batches) / batches.n
            if not math.isfinite(epoch_loss):
                where = (f"the last good checkpoint is kept at {ckpt_path} (epoch "
                         f"{state['epoch']})" if ckpt_path is not None and ckpt_path.exists()
                         else "no checkpoint was written")
                raise NonFiniteLossError(
                    f"loss became {epoch_loss} in epoch {epoch + 1}; {where}. Lower the "
                    "learning rate or raise the KL warm-up.")
            record = {"epoch": epoch + 1, "loss": epoch_loss, "kl_weight": model.kl_weight,
                      "lr": optim.param_groups[0]["lr"],
                      "seconds": time.perf_counter() - t0}
            if hasattr(model.prior, "temperature"):
                record["temperature"] = float(model.prior.temperature)
            if val is not None:
                ev = evaluate(model, guide.mean_values(), val)
                record.update(val_nll=ev["nll"], val_acc=ev["acc"])
                if ev["nll"] < state["best_nll"]:
                    state["best_nll"], state["best_epoch"] = ev["nll"], epoch + 1
                    if patience is not None:
                        best = {"guide": _clone(guide.state_dict()),
                                "prior": _clone(model.prior.state_dict())}
            state["history"].append(record)
            state["epoch"] = epoch + 1
            if ckpt_path is not None and ranks.main:
                save_checkpoint({**state, "guide": guide.state_dict(),
                                 "prior": model.prior.state_dict(), "optim": optim.state_dict(),
                                 "sched": sched.state_dict() if sched is not None else None,
                                 "rng": torch.get_rng_state(), "best": best,
                                 "settings": settings, "epochs": epochs, "eb_start": eb_start,
                                 "warmup_steps": warmup_steps},
                                ckpt_path, keep=2)
            parallel.barrier()  # no rank runs past a checkpoint rank 0 has not written
            history.append(record)
            bar.set_postfix({k: f"{record[k]:.4g}" for k in ("loss", "val_nll", "val_acc")
                             if k in record})
            bar.update(1)
            for cb in callbacks:
                cb(record)
            if patience is not None and epoch + 1 - state["best_epoch"] >= patience:
                break
    finally:
        bar.close()
        history.close()
    stopped_early = patience is not None and state["epoch"] < epochs
    if patience is not None and best is not None:
        guide.load_state_dict(best["guide"])
        model.prior.load_state_dict(best["prior"])
    model.kl_weight = kl_weight
    return posterior_mod.from_guide(
        model, guide, num_draws, **posterior_mod.training_data(data, train),
        history=state["history"],
        attrs={"epochs_run": state["epoch"], "best_epoch": state["best_epoch"],
               "stopped_early": stopped_early, "kl_weight": kl_weight, "lr": lr,
               "lr_schedule": lr_schedule, "prior_update": "closed_form" if eb else "none",
               "batch_size": batch_size, "seed": seed})


class _Objective(nn.Module):
    """``guide.loss`` as a module's forward, what ``DistributedDataParallel`` wraps."""

    def __init__(self, guide: Guide) -> None:
        super().__init__()
        self.guide = guide

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.guide.loss(x, y)


def _check_positive(**values: int) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1 (got {v!r})")


def _fingerprint(split: Split) -> str:
    """A cheap digest of a training split (size, labels, and the inputs' float64 sums):
    different data or another split of the same data gives another value."""
    import hashlib

    h = hashlib.sha256()
    h.update(str(tuple(split.x.shape)).encode())
    h.update(split.y.detach().cpu().numpy().tobytes())
    x = split.x.detach().double()
    h.update(x.sum(0).cpu().numpy().round(6).tobytes())
    return h.hexdigest()[:16]


def training_settings(model: BayesianNet, guide: Guide, train: Split, **kw) -> dict:
    """What shapes an SVI run's trajectory besides ``epochs``: the data (a fingerprint of the
    training split), the model (net and prior types, parameter shapes), the guide, and the
    optimisation settings. Stored in every checkpoint and compared on ``resume``."""
    shapes = {k: list(v.shape) for k, v in guide.state_dict().items()}
    bound = getattr(guide, "max_scale", None)
    if bound is not None:  # only when set: checkpoints from before the option still resume
        kw = {**kw, "max_scale": bound, "max_scale_sites": list(guide.max_scale_sites)}
    return {"data": _fingerprint(train), "num_train": len(train),
            "net": type(model.net).__name__, "prior": type(model.prior).__name__,
            "likelihood": type(model.likelihood).__name__, "guide": type(guide).__name__,
            "guide_shapes": shapes, **kw}


def check_resume(ck: dict, settings: dict, epochs: int, path: Path) -> None:
    """Refuse to continue checkpoint ``ck`` under other training settings, or to fewer epochs
    than it has already run; the message names every changed field, old -> new."""
    old = ck.get("settings")
    if old is None:
        raise CheckpointError(f"{path} was written by an older bayesstruct without its "
                              "training settings; it cannot be resumed safely")
    changed = [f"{k}: {_short(old.get(k))} -> {_short(settings.get(k))}"
               for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k)]
    if changed:
        raise CheckpointError(f"cannot resume {path} under other training settings ("
                              + "; ".join(changed) + "); start a new run (--init-from starts one "
                              "from its parameters)")
    if ck["epoch"] > epochs:
        raise CheckpointError(f"{path} is at epoch {ck['epoch']}, past epochs={epochs}; "
                              f"resume with epochs >= {ck['epoch']}")


def _short(v: object, n: int = 60) -> str:
    r = repr(v)
    return r if len(r) <= n else r[: n - 3] + "..."


def _load_states(guide: Guide, model: BayesianNet, ck: dict, where: str) -> None:
    """Load a checkpoint's variational parameters and prior state, or say what does not fit."""
    for name, module, key in (("variational parameters", guide, "guide"),
                              ("prior state", model.prior, "prior")):
        if key not in ck:
            raise CheckpointError(f"{where} holds no {name} ('{key}'): not an SVI checkpoint")
        try:
            module.load_state_dict(ck[key])
        except RuntimeError as e:
            first = str(e).splitlines()
            raise CheckpointError(f"{where}: its {name} do not fit this model "
                                  f"({' '.join(x.strip() for x in first[:3])})") from None


def _temperature_schedule(prior, start: float | None, final: float | None
                          ) -> Callable[[float], float] | None:
    """Set the prior's relaxation temperature; the geometric annealing ``u -> t(u)`` over the
    run's progress ``u in [0, 1]`` when ``final`` is given (closed form: resumes continue it)."""
    if start is None and final is None:
        return None
    if not hasattr(prior, "temperature"):
        raise ValueError(f"temperature applies to priors with relaxed structure (ibp); prior "
                         f"{prior.kind!r} has none")
    for name, t in (("temperature", start), ("temperature_final", final)):
        if t is not None and not t > 0:
            raise ValueError(f"{name} must be > 0 (got {t})")
    t0 = float(start) if start is not None else float(prior.temperature)
    prior.temperature = t0
    if final is None:
        return None
    t1 = float(final)
    return lambda u: t0 * (t1 / t0) ** min(max(u, 0.0), 1.0)


PRIOR_UPDATES = ("auto", "none", "closed_form")
#: the share of a run's epochs before the first empirical-Bayes update when ``eb_start_epochs``
#: is not given (chosen by the sweep of ``benchmarks/tabular.py``; see :func:`svi`)
EB_START_FRACTION = 0.5
#: the share of a run's epochs over which the KL weight ramps up when ``kl_warmup_epochs`` is
#: ``"auto"`` and the prior asks for a warm-up (chosen by ``benchmarks/tabular.py --sweep
#: log-uniform``; see :func:`svi`)
KL_WARMUP_FRACTION = 0.5


def prior_updates(prior, prior_update: str) -> bool:
    """Whether SVI updates ``prior`` in closed form (empirical Bayes); switches the prior's
    empirical Bayes on for ``"closed_form"`` and refuses priors without a closed form."""
    if prior_update not in PRIOR_UPDATES:
        raise ValueError(f"prior_update={prior_update!r}; allowed: {', '.join(PRIOR_UPDATES)}")
    if prior_update == "closed_form":
        prior.enable_empirical_bayes()
        return True
    return prior_update == "auto" and bool(getattr(prior, "empirical_bayes", False))


def _clone(sd: dict) -> dict:
    return {k: v.detach().clone() for k, v in sd.items()}


def _svi_pyro(model, guide, train: Split, val: Split | None, *, epochs, batch_size, lr,
              kl_weight, seed, num_draws, progress, history_path=None
              ) -> posterior_mod.InferenceData:
    """Any Pyro guide: ``pyro.infer.SVI`` with ``TraceMeanField_ELBO`` (analytic KL per site)."""
    pyro.set_rng_seed(seed)
    model.kl_weight = kl_weight
    svi_ = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": lr}),
                          pyro.infer.TraceMeanField_ELBO())
    batches = Minibatches(train.x, train.y, batch_size, seed)
    history = []
    with logs.History(history_path, prefix="svi/") as rows:
        for epoch in logs.progress(range(epochs), desc="svi (pyro)", unit="epoch",
                                   enabled=progress):
            t0 = time.perf_counter()
            total = sum(svi_.step(x, y) for x, y in batches.epoch(epoch))
            history.append({"epoch": epoch + 1, "loss": total / len(batches) / batches.n})
            if not math.isfinite(history[-1]["loss"]):
                raise NonFiniteLossError(f"loss became {history[-1]['loss']} in epoch "
                                         f"{epoch + 1}")
            rows.append({**history[-1], "seconds": time.perf_counter() - t0})
    predictive = pyro.infer.Predictive(model, guide=guide, num_samples=num_draws,
                                       return_sites=[s.name for s in model.sites]
                                       + [ls.name for ls in model.prior.latents])
    with torch.no_grad():
        shapes = {n: s["value"].shape for n, s in
                  pyro.poutine.trace(guide).get_trace(train.x[:1], train.y[:1]).nodes.items()
                  if s["type"] == "sample"}
        # Predictive pads each site with singleton plate dims: restore (chain, draw, *shape)
        draws = {k: v.reshape(1, num_draws, *shapes[k])
                 for k, v in predictive(train.x[:1]).items()}
    idata = posterior_mod.from_draws(model, draws, **posterior_mod.training_data(train, train),
                                     history=history,
                                     attrs={"engine": "svi", "guide": type(guide).__name__})
    if isinstance(guide, pyro.infer.autoguide.AutoNormal):  # its Normal factors, for rho
        posterior_mod.add_variational(idata, model, posterior_mod.autonormal_factors(model, guide))
    return idata


# -- the recipe: ``engine: svi`` ---------------------------------------------------------------
class SVIConfig(EngineConfig):
    """``engine: svi`` (the default): :func:`svi` with the guide ``guide`` (``meanfield``:
    :class:`~bayesstruct.guides.MeanField` with ``init_scale``, ``covariance`` and ``reparam``;
    ``lognormal``: :class:`~bayesstruct.guides.LogNormal`, log-normal unit factors over
    ``weights: point`` (default) or ``meanfield`` weights; ``delta``: a MAP point estimate)."""

    engine: Literal["svi"] = "svi"
    guide: Literal["meanfield", "lognormal", "delta"] = "meanfield"
    weights: Literal["point", "meanfield"] | None = None
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    kl_weight: float = Field(1.0, ge=0)
    kl_warmup_epochs: Annotated[float, Field(ge=0)] | Literal["auto"] = "auto"
    patience: int | None = Field(None, ge=1)
    prior_update: Literal["auto", "none", "closed_form"] = "auto"
    eb_every: int = Field(1, ge=1)
    eb_start_epochs: Annotated[float, Field(ge=0)] | Literal["auto"] = "auto"
    num_draws: int = Field(100, ge=1)
    init_scale: float = Field(1e-3, gt=0)
    max_scale: float | None = Field(None, gt=0)
    max_scale_sites: list[str] = ["*"]
    covariance: Literal["diagonal", "scalar"] = "diagonal"
    reparam: Literal["auto", "local", "weights"] = "auto"
    temperature: float | None = Field(None, gt=0)
    temperature_final: float | None = Field(None, gt=0)

    supports_init_from: ClassVar[bool] = True

    def summary(self) -> str:
        if self.guide == "lognormal":
            return f"guide lognormal ({self.weights or 'point'} weights)"
        return f"guide {self.guide}"

    def check_resume(self, saved: dict[str, Any], checkpoint_dir: Path,
                     echo: Callable[[str], Any]) -> None:
        """Refuse ``epochs`` below the checkpoint's epoch; say what a raised one does."""
        path = Path(checkpoint_dir) / CHECKPOINT
        if path.exists() or previous_path(path).exists():
            at = load_latest_checkpoint(path)[0].get("epoch", 0)
            if at > self.epochs:
                raise ConfigError(f"--resume: inference.epochs={self.epochs} is below the "
                                  f"checkpoint's epoch {at} in {path}; allowed: "
                                  f"inference.epochs >= {at}")
        old = saved.get("epochs")
        if old is not None and self.epochs != old:
            sched = (" The cosine lr schedule is recomputed over the new length: from the "
                     "current step on, the lr follows the longer curve."
                     if self.lr_schedule == "cosine" else "")
            echo(f"resume: inference.epochs {old} -> {self.epochs}; training continues from "
                 f"the checkpoint to epoch {self.epochs}.{sched}")


@register_engine(SVIConfig)
def fit_svi(cfg: SVIConfig, model: BayesianNet, data: Dataset, options: FitOptions
            ) -> posterior_mod.InferenceData:
    """Run :func:`svi` as the recipe ``cfg`` says; a setting the model cannot take is a
    ``ConfigError`` naming the recipe field."""
    if cfg.prior_update == "closed_form":
        try:
            model.prior.enable_empirical_bayes()
        except ValueError as e:
            raise ConfigError(f"inference.prior_update: {e}") from None
    if (cfg.temperature is not None or cfg.temperature_final is not None) and not \
            hasattr(model.prior, "temperature"):
        raise ConfigError(f"inference.temperature: prior {model.prior.kind!r} has no relaxed "
                          "structure to anneal (the temperature applies to prior.kind=ibp)")
    if cfg.guide == "delta" and model.prior.discrete:
        raise ConfigError(f"inference.guide: 'delta' cannot hold the {model.prior.kind} "
                          "prior's discrete masks; allowed with it: meanfield")
    if cfg.weights is not None and cfg.guide != "lognormal":
        raise ConfigError(f"inference.weights chooses the lognormal guide's weights; guide "
                          f"{cfg.guide!r} has no such choice (allowed with it: null)")
    weights = cfg.weights or "point"
    if cfg.max_scale is not None and not (cfg.guide == "meanfield" or (
            cfg.guide == "lognormal" and weights == "meanfield")):
        raise ConfigError("inference.max_scale bounds mean-field weights' scales; guide "
                          f"{cfg.guide!r}" + (" with weights: point" if cfg.guide == "lognormal"
                                             else "") + " has none (allowed with it: null)")
    guide_kw: dict[str, Any] = {}
    if cfg.guide in ("meanfield", "lognormal"):
        guide_kw = {"init_scale": cfg.init_scale, "reparam": cfg.reparam,
                    "max_scale": cfg.max_scale, "max_scale_sites": cfg.max_scale_sites}
    if cfg.guide == "meanfield":
        guide_kw["covariance"] = cfg.covariance
    elif cfg.guide == "lognormal":
        if cfg.covariance != "diagonal":
            raise ConfigError("inference.covariance: the lognormal guide's weights are "
                              "diagonal; allowed with it: diagonal")
        guide_kw["weights"] = weights
        reason = guides_mod.lognormal_obstacle(model.prior)
        if reason is not None:
            raise ConfigError(f"inference.guide: 'lognormal' cannot hold prior "
                              f"{model.prior.kind!r}: {reason}; allowed with it: meanfield")
    if cfg.guide == "delta" and any(ls.bounds is not None for ls in model.prior.latents):
        raise ConfigError(f"inference.guide: 'delta' has no MAP under the {model.prior.kind} "
                          "prior (its density 1/theta is largest at the interval's lower end, "
                          "where every unit would go); allowed with it: lognormal, meanfield")
    guide = guides_mod.get(cfg.guide, **guide_kw)
    try:  # a guide that cannot hold this prior says so here, before any training (setup
        guide.setup(model)  # draws nothing and is idempotent: svi() reuses it)
    except (ValueError, NotImplementedError) as e:
        raise ConfigError(f"inference.guide: {e}") from None
    return svi(model, guide, data, epochs=cfg.epochs,
               batch_size=cfg.batch_size, lr=cfg.lr, lr_schedule=cfg.lr_schedule,
               kl_weight=cfg.kl_weight, kl_warmup_epochs=cfg.kl_warmup_epochs,
               device=options.device, seed=options.seed, patience=cfg.patience,
               checkpoint_dir=options.checkpoint_dir, resume=options.resume,
               num_draws=cfg.num_draws, eb_every=cfg.eb_every, prior_update=cfg.prior_update,
               eb_start_epochs=cfg.eb_start_epochs,
               temperature=cfg.temperature, temperature_final=cfg.temperature_final,
               progress=options.progress, init_from=options.init_from,
               history_path=options.history_path)
