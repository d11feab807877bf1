"""A researcher's own ``nn.Module`` on digits, one per kind of layer a new user tried: each
either runs end to end under a per-weight prior (ARD) and a unit-level one (log-uniform,
Louizos et al. 2017's BC-GNJ) -- fit, unit or weight scores, decide, posterior-mean network,
prune (the pruned net computes the masked one), export to TorchScript and reload -- or is
refused by ``BayesianNet(...)`` before any training, with the module path and the reason."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bayesstruct import data, guides, inference, priors, pruning
from bayesstruct.errors import UnsupportedLayerError
from bayesstruct.export import write_network
from bayesstruct.models import BayesianNet
from bayesstruct.models.bayesnet import eval_mode


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", seed=0)


class Rows(nn.Module):
    """Reads the 8x8 image as a sequence of 8 rows (batch, time, 8)."""

    def __init__(self, rnn: nn.Module, hidden: int) -> None:
        super().__init__()
        self.rnn, self.head = rnn, nn.Linear(hidden, 10)

    def forward(self, x):
        out = self.rnn(x.reshape(x.shape[0], 8, 8))[0]
        return self.head(out[:, -1])


class Tokens(nn.Module):
    """Pixel intensities bucketed into 6 tokens, embedded, flattened, classified."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("edges", torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))
        self.embed, self.head = nn.Embedding(6, 3), nn.Linear(64 * 3, 10)

    def forward(self, x):
        tokens = torch.bucketize(x.reshape(x.shape[0], 64), self.edges)
        return self.head(self.embed(tokens).flatten(1))


class Attend(nn.Module):
    """Rows as 8 tokens of width 8, self-attention, LayerNorm, a temperature, a Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.norm = nn.LayerNorm(8)
        self.temperature = nn.Parameter(torch.ones(()))
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        t = x.reshape(x.shape[0], 8, 8)
        a = self.norm(t + self.attn(t, t, t, need_weights=False)[0])
        return self.head(a.flatten(1)) / self.temperature


class Custom(nn.Module):
    """A custom (non-Sequential) CNN with a nested Sequential, GELU and SiLU."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.GELU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.SiLU(), nn.Linear(16, 10))

    def forward(self, x):
        return self.head(self.features(x))


def _conv(conv: nn.Module, norm: nn.Module | None = None, out: int = 4 * 36) -> nn.Module:
    return nn.Sequential(conv, *([norm] if norm is not None else []), nn.ReLU(), nn.Flatten(),
                         nn.Linear(out, 10))


#: name -> (net factory, what a unit-level prior does: None (works) or a refusal's text)
ROWS = {
    "custom_cnn": (Custom, None),
    "conv1d": (lambda: nn.Sequential(nn.Flatten(), nn.Unflatten(1, (1, 64)),
                                     nn.Conv1d(1, 4, 5, stride=4), nn.ReLU(), nn.Flatten(),
                                     nn.Linear(4 * 15, 10)), None),
    "embedding": (Tokens, None),
    "conv2d_reflect": (lambda: _conv(nn.Conv2d(1, 4, 3, padding_mode="reflect")), None),
    "conv2d_groups": (lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(),
                                            nn.Conv2d(4, 4, 3, groups=2), nn.ReLU(),
                                            nn.Flatten(), nn.Linear(4 * 16, 10)),
                      r"2\.weight \(Conv2d\): a unit-level prior needs unit groups; "
                      r"Conv2d\(groups=2\)"),
    "rnn": (lambda: Rows(nn.RNN(8, 12, batch_first=True), 12), None),
    "lstm": (lambda: Rows(nn.LSTM(8, 6, num_layers=2, batch_first=True), 6), None),
    "gru": (lambda: Rows(nn.GRU(8, 6, batch_first=True, bidirectional=True), 12), None),
    "conv_transpose2d": (lambda: _conv(nn.ConvTranspose2d(1, 2, 3, stride=2), out=2 * 17 * 17),
                         None),
    "batchnorm2d": (lambda: _conv(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)), None),
    "batchnorm1d_dropout": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 16),
                                                  nn.BatchNorm1d(16), nn.ReLU(),
                                                  nn.Dropout(0.3), nn.Linear(16, 10)), None),
    "groupnorm_prelu": (lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.GroupNorm(2, 4),
                                              nn.PReLU(), nn.Flatten(), nn.Linear(4 * 36, 10)),
                        None),
    "attention_layernorm_temperature": (Attend, None),
}

PRIORS = {"ard": lambda: priors.ARD(), "log_uniform_unit": lambda: priors.LogUniform(level="unit")}


def _fit(model, ds):
    torch.manual_seed(0)
    return inference.svi(model, guides.MeanField(model), ds, epochs=1, num_draws=4,
                         progress=False)


