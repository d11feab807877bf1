"""Config -> run directory: the whole pipeline of one experiment.

    <out>/config.yaml      the resolved RunConfig (re-used by --resume)
    <out>/checkpoints/     last.pt after every epoch
    <out>/posterior.nc     the ArviZ posterior (M9)
    <out>/pruning.csv      the pruning curve (M5)
    <out>/pruning.png      its plot
    <out>/metrics.json     test metrics, pruning at the default threshold, timings

Every file is written atomically; an existing run is never overwritten (resume it instead).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import data as data_mod
from . import guides, nets, posterior, priors, pruning
from .config import ConfigError, RunConfig, load_yaml, to_yaml, validate
from .files import write_text
from .inference import svi
from .inference.svi import evaluate
from .models import BayesianNet
from .report import format_table, plot_pruning_curve, write_csv

__all__ = ["build_model", "load_run_config", "run"]


def build_model(cfg: RunConfig, ds: data_mod.Dataset) -> BayesianNet:
    """The BayesianNet a config describes (network initialised from ``cfg.seed``)."""
    torch.manual_seed(cfg.seed)
    net = nets.build(cfg.net.kind, ds.input_shape, ds.n_classes, cfg.net.hidden,
                     cfg.net.activation)
    prior_kw = cfg.prior.model_dump(exclude={"kind"})
    prior = priors.get(cfg.prior.kind, **prior_kw)
    return BayesianNet(net, prior, cfg.likelihood, num_data=len(ds.train))


def load_run_config(out: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The config saved in a run directory, with ``overrides`` applied (for --resume)."""
    from .config import apply_overrides

    path = Path(out) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"nothing to resume: {path} does not exist")
    return validate(RunConfig, apply_overrides(load_yaml(path), overrides), str(path))


def run(cfg: RunConfig, out: str | Path, *, resume: bool = False, progress: bool = True,
        echo: Callable[[str], Any] = print) -> dict[str, Any]:
    """Run one experiment into ``out``; return its metrics (also in ``metrics.json``)."""
    out = Path(out)
    if (out / "config.yaml").exists() and not resume:
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it or choose "
                          "another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.yaml", to_yaml(cfg))
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but CUDA is not available here; use cpu")

    t0 = time.perf_counter()
    ds = data_mod.load(cfg.data.name, seed=cfg.seed, val_fraction=cfg.data.val_fraction,
                       test_fraction=cfg.data.test_fraction, train_size=cfg.data.train_size,
                       data_dir=cfg.data.data_dir, standardize=cfg.data.standardize,
                       device=device)
    model = build_model(cfg, ds)
    inf = cfg.inference
    guide_kw = {"init_scale": inf.init_scale} if inf.guide == "meanfield" else {}
    guide = guides.get(inf.guide, **guide_kw)
    echo(f"{cfg.name}: {cfg.net.kind} on {cfg.data.name} ({len(ds.train)} train / "
         f"{len(ds.val)} val / {len(ds.test)} test), prior {cfg.prior.kind}, "
         f"guide {inf.guide}, {model.num_weights()} weights, device {device}")
    post = svi(model, guide, ds, epochs=inf.epochs, batch_size=inf.batch_size, lr=inf.lr,
               lr_schedule=inf.lr_schedule,
               kl_weight=inf.kl_weight, kl_warmup_epochs=inf.kl_warmup_epochs, device=device,
               seed=cfg.seed, patience=inf.patience, checkpoint_dir=out / "checkpoints",
               resume=resume, num_draws=inf.num_draws, eb_every=inf.eb_every,
               progress=progress)
    train_seconds = time.perf_counter() - t0
    posterior.save(post, out / "posterior.nc")

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

    hist = post.optimization if "optimization" in post.groups() else None
    metrics = {
        "entry": cfg.name,
        "recipe": cfg.recipe,
        "dataset": cfg.data.name,
        "epochs_run": int(post.attrs.get("epochs_run", inf.epochs)),
        "final_loss_per_example": float(hist["loss"].values[-1]) if hist is not None else None,
        "test_acc": dense["acc"],
        "test_nll": dense["nll"],
        "test_acc_mc": rows[0]["acc_mc"] if rows and rows[0]["fraction"] == 0 else None,
        "criterion": criterion,
        "threshold": decision.threshold,
        "layer_thresholds": {k: v if np.isfinite(v) else None  # None: keep all units
                             for k, v in decision.layer_thresholds.items()},
        "fraction_removed": pruning.fraction_removed(masks),
        "test_acc_pruned": after["acc"],
        "test_nll_pruned": after["nll"],
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
    }
    write_text(out / "metrics.json", json.dumps(metrics, indent=2))
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
    echo(f"\nrun directory: {out}")
    return metrics
