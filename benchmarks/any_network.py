"""Networks beyond ``nn.Sequential``: a residual network with BatchNorm, torch's LSTM and a 1-D
convolutional net, pruned and shrunk for real.

Runs the zoo entries ``resnet-ard-fashion-mnist``, ``resnet-bc-gnj-fashion-mnist``,
``lstm-fashion-mnist`` and ``conv1d-fashion-mnist`` one after another through
``bayesstruct.runner.run`` (what ``bayesstruct run ENTRY`` does, reduced CPU budget as each entry
states) and prints, per entry: the posterior-mean network's test accuracy (dense), the accuracy
of the shrunk network, the hidden units (channels, LSTM units) removed, the multiply-adds per
example before and after (what the removed units cost), and the measured speed-up of a pass
over the test set (the shrunk network against the dense posterior-mean one, median of 5,
batches of 1000, in the same process).

    python benchmarks/any_network.py [--entries resnet-ard-fashion-mnist ...]
        [--set key=value ...] [--seed 0] [--keep-runs DIR] [--out DIR] [--write-results]

The section goes to ``DIR/RESULTS.md`` (``--out``; default ``runs/benchmarks/``);
``--write-results`` updates the tracked ``benchmarks/RESULTS.md`` instead. Running some of the
entries replaces their rows and keeps the other entries' rows of the section already there,
each row with the date, machine and command that measured it. The run directories are
temporary unless ``--keep-runs DIR``.
"""

from __future__ import annotations

import argparse
import datetime
import re
import shlex
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import Output, add_output_args, markdown_table, provenance  # noqa: E402

from bayesstruct import runner  # noqa: E402
from bayesstruct.config import resolve  # noqa: E402

ENTRIES = ["resnet-ard-fashion-mnist", "resnet-ard-slim-fashion-mnist",
           "resnet-bc-gnj-fashion-mnist", "lstm-fashion-mnist", "conv1d-fashion-mnist"]
HEADER = ["entry", "training images x epochs", "test acc dense (%)", "test acc shrunk (%)",
          "change (pp)",
          "hidden units removed", "MACs / example dense -> shrunk", "fewer MACs",
          "test-set inference speed-up", "train s", "measured"]
#: the section's first lines (its table and the list of how each row was measured follow)
TITLE = "## Any network: a residual net with BatchNorm, torch's LSTM, a 1-D conv net"
INTRO = ("Each entry at its own reduced CPU budget (the training images and epochs column; the "
         "entries' descriptions), one seed. *Dense* is the posterior-mean network, *shrunk* the "
         "network `prune()` returns (units removed along the data flow, BatchNorm folded): the "
         "figures of `metrics.json` (`hidden_units`, `macs_dense`, `macs_pruned`, the test-set "
         "inference seconds). Hidden units: every layer's output units but the classifier's "
         "(channels of the ResNet's convolutions, the LSTM's hidden units, the 1-D net's "
         "channels). Rows are measured one entry or more at a time; how, is listed below the "
         "table.")


def row(entry: str, m: dict) -> list[object]:
    units = m["hidden_units"]
    dense, pruned = m["macs_dense"], m["macs_pruned"]
    return [f"`{entry}`", f"{m['n_train']} x {m['epochs_run']}", f"{100 * m['test_acc']:.2f}",
            f"{100 * m['test_acc_pruned']:.2f}" + (
                f" (after {m['retrain_epochs']} epochs of retraining; "
                f"{100 * m['test_acc_pruned_before_retrain']:.2f} before)"
                if m.get("retrain_epochs") else ""),
            f"{100 * (m['test_acc_pruned'] - m['test_acc']):+.2f}",
            f"{units['dense'] - units['pruned']} / {units['dense']} "
            f"({100 * units['fraction_removed']:.1f} %)",
            f"{dense:,} -> {pruned:,}", f"{dense / max(pruned, 1):.2f}x",
            f"{m['test_inference_seconds_dense'] / m['test_inference_seconds_pruned']:.2f}x",
            f"{m['train_seconds']:.0f}"]


def earlier_rows(text: str) -> dict[str, tuple[list[str], str]]:
    """``entry -> (table cells, how it was measured)`` of the ``any_network`` section in
    ``text`` (a results file). A section written before rows carried their own date (one
    ``Measured DATE on MACHINE; `COMMAND``` line for the whole table) gives every row that
    line's date and provenance."""
    block = re.search(r"<!-- any_network:begin -->(.*?)<!-- any_network:end -->", text, re.S)
    if block is None:
        return {}
    body = block.group(1)
    how = dict(re.findall(r"^- (`[^`]+`): (.+)$", body, re.M))
    whole = re.search(r"^(Measured (\d{4}-\d{2}-\d{2}) on [^;]+); (`[^`]+`)", body, re.M)
    rows = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| `") or len(cells) not in (len(HEADER) - 1, len(HEADER)):
            continue
        entry = cells[0]
        if len(cells) == len(HEADER) - 1:  # the older layout: one date for the whole table
            if whole is None:
                continue
            cells.append(whole.group(2))
            how.setdefault(entry, f"{whole.group(1)}; {whole.group(3)}")
        rows[entry.strip("`")] = (cells, how.get(entry, "(not recorded)"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", nargs="+", default=ENTRIES, choices=ENTRIES)
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="a --set override for every entry (e.g. inference.epochs=2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-runs", default=None, metavar="DIR",
                    help="keep the run directories here")
    add_output_args(ap)
    args = ap.parse_args()
    out = Output(args)

    rows: dict[str, list[object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep_runs) if args.keep_runs else Path(tmp)
        for entry in args.entries:
            cfg = resolve(entry, None, [*args.overrides, f"seed={args.seed}"])
            print(f"== {entry}: {cfg.inference.epochs} epochs, "
                  f"{cfg.data.train_size or 'all'} training images", flush=True)
            metrics = runner.run(cfg, base / entry, progress=True)
            rows[entry] = [*row(entry, metrics), datetime.date.today().isoformat()]
            print(markdown_table([rows[entry]], HEADER), flush=True)
    print("\n" + markdown_table(list(rows.values()), HEADER))
    command = "python benchmarks/any_network.py" + (
        " --entries " + " ".join(args.entries) if args.entries != ENTRIES else "") + "".join(
        f" --set {shlex.quote(o)}" for o in args.overrides) + (
        f" --seed {args.seed}" if args.seed else "")
    measured = {e: (r, f"{provenance()}; `{command}`") for e, r in rows.items()}
    old = earlier_rows(out.results.read_text()) if out.results.exists() else {}
    merged = {e: measured.get(e) or old[e] for e in ENTRIES if e in measured or e in old}
    out.section("any_network", "\n".join([
        TITLE, "", INTRO, "", markdown_table([r for r, _ in merged.values()], HEADER), "",
        *[f"- `{e}`: {how}" for e, (_, how) in merged.items()]]))


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    main()