@pytest.mark.parametrize("prior", list(PRIORS))
@pytest.mark.parametrize("row", list(ROWS))
def test_every_row_works_end_to_end_or_is_refused_up_front(row, prior, digits, tmp_path):
    make, unit_refusal = ROWS[row]
    torch.manual_seed(0)
    net = make()
    if prior == "log_uniform_unit" and unit_refusal is not None:
        with pytest.raises(UnsupportedLayerError, match=unit_refusal):
            BayesianNet(net, PRIORS[prior](), num_data=len(digits.train))
        return
    model = BayesianNet(net, PRIORS[prior](), num_data=len(digits.train))
    post = _fit(model, digits)
    assert np.isfinite(post.optimization["loss"].values).all()
    decision = pruning.make_decision(post, model, "auto", val=digits.val)
    weights = {s.name for s in model.weight_sites}
    assert set(decision.masks) == weights  # nothing but weights is ever pruned
    for s in model.point_sites:  # point estimates: a point mass, written as such
        assert post.variational_loc[s.name].attrs["family"] == "Delta"
    mean_net = pruning.mean_network(post, model)
    assert not mean_net.training
    small = pruning.prune(mean_net, decision.masks)
    masked = pruning.apply_masks(mean_net, decision.masks)
    x = digits.test.x[:64]
    with torch.no_grad(), eval_mode(small), eval_mode(masked):
        torch.testing.assert_close(small(x), masked(x), atol=1e-4, rtol=1e-4)
        first, again = mean_net(x), mean_net(x)
    torch.testing.assert_close(first, again)  # eval mode: dropout off, running stats used
    manifest = write_network(tmp_path, mean_net, small, decision.masks, x, build={},
                             outputs="class logits")
    assert manifest["torchscript"]["max_abs_difference"] < 1e-4
    loaded = torch.jit.load(tmp_path / "pruned.torchscript.pt")
    with torch.no_grad(), eval_mode(small):
        torch.testing.assert_close(loaded(x), small(x))


def test_normalisation_and_one_dimensional_parameters_are_point_estimates():
    model = BayesianNet(Attend(), priors.ARD())
    roles = {s.name: s.role for s in model.sites}
    assert roles["attn.in_proj_weight"] == "weight" and roles["attn.in_proj_bias"] == "bias"
    assert roles["attn.out_proj.weight"] == "weight"
    assert roles["norm.weight"] == roles["norm.bias"] == roles["temperature"] == "point"


def test_include_and_exclude_choose_what_is_bayesian():
    net = _conv(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    roles = {s.name: s.role for s in BayesianNet(net, priors.ARD(), include=["BatchNorm2d"],
                                                 exclude=["0.*", nn.Linear]).sites}
    assert roles == {"0.weight": "point", "0.bias": "point", "1.weight": "weight",
                     "1.bias": "bias", "4.weight": "point", "4.bias": "point"}


def test_a_point_estimate_trains_and_has_no_kl():
    """An excluded layer is fitted by the likelihood alone: a point mass under a flat density
    adds nothing to the KL, so the closed form equals the KL of the Bayesian sites."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    model = BayesianNet(net, priors.Gaussian(), exclude=["*.bias"])
    guide = guides.MeanField(model)
    kl = guide.kl()
    loc, lv = guide.locs()["1.weight"], guide.log_variances()["1.weight"]
    by_hand = 0.5 * (loc.pow(2) + lv.exp() - lv - 1).sum()  # KL(N(m, s^2) || N(0, 1))
    torch.testing.assert_close(kl, by_hand)
    assert "1.bias" not in guide.log_variances()


def test_samplers_refuse_point_estimates(digits):
    model = BayesianNet(_conv(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)), priors.Gaussian(),
                        num_data=len(digits.train))
    for run in (lambda: inference.sgld(model, digits, num_samples=2, burn_in=2, progress=False),
                lambda: inference.mcmc(model, digits.train, num_samples=2, num_warmup=2,
                                       progress=False)):
        with pytest.raises(UnsupportedLayerError, match=r"1\.weight, 1\.bias are point est"):
            run()


def test_unit_level_priors_refuse_weights_without_units_naming_them():
    class Raw(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mix = nn.Parameter(torch.randn(64, 10))

        def forward(self, x):
            return x.flatten(1) @ self.mix

    with pytest.raises(UnsupportedLayerError, match=r"mix \(Raw\): a unit-level prior needs "
                                                    r"unit groups; bayesstruct knows no units"):
        BayesianNet(Raw(), priors.Horseshoe())
    BayesianNet(Raw(), priors.ARD())  # a per-weight prior needs none
    BayesianNet(Raw(), priors.Horseshoe(), exclude=["mix"])


def test_embedding_with_max_norm_is_refused_unless_excluded():
    net = nn.Sequential(nn.Embedding(5, 3, max_norm=1.0), nn.Flatten(), nn.Linear(6, 2))
    with pytest.raises(UnsupportedLayerError, match=r"0 \(Embedding\): .*max_norm"):
        BayesianNet(net, priors.ARD())
    BayesianNet(net, priors.ARD(), exclude=["0.*"])
