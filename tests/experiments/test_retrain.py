"""``pruning.retrain_epochs``: the pruned posterior-mean network retrained with the masks held.
The run's "after pruning" figures, the exported TorchScript network and ``retrained.pt`` are
the retrained network's; the "before" figure is the masked posterior mean's. Each is checked
through a path of its own: the saved files, rebuilt with ``nets.build`` and evaluated here."""

from __future__ import annotations

import json
import shutil
import types

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from bayesstruct import config, export, nets, pruning
from bayesstruct.cli import app
from bayesstruct.errors import ConfigError
from bayesstruct.experiments.base import load_data
from bayesstruct.experiments.fit import retrain

ENTRY = "lenet300-gaussian-digits"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("retrain") / "run"
    res = CliRunner().invoke(app, [
        "run", ENTRY, "--out", str(out), "--quiet", "--set", "inference.epochs=4",
        "--set", "pruning.threshold=0.9", "--set", "pruning.retrain_epochs=3",
        "--set", "pruning.mc_samples=0", "--set", "pruning.snr_curve=false",
        "--set", "pruning.finetune_epochs=0", "--set", "collapse_check.enabled=false"])
    assert res.exit_code == 0, res.output
    assert "after pruning and retraining (3 epochs)" in res.output
    return out


def _accuracy(net, split) -> float:
    with torch.no_grad():
        return float((net(split.x).argmax(1) == split.y).double().mean())


def _dense(run_dir, state_file):
    folder = run_dir / "network"
    build = json.loads((folder / "manifest.json").read_text())["net"]["build"]
    net = nets.build(**build)
    net.load_state_dict(torch.load(folder / state_file, weights_only=True))
    return net.eval(), export.load_masks(folder)


def test_the_figures_are_those_of_the_networks_the_run_saved(run_dir):
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["retrain_epochs"] == 3 and 0 < m["fraction_removed"] < 1
    ds = load_data(config.resolve(ENTRY))
    one = 1.0 / len(ds.test)  # an argmax tie may differ between eager and TorchScript
    scripted = torch.jit.load(str(run_dir / "network" / "pruned.torchscript.pt"))
    assert abs(_accuracy(scripted, ds.test) - m["test_acc_pruned"]) <= one
    mean, masks = _dense(run_dir, "posterior_mean.pt")
    with torch.no_grad():  # the posterior mean with the decision's masks, by hand
        for name, p in mean.named_parameters():
            if name in masks:
                p.mul_(torch.as_tensor(masks[name], dtype=p.dtype))
    assert abs(_accuracy(mean, ds.test) - m["test_acc_pruned_before_retrain"]) <= one
    assert m["test_acc_pruned"] != m["test_acc_pruned_before_retrain"]  # it did train
    # the compressed sizes are of the network the run exports: the retrained one
    assert abs(m["compression"]["acc_pruned"] - m["test_acc_pruned"]) <= one


def test_retrained_weights_hold_the_masks_and_rebuild_the_exported_network(run_dir):
    net, masks = _dense(run_dir, "retrained.pt")
    params = dict(net.named_parameters())
    assert masks and all(not params[k][~torch.as_tensor(v)].any() for k, v in masks.items())
    mean, _ = _dense(run_dir, "posterior_mean.pt")
    moved = [k for k in masks if not torch.equal(params[k], dict(mean.named_parameters())[k])]
    assert moved  # the kept weights were trained
    x = load_data(config.resolve(ENTRY)).test.x[:50]
    scripted = torch.jit.load(str(run_dir / "network" / "pruned.torchscript.pt"))
    with torch.no_grad():
        torch.testing.assert_close(export.rebuild_pruned(run_dir / "network")(x), scripted(x),
                                   rtol=1e-5, atol=1e-5)
    manifest = json.loads((run_dir / "network" / "manifest.json").read_text())
    assert manifest["retrained"]["file"] == "retrained.pt"
    assert "retrained with the masks held" in (run_dir / "network" / "README.txt").read_text()


