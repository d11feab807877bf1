"""Config -> run directory: the whole pipeline of one experiment.

    <out>/config.yaml      the resolved RunConfig (re-used by --resume)
    <out>/.lock            held by the process that runs in <out> (bayesstruct.rundir)
    <out>/checkpoints/     SVI: last.pt after every epoch, last.prev.pt the one before;
                           samplers: chain-K.pt per finished chain
    <out>/posterior.nc     the ArviZ posterior (M9)
    <out>/pruning.csv      the pruning curve (M5)
    <out>/pruning.png      its plot
    <out>/snr_curve.csv    variational runs: the talk's three curves against lambda on |mu/sigma|
    <out>/snr_curve.png    (parameters kept, test accuracy / macro F1, test log-likelihood)
    <out>/widths.png       IBP runs: each layer's unit inclusion probabilities (M2.5)
    <out>/metrics.json     test metrics, pruning at the default threshold, timings
                           (``inferred_widths`` for IBP runs)

A hypergradient experiment (an entry with a ``hypergrad`` section, seed 002) writes
``hypergrad.csv`` (its table), ``hypergrad.png`` (the validation loss / kernel width over the
outer loop) and ``metrics.json`` (with the seed's figures beside ours).

A comparison (``bayesstruct compare``, or an entry with a ``compare`` section) writes instead

    <out>/comparison.csv   method, fraction, removed, acc, nll, seconds (the figure's data)
    <out>/comparison.png   test accuracy against weights removed, one line per method
    <out>/metrics.json     each base's dense test metrics, accuracy at 50/80/90/95/99 %
    <out>/checkpoints/     base-*.pt and rows.json (what --resume reuses)

Every file is written atomically; an existing run is never overwritten (resume it instead), a
folder that is not a run directory is refused, and ``--resume`` refuses to change what shaped
the training (:mod:`bayesstruct.rundir`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import data as data_mod
from . import guides, nets, posterior, priors, pruning
from .config import CompareConfig, ConfigError, RunConfig, load_yaml, to_yaml, validate
from .errors import CheckpointError
from .files import load_latest_checkpoint, previous_path, write_json, write_text
from .inference import mcmc, psgld, sgld, svi
from .inference.svi import CHECKPOINT
from .models import BayesianNet, likelihoods
from .report import (
    format_table,
    plot_comparison,
    plot_inclusion,
    plot_pruning_curve,
    plot_snr_curves,
    write_csv,
)
from .rundir import check_out, open_run_dir, resume_changes
from .training import evaluate

__all__ = ["build_model", "compare", "infer", "load_data", "load_run_config", "resolve_device",
           "run"]


def build_model(cfg: RunConfig, ds: data_mod.Dataset) -> BayesianNet:
    """The BayesianNet a config describes (network initialised from ``cfg.seed``)."""
    torch.manual_seed(cfg.seed)
    likelihood = likelihoods.get(cfg.likelihood)
    try:
        outputs = likelihood.outputs(ds.n_classes)
    except ValueError as e:
        raise ConfigError(f"likelihood: {e}") from None
    try:
        net = nets.build(cfg.net.kind, ds.input_shape, outputs, cfg.net.hidden,
                         cfg.net.activation, pairs=ds.pairs)
    except ValueError as e:
        raise ConfigError(f"net: {e}") from None
    prior_kw = cfg.prior.model_dump(exclude={"kind"})
    prior = priors.get(cfg.prior.kind, **prior_kw)
    try:
        return BayesianNet(net, prior, likelihood, num_data=len(ds.train))
    except NotImplementedError as e:  # a prior that needs another architecture
        raise ConfigError(f"prior: {e} (net.kind={cfg.net.kind!r})") from None


def infer(cfg: RunConfig, model: BayesianNet, ds: data_mod.Dataset, *,
          device: torch.device | str = "cpu", checkpoint_dir: Path | None = None,
          resume: bool = False, progress: bool = True,
          init_from: dict | None = None) -> posterior.InferenceData:
    """Run the recipe's engine on ``model`` and ``ds``; every engine returns the same
    ``InferenceData`` layout (M9). ``init_from``: an SVI checkpoint whose parameters start
    the fit."""
    inf = cfg.inference
    if inf.engine == "svi":
        if inf.prior_update == "closed_form":
            try:
                model.prior.enable_empirical_bayes()
            except ValueError as e:
                raise ConfigError(f"inference.prior_update: {e}") from None
        if (inf.temperature is not None or inf.temperature_final is not None) and not \
                hasattr(model.prior, "temperature"):
            raise ConfigError(f"inference.temperature: prior {cfg.prior.kind!r} has no relaxed "
                              "structure to anneal (the temperature applies to prior.kind=ibp)")
        if inf.guide == "delta" and model.prior.discrete:
            raise ConfigError(f"inference.guide: 'delta' cannot hold the {cfg.prior.kind} "
                              "prior's discrete masks; allowed with it: meanfield")
        guide_kw = ({"init_scale": inf.init_scale, "covariance": inf.covariance,
                     "reparam": inf.reparam} if inf.guide == "meanfield" else {})
        return svi(model, guides.get(inf.guide, **guide_kw), ds, epochs=inf.epochs,
                   batch_size=inf.batch_size, lr=inf.lr, lr_schedule=inf.lr_schedule,
                   kl_weight=inf.kl_weight, kl_warmup_epochs=inf.kl_warmup_epochs,
                   device=device, seed=cfg.seed, patience=inf.patience,
                   checkpoint_dir=checkpoint_dir, resume=resume, num_draws=inf.num_draws,
                   eb_every=inf.eb_every, prior_update=inf.prior_update,
                   temperature=inf.temperature, temperature_final=inf.temperature_final,
                   progress=progress, init_from=init_from)
    if getattr(model.prior, "empirical_bayes", False):
        raise ConfigError(f"engine {inf.engine!r} samples a fixed prior; prior "
                          f"{cfg.prior.kind!r} is set to empirical Bayes (use "
                          "prior.hyper=gamma for ARD, prior.empirical_bayes=false for "
                          "gaussian, or engine svi)")
    try:
        if inf.engine in ("nuts", "hmc"):
            return mcmc(model, ds, kernel=inf.engine, num_warmup=inf.num_warmup,
                        num_samples=inf.num_samples, num_chains=inf.num_chains,
                        chain_method=inf.chain_method if torch.device(device).type == "cpu"
                        else "sequential", jit_compile=inf.jit_compile,
                        target_accept=inf.target_accept, max_tree_depth=inf.max_tree_depth,
                        step_size=inf.step_size, num_steps=inf.num_steps,
                        noncentred=inf.noncentred, seed=cfg.seed, device=device,
                        checkpoint_dir=checkpoint_dir, resume=resume, progress=progress)
        langevin = sgld if inf.engine == "sgld" else psgld
        kw = {"beta": inf.beta, "eps": inf.eps} if inf.engine == "psgld" else {}
        return langevin(model, ds, num_samples=inf.num_samples, burn_in=inf.burn_in,
                        thin=inf.thin, num_chains=inf.num_chains, batch_size=inf.batch_size,
                        lr=inf.lr, gamma=inf.gamma, decay_steps=inf.decay_steps,
                        init_jitter=inf.init_jitter, seed=cfg.seed, device=device,
                        checkpoint_dir=checkpoint_dir, resume=resume, progress=progress, **kw)
    except ValueError as e:  # improper priors and the like, said in the sampler's words
        raise ConfigError(f"engine {inf.engine!r}: {e}") from None


def resolve_device(cfg: RunConfig) -> torch.device:
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but CUDA is not available here; use cpu")
    return device


def load_data(cfg: RunConfig, device: torch.device | None = None) -> data_mod.Dataset:
    """The data set and splits a config names, on ``device`` (default: the config's)."""
    device = resolve_device(cfg) if device is None else device
    d = cfg.data
    return data_mod.load(d.name, seed=cfg.seed, val_fraction=d.val_fraction,
                         test_fraction=d.test_fraction, train_size=d.train_size,
                         data_dir=d.data_dir, standardize=d.standardize, classes=d.classes,
                         pairs_file=d.pairs_file, word_vectors=d.word_vectors,
                         max_len=d.max_len, device=device)


def load_run_config(out: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The config saved in a run directory, with ``overrides`` applied (for --resume)."""
    from .config import apply_overrides

    path = Path(out) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"nothing to resume: {path} does not exist")
    return validate(RunConfig, apply_overrides(load_yaml(path), overrides), str(path))


def run(cfg: RunConfig, out: str | Path, *, resume: bool = False, progress: bool = True,
        echo: Callable[[str], Any] = print, init_from: str | Path | None = None
        ) -> dict[str, Any]:
    """Run one experiment into ``out``; return its metrics (also in ``metrics.json``).

    An entry with a ``compare`` section runs the pruning comparison (:func:`compare`).
    ``init_from`` (a run directory or a checkpoint file of an SVI run) starts this run's
    variational parameters from that run's last good checkpoint, with a fresh optimiser."""
    if init_from is not None and (resume or cfg.compare is not None or cfg.hypergrad is not None
                                  or cfg.nas is not None or cfg.inference.engine != "svi"):
        raise ConfigError("--init-from starts a new SVI run from another run's parameters; it "
                          "does not combine with --resume, compare, hypergrad or nas entries, "
                          f"or engine {cfg.inference.engine!r}")
    if cfg.compare is not None:
        return compare(cfg, out, resume=resume, progress=progress, echo=echo)
    if cfg.hypergrad is not None:
        if resume:
            raise ConfigError("hypergradient experiments have no checkpoints to resume; run "
                              "again with a new --out")
        return hypergrad(cfg, out, progress=progress, echo=echo)
    if cfg.nas is not None:
        if resume:
            raise ConfigError("architecture-search runs have no checkpoints to resume; run "
                              "again with a new --out")
        return nas(cfg, out, progress=progress, echo=echo)
    out = check_out(out, resume)
    saved = _check_resume(cfg, out, echo) if resume else None
    init = _init_checkpoint(init_from) if init_from is not None else None
    device = resolve_device(cfg)
    t0 = time.perf_counter()
    ds = load_data(cfg, device)
    cfg = _record_data_source(cfg, ds)
    model = build_model(cfg, ds)
    inf = cfg.inference
    with open_run_dir(out, resume):
        if saved is None or cfg.model_dump() != saved:
            write_text(out / "config.yaml", to_yaml(cfg))
        what = f"guide {inf.guide}" if inf.engine == "svi" else f"{inf.num_chains} chains"
        echo(f"{cfg.name}: {cfg.net.kind} on {cfg.data.name} ({len(ds.train)} train / "
             f"{len(ds.val)} val / {len(ds.test)} test), prior {cfg.prior.kind}, "
             f"{inf.engine} ({what}), {model.num_weights()} weights, device {device}")
        if init is not None:
            echo(f"starting from the parameters of {init[1]} (epoch {init[0].get('epoch')})")
        post = infer(cfg, model, ds, device=device, checkpoint_dir=out / "checkpoints",
                     resume=resume, progress=progress,
                     init_from=init[0] if init is not None else None)
        train_seconds = time.perf_counter() - t0
        posterior.save(post, out / "posterior.nc")
        metrics = _report(cfg, out, model, ds, post, device, train_seconds, echo,
                          extra={"init_from": str(init[1])} if init is not None else None)
    return metrics


def _refuse_resume_changes(cfg: RunConfig, out: Path) -> dict[str, Any]:
    """The saved config of the run in ``out`` (as a dict); refuses a resume whose ``cfg``
    changes what shaped that run, naming every field with its old and new value."""
    saved = load_run_config(out).model_dump()
    changed = resume_changes(saved, cfg.model_dump())
    if changed:
        raise ConfigError(
            f"--resume cannot change what shaped the run in {out}: "
            + "; ".join(f"{k} {a!r} -> {b!r}" for k, a, b in changed)
            + ". Start a new run instead (bayesstruct run ENTRY --init-from "
            f"{out} --set ... starts one from its last good parameters)")
    return saved


def _check_resume(cfg: RunConfig, out: Path, echo: Callable[[str], Any]) -> dict[str, Any]:
    """The saved config of the run in ``out`` (as a dict), after refusing a resume that would
    change what shaped its training (:func:`_refuse_resume_changes`) or end before the
    checkpoint's epoch; says what a raised ``epochs`` does. Writes nothing."""
    saved = _refuse_resume_changes(cfg, out)
    old_epochs, epochs = saved["inference"]["epochs"], cfg.inference.epochs
    if cfg.inference.engine == "svi":
        path = out / "checkpoints" / CHECKPOINT
        if path.exists() or previous_path(path).exists():
            at = load_latest_checkpoint(path)[0].get("epoch", 0)
            if at > epochs:
                raise ConfigError(f"--resume: inference.epochs={epochs} is below the checkpoint's "
                                  f"epoch {at} in {path}; allowed: inference.epochs >= {at}")
        if epochs != old_epochs:
            sched = (" The cosine lr schedule is recomputed over the new length: from the "
                     "current step on, the lr follows the longer curve."
                     if cfg.inference.lr_schedule == "cosine" else "")
            echo(f"resume: inference.epochs {old_epochs} -> {epochs}; training continues from "
                 f"the checkpoint to epoch {epochs}.{sched}")
    return saved


def _init_checkpoint(init_from: str | Path) -> tuple[dict, Path]:
    """The last good SVI checkpoint of a run directory (or a checkpoint file)."""
    path = Path(init_from)
    if path.is_dir():
        path = path / "checkpoints" / CHECKPOINT
    if not path.exists() and not previous_path(path).exists():
        raise CheckpointError(f"--init-from {init_from}: no SVI checkpoint at {path}")
    return load_latest_checkpoint(path)


def _record_data_source(cfg: RunConfig, ds: data_mod.Dataset) -> RunConfig:
    """Write the folder the IDX files were actually read from into ``data.data_dir``."""
    source = getattr(ds, "source", None)
    if source is None or cfg.data.data_dir == source or cfg.data.name not in data_mod.IDX_SETS:
        return cfg
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"data_dir": str(source)})})


