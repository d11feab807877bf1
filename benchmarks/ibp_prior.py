"""Prior-predictive figure of the two-parameter Indian Buffet Process.

For the grid (alpha, beta) in {(1, 1), (1, 1/2), (1/2, 1), (1, 2), (3/2, 1)}: one
sampled left-ordered matrix per setting, and the number of dishes K+ against the number of
customers N, the Monte-Carlo mean of ``bayesstruct.distributions.IndianBuffetProcess`` draws
(restaurant process) against the closed form alpha sum_{j<=N} beta / (beta + j - 1). Prints
the comparison at a few N.

    python benchmarks/ibp_prior.py [--out DIR] [--write-results]

The figure goes to ``DIR/figures/ibp-prior-predictive.png`` and the section to
``DIR/RESULTS.md`` (default ``runs/benchmarks/``); ``--write-results`` updates the tracked
``benchmarks/RESULTS.md`` and ``benchmarks/figures/`` instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import Output, add_output_args, markdown_table, provenance  # noqa: E402

from bayesstruct.plots import plot_ibp_prior_predictive  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50, help="N, customers per draw")
    parser.add_argument("--draws", type=int, default=500, help="Monte-Carlo draws per setting")
    parser.add_argument("--seed", type=int, default=0)
    add_output_args(parser)
    args = parser.parse_args(argv)
    out = Output(args)

    path, rows = plot_ibp_prior_predictive(out.figure("ibp-prior-predictive.png"),
                                           num_customers=args.customers,
                                           num_draws=args.draws, seed=args.seed)
    shown = sorted({1, 5, 10, 20, args.customers} & set(range(1, args.customers + 1)))
    print(f"{'alpha':>5} {'beta':>5} {'N':>4} {'MC mean K+':>11} {'MC SE':>6} "
          f"{'closed form':>11} {'z':>6}")
    for r in rows:
        if r["N"] in shown:
            z = (r["mc_mean"] - r["closed_form"]) / r["mc_se"] if r["mc_se"] > 0 else 0.0
            print(f"{r['alpha']:5g} {r['beta']:5g} {r['N']:4d} {r['mc_mean']:11.3f} "
                  f"{r['mc_se']:6.3f} {r['closed_form']:11.3f} {z:6.2f}")
    print(f"wrote {path}")
    table = markdown_table(
        [[f"{r['alpha']:g}", f"{r['beta']:g}", r["N"], f"{r['mc_mean']:.3f}",
          f"{r['mc_se']:.3f}", f"{r['closed_form']:.3f}",
          f"{(r['mc_mean'] - r['closed_form']) / r['mc_se']:+.2f}" if r["mc_se"] > 0 else ""]
         for r in rows if r["N"] in shown],
        ["alpha", "beta", "N", "MC mean K+", "MC SE", "closed form", "z"])
    cmd = "python benchmarks/ibp_prior.py " + " ".join(sys.argv[1:])
    out.section("ibp-prior", "\n".join([
        "## IBP prior predictive (issue 7)", "",
        f"{provenance()}; command `{cmd.strip()}`. {args.draws} draws of "
        "`IndianBuffetProcess(alpha, beta, N)` (restaurant process) per setting of the "
        "lecture's grid; the number of dishes K+ against the closed form alpha sum_{j<=N} "
        "beta / (beta + j - 1). Figure: `figures/ibp-prior-predictive.png` (one sampled "
        "left-ordered matrix per setting, and K+ against N).", "", table]))


if __name__ == "__main__":
    main()
