"""Distributions Pyro lacks: the two-parameter Indian Buffet Process (Griffiths & Ghahramani 2011).

The IBP (Griffiths & Ghahramani 2006, 2011) is a distribution on binary matrices ``Z`` with
``N`` rows (customers) and an unbounded number of columns (dishes), of which finitely many are
nonzero. The two-parameter version IBP(alpha, beta) (Ghahramani, Griffiths & Sollich 2007)
decouples the number of dishes per customer (``alpha``) from how much customers share them
(``beta``; ``beta = 1`` is the one-parameter IBP). The **restaurant process**: customer
``j = 1 .. N`` takes each dish ``k`` already tasted with probability

    eta_k / (j + beta - 1),       eta_k = number of earlier customers that took dish k,

and then ``Poisson(alpha beta / (j + beta - 1))`` new dishes. Hence the total number of dishes
``K+`` is exactly ``Poisson(alpha sum_{j=1..N} beta / (beta + j - 1))`` and each customer's
number of dishes (a row sum) is ``Poisson(alpha)``.

Columns are exchangeable, so the IBP is a distribution on **left-ordered-form (lof)
equivalence classes** ``[Z]``: the lof of ``Z`` sorts its columns by their *history* (the
column read as a binary number, customer 1 the most significant bit), descending, zero columns
last. With ``m_k`` the column sums, ``K+`` the number of nonzero columns and ``K_h`` the
number of columns equal to the nonzero history ``h`` (Ghahramani, Griffiths & Sollich 2007,
eq. 9; Griffiths & Ghahramani 2011, eq. 21 for ``beta = 1``):

    P([Z]) = (alpha beta)^{K+} / prod_h K_h!  exp(-alpha sum_{j=1..N} beta / (beta + j - 1))
             prod_{k: m_k > 0} Gamma(m_k) Gamma(N - m_k + beta) / Gamma(N + beta).

Here the matrices have a fixed number ``max_dishes`` of columns (tensors need a shape); a draw
that needs more raises instead of being truncated, and :meth:`IndianBuffetProcess.log_prob`
gives the class probability above, which does not depend on ``max_dishes``.

References
----------
- T. L. Griffiths, Z. Ghahramani. Infinite latent feature models and the Indian buffet
  process. NIPS 2006.
- Z. Ghahramani, T. L. Griffiths, P. Sollich. Bayesian nonparametric latent feature models.
  Bayesian Statistics 8, 2007.
- T. L. Griffiths, Z. Ghahramani. The Indian buffet process: an introduction and review.
  JMLR 12, 2011.
- R. P. Adams, H. M. Wallach, Z. Ghahramani. Learning the structure of deep sparse graphical
  models. AISTATS 2010.
"""

from __future__ import annotations

import itertools
import numbers

import pyro.distributions as dist
import torch
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

__all__ = [
    "IndianBuffetProcess",
    "default_max_dishes",
    "expected_num_dishes",
    "lof_classes",
    "to_left_ordered_form",
]


def expected_num_dishes(alpha, beta, num_customers: int) -> torch.Tensor:
    """``E[K+] = alpha sum_{j=1..N} beta / (beta + j - 1)`` (Ghahramani, Griffiths & Sollich
    2007); the number of dishes ``K+`` is exactly Poisson with this mean. ``alpha`` and
    ``beta`` broadcast; ``beta = 1`` gives ``alpha H_N``."""
    alpha, beta = broadcast_all(alpha, beta)
    j = torch.arange(num_customers, dtype=beta.dtype, device=beta.device)
    return alpha * (beta.unsqueeze(-1) / (beta.unsqueeze(-1) + j)).sum(-1)


def default_max_dishes(alpha, beta, num_customers: int, tail: float = 1e-10) -> int:
    """The smallest ``K`` with ``P(K+ > K) < tail`` for every element of ``alpha``, ``beta``:
    ``K+ ~ Poisson(mean)``, ``P(K+ > K) = P(K + 1, mean)`` (the regularised lower incomplete
    gamma function)."""
    mean = float(expected_num_dishes(torch.as_tensor(alpha, dtype=torch.float64),
                                      torch.as_tensor(beta, dtype=torch.float64),
                                      num_customers).max())
    ks = torch.arange(0, int(mean + 20 * mean**0.5 + 50), dtype=torch.float64)
    sf = torch.special.gammainc(ks + 1, torch.tensor(mean, dtype=torch.float64))
    return max(1, int(ks[sf < tail][0]))


