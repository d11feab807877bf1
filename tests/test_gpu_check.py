"""``make gpu-check`` on a machine without CUDA: it says so, writes a report that says so, and
exits 0 (on a machine with CUDA the script is the check itself, not this test)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA, make gpu-check is the check")
def test_gpu_check_skips_cleanly_without_cuda(tmp_path):
    r = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--out", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "no CUDA device here" in r.stdout and "nothing to check" in r.stdout
    report = (tmp_path / "report.md").read_text()
    assert "no CUDA device: nothing was checked" in report
    assert "## " not in report  # no step ran, none is reported


def test_make_gpu_check_runs_the_script():
    makefile = (ROOT / "Makefile").read_text()
    assert "\ngpu-check: setup data\n\t$(PY) benchmarks/gpu_check.py" in makefile
