"""Small builders shared by the tests, the seed shift and the Monte-Carlo standard errors the
stochastic tests (``@pytest.mark.stochastic``) set their bounds from."""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import torch

from bayesstruct import nets, priors
from bayesstruct.models import BayesianNet

# every prior configuration of the grid (name, constructor kwargs)
PRIOR_GRID = [
    ("gaussian", {}),
    ("gaussian", {"empirical_bayes": True, "loc": 0.1, "scale": 0.7}),
    ("ard", {"per": "weight", "hyper": "empirical_bayes"}),
    ("ard", {"per": "unit", "hyper": "empirical_bayes"}),
    ("ard", {"per": "weight", "hyper": "gamma", "a": 2.0, "b": 0.5}),
    ("ard", {"per": "unit", "hyper": "gamma", "a": 1.5, "b": 2.0}),
    ("horseshoe", {}),
    ("horseshoe", {"tau0": 0.1, "slab_scale": 2.0}),
    ("sbp", {"log_low": -8.0, "init_log_scale": -1.0}),
]
# the improper log-uniform priors: their KL is Molchanov's approximation, so they are checked
# against their own references (tests/priors/test_sparsity_priors.py), not Pyro's ELBO
SPARSE_GRID = [
    ("log_uniform", {"level": "weight"}),
    ("log_uniform", {"level": "unit"}),
]
SPARSE_IDS = [f"{k}-{kw['level']}" for k, kw in SPARSE_GRID]
# priors with discrete structure latents (IBP unit masks): relaxed in SVI, enumerated by MCMC,
# checked in tests/priors/test_ibp.py
DISCRETE_GRID = [
    ("ibp", {}),
    ("ibp", {"alpha": 2.0, "temperature": 0.3, "init_inclusion": 0.9}),
]
#: every prior configuration the tests use; tests/priors/test_registry.py checks that it covers
#: every registered prior
ALL_PRIORS = PRIOR_GRID + SPARSE_GRID + DISCRETE_GRID
PRIOR_IDS = [f"{k}-{'-'.join(f'{a}={b}' for a, b in kw.items())}" for k, kw in PRIOR_GRID]


def small_model(kind: str, kw: dict, net: str = "mlp", num_data: int = 50,
                seed: int = 0) -> BayesianNet:
    torch.manual_seed(seed)
    if net == "mlp":
        module = nets.mlp([5, 4, 3])
    elif net == "conv":
        module = nets.lenet5_caffe((1, 8, 8), 3)
    elif net in ("rnn", "gru"):  # reads the mlp's 5 inputs as 5 steps of 1 feature
        module = nets.SequenceClassifier(net, 5, 1, 4, 3)
    else:
        raise ValueError(net)
    return BayesianNet(module, priors.get(kind, **kw), num_data=num_data)


def randomize_guide(guide, seed: int = 1) -> None:
    """Spread the variational parameters so tests do not sit at the initial values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in guide.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "raw_scale" in name:  # softplus scales of the latents
                p.copy_(-1.0 + 0.5 * noise)
            elif "log_var" in name:  # sd around exp(-1.3) ~ 0.27
                p.copy_(-2.6 + 1.0 * noise)
            else:
                p.copy_(0.5 * noise)


def loss_difference(model, guide, x, y, n: int, elbo=None,
                    n_ref: int | None = None) -> tuple[float, float]:
    """``mean(guide.loss) - mean(Pyro ELBO loss)`` over ``n`` and ``n_ref`` (default ``n``)
    draws, and its standard error ``sqrt(var_ours / n + var_ref / n_ref)``: the two estimate
    the same negative ELBO when the fast path is right. Pyro's side costs about 3x ours a draw,
    so a test buys most of its precision on our side and fewer reference draws."""
    import math

    import pyro

    elbo = elbo or pyro.infer.Trace_ELBO()
    n_ref = n if n_ref is None else n_ref
    with torch.no_grad():
        ours = torch.tensor([float(guide.loss(x, y)) for _ in range(n)], dtype=torch.float64)
        ref = torch.tensor([elbo.loss(model, guide, x, y) for _ in range(n_ref)],
                           dtype=torch.float64)
    return float(ours.mean() - ref.mean()), math.sqrt(ours.var() / n + ref.var() / n_ref)


# -- seeds ---------------------------------------------------------------------------------------

#: the environment variable of the seed shift; ``pytest --seed-shift N`` sets it (tests/conftest.py)
SEED_SHIFT_ENV = "BAYESSTRUCT_TEST_SEED_SHIFT"


def seed_shift() -> int:
    """The seed shift: ``$BAYESSTRUCT_TEST_SEED_SHIFT`` (an integer, default 0), read at each call
    so that it works from any module, whenever it was imported."""
    raw = os.environ.get(SEED_SHIFT_ENV, "").strip()
    try:
        return int(raw) if raw else 0
    except ValueError:
        raise ValueError(f"{SEED_SHIFT_ENV}={raw!r} is not an integer") from None


def seed(n: int) -> int:
    """The seed ``n`` of a stochastic test, shifted: ``n + shift``. Every seed of a stochastic
    test goes through here, so ``--seed-shift N`` reruns it on other draws."""
    return n + seed_shift()


# -- Monte-Carlo standard errors -----------------------------------------------------------------

#: two-sided tail probability of a 5-SE normal bound (5.7e-7): the p-value floor of the
#: statistical tests, so that they fail by chance as rarely as a 5-SE bound does
P_5SE = math.erfc(5 / math.sqrt(2))


def iid_se(x, axis: int = 0) -> np.ndarray:
    """Standard error of the mean of independent draws along ``axis``: ``sd / sqrt(n)``."""
    x = np.asarray(x, dtype=np.float64)
    return x.std(axis, ddof=1) / math.sqrt(x.shape[axis])


def iid_se_var(x, axis: int = 0) -> np.ndarray:
    """Standard error of the sample variance of independent draws along ``axis``: the SE of
    the mean of ``(x - mean)^2`` (``sqrt((m4 - s^4) / n)``, no Gaussian assumption)."""
    x = np.asarray(x, dtype=np.float64)
    return iid_se((x - x.mean(axis, keepdims=True)) ** 2, axis)


def ess(draws) -> np.ndarray:
    """ArviZ's effective sample size for the mean (``method="mean"``) of correlated draws of
    shape ``(chain, draw, *shape)``, one per trailing element."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import arviz as az

        d = np.asarray(draws, dtype=np.float64)
        flat = d.reshape(d.shape[0], d.shape[1], -1)
        out = [float(az.ess(flat[..., k], method="mean")) for k in range(flat.shape[-1])]
    return np.array(out).reshape(d.shape[2:])


def chain_se(draws) -> np.ndarray:
    """Standard error of the mean of correlated draws ``(chain, draw, *shape)``:
    ``sd / sqrt(ESS)`` with ArviZ's ESS of the draws themselves."""
    d = np.asarray(draws, dtype=np.float64)
    return d.std((0, 1)) / np.sqrt(ess(d))


def chain_se_var(draws) -> np.ndarray:
    """Standard error of the variance of correlated draws ``(chain, draw, *shape)``: the ESS
    standard error of the mean of ``(x - mean)^2``, from that sequence's own ESS."""
    d = np.asarray(draws, dtype=np.float64)
    return chain_se((d - d.mean((0, 1))) ** 2)
