"""Structured decisions: unit scores, outer-product masks, criteria, the compression report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from bayesstruct import guides, nets, posterior, priors, pruning
from bayesstruct.cli import app
from bayesstruct.models import BayesianNet
from bayesstruct.pruning.criteria import calibrate_unit_thresholds
from bayesstruct.pruning.units import unit_keep, unit_log_alpha, weight_masks_from_units
from tests.helpers import randomize_guide


def test_outer_product_masks_through_flatten():
    """conv2's output channel c feeds fc1 columns c*16 .. c*16+15 (28x28 LeNet-5)."""
    model = BayesianNet(nets.lenet5_caffe((1, 28, 28), 10), priors.LogUniform(level="unit"))
    keep = {"conv1.weight": np.array([True]),
            "conv2.weight": np.arange(20) % 2 == 0,  # even conv1 channels are read
            "fc1.weight": np.zeros(800, dtype=bool),
            "fc2.weight": np.arange(500) < 100}
    keep["fc1.weight"][16 * 3 + 5] = True  # only channel 3 of conv2 is read, by one column
    masks = weight_masks_from_units(model, keep)
    assert masks["conv1.weight"].shape == (20, 1, 5, 5)
    np.testing.assert_array_equal(masks["conv1.weight"][:, 0, 0, 0], np.arange(20) % 2 == 0)
    np.testing.assert_array_equal(masks["conv2.weight"].any(axis=(1, 2, 3)),
                                  np.arange(50) == 3)
    np.testing.assert_array_equal(masks["conv2.weight"][3, :, 2, 2], np.arange(20) % 2 == 0)
    assert masks["fc1.weight"].sum() == 100  # 100 kept outputs x 1 kept column
    assert masks["fc2.weight"].all(axis=0).sum() == 100 and masks["fc2.weight"].shape == (10, 500)


def test_unit_keep_per_layer_thresholds():
    scores = {"fc1.weight": np.array([-5.0, 0.5, 2.0]), "fc2.weight": np.array([-1.0, 1.0])}
    keep = unit_keep(scores, 1.0, {"fc2": 0.0})
    np.testing.assert_array_equal(keep["fc1.weight"], [True, True, False])
    np.testing.assert_array_equal(keep["fc2.weight"], [True, False])
    with pytest.raises(ValueError, match="unknown layers"):
        unit_keep(scores, 1.0, {"fc9": 0.0})


def _post(prior, seed=0):
    torch.manual_seed(seed)
    model = BayesianNet(nets.mlp([6, 5, 4, 3]), prior, num_data=20)
    guide = guides.MeanField(model)
    randomize_guide(guide, seed=seed + 1)
    return model, posterior.from_guide(model, guide, num_draws=4)


def test_log_alpha_criterion_is_molchanovs():
    model, post = _post(priors.LogUniform())
    d = pruning.make_decision(post, model)
    assert d.criterion == "log_alpha"
    for name, mask in d.masks.items():
        m = post.variational_loc[name].values.astype(np.float64)
        s = post.variational_scale[name].values.astype(np.float64)
        np.testing.assert_array_equal(mask, np.log(s**2 / m**2) < 3.0)
    # the same ordering as rho = exp(-1 / (2 alpha)): one threshold maps onto the other
    rho = pruning.make_decision(post, model, "rho", rho_threshold=float(np.exp(-0.5 * np.exp(-3))))
    for name in d.masks:
        assert (rho.masks[name] != d.masks[name]).mean() < 0.01


@pytest.mark.parametrize("prior", [priors.LogUniform(level="unit"), priors.Horseshoe()],
                         ids=["gnj", "horseshoe"])
def test_unit_criterion_masks_are_outer_products(prior):
    model, post = _post(prior)
    units = unit_log_alpha(post, model)
    thr = float(np.median(np.concatenate(list(units.values()))))
    d = pruning.make_decision(post, model, unit_threshold=thr)
    assert d.criterion == "unit"
    names = [s.name for s in model.weight_sites]
    for i, name in enumerate(names):
        k_in = units[name] < thr
        k_out = units[names[i + 1]] < thr if i + 1 < len(names) else np.ones(
            d.masks[name].shape[0], dtype=bool)
        np.testing.assert_array_equal(d.masks[name], np.outer(k_out, k_in))
    if prior.kind == "log_uniform":  # GNJ: log sigma_z^2 - log mu_z^2 of q(z)
        mu = post.variational_loc["fc1.weight.z"].values.astype(np.float64)
        sd = post.variational_scale["fc1.weight.z"].values.astype(np.float64)
        np.testing.assert_allclose(units["fc1.weight"], np.log(sd**2 / mu**2), atol=1e-4)  # +1e-8


