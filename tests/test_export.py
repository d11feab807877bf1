"""The pruned network of a fit run, in files that load without bayesstruct (``network/``), and
``bayesstruct export RUN_DIR --format torchscript|onnx``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from bayesstruct import export as export_mod
from bayesstruct import nets, posterior, pruning
from bayesstruct.cli import app
from bayesstruct.config import load_run_config
from bayesstruct.experiments import fit
from bayesstruct.experiments.base import build_model, load_data

runner = CliRunner()
FAST = ["--set", "inference.epochs=3", "--set", "inference.num_draws=5",
        "--set", "pruning.mc_samples=3", "--quiet"]

# run with bayesstruct made unimportable: the network must load with torch alone
WITHOUT_BAYESSTRUCT = """
import sys
sys.modules["bayesstruct"] = None
try:
    import bayesstruct  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("bayesstruct is importable")
import torch
net = torch.jit.load(sys.argv[1])
with torch.no_grad():
    y = net(torch.load(sys.argv[2], weights_only=True))
torch.save(y, sys.argv[3])
used = [m for m, v in sys.modules.items() if m.startswith("bayesstruct") and v is not None]
if used:
    raise SystemExit(f"loading imported {used}")
"""


def run_without_bayesstruct(script: os.PathLike, x: torch.Tensor, tmp_path) -> torch.Tensor:
    """``torch.jit.load(script)(x)`` in a fresh interpreter where bayesstruct cannot be
    imported (another working directory, no PYTHONPATH)."""
    torch.save(x, tmp_path / "x.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", WITHOUT_BAYESSTRUCT, str(script),
                          str(tmp_path / "x.pt"), str(tmp_path / "y.pt")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return torch.load(tmp_path / "y.pt", weights_only=True)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny fit of the default entry (ARD logistic regression on digits)."""
    out = tmp_path_factory.mktemp("export") / "run"
    res = runner.invoke(app, ["run", "--out", str(out), *FAST])
    assert res.exit_code == 0, res.output
    assert "pruned network:" in res.output
    return out


@pytest.fixture(scope="module")
def rebuilt(run_dir):
    """The run's model, posterior, data, decision and posterior-mean net, made again."""
    cfg = load_run_config(run_dir)
    ds = load_data(cfg)
    model = build_model(cfg, ds)
    post = posterior.load(run_dir / "posterior.nc")
    decision = fit.decide(cfg, model, post, ds)
    mean_net = pruning.mean_network(post, model)
    return ds, decision, mean_net, pruning.prune(mean_net, decision.masks)


def test_a_fit_run_writes_the_network_folder(run_dir):
    net = run_dir / "network"
    for f in ("pruned.torchscript.pt", "masks.npz", "posterior_mean.pt", "manifest.json",
              "README.txt"):
        assert (net / f).is_file(), f
    manifest = json.loads((net / "manifest.json").read_text())
    ts = manifest["torchscript"]
    assert ts["method"] in ("script", "trace") and ts["max_abs_difference"] < 1e-5
    assert manifest["input"] == {**manifest["input"], "shape": ["batch", 1, 8, 8],
                                 "dtype": "float32"}
    assert manifest["output"]["shape"] == ["batch", 10]
    assert "logits" in manifest["output"]["meaning"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert manifest["units"]["pruned"] == metrics["units_after"]
    assert manifest["parameters"]["pruned"] == metrics["params_after_unit_removal"]
    assert manifest["masks"]["weights_kept"] == metrics["weights_kept"]
    readme = (net / "README.txt").read_text()
    assert "torch.jit.load('pruned.torchscript.pt')" in readme and "weights_only=True" in readme


def test_masks_and_posterior_mean_are_the_runs(run_dir, rebuilt):
    _, decision, mean_net, _ = rebuilt
    with np.load(run_dir / "network" / "masks.npz") as z:
        assert sorted(z.files) == sorted(decision.masks)
        for k, m in decision.masks.items():
            assert z[k].dtype == bool and np.array_equal(z[k], np.asarray(m, dtype=bool)), k
    state = torch.load(run_dir / "network" / "posterior_mean.pt", weights_only=True)
    expected = mean_net.state_dict()
    assert list(state) == list(expected)
    for k, v in expected.items():
        assert torch.equal(state[k], v.cpu()), k


def test_torchscript_loads_without_bayesstruct_and_computes_the_pruned_net(run_dir, rebuilt,
                                                                           tmp_path):
    ds, _, _, small = rebuilt
    x = ds.test.x[:37]
    y = run_without_bayesstruct(run_dir / "network" / "pruned.torchscript.pt", x, tmp_path)
    with torch.no_grad():
        expected = small(x)
    assert y.shape == expected.shape == (37, 10)
    assert torch.allclose(y, expected, atol=1e-5, rtol=1e-5)
    # the folder alone makes the same module again (nets.build + state dict + masks)
    with torch.no_grad():
        again = export_mod.rebuild_pruned(run_dir / "network")(x)
    assert torch.allclose(again, expected, atol=1e-6)


def test_export_torchscript_copies_or_makes_the_file_again(run_dir, tmp_path):
    res = runner.invoke(app, ["export", str(run_dir), "--out", str(tmp_path / "a.pt")])
    assert res.exit_code == 0, res.output
    source = run_dir / "network" / "pruned.torchscript.pt"
    assert (tmp_path / "a.pt").read_bytes() == source.read_bytes()
    again = runner.invoke(app, ["export", str(run_dir), "--out", str(tmp_path / "a.pt")])
    assert again.exit_code == 2 and "exists" in again.output  # nothing of yours overwritten
    # without the TorchScript file, it is made again from masks.npz and posterior_mean.pt
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "network" / "pruned.torchscript.pt").unlink()
    res = runner.invoke(app, ["export", str(copy)])
    assert res.exit_code == 0, res.output
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        expected = export_mod.rebuild_pruned(copy / "network")(x)
    assert torch.allclose(run_without_bayesstruct(copy / "network" / "pruned.torchscript.pt",
                                                  x, tmp_path), expected, atol=1e-6)


