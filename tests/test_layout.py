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


def test_nas_exports_no_name_that_pruning_defines():
    """A name has one home: ``bayesstruct.nas`` exports nothing defined in
    ``bayesstruct.pruning`` (``count_parameters`` is reached there)."""
    import importlib
    import pkgutil

    from bayesstruct import nas, pruning

    defined = set(pruning.__all__)
    for m in pkgutil.iter_modules(pruning.__path__):
        defined |= set(importlib.import_module(f"bayesstruct.pruning.{m.name}").__all__)
    assert not set(nas.__all__) & defined, sorted(set(nas.__all__) & defined)
    for name in nas.__all__:
        where = getattr(getattr(nas, name), "__module__", "") or ""
        assert not where.startswith("bayesstruct.pruning"), (name, where)


def test_every_name_a_package_exports_is_there():
    import bayesstruct
    from bayesstruct import data, nas, plots, pruning, training

    for package in (bayesstruct, data, nas, plots, pruning, training):
        missing = [n for n in package.__all__ if not hasattr(package, n)]
        assert not missing, (package.__name__, missing)
