"""The wheel carries the catalog, so `bayesstruct zoo` / `run NAME` work after a plain install."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_the_catalog(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(ROOT)], check=True)
    (wheel,) = (tmp_path / "dist").glob("bayesstruct-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
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
