"""Which parameters to keep training (freezing by gradient statistics) on Fashion-MNIST: an MLP
(LeNet-300-100) and a small CNN (LeNet-5-Caffe).

Stage 1 trains every parameter for ``--eta0`` plain SGD steps and records the gradient
statistics of the last ``--window`` steps; for each rule (random, largest sum |grad|, the
pSGLD statistic |E g| / sd(g)) and each k, stage 2 keeps training only k of the parameters
for ``--eta1`` steps (the rest frozen); then only the l largest-magnitude parameters are
kept. Each rule selects entry by entry (``element``: frozen entries still cost their
gradient) and tensor by tensor (``tensor``: wholly frozen tensors cost no gradient). All
settings branch from the same stage-1 network, and the stage-2 wall clock is measured side by
side with stage 2 on every parameter (k = 100 %, the same code path).

    python benchmarks/freeze.py [--eta0 1000] [--eta1 1000] [--nets mlp cnn]
        [--granularity element tensor]

Writes ``figures/freeze-sweep.csv``, ``figures/freeze-sweep.png`` and the "freeze" section of
``RESULTS.md`` under ``--out DIR`` (default ``runs/benchmarks/``); ``--write-results`` writes
them into the tracked ``benchmarks/`` instead.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import Output, add_output_args, markdown_table, provenance  # noqa: E402

from bayesstruct import data, nets  # noqa: E402
from bayesstruct.report import write_csv  # noqa: E402
from bayesstruct.training import freeze  # noqa: E402
from bayesstruct.training.plain import evaluate_net  # noqa: E402

NETS = {"mlp": "lenet300", "cnn": "lenet5"}
LABEL = {"random": "random", "gradient": "largest sum of abs(grad)",
         "psgld": "pSGLD: abs(E g) / sd(g)", "all": "all parameters"}


def sweep(name: str, ds, args) -> list[dict]:
    torch.manual_seed(args.seed)
    net = nets.build(NETS[name], ds.input_shape, ds.n_classes)
    n = sum(p.numel() for p in net.parameters())
    stats = freeze.stage_warm(net, ds.train, steps=args.eta0, window=args.window, lr=args.lr,
                              batch_size=args.batch_size, seed=args.seed)
    stage1 = evaluate_net(net, ds.test, 1000)
    print(f"{name}: {n} parameters; after stage 1 test acc {100 * stage1['acc']:.2f}%")
    settings = [("all", 1.0, "element")] + [(r, k, g) for g in args.granularity
                                            for r in freeze.RULES for k in args.k]
    rows = []
    for rule, k, gran in settings:
        alpha = ({key: torch.ones_like(p, dtype=torch.bool) for key, p in
                  net.named_parameters()} if rule == "all" else
                 freeze.select(stats, rule, round(k * n),
                               torch.Generator().manual_seed(args.seed), gran))
        live = " ".join(f"{key}{'' if m.all() else '(part)'}" for key, m in alpha.items()
                        if m.any())
        trained = copy.deepcopy(net)
        seconds = freeze.stage_masked(trained, ds.train, alpha, steps=args.eta1, lr=args.lr,
                                      batch_size=args.batch_size, seed=args.seed,
                                      start=args.eta0)
        before = evaluate_net(trained, ds.test, 1000)
        update_saved, grad_saved = freeze.work_saved(alpha)
        for l in args.l:  # noqa: E741
            pruned = copy.deepcopy(trained)
            freeze.prune_in_place(pruned, round(l * n))
            after = evaluate_net(pruned, ds.test, 1000)
            rows.append({"net": name, "rule": rule, "granularity": gran, "k": k, "l": l,
                         "n_params": n, "live_tensors": live,
                         "test_acc": after["acc"], "test_nll": after["nll"],
                         "test_acc_unpruned": before["acc"], "test_nll_unpruned": before["nll"],
                         "stage1_test_acc": stage1["acc"], "stage2_s": seconds,
                         "update_saved": update_saved, "grad_saved": grad_saved})
        print(f"  {rule:8s} {gran:7s} k={k:.0%}: unpruned {100 * before['acc']:.2f}%, "
              + ", ".join(f"l={r['l']:.0%} {100 * r['test_acc']:.2f}%" for r in rows[-len(args.l):])
              + f"  stage 2 {seconds:.1f}s; live: {live}", flush=True)
    base = next(r["stage2_s"] for r in rows if r["rule"] == "all")
    for r in rows:
        r["stage2_ratio"] = r["stage2_s"] / base
    return rows


def figure(rows: list[dict], args, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["net"] for r in rows))
    fig, axes = plt.subplots(len(names), 2 * len(args.l), figsize=(4 * 2 * len(args.l),
                                                                    3.2 * len(names)),
                             squeeze=False)
    for i, name in enumerate(names):
        for j, l in enumerate(args.l):  # noqa: E741
            for m, (metric, ylabel) in enumerate((("test_acc", "test accuracy (%)"),
                                                  ("test_nll", "test NLL"))):
                ax = axes[i, 2 * j + m]
                scale = 100 if metric == "test_acc" else 1
                for c, rule in enumerate(freeze.RULES):
                    for gran, ls in zip(args.granularity, ("-", "--"), strict=False):
                        pts = sorted((r["k"], r[metric]) for r in rows if r["net"] == name
                                     and r["rule"] == rule and r["l"] == l
                                     and r["granularity"] == gran)
                        ax.plot([100 * k for k, _ in pts], [scale * v for _, v in pts],
                                marker="o" if ls == "-" else "s", ls=ls, color=f"C{c}",
                                label=f"{LABEL[rule]}, by {gran}")
                full = next(r[metric] for r in rows if r["net"] == name and r["rule"] == "all"
                            and r["l"] == l)
                ax.axhline(scale * full, color="k", ls=":", lw=1, label=LABEL["all"])
                ax.set_xlabel("k: parameters still trained (%)")
                ax.set_ylabel(ylabel)
                ax.set_title(f"{name}, l = {l:.0%} kept")
                if i == 0 and j == 0 and m == 0:
                    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nets", nargs="+", default=["mlp", "cnn"], choices=list(NETS))
    ap.add_argument("--eta0", type=int, default=1000)
    ap.add_argument("--eta1", type=int, default=1000)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--k", nargs="+", type=float, default=[0.1, 0.3, 0.5])
    ap.add_argument("--l", nargs="+", type=float, default=[0.1, 0.5])
    ap.add_argument("--granularity", nargs="+", default=list(freeze.GRANULARITIES),
                    choices=freeze.GRANULARITIES)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    add_output_args(ap)
    args = ap.parse_args()
    out = Output(args)
    cmd = "python benchmarks/freeze.py " + " ".join(sys.argv[1:])
    ds = data.load("fashion-mnist", seed=0)
    rows = [r for name in args.nets for r in sweep(name, ds, args)]
    write_csv(rows, out.figure("freeze-sweep.csv"))
    figure(rows, args, out.figure("freeze-sweep.png"))
    table_rows = []
    for name in args.nets:
        mine = [r for r in rows if r["net"] == name]
        for gran, rule in [("element", "all")] + [(g, r) for g in args.granularity
                                                  for r in freeze.RULES]:
            for k in sorted({r["k"] for r in mine if r["rule"] == rule
                             and r["granularity"] == gran}):
                rs = {r["l"]: r for r in mine if r["rule"] == rule and r["k"] == k
                      and r["granularity"] == gran}
                r0 = next(iter(rs.values()))
                table_rows.append([name, LABEL[rule], "-" if rule == "all" else gran,
                                   f"{k:.0%}",
                                   f"{100 * r0['test_acc_unpruned']:.2f}",
                                   *[f"{100 * rs[x]['test_acc']:.2f}" for x in args.l],
                                   f"{r0['stage2_s']:.1f} ({r0['stage2_ratio']:.2f}x)",
                                   f"{100 * r0['update_saved']:.0f} %",
                                   f"{100 * r0['grad_saved']:.1f} %",
                                   "all" if rule == "all" else r0["live_tensors"]])
    header = ["net", "rule", "by", "k trained", "test acc, all kept (%)",
              *[f"test acc, l = {x:.0%} (%)" for x in args.l], "stage 2 s (x all)",
              "update work saved", "gradient entries never computed", "live tensors"]
    table = markdown_table(table_rows, header)
    print(table)
    n_train = len(ds.train)
    out.section("freeze", "\n".join([
        "## Which parameters to keep training (issue 10)",
        "",
        f"{provenance()}; command `{cmd.strip()}`. Fashion-MNIST ({n_train} training images, "
        f"official 10k test set); LeNet-300-100 (`mlp`) and LeNet-5-Caffe (`cnn`); plain SGD, "
        f"lr {args.lr}, batch {args.batch_size}. Stage 1: {args.eta0} steps on every "
        f"parameter, gradient statistics over its last {args.window} steps; stage 2: "
        f"{args.eta1} steps on the k selected parameters (the rest frozen); then the l "
        "largest-magnitude parameters are kept. Every setting branches from the same stage-1 "
        "network; \"all parameters\" is stage 2 without freezing, timed in the same run. "
        "Each rule selects entry by entry (\"by element\") or tensor by tensor (\"by tensor\": "
        "tensors ranked by a tensor-level score are kept whole while they fit in k, the "
        "first that does not fit keeps its best entries up to k, the rest are wholly frozen; "
        "\"(part)\" marks that tensor). \"Update work saved\" is 1 - k/N (the masked SGD "
        "updates); \"gradient entries never computed\" counts the parameters in wholly frozen "
        "tensors, the only ones whose gradient autograd skips (element-wise masks inside a "
        "tensor still compute its full gradient), which is what the stage-2 wall clock "
        "reflects.",
        "",
        table,
        "",
        "Figure (accuracy and NLL against k, per l): `figures/freeze-sweep.png`; every row: "
        "`figures/freeze-sweep.csv`.",
    ]))


if __name__ == "__main__":
    main()