def test_compression_summary_of_a_planted_net_by_hand():
    """Every byte of a 4-3-2 net with planted weights and masks, counted by hand from the
    definitions (Han, Mao & Dally 2016; Louizos, Ullrich & Welling 2017), 2-bit k-means."""
    model = BayesianNet(nets.mlp([4, 3, 2]), priors.Gaussian())
    w1 = np.array([[0.5, 0.5, -1.0, 9.0],   # 9.0 and 7.0 are masked out: never counted
                   [7.0, 0.5, 7.0, 7.0],
                   [7.0, 7.0, 7.0, 2.0]], dtype=np.float32)
    m1 = np.array([[1, 1, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=bool)
    w2 = np.array([[0.25, 5.0, 5.0], [5.0, 5.0, 5.0]], dtype=np.float32)
    m2 = np.array([[1, 0, 0], [0, 0, 0]], dtype=bool)
    moments = {"fc1.weight": (w1, np.zeros_like(w1)), "fc2.weight": (w2, np.zeros_like(w2))}
    s = pruning.compression_summary(model, {"fc1.weight": m1, "fc2.weight": m2}, moments,
                                    bits_fc=2)
    # fc1: kept flat positions 0, 1, 2, 5, 11 -> gaps 1, 1, 1, 3, 6 (from position -1); the
    # bound 2^2 - 1 = 3 splits the 6 into a filler gap 3 and the rest 3: gap stream
    # 1 1 1 3 3 3, two symbols of 3 each -> 1 bit each, 6 bits. Values 0.5 0.5 -1 0.5 2: three
    # distinct (<= 4 centroids, so k-means keeps them): codebook -1, 0.5, 2 (96 bits); index
    # stream 1 1 0 1 F 2 with F the filler symbol: counts 3, 1, 1, 1; Huffman cost = sum of
    # the merged weights (1+1) + (1+2) + (3+3) = 11 bits. 6 + 11 + 96 = 113 bits -> 15 bytes.
    # fc2: one kept weight at position 0: gap stream [1] and index stream [0], 1 bit each
    # (a one-symbol code spends a bit per symbol), codebook 32 bits: 34 bits -> 5 bytes.
    fc1, fc2 = s["layers"]
    assert (fc1["huffman_bytes"], fc2["huffman_bytes"]) == (15, 5)
    assert (fc1["in_units_kept"], fc1["out_units_kept"]) == (4, 3)
    assert (fc2["in_units_kept"], fc2["out_units_kept"]) == (1, 1)
    # Deep Compression total: both layers' bytes in bits + 32-bit biases of kept output units
    # (3 + 1): 8 * (15 + 5) + 32 * 4 = 288 bits = 36 bytes; dense: 23 parameters x 4 bytes
    assert s["deep_compression_bytes"] == 36 and s["dense_bytes"] == 92
    assert s["deep_compression_ratio"] == pytest.approx(92 * 8 / 288)
    # Louizos: zero variances -> 23 significand bits; max |kept weight| = 2 -> exponent bits
    # ceil(log2(log2 2 + 1) + 1) = 2; 1 sign bit: 26 bits per weight. 6 weights + 4 biases:
    # 6 * 26 + 4 * 32 = 284 bits -> 36 bytes (35.5 rounded up)
    assert (fc1["bits_per_weight"], fc2["bits_per_weight"]) == (26, 26)
    assert s["bit_precision_bytes"] == 36
    assert (s["weights"], s["weights_kept"]) == (18, 6)
    assert s["sparsity_ratio"] == pytest.approx(3.0)


FAST = ["--set", "data.name=digits", "--set", "inference.epochs=2", "--set",
        "inference.num_draws=3", "--set", "pruning.mc_samples=2", "--quiet"]


@pytest.mark.parametrize("entry", ["lenet300-sparsevd", "lenet300-bc-gnj",
                                   "lenet300-bc-horseshoe", "lenet5-bc-gnj"])
def test_zoo_entries_report_compression(tmp_path, entry):
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", entry, "--out", str(out), *FAST])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    comp = metrics["compression"]
    assert {"sparsity_ratio", "deep_compression_bytes", "bit_precision_bytes",
            "layers"} <= set(comp)
    layers = ["conv1", "conv2", "fc1", "fc2"] if "lenet5" in entry else ["fc1", "fc2", "fc3"]
    assert [layer["layer"] for layer in comp["layers"]] == layers
    assert "Huffman bytes" in res.output and "|W|/|W!=0|" in res.output
    # the pruned network has no more input units per layer than the masks keep (prune may
    # drop more: units with no input fold into the next bias); LeNet-5's fc1 counts columns
    for layer in comp["layers"]:
        if not ("lenet5" in entry and layer["layer"] == "fc1"):
            assert metrics["units_after"][layer["layer"]][0] <= max(layer["in_units_kept"], 1)
    assert metrics["params_after_unit_removal"] <= metrics["params_dense"]


def _unit_fit(digits, seed):
    """A 64-24-10 MLP with a per-unit log-uniform prior, 4 SVI epochs on digits: the model,
    its posterior, unit scores, posterior-mean point and a masked-accuracy function."""
    from bayesstruct.inference import svi
    from bayesstruct.training import evaluate

    torch.manual_seed(seed)
    model = BayesianNet(nets.mlp([64, 24, 10]), priors.LogUniform(level="unit"),
                        num_data=len(digits.train))
    post = svi(model, guides.MeanField(), digits, epochs=4, lr=0.01, batch_size=64,
               progress=False, num_draws=2)
    units = unit_log_alpha(post, model)
    point = {k: torch.as_tensor(v) for k, v in posterior.point_estimate(post).items()}

    def acc(thresholds=None):
        keep = unit_keep(units, float("inf"), thresholds or {})
        masks = weight_masks_from_units(model, keep)
        return evaluate(model, {k: v * torch.as_tensor(masks[k]) if k in masks else v
                                for k, v in point.items()}, digits.val)["acc"]

    return model, post, units, acc


def _bolder_fails(units, layer, chosen, acc, base, tol, others):
    """One grid step bolder than ``chosen[layer]`` breaks the tolerance (or it is already
    the boldest)."""
    from bayesstruct.pruning.criteria import CALIBRATION_GRID

    desc = np.sort(units[f"{layer}.weight"])[::-1]
    removed = int((units[f"{layer}.weight"] >= chosen[layer]).sum())
    bolder = [f for f in CALIBRATION_GRID if removed < round(f * desc.size) < desc.size]
    if bolder:
        n = int(round(min(bolder) * desc.size))
        assert acc({**others, layer: float(desc[n - 1])}) < base - tol


def test_calibrated_thresholds_are_the_boldest_within_tolerance(digits):
    model, post, units, acc = _unit_fit(digits, seed=0)
    tol = 0.02
    chosen = calibrate_unit_thresholds(post, model, units, digits.val, tol)
    base = acc()
    assert acc(chosen) >= base - tol
    _bolder_fails(units, "fc1", chosen, acc, base, tol, {"fc2": float("inf")})
    d = pruning.make_decision(post, model, unit_threshold="auto", val=digits.val, tolerance=tol)
    assert d.layer_thresholds == chosen
    with pytest.raises(ValueError, match="val="):
        pruning.make_decision(post, model, unit_threshold="auto")


def test_calibration_holds_fixed_layers_and_spends_the_tolerance_on_the_rest(digits):
    """``layer_thresholds`` given with ``unit_threshold="auto"`` are not calibrated: the
    other layers are, given them (keeping every input pixel leaves the tolerance to the hidden
    units), and the result is the boldest grid step within the tolerance for that layer."""
    model, post, units, acc = _unit_fit(digits, seed=1)
    tol = 0.02
    kept = {"fc1": float("inf")}
    chosen = calibrate_unit_thresholds(post, model, units, digits.val, tol, fixed=kept)
    assert chosen["fc1"] == float("inf") and set(chosen) == {"fc1", "fc2"}
    assert unit_keep(units, float("inf"), chosen)["fc1.weight"].all()  # every pixel kept
    base = acc()
    assert acc(chosen) >= base - tol
    _bolder_fails(units, "fc2", chosen, acc, base, tol, kept)
    d = pruning.make_decision(post, model, unit_threshold="auto", val=digits.val, tolerance=tol,
                              layer_thresholds=kept)
    assert d.layer_thresholds == chosen
