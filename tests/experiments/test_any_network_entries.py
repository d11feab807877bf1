"""The zoo entries with a residual network, torch's LSTM and a 1-D convolutional net run end to
end on a small budget: the run shrinks them along their data flow (no masked fallback), counts
the multiply-adds before and after, and writes the network folder."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bayesstruct.cli import app

pytestmark = pytest.mark.slow  # about 1.5 minutes an entry: the analysis of 10000 test images

ENTRIES = ["resnet-ard-fashion-mnist", "resnet-ard-slim-fashion-mnist",
           "resnet-bc-gnj-fashion-mnist", "lstm-fashion-mnist", "conv1d-fashion-mnist"]


@pytest.mark.parametrize("entry", ENTRIES)
def test_entry_runs_and_shrinks_for_real(entry, fashion_mnist, tmp_path):
    out = tmp_path / entry
    res = CliRunner().invoke(app, ["run", entry, "--out", str(out), "--quiet",
                                   "--set", "data.train_size=300", "--set", "inference.epochs=1",
                                   "--set", "inference.num_draws=2"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["shrink_note"] == ""
    assert m["macs_dense"] > 0 and 0 < m["macs_pruned"] <= m["macs_dense"]
    units = m["hidden_units"]
    assert units["dense"] > 0 and 0 < units["pruned"] <= units["dense"]
    assert (out / "network" / "pruned.torchscript.pt").is_file()
    if entry == "resnet-ard-slim-fashion-mnist":  # half of every layer, then retrained
        assert units["pruned"] == units["dense"] // 2 == 144
        assert m["retrain_epochs"] == 3 and m["test_acc_pruned_before_retrain"] is not None
        assert (out / "network" / "retrained.pt").is_file()