def _report(cfg: RunConfig, out: Path, model: BayesianNet, ds: data_mod.Dataset,
            post: posterior.InferenceData, device: torch.device, train_seconds: float,
            echo: Callable[[str], Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Decide, prune, evaluate and write the run's figures, tables and ``metrics.json``
    (with ``extra``'s keys added)."""
    inf = cfg.inference
    # -- pruning ----------------------------------------------------------------------------
    pc = cfg.pruning
    decision = pruning.make_decision(
        post, model, pc.criterion, rho_threshold=pc.threshold,
        magnitude_threshold=pc.magnitude_threshold, log_alpha_threshold=pc.log_alpha_threshold,
        unit_threshold=pc.unit_threshold, layer_thresholds=pc.layer_thresholds, val=ds.val,
        tolerance=pc.val_tolerance)
    criterion, masks = decision.criterion, decision.masks
    params = {k: torch.as_tensor(v, dtype=torch.float32, device=device)
              for k, v in posterior.point_estimate(post).items()}
    dense = evaluate(model, params, ds.test)
    after = evaluate(model, pruning.mask_params(params, masks), ds.test)
    mean_net = pruning.mean_network(post, model)
    small = pruning.prune(mean_net, masks)
    t_dense = pruning.inference_seconds(mean_net, ds.test.x)
    t_small = pruning.inference_seconds(small, ds.test.x)
    if "variational_loc" in post.groups():
        moments = pruning.effective_moments(post, model)
    elif criterion == "rho":  # draws of a sampler: their mean and variance per weight
        draws = post.posterior
        moments = {s.name: (draws[s.name].mean(("chain", "draw")).values,
                            draws[s.name].var(("chain", "draw")).values) for s in model.sites}
    else:
        moments = {k: (v.cpu().numpy(), np.zeros(v.shape)) for k, v in
                   model.prior.net_params(params).items()}
    summary = pruning.compression_summary(model, masks, moments, bits_conv=pc.kmeans_bits_conv,
                                          bits_fc=pc.kmeans_bits_fc, seed=cfg.seed)
    rows = pruning.pruning_curve(model, post, ds.test, pc.fractions, scores=decision.scores,
                                 mc_samples=pc.mc_samples, seed=cfg.seed)
    write_csv(rows, out / "pruning.csv")
    plot_pruning_curve(rows, out / "pruning.png",
                       title=f"{cfg.name}: pruning by {criterion} ({cfg.data.name} test)")

    snr_metrics = None
    if "variational_loc" in post.groups():  # the talk's three curves against lambda (seed 001)
        scores = pruning.snr(post, model)
        snr_rows = pruning.snr_curve(model, post, ds.test, scores=scores)
        write_csv(snr_rows, out / "snr_curve.csv")
        plot_snr_curves(snr_rows, out / "snr_curve.png",
                        title=f"{cfg.name}: removing weights with |mu/sigma| < lambda "
                              f"({cfg.data.name} test)")
        snr_metrics = _snr_metrics(model, post, ds, scores, snr_rows, pc.snr_tolerance)

    widths = None
    if model.prior.discrete:  # IBP: the widths read from the posterior's masks (M2.5)
        widths = pruning.inferred_widths(post, model)
        prior_incl = {k: v.numpy() for k, v in model.prior.prior_inclusions().items()}
        plot_inclusion(pruning.inclusion_probabilities(post, model), out / "widths.png",
                       prior=prior_incl, title=f"{cfg.name}: unit inclusion probabilities")

    hist = post.optimization if "optimization" in post.groups() else None
    metrics = {
        "entry": cfg.name,
        "recipe": cfg.recipe,
        "dataset": cfg.data.name,
        "engine": inf.engine,
        "epochs_run": int(post.attrs["epochs_run"]) if "epochs_run" in post.attrs else None,
        "final_loss_per_example": float(hist["loss"].values[-1]) if hist is not None else None,
        "test_acc": dense["acc"],
        "test_nll": dense["nll"],
        "test_f1_macro": dense["f1_macro"],
        "test_acc_mc": rows[0]["acc_mc"] if rows and rows[0]["fraction"] == 0 else None,
        "criterion": criterion,
        "threshold": decision.threshold,
        "layer_thresholds": {k: v if np.isfinite(v) else None  # None: keep all units
                             for k, v in decision.layer_thresholds.items()},
        "fraction_removed": pruning.fraction_removed(masks),
        "test_acc_pruned": after["acc"],
        "test_nll_pruned": after["nll"],
        "test_f1_macro_pruned": after["f1_macro"],
        "snr": snr_metrics,
        "inferred_widths": widths,
        "weights_total": model.num_weights(),
        "weights_kept": int(sum(int(m.sum()) for m in masks.values())),
        "params_dense": pruning.count_parameters(mean_net),
        "params_after_unit_removal": pruning.count_parameters(small),
        "nonzero_params_after": pruning.count_parameters(small, nonzero=True),
        "units_after": {k: list(v) for k, v in pruning.unit_counts(small).items()},
        "test_inference_seconds_dense": t_dense,
        "test_inference_seconds_pruned": t_small,
        "train_seconds": train_seconds,
        "device": str(device),
        "compression": summary,
        **(extra or {}),
    }
    write_json(out / "metrics.json", metrics)
    echo("")
    echo(format_table(
        [[f"{100 * metrics['test_acc']:.2f}", f"{100 * metrics['fraction_removed']:.1f}",
          f"{100 * metrics['test_acc_pruned']:.2f}",
          f"{100 * (metrics['test_acc_pruned'] - metrics['test_acc']):+.2f}"]],
        ["test acc (%) posterior mean", f"weights removed (%) at {criterion} threshold",
         "test acc (%) after pruning", "change (pp)"]))
    echo("")
    echo(format_table(*pruning.summary_rows(summary)))
    echo(f"|W|/|W!=0| = {summary['sparsity_ratio']:.1f}x; compressed size "
         f"{summary['deep_compression_bytes']} bytes (Deep Compression, "
         f"{summary['deep_compression_ratio']:.1f}x) and {summary['bit_precision_bytes']} bytes "
         f"(bit precision, {summary['bit_precision_ratio']:.1f}x) against "
         f"{summary['dense_bytes']} bytes dense float32")
    if widths is not None:
        echo("inferred widths (units with P(z = 1) > 1/2, of the truncation; expected width): "
             + ", ".join(f"{k} {w['active']}/{w['truncation']} ({w['expected']:.1f})"
                         for k, w in widths.items()) + " (widths.png)")
    if snr_metrics is not None:
        o, v = snr_metrics["test_oracle"], snr_metrics["val_chosen"]
        echo(f"|mu/sigma| rule: {100 * o['removed']:.1f}% of weights removable within "
             f"{100 * snr_metrics['tolerance']:.0f} pp of the dense test accuracy (lambda "
             f"{o['lambda']:.3g}, read off the test curve); lambda {v['lambda']:.3g} chosen on "
             f"validation removes {100 * v['removed']:.1f}% at test accuracy "
             f"{100 * v['test_acc']:.2f}% (snr_curve.png)")
    echo(f"\nrun directory: {out}")
    return metrics


def _snr_metrics(model: BayesianNet, post: posterior.InferenceData, ds: data_mod.Dataset,
                 scores: dict[str, np.ndarray], test_rows: list[dict[str, float]],
                 tolerance: float) -> dict[str, Any]:
    """How much the lambda rule removes within ``tolerance`` of the dense accuracy: read off
    the test curve (an oracle), and with lambda chosen on the validation split."""
    oracle = pruning.removable(test_rows, tolerance)
    val_rows = pruning.snr_curve(model, post, ds.val, scores=scores)
    chosen = pruning.removable(val_rows, tolerance)
    at = pruning.snr_curve(model, post, ds.test, [chosen["lambda"]], scores=scores)[0]
    return {"tolerance": tolerance, "test_oracle": oracle,
            "val_chosen": {"lambda": chosen["lambda"], "removed": at["removed"],
                           "test_acc": at["acc"], "test_f1_macro": at["f1_macro"]}}


def compare(cfg: RunConfig, out: str | Path, *, methods: list[str] | None = None,
            resume: bool = False, progress: bool = True,
            echo: Callable[[str], Any] = print) -> dict[str, Any]:
    """The pruning comparison of ``cfg`` (its ``compare`` section, or the defaults) into ``out``.

    The plain bases train with ``compare.epochs/lr/batch_size`` (default: the recipe's), the
    variational base by the recipe (SVI, mean-field guide) with the entry's prior.
    """
    from dataclasses import asdict

    cc = cfg.compare or CompareConfig()
    if methods is not None:
        cc = validate(CompareConfig, {**cc.model_dump(), "methods": methods}, "--methods")
    cfg = cfg.model_copy(update={"compare": cc})
    out = check_out(out, resume)
    if resume:
        _refuse_resume_changes(cfg, out)
    inf = cfg.inference
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
    prior = priors.get(cfg.prior.kind, **cfg.prior.model_dump(exclude={"kind"}))

    def make_net() -> torch.nn.Module:
        return nets.build(cfg.net.kind, ds.input_shape, ds.n_classes, cfg.net.hidden,
                          cfg.net.activation, pairs=ds.pairs)

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


#: the seed's tables (seed 002), quoted beside our figures
SEED_L2 = {"none": {"test_ce": 1.4723, "one_minus_auc": 0.0102},
           "shared": {"test_ce": 1.4769, "one_minus_auc": 0.0135},
           "individual": {"test_ce": 1.4651, "one_minus_auc": 0.0017}}
SEED_KERNEL = {"ce_before": 0.63, "ce_after": 0.44, "auc_before": 0.53, "auc_after": 0.84}


def _new_experiment(cfg: RunConfig, out: str | Path
                    ) -> tuple[Path, torch.device, data_mod.Dataset]:
    """An experiment without checkpoints: refuse a used ``out``, then the device and data."""
    out = check_out(out, resume=False)
    device = resolve_device(cfg)
    return out, device, load_data(cfg, device)


def hypergrad(cfg: RunConfig, out: str | Path, *, progress: bool = True,
              echo: Callable[[str], Any] = print) -> dict[str, Any]:
    """Run an entry's ``hypergrad`` experiment (seed 002, M6) into ``out``."""
    from .inference.hypergrad import experiments as ex

    out, device, ds = _new_experiment(cfg, out)
    hc = cfg.hypergrad
    if hc.experiment == "kernel_width" and ds.n_classes != 2:
        raise ConfigError(f"hypergrad.experiment: kernel_width is two-class kernel logistic "
                          f"regression; data {cfg.data.name!r} has {ds.n_classes} classes")
    with open_run_dir(out, False):
        write_text(out / "config.yaml", to_yaml(cfg))
        echo(f"{cfg.name}: hypergradient experiment {hc.experiment!r} on {cfg.data.name} "
             f"({len(ds.train)} train / {len(ds.val)} val / {len(ds.test)} test)")
        if hc.experiment == "kernel_width":
            r = ex.klr_experiment(ds.train, ds.val, ds.test, width0=hc.width0, c=hc.c,
                                  jitter=hc.jitter, outer_steps=hc.outer_steps,
                                  hyper_lr=hc.hyper_lr, inner_tol=hc.inner_tol, progress=progress)
            sk = SEED_KERNEL
            rows = [{"metric": "cross-entropy", "before": r.ce_before, "after": r.ce_after,
                     "seed_before": sk["ce_before"], "seed_after": sk["ce_after"]},
                    {"metric": "AUC", "before": r.auc_before, "after": r.auc_after,
                     "seed_before": sk["auc_before"], "seed_after": sk["auc_after"]}]
            metrics = {"entry": cfg.name, "experiment": hc.experiment,
                       "width_before": r.width_before, "width_after": r.width_after,
                       "test": rows, "history": r.history}
            _plot_history(r.history, "lam_mean", "log kernel width", out / "hypergrad.png",
                          f"{cfg.name}: the RBF width learned by the honest loop")
            echo(format_table([[x["metric"], x["before"], x["after"], x["seed_before"],
                                x["seed_after"]] for x in rows],
                              ["test", f"width {r.width_before:g}", f"learned {r.width_after:.3g}",
                               "seed before", "seed after"]))
        else:
            if cfg.net is None:
                raise ConfigError("hypergrad.experiment l2 needs a net section")

            def make_net():
                return nets.build(cfg.net.kind, ds.input_shape, ds.n_classes, cfg.net.hidden,
                                  cfg.net.activation)

            rows, histories = [], {}
            for mode in hc.modes:
                r = ex.l2_experiment(make_net, ds.train, ds.val, ds.test, mode,
                                     epochs_weights=hc.epochs_weights, epochs_hyper=hc.epochs_hyper,
                                     batch_size=hc.batch_size, lr=hc.lr, k=hc.k,
                                     hyper_lr=hc.hyper_lr, init_decay=hc.init_decay,
                                     optimizer=hc.optimizer, seed=cfg.seed, device=device,
                                     progress=progress)
                rows.append({"mode": mode, "test_ce": r.test_ce, "one_minus_auc": r.one_minus_auc,
                             "test_acc": r.test_acc, "lam_mean": r.lam_mean, "lam_std": r.lam_std,
                             "seconds": r.seconds, "seed_test_ce": SEED_L2[mode]["test_ce"],
                             "seed_one_minus_auc": SEED_L2[mode]["one_minus_auc"]})
                histories[mode] = r.history
            metrics = {"entry": cfg.name, "experiment": hc.experiment, "test": rows,
                       "history": histories}
            if any(histories.values()):
                _plot_history(histories, "val_loss", "validation cross-entropy",
                              out / "hypergrad.png", f"{cfg.name}: the greedy loop")
            echo(format_table([[x["mode"], x["test_ce"], x["one_minus_auc"], x["test_acc"],
                                x["seed_test_ce"], x["seed_one_minus_auc"]] for x in rows],
                              ["regularisation", "test CE", "1 - AUC", "test acc", "seed CE",
                               "seed 1 - AUC"]))
        write_csv(rows, out / "hypergrad.csv")
        write_json(out / "metrics.json", metrics)
        echo(f"\nrun directory: {out}")
        return metrics


def nas(cfg: RunConfig, out: str | Path, *, progress: bool = True,
        echo: Callable[[str], Any] = print) -> dict[str, Any]:
    """Run an entry's ``nas`` experiment (seed 003, M7) into ``out``: ``nas.csv`` (one row per
    searcher and seed, written as each finishes), ``nas.png`` (spread over seeds, stability
    under logit noise), ``metrics.json`` (the per-searcher summary beside the seed's table)."""
    from dataclasses import replace

    from . import nas as nas_mod

    out, device, ds = _new_experiment(cfg, out)
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
                found = nas_mod.build_searcher(name, **settings).search(ds, space, seed=seed,
                                                                        device=device,
                                                                        progress=progress)
                score = nas_mod.retrain(found.genotype, wide, ds, epochs=nc.retrain_epochs,
                                        lr=nc.lr, seed=seed, device=device, progress=progress)
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
            seed_top1, seed_hours = nas_mod.SEED_TABLE.get(name, (None, None))
            summary.append({
                "searcher": name, "test_acc_mean": float(acc.mean()),
                "test_acc_sd": float(acc.std(ddof=1)) if len(acc) > 1 else float("nan"),
                "search_s_mean": float(np.mean([r["search_s"] for r in mine])),
                "params_mean": float(np.mean([r["params"] for r in mine])),
                "cross_seed_change": nas_mod.cross_seed_change([r["genotype"] for r in rs]),
                "seed_top1": seed_top1, "seed_hours": seed_hours})
        nas_mod.plot_stability(runs, space, [0.1, 0.3, 1.0], out / "nas.png")
        metrics = {"entry": cfg.name, "experiment": "nas", "summary": summary, "runs": rows}
        write_json(out / "metrics.json", metrics)
        echo(format_table([[s["searcher"], s["test_acc_mean"], s["test_acc_sd"],
                            s["search_s_mean"], s["params_mean"], s["cross_seed_change"],
                            s["seed_top1"] if s["seed_top1"] is not None else "-"]
                           for s in summary],
                          ["searcher", "test top-1 %", "sd over seeds", "search s", "params",
                           "cell change across seeds", "seed 003 top-1"]))
        echo(f"\nrun directory: {out}")
        return metrics


def _plot_history(history, key: str, label: str, path: Path, title: str) -> None:
    """One line per series of outer-loop rows (a list, or a dict of named lists)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import save_figure

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
    save_figure(fig, path, title)
