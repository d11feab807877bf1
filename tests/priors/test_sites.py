"""Sample sites and their dims: named per layer, or per parameter where a layer's parameters
would give one dim name two sizes (torch.nn.RNN, ConvTranspose)."""

from __future__ import annotations

import torch
from torch import nn

from bayesstruct import data, guides, inference, nets, priors
from bayesstruct.models import BayesianNet
from bayesstruct.priors import param_sites


def _sizes(sites) -> dict[str, set[int]]:
    sizes: dict[str, set[int]] = {}
    for s in sites:
        for d, n in zip(s.dims, s.shape, strict=True):
            sizes.setdefault(d, set()).add(n)
    return sizes


def test_zoo_nets_keep_their_per_layer_dims():
    sites = {s.name: s.dims for s in param_sites(nets.build("mlp", (1, 8, 8), 10, [16]))}
    assert sites["fc1.weight"] == ("fc1_out", "fc1_in") and sites["fc1.bias"] == ("fc1_out",)


class RNNClassifier(nn.Module):
    """torch.nn.RNN over the rows of an 8x8 image, a Linear head on the last state."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(8, 12, batch_first=True)
        self.head = nn.Linear(12, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x.reshape(x.shape[0], 8, 8))[0][:, -1])


def test_clashing_layers_get_dims_per_parameter():
    for net in (RNNClassifier(), nn.Sequential(nn.ConvTranspose2d(1, 4, 3), nn.Flatten())):
        sites = param_sites(net)
        assert all(len(v) == 1 for v in _sizes(sites).values()), _sizes(sites)
    dims = {s.name: s.dims for s in param_sites(RNNClassifier())}
    assert dims["rnn.weight_hh_l0"] == ("rnn_weight_hh_l0_out", "rnn_weight_hh_l0_in")
    assert dims["head.weight"] == ("head_out", "head_in")  # the other layers keep theirs


def test_a_torch_rnn_fits_and_its_posterior_is_written():
    """It used to fail after the last epoch, in the posterior's dims (``rnn_in`` {8, 12})."""
    ds = data.load("digits", seed=0)
    torch.manual_seed(0)
    model = BayesianNet(RNNClassifier(), priors.ARD(), num_data=len(ds.train))
    post = inference.svi(model, guides.MeanField(model), ds, epochs=1, num_draws=2,
                         progress=False)
    assert post.variational_loc["rnn.weight_ih_l0"].shape == (12, 8)
    assert post.variational_loc["rnn.weight_hh_l0"].shape == (12, 12)
