"""Network units (``pruning.unit_spaces``): each hidden unit with every weight group reading it,
checked against hand-written reader lists (MLP, flattened CNN, LSTM) and against the
shrinking code (masking exactly one unit's members removes exactly that unit, on every net);
the network-wide decision removes a unit only when all of its readers score it out."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bayesstruct import guides, nets, posterior, priors, pruning
from bayesstruct.data import Split
from bayesstruct.models import BayesianNet
from bayesstruct.pruning.unit_spaces import (
    calibrate_network_units,
    fraction_keep,
    network_units,
    unit_space_keep,
)
from bayesstruct.pruning.units import unit_log_alpha, weight_masks_from_units
from tests.helpers import randomize_guide


def _model(net):
    torch.manual_seed(0)
    return BayesianNet(net, priors.LogUniform(level="unit"), num_data=10)


def _members(units):
    return sorted(tuple(u.members) for u in units)


def test_mlp_units_are_input_features_and_hidden_units():
    model = _model(nets.mlp([4, 3, 2]))
    want = [(("fc1.weight", g),) for g in range(4)] + [(("fc2.weight", j),) for j in range(3)]
    assert _members(network_units(model)) == sorted(want)


def test_lstm_hidden_unit_is_read_by_its_recurrence_and_the_classifier():
    model = _model(nets.build("lstm", (1, 6, 5), 3, [4]))
    units = network_units(model)
    hidden = [(("fc.weight", j), ("lstm.weight_hh_l0", j)) for j in range(4)]
    pixels = [(("lstm.weight_ih_l0", g),) for g in range(5)]
    assert _members(units) == sorted(hidden + pixels)


def test_channel_flattened_into_a_linear_is_read_by_its_columns():
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 2 * 2, 2))
    model = _model(net)
    units = network_units(model)
    channels = [tuple(("3.weight", c * 4 + k) for k in range(4)) for c in range(3)]
    assert _members(units) == sorted(channels + [(("0.weight", 0),)])


@pytest.mark.parametrize("kind,shape,hidden", [
    ("resnet", (1, 8, 8), [4, 6]), ("lstm", (1, 6, 5), [4]), ("conv1d", (1, 8, 5), [4, 3]),
    ("lenet5", (1, 28, 28), None), ("lenet300", (1, 28, 28), None)])
def test_masking_one_units_members_removes_exactly_that_unit(kind, shape, hidden):
    """The shrinking code (which reads the zeros themselves) agrees with the unit list: for
    every unit of a hidden space, zeroing exactly its members takes that unit off the net
    (one output unit of each layer producing it: two for a channel a residual addition
    shares between the stem and a block)."""
    net = nets.build(kind, shape, 3, hidden) if hidden else nets.build(kind, shape, 3)
    model = _model(net)
    units = [u for u in network_units(model) if len(u.label.split("[")) == 2
             and not u.label.startswith(tuple(f"{s.name}[" for s in model.weight_sites))]
    assert units, "no hidden unit found"
    dense = pruning.hidden_units(net, pruning.prune(net, {}))["dense"]
    rng = np.random.default_rng(0)
    for u in rng.permutation(np.array(units, dtype=object))[:6]:
        keep = {s.name: np.ones(s.shape[s.group_dim], dtype=bool)
                for s in model.weight_sites if s.group_dim is not None}
        for site, g in u.members:
            keep[site][g] = False
        masks = {k: torch.as_tensor(v) for k, v in weight_masks_from_units(model, keep).items()}
        small = pruning.prune(net, masks)
        producers = u.label.split("[")[0].split("+")  # a residual space: one channel in each
        assert pruning.hidden_units(net, small)["pruned"] == dense - len(producers), u.label


def _lstm_posterior():
    """An LSTM posterior whose hidden unit 0 has high log alpha_g in both readers and unit 1
    in the classifier only."""
    model = _model(nets.build("lstm", (1, 6, 5), 3, [4]))
    guide = guides.MeanField(model)
    randomize_guide(guide, seed=2)
    with torch.no_grad():
        for k in ("fc__weight__z", "lstm__weight_hh_l0__z"):
            guide.latent_raw_scale[k].fill_(-20.0)  # sigma_z ~ 0: log alpha_g ~ -inf
        guide.latent_raw_scale["fc__weight__z"][:2] = 5.0
        guide.latent_raw_scale["lstm__weight_hh_l0__z"][0] = 5.0
        guide.latent_raw_scale["lstm__weight_ih_l0__z"].fill_(-20.0)
    return model, posterior.from_guide(model, guide, 4)


def test_a_unit_goes_only_when_every_reader_scores_it_out():
    model, post = _lstm_posterior()
    scores = unit_log_alpha(post, model)
    assert scores["fc.weight"][1] > 0 > scores["lstm.weight_hh_l0"][1]
    d = pruning.make_decision(post, model, "unit", unit_threshold=0.0,
                              unit_calibration="network")
    np.testing.assert_array_equal(d.unit_masks["fc.weight"], [False, True, True, True])
    np.testing.assert_array_equal(d.unit_masks["lstm.weight_hh_l0"], [False, True, True, True])
    assert d.unit_masks["lstm.weight_ih_l0"].all()
    # per layer, unit 1's classifier column alone would go too (and remove nothing)
    per_layer = pruning.make_decision(post, model, "unit", unit_threshold=0.0)
    assert not per_layer.unit_masks["fc.weight"][1]


def test_network_calibration_takes_the_boldest_fraction_within_tolerance():
    """Against a brute-force scan: every fraction of the grid evaluated by hand."""
    from bayesstruct.training import evaluate

    model, post = _lstm_posterior()
    g = torch.Generator().manual_seed(3)
    val = Split(torch.randn(64, 1, 6, 5, generator=g), torch.randint(0, 3, (64,), generator=g))
    scores = unit_log_alpha(post, model)
    units = network_units(model)
    grid = (0.9, 0.5, 0.3, 0.1)
    thr, keep = calibrate_network_units(post, model, scores, val, 0.05, grid=grid,
                                        refine=False)
    point = pruning.mean_values(post, model)
    base = evaluate(model, point, val)["acc"]
    mins = np.sort([min(scores[s][i] for s, i in u.members) for u in units])[::-1]
    want = float("inf")
    for f in grid:
        n = int(round(f * len(units)))
        k = unit_space_keep(units, scores, mins[n - 1])
        m = weight_masks_from_units(model, k)
        if evaluate(model, pruning.mask_params(point, m), val)["acc"] >= base - 0.05:
            want = float(mins[n - 1])
            break
    assert thr == want
    for site, v in unit_space_keep(units, scores, thr).items():
        np.testing.assert_array_equal(keep[site], v)


def test_network_calibration_refines_between_grid_fractions():
    """With ``refine``: the removal is within the tolerance, every bolder count up to the next
    failing fraction of the grid is not, and it is bolder than the grid's own choice here (each
    count evaluated by hand; the labels are the unpruned net's own predictions, so removing
    units costs accuracy)."""
    from bayesstruct.training import evaluate

    model, post = _lstm_posterior()
    x = 3 * torch.randn(200, 1, 6, 5, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        val = Split(x, pruning.mean_network(post, model).eval()(x).argmax(-1))
    scores = unit_log_alpha(post, model)
    units = network_units(model)
    point = pruning.mean_values(post, model)
    base = evaluate(model, point, val)["acc"]
    mins = np.sort([min(scores[s][i] for s, i in u.members) for u in units])[::-1]
    tol = 0.012

    def ok(n):
        m = weight_masks_from_units(model, unit_space_keep(units, scores, mins[n - 1]))
        return evaluate(model, pruning.mask_params(point, m), val)["acc"] >= base - tol

    grid = (0.9, 0.1)
    thr, keep = calibrate_network_units(post, model, scores, val, tol, grid=grid)
    grid_thr, _ = calibrate_network_units(post, model, scores, val, tol, grid=grid,
                                          refine=False)
    removed = int((mins >= thr).sum())
    assert ok(removed) and removed > int((mins >= grid_thr).sum())
    next_failing = min(n for n in (round(f * len(units)) for f in grid) if n > removed)
    assert not ok(next_failing)
    assert all(not ok(n) for n in range(removed + 1, next_failing))
    for site, v in unit_space_keep(units, scores, thr).items():
        np.testing.assert_array_equal(keep[site], v)


def test_layer_thresholds_with_one_network_threshold_are_refused():
    model, post = _lstm_posterior()
    with pytest.raises(ValueError, match="layer_thresholds are per layer"):
        pruning.make_decision(post, model, "unit", unit_threshold=0.0,
                              layer_thresholds={"fc": 1.0}, unit_calibration="network")
    with pytest.raises(ValueError, match="unit_calibration='x'; allowed: per_layer, network"):
        pruning.make_decision(post, model, "unit", unit_threshold=0.0, unit_calibration="x")


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.75])
def test_fraction_removes_that_share_of_every_layer_by_score(fraction):
    """A ResNet (widths 4, 8; a residual space shared by the stem and the first block, one by
    the second block and its shortcut, and each block's inner space), random scores: every
    space loses floor(fraction n) units, its highest-scoring ones, and the shrunk network
    (which reads the zeros, not the unit list) has exactly those widths; the input is kept."""
    net = nets.build("resnet", (1, 8, 8), 3, [4, 8])
    model = _model(net)
    rng = np.random.default_rng(1)
    scores = {s.name: rng.normal(size=s.shape[s.group_dim])
              for s in model.weight_sites if s.group_dim is not None}
    units = network_units(model)
    keep = fraction_keep(units, scores, fraction)
    spaces = {}
    for u in units:
        spaces.setdefault(u.space, []).append(u)
    assert len(spaces[""]) == 1  # the image's one channel, a unit of its own: kept
    assert all(keep[site][g] for site, g in spaces[""][0].members)
    widths = {}
    for name, members in spaces.items():
        if not name:
            continue
        score = [min(scores[site][g] for site, g in u.members) for u in members]
        gone = [not all(keep[site][g] for site, g in u.members) for u in members]
        assert sum(gone) == int(fraction * len(members)), name  # floor
        if 0 < sum(gone) < len(members):  # the removed ones outscore every kept one
            assert min(s for s, g in zip(score, gone, strict=True) if g) > max(
                s for s, g in zip(score, gone, strict=True) if not g), name
        widths[name] = len(members) - sum(gone)
    assert sorted(len(m) for n, m in spaces.items() if n) == [4, 4, 8, 8]
    masks = {k: torch.as_tensor(v) for k, v in weight_masks_from_units(model, keep).items()}
    small = pruning.prune(net, masks)
    counts = pruning.hidden_units(net, small)
    # the stem and stage 0's second conv share a space, as do stage 1's second conv and its
    # shortcut: 6 hidden layers, 4 + 4 + 4 + 8 + 8 + 8 channels
    want = sum(w * len(n.split("#")[0].split("+")) for n, w in widths.items())
    assert counts["dense"] == 36 and counts["pruned"] == want
    assert counts["pruned"] == 36 - sum(
        int(fraction * len(m)) * len(n.split("#")[0].split("+")) for n, m in spaces.items() if n)


def test_a_fraction_decision_records_its_fraction_and_refuses_bad_ones():
    model = _model(nets.build("resnet", (1, 8, 8), 3, [4, 8]))
    guide = guides.MeanField(model)
    randomize_guide(guide, seed=3)
    post = posterior.from_guide(model, guide, 4)
    d = pruning.make_decision(post, model, "unit", unit_calibration="fraction",
                              unit_fraction=0.5)
    assert d.threshold == 0.5
    assert pruning.hidden_units(model.net, pruning.prune(model.net, {
        k: torch.as_tensor(v) for k, v in d.masks.items()}))["pruned"] == 18
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="unit_fraction"):
            pruning.make_decision(post, model, "unit", unit_calibration="fraction",
                                  unit_fraction=bad)
    with pytest.raises(ValueError, match="layer_thresholds"):
        pruning.make_decision(post, model, "unit", unit_calibration="fraction",
                              layer_thresholds={"stem": 0.0})
    with pytest.raises(ValueError, match="fraction"):
        fraction_keep(network_units(model), unit_log_alpha(post, model), 1.0)


def _mlp_posterior():
    model = _model(nets.mlp([10, 6, 3]))
    guide = guides.MeanField(model)
    randomize_guide(guide, seed=5)
    return model, posterior.from_guide(model, guide, 4)


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5, 0.8])
def test_inputs_keep_removes_that_share_of_the_input_features_by_score(fraction):
    """An MLP 10-6-3, random scores: the first layer loses floor(fraction 10) of its input
    columns, the highest-scoring ones (ranked here by hand), every hidden unit is kept, and the
    shrunk network (which reads the zeros) takes that many fewer inputs."""
    from bayesstruct.pruning.unit_spaces import inputs_keep

    model = _model(nets.mlp([10, 6, 3]))
    rng = np.random.default_rng(2)
    scores = {"fc1.weight": rng.normal(size=10), "fc2.weight": rng.normal(size=6)}
    keep = inputs_keep(network_units(model), scores, fraction)
    n_gone = int(fraction * 10)
    want = np.ones(10, dtype=bool)
    want[np.argsort(scores["fc1.weight"])[10 - n_gone:]] = False  # the n_gone largest
    np.testing.assert_array_equal(keep["fc1.weight"], want)
    assert keep["fc2.weight"].all()
    masks = {k: torch.as_tensor(v) for k, v in weight_masks_from_units(model, keep).items()}
    small = pruning.prune(model.net, masks)
    assert next(m for m in small.modules() if isinstance(m, nn.Linear)).in_features == 10 - n_gone


@pytest.mark.parametrize("calibration", ["per_layer", "network", "fraction"])
def test_input_fraction_holds_the_inputs_while_the_rest_is_decided(calibration):
    """``input_fraction=0.5``: half of the pixels go, the highest-``log alpha_g`` ones, and the
    hidden units are decided as the calibration decides them with every pixel kept (per
    layer: the first layer's threshold held at +inf; network: the hidden units alone ranked;
    fraction: the target width of the hidden layers)."""
    model, post = _mlp_posterior()
    x = 3 * torch.randn(200, 10, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        val = Split(x, pruning.mean_network(post, model).eval()(x).argmax(-1))
    scores = unit_log_alpha(post, model)
    d = pruning.make_decision(post, model, "unit", unit_threshold="auto", val=val,
                              tolerance=0.05, unit_calibration=calibration,
                              unit_fraction=0.5, input_fraction=0.5)
    gone = np.argsort(scores["fc1.weight"])[5:]
    want_pixels = np.ones(10, dtype=bool)
    want_pixels[gone] = False
    np.testing.assert_array_equal(d.unit_masks["fc1.weight"], want_pixels)
    units = network_units(model)
    if calibration == "per_layer":
        held = pruning.make_decision(post, model, "unit", unit_threshold="auto", val=val,
                                     tolerance=0.05, layer_thresholds={"fc1": float("inf")})
        hidden = held.unit_masks["fc2.weight"]
        assert d.layer_thresholds["fc1"] == float("inf")
    elif calibration == "network":
        _, keep = calibrate_network_units(post, model, scores, val, 0.05,
                                          units=[u for u in units if u.space])
        hidden = keep["fc2.weight"]
    else:
        hidden = np.ones(6, dtype=bool)
        hidden[np.argsort(scores["fc2.weight"])[3:]] = False  # 3 of 6, the largest
    np.testing.assert_array_equal(d.unit_masks["fc2.weight"], hidden)
    np.testing.assert_array_equal(d.masks["fc1.weight"],
                                  np.outer(d.unit_masks["fc2.weight"], want_pixels))


def test_input_fraction_refusals():
    model, post = _mlp_posterior()
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="input_fraction"):
            pruning.make_decision(post, model, "unit", unit_threshold=0.0, input_fraction=bad)
    with pytest.raises(ValueError, match="input_fraction=0.5 removes input units, and "
                                         "criterion 'log_alpha'"):
        pruning.make_decision(post, model, "log_alpha", input_fraction=0.5)
    with pytest.raises(ValueError, match=r"layer_thresholds\['fc1'\] and input_fraction"):
        pruning.make_decision(post, model, "unit", unit_threshold=0.0,
                              layer_thresholds={"fc1": 0.0}, input_fraction=0.5)


def test_an_input_fraction_that_removes_nothing_says_so():
    """A ResNet on one-channel images: 0.8 of one input channel is no channel."""
    model = _model(nets.build("resnet", (1, 8, 8), 3, [4, 8]))
    guide = guides.MeanField(model)
    randomize_guide(guide, seed=3)
    post = posterior.from_guide(model, guide, 4)
    with pytest.warns(UserWarning, match="input_fraction=0.8 removes none of the network's 1 "
                                         "input features"):
        d = pruning.make_decision(post, model, "unit", unit_calibration="fraction",
                                  unit_fraction=0.5, input_fraction=0.8)
    plain = pruning.make_decision(post, model, "unit", unit_calibration="fraction",
                                  unit_fraction=0.5)
    for k, v in plain.masks.items():
        np.testing.assert_array_equal(d.masks[k], v)