def test_export_refuses_what_is_not_a_fit_run_with_a_way_on(run_dir, tmp_path):
    res = runner.invoke(app, ["export", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "does not exist" in res.output
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["export", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "not a bayesstruct run directory" in res.output
    res = runner.invoke(app, ["export", str(run_dir), "--format", "keras"])
    assert res.exit_code == 2 and "torchscript, onnx" in res.output
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    shutil.rmtree(old / "network")
    res = runner.invoke(app, ["export", str(old)])
    assert res.exit_code == 2 and "no network/ folder" in res.output
    assert f"bayesstruct run --out {old} --resume" in res.output
    # which writes it: a resume of the finished run re-analyses it
    res = runner.invoke(app, ["run", "--out", str(old), "--resume", "--quiet"])
    assert res.exit_code == 0, res.output
    assert (old / "network" / "pruned.torchscript.pt").is_file()


def test_onnx_without_its_packages_names_the_extra(run_dir, monkeypatch):
    real = export_mod.importlib.util.find_spec
    monkeypatch.setattr(export_mod.importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxscript" else real(name, *a))
    res = runner.invoke(app, ["export", str(run_dir), "--format", "onnx"])
    assert res.exit_code == 2 and "pip install 'bayesstruct[onnx]'" in res.output


def test_onnx_export_agrees_with_onnxruntime(run_dir, rebuilt, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    ds, _, _, small = rebuilt
    out = tmp_path / "net.onnx"
    res = runner.invoke(app, ["export", str(run_dir), "--format", "onnx", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "onnxruntime agrees" in res.output
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for x in (ds.test.x[:1], ds.test.x[:50]):  # the batch axis is dynamic
        with torch.no_grad():
            expected = small(x).numpy()
        got = session.run(None, {"x": x.numpy()})[0]
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind,shape,pairs", [("rnn", (8, 8), False), ("gru", (2, 5, 4), True)])
def test_recurrent_nets_export_with_their_hidden_units_removed(kind, shape, pairs, tmp_path):
    torch.manual_seed(0)
    build = {"kind": kind, "input_shape": list(shape), "n_classes": 3, "hidden": [6],
             "activation": "relu", "pairs": pairs}
    net = nets.build(**build).eval()
    gates = 3 if kind == "gru" else 1
    masks = {name: np.ones(p.shape, dtype=bool) for name, p in net.named_parameters()
             if name.endswith("weight")}
    masks["rnn.hh.weight"][:, 2] = False  # hidden unit 2 is read by nothing
    for col in ((2, 8) if pairs else (2,)):
        masks["fc.weight"][:, col] = False
    small = pruning.prune(net, masks)
    assert small.rnn.hidden_size == 5 and small.rnn.hh.weight.shape == (5 * gates, 5)
    x = torch.randn(4, *shape)
    if pairs:
        x[..., -1] = (torch.rand(4, 2, shape[1]) > 0.3).float()  # the padding mask column
    manifest = export_mod.write_network(tmp_path / "network", net, small, masks, x, build=build,
                                        outputs="logits")
    assert manifest["torchscript"]["method"] == "script"
    units = manifest["units"]
    assert units["dense"]["rnn.hh"] == [6, 6 * gates]
    assert units["pruned"]["rnn.hh"] == [5, 5 * gates]
    y = run_without_bayesstruct(tmp_path / "network" / "pruned.torchscript.pt", x[:3], tmp_path)
    with torch.no_grad():
        expected = small(x[:3])
        masked = pruning.apply_masks(net, masks)(x[:3])
        again = export_mod.rebuild_pruned(tmp_path / "network")(x[:3])
    assert torch.allclose(y, expected, atol=1e-6) and torch.allclose(y, masked, atol=1e-5)
    assert torch.allclose(again, expected, atol=1e-6)


class _Unscriptable(nn.Module):
    """A module TorchScript cannot compile (a try block), so the export traces it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self.fc(x).relu()
        except RuntimeError:
            raise


def test_a_module_that_does_not_script_is_traced(tmp_path):
    torch.manual_seed(0)
    net = _Unscriptable().eval()
    scripted = export_mod.to_torchscript(net, torch.randn(8, 4))
    assert scripted.method == "trace" and scripted.script_error
    x = torch.randn(3, 4)  # another batch size than the trace's
    assert torch.allclose(scripted.module(x), net(x))
    manifest = export_mod.write_network(
        tmp_path / "network", net, net, {"fc.weight": np.ones((3, 4), dtype=bool)},
        torch.randn(8, 4), build={}, outputs="scores")
    assert manifest["torchscript"]["method"] == "trace"
    assert "torch.jit.trace" in (tmp_path / "network" / "README.txt").read_text()
    assert torch.allclose(run_without_bayesstruct(tmp_path / "network" /
                                                  "pruned.torchscript.pt", x, tmp_path),
                          net(x).detach())
