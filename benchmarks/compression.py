"""Compression table: dense, magnitude pruning + retraining, sparse VD, BC-GNJ, BC-GHS, SBP.

For one architecture (LeNet-300-100 or LeNet-5-Caffe) on Fashion-MNIST, in one run:

  dense      -- the plain ``torch.nn`` network, cross-entropy, Adam (cosine lr), same epochs;
  magnitude  -- the dense net pruned by |w| (one global threshold per round) to the sparsity
                sparse VD reached, iteratively (Han et al. 2015): up to ``PRUNE_ROUNDS``
                rounds with the kept fraction falling geometrically from 30 %, each followed
                by retraining with the mask held at the training lr (``retrain_epochs`` in
                all, split over the rounds);
  sparse VD, BC-GNJ, BC-GHS, SBP -- the zoo entries ``<net>-sparsevd``, ``<net>-bc-gnj``,
                ``<net>-bc-horseshoe``, ``<net>-sbp`` through ``bayesstruct.runner.run`` (what
                ``bayesstruct run`` does), with their own pruning rule;
  BC-GNJ with a target share of pixels (LeNet-300-100, ``--input-fraction``, default 0.81) --
                the same entry with ``pruning.input_fraction`` and ``pruning.retrain_epochs``,
                beside the same decision with its pixels chosen at random, retrained alike.

Columns: test error of the unpruned and of the pruned network, the test error of a plain
network with the same weight mask trained from scratch (the dense recipe and initialisation;
Liu et al. 2019), % weights kept, units kept per layer (input units
of every layer, then the last layer's outputs), |W|/|W != 0|, Deep-Compression bytes
(k-means + Huffman) with their ratio against float32 and the test error of the network those
bytes store (k-means shared weights, centroids fine-tuned on the training split for
``pruning.finetune_epochs`` epochs, Han et al. 2016), the bit-precision bytes (Louizos et al.
2017) with the test error of the network rounded to those bits, training time. The table is
printed and written, as the architecture's section, into ``DIR/RESULTS.md`` (``--out DIR``; default
``runs/benchmarks/``), or with ``--write-results`` into the tracked ``benchmarks/RESULTS.md``;
``--methods`` runs a subset beside the dense network and writes it as a section of its own
(``compression:lenet300:sbp``), leaving the full table as it was; ``--pretrained`` starts
every method from the dense network's weights (``net.init_weights``) and writes its own
section (``...:pretrained``); a ``--seed`` other than 0 writes one more (``...:seed1``), so
seeds sit side by side.

    python benchmarks/compression.py --net lenet300 [--epochs 30] [--data-dir DIR]
        [--methods sparsevd,bc-gnj,bc-horseshoe,sbp] [--pretrained] [--seed N] [--out DIR]
        [--write-results]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bayesstruct import data, nets, pruning
from bayesstruct.config import resolve
from bayesstruct.models import BayesianNet
from bayesstruct.priors import Gaussian
from bayesstruct.report import format_table
from bayesstruct.training.plain import evaluate_net, train_plain

sys.path.insert(0, str(Path(__file__).parent))
from _results import Output, add_output_args  # noqa: E402

#: rounds of iterative magnitude pruning (at most one per retraining epoch)
PRUNE_ROUNDS = 4
METHODS = {"sparsevd": "sparse VD", "bc-gnj": "BC-GNJ", "bc-horseshoe": "BC-GHS", "sbp": "SBP"}
#: the BC-GNJ twin that removes a target fraction of the input pixels and retrains
INPUTS = "bc-gnj-inputs"
ANCHORS = {  # published MNIST numbers (error %, compression |W|/|W != 0|) to quote beside
    "lenet300": "Published on MNIST: sparse VD LeNet-300-100 1.92% error at 68x "
                "(Molchanov et al. 2017).",
    "lenet5": "Published on MNIST: sparse VD LeNet-5 0.75% error at 280x (Molchanov et al. "
              "2017); BC LeNet-5 1.0% error at 108x (GNJ) / 156x (GHS) (Louizos et al. 2017); SBP "
              "LeNet-5-Caffe 20-50-800-500 -> 3-18-284-283 units at 0.86% error (the dense "
              "network: 0.80%) (Neklyudov et al. 2017).",
}


def _train_plain(net, ds, epochs, lr, batch_size, seed, masks=None):
    """Plain cross-entropy training (Adam, cosine lr; masked weights held at zero): seconds."""
    t0 = time.perf_counter()
    train_plain(net, ds, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, masks=masks)
    return time.perf_counter() - t0


def _error(net, split):
    return 100.0 * (1.0 - evaluate_net(net, split)["acc"])


def _point_row(name, net, ds, masks, seconds, pc, seed, unpruned):
    """A row for a plain network: point estimates, so every weight gets 23 significand bits
    (float32) and the rounded network is the masked one."""
    model = BayesianNet(net, Gaussian())
    moments = {s.name: (p.detach().numpy(), np.zeros(p.shape))
               for s, p in zip(model.sites, net.parameters(), strict=True)
               if s.role == "weight"}
    masks = masks or {s.name: np.ones(s.shape, dtype=bool) for s in model.weight_sites}
    summary = pruning.compression_summary(
        model, masks, moments, bits_conv=pc.kmeans_bits_conv, bits_fc=pc.kmeans_bits_fc,
        seed=seed, net=net, train=ds.train, test=ds.test, finetune_epochs=pc.finetune_epochs,
        finetune_lr=pc.finetune_lr)
    masked = pruning.apply_masks(net, masks)
    small = pruning.prune(net, masks)
    speedup = (pruning.inference_seconds(net, ds.test.x)
               / pruning.inference_seconds(small, ds.test.x))
    macs = (pruning.count_macs(net, ds.test.x[:1]), pruning.count_macs(small, ds.test.x[:1]))
    return _row(name, unpruned, _error(masked, ds.test), summary, seconds, speedup, macs=macs)


def _err(acc):
    return "n/a" if acc is None else f"{100.0 * (1.0 - acc):.2f}"


def _row(name, unpruned, error, summary, seconds, speedup, scratch=None, macs=None):
    layers = summary["layers"]
    units = "-".join([str(layer["in_units_kept"]) for layer in layers]
                     + [str(layers[-1]["out_units_kept"])])
    hidden = [layer["out_units_kept"] for layer in layers[:-1]]
    hidden_total = sum(layer["out_units"] for layer in layers[:-1])
    return [name, f"{unpruned:.2f}", f"{error:.2f}",
            "n/a" if scratch is None else f"{scratch:.2f}",
            f"{100 * summary['weights_kept_fraction']:.2f}", units,
            f"{100 * (1 - sum(hidden) / hidden_total):.1f}",
            f"{macs[1]:,} ({macs[0] / macs[1]:.2f}x fewer)" if macs else "n/a",
            f"{summary['sparsity_ratio']:.1f}x", str(summary["deep_compression_bytes"]),
            f"{summary['deep_compression_ratio']:.1f}x", _err(summary.get("acc_quantised")),
            str(summary["bit_precision_bytes"]), f"{summary['bit_precision_ratio']:.1f}x",
            _err(summary.get("acc_bit_precision")), f"{speedup:.2f}x", f"{seconds:.0f}"]


HEADER = ["method", "test error (%), unpruned", "test error (%)",
          "test error (%), same mask trained from scratch", "weights kept (%)",
          "units kept per layer", "hidden units removed (%)",
          "multiply-adds per example, pruned net", "|W|/|W!=0|",
          "bytes (k-means+Huffman)", "ratio vs float32", "test error (%), k-means net",
          "bytes (bit precision)", "ratio vs float32", "test error (%), rounded net",
          "pruned-net inference speed-up", "train time (s)"]


def _fmt(thresholds):
    return ", ".join(f"{k} {'keep all' if v is None else f'{v:.2f}'}"
                     for k, v in thresholds.items())


def _rule(method, criterion, threshold, layers, prior):
    if criterion == "unit":
        score = ("-E_q[log theta_g] (the expected log group scale, Louizos et al. 2017)"
                 if getattr(prior, "unit_rule", "snr") == "log_scale" else
                 "-2 log SNR_g of the unit's noise (Neklyudov et al. 2017)"
                 if prior.kind == "sbp" else "log alpha_g")
        return (f"{method}: units with {score} >= a per-layer threshold, calibrated on the "
                f"validation split ({_fmt(layers)})")
    return f"{method}: {criterion} >= {threshold}"


def _markdown(rows):
    def cells(r):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |"

    out = [cells(HEADER), "|" + "---|" * len(HEADER)] + [cells(r) for r in rows]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", choices=["lenet300", "lenet5"], default="lenet300")
    ap.add_argument("--epochs", type=int, default=None, help="default: the zoo entries' epochs")
    ap.add_argument("--retrain-epochs", type=int, default=None)
    ap.add_argument("--train-size", type=int, default=None,
                    help="use only this many training examples (for a quick run)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=",".join(METHODS),
                    help=f"comma-separated zoo methods to run beside the dense network (default: "
                         f"all, {','.join(METHODS)}; the magnitude baseline needs sparsevd)")
    ap.add_argument("--pretrained", action="store_true",
                    help="start every zoo method from the dense network's weights "
                         "(net.init_weights; the protocol of Molchanov et al. 2017 and "
                         "Neklyudov et al. 2017) instead of its initialisation")
    # 0.81: the target removes floor(f 784) pixels, and floor(0.8 * 784) = 627 is 79.97 %
    ap.add_argument("--input-fraction", type=float, default=0.81,
                    help="LeNet-300-100: one more BC-GNJ row with this fraction of the input "
                         "pixels removed (pruning.input_fraction, the highest log alpha_g) and "
                         "the pruned network retrained, beside the same decision with the "
                         "pixels chosen at random and retrained the same way (0: no such rows)")
    ap.add_argument("--input-retrain-epochs", type=int, default=10,
                    help="retraining epochs of those rows (pruning.retrain_epochs)")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="extra key=value overrides for the zoo runs (as bayesstruct run --set)")
    add_output_args(ap)
    args = ap.parse_args()
    out = Output(args)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    overrides = [f"data.train_size={args.train_size}"] if args.train_size else []
    overrides += args.overrides
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    if args.epochs:
        overrides.append(f"inference.epochs={args.epochs}")
    chosen = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(METHODS))
    if unknown or not chosen:
        ap.error(f"--methods {args.methods!r}: unknown {unknown}; allowed: {', '.join(METHODS)}")
    cfgs = {m: resolve(f"{args.net}-{m}", None, [*overrides, f"seed={args.seed}"])
            for m in chosen}
    labels = dict(METHODS)
    for m in list(cfgs):  # an entry that bounds q's scales: its unbounded twin beside it
        if cfgs[m].inference.max_scale is not None:
            twin = f"{m}-unbounded"
            cfgs[twin] = resolve(f"{args.net}-{m}", None, [*overrides, f"seed={args.seed}",
                                                            "inference.max_scale=null"])
            labels[twin] = f"{METHODS[m]}, q unbounded"
    if args.net == "lenet300" and args.input_fraction and "bc-gnj" in cfgs:
        cfgs[INPUTS] = resolve(f"{args.net}-bc-gnj", None, [
            *overrides, f"seed={args.seed}", f"pruning.input_fraction={args.input_fraction}",
            f"pruning.retrain_epochs={args.input_retrain_epochs}"])
        labels[INPUTS] = (f"BC-GNJ, {100 * args.input_fraction:g} % of pixels removed, "
                          f"retrained {args.input_retrain_epochs} epochs")
    if "sbp" in cfgs:  # the log-normal guide's other choice: mean-field weights underneath
        extra = ["inference.weights=meanfield"]
        if args.net == "lenet300":  # bounded like the Bayesian Compression entries' first layer
            extra += ["inference.max_scale=0.2", 'inference.max_scale_sites=["fc1.*"]']
        cfgs["sbp-meanfield"] = resolve(f"{args.net}-sbp", None,
                                        [*overrides, f"seed={args.seed}", *extra])
        labels["sbp-meanfield"] = "SBP, mean-field weights"
    first = next(iter(cfgs.values()))
    epochs, lr, bs = first.inference.epochs, first.inference.lr, first.inference.batch_size
    pc = first.pruning
    ds = data.load("fashion-mnist", seed=args.seed, train_size=args.train_size,
                   data_dir=args.data_dir)
    from bayesstruct import runner

    rows, results = [], {}
    dense = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.pretrained:  # the dense net first: every method starts from its weights
            dense, t_dense = _dense(args, ds, epochs, lr, bs)
            torch.save(dense.state_dict(), Path(tmp) / "dense.pt")
            for m, cfg in cfgs.items():
                cfgs[m] = cfg.model_copy(update={"net": cfg.net.model_copy(
                    update={"init_weights": str(Path(tmp) / "dense.pt")})})
                labels[m] = f"{labels[m]}, from the dense net"
        for m, cfg in cfgs.items():
            print(f"== {labels[m]}: {cfg.name}, {cfg.inference.epochs} epochs", flush=True)
            metrics = runner.run(cfg, Path(tmp) / m, progress=True)
            results[m] = metrics
            with np.load(Path(tmp) / m / "network" / "masks.npz") as f:
                masks = {k: f[k] for k in f.files}
            # the pruned architecture (and weight mask) trained as a plain net from the dense
            # net's initialisation and recipe: what the mask is worth without the posterior
            torch.manual_seed(args.seed)
            scratch = nets.build(args.net, ds.input_shape, ds.n_classes)
            _train_plain(scratch, ds, epochs, lr, bs, args.seed, masks)
            rows.append(_row(labels[m], 100 * (1 - metrics["test_acc"]),
                             100 * (1 - metrics["test_acc_pruned"]),
                             metrics["compression"], metrics["train_seconds"],
                             metrics["test_inference_seconds_dense"]
                             / metrics["test_inference_seconds_pruned"],
                             scratch=_error(scratch, ds.test),
                             macs=(metrics["macs_dense"], metrics["macs_pruned"])))
            if m == INPUTS:
                row, metrics["random_pixel_errors"] = _random_inputs_row(
                    cfg, Path(tmp) / m, ds, masks, metrics, pc, args.seed)
                rows.append(row)

    if dense is None:
        dense, t_dense = _dense(args, ds, epochs, lr, bs)
    dense_err = _error(dense, ds.test)
    dense_row = _point_row("dense", dense, ds, None, t_dense, pc, args.seed, dense_err)

    retrain = args.retrain_epochs or max(1, epochs // 3)
    rounds = min(PRUNE_ROUNDS, retrain)
    if "sparsevd" not in results:  # the magnitude baseline prunes to sparse VD's level
        _finish(args, out, ds, cfgs, labels, results, [dense_row, *rows], epochs, retrain,
                rounds, pc)
        return
    kept = results["sparsevd"]["compression"]["weights_kept_fraction"]
    # iterative pruning (Han et al. 2015, Sec. 3.5): one-shot pruning to sparse VD's level
    # followed by retraining at a tenth of the learning rate left LeNet-5 near chance; prune
    # in geometric steps from 30 % kept, retraining at the training lr after each step
    print(f"== magnitude pruning to {100 * kept:.2f}% kept in {rounds} rounds, retrain "
          f"{retrain} epochs", flush=True)
    pruned, t_retrain = dense, 0.0
    for i, keep in enumerate(np.geomspace(max(kept, 0.3), kept, rounds)):
        scores = {n: -p.detach().abs().numpy() for n, p in pruned.named_parameters()
                  if n.endswith("weight")}
        masks = pruning.decide(scores, fraction=1.0 - float(keep))
        pruned = pruning.apply_masks(pruned, masks)
        n_epochs = retrain // rounds + int(i >= rounds - retrain % rounds)  # extra: at the end
        t_retrain += _train_plain(pruned, ds, n_epochs, lr, bs, args.seed + i, masks)
    mag_row = _point_row("magnitude + retrain", pruned, ds, masks, t_dense + t_retrain, pc,
                         args.seed, dense_err)

    _finish(args, out, ds, cfgs, labels, results, [dense_row, mag_row, *rows], epochs, retrain,
            rounds, pc)


#: draws of the random-pixel control (the table shows the first; the text lists them all)
RANDOM_DRAWS = 5


def _random_inputs_row(cfg, run_dir, ds, masks, metrics, pc, seed):
    """The input-fraction row's decision with its pixels chosen at random (as many as it
    kept; its hidden units as they are), retrained from the same posterior mean the same way:
    what the posterior's choice of pixels is worth beyond their number. ``RANDOM_DRAWS``
    draws; returns the first one's row and every draw's test error (%)."""
    from bayesstruct.experiments.base import build_model
    from bayesstruct.experiments.fit import retrain

    model = build_model(cfg, ds)
    mean = nets.build("lenet300", ds.input_shape, ds.n_classes)
    mean.load_state_dict(torch.load(run_dir / "network" / "posterior_mean.pt",
                                    weights_only=True))
    first = masks["fc1.weight"]
    pixels = first.any(0)
    rng = np.random.default_rng(seed)
    row, errors = None, []
    for _ in range(RANDOM_DRAWS):
        chosen = np.zeros_like(pixels)
        chosen[rng.choice(pixels.size, int(pixels.sum()), replace=False)] = True
        drawn = {**masks, "fc1.weight": first.any(1)[:, None] & chosen[None, :]}
        t0 = time.perf_counter()
        net = retrain(model, mean, drawn, ds, cfg.pruning.retrain_epochs,
                      cfg.pruning.retrain_lr, batch_size=cfg.inference.batch_size,
                      seed=cfg.seed)
        seconds = time.perf_counter() - t0
        errors.append(_error(net, ds.test))
        if row is None:
            row = _point_row(f"same, {int(pixels.sum())} pixels at random, retrained the same "
                             "way", net, ds, drawn, seconds, pc, seed,
                             100 * (1 - metrics["test_acc"]))
    return row, errors


def _inputs_rule(label, cfg, random_errors) -> str:
    """How the input-fraction row and its random-pixel control were made, for the text."""
    pc = cfg.pruning
    return (f". {label}: the hidden units decided as in the BC-GNJ row with every pixel held "
            f"(so its fc1 threshold reads 'keep all'), then the {100 * pc.input_fraction:g} % "
            "of the pixels with the largest log alpha_g removed (`pruning.input_fraction`) and "
            f"the masked posterior-mean network retrained {pc.retrain_epochs} epochs with the "
            f"masks held (`pruning.retrain_epochs`; Adam from lr {pc.retrain_lr:g}, cosine "
            "schedule); its test error, sizes and quantised networks are the retrained "
            "network's (the bit precision from the posterior's variances). The row below it "
            "keeps that decision's hidden units and as many pixels, chosen at random, and "
            f"retrains the same posterior mean the same way; {len(random_errors)} draws of "
            "those pixels gave test errors of " + ", ".join(f"{e:.2f}" for e in random_errors)
            + f" % (mean {np.mean(random_errors):.2f} %; the row shows the first)")


def _dense(args, ds, epochs, lr, bs):
    """The plain dense network of the table and its training seconds."""
    print(f"== dense: {epochs} epochs", flush=True)
    torch.manual_seed(args.seed)
    dense = nets.build(args.net, ds.input_shape, ds.n_classes)
    return dense, _train_plain(dense, ds, epochs, lr, bs, args.seed)


def _finish(args, out, ds, cfgs, labels, results, rows, epochs, retrain, rounds, pc) -> None:
    """Print the table and write it, with how it was measured, as the net's section."""
    print()
    print(format_table(rows, HEADER))
    thresholds = {m: (r["criterion"], r["threshold"], r["layer_thresholds"])
                  for m, r in results.items()}
    when = datetime.date.today().isoformat()
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    size = f"{len(ds.train)} training examples" + (" (subset)" if args.train_size else "")
    flags = [f"--{k.replace('_', '-')} {v}" for k, v in (
        ("epochs", args.epochs), ("train_size", args.train_size), ("seed", args.seed)) if v]
    flags += [f"--set {shlex.quote(o)}" for o in args.overrides]
    flags += ["--pretrained"] if args.pretrained else []
    if set(cfgs) - {f"{m}-unbounded" for m in METHODS} - {INPUTS, "sbp-meanfield"} != set(
            METHODS):
        flags.append(f"--methods {args.methods}")
    cmd = " ".join(["python benchmarks/compression.py --net", args.net, *flags])
    text = (f"Measured {when} on {machine} (CPU), torch {torch.__version__}; command "
            f"`{cmd}`; Fashion-MNIST ({size}), {epochs} epochs each"
            + (f" (the magnitude baseline: {epochs} dense + {retrain} retraining epochs over "
               f"{rounds} rounds of iterative pruning)" if "sparsevd" in results else "")
            + (". Every zoo method started from the dense network's weights "
               "(`net.init_weights`; the protocol of Molchanov et al. 2017 and Neklyudov et al. "
               "2017); their training seconds exclude the dense network's"
               if args.pretrained else "")
            + ". Errors are of the unpruned and the pruned network "
            f"(posterior mean for the Bayesian methods; the magnitude baseline's unpruned "
            f"network is the dense one); 'same mask trained from scratch': a plain network "
            f"with the method's weight mask trained from the dense network's initialisation "
            f"with the dense recipe (Liu et al. 2019's check of what the structure alone is "
            f"worth); beside each size, the error of the "
            f"network that size stores (Deep Compression: k-means shared weights, "
            f"{2 ** pc.kmeans_bits_fc} per fc layer and {2 ** pc.kmeans_bits_conv} per conv "
            f"layer, centroids fine-tuned {pc.finetune_epochs} epochs at lr "
            f"{pc.finetune_lr:g}; bit precision: kept weights rounded to each layer's "
            f"significand bits, 23 for the point estimates). Pruning rules: "
            + "; ".join(_rule(labels[m], c, t, lt, cfgs[m].prior)
                        for m, (c, t, lt) in thresholds.items())
            + "".join(f". {labels[m]}: weights point-estimated (the paper's setting)"
                      for m, c in cfgs.items() if c.inference.weights in (None, "point")
                      and c.inference.guide == "lognormal")
            + "".join(f". {labels[m]}: the guide's standard deviations of "
                      f"{', '.join(c.inference.max_scale_sites)} bounded at "
                      f"{c.inference.max_scale:g} (`inference.max_scale`"
                      + ("; the 'q unbounded' row drops the bound)" if m != "sbp-meanfield"
                         else ")") for m, c in cfgs.items()
                      if c.inference.max_scale is not None and m != INPUTS)
            + (_inputs_rule(labels[INPUTS], cfgs[INPUTS], results[INPUTS]["random_pixel_errors"])
               if INPUTS in cfgs else "")
            + ".\n\n" + _markdown(rows) + "\n\n" + ANCHORS[args.net])
    print("\n" + text)
    subset = [m for m in METHODS if m in cfgs]
    out.section(f"compression:{args.net}" + ("" if len(subset) == len(METHODS) else
                                             f":{'+'.join(subset)}")
                + (":pretrained" if args.pretrained else "")
                + (f":seed{args.seed}" if args.seed else ""), text)


if __name__ == "__main__":
    main()
