"""The two-parameter Indian Buffet Process (METHODS.md M2.5): class probabilities by brute force
and by hand, the restaurant-process sampler against them, the prior-predictive figure."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pyro
import pytest
import torch
from scipy import stats

from bayesstruct.distributions import (
    IndianBuffetProcess,
    expected_num_dishes,
    lof_classes,
    to_left_ordered_form,
)
from tests.helpers import P_5SE, iid_se_var, seed

#: the seed's (alpha, beta) grid
GRID = [(1.0, 1.0), (1.0, 0.5), (0.5, 1.0), (1.0, 2.0), (1.5, 1.0)]
F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tensors here are small (a few thousand 20 x 40 matrices): intra-op threads only add
    overhead, and on a busy machine a lot of it (10-40x measured on 2 loaded cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def poisson_mean(alpha: float, beta: float, n: int) -> float:
    """alpha sum_{j=1..N} beta / (beta + j - 1), written out in plain Python."""
    return alpha * sum(beta / (beta + j - 1) for j in range(1, n + 1))


def ibp(alpha, beta, n, k, **kw) -> IndianBuffetProcess:
    return IndianBuffetProcess(torch.as_tensor(alpha, dtype=F64), torch.as_tensor(beta, dtype=F64),
                               num_customers=n, max_dishes=k, **kw)


def class_codes(z: torch.Tensor) -> np.ndarray:
    """Each matrix's class as its column histories (customer 1 the most significant bit), sorted
    descending: equal rows <=> the same lof class. Independent of ``to_left_ordered_form``."""
    n = z.size(-2)
    weights = 2 ** torch.arange(n - 1, -1, -1, dtype=torch.long)
    codes = (z.long() * weights.unsqueeze(-1)).sum(-2)
    return -np.sort(-codes.numpy(), axis=-1)


# -- class probabilities: brute force and by hand ------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("k", [1, 3])
def test_lof_classes_enumerates_every_class_once(n, k):
    z = lof_classes(n, k, dtype=F64)
    assert z.shape == (math.comb(2**n - 1 + k, k), n, k)
    assert torch.equal(to_left_ordered_form(z), z)
    assert len(np.unique(class_codes(z), axis=0)) == len(z)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize(("alpha", "beta"), GRID)
def test_log_prob_over_all_lof_classes_is_poisson_cdf(n, alpha, beta):
    """Summed over the lof matrices with at most K dishes: P(K+ <= K), K+ ~ Poisson."""
    k = 3
    total = ibp(alpha, beta, n, k).log_prob(lof_classes(n, k, dtype=F64)).exp().sum()
    cdf = stats.poisson.cdf(k, poisson_mean(alpha, beta, n))
    assert abs(float(total) - cdf) < 1e-10
    mean = float(expected_num_dishes(torch.tensor(alpha, dtype=F64), beta, n))
    assert mean == pytest.approx(poisson_mean(alpha, beta, n), rel=1e-14)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize(("alpha", "beta"), GRID)
def test_log_prob_over_all_lof_classes_sums_to_one(n, alpha, beta):
    """With K past the Poisson tail (< 1e-8) the class probabilities sum to 1 (to 1e-6)."""
    mean = poisson_mean(alpha, beta, n)
    k = next(k for k in range(1, 100) if stats.poisson.sf(k, mean) < 1e-8)
    total = float(ibp(alpha, beta, n, k).log_prob(lof_classes(n, k, dtype=F64)).exp().sum())
    assert abs(total - 1.0) < 1e-6


@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 1.0), (0.7, 0.3), (2.0, 3.5)])
def test_log_prob_by_hand_two_customers(alpha, beta):
    """N = 2, written out: exp(-alpha H) with H = 1 + beta / (1 + beta), and per nonzero column
    Gamma(m) Gamma(2 - m + beta) / Gamma(2 + beta) = 1/(1+beta) (m = 1) or 1/(beta (1+beta))
    (m = 2)."""
    a, b = alpha, beta
    e = math.exp(-a * (1 + b / (1 + b)))
    cases = {
        ((0, 0), (0, 0)): e,
        ((1, 0), (0, 0)): a * b * e / (1 + b),
        ((0, 0), (1, 0)): a * b * e / (1 + b),
        ((1, 0), (1, 0)): a * b * e / (b * (1 + b)),
        ((1, 1), (1, 0)): (a * b) ** 2 * e / (b * (1 + b) ** 2),
        ((1, 1), (0, 0)): (a * b) ** 2 * e / (2 * (1 + b) ** 2),  # K_h = 2: 1/2!
        ((1, 0), (0, 1)): (a * b) ** 2 * e / (1 + b) ** 2,
        ((1, 1), (1, 1)): (a * b) ** 2 * e / (2 * (b * (1 + b)) ** 2),
    }
    d = ibp(a, b, 2, 2)
    for z, p in cases.items():
        assert float(d.log_prob(torch.tensor(z, dtype=F64))) == pytest.approx(math.log(p),
                                                                           abs=1e-12)


def test_log_prob_one_parameter_ibp_matches_griffiths_ghahramani():
    """beta = 1 (Griffiths & Ghahramani 2011, eq. 21): alpha^K+ / prod_h K_h! exp(-alpha H_N)
    prod_k (N - m_k)! (m_k - 1)! / N!."""
    z = torch.tensor([[1, 1, 0, 1], [1, 0, 1, 0], [0, 0, 1, 0], [1, 0, 0, 0]], dtype=F64)
    n, alpha = 4, 1.7
    m = z.sum(0).long().tolist()  # 3, 1, 2, 1; histories 1101, 1000, 0110, 1000: K_1000 = 2
    h = sum(1 / j for j in range(1, n + 1))
    p = alpha**4 / 2 * math.exp(-alpha * h)
    for mk in m:
        p *= math.factorial(n - mk) * math.factorial(mk - 1) / math.factorial(n)
    assert float(ibp(alpha, 1.0, n, 4).log_prob(z)) == pytest.approx(math.log(p), abs=1e-12)


def test_log_prob_invariant_to_column_order_and_zero_padding():
    g = torch.Generator().manual_seed(1)
    z = (torch.rand(64, 5, 6, generator=g, dtype=F64) < 0.4).to(F64)
    z[:, :, 0] = z[:, :, 1]  # repeated histories, so the K_h! term is exercised
    d = ibp(1.3, 0.6, 5, 6)
    lp = d.log_prob(z)
    assert torch.isfinite(lp).all()
    for _ in range(5):
        perm = torch.randperm(6, generator=g)
        assert torch.allclose(d.log_prob(z[..., perm]), lp, rtol=0, atol=1e-12)
    padded = torch.cat([z[..., :3], torch.zeros(64, 5, 4, dtype=F64), z[..., 3:]], -1)
    assert torch.allclose(ibp(1.3, 0.6, 5, 10).log_prob(padded), lp, rtol=0, atol=1e-12)
    unchecked = ibp(1.3, 0.6, 5, 6, validate_args=False)
    assert torch.allclose(unchecked.log_prob(padded), lp, rtol=0, atol=1e-12)


def test_log_prob_gradient_in_alpha():
    """d/d alpha log P = K+ / alpha - sum_j beta / (beta + j - 1)."""
    z = torch.tensor([[1, 1, 0], [0, 1, 1], [1, 0, 0]], dtype=F64)
    alpha = torch.tensor(0.8, dtype=F64, requires_grad=True)
    IndianBuffetProcess(alpha, 2.0, 3, 3).log_prob(z).backward()
    assert float(alpha.grad) == pytest.approx(3 / 0.8 - poisson_mean(1.0, 2.0, 3), abs=1e-12)


# -- the sampler ---------------------------------------------------------------------------------


@pytest.mark.stochastic
@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 0.5), (1.5, 2.0)])
def test_sampler_class_frequencies_match_log_prob(alpha, beta):
    """N = 3, 20000 restaurant-process draws: chi-square over the lof classes (expected count
    >= 5, the rest pooled; p-value floor 5.7e-7, the false-alarm rate of a 5-SE bound) and
    the 10 most probable classes' counts (bound: 5 SE, the binomial SE sqrt(n p (1 - p)))."""
    torch.manual_seed(seed(0))
    n, draws, k_enum = 3, 20_000, 6
    z = ibp(alpha, beta, n, 16).sample((draws,))
    codes = class_codes(z)
    within = ~(codes[:, k_enum:] > 0).any(-1)  # K+ <= k_enum: an enumerated class
    observed = Counter(map(tuple, codes[within, :k_enum].tolist()))
    classes = lof_classes(n, k_enum, dtype=F64)
    p = ibp(alpha, beta, n, k_enum).log_prob(classes).exp().numpy()
    keys = [tuple(row) for row in class_codes(classes).tolist()]
    counts = np.array([observed.get(key, 0) for key in keys])
    assert counts.sum() == within.sum()
    big = draws * p >= 5
    exp_cells = np.append(draws * p[big], draws * (1 - p[big].sum()))
    obs_cells = np.append(counts[big], draws - counts[big].sum())
    chi2 = float(((obs_cells - exp_cells) ** 2 / exp_cells).sum())
    assert stats.chi2.sf(chi2, len(exp_cells) - 1) > P_5SE, chi2
    for i in np.argsort(-p)[:10]:
        se = math.sqrt(draws * p[i] * (1 - p[i]))
        assert abs(counts[i] - draws * p[i]) < 5 * se, (keys[i], counts[i], draws * p[i])


