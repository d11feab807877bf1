"""End-to-end runs on full data sets (``make test-slow``; CI runs them after the fast suite)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bayesstruct.cli import app

pytestmark = pytest.mark.slow


def test_ard_logreg_fashion_mnist(fashion_mnist, tmp_path):
    """Issue 2: >= 83 % test accuracy, >= 50 % of weights removed at <= 0.5 pp accuracy loss."""
    out = tmp_path / "fm"
    res = CliRunner().invoke(app, ["run", "ard-logreg-fashion-mnist", "--out", str(out),
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    print(f"\nfashion-mnist ARD logreg: test acc {100 * m['test_acc']:.2f} %, removed "
          f"{100 * m['fraction_removed']:.1f} %, acc after pruning "
          f"{100 * m['test_acc_pruned']:.2f} %")
    assert m["test_acc"] >= 0.83
    assert m["fraction_removed"] >= 0.50
    assert m["test_acc"] - m["test_acc_pruned"] <= 0.005
    # issue 29: a zoo entry's run does not read as collapsed against a plain fit
    assert m["collapse_check"]["warning"] is None, m["collapse_check"]


def test_ibp_mlp_fashion_mnist(fashion_mnist, tmp_path):
    """Issue 7: ``bayesstruct run ibp-mlp`` infers widths far below K_max = 400, 400 and the
    net pruned to them keeps the posterior-mean accuracy (within 0.5 pp, >= 84 %)."""
    out = tmp_path / "ibp"
    res = CliRunner().invoke(app, ["run", "ibp-mlp", "--out", str(out), "--quiet",
                                   "--set", "pruning.mc_samples=0"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    widths = {k: w["active"] for k, w in m["inferred_widths"].items()}
    print(f"\nibp-mlp: widths {widths}, test acc {100 * m['test_acc']:.2f} %, pruned "
          f"{100 * m['test_acc_pruned']:.2f} %")
    assert all(0 < w < 200 for w in widths.values())
    assert [m["units_after"]["fc1"][1], m["units_after"]["fc2"][1]] == list(widths.values())
    assert m["test_acc_pruned"] >= 0.84
    assert abs(m["test_acc"] - m["test_acc_pruned"]) <= 0.005
    assert m["collapse_check"]["warning"] is None, m["collapse_check"]
