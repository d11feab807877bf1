"""Where a benchmark writes: its section of a results file (between its markers), its figures
and data.

By default nothing tracked is touched: the section goes into ``<out>/RESULTS.md`` and the
figures and data into ``<out>/figures/`` (``--out DIR``; default ``runs/benchmarks/``, which
git ignores), so the relative links of a section work there as they do in
``benchmarks/RESULTS.md``. ``--write-results`` is the way to update the tracked
``benchmarks/RESULTS.md`` and ``benchmarks/figures/`` (the ``make bench*`` targets pass it).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
from pathlib import Path

import torch

from bayesstruct.files import write_text

BENCHMARKS = Path(__file__).resolve().parent
RESULTS = BENCHMARKS / "RESULTS.md"
FIGURES = BENCHMARKS / "figures"
#: the default ``--out``: under the repository's ``runs/`` (git-ignored)
DEFAULT_OUT = BENCHMARKS.parent / "runs" / "benchmarks"


def add_output_args(ap: argparse.ArgumentParser, out_flag: str = "--out") -> None:
    """``--out DIR`` (``out_flag``), ``--write-results``, and the old ``--no-write`` (now the
    default; still accepted)."""
    ap.add_argument(out_flag, dest="out_dir", type=Path, default=None, metavar="DIR",
                    help=f"write the section (DIR/RESULTS.md) and figures/data (DIR/figures/) "
                         f"here (default: {_shown(DEFAULT_OUT)})")
    ap.add_argument("--write-results", action="store_true",
                    help="update the tracked benchmarks/RESULTS.md and benchmarks/figures/ "
                         "instead")
    ap.add_argument("--no-write", action="store_true",
                    help="leave benchmarks/RESULTS.md alone (the default; kept for old "
                         "command lines)")


class Output:
    """Where this run writes: ``root`` holds ``RESULTS.md`` and ``figures/``; ``root`` is
    ``benchmarks/`` only with ``--write-results``."""

    def __init__(self, args: argparse.Namespace):
        write = bool(getattr(args, "write_results", False))
        out = getattr(args, "out_dir", None)
        if write and getattr(args, "no_write", False):
            raise SystemExit("--write-results and --no-write contradict each other")
        if write and out is not None:
            raise SystemExit("--write-results writes into benchmarks/; drop --out")
        self.write_results = write
        self.root = BENCHMARKS if write else Path(out) if out is not None else DEFAULT_OUT
        self.results = self.root / "RESULTS.md"
        self.figures = self.root / "figures"

    def figure(self, name: str) -> Path:
        """The path of figure or data file ``name`` (its folder created)."""
        self.figures.mkdir(parents=True, exist_ok=True)
        return self.figures / name

    def section(self, key: str, text: str) -> Path:
        """Write the section ``key`` into this run's results file and say where."""
        self.results.parent.mkdir(parents=True, exist_ok=True)
        write_section(key, text, self.results)
        if self.write_results:
            print(f"\nsection {key!r} written to {_shown(self.results)}")
        else:
            print(f"\nsection {key!r} written to {_shown(self.results)}; benchmarks/RESULTS.md "
                  "left alone (--write-results updates it)")
        return self.results


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def write_section(key: str, text: str, path: Path = RESULTS) -> None:
    """Replace the block between ``<!-- key:begin -->`` and ``<!-- key:end -->`` (appended at
    the end if the markers are absent); atomic."""
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in old:
        new = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, old, flags=re.S)
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    write_text(path, new)


def provenance() -> str:
    """``date on machine (CPU|GPU), torch version``."""
    when = datetime.date.today().isoformat()
    if torch.cuda.is_available():
        machine = torch.cuda.get_device_name(0)
    else:
        n = torch.get_num_threads()
        machine = (f"{platform.processor() or platform.machine()}, "
                   f"{n} thread{'s' if n > 1 else ''} (CPU)")
    return f"Measured {when} on {machine}, torch {torch.__version__}"


def markdown_table(rows: list[list[object]], header: list[str]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