@pytest.mark.stochastic
@pytest.mark.parametrize(("alpha", "beta"), GRID)
def test_sampler_dish_counts(alpha, beta):
    """N = 20: K+ ~ Poisson(alpha sum_j beta / (beta + j - 1)) and every customer's number of
    dishes (a row sum) ~ Poisson(alpha), 4000 draws. Bound: 5 SE for the means (the Poisson
    SE sqrt(mean / n)) and for the variances, which equal the means (the SE of the sample
    variance from the draws' own fourth moment)."""
    torch.manual_seed(seed(0))
    n, draws = 20, 4000
    z = ibp(alpha, beta, n, 40).sample((draws,))
    k_plus = (z.sum(-2) > 0).sum(-1).to(F64)
    mean = poisson_mean(alpha, beta, n)
    assert abs(float(k_plus.mean()) - mean) < 5 * math.sqrt(mean / draws)
    assert abs(float(k_plus.var()) - mean) < 5 * float(iid_se_var(k_plus.numpy()))
    rows = z.sum(-1)  # (draws, N)
    assert (rows.mean(0) - alpha).abs().max() < 5 * math.sqrt(alpha / draws)
    assert abs(float(rows[:, -1].var()) - alpha) < 5 * float(iid_se_var(rows[:, -1].numpy()))


