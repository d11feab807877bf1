"""The plain experiment: fit one posterior, decide what to prune, analyse, write, print.

    <out>/config.yaml      the resolved run config (re-used by --resume)
    <out>/checkpoints/     SVI: last.pt after every epoch, last.prev.pt the one before;
                           samplers: chain-K.pt per finished chain
    <out>/posterior.nc     the ArviZ posterior
    <out>/history.csv      the engine's rows as training proceeds: SVI one per epoch (loss,
                           KL weight, lr, seconds, validation NLL / accuracy), SGLD / pSGLD
                           one per pass over the data per chain, NUTS / HMC one per chain and
                           draw (the sample statistics, written at the end)
    <out>/pruning.csv      the pruning curve (test accuracy against the fraction removed)
    <out>/pruning.png      its plot
    <out>/snr_curve.csv    variational runs: parameters kept, test accuracy / macro F1 and test
    <out>/snr_curve.png    log-likelihood against the threshold lambda on |mu / sigma|
    <out>/widths.png       IBP runs: each layer's unit inclusion probabilities
    <out>/metrics.json     test metrics, pruning at the default threshold, timings
                           (``inferred_widths`` for IBP runs)
    <out>/network/         the pruned network as TorchScript (pruned.torchscript.pt, loads
                           without bayesstruct), masks.npz, posterior_mean.pt (state dict),
                           manifest.json and README.txt (:mod:`bayesstruct.export`)

The steps, each a function a reader can follow: :func:`fit` (the recipe's engine),
:func:`decide` (the pruning decision), :func:`analyse` (dense and pruned test metrics, the
smaller network, compression, the pruning and SNR curves, IBP widths), :func:`write` (CSV,
figures, ``metrics.json``), :func:`save_network` (``network/``) and :func:`show` (the tables
on the console).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import data as data_mod
from .. import logs, parallel, posterior, pruning
from ..collapse import check_collapse
from ..errors import CheckpointError, ConfigError, UserInputError
from ..export import NETWORK, write_network
from ..files import load_latest_checkpoint, previous_path, write_json, write_text
from ..inference import ENGINES, FitOptions
from ..inference.svi import CHECKPOINT
from ..models import BayesianNet
from ..plots import plot_inclusion, plot_pruning_curve, plot_snr_curves
from ..pruning.criteria import Decision
from ..report import format_table, write_csv
from ..rundir import check_out, open_run_dir
from ..schema import to_yaml
from ..training import evaluate, evaluate_module, train_plain
from .base import (
    PRETRAINED,
    build_model,
    load_data,
    pretrain,
    record_data_source,
    refuse_resume_changes,
    resolve_device,
)
from .registry import register_experiment

if TYPE_CHECKING:
    from ..config import RunConfig

__all__ = ["Analysis", "analyse", "decide", "fit", "run_fit", "save_network", "show", "write"]


@register_experiment("fit", resumable=True, init_from=True,
                     writes=("config.yaml", "checkpoints/", "posterior.nc", "history.csv",
                             "pruning.csv", "pruning.png", "snr_curve.csv", "snr_curve.png",
                             "widths.png", "metrics.json", "network/", PRETRAINED))
def run_fit(cfg: RunConfig, out: str | Path, *, resume: bool = False, progress: bool = True,
            echo: Callable[[str], Any] = print, init_from: str | Path | None = None
            ) -> dict[str, Any]:
    """Fit ``cfg``'s posterior into ``out`` and analyse it; return the metrics (also in
    ``metrics.json``). ``init_from`` (a run directory or a checkpoint file of an SVI run)
    starts the variational parameters from that run's last good checkpoint, with a fresh
    optimiser."""
    if init_from is not None and (resume or not cfg.inference.supports_init_from):
        raise ConfigError("--init-from starts a new SVI run from another run's parameters; it "
                          "does not combine with --resume, compare, hypergrad or nas entries, "
                          f"or engine {cfg.inference.engine!r}")
    if init_from is not None and cfg.net is not None and cfg.net.pretrain_epochs:
        raise ConfigError(f"--init-from starts the guide from another run's parameters, which "
                          f"would replace what net.pretrain_epochs={cfg.net.pretrain_epochs} "
                          "trains; pass --set net.pretrain_epochs=0 with it")
    if not parallel.ranks().main:  # a data-parallel worker: trains its shards, writes nothing
        return _fit_worker(cfg, Path(out), resume, init_from)
    out = check_out(out, resume)
    logs.tensorboard_dir()  # asked for TensorBoard without it installed: refused before any work
    saved = check_resume(cfg, out, echo) if resume else None
    init = init_checkpoint(init_from) if init_from is not None else None
    device = resolve_device(cfg)
    t0 = time.perf_counter()
    ds = load_data(cfg, device)
    cfg = record_data_source(cfg, ds)
    model = build_model(cfg, ds)
    _check_map_criterion(cfg, model)
    _check_input_fraction(cfg, model)
    inf = cfg.inference
    with open_run_dir(out, resume):
        if saved is None or cfg.model_dump() != saved:
            write_text(out / "config.yaml", to_yaml(cfg))
        echo(f"{cfg.name}: {cfg.net.kind} on {cfg.data.name} ({len(ds.train)} train / "
             f"{len(ds.val)} val / {len(ds.test)} test), prior {cfg.prior.kind}, "
             f"{inf.engine} ({inf.summary()}), {model.num_weights()} weights, device {device}")
        if init is not None:
            echo(f"starting from the parameters of {init[1]} (epoch {init[0].get('epoch')})")
        if cfg.net.pretrain_epochs:
            with logs.phase(f"pretraining the network ({cfg.net.pretrain_epochs} epochs of "
                            "plain training)"):
                pretrain(cfg, ds, model, device, out / PRETRAINED, progress=progress)
        post = fit(cfg, model, ds, device=device, checkpoint_dir=out / "checkpoints",
                   resume=resume, progress=progress,
                   init_from=init[0] if init is not None else None,
                   history_path=out / logs.HISTORY)
        train_seconds = time.perf_counter() - t0
        with logs.phase("saving posterior.nc"):
            posterior.save(post, out / "posterior.nc")
        criterion = pruning.criteria.resolve_criterion(cfg.pruning.criterion, post, model)
        calibrate = (", calibrating unit thresholds on validation"
                     if criterion == "unit" and cfg.pruning.unit_threshold == "auto" else "")
        with logs.phase(f"pruning decision ({criterion} criterion{calibrate})"):
            decision = decide(cfg, model, post, ds)
        result = analyse(cfg, model, post, ds, decision, device, progress=progress)
        extra = {"train_seconds": train_seconds, "device": str(device),
                 "n_train": len(ds.train)}
        collapse = None
        if cfg.collapse_check.enabled and getattr(inf, "guide", "delta") != "delta":
            with logs.phase(f"collapse check (a plain fit of the same net, at most "
                            f"{cfg.collapse_check.plain_steps} steps)"):
                collapse = check_collapse(cfg, model, pruning.mean_values(post, model, device),
                                          decision.masks, ds, device)
            extra["collapse_check"] = collapse.to_dict() if collapse is not None else None
        if init is not None:
            extra["init_from"] = str(init[1])
        with logs.phase("writing curves, figures and metrics.json"):
            metrics = write(cfg, out, model, post, result, extra)
        with logs.phase("exporting the pruned network"):
            network = save_network(cfg, out, model, result, ds)
        show(metrics, result, out, echo, network)
        if collapse is not None:
            echo(f"collapse check: validation accuracy {100 * collapse.val_acc:.2f}% against "
                 f"{100 * collapse.plain_val_acc:.2f}% for a {collapse.plain_epochs}-epoch "
                 f"plain fit of the same net ({collapse.plain_lr_schedule} learning rate)"
                 + (f" (on {collapse.n_val} validation examples it sees gaps of "
                    f"{100 * collapse.detectable_gap:.1f} pp or more)"
                    if collapse.detectable_gap > collapse.tolerance else ""))
            if collapse.warning is not None:
                echo(f"WARNING: {collapse.warning}")
    return metrics


# -- step 1: fit ------------------------------------------------------------------------------
def _fit_worker(cfg: RunConfig, out: Path, resume: bool, init_from: str | Path | None
                ) -> dict[str, Any]:
    """Rank ``r > 0`` of a data-parallel run: the same data, model and SVI loop as rank 0 on
    its shard of every minibatch; it reads the checkpoints on ``resume`` and writes nothing
    (rank 0 writes every file of the run directory)."""
    device = resolve_device(cfg)
    ds = load_data(cfg, device)
    cfg = record_data_source(cfg, ds)
    model = build_model(cfg, ds)
    saved = out / PRETRAINED  # rank 0's file (a resumed run): read, never written here
    pretrain(cfg, ds, model, device, saved if saved.is_file() else None)  # else each rank alone
    init = init_checkpoint(init_from) if init_from is not None else None
    fit(cfg, model, ds, device=device, checkpoint_dir=out / "checkpoints", resume=resume,
        progress=False, init_from=init[0] if init is not None else None)
    return {}


def fit(cfg: RunConfig, model: BayesianNet, ds: data_mod.Dataset, *,
        device: torch.device | str = "cpu", checkpoint_dir: Path | None = None,
        resume: bool = False, progress: bool = True,
        init_from: dict | None = None,
        history_path: Path | None = None) -> posterior.InferenceData:
    """Run the recipe's engine (``ENGINES[cfg.inference.engine]``) on ``model`` and ``ds``;
    every engine returns the same ``InferenceData`` layout. ``init_from``: an SVI checkpoint
    whose parameters start the fit; ``history_path``: the ``history.csv`` the engine writes
    its rows to as it trains."""
    options = FitOptions(seed=cfg.seed, device=device, checkpoint_dir=checkpoint_dir,
                         resume=resume, progress=progress, init_from=init_from,
                         history_path=history_path)
    return ENGINES[cfg.inference.engine].fit(cfg.inference, model, ds, options)


# -- step 2: decide ---------------------------------------------------------------------------
def decide(cfg: RunConfig, model: BayesianNet, post: posterior.InferenceData,
           ds: data_mod.Dataset) -> Decision:
    """The pruning decision of ``cfg.pruning`` (criterion ``auto``: the prior's own)."""
    pc = cfg.pruning
    return pruning.make_decision(
        post, model, pc.criterion, rho_threshold=pc.threshold,
        magnitude_threshold=pc.magnitude_threshold, log_alpha_threshold=pc.log_alpha_threshold,
        unit_threshold=pc.unit_threshold, layer_thresholds=pc.layer_thresholds, val=ds.val,
        tolerance=pc.val_tolerance, unit_calibration=pc.unit_calibration,
        unit_fraction=pc.unit_fraction, input_fraction=pc.input_fraction)


# -- step 3: analyse --------------------------------------------------------------------------
@dataclass
class Analysis:
    """What :func:`analyse` measured (the figures of ``metrics.json`` and its curves)."""

    decision: Decision
    dense: dict[str, float]
    pruned: dict[str, float]
    mean_net: torch.nn.Module
    small: torch.nn.Module
    seconds_dense: float
    seconds_pruned: float
    compression: dict[str, Any]
    curve: list[dict[str, float]]
    macs_dense: int = 0
    macs_pruned: int = 0
    snr_curve: list[dict[str, float]] | None = None
    snr: dict[str, Any] | None = None
    widths: dict[str, Any] | None = None
    inclusion: Any = None
    prior_inclusion: dict[str, np.ndarray] | None = None
    #: the pruned posterior mean's test figures when ``pruned`` is those of the retrained net
    before_retrain: dict[str, float] | None = None
    #: the masked network after retraining (``small`` is its pruned form); ``None`` when the
    #: run does not retrain
    retrained: torch.nn.Module | None = None


def retrain(model: BayesianNet, mean_net: torch.nn.Module, masks: dict[str, np.ndarray],
            ds: data_mod.Dataset, epochs: int, lr: float, *, batch_size: int = 128,
            seed: int = 0, device: torch.device | str | None = None, progress: bool = False
            ) -> torch.nn.Module:
    """A copy of the posterior-mean network with ``masks`` applied, trained plainly on the
    training split (minibatches of ``batch_size``; a run passes its recipe's) with the masks
    held (:func:`~bayesstruct.training.train_plain`: Adam, cosine schedule from ``lr``, the
    removed weights kept at exactly zero): the prune-then-retrain protocol of Han et al. (2015)
    and Liu et al. (2017), started from the posterior mean. Categorical likelihoods only (the
    plain loss is the cross-entropy over the class outputs; a run's config refuses the others
    before training)."""
    if getattr(model.likelihood, "name", None) != "categorical":
        raise UserInputError("retraining minimises the cross-entropy over class outputs; the "
                             f"{type(model.likelihood).__name__} likelihood is not categorical "
                             "(set pruning.retrain_epochs=0)")
    net = pruning.apply_masks(copy.deepcopy(mean_net), masks)
    train_plain(net, ds.train, epochs=epochs, lr=lr, batch_size=batch_size, masks=masks,
                lr_schedule="cosine", seed=seed, device=device, progress=progress, desc="retrain")
    return net.eval()


def analyse(cfg: RunConfig, model: BayesianNet, post: posterior.InferenceData,
            ds: data_mod.Dataset, decision: Decision,
            device: torch.device, progress: bool = False) -> Analysis:
    """Test metrics of the posterior mean, dense and pruned; the smaller network and its
    inference time; the compressed sizes; the pruning curve; for variational posteriors the
    curves against the ``|mu / sigma|`` threshold; for IBP priors the inferred widths.
    Each step logs a line when it starts and ends (:func:`bayesstruct.logs.phase`);
    ``progress`` adds progress over the curves' points."""
    pc = cfg.pruning
    masks = decision.masks
    params = pruning.mean_values(post, model, device)
    with logs.phase(f"test metrics, dense and pruned ({len(ds.test)} examples)"):
        dense = evaluate(model, params, ds.test)
        pruned = evaluate(model, pruning.mask_params(params, masks), ds.test)
    mean_net = pruning.mean_network(post, model)
    pruned_net, before_retrain = mean_net, None
    if pc.retrain_epochs:
        with logs.phase(f"retraining the pruned network {pc.retrain_epochs} epochs "
                        "(masks held)"):
            pruned_net = retrain(model, mean_net, masks, ds, pc.retrain_epochs, pc.retrain_lr,
                                 batch_size=int(getattr(cfg.inference, "batch_size", 128)),
                                 seed=cfg.seed, device=device, progress=progress)
            before_retrain, pruned = pruned, evaluate_module(model.likelihood, pruned_net,
                                                             ds.test)
    with logs.phase("shrinking the network and timing it"):
        small = pruning.prune(pruned_net, masks)
        seconds_dense = pruning.inference_seconds(mean_net, ds.test.x)
        seconds_pruned = pruning.inference_seconds(small, ds.test.x)
    with logs.phase(f"compression summary (k-means centroids fine-tuned {pc.finetune_epochs} "
                    "epochs; the quantised and the rounded networks evaluated)"):
        compression = pruning.compression_summary(
            model, masks, _moments(post, model, decision.criterion, params),
            bits_conv=pc.kmeans_bits_conv, bits_fc=pc.kmeans_bits_fc, seed=cfg.seed,
            net=pruned_net, train=ds.train, test=ds.test, finetune_epochs=pc.finetune_epochs,
            finetune_lr=pc.finetune_lr)
    with logs.phase(f"pruning curve ({len(pc.fractions)} fractions, {pc.mc_samples} "
                    "MC draws each)"):
        curve = pruning.pruning_curve(model, post, ds.test, pc.fractions,
                                      scores=decision.scores, mc_samples=pc.mc_samples,
                                      seed=cfg.seed, progress=progress)
    with logs.phase("counting multiply-adds"):
        macs = pruning.count_macs(mean_net, ds.test.x), pruning.count_macs(small, ds.test.x)
    result = Analysis(decision, dense, pruned, mean_net, small, seconds_dense, seconds_pruned,
                      compression, curve, *macs, before_retrain=before_retrain,
                      retrained=pruned_net if before_retrain is not None else None)
    if "variational_loc" in post.groups() and pc.snr_curve:  # the curves against |mu/sigma|
        with logs.phase("SNR curves (test, then validation)"):
            scores = pruning.snr(post, model)
            result.snr_curve = pruning.snr_curve(model, post, ds.test, scores=scores,
                                                 progress=progress, desc="SNR curve (test)")
            result.snr = _snr_metrics(model, post, ds, scores, result.snr_curve,
                                      pc.snr_tolerance, progress=progress)
    if model.prior.discrete:  # IBP: the widths read from the posterior's masks
        result.widths = pruning.inferred_widths(post, model)
        result.prior_inclusion = {k: v.numpy(force=True) for k, v in
                                  model.prior.prior_inclusions().items()}
        result.inclusion = pruning.inclusion_probabilities(post, model)
    return result


def _moments(post: posterior.InferenceData, model: BayesianNet, criterion: str,
             params: dict[str, torch.Tensor]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each weight's posterior mean and variance (what the compressed sizes are coded from)."""
    if "variational_loc" in post.groups():
        return pruning.effective_moments(post, model)
    if criterion == "rho":  # draws of a sampler: the mean and variance of each network weight
        draws = pruning.units.effective_draws(post, model, [s.name for s in model.sites])
        return {k: (d.mean(0), d.var(0)) for k, d in draws.items()}
    return {k: (v.cpu().numpy(), np.zeros(v.shape))
            for k, v in model.prior.net_params(params).items()}


def _snr_metrics(model: BayesianNet, post: posterior.InferenceData, ds: data_mod.Dataset,
                 scores: dict[str, np.ndarray], test_rows: list[dict[str, float]],
                 tolerance: float, progress: bool = False) -> dict[str, Any]:
    """How much the lambda rule removes within ``tolerance`` of the dense accuracy: read off
    the test curve (an oracle), and with lambda chosen on the validation split."""
    oracle = pruning.removable(test_rows, tolerance)
    val_rows = pruning.snr_curve(model, post, ds.val, scores=scores, progress=progress,
                                 desc="SNR curve (validation)")
    chosen = pruning.removable(val_rows, tolerance)
    at = pruning.snr_curve(model, post, ds.test, [chosen["lambda"]], scores=scores)[0]
    return {"tolerance": tolerance, "test_oracle": oracle,
            "val_chosen": {"lambda": chosen["lambda"], "removed": at["removed"],
                           "test_acc": at["acc"], "test_f1_macro": at["f1_macro"]}}


# -- step 4: write ----------------------------------------------------------------------------
def write(cfg: RunConfig, out: Path, model: BayesianNet, post: posterior.InferenceData,
          result: Analysis, extra: dict[str, Any]) -> dict[str, Any]:
    """Write the curves (CSV and figures) and ``metrics.json``; return the metrics.
    ``extra``: keys added at the end (``train_seconds``, ``device``, ``n_train``,
    ``init_from``)."""
    decision, criterion = result.decision, result.decision.criterion
    write_csv(result.curve, out / "pruning.csv")
    plot_pruning_curve(result.curve, out / "pruning.png",
                       title=f"{cfg.name}: pruning by {criterion} ({cfg.data.name} test)")
    if result.snr_curve is not None:
        write_csv(result.snr_curve, out / "snr_curve.csv")
        plot_snr_curves(result.snr_curve, out / "snr_curve.png",
                        title=f"{cfg.name}: removing weights with |mu/sigma| < lambda "
                              f"({cfg.data.name} test)")
    if result.widths is not None:
        plot_inclusion(result.inclusion, out / "widths.png", prior=result.prior_inclusion,
                       title=f"{cfg.name}: unit inclusion probabilities")
    hist = post.optimization if "optimization" in post.groups() else None
    rows, masks = result.curve, decision.masks
    metrics = {
        "entry": cfg.name,
        "recipe": cfg.recipe,
        "dataset": cfg.data.name,
        "engine": cfg.inference.engine,
        "epochs_run": int(post.attrs["epochs_run"]) if "epochs_run" in post.attrs else None,
        "final_loss_per_example": float(hist["loss"].values[-1]) if hist is not None else None,
        "test_acc": result.dense["acc"],
        "test_nll": result.dense["nll"],
        "test_f1_macro": result.dense["f1_macro"],
        "test_acc_mc": rows[0]["acc_mc"] if rows and rows[0]["fraction"] == 0 else None,
        "criterion": criterion,
        "threshold": decision.threshold,
        "layer_thresholds": {k: v if np.isfinite(v) else None  # None: keep all units
                             for k, v in decision.layer_thresholds.items()},
        "fraction_removed": pruning.fraction_removed(masks),
        "test_acc_pruned": result.pruned["acc"],
        "test_nll_pruned": result.pruned["nll"],
        "test_f1_macro_pruned": result.pruned["f1_macro"],
        "retrain_epochs": cfg.pruning.retrain_epochs,
        "test_acc_pruned_before_retrain": (result.before_retrain["acc"]
                                           if result.before_retrain is not None else None),
        "snr": result.snr,
        "inferred_widths": result.widths,
        "weights_total": model.num_weights(),
        "weights_kept": int(sum(int(m.sum()) for m in masks.values())),
        "params_dense": pruning.count_parameters(result.mean_net),
        "params_after_unit_removal": pruning.count_parameters(result.small),
        "nonzero_params_after": pruning.count_parameters(result.small, nonzero=True),
        "units_after": {k: list(v) for k, v in pruning.unit_counts(result.small).items()},
        "hidden_units": pruning.hidden_units(result.mean_net, result.small),
        "macs_dense": result.macs_dense,
        "macs_pruned": result.macs_pruned,
        "shrink_note": pruning.shrink_note(result.small),
        "test_inference_seconds_dense": result.seconds_dense,
        "test_inference_seconds_pruned": result.seconds_pruned,
        "train_seconds": extra.pop("train_seconds", None),
        "device": extra.pop("device", None),
        "compression": result.compression,
        **extra,
    }
    write_json(out / "metrics.json", metrics)
    return metrics


# -- step 5: the network files ----------------------------------------------------------------
def save_network(cfg: RunConfig, out: Path, model: BayesianNet, result: Analysis,
                 ds: data_mod.Dataset, examples: int = 8) -> dict[str, Any]:
    """``out/network/``: the pruned network as TorchScript (traced on the first ``examples``
    test inputs where scripting fails), the decision's masks and the posterior-mean state dict,
    with a manifest (:func:`bayesstruct.export.write_network`); return the manifest."""
    build = {"kind": cfg.net.kind, "input_shape": list(ds.input_shape),
             "n_classes": model.likelihood.outputs(ds.n_classes), "hidden": list(cfg.net.hidden),
             "activation": cfg.net.activation, "pairs": ds.pairs}
    likelihood = (type(model.likelihood).__doc__ or "").strip().splitlines()
    outputs = f"{cfg.likelihood} likelihood: {likelihood[0] if likelihood else ''}".strip()
    inputs = (f"The inputs of data set {cfg.data.name!r} as bayesstruct.data.load gives them"
              + ("; each feature standardised with the mean and standard deviation of the "
                 "training split (data.standardize: true; the statistics are not stored here)."
                 if cfg.data.standardize else " (data.standardize: false)."))
    return write_network(out / NETWORK, result.mean_net, result.small, result.decision.masks,
                         ds.test.x[:examples], build=build, outputs=outputs, inputs=inputs,
                         retrained=result.retrained)


# -- step 6: show -----------------------------------------------------------------------------
def show(metrics: dict[str, Any], result: Analysis, out: Path,
         echo: Callable[[str], Any], network: dict[str, Any] | None = None) -> None:
    """The console summary: accuracy before and after pruning, the compression table, the
    IBP widths, the ``|mu / sigma|`` rule and where the pruned network is (``network``: the
    manifest of :func:`save_network`)."""
    summary, snr, widths = result.compression, result.snr, result.widths
    echo("")
    echo(format_table(
        [[f"{100 * metrics['test_acc']:.2f}", f"{100 * metrics['fraction_removed']:.1f}",
          f"{100 * metrics['test_acc_pruned']:.2f}",
          f"{100 * (metrics['test_acc_pruned'] - metrics['test_acc']):+.2f}"]],
        ["test acc (%) posterior mean",
         f"weights removed (%) at {metrics['criterion']} threshold",
         "test acc (%) after pruning" + (f" and retraining ({metrics['retrain_epochs']} "
                                           "epochs)" if metrics["retrain_epochs"] else ""),
         "change (pp)"]))
    if metrics["retrain_epochs"]:
        echo(f"before retraining (the posterior mean, masked): "
             f"{100 * metrics['test_acc_pruned_before_retrain']:.2f}%")
    echo("")
    echo(format_table(*pruning.summary_rows(summary)))
    echo(f"|W|/|W!=0| = {summary['sparsity_ratio']:.1f}x; compressed size "
         f"{summary['deep_compression_bytes']} bytes (Deep Compression, "
         f"{summary['deep_compression_ratio']:.1f}x) and {summary['bit_precision_bytes']} bytes "
         f"(bit precision, {summary['bit_precision_ratio']:.1f}x) against "
         f"{summary['dense_bytes']} bytes dense float32")
    if summary.get("acc_quantised") is not None:
        echo(f"test acc of the networks these sizes store: {100 * summary['acc_quantised']:.2f}% "
             f"(Deep Compression: k-means shared weights, centroids fine-tuned "
             f"{summary['finetune_epochs']} epochs), {100 * summary['acc_bit_precision']:.2f}% "
             f"(weights rounded to the bit precision), against "
             f"{100 * summary['acc_pruned']:.2f}% unquantised"
             + (" (the retrained network's, rounded to the bits its posterior variances give)"
               if metrics["retrain_epochs"] else ""))
    if widths is not None:
        echo("inferred widths (units with P(z = 1) > 1/2, of the truncation; expected width): "
             + ", ".join(f"{k} {w['active']}/{w['truncation']} ({w['expected']:.1f})"
                         for k, w in widths.items()) + " (widths.png)")
    if snr is not None:
        o, v = snr["test_oracle"], snr["val_chosen"]
        echo(f"|mu/sigma| rule: {100 * o['removed']:.1f}% of weights removable within "
             f"{100 * snr['tolerance']:.0f} pp of the dense test accuracy (lambda "
             f"{o['lambda']:.3g}, read off the test curve); lambda {v['lambda']:.3g} chosen on "
             f"validation removes {100 * v['removed']:.1f}% at test accuracy "
             f"{100 * v['test_acc']:.2f}% (snr_curve.png)")
    units, macs = metrics["hidden_units"], (metrics["macs_dense"], metrics["macs_pruned"])
    speed = metrics["test_inference_seconds_dense"] / max(
        metrics["test_inference_seconds_pruned"], 1e-12)
    removed = (f"{units['dense'] - units['pruned']} of {units['dense']} hidden units removed "
               f"({100 * units['fraction_removed']:.1f}%); " if units["dense"] else "")
    echo(f"shrunk network: {removed}{macs[0]:,} -> {macs[1]:,} multiply-adds per example "
         f"({macs[0] / max(macs[1], 1):.2f}x fewer); a test-set pass at {speed:.2f}x the dense "
         "network's speed")
    if metrics["shrink_note"]:
        echo(f"note: the pruned network is {metrics['shrink_note']}")
    if network is not None:
        ts = network["torchscript"]
        if ts["file"] is None:
            echo(f"warning: the pruned network could not be saved as TorchScript ({ts['error']})")
        else:
            echo(f"pruned network: {out / NETWORK / ts['file']} (torch.jit.load; made by "
                 f"{ts['method']}), with masks.npz and posterior_mean.pt")
    echo(f"\nrun directory: {out}")


# -- resume and warm starts -------------------------------------------------------------------
def _check_map_criterion(cfg: RunConfig, model: BayesianNet) -> None:
    """Refuse, before training, a MAP fit (guide ``delta``) whose pruning criterion reads the
    posterior's noise (``unit``, ``rho``, ``log_alpha``); a prior the guide cannot hold is
    named first, as the thing to change first."""
    if getattr(cfg.inference, "guide", None) != "delta" or cfg.pruning.criterion not in (
            "rho", "log_alpha", "unit"):
        return
    from .. import guides

    try:
        guides.get("delta").setup(model)
    except (ValueError, NotImplementedError) as e:
        raise ConfigError(f"inference.guide: {e}") from None
    raise ConfigError(f"pruning.criterion: {cfg.pruning.criterion!r} reads the posterior's "
                      "noise, and guide 'delta' fits point estimates (a MAP fit); allowed with "
                      "it: magnitude, auto (magnitude for a MAP fit), or a variational guide "
                      "(meanfield, lognormal)")


def _check_input_fraction(cfg: RunConfig, model: BayesianNet) -> None:
    """Refuse, before training, ``pruning.input_fraction`` where the decision will not be a
    unit decision: criterion ``auto`` with a prior that decides single weights."""
    pc = cfg.pruning
    if pc.input_fraction and pc.criterion == "auto" and not (
            model.prior.criterion == "unit" or model.prior.discrete):
        raise ConfigError(f"pruning.input_fraction={pc.input_fraction} removes input units, and "
                          f"prior {cfg.prior.kind!r} decides single weights "
                          f"({model.prior.criterion!r}); allowed with a unit-level prior "
                          "(log_uniform or horseshoe at level unit, ibp, sbp), "
                          "pruning.criterion=unit, or pruning.input_fraction=0")


def check_resume(cfg: RunConfig, out: Path, echo: Callable[[str], Any]) -> dict[str, Any]:
    """The saved config of the run in ``out`` (as a dict), after refusing a resume that would
    change what shaped its training or that the engine refuses (an SVI ``epochs`` below the
    checkpoint's); the engine says what a changed setting does. Writes nothing."""
    saved = refuse_resume_changes(cfg, out)
    cfg.inference.check_resume(saved["inference"], out / "checkpoints", echo)
    return saved


def init_checkpoint(init_from: str | Path) -> tuple[dict, Path]:
    """The last good SVI checkpoint of a run directory (or a checkpoint file)."""
    path = Path(init_from)
    if path.is_dir():
        path = path / "checkpoints" / CHECKPOINT
    if not path.exists() and not previous_path(path).exists():
        raise CheckpointError(f"--init-from {init_from}: no SVI checkpoint at {path}")
    return load_latest_checkpoint(path)
