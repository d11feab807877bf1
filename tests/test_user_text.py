"""User-facing text stands on its own: no paths outside the repository, no private jargon.

A reader of the README, the docs, the catalog, the notebooks, the command line's help or the
package's docstrings cannot open documents that live outside the repository, so the text may
not point at them (``../shared``, ``METHODS.md``, section codes such as ``M5`` or ``(M2.3)``),
nor use the working names of the sources the project was built from ("seed 001", "seed
before", "the talk"). Papers are cited by author and year instead. ``NOTES.md`` (an internal
engineering log) and the tests themselves are not scanned.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: (what is wrong, pattern). "seed" alone is legitimate (a random seed: ``seed=0``,
#: ``--seed 3``, "seeds 0, 1, 2"); the jargon is a zero-padded three-digit document number,
#: "seed before / after", the possessive "the seed's table", and a "(seed)" table column.
JARGON: list[tuple[str, re.Pattern[str]]] = [
    ("a path outside the repository",
     re.compile(r"\.\./shared|/work/|\bMETHODS\.md\b|\bARCHITECTURE\.md\b")),
    ("a source document by number ('seed 00N')", re.compile(r"\bseed\s+0\d{2}\b", re.I)),
    ("'seed before' / 'seed after'", re.compile(r"\bseeds?\s+(?:before|after)\b", re.I)),
    ("a source document as 'the seed'", re.compile(r"\bseed's\b|\(seed\)\s*\|", re.I)),
    ("'the talk'", re.compile(r"\bthe talk\b|\btalk's\b", re.I)),
    ("a section code ('M5', '(M2.3)')", re.compile(r"\bM[1-9](?:\.\d+)*\b")),
]


def find_jargon(text: str) -> list[str]:
    """Every jargon match in ``text``, as ``"what: matched text"``."""
    return [f"{what}: {m.group(0)!r}" for what, pattern in JARGON for m in pattern.finditer(text)]


# ----------------------------------------------------------------------------- the scanner


@pytest.mark.parametrize("text", [
    "The talk's experiment (seed 001) on an image task",
    "Seed 002's tables",
    "| seed before | seed after |",
    "beside the seed's table",
    "| test CE (seed) |",
    "the relative density (M5)",
    "Gaussian prior (M2.1)",
    "see METHODS.md M3",
    "see ../shared/docs/METHODS.md",
    "/work/main/.venv/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning",
    "(M6.2-M6.4)",
])
def test_scanner_catches_jargon(text):
    assert find_jargon(text)


@pytest.mark.parametrize("text", [
    "bs.data.load('digits', seed=0)",
    "bayesstruct run ENTRY --set seed=3",
    "[--seed 0] [--out DIR]",
    "random seed 0 gives the same split; seeds 0, 1, 2",
    "the seeds are per chain",
    "python benchmarks/hypergrad_seed.py",
    "torch.manual_seed(seed)",
    "MeanField, LeNet-5, K_max = 400, Maclaurin et al. 2015, MNIST",
    "the reference table; a talk given elsewhere",
])
def test_scanner_leaves_ordinary_text_alone(text):
    assert find_jargon(text) == []


# ----------------------------------------------------------------------------- the sources


def _python_text(path: Path) -> str:
    """The docstrings, string constants and comments of a Python file."""
    source = path.read_text()
    parts = [node.value for node in ast.walk(ast.parse(source))
             if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    parts += [tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
              if tok.type == tokenize.COMMENT]
    return "\n".join(parts)


def _notebook_text(path: Path) -> str:
    """Markdown cells and the text of every output (images are skipped)."""
    parts = []
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "markdown":
            parts.append("".join(cell["source"]))
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", [])))
            parts.append("".join(out.get("data", {}).get("text/plain", [])))
            parts.append("\n".join(out.get("traceback", [])))
    return "\n".join(parts)


def _files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "benchmarks" / "RESULTS.md"]
    files += [ROOT / "CHANGELOG.md"] if (ROOT / "CHANGELOG.md").exists() else []
    files += sorted((ROOT / "docs").rglob("*.md"))
    files += sorted((ROOT / "models").glob("*.yaml")) + sorted((ROOT / "inference").glob("*.yaml"))
    files += sorted((ROOT / "notebooks").glob("*.ipynb"))
    files += sorted((ROOT / "bayesstruct").rglob("*.py"))
    files += sorted((ROOT / "benchmarks").glob("*.py"))
    return files


def _text(path: Path) -> str:
    if path.suffix == ".py":
        return _python_text(path)
    if path.suffix == ".ipynb":
        return _notebook_text(path)
    return path.read_text()


def test_the_scan_covers_every_kind_of_user_text():
    names = {p.relative_to(ROOT).as_posix() for p in _files()}
    for expected in ("README.md", "benchmarks/RESULTS.md", "docs/methods.md",
                     "models/ard-logreg-digits.yaml", "inference/svi-eb.yaml",
                     "notebooks/pruning_comparison.ipynb", "bayesstruct/priors/base.py",
                     "benchmarks/nas.py"):
        assert expected in names, expected
    assert "NOTES.md" not in names


def test_user_files_have_no_jargon_or_outside_paths():
    found = {}
    for path in _files():
        hits = find_jargon(_text(path))
        if hits:
            found[path.relative_to(ROOT).as_posix()] = hits
    assert not found, "\n".join(f"{p}: {h}" for p, h in found.items())


def test_command_line_help_has_no_jargon():
    from typer.testing import CliRunner

    from bayesstruct.cli import app

    runner = CliRunner()
    commands = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert {"run", "diagnose", "export"} <= set(commands)
    found = {}
    for args in [["--help"], *[[name, "--help"] for name in commands]]:
        result = runner.invoke(app, args, terminal_width=200)
        assert result.exit_code == 0, (args, result.output)
        hits = find_jargon(result.output)
        if hits:
            found[" ".join(args)] = hits
    assert not found, found