def test_sample_is_binary_lof_and_zero_beyond_k_plus():
    z = ibp(1.5, 0.5, 12, 30).sample((500,))
    assert z.shape == (500, 12, 30) and z.dtype == F64
    assert ((z == 0) | (z == 1)).all()
    assert torch.equal(to_left_ordered_form(z), z)
    codes = class_codes(z)
    assert (np.diff(codes.astype(np.int64), axis=-1) <= 0).all()  # histories descending
    nonzero = z.sum(-2) > 0
    k_plus = nonzero.sum(-1, keepdim=True)
    assert torch.equal(nonzero, torch.arange(30) < k_plus)  # zero columns only at the end


def test_sample_reproducible_with_pyro_seed():
    d = IndianBuffetProcess(1.0, 1.0, num_customers=8, max_dishes=20)
    pyro.set_rng_seed(3)
    a = d.sample((10,))
    pyro.set_rng_seed(3)
    assert torch.equal(a, d.sample((10,)))


@pytest.mark.stochastic
def test_batched_alpha_shapes():
    """Shapes, and each batch element's mean K+ over 4000 draws within 5 SE of its own IBP's
    (bound: 5 SE, the Poisson SE sqrt(mean / 4000))."""
    torch.manual_seed(seed(0))
    alpha = torch.tensor([0.5, 1.0, 3.0])
    d = IndianBuffetProcess(alpha, 1.0, num_customers=6, max_dishes=40)
    assert d.batch_shape == (3,) and d.event_shape == (6, 40)
    z = d.sample((2000, 2))
    assert z.shape == (2000, 2, 3, 6, 40)
    assert d.log_prob(z).shape == (2000, 2, 3)
    means = (z.sum(-2) > 0).sum(-1).float().mean((0, 1))
    expected = expected_num_dishes(alpha, 1.0, 6)
    assert bool(((means - expected).abs() < 5 * (expected / 4000).sqrt()).all()), means
    e = d.expand((4, 3))
    assert e.sample().shape == (4, 3, 6, 40) and e.log_prob(e.sample()).shape == (4, 3)
    # each batch element is its own IBP
    single = IndianBuffetProcess(alpha[2], 1.0, num_customers=6, max_dishes=40)
    assert torch.allclose(d.log_prob(z)[..., 2], single.log_prob(z[..., 2, :, :]))


