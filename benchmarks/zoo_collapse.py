"""The collapse check on the zoo's own entries, each at its full budget.

Every variational ``fit`` entry ends with the collapse check (:mod:`bayesstruct.collapse`): the
posterior-mean network's validation accuracy beside a short plain fit of the same net, and a
warning when the Bayesian net is more than the tolerance below it *and* McNemar's paired count
says the gap is beyond chance. This script runs the entries named (default: every such entry
whose data is on this machine) exactly as ``bayesstruct run NAME`` does, one after another, and
prints one row per entry as it finishes: the two accuracies, the smallest gap the check would
warn on (its tolerance, or more on a small validation split), the fraction of units the
pruning decision empties, the warning (if any) and the run's seconds.

A full pass takes hours on a CPU (the LeNet-5 and ResNet entries are 10-40 minutes each), so
the rows are kept in ``<out>/figures/zoo_collapse.json`` and a later invocation with other
``--entries`` adds to them (an entry run again replaces its row); the section lists every
row kept, each with its date.

    python benchmarks/zoo_collapse.py [--entries a,b,...] [--set key=value] [--list]
        [--out DIR] [--write-results]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import Output, add_output_args, markdown_table, provenance  # noqa: E402

from bayesstruct import config  # noqa: E402
from bayesstruct.data import DataNotFoundError  # noqa: E402
from bayesstruct.experiments import experiment_for, run  # noqa: E402
from bayesstruct.files import write_text  # noqa: E402
from bayesstruct.report import format_table  # noqa: E402

HEADER = ["entry", "data", "epochs", "val acc (%), Bayesian", "val acc (%), plain fit",
          "plain epochs", "plain lr", "n val", "smallest gap it warns on (pp)",
          "units emptied (%)", "warning", "seconds", "measured"]


def checked_entries() -> list[str]:
    """The catalog entries that end with the collapse check: ``fit`` experiments whose guide
    is not a point estimate."""
    names = []
    for name in config.catalog():
        cfg = config.resolve(name)
        if experiment_for(cfg).key == "fit" and getattr(cfg.inference, "guide",
                                                        "delta") != "delta":
            names.append(name)
    return names


def row(name: str, cfg, metrics: dict, seconds: float, overrides: list[str]) -> dict:
    c = metrics["collapse_check"]
    label = name + "".join(f" `{o}`" for o in overrides)
    return {"entry": label, "data": cfg.data.name, "epochs": cfg.inference.epochs,
            "val_acc": c["val_acc"], "plain_val_acc": c["plain_val_acc"],
            "plain_epochs": c["plain_epochs"],
            "plain_lr_schedule": c["plain_lr_schedule"], "n_val": c["n_val"],
            "detectable_gap": c["detectable_gap"], "dead_unit_fraction": c["dead_unit_fraction"],
            "warning": c["warning"], "seconds": seconds,
            "measured": datetime.date.today().isoformat()}


def cells(r: dict) -> list:
    return [r["entry"], r["data"], r["epochs"], f"{100 * r['val_acc']:.2f}",
            f"{100 * r['plain_val_acc']:.2f}", r["plain_epochs"],
            r["plain_lr_schedule"], r["n_val"],
            f"{100 * r['detectable_gap']:.1f}", f"{100 * r['dead_unit_fraction']:.1f}",
            "**yes**" if r["warning"] else "no", f"{r['seconds']:.0f}", r["measured"]]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", default=None,
                    help="comma-separated catalog entries (default: every entry with the "
                         "collapse check whose data is on this machine; '' rewrites the "
                         "section from the rows kept)")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="key=value override for every entry (as bayesstruct run --set; a row "
                         "run with overrides says so)")
    ap.add_argument("--list", action="store_true", help="list the entries checked and exit")
    add_output_args(ap)
    args = ap.parse_args(argv)
    out = Output(args)
    names = checked_entries()
    if args.list:
        print("\n".join(names))
        return
    chosen = names if args.entries is None else [e.strip() for e in args.entries.split(",")
                                                 if e.strip()]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        ap.error(f"--entries: {unknown} are not entries with the collapse check; "
                 f"allowed: {', '.join(names)}")
    store = out.figure("zoo_collapse.json")
    rows = {r["entry"]: r for r in json.loads(store.read_text())} if store.exists() else {}
    skipped = []
    for name in chosen:
        cfg = config.resolve(name, None, args.overrides)
        print(f"== {name}: {cfg.inference.epochs} epochs", flush=True)
        t0 = time.perf_counter()
        try:  # a run loads its data before anything else: a missing set fails at once
            with tempfile.TemporaryDirectory() as tmp:
                metrics = run(cfg, Path(tmp) / name, progress=False, echo=lambda s: None)
        except DataNotFoundError as e:
            why = str(e).splitlines()[0]
            print(f"   skipped, its data is not on this machine ({why})", flush=True)
            skipped.append(f"`{name}` ({cfg.data.name}: {why})")
            continue
        new = row(name, cfg, metrics, time.perf_counter() - t0, args.overrides)
        rows[new["entry"]] = new
        print(format_table([cells(new)], HEADER), flush=True)
        write_text(store, json.dumps(sorted(rows.values(), key=lambda r: r["entry"]), indent=1))

    kept = [cells(r) for r in sorted(rows.values(), key=lambda r: r["entry"])]
    print()
    print(format_table(kept, HEADER))
    table = markdown_table(kept, HEADER)
    warned = [f"{r['entry']}: {r['warning']}" for r in sorted(rows.values(),
                                                                 key=lambda r: r["entry"])
              if r["warning"]]
    command = " ".join(["python benchmarks/zoo_collapse.py",
                        *(sys.argv[1:] if argv is None else argv)])
    shown = f"`{command}`" + (" (no entry run: the section rewritten from the rows kept)"
                              if not chosen else "")
    text = (f"{provenance()} (the last invocation); command {shown}. Rows "
            "accumulate over invocations (each with its date); every entry runs exactly as "
            "`bayesstruct run NAME` at its own budget. 'smallest gap it warns on': the larger of "
            "the check's tolerance and the gap McNemar's bound can detect on that many "
            "validation examples; 'units emptied': "
            "units whose every incoming weight the pruning decision removes.\n\n"
            f"{table}\n\n"
            + ("Warnings:\n\n" + "\n".join(f"- {w}" for w in warned) if warned
               else "No entry warned.")
            + (f"\n\nSkipped in the last invocation: {'; '.join(skipped)}." if skipped else ""))
    out.section("zoo-collapse", text)


if __name__ == "__main__":
    main()
