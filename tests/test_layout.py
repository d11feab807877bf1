"""The package's layout rules that a reader relies on."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bayesstruct"


def test_no_module_imports_another_modules_private_names():
    """A name with a leading underscore is private to its module: what two modules share is
    public (e.g. the training pieces in ``bayesstruct.training``)."""
    private = []
    for f in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                private += [f"{f.relative_to(PACKAGE)}:{node.lineno} {a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
    assert not private, private
