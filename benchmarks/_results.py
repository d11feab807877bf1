"""Writing a benchmark's section into ``benchmarks/RESULTS.md`` (between its markers)."""

from __future__ import annotations

import datetime
import platform
import re
from pathlib import Path

import torch

from bayesstruct.files import write_text

RESULTS = Path(__file__).with_name("RESULTS.md")


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
