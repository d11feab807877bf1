"""Small tabular networks: each prior's default recipe against the plain network it regularises.

Every scikit-learn bundled classification set (iris, wine, breast_cancer, digits) x
{logistic regression, an MLP with one hidden layer of 32 units, an MLP with two} x
{ARD with empirical Bayes (the default entry's prior), ARD with a Gamma hyperprior, the fixed
Gaussian N(0, 1), the log-uniform prior (sparse variational dropout)} x 5 seeds. Every
Bayesian net is trained with the default entry's recipe (``ard-logreg-digits``: SVI, mean-field
guide, 150 epochs, batch 64, lr 0.01) and nothing but ``data.name``, ``net`` and ``prior``
changed, as a user swapping in their own data and network would; the plain net is the same
architecture trained by cross-entropy with the same epochs, batch size and learning rate, on the
same split (each seed draws its own split and initialisation).

Per row (mean and standard error over the seeds): the test accuracy of the posterior-mean
network, the plain net's, their difference, and the fraction of weights removed within 1 pp of
the posterior-mean net's test accuracy (read off the test pruning curve by the prior's own
criterion: relative density rho for ARD and the Gaussian, log alpha for log-uniform).

``--sweep eb`` (or bare ``--sweep``) runs the measurement the default empirical-Bayes start was
chosen from: ARD with empirical Bayes over the same sets and networks (3 seeds) for several
starts of the closed-form updates (``inference.eb_start_epochs`` as a share of the epochs) and,
for comparison, a KL warm-up over half the run with updates from the first step.
``--sweep log-uniform`` runs the one the log-uniform prior's KL warm-up
(``inference.kl_warmup_epochs: auto``) was chosen from, the same way, and compares its default
starting dropout rate (``prior.init_log_alpha`` -2) with -6.

    python benchmarks/tabular.py [--seeds 5] [--sets iris,wine] [--sweep [eb|log-uniform]]
        [--out DIR] [--write-results]
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

from bayesstruct import config, pruning  # noqa: E402
from bayesstruct.experiments.base import build_model, build_net, load_data  # noqa: E402
from bayesstruct.experiments.fit import decide, fit  # noqa: E402
from bayesstruct.training import evaluate  # noqa: E402
from bayesstruct.training.plain import evaluate_net, train_plain  # noqa: E402

SETS = ("iris", "wine", "breast_cancer", "digits")
NETS = {"logreg": ["net.kind=logreg"],
        "MLP 32": ["net.kind=mlp", "net.hidden=[32]"],
        "MLP 32-32": ["net.kind=mlp", "net.hidden=[32,32]"]}
PRIORS = {"ARD, empirical Bayes": ["prior.kind=ard"],
          "ARD, Gamma hyperprior": ["prior.kind=ard", "prior.hyper=gamma"],
          "Gaussian N(0, 1)": ["prior.kind=gaussian"],
          "log-uniform": ["prior.kind=log_uniform"]}
#: the empirical-Bayes schedules of ``--sweep eb`` (label -> overrides)
EB_SWEEP = {"updates from step 0": ["inference.eb_start_epochs=0"],
         "start at 10 % of the epochs": ["inference.eb_start_epochs=15"],
         "start at 25 %": ["inference.eb_start_epochs=37.5"],
         "start at 50 %": ["inference.eb_start_epochs=75"],
         "from step 0, KL warm-up over 50 %": ["inference.eb_start_epochs=0",
                                               "inference.kl_warmup_epochs=75"]}
#: the log-uniform prior's KL warm-up and starting dropout rate, ``--sweep log-uniform``
LU_SWEEP = {"no KL warm-up": ["inference.kl_warmup_epochs=0"],
            "KL warm-up over 25 % of the epochs": ["inference.kl_warmup_epochs=37.5"],
            "KL warm-up over 50 %": ["inference.kl_warmup_epochs=75"],
            "KL warm-up over 50 %, init log alpha -6": ["inference.kl_warmup_epochs=75",
                                                        "prior.init_log_alpha=-6"]}
#: ``--sweep NAME``: (variants, overrides common to them, table title, results section)
SWEEPS = {"eb": (EB_SWEEP, ["prior.kind=ard"], "EB schedule",
                 "Empirical-Bayes start sweep (ARD per weight)", "tabular-sweep"),
          "log-uniform": (LU_SWEEP, ["prior.kind=log_uniform"], "log-uniform start",
                          "Log-uniform KL warm-up sweep (sparse VD per weight)",
                          "tabular-sweep-log-uniform")}
FRACTIONS = [float(f) for f in np.round(np.arange(0.0, 1.0, 0.01), 2)]
ENTRY = "ard-logreg-digits"


def removed_within(rows: list[dict], tolerance: float = 0.01) -> float:
    """The largest fraction of weights removed on a pruning curve whose test accuracy is at
    most ``tolerance`` below the unpruned network's (:func:`bayesstruct.pruning.removable`,
    with the curve's fraction as its threshold)."""
    curve = [{**r, "lambda": r["fraction"]} for r in rows]
    return pruning.removable(curve, tolerance, metric="acc_mean")["removed"]


def bayes_run(overrides: list[str]) -> dict[str, float]:
    """One Bayesian net: its posterior-mean test accuracy and the weights removed within 1 pp."""
    cfg = config.resolve(ENTRY, None, overrides)
    ds = load_data(cfg)
    model = build_model(cfg, ds)
    post = fit(cfg, model, ds, progress=False)
    decision = decide(cfg, model, post, ds)
    params = pruning.mean_values(post, model)
    acc = evaluate(model, params, ds.test)["acc"]
    rows = pruning.pruning_curve(model, post, ds.test, FRACTIONS, scores=decision.scores,
                                 mc_samples=0)
    return {"acc": acc, "removed": removed_within(rows)}


