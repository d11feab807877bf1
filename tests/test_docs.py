"""The documentation site builds in strict mode, and its generated parts match the code."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bayesstruct.layers import markdown_table

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MKDOCS = Path(sys.executable).with_name("mkdocs")


def test_layers_page_table_is_the_registry():
    table = re.search(r"<!-- layers:start -->\n(.*?)\n<!-- layers:end -->",
                      (DOCS / "layers.md").read_text(), re.S)
    assert table is not None and table.group(1) == markdown_table()


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert {"index.md", "guide.md", "methods.md", "layers.md", "contributing.md",
            "reliability.md", "changelog.md"} <= set(pages)
    missing = [p for p in pages if p not in nav]
    assert not missing, missing


def test_api_reference_covers_the_main_modules():
    for name in ("bayesstruct", "models", "priors", "guides", "inference", "pruning",
                 "posterior", "layers", "experiments"):
        module = "bayesstruct" if name == "bayesstruct" else f"bayesstruct.{name}"
        assert f"::: {module}\n" in (DOCS / "api" / f"{name}.md").read_text()


@pytest.mark.skipif(not MKDOCS.exists() and shutil.which("mkdocs") is None,
                    reason="mkdocs is not installed (pip install -e '.[dev]')")
def test_site_builds_strict_without_warnings(tmp_path):
    exe = str(MKDOCS) if MKDOCS.exists() else shutil.which("mkdocs")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([exe, "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "WARNING" not in output, output
    site = tmp_path / "site"
    for page in ("index.html", "guide/index.html", "methods/index.html", "layers/index.html",
                 "api/priors/index.html", "changelog/index.html"):
        assert (site / page).is_file(), page
    # the changelog page includes the root CHANGELOG.md, the API pages render docstrings
    changelog = (site / "changelog" / "index.html").read_text()
    assert "0.1.0" in changelog and "--8&lt;--" not in changelog
    assert 'id="bayesstruct.priors.Horseshoe"' in (site / "api/priors/index.html").read_text()


def test_guide_python_example_is_the_tested_readme_example():
    """The guide's first example is README's first one, which tests/test_readme.py runs."""
    fence = re.compile(r"```python\n(.*?)```", re.S)
    guide = fence.findall((DOCS / "guide.md").read_text())
    readme = fence.findall((ROOT / "README.md").read_text())
    assert guide and readme and guide[0] == readme[0]
