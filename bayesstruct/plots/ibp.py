"""Prior-predictive figure of the two-parameter Indian Buffet Process (Griffiths &
Ghahramani 2011).

The figures vary ``(alpha, beta)`` over ``{(1, 1), (1, 1/2), (1/2, 1), (1, 2),
(3/2, 1)}``; :func:`plot_ibp_prior_predictive` draws one left-ordered matrix per setting and
the number of dishes ``K+`` against the number of customers ``N``: the Monte-Carlo mean of the
restaurant process against the closed form ``E[K+] = alpha sum_{j<=N} beta / (beta + j - 1)``
(:func:`~bayesstruct.distributions.expected_num_dishes`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from ..distributions import IndianBuffetProcess, expected_num_dishes
from ..files import atomic_path

__all__ = ["GRID", "ibp_dishes_vs_customers", "plot_ibp_prior_predictive"]

#: the (alpha, beta) settings of the figure
GRID: tuple[tuple[float, float], ...] = ((1, 1), (1, 0.5), (0.5, 1), (1, 2), (1.5, 1))


def ibp_dishes_vs_customers(alpha: float, beta: float, num_customers: int, num_draws: int,
                            max_dishes: int | None = None) -> list[dict[str, float]]:
    """``K+`` after ``N = 1 .. num_customers`` customers, Monte Carlo against the closed form.

    The restaurant process is sequential, so the first ``N`` rows of a draw for
    ``num_customers`` customers are a draw for ``N``: one batch of ``num_draws`` matrices gives
    every ``N``. Rows: ``alpha, beta, N, mc_mean, mc_se`` (standard error of the mean),
    ``closed_form``, ``num_draws``. Uses torch's global RNG."""
    ibp = IndianBuffetProcess(float(alpha), float(beta), num_customers, max_dishes)
    z = ibp.sample((num_draws,))
    # a dish is served after N customers when one of the first N rows takes it
    served = z.cummax(dim=-2).values.sum(-1).double()  # (draws, N)
    mean = served.mean(0)
    se = served.std(0) / num_draws**0.5 if num_draws > 1 else torch.full_like(mean, float("nan"))
    a64 = torch.tensor(float(alpha), dtype=torch.float64)
    b64 = torch.tensor(float(beta), dtype=torch.float64)
    closed = [float(expected_num_dishes(a64, b64, n)) for n in range(1, num_customers + 1)]
    return [{"alpha": float(alpha), "beta": float(beta), "N": n + 1, "mc_mean": float(mean[n]),
             "mc_se": float(se[n]), "closed_form": closed[n], "num_draws": num_draws}
            for n in range(num_customers)]


def plot_ibp_prior_predictive(path: str | os.PathLike, num_customers: int = 50,
                              max_dishes: int | None = None,
                              grid: Sequence[tuple[float, float]] = GRID,
                              num_draws: int = 500, seed: int = 0,
                              title: str = "") -> tuple[Path, list[dict[str, float]]]:
    """One panel per ``(alpha, beta)`` in ``grid``: a sampled lof matrix (customers on rows,
    dishes on columns, trimmed to its ``K+`` dishes), and one panel of ``K+`` against ``N``:
    the Monte-Carlo mean over ``num_draws`` draws with a +-2 SE band, and the closed form.

    ``max_dishes=None`` lets each setting pick its own (``P(K+ > K) < 1e-10``). Seeded with
    ``seed`` inside :func:`torch.random.fork_rng`, so the caller's RNG state is untouched.
    Returns the PNG path (written atomically) and the rows of
    :func:`ibp_dishes_vs_customers` for every setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows: list[dict[str, float]] = []
    examples = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for alpha, beta in grid:
            examples.append(IndianBuffetProcess(float(alpha), float(beta), num_customers,
                                                max_dishes).sample())
            rows += ibp_dishes_vs_customers(alpha, beta, num_customers, num_draws, max_dishes)

    n_panels = len(grid) + 1
    ncols = min(3, n_panels)
    nrows = -(-n_panels // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 4.2 * nrows),
                             constrained_layout=True, squeeze=False)
    flat = list(axes.flat)
    for i, ((alpha, beta), z) in enumerate(zip(grid, examples, strict=True)):
        ax = flat[i]
        k_plus = int((z.sum(0) > 0).sum())
        ax.imshow(z[:, :max(k_plus, 1)].numpy(), cmap="Greys", vmin=0, vmax=1,
                  aspect="auto", interpolation="nearest")
        ax.set_title(rf"$\alpha$={alpha:g}, $\beta$={beta:g}: $K_+$={k_plus}", fontsize=10)
        ax.set(xlabel="dish k (unit of layer l+1)", ylabel="customer j (unit of layer l)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax = flat[len(grid)]
    for i, (alpha, beta) in enumerate(grid):
        setting = [r for r in rows if r["alpha"] == alpha and r["beta"] == beta]
        n = [r["N"] for r in setting]
        mc = torch.tensor([r["mc_mean"] for r in setting])
        se = torch.tensor([r["mc_se"] for r in setting])
        color = f"C{i}"
        ax.plot(n, [r["closed_form"] for r in setting], "-", color=color,
                label=rf"$\alpha$={alpha:g}, $\beta$={beta:g}")
        ax.plot(n, mc.numpy(), "o", color=color, markersize=2.5)
        ax.fill_between(n, (mc - 2 * se).numpy(), (mc + 2 * se).numpy(), color=color,
                        alpha=0.2, linewidth=0)
    ax.plot([], [], "-", color="0.3", label="closed form")
    ax.plot([], [], "o", color="0.3", markersize=2.5, label=f"MC mean ({num_draws} draws), ±2 SE")
    ax.set(xlabel="customers N", ylabel=r"expected number of dishes $E[K_+]$",
           title=r"$K_+$ vs N: Monte Carlo vs closed form")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5)
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    fig.suptitle(title or f"IBP(alpha, beta) prior predictive, N = {num_customers} customers")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return Path(path), rows
