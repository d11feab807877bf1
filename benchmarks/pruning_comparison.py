"""Pruning comparison on logistic regression: every pruning method on one figure (issue 4).

Runs the zoo entry ``logreg-prune-compare`` (what ``bayesstruct compare`` does) with every
method of :data:`bayesstruct.pruning.METHODS`, copies the figure and its CSV to
``DIR/figures/``, and writes into ``DIR/RESULTS.md`` (``--out DIR``; default
``runs/benchmarks/``; with ``--write-results`` the tracked ``benchmarks/``): the table of test
accuracy at 50/80/90/95/99 % of the weights removed, each base's dense accuracy, and the checks
of the expected shape (variational and OBD above random at every fraction; retraining above no
retraining for magnitude pruning), computed from the rows, not typed in.

    python benchmarks/pruning_comparison.py [--dataset fashion-mnist|mnist|digits]
                                            [--data-dir DIR] [--set key=value ...]
                                            [--out DIR] [--write-results]
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from bayesstruct import pruning, runner
from bayesstruct.config import resolve

sys.path.insert(0, str(Path(__file__).parent))
from _results import Output, add_output_args, provenance  # noqa: E402


def _markdown(table: dict[str, dict[float, float]], bases: dict[str, dict]) -> str:
    fr = pruning.TABLE_FRACTIONS
    lines = ["| method | " + " | ".join(f"{100 * f:g}% removed" for f in fr) + " |",
             "|---|" + "---|" * len(fr)]
    for m, accs in table.items():
        lines.append(f"| {m} | " + " | ".join(f"{100 * accs[f]:.2f}" for f in fr) + " |")
    dense = ", ".join(f"{b} {100 * v['acc']:.2f}% ({v['seconds']:.0f} s)"
                      for b, v in bases.items())
    return "\n".join(lines) + f"\n\nDense test accuracy of each base (training time): {dense}."


def _checks(rows: list[dict]) -> list[str]:
    acc = {(r["method"], r["fraction"]): r["acc"] for r in rows}
    fracs = sorted({f for _, f in acc if f > 0})
    out = []
    for m in ("variational", "obd", "obs"):
        if (m, fracs[0]) not in acc:
            continue
        wins = [f for f in fracs if acc[(m, f)] > acc[("random", f)]]
        out.append(f"{m} above random at {len(wins)} of {len(fracs)} fractions "
                   f"(10-99 %)" + ("" if len(wins) == len(fracs) else
                                    f"; not at {sorted(set(fracs) - set(wins))}"))
    for m in ("magnitude-l1", "magnitude-l2", "random", "obd"):
        if (f"{m}-retrain", fracs[0]) not in acc:
            continue
        wins = [f for f in fracs if acc[(f"{m}-retrain", f)] > acc[(m, f)]]
        out.append(f"{m}-retrain above {m} at {len(wins)} of {len(fracs)} fractions")
    for f in (0.9, 0.95):
        if ("variational", f) in acc and ("magnitude-l2", f) in acc:
            out.append(f"at {100 * f:g} %: variational {100 * acc[('variational', f)]:.2f} vs "
                       f"magnitude-l2 {100 * acc[('magnitude-l2', f)]:.2f}, OBD "
                       f"{100 * acc[('obd', f)]:.2f}")
    nll = {(r["method"], r["fraction"]): r["nll"] for r in rows}
    pairs = [f for f in (0.3, 0.5, 0.8) if ("obd", f) in nll and ("magnitude-l2", f) in nll]
    if pairs:
        out.append("test NLL per example, OBD vs magnitude-l2: " + ", ".join(
            f"{nll[('obd', f)]:.4f} vs {nll[('magnitude-l2', f)]:.4f} at {100 * f:g} %"
            for f in pairs) + (f" (dense {nll[('obd', 0.0)]:.4f})" if ("obd", 0.0) in nll
                               else ""))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist",
                    choices=["fashion-mnist", "mnist", "digits"])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--methods", default=",".join(pruning.METHODS))
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="extra key=value overrides (as bayesstruct compare --set)")
    add_output_args(ap)
    args = ap.parse_args()
    dest = Output(args)

    overrides = [f"data.name={args.dataset}", *args.overrides]
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    cfg = resolve("logreg-prune-compare", None, overrides)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        metrics = runner.compare(cfg, out, methods=methods, progress=False)
        rows = list(_read_csv(out / "comparison.csv"))
        stem = f"pruning-comparison-{args.dataset}"
        shutil.copyfile(out / "comparison.png", dest.figure(f"{stem}.png"))
        shutil.copyfile(out / "comparison.csv", dest.figure(f"{stem}.csv"))
    table = {m: {float(f): a for f, a in accs.items()} for m, accs in
             metrics["test_acc_at"].items()}
    s = metrics["settings"]
    flags = "".join(f" --{k.replace('_', '-')} {v}" for k, v in
                    (("dataset", args.dataset),) if v != "fashion-mnist")
    flags += "".join(f" --set {shlex.quote(o)}" for o in args.overrides)
    cmd = f"python benchmarks/pruning_comparison.py{flags}"
    text = (f"{provenance()}; command `{cmd}` ({metrics['seconds']:.0f} s in all). "
            f"Logistic regression on {args.dataset} ("
            + ("stratified 20 % test split" if args.dataset == "digits"
               else "the official 10k test images") + "), "
            f"{s['epochs']} epochs of Adam (lr {s['lr']}, batch {s['batch_size']}, cosine) per "
            f"base; L1 base {s['l1']}, L2 base {s['l2']}; retraining {s['retrain_epochs']} "
            f"epochs at lr x {s['retrain_lr_factor']} per fraction, iterative; OBD Hessian "
            f"{s['obd_hessian']}, OBS Hessian {s['obs_hessian']} (closed form), block "
            f"{s['obs_block'] or 'auto'}; variational: SVI, mean-field Normal, Gaussian prior "
            f"with empirical Bayes, posterior-mean net. Test accuracy (%):\n\n"
            + _markdown(table, metrics["bases"])
            + "\n\nShape checks (computed from the CSV): " + "; ".join(_checks(rows)) + ".\n\n"
            f"![pruning comparison](figures/{stem}.png)\n\nData: "
            f"[figures/{stem}.csv](figures/{stem}.csv).")
    print("\n" + text)
    dest.section(f"pruning-comparison:{args.dataset}", text)


def _read_csv(path: Path):
    import csv

    for r in csv.DictReader(path.open()):
        yield {"method": r["method"], "fraction": float(r["fraction"]),
               "acc": float(r["acc"]), "nll": float(r["nll"])}


if __name__ == "__main__":
    main()