def to_left_ordered_form(z: torch.Tensor) -> torch.Tensor:
    """The left-ordered form of binary matrices ``z`` of shape ``(*batch, N, K)``: columns
    sorted by their history (customer 1 the most significant bit), descending, zero columns
    last (Griffiths & Ghahramani 2011, section 2.2). A least-significant-row-first sequence of
    stable sorts, so any ``N`` works (no integer codes that overflow)."""
    perm = torch.arange(z.size(-1), device=z.device).expand(z.shape[:-2] + z.shape[-1:])
    for i in reversed(range(z.size(-2))):
        keys = z[..., i, :].gather(-1, perm)
        idx = torch.sort(keys, dim=-1, descending=True, stable=True).indices
        perm = perm.gather(-1, idx)
    return z.gather(-1, perm.unsqueeze(-2).expand(z.shape))


def lof_classes(num_customers: int, max_dishes: int,
                dtype: torch.dtype | None = None) -> torch.Tensor:
    """Every lof matrix with ``num_customers`` rows and at most ``max_dishes`` nonzero columns,
    padded with zero columns to ``max_dishes``: one per multiset of nonzero histories, so
    ``M = C(2^N - 1 + K, K)`` of them. Returns ``(M, N, K)``; for brute-force checks only."""
    n, k = num_customers, max_dishes
    # nonzero histories in lof order: customer 1 is the most significant bit, descending
    codes = range(2**n - 1, 0, -1)
    hist = torch.tensor([[(c >> (n - 1 - i)) & 1 for i in range(n)] for c in codes],
                        dtype=dtype or torch.get_default_dtype())
    # each multiset as K indices into the histories, padded with the zero history at the end
    zero = len(hist)
    idx = [combo + (zero,) * (k - size) for size in range(k + 1)
           for combo in itertools.combinations_with_replacement(range(zero), size)]
    padded = torch.cat([hist, hist.new_zeros(1, n)])
    return padded[torch.tensor(idx, dtype=torch.long).reshape(-1, k)].transpose(-1, -2)


def _check_int(name: str, value, minimum: int = 1) -> int:
    if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
            or value < minimum):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _as_float(x):
    """Integer tensors become the default float dtype (``broadcast_all`` would otherwise cast
    a float partner to int)."""
    if isinstance(x, torch.Tensor) and not x.is_floating_point():
        return x.to(torch.get_default_dtype())
    return x


def _check_positive(name: str, value) -> None:
    try:
        t = torch.as_tensor(value).detach()
    except (TypeError, ValueError, RuntimeError):
        t = None
    if t is None or t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"{name} must be a positive real number or tensor, got {value!r}")
    if not bool((t > 0).all()) or not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be > 0 and finite, got {value!r}")