def test_retraining_is_refused_for_a_one_output_likelihood():
    with pytest.raises(ConfigError, match=r"pruning.retrain_epochs=2: .*'bernoulli'"):
        config.resolve("logreg-digits01", None, ["pruning.retrain_epochs=2"])
    model = types.SimpleNamespace(likelihood=types.SimpleNamespace(name="bernoulli"))
    with pytest.raises(ValueError, match="not categorical"):
        retrain(model, torch.nn.Linear(2, 1), {}, None, 1, 1e-3)


@pytest.mark.parametrize("bad", ["1.0", "-0.1"])
def test_unit_fraction_outside_its_range_is_refused(bad):
    with pytest.raises(ConfigError, match="unit_fraction"):
        config.resolve(ENTRY, None, [f"pruning.unit_fraction={bad}"])


def test_without_retraining_no_retrained_file_is_left(run_dir, tmp_path):
    """A network folder rewritten without retraining drops an earlier ``retrained.pt``."""
    folder = tmp_path / "network"
    shutil.copytree(run_dir / "network", folder)
    mean, masks = _dense(run_dir, "posterior_mean.pt")
    small = pruning.prune(mean, masks)
    ds = load_data(config.resolve(ENTRY))
    export.write_network(folder, mean, small, masks, ds.test.x[:4],
                         build=json.loads((run_dir / "network" / "manifest.json").read_text())
                         ["net"]["build"], outputs="logits")
    assert not (folder / "retrained.pt").exists()
    assert "retrained" not in json.loads((folder / "manifest.json").read_text())
    np.testing.assert_allclose(export.rebuild_pruned(folder)(ds.test.x[:4]).detach(),
                               small(ds.test.x[:4]).detach(), rtol=1e-5, atol=1e-6)


def test_input_fraction_removes_that_share_of_the_pixels_and_retrains(tmp_path):
    """``pruning.input_fraction=0.75`` on digits under a unit-level prior: 48 of the 64
    pixels go (counted on the exported TorchScript network's first layer and in the
    compression summary), and the retrained network is the one reported."""
    out = tmp_path / "run"
    res = CliRunner().invoke(app, [
        "run", ENTRY, "--out", str(out), "--quiet", "--set", "inference.epochs=2",
        "--set", "prior.kind=log_uniform", "--set", "prior.level=unit",
        "--set", "pruning.input_fraction=0.75", "--set", "pruning.retrain_epochs=2",
        "--set", "pruning.mc_samples=0", "--set", "pruning.snr_curve=false",
        "--set", "pruning.finetune_epochs=0", "--set", "collapse_check.enabled=false"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["compression"]["layers"][0]["in_units_kept"] == 16
    small = export.rebuild_pruned(out / "network")
    assert next(x for x in small.modules() if isinstance(x, torch.nn.Linear)).in_features == 16
    ds = load_data(config.resolve(ENTRY))
    scripted = torch.jit.load(str(out / "network" / "pruned.torchscript.pt"))
    assert abs(_accuracy(scripted, ds.test) - m["test_acc_pruned"]) <= 1.0 / len(ds.test)


def test_input_fraction_is_refused_where_single_weights_are_decided(tmp_path):
    with pytest.raises(ConfigError, match="pruning.input_fraction=0.5 removes input units"):
        config.resolve(ENTRY, None, ["pruning.input_fraction=0.5", "pruning.criterion=rho"])
    out = tmp_path / "run"  # auto with a Gaussian prior: rho per weight, refused before training
    res = CliRunner().invoke(app, ["run", ENTRY, "--out", str(out), "--quiet",
                                   "--set", "pruning.input_fraction=0.5"])
    assert res.exit_code != 0
    assert "pruning.input_fraction=0.5 removes input units, and prior 'gaussian'" in res.output
    assert not (out / "history.csv").exists()
