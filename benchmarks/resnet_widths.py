"""What a narrower ResNet costs when trained from scratch: the zoo's small ResNet at several
stage widths, each trained as a plain network at the ResNet entry's budget.

A channel-pruning result is only worth something beside this baseline: if the network with
half the channels, trained from scratch on the same data and epochs, is as accurate as the
pruned one, the pruning found a width, not a better network (Liu et al. 2019, "Rethinking the
value of network pruning"). Each width is trained with :func:`bayesstruct.training.plain.
train_plain` (Adam, the entry's learning rate, batch size, epochs and cosine schedule) on the
entry's training subsample and scored on the test split; the channel count is every
convolution's output channels (``3 w1 + 3 w2``: the stem, each block's two convolutions and
the second stage's shortcut) and the multiply-adds per example are counted by
:func:`bayesstruct.pruning.count_macs`.

    python benchmarks/resnet_widths.py [--widths 16,32 8,16 ...] [--entry resnet-ard-fashion-mnist]
        [--set key=value ...] [--seeds 0 1] [--out DIR] [--write-results]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import Output, add_output_args, markdown_table, provenance  # noqa: E402

from bayesstruct import nets  # noqa: E402
from bayesstruct.config import resolve  # noqa: E402
from bayesstruct.data import splits  # noqa: E402
from bayesstruct.pruning import count_macs  # noqa: E402
from bayesstruct.training.plain import evaluate_net, train_plain  # noqa: E402

WIDTHS = ["16,32", "16,16", "11,22", "8,32", "8,16"]
HEADER = ["stage widths", "channels", "MACs / example", "MACs vs 16,32", "test acc (%)",
          "vs 16,32 (pp)", "train s"]


def widths_arg(text: str) -> tuple[int, ...]:
    try:
        out = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: stage widths as W1,W2 (e.g. 16,32)") from None
    if len(out) != 2 or min(out) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: two positive stage widths, e.g. 16,32")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", nargs="+", type=widths_arg,
                    default=[widths_arg(w) for w in WIDTHS])
    ap.add_argument("--entry", default="resnet-ard-fashion-mnist",
                    help="the zoo entry whose data and budget each width is trained at")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="a --set override of the entry (e.g. inference.epochs=2)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    add_output_args(ap)
    args = ap.parse_args()
    out = Output(args)
    cfg = resolve(args.entry, None, args.overrides)
    if cfg.net is None or cfg.net.kind != "resnet":
        raise SystemExit(f"{args.entry}: not a resnet entry")
    inf = cfg.inference
    ds = splits.load(cfg.data.name, seed=cfg.seed, val_fraction=cfg.data.val_fraction,
                     train_size=cfg.data.train_size)
    shape = tuple(ds.train.x.shape[1:])
    print(f"{args.entry}: {len(ds.train)} training images x {inf.epochs} epochs, lr {inf.lr}, "
          f"batch {inf.batch_size}, seeds {args.seeds}", flush=True)
    results = {}
    for w in args.widths:
        accs, secs = [], []
        for seed in args.seeds:
            torch.manual_seed(seed)
            net = nets.build("resnet", shape, ds.n_classes, hidden=list(w))
            t0 = time.perf_counter()
            train_plain(net, ds, epochs=inf.epochs, lr=inf.lr, batch_size=inf.batch_size,
                        lr_schedule=inf.lr_schedule, seed=seed)
            secs.append(time.perf_counter() - t0)
            accs.append(evaluate_net(net.eval(), ds.test)["acc"])
        results[w] = (accs, secs, count_macs(net, ds.test.x))
        print(f"widths {w}: test acc {[round(100 * a, 2) for a in accs]}, "
              f"{statistics.mean(secs):.0f} s per fit", flush=True)
    base = results.get((16, 32))
    rows = []
    for w, (accs, secs, macs) in results.items():
        acc = statistics.mean(accs)
        rows.append([f"{w[0]}, {w[1]}", 3 * w[0] + 3 * w[1], f"{macs:,}",
                     f"{base[2] / macs:.2f}x fewer" if base and macs < base[2]
                     else f"{macs / base[2]:.2f}x" if base else "-",
                     " / ".join(f"{100 * a:.2f}" for a in accs),
                     f"{100 * (acc - statistics.mean(base[0])):+.2f}" if base else "-",
                     f"{statistics.mean(secs):.0f}"])
    table = markdown_table(rows, HEADER)
    print("\n" + table)
    command = "python benchmarks/resnet_widths.py" + (
        f" --entry {args.entry}" if args.entry != "resnet-ard-fashion-mnist" else "") + "".join(
        f" --set {shlex.quote(o)}" for o in args.overrides) + (
        f" --seeds {' '.join(map(str, args.seeds))}" if args.seeds != [0] else "") + (
        " --widths " + " ".join(f"{a},{b}" for a, b in args.widths)
        if [f"{a},{b}" for a, b in args.widths] != WIDTHS else "")
    out.section("resnet_widths", "\n".join([
        "## A narrower ResNet trained from scratch: what half the channels cost",
        "",
        f"{provenance()}; `{command}`. The zoo's small ResNet (BatchNorm, one residual block "
        f"per stage) at each pair of stage widths, trained as a plain network at "
        f"`{args.entry}`'s budget ({len(ds.train)} training images x {inf.epochs} epochs, "
        f"Adam, lr {inf.lr}, batch {inf.batch_size}, {inf.lr_schedule} schedule); test "
        f"accuracy on the {len(ds.test)} test images, one figure per seed. Channels: every "
        "convolution's output channels (the count the pruning tables use). A pruned network "
        "is worth something when it beats the row of its own widths.",
        "",
        table]))


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    main()