class IndianBuffetProcess(dist.TorchDistribution):
    """The two-parameter Indian Buffet Process IBP(alpha, beta) on ``N x K`` binary matrices
    (Ghahramani, Griffiths & Sollich 2007).

    :param alpha: mass, ``> 0`` (the expected number of dishes per customer); tensor or float.
    :param beta: concentration, ``> 0`` (``1``: the one-parameter IBP); broadcast with
        ``alpha`` to the ``batch_shape``.
    :param num_customers: ``N``, the number of rows (required, an int ``>= 1``).
    :param max_dishes: ``K``, the number of columns (int ``>= 1``); ``None`` picks the smallest
        ``K`` with ``P(K+ > K) < 1e-10`` (:func:`default_max_dishes`).

    Values are float 0/1 matrices of shape ``(*batch, N, K)``; :meth:`sample` returns them in
    left-ordered form with the unused columns zero, and raises ``ValueError`` if a draw needs
    more than ``K`` dishes. :meth:`log_prob` is ``log P([Z])`` of the lof equivalence class of
    the value (module docstring), so every column order of a matrix gets the same value, and
    the values summed over the lof matrices are ``P(K+ <= K)``.
    """

    arg_constraints = {"alpha": constraints.positive, "beta": constraints.positive}
    support = constraints.independent(constraints.boolean, 2)
    has_rsample = False
    has_enumerate_support = False

    def __init__(self, alpha, beta=1.0, num_customers: int | None = None,
                 max_dishes: int | None = None, validate_args=None):
        for name, value in (("alpha", alpha), ("beta", beta)):
            _check_positive(name, value)
        if num_customers is None:
            raise ValueError("num_customers is required: an int >= 1, got None")
        self.num_customers = _check_int("num_customers", num_customers)
        self.alpha, self.beta = broadcast_all(_as_float(alpha), _as_float(beta))
        if max_dishes is None:
            max_dishes = default_max_dishes(self.alpha.detach(), self.beta.detach(),
                                            self.num_customers)
        self.max_dishes = _check_int("max_dishes", max_dishes)
        super().__init__(self.alpha.shape, torch.Size((self.num_customers, self.max_dishes)),
                         validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(IndianBuffetProcess, _instance)
        batch_shape = torch.Size(batch_shape)
        new.alpha = self.alpha.expand(batch_shape)
        new.beta = self.beta.expand(batch_shape)
        new.num_customers, new.max_dishes = self.num_customers, self.max_dishes
        super(IndianBuffetProcess, new).__init__(batch_shape, self.event_shape,
                                                 validate_args=False)
        new._validate_args = self._validate_args
        return new

    def expected_num_dishes(self) -> torch.Tensor:
        """``E[K+]`` per batch element (:func:`expected_num_dishes`)."""
        return expected_num_dishes(self.alpha, self.beta, self.num_customers)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """Draws by the restaurant process (module docstring), all batch and sample elements at
        once, one customer at a time; torch's RNG, so ``pyro.set_rng_seed`` reproduces them.
        Returned in left-ordered form."""
        shape = self._extended_shape(sample_shape)[:-2]
        n, k = self.num_customers, self.max_dishes
        with torch.no_grad():
            alpha = self.alpha.expand(shape)
            beta = self.beta.expand(shape)
            z = torch.zeros(shape + (n, k), dtype=alpha.dtype, device=alpha.device)
            taken = torch.zeros(shape + (k,), dtype=alpha.dtype, device=alpha.device)
            used = torch.zeros(shape, dtype=torch.long, device=alpha.device)
            cols = torch.arange(k, device=alpha.device)
            for j in range(1, n + 1):
                denom = beta + (j - 1)
                old = torch.bernoulli(taken / denom.unsqueeze(-1))
                new = torch.poisson(alpha * beta / denom).long()
                # dishes beyond K are counted (their number is exact) but not stored
                fresh = (cols >= used.unsqueeze(-1)) & (cols < (used + new).unsqueeze(-1))
                row = old + fresh.to(z.dtype)
                z[..., j - 1, :] = row
                taken += row
                used += new
            needed = int(used.max()) if used.numel() else 0
            if needed > k:
                raise ValueError(
                    f"an IBP draw needed {needed} dishes but max_dishes={k}; raise max_dishes "
                    f"(E[K+] = {float(self.expected_num_dishes().max()):.3g} for the largest "
                    f"batch element)")
            return to_left_ordered_form(z)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``log P([Z])`` of the lof class of ``value`` (module docstring; Ghahramani, Griffiths
        & Sollich 2007), shape ``batch``:

            K+ log(alpha beta) - sum_h log K_h! - alpha sum_{j=1..N} beta / (beta + j - 1)
            + sum_{k: m_k > 0} [lgamma(m_k) + lgamma(N - m_k + beta) - lgamma(N + beta)].

        Without ``validate_args`` the value may have any number of columns (zero columns do
        not change it)."""
        if self._validate_args:
            self._validate_sample(value)
        n = self.num_customers
        if value.dim() < 2 or value.size(-2) != n:
            raise ValueError(f"value must have shape (..., {n}, K) (num_customers={n} rows), "
                             f"got {tuple(value.shape)}")
        dtype = torch.promote_types(self.alpha.dtype, value.dtype)
        if not dtype.is_floating_point:
            dtype = self.alpha.dtype
        z = to_left_ordered_form(value.to(dtype))
        alpha, beta = self.alpha.to(dtype), self.beta.to(dtype)
        m = z.sum(-2)
        nonzero = m > 0
        k_plus = nonzero.sum(-1).to(dtype)
        # sum_h log K_h!: equal columns are adjacent in lof; a column at rank r of its run adds
        # log r
        idx = torch.arange(z.size(-1), device=z.device)
        new_run = torch.ones_like(nonzero)
        new_run[..., 1:] = (z[..., 1:] != z[..., :-1]).any(-2)
        start = torch.where(new_run, idx, torch.zeros_like(idx)).cummax(-1).values
        rank = (idx - start + 1).to(dtype)
        log_fact = torch.where(nonzero, rank.log(), torch.zeros_like(rank)).sum(-1)
        b = beta.unsqueeze(-1)
        m_safe = torch.where(nonzero, m, torch.ones_like(m))
        per_dish = torch.lgamma(m_safe) + torch.lgamma(n - m_safe + b) - torch.lgamma(n + b)
        per_dish = torch.where(nonzero, per_dish, torch.zeros_like(per_dish)).sum(-1)
        harmonic = expected_num_dishes(torch.ones_like(beta), beta, n)
        return k_plus * torch.log(alpha * beta) - log_fact - alpha * harmonic + per_dish
