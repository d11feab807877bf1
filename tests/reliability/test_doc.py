"""docs/reliability.md names only tests that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_test_named_in_the_reliability_doc_exists():
    doc = (ROOT / "docs" / "reliability.md").read_text()
    names = set(re.findall(r"\b(test_[a-z0-9_]+)\b", doc)) - {"test_run_lifecycle",
                                                               "test_nonfinite_cli",
                                                               "test_nonfinite",
                                                               "test_input_errors",
                                                               "test_api_refusals",
                                                               "test_sgld_checkpoints"}
    defined = set()
    for f in (ROOT / "tests").rglob("test_*.py"):
        defined |= set(re.findall(r"^def (test_[a-z0-9_]+)", f.read_text(), re.M))
        defined.add(f.stem)
    assert len(names) > 40
    assert not names - defined, sorted(names - defined)
