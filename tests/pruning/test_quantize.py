"""The compressed networks: Deep Compression's trained quantisation and the rounded network
(Han, Mao & Dally 2016; Louizos, Ullrich & Welling 2017), checked against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bayesstruct import data, nets, priors, pruning
from bayesstruct.config import DEFAULT_ENTRY, ConfigError, resolve
from bayesstruct.models import BayesianNet
from bayesstruct.pruning.coding import decode_layer, layer_code_size
from bayesstruct.pruning.quantize import (
    deep_compression,
    finetune_centroids,
    kmeans_layer,
    round_significand,
    round_to_bits,
    shared_weight,
)
from bayesstruct.training.plain import train_plain


def _nearest(values, centroids):
    """Brute force: index of the nearest centroid (first of equals), distance matrix."""
    d = np.abs(np.asarray(values, dtype=np.float64)[:, None]
               - np.asarray(centroids, dtype=np.float64)[None, :])
    return d.argmin(axis=1)


def test_kmeans_linear_initialisation_and_assignment_by_brute_force():
    rng = np.random.default_rng(1)
    w = torch.as_tensor(rng.normal(size=(6, 7)) ** 3, dtype=torch.float32)
    mask = rng.random((6, 7)) > 0.3
    kept = w.numpy()[mask].astype(np.float64)
    # iters=0: the linear initialisation itself, 2^bits centroids over [min, max]
    codebook, idx = kmeans_layer(w, mask, bits=2, iters=0)
    np.testing.assert_allclose(codebook.numpy(),
                               [kept.min() + j * (kept.max() - kept.min()) / 3 for j in range(4)],
                               rtol=1e-6)
    assert (idx.numpy()[~mask] == -1).all()
    np.testing.assert_array_equal(idx.numpy()[mask], _nearest(kept, codebook.numpy()))
    # converged Lloyd: every weight at its nearest centroid, every centroid its cluster's mean
    codebook, idx = kmeans_layer(w, mask, bits=2, iters=200)
    assert codebook.numel() == 4
    a = idx.numpy()[mask]
    np.testing.assert_array_equal(a, _nearest(kept, codebook.numpy()))
    for j in range(4):
        if (a == j).any():
            assert codebook[j].item() == pytest.approx(kept[a == j].mean(), rel=1e-5)


def test_centroid_gradient_is_the_sum_of_the_assigned_weights_gradients():
    torch.manual_seed(0)
    x, y = torch.randn(9, 4, dtype=torch.float64), torch.tensor([0, 1, 2] * 3)
    codebook = torch.tensor([-0.7, 0.1, 0.9], dtype=torch.float64, requires_grad=True)
    indices = torch.tensor([[0, 2, -1, 1], [1, 1, 0, -1], [2, -1, 2, 0]])

    def loss_of(w):
        return F.cross_entropy(torch.tanh(x @ w.T) * 3.0, y)

    loss_of(shared_weight(codebook, indices)).backward()
    # the dense weight at the same values, differentiated on its own
    dense = torch.tensor([[codebook[i].item() if i >= 0 else 0.0 for i in row]
                          for row in indices.tolist()], dtype=torch.float64, requires_grad=True)
    loss_of(dense).backward()
    expected = [sum(dense.grad[r, c].item() for r in range(3) for c in range(4)
                    if indices[r, c] == j) for j in range(3)]
    np.testing.assert_allclose(codebook.grad.numpy(), expected, rtol=1e-10)
    # and by central finite differences of the loss in each centroid
    eps = 1e-6
    for j in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[j] = eps
        with torch.no_grad():
            fd = (loss_of(shared_weight(codebook + e, indices))
                  - loss_of(shared_weight(codebook - e, indices))) / (2 * eps)
        assert codebook.grad[j].item() == pytest.approx(fd.item(), rel=1e-6, abs=1e-9)
    # pruned entries are zero
    assert (shared_weight(codebook, indices)[indices < 0] == 0).all()


@pytest.fixture(scope="module")
def digits_net():
    ds = data.load("digits", seed=0)
    torch.manual_seed(0)
    net = nets.mlp([64, 32, 10])
    train_plain(net, ds, epochs=15, lr=1e-2, batch_size=64, seed=0)
    rng = np.random.default_rng(0)
    masks = {n: rng.random(p.shape) > 0.5 for n, p in net.named_parameters()
             if n.endswith("weight")}
    return ds, net, masks


def _train_loss(net, split):
    with torch.no_grad():
        return float(F.cross_entropy(net.eval()(split.x), split.y))


def test_finetuning_the_centroids_lowers_the_training_loss(digits_net):
    ds, net, masks = digits_net
    bits = dict.fromkeys(masks, 2)  # coarse: 4 shared values per layer
    before = deep_compression(net, masks, bits, ds.train, epochs=0)
    after = deep_compression(net, masks, bits, ds.train, epochs=5, lr=3e-3)
    assert len(after.history) == 5 and not before.history
    assert _train_loss(after.net, ds.train) < _train_loss(before.net, ds.train) - 1e-3
    params = dict(after.net.named_parameters())
    for name, mask in masks.items():
        w = params[name].detach().numpy()
        # assignments held: the k-means indices, the fine-tuned centroids; masks held
        np.testing.assert_array_equal(after.indices[name].numpy(), before.indices[name].numpy())
        np.testing.assert_array_equal(w[~mask], 0.0)
        np.testing.assert_array_equal(
            w[mask], after.codebooks[name].numpy()[after.indices[name].numpy()[mask]])
        assert not np.allclose(after.codebooks[name].numpy(), before.codebooks[name].numpy())
    # biases were not trained, the original net is untouched
    torch.testing.assert_close(after.net.fc1.bias, net.fc1.bias)
    assert (net.fc1.weight != 0).float().mean() > 0.9


def test_finetune_refuses_bad_settings(digits_net):
    ds, net, masks = digits_net
    cb, idx = kmeans_layer(net.fc1.weight, masks["fc1.weight"], 2)
    with pytest.raises(ValueError, match="epochs >= 0"):
        finetune_centroids(net, {"fc1.weight": cb}, {"fc1.weight": idx}, ds.train, epochs=-1)
    with pytest.raises(ValueError, match="lr > 0"):
        finetune_centroids(net, {"fc1.weight": cb}, {"fc1.weight": idx}, ds.train, epochs=1,
                           lr=0.0)


@pytest.mark.parametrize("bits", [1, 3])
def test_quantised_net_has_at_most_2_to_the_bits_values_and_pruned_zeros(digits_net, bits):
    ds, net, masks = digits_net
    q = deep_compression(net, masks, dict.fromkeys(masks, bits), ds.train, epochs=1)
    params = dict(q.net.named_parameters())
    for name, mask in masks.items():
        w = params[name].detach().numpy()
        assert np.unique(w[mask]).size <= 2**bits
        assert np.unique(w[w != 0]).size <= 2**bits
        assert (w[~mask] == 0).all()


def _grid_round(w, t):
    """Independent: nearest multiple of 2^(e - t), e = floor(log2 |w|) (numpy, half to even)."""
    w = np.asarray(w, dtype=np.float64)
    out = np.zeros_like(w)
    nz = w != 0
    e = np.floor(np.log2(np.abs(w[nz])))
    step = 2.0 ** (e - t)
    out[nz] = np.round(w[nz] / step) * step
    return out


@pytest.mark.parametrize("t", [0, 1, 4, 10, 23])
def test_round_significand_is_the_nearest_point_of_the_t_bit_grid(t):
    rng = np.random.default_rng(t)
    w = np.concatenate([rng.normal(size=500) * 10.0 ** rng.integers(-4, 2, 500), [0.0, 1.0,
                                                                                     -0.75]])
    w32 = torch.as_tensor(w, dtype=torch.float32)
    q = round_significand(w32, t).double().numpy()
    np.testing.assert_array_equal(q, _grid_round(w32.double().numpy(), t))
    nz = q != 0
    e = np.floor(np.log2(np.abs(q[nz])))
    m = np.abs(q[nz]) / 2.0**e  # in [1, 2): t bits after the leading one
    np.testing.assert_array_equal(m * 2.0**t, np.round(m * 2.0**t))
    if t == 23:  # float32 keeps 23 fraction bits: nothing changes
        np.testing.assert_array_equal(q, w32.double().numpy())


def test_rounded_net_is_on_each_layers_grid(digits_net):
    _, net, masks = digits_net
    bits = {"fc1.weight": 3, "fc2.weight": 7}
    rounded = round_to_bits(net, masks, bits)
    params, orig = dict(rounded.named_parameters()), dict(net.named_parameters())
    for name, mask in masks.items():
        w = params[name].detach().double().numpy()
        expected = _grid_round(orig[name].detach().double().numpy(), bits[name]) * mask
        np.testing.assert_array_equal(w, expected)
    torch.testing.assert_close(rounded.fc2.bias, net.fc2.bias)


def _acc(net, split):
    with torch.no_grad():
        return float((net.eval()(split.x).argmax(1) == split.y).double().mean())


def test_summary_reports_the_accuracy_of_the_networks_it_returns(digits_net):
    ds, net, masks = digits_net
    model = BayesianNet(nets.mlp([64, 32, 10]), priors.Gaussian())
    var = {"fc1.weight": 1e-2, "fc2.weight": 1e-4}  # 5 and 12 significant bits
    moments = {n: (p.detach().numpy(), np.full(p.shape, var[n]))
               for n, p in net.named_parameters() if n in masks}
    summary, made = pruning.compression_summary(
        model, masks, moments, bits_fc=3, net=net, train=ds.train, test=ds.test,
        finetune_epochs=2, finetune_lr=3e-3, return_networks=True)
    assert summary["acc_quantised"] == pytest.approx(_acc(made.deep_compression.net, ds.test),
                                                     abs=1e-12)
    assert summary["acc_bit_precision"] == pytest.approx(_acc(made.bit_precision, ds.test),
                                                         abs=1e-12)
    assert summary["acc_pruned"] == pytest.approx(
        _acc(pruning.apply_masks(net, masks), ds.test), abs=1e-12)
    nll = F.cross_entropy(made.deep_compression.net(ds.test.x), ds.test.y).item()
    assert summary["nll_quantised"] == pytest.approx(nll, rel=1e-5)
    assert len(summary["finetune_loss"]) == 2 and summary["finetune_epochs"] == 2
    # the bytes are those of the evaluated network: its streams decode to its weights
    q_params = dict(made.deep_compression.net.named_parameters())
    r_params = dict(made.bit_precision.named_parameters())
    for layer, (name, mask) in zip(summary["layers"], masks.items(), strict=True):
        w = q_params[name].detach().numpy()
        code = layer_code_size(w, mask, bits=3, index_bits=3)
        assert layer["huffman_bytes"] == code["total_bytes"]
        np.testing.assert_array_equal(
            decode_layer(code["gap_stream"], code["index_stream"], code["codebook"], w.shape), w)
        assert layer["significant_bits"] == {"fc1.weight": 5, "fc2.weight": 12}[name]
        np.testing.assert_array_equal(
            r_params[name].detach().double().numpy(),
            _grid_round(dict(net.named_parameters())[name].detach().double().numpy(),
                        layer["significant_bits"]) * mask)
    rows, header = pruning.summary_rows(summary)
    assert f"acc {100 * summary['acc_quantised']:.2f}%" in rows[-1][-1]
    # without a network: no accuracies, and the old report unchanged
    plain = pruning.compression_summary(model, masks, moments, bits_fc=3)
    assert plain["acc_quantised"] is None and plain["acc_bit_precision"] is None
    assert plain["bit_precision_bytes"] == summary["bit_precision_bytes"]


def test_finetune_config_fields_are_validated():
    cfg = resolve(DEFAULT_ENTRY, None, ["pruning.finetune_epochs=0", "pruning.finetune_lr=0.01"])
    assert cfg.pruning.finetune_epochs == 0 and cfg.pruning.finetune_lr == 0.01
    assert resolve().pruning.finetune_epochs == 2
    for override, text in (("pruning.finetune_epochs=-1", "greater than or equal to 0"),
                           ("pruning.finetune_lr=0", "greater than 0")):
        with pytest.raises(ConfigError) as e:
            resolve(DEFAULT_ENTRY, None, [override])
        assert f"{override.split('=')[0]}:" in str(e.value) and text in str(e.value)