def plain_run(overrides: list[str]) -> float:
    """The plain net of the same architecture, split and recipe: its test accuracy."""
    cfg = config.resolve(ENTRY, None, overrides)
    ds = load_data(cfg)
    torch.manual_seed(cfg.seed)
    net = build_net(cfg, ds)
    inf = cfg.inference
    train_plain(net, ds, epochs=inf.epochs, lr=inf.lr, batch_size=inf.batch_size,
                lr_schedule=inf.lr_schedule, seed=cfg.seed)
    return evaluate_net(net, ds.test)["acc"]


def _mean_se(x: list[float]) -> tuple[float, float]:
    a = np.asarray(x, dtype=float)
    return float(a.mean()), float(a.std(ddof=1) / np.sqrt(a.size)) if a.size > 1 else 0.0


def _pm(x: list[float], scale: float = 100.0) -> str:
    m, se = _mean_se(x)
    return f"{scale * m:.2f} ± {scale * se:.2f}"


def summary(rows: list[dict], key: str) -> str:
    """Per variant (``rows``' ``key`` column): the mean over rows of the difference against
    the plain net, the worst row, and the mean of the weights removed within 1 pp."""
    def first(cell: str) -> float:
        return float(cell.split(" ± ")[0])

    out = []
    for variant in dict.fromkeys(r[key] for r in rows):
        mine = [r for r in rows if r[key] == variant]
        worst = min(mine, key=lambda r: first(r["difference (pp)"]))
        out.append([variant, f"{np.mean([first(r['difference (pp)']) for r in mine]):+.2f}",
                    f"{first(worst['difference (pp)']):+.2f} ({worst['data']}, {worst['net']})",
                    f"{np.mean([first(r['weights removed within 1 pp (%)']) for r in mine]):.1f}"])
    return markdown_table(out, [key, "mean difference (pp)", "worst row (pp)",
                                "mean weights removed within 1 pp (%)"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=None, help="default: 5 (3 with --sweep)")
    ap.add_argument("--sets", default=",".join(SETS), help="comma-separated subset of "
                    f"{','.join(SETS)}")
    ap.add_argument("--nets", default=",".join(NETS), help=f"subset of {','.join(NETS)}")
    ap.add_argument("--sweep", nargs="?", const="eb", choices=sorted(SWEEPS), default=None,
                    help="a sweep instead of the prior table: eb (the empirical-Bayes start; "
                    "the default of a bare --sweep) or log-uniform (its KL warm-up and start)")
    add_output_args(ap)
    args = ap.parse_args()
    out = Output(args)
    sets = [s for s in args.sets.split(",") if s]
    chosen_nets = [n for n in args.nets.split(",") if n]
    bad = sorted(set(sets) - set(SETS)) + sorted(set(chosen_nets) - set(NETS))
    if bad:
        ap.error(f"unknown {bad}; sets: {', '.join(SETS)}; nets: {', '.join(NETS)}")
    seeds = list(range(args.seeds or (3 if args.sweep else 5)))
    if args.sweep:
        variants, base_fixed, key, title, section = SWEEPS[args.sweep]
    else:
        variants, base_fixed, key = PRIORS, [], "prior"
        title = "Small tabular networks: each prior's default recipe against the plain net"
        section = "tabular"
    t0 = time.perf_counter()
    rows, gaps = [], []
    for name in sets:
        for net, net_over in NETS.items():
            if net not in chosen_nets:
                continue
            common = [f"data.name={name}", *net_over]
            plain = [plain_run([*common, f"seed={s}"]) for s in seeds]
            for label, over in variants.items():
                runs = [bayes_run([*common, *base_fixed, *over, f"seed={s}"]) for s in seeds]
                acc = [r["acc"] for r in runs]
                diff = [a - p for a, p in zip(acc, plain, strict=True)]
                gaps.append((float(np.mean(diff)), name, net, label))
                rows.append({"data": name, "net": net, key: label,
                             "test acc (%)": _pm(acc), "plain net (%)": _pm(plain),
                             "difference (pp)": _pm(diff),
                             "weights removed within 1 pp (%)":
                                 _pm([r["removed"] for r in runs])})
                print(" | ".join(str(v) for v in rows[-1].values()), flush=True)
    worst = min(gaps)
    cmd = "python benchmarks/tabular.py" + (f" --sweep {args.sweep}" if args.sweep else "")
    text = (f"## {title}\n\n{provenance()}; `{cmd}`\n\n"
            f"{len(seeds)} seeds (each its own split and initialisation); mean ± standard "
            f"error over the seeds; recipe: the default entry's ({ENTRY}: SVI, mean-field, "
            f"150 epochs, batch 64, lr 0.01; the 'auto' defaults start empirical-Bayes updates "
            f"halfway and ramp the log-uniform prior's KL weight over the first half) with "
            f"only data.name, net and prior changed. "
            f"'weights removed within 1 pp': the largest fraction removed, by the prior's own "
            f"criterion, with test accuracy at most 1 pp below the unpruned posterior mean. "
            f"Worst row: {worst[1]}, {worst[2]}, {worst[3]}: {100 * worst[0]:+.2f} pp against "
            f"the plain net. {time.perf_counter() - t0:.0f} s in all.\n\n"
            + summary(rows, key) + "\n\n"
            + markdown_table([list(r.values()) for r in rows], list(rows[0])))
    out.section(section, text)


if __name__ == "__main__":
    main()
