"""IBP deep sparse MLP on Fashion-MNIST: inferred widths against dense and horseshoe MLPs.

The ``ibp-mlp`` zoo entry: an MLP with a truncation of ``K_max`` units in
each hidden layer, cascading IBP unit masks in stick-breaking form, SVI with Kumaraswamy /
relaxed-Bernoulli guides and the Concrete temperature annealed; after inference each layer
keeps the units whose posterior inclusion probability exceeds 1/2 and the network is pruned
to them. Run here for several stick concentrations ``alpha`` (the prior's expected first width
is ``alpha H_784``); the negative ELBO per example says which the data prefer. Side by side,
trained in the same process with the same epochs, batch size and learning rate:

  dense K_max MLP       -- plain PyTorch training of the full-width MLP;
  dense, IBP widths     -- plain training of an MLP with the widths the IBP inferred (for the
                           alpha with the best ELBO): the "same-size dense MLP";
  horseshoe MLP         -- the group horseshoe (BC-GHS) on the full-width MLP, units
                           pruned with per-layer thresholds calibrated on the validation split.

    python benchmarks/ibp_mlp.py [--epochs 20] [--kmax 400] [--alphas 3 10 30] [--out DIR]
        [--write-results]

The table goes to ``DIR/RESULTS.md`` and the figure to ``DIR/figures/`` (``--out DIR``; default
``runs/benchmarks/``); ``--write-results`` writes them into the tracked ``benchmarks/``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import Output, add_output_args, markdown_table, provenance  # noqa: E402

from bayesstruct import config, nets, posterior, priors, pruning, runner  # noqa: E402
from bayesstruct.models import BayesianNet  # noqa: E402
from bayesstruct.plots import plot_inclusion  # noqa: E402
from bayesstruct.training import evaluate  # noqa: E402
from bayesstruct.training.plain import train_plain  # noqa: E402


def _point(post, device) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v, dtype=torch.float32, device=device)
            for k, v in posterior.point_estimate(post).items()}


def _widths(small: torch.nn.Module) -> list[int]:
    return [int(m.out_features) for m in small.modules() if isinstance(m, torch.nn.Linear)][:-1]


def bayesian_row(cfg, ds, decision_kw) -> dict:
    model = runner.build_model(cfg, ds)
    t0 = time.perf_counter()
    post = runner.infer(cfg, model, ds, progress=True)
    seconds = time.perf_counter() - t0
    d = pruning.make_decision(post, model, "unit", val=ds.val, **decision_kw)
    params = _point(post, "cpu")
    dense = evaluate(model, params, ds.test)
    after = evaluate(model, pruning.mask_params(params, d.masks), ds.test)
    small = pruning.prune(pruning.mean_network(post, model), d.masks)
    return {"model": model, "post": post, "acc": dense["acc"], "acc_pruned": after["acc"],
            "widths": _widths(small), "params": pruning.count_parameters(small),
            "neg_elbo": float(post.optimization["loss"].values[-1]), "seconds": seconds}


def plain_row(widths: list[int], ds, args) -> dict:
    torch.manual_seed(0)
    net = nets.mlp([784, *widths, 10])
    model = BayesianNet(net, priors.Gaussian())
    t0 = time.perf_counter()
    train_plain(net, ds, epochs=args.epochs, lr=args.plain_lr, batch_size=args.batch_size,
                progress=True, desc=f"plain {widths}")
    seconds = time.perf_counter() - t0
    acc = evaluate(model, dict(net.named_parameters()), ds.test)["acc"]
    return {"acc": acc, "widths": widths, "params": pruning.count_parameters(net),
            "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--kmax", type=int, default=400)
    ap.add_argument("--alphas", type=float, nargs="+", default=[3.0, 10.0, 30.0])
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--plain-lr", type=float, default=1e-3)
    ap.add_argument("--train-size", type=int, default=None)
    add_output_args(ap)
    args = ap.parse_args()
    out = Output(args)
    common = [f"inference.epochs={args.epochs}", f"inference.batch_size={args.batch_size}",
              f"net.hidden=[{args.kmax},{args.kmax}]"]
    if args.train_size:
        common.append(f"data.train_size={args.train_size}")
    cfg0 = config.resolve("ibp-mlp", overrides=common)
    ds = runner.load_data(cfg0)
    print(f"Fashion-MNIST: {len(ds.train)} train / {len(ds.val)} val / {len(ds.test)} test; "
          f"K_max = {args.kmax}, {args.kmax}; {args.epochs} epochs")

    ibp = {}
    for alpha in args.alphas:
        cfg = config.resolve("ibp-mlp", overrides=[*common, f"prior.alpha={alpha}"])
        ibp[alpha] = bayesian_row(cfg, ds, {"unit_threshold": 0.0})
        r = ibp[alpha]
        print(f"ibp alpha={alpha}: widths {r['widths']}, acc {r['acc']:.4f} -> pruned "
              f"{r['acc_pruned']:.4f}, -ELBO/example {r['neg_elbo']:.4f}")
    best = min(ibp, key=lambda a: ibp[a]["neg_elbo"])
    inferred = ibp[best]["widths"]

    hs_cfg = config.resolve("lenet300-bc-horseshoe", overrides=[
        *common, "net.kind=mlp", f"inference.epochs={args.epochs}"])
    hs = bayesian_row(hs_cfg, ds, {"unit_threshold": "auto",
                                   "tolerance": hs_cfg.pruning.val_tolerance})
    print(f"horseshoe: widths {hs['widths']}, acc {hs['acc']:.4f} -> {hs['acc_pruned']:.4f}")
    dense_full = plain_row([args.kmax, args.kmax], ds, args)
    dense_same = plain_row(inferred, ds, args)

    rows = []
    for alpha, r in ibp.items():
        rows.append([f"IBP, alpha = {alpha:g}" + (" (best ELBO)" if alpha == best else ""),
                     " - ".join(map(str, r["widths"])), f"{100 * r['acc']:.2f}",
                     f"{100 * r['acc_pruned']:.2f}", r["params"], f"{r['neg_elbo']:.3f}",
                     f"{r['seconds']:.0f}"])
    rows.append(["horseshoe (BC-GHS), unit thresholds on val",
                 " - ".join(map(str, hs["widths"])), f"{100 * hs['acc']:.2f}",
                 f"{100 * hs['acc_pruned']:.2f}", hs["params"], f"{hs['neg_elbo']:.3f}",
                 f"{hs['seconds']:.0f}"])
    for label, r in ((f"dense {args.kmax} - {args.kmax} (plain)", dense_full),
                     ("dense, the IBP's widths (plain)", dense_same)):
        rows.append([label, " - ".join(map(str, r["widths"])), f"{100 * r['acc']:.2f}", "",
                     r["params"], "", f"{r['seconds']:.0f}"])
    table = markdown_table(rows, ["model", "hidden widths (after pruning)",
                                  "test acc (%), full posterior-mean net",
                                  "test acc (%), pruned net", "parameters after pruning",
                                  "-ELBO / example (last epoch)", "train s"])
    print(table)
    best_model, best_post = ibp[best]["model"], ibp[best]["post"]
    prior_incl = {k: v.numpy() for k, v in best_model.prior.prior_inclusions().items()}
    plot_inclusion(pruning.inclusion_probabilities(best_post, best_model),
                   out.figure("ibp-mlp-widths.png"), prior=prior_incl,
                   title=f"ibp-mlp on Fashion-MNIST (alpha = {best:g}): unit inclusion "
                         "probabilities")
    expected = ", ".join(f"alpha {a:g}: {a * sum(1 / j for j in range(1, 785)):.1f}"
                         for a in ibp)
    cmd = "python benchmarks/ibp_mlp.py " + " ".join(sys.argv[1:])
    out.section("ibp-mlp", "\n".join([
        "## IBP deep sparse MLP on Fashion-MNIST: inferred widths (issue 7)", "",
        f"{provenance()}; command `{cmd.strip()}`. {len(ds.train)} training images; MLP with "
        f"K_max = {args.kmax}, {args.kmax} hidden units; {args.epochs} epochs, batch "
        f"{args.batch_size}. IBP: the `ibp-mlp` entry (Adam lr "
        f"{cfg0.inference.lr}, cosine, KL warm-up {cfg0.inference.kl_warmup_epochs:g} epochs, "
        f"Concrete temperature {cfg0.inference.temperature:g} -> "
        f"{cfg0.inference.temperature_final:g}, q(z) started at the prior's inclusion "
        "probabilities); a unit is kept when its posterior inclusion probability exceeds 1/2 "
        "and the net is pruned to the kept units. The prior's expected first width is alpha "
        f"H_784 ({expected}). Horseshoe: the `lenet300-bc-horseshoe` settings on the same "
        "MLP, per-layer unit thresholds calibrated on the validation split (1 pp). Dense: "
        f"plain Adam (lr {args.plain_lr}, cosine). Figure: `figures/ibp-mlp-widths.png` "
        f"(alpha = {best:g}).", "", table]))


if __name__ == "__main__":
    main()