def test_in_a_pyro_model():
    def model():
        with pyro.plate("layers", 3):
            return pyro.sample("z", IndianBuffetProcess(torch.tensor(1.0), 0.5, 5, 20))

    trace = pyro.poutine.trace(model).get_trace()
    trace.compute_log_prob()
    assert trace.nodes["z"]["value"].shape == (3, 5, 20)
    assert trace.nodes["z"]["log_prob"].shape == (3,)


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"alpha": 0.0}, "alpha"),
    ({"alpha": -1.0}, "alpha"),
    ({"alpha": float("nan")}, "alpha"),
    ({"alpha": torch.tensor([1.0, -2.0])}, "alpha"),
    ({"beta": 0.0}, "beta"),
    ({"beta": float("inf")}, "beta"),
    ({"num_customers": 0}, "num_customers"),
    ({"num_customers": 2.5}, "num_customers"),
    ({"num_customers": None}, "num_customers"),
    ({"max_dishes": 0}, "max_dishes"),
    ({"max_dishes": 3.0}, "max_dishes"),
])
def test_invalid_arguments_raise(kwargs, name):
    args = {"alpha": 1.0, "beta": 1.0, "num_customers": 4, "max_dishes": 10, **kwargs}
    with pytest.raises(ValueError, match=name) as err:
        IndianBuffetProcess(**args)
    if not isinstance(kwargs[name], torch.Tensor):
        assert repr(kwargs[name]) in str(err.value)  # the bad value is named too


def test_pyro_validation_of_values():
    d = IndianBuffetProcess(1.0, 1.0, 2, 3, validate_args=True)
    with pytest.raises(ValueError, match="support"):
        d.log_prob(torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError):
        d.log_prob(torch.zeros(3, 3))  # 3 customers, not 2


def test_overflow_of_max_dishes_raises():
    d = IndianBuffetProcess(20.0, 1.0, num_customers=10, max_dishes=5)
    with pytest.raises(ValueError, match=r"needed \d+ dishes but max_dishes=5"):
        d.sample()


def test_default_max_dishes_covers_the_poisson_tail():
    d = IndianBuffetProcess(torch.tensor([0.5, 3.0]), 2.0, num_customers=30)
    mean = poisson_mean(3.0, 2.0, 30)
    assert stats.poisson.sf(d.max_dishes, mean) < 1e-10
    assert stats.poisson.sf(d.max_dishes - 1, mean) >= 1e-10
