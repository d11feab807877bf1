"""``BayesianNet``: a plain network + a prior + a likelihood, as a Pyro model."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import pyro
import torch
from pyro import poutine
from torch import Tensor, nn
from torch.func import functional_call

from ..errors import UnsupportedLayerError
from ..layers import STATELESS, family_of
from ..priors.base import ParamSite, Prior, Selector, param_sites
from . import likelihoods

__all__ = ["BayesianNet", "eval_mode", "is_functional", "refusals", "sequential_forward"]


class BayesianNet(nn.Module):
    """The generative model (prior, structure, likelihood) for a plain ``nn.Module``.

        w, latents ~ p(w, latents | h)           (the prior's sample sites)
        y_i | x_i, w ~ likelihood(f(x_i; w))     i in a minibatch of B out of N

    ``forward(x, y)`` *is* the Pyro model: one sample site per parameter tensor, named as in
    ``net.named_parameters()`` (``fc1.weight``), the prior's hyper-latents, and ``obs`` inside
    ``pyro.plate("data", N)`` so a minibatch's log-likelihood is scaled by ``N / B``. Any Pyro
    inference works on it (``SVI`` with any guide, ``NUTS``). ``kl_weight`` (beta) scales
    every prior site; guides scale their sites by the same factor.

    The net's own ``nn.Parameter`` values are not used by the model (they are replaced through
    :func:`torch.func.functional_call`); guides use them as initial means.

    Which parameters carry the prior: weights of every layer family (Linear, convolutions,
    embeddings, recurrent layers, attention; :mod:`bayesstruct.layers`) and any other tensor
    of two or more dimensions; biases get ``N(0, bias_scale^2)``; normalisation affine
    parameters and other 1-D or scalar tensors are point estimates (a flat density in the
    model, a point mass in every guide), never pruned. ``exclude`` makes what it matches a
    point estimate, ``include`` puts the prior on what it matches: parameter-name or
    module-path patterns (``"fc1.*"``, ``"*.bias"``), module type names (``"LayerNorm"``) or
    types (:func:`~bayesstruct.priors.param_sites`).

    Everything is checked here, before any training (:func:`refusals`): a layer a family
    refuses, or a weight without unit groups under a unit-level prior, raises
    :class:`~bayesstruct.errors.UnsupportedLayerError` naming the module path, its type and
    what would make it work.
    """

    def __init__(self, net: nn.Module, prior: Prior, likelihood: str | likelihoods.Likelihood =
                 "categorical", num_data: int | None = None, *,
                 include: Sequence[Selector] = (), exclude: Sequence[Selector] = ()) -> None:
        super().__init__()
        self.net = net
        self.prior = prior
        self.sites: list[ParamSite] = param_sites(net, include, exclude)
        problems = refusals(net, self.sites, prior)
        if problems:
            raise UnsupportedLayerError(
                f"{type(net).__name__} cannot take the {prior.kind or type(prior).__name__} "
                "prior:\n  " + "\n  ".join(problems))
        prior.bind(self.sites)
        self.likelihood = likelihoods.get(likelihood)
        self.num_data = num_data
        self.kl_weight = 1.0
        self._functional = is_functional(net)

    @property
    def weight_sites(self) -> list[ParamSite]:
        return [s for s in self.sites if s.role == "weight"]

    @property
    def point_sites(self) -> list[ParamSite]:
        """The point-estimated parameters (no prior; a point mass in every guide)."""
        return [s for s in self.sites if s.role == "point"]

    def require_no_point_estimates(self, what: str) -> None:
        """Refuse point-estimated parameters in ``what`` (a sampler: it has no point
        estimates; it draws every parameter)."""
        if self.point_sites:
            names = ", ".join(s.name for s in self.point_sites[:4]) + (
                f" and {len(self.point_sites) - 4} more" if len(self.point_sites) > 4 else "")
            raise UnsupportedLayerError(
                f"{what} samples every parameter, but {names} are point estimates "
                "(normalisation and other 1-D parameters are by default); put them under the "
                "prior with BayesianNet(..., include=[...]) or use engine svi")

    def site(self, name: str) -> ParamSite:
        for s in self.sites:
            if s.name == name:
                return s
        raise KeyError(name)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        with poutine.scale(scale=self.kl_weight):
            params = self.prior.sample()
        out = self.predict(x, params)
        n = self.num_data or x.shape[0]
        with pyro.plate("data", size=n, subsample=torch.arange(x.shape[0], device=x.device)):
            obs = None if y is None else self.likelihood.target(y, out)
            pyro.sample("obs", self.likelihood.dist(out), obs=obs)
        return out

    def predict(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """The plain network's output at the given sample-site values (and, for group-scale
        priors, the latents they need): :meth:`Prior.net_params` forms the weights.

        ``nn.Sequential`` nets of the zoo's layer types run through :func:`sequential_forward`
        (plain ``F.linear`` / ``F.conv2d`` calls: traceable by the PyTorch JIT, which NUTS's
        ``jit_compile`` needs); anything else through ``torch.func.functional_call``."""
        weights = self.prior.net_params(params)
        if self._functional:
            return sequential_forward(self.net, weights, x)
        return functional_call(self.net, weights, (x,))

    def num_weights(self) -> int:
        return sum(s.numel for s in self.weight_sites)


def refusals(net: nn.Module, sites: Sequence[ParamSite], prior: Prior) -> list[str]:
    """What ``prior`` cannot handle in ``net``, one line per module or parameter (empty: all
    is well): a layer its family refuses (:meth:`LayerFamily.refusal`) unless every parameter
    of it is a point estimate, and, for a unit-level prior, every weight without unit groups,
    each with its module path, type and a way out."""
    out = []
    by_layer: dict[str, list[ParamSite]] = {}
    for s in sites:
        by_layer.setdefault(s.layer, []).append(s)
    for layer, own in by_layer.items():
        module = net.get_submodule(layer)
        family = family_of(module)
        reason = family.refusal(module) if family else None
        if reason and any(s.role != "point" for s in own):
            out.append(f"{layer or 'the net'} ({type(module).__name__}): {reason}")
    if prior.needs_units:
        for s in sites:
            if s.role == "weight" and s.group_dim is None:
                out.append(f"{s.name} ({s.module}): a unit-level prior needs unit groups; "
                           f"{s.no_groups} (exclude={[s.name]!r} makes it a point estimate)")
    return out


@contextlib.contextmanager
def eval_mode(net: nn.Module) -> Iterator[nn.Module]:
    """Run ``net`` in evaluation mode inside the block: dropout off, normalisation layers on
    their running statistics, which are not updated; each submodule's training flag is
    restored afterwards. Every evaluation of a fitted network (test metrics, pruning curves,
    Monte-Carlo predictions) runs under it; training runs in training mode."""
    flags = [(m, m.training) for m in net.modules()]
    net.eval()
    try:
        yield net
    finally:
        for m, flag in flags:
            m.training = flag




def is_functional(net: nn.Module) -> bool:
    """Whether :func:`sequential_forward` can run ``net``: an ``nn.Sequential`` of Linear,
    Conv2d, MaxPool2d/AvgPool2d, Flatten and element-wise
    activations."""
    if not isinstance(net, nn.Sequential):
        return False
    ok = (nn.Linear, nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.Flatten, *STATELESS)
    return all(isinstance(m, ok) for m in net)


def sequential_forward(net: nn.Sequential, weights: dict[str, Tensor], x: Tensor) -> Tensor:
    """``net(x)`` with its parameters taken from ``weights`` (``"fc1.weight"`` ...), by plain
    functional calls; equal to ``functional_call(net, weights, (x,))`` (tested).

    A Linear weight may carry batch dimensions, ``(..., out, in)``: they broadcast against
    the input's batch dimensions (``x[..., in]``), which is how Pyro's enumerated IBP masks
    (the IBP) reach the network."""
    for name, m in net.named_children():
        family = family_of(m)
        if family is not None:
            x = family.forward(m, weights[f"{name}.weight"], weights.get(f"{name}.bias"), x)
        elif isinstance(m, nn.Flatten):
            x = x.flatten(m.start_dim, m.end_dim)
        else:  # pooling and element-wise activations hold no parameters
            x = m(x)
    return x
