"""Packaging: the metadata (license, changelog, URLs, classifiers, dependency bounds), and the
wheel carries the catalog and ``py.typed``, so `bayesstruct zoo` / `run NAME` work after a plain
install."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_license_file_exists_and_is_referenced():
    assert PROJECT["license"] == "MIT"  # an SPDX expression (PEP 639)
    assert PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "the bayesstruct developers" in text
    assert "WITHOUT WARRANTY OF ANY KIND" in text
    # PEP 639: no deprecated "License ::" classifier beside the expression
    assert not [c for c in PROJECT["classifiers"] if c.startswith("License ::")]


def test_changelog_has_the_current_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "Keep a Changelog" in text and "## [Unreleased]" in text
    heading = re.search(rf"^## \[{re.escape(PROJECT['version'])}\] - (\d{{4}}-\d{{2}}-\d{{2}})$",
                        text, re.M)
    assert heading, f"no '## [{PROJECT['version']}] - YYYY-MM-DD' heading in CHANGELOG.md"
    assert text.index("## [Unreleased]") < heading.start()  # newest first


def test_urls_and_classifiers():
    assert {"Homepage", "Documentation", "Source", "Changelog"} <= set(PROJECT["urls"])
    assert all(u.startswith("https://") for u in PROJECT["urls"].values())
    classifiers = set(PROJECT["classifiers"])
    assert {"Development Status :: 3 - Alpha", "Intended Audience :: Science/Research",
            "Topic :: Scientific/Engineering :: Artificial Intelligence",
            "Typing :: Typed"} <= classifiers
    # the Python versions named agree with requires-python (>=3.11)
    floor = tuple(int(x) for x in re.search(r">=(\d+)\.(\d+)",
                                            PROJECT["requires-python"]).groups())
    minor = re.compile(r"Programming Language :: Python :: (\d+)\.(\d+)")
    versions = [tuple(int(x) for x in m.groups()) for c in classifiers if (m := minor.fullmatch(c))]
    assert versions and min(versions) == floor
    assert (ROOT / "bayesstruct" / "py.typed").is_file()


def test_every_dependency_has_an_upper_bound():
    unbounded = [r for r in PROJECT["dependencies"]
                 if not any(s.operator in ("<", "<=", "~=", "==")
                            for s in Requirement(r).specifier)]
    assert not unbounded, f"dependencies without an upper bound: {unbounded}"


@pytest.mark.slow
def test_wheel_ships_the_catalog(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(ROOT)], check=True)
    (wheel,) = (tmp_path / "dist").glob("bayesstruct-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "bayesstruct/py.typed" in names  # PEP 561: type checkers read the annotations
    dist_info = f"bayesstruct-{PROJECT['version']}.dist-info"
    assert f"{dist_info}/licenses/LICENSE" in names
    meta = Parser().parsestr(zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode())
    assert meta["License-Expression"] == "MIT" and meta.get_all("License-File") == ["LICENSE"]
    assert "Typing :: Typed" in meta.get_all("Classifier")
    assert any(u.startswith("Changelog, https://") for u in meta.get_all("Project-URL"))
    entries = sorted(f.stem for f in (ROOT / "models").glob("*.yaml"))
    for kind in ("models", "inference"):
        for f in (ROOT / kind).glob("*.yaml"):
            assert f"bayesstruct/catalog/{kind}/{f.name}" in names
    # installed on its own (away from the checkout), the CLI finds every entry
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = "import bayesstruct; print(bayesstruct.__file__)"
    where = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                           capture_output=True, text=True, check=True)
    assert where.stdout.strip().startswith(str(site))
    zoo = subprocess.run([sys.executable, "-m", "bayesstruct", "zoo"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True)
    for name in entries:
        assert name in zoo.stdout
    assert "svi-meanfield" in zoo.stdout and "svi-map" in zoo.stdout
