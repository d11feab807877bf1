"""Sequential Fashion-MNIST: plain vs variational Elman RNNs, with and without empirical Bayes.

The recurrent-network experiment (empirical Bayes, pruning by |mu/sigma|) on an image task:
each image is read row by row (28 steps of 28 pixels) by an Elman RNN,
``h_t = tanh(x_t W + h_{t-1} U + b)``, 64 units, then a linear read-out. Variants, trained one
after another in this process with the same epochs, batch size, learning rate and cosine schedule:

  plain                 -- plain PyTorch training (cross-entropy, Adam), no prior;
  variational I,I       -- SVI, Gaussian prior N(0, 1) per layer held fixed, scalar posterior
                           covariance (one sigma per weight tensor: "I, I");
  variational I,I + EB  -- the same with the prior's mean and variance set to their closed form
                           after every step (``prior_update: closed_form``);
  variational D,I       -- diagonal posterior covariance ("D, I"), fixed prior;
  variational D,I + EB  -- diagonal, empirical Bayes.

Printed per variant: test accuracy and macro F1 of the posterior-mean network, and the fraction
of weights removable with at most 1 pp test-accuracy loss: by ``|mu/sigma| < lambda`` for the
variational nets (read off the test curve, and with lambda chosen on the validation split), by
``|w|`` for the plain one; seconds per epoch relative to the plain epoch. The three SNR curves
(parameters kept, accuracy / macro F1, log-likelihood against lambda) for the four
variational nets go to ``DIR/figures/rnn-fashion-mnist-snr.{png,csv}`` and the table to
``DIR/RESULTS.md`` (``--out DIR``; default ``runs/benchmarks/``); ``--write-results`` writes them
into the tracked ``benchmarks/`` instead.

    python benchmarks/rnn_eb.py [--epochs 10] [--hidden 64] [--train-size N] [--out DIR]
        [--write-results]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import Output, add_output_args, markdown_table, provenance  # noqa: E402

from bayesstruct import config, pruning, runner  # noqa: E402
from bayesstruct.models import BayesianNet  # noqa: E402
from bayesstruct.plots import plot_snr_curves  # noqa: E402
from bayesstruct.report import write_csv  # noqa: E402
from bayesstruct.training import evaluate  # noqa: E402
from bayesstruct.training.plain import train_plain  # noqa: E402

VARIANTS = {
    "variational I,I": ("scalar", "none"),
    "variational I,I + EB": ("scalar", "closed_form"),
    "variational D,I": ("diagonal", "none"),
    "variational D,I + EB": ("diagonal", "closed_form"),
}
FRACTIONS = np.round(np.arange(0.0, 0.99, 0.02), 2)


def magnitude_curve(model: BayesianNet, net: torch.nn.Module, split) -> list[dict]:
    """Accuracy after removing the smallest ``|w|`` (all weight tensors jointly)."""
    params = {k: v.detach() for k, v in net.named_parameters()}
    scores = {s.name: -params[s.name].abs().numpy() for s in model.weight_sites}
    rows = []
    for f in FRACTIONS:
        masks = pruning.decide(scores, fraction=float(f))
        ev = evaluate(model, pruning.mask_params(params, masks), split)
        rows.append({"lambda": float(f), "removed": pruning.fraction_removed(masks), **ev})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.002)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--train-size", type=int, default=None)
    add_output_args(ap)
    args = ap.parse_args()
    out = Output(args)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    base = [f"inference.epochs={args.epochs}", f"inference.lr={args.lr}",
            f"inference.batch_size={args.batch_size}", "inference.lr_schedule=cosine",
            f"net.hidden=[{args.hidden}]", "pruning.mc_samples=0"]
    if args.train_size:
        base.append(f"data.train_size={args.train_size}")
    cfg0 = config.resolve("rnn-fashion-mnist", overrides=base)
    ds = runner.load_data(cfg0)
    print(f"sequential Fashion-MNIST: {len(ds.train)} train / {len(ds.val)} val / "
          f"{len(ds.test)} test; Elman RNN {args.hidden} units; {args.epochs} epochs")

    results, curves = {}, {}
    model = runner.build_model(cfg0, ds)
    t0 = time.perf_counter()
    train_plain(model.net, ds, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                progress=True, desc="plain")
    plain_epoch = (time.perf_counter() - t0) / args.epochs
    params = dict(model.net.named_parameters())
    dense = evaluate(model, params, ds.test)
    mag = magnitude_curve(model, model.net, ds.test)
    val_mag = magnitude_curve(model, model.net, ds.val)
    chosen = pruning.removable(val_mag)["lambda"]  # the fraction, for the magnitude rule
    at = next(r for r in mag if r["lambda"] == chosen)
    results["plain"] = {"acc": dense["acc"], "f1": dense["f1_macro"],
                        "removable": pruning.removable(mag)["removed"],
                        "removable_val": at["removed"], "acc_val": at["acc"],
                        "epoch_s": plain_epoch}
    print(results["plain"])

    for label, (covariance, update) in VARIANTS.items():
        cfg = config.resolve("rnn-fashion-mnist", overrides=[
            *base, f"inference.covariance={covariance}", f"inference.prior_update={update}"])
        model = runner.build_model(cfg, ds)
        t0 = time.perf_counter()
        post = runner.infer(cfg, model, ds, progress=True)
        epoch_s = (time.perf_counter() - t0) / args.epochs
        scores = pruning.snr(post, model)
        rows = pruning.snr_curve(model, post, ds.test, scores=scores)
        val_rows = pruning.snr_curve(model, post, ds.val, scores=scores)
        lam = pruning.removable(val_rows)["lambda"]
        at = pruning.snr_curve(model, post, ds.test, [lam], scores=scores)[0]
        curves[label] = rows
        results[label] = {"acc": rows[0]["acc"], "f1": rows[0]["f1_macro"],
                          "removable": pruning.removable(rows)["removed"],
                          "removable_val": at["removed"], "acc_val": at["acc"],
                          "epoch_s": epoch_s}
        print(label, results[label])

    table = markdown_table(
        [[label, f"{100 * r['acc']:.2f}", f"{100 * r['f1']:.2f}",
          f"{100 * r['removable']:.1f}", f"{100 * r['removable_val']:.1f} "
          f"({100 * r['acc_val']:.2f})", f"{r['epoch_s']:.1f} ({r['epoch_s'] / plain_epoch:.2f}x)"]
         for label, r in results.items()],
        ["model", "test acc (%)", "macro F1 (%)", "removable at <= 1 pp, test curve (%)",
         "removable, threshold chosen on val (%) (test acc)", "s / epoch (x plain)"])
    print(table)
    write_csv([{"model": k, **r} for k, rows in curves.items() for r in rows],
              out.figure("rnn-fashion-mnist-snr.csv"))
    plot_snr_curves(curves, out.figure("rnn-fashion-mnist-snr.png"),
                    title=f"Elman RNN ({args.hidden} units) on sequential Fashion-MNIST: "
                          "removing weights with |mu/sigma| < lambda")
    cmd = "python benchmarks/rnn_eb.py " + " ".join(sys.argv[1:])
    out.section("rnn-eb", "\n".join([
        "## Sequential Fashion-MNIST: plain vs variational RNNs, with and without empirical "
        "Bayes (issue 6)", "",
        f"{provenance()}; command `{cmd.strip()}`. {len(ds.train)} training images read row by "
        f"row, Elman RNN with {args.hidden} units, {args.epochs} epochs, Adam lr {args.lr} "
        f"(cosine), batch {args.batch_size}. Removable: the largest fraction of weights whose "
        "removal (|mu/sigma| < lambda; |w| for the plain net) costs at most 1 pp of test "
        "accuracy; the val column picks the threshold on the validation split and reports the "
        "test accuracy there. Figure: `figures/rnn-fashion-mnist-snr.png`.", "", table]))


if __name__ == "__main__":
    main()
