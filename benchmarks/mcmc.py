"""Effective samples per second of the samplers on Bayesian logistic regression, side by side.

The model is the zoo's ``logreg-digits01``: scikit-learn digits 0 vs 1 (259 training
examples, 64 standardised pixels), Bernoulli likelihood, N(0, 1) prior on the 64 weights and
the bias (65 parameters). One chain per sampler, run one after another in this process:

  nuts            -- ``bayesstruct.inference.mcmc`` (Pyro NUTS on the BayesianNet), eager;
  nuts-jit        -- the same with ``jit_compile=True`` (the network runs through plain
                     ``F.linear`` calls, so the JIT trace holds);
  pyro-nuts       -- the textbook Pyro model of the same regression (``pyro.sample`` of w and
                     b, ``Bernoulli(logits=x @ w + b)``), eager: the reference;
  pyro-nuts-jit   -- the same with ``jit_compile=True``;
  psgld lr=...    -- ``bayesstruct.inference.psgld`` (minibatch 64, RMSprop preconditioner),
                     one row per step size: larger steps mix faster and bias more.

ESS is ArviZ's bulk ESS of each parameter (rank-normalised), over the draws after warm-up
(burn-in for pSGLD); seconds include warm-up. Printed: mean and min ESS over the 65
parameters, both per second, and, for pSGLD, how far its means and standard deviations lie from
the NUTS posterior (in NUTS posterior sd; a fast but biased sampler would show it here).

    python benchmarks/mcmc.py [--warmup 500] [--samples 1000] [--out DIR] [--write-results]

The section goes to ``DIR/RESULTS.md`` (``--out DIR``; default ``runs/benchmarks/``), or with
``--write-results`` to the tracked ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import MCMC, NUTS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import Output, add_output_args, markdown_table, provenance  # noqa: E402

from bayesstruct import config, runner  # noqa: E402
from bayesstruct.inference import mcmc, psgld  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az


def pyro_logreg(x: torch.Tensor, y: torch.Tensor | None = None) -> None:
    """The plain Pyro model: w ~ N(0, I), b ~ N(0, 1), y ~ Bernoulli(sigmoid(x w + b))."""
    w = pyro.sample("w", dist.Normal(torch.zeros(x.shape[1]), 1.0).to_event(1))
    b = pyro.sample("b", dist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("obs", dist.Bernoulli(logits=x @ w + b), obs=y)


def draws_matrix(samples: dict[str, np.ndarray]) -> np.ndarray:
    """``(draws, 65)``: weights then bias, whatever the sites are called."""
    cols = [np.asarray(v).reshape(np.asarray(v).shape[0], -1) for v in samples.values()]
    return np.concatenate(cols, axis=1)


def ess(matrix: np.ndarray) -> np.ndarray:
    return az.ess({"p": matrix[None]}, method="bulk")["p"].values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--psgld-lr", default="0.1,0.01",
                    help="comma-separated step sizes, one pSGLD row each")
    ap.add_argument("--psgld-burn-in", type=int, default=5000)
    ap.add_argument("--psgld-steps", type=int, default=50000)
    ap.add_argument("--seed", type=int, default=0)
    add_output_args(ap)
    args = ap.parse_args()
    out = Output(args)
    torch.set_num_threads(1)  # one chain, one core: what a chain in a worker process gets

    cfg = config.resolve("logreg-digits01", "nuts")
    ds = runner.load_data(cfg, torch.device("cpu"))
    x, y = ds.train.x.flatten(1), ds.train.y
    results: dict[str, tuple[float, np.ndarray]] = {}

    for jit in (False, True):
        name = "nuts-jit" if jit else "nuts"
        model = runner.build_model(cfg, ds)
        post = mcmc(model, ds, num_warmup=args.warmup, num_samples=args.samples, num_chains=1,
                    jit_compile=jit, seed=args.seed, progress=False)
        m = draws_matrix({k: post.posterior[k].values[0] for k in ("fc1.weight", "fc1.bias")})
        results[name] = (float(post.attrs["sampling_seconds"]), m)
        print(f"{name}: {results[name][0]:.1f} s", flush=True)

        pyro.set_rng_seed(args.seed * 1009)
        kernel = NUTS(pyro_logreg, jit_compile=jit, ignore_jit_warnings=True)
        run = MCMC(kernel, num_samples=args.samples, warmup_steps=args.warmup,
                   disable_progbar=True)
        t0 = time.perf_counter()
        run.run(x, y.float())
        name = "pyro-nuts-jit" if jit else "pyro-nuts"
        s = run.get_samples()
        results[name] = (time.perf_counter() - t0, draws_matrix({"w": s["w"], "b": s["b"]}))
        print(f"{name}: {results[name][0]:.1f} s", flush=True)

    thin = max(1, args.psgld_steps // args.samples)
    lrs = [float(v) for v in args.psgld_lr.split(",")]
    for lr in lrs:
        model = runner.build_model(cfg, ds)
        post = psgld(model, ds, num_samples=args.psgld_steps // thin,
                     burn_in=args.psgld_burn_in, thin=thin, num_chains=1, batch_size=64, lr=lr,
                     init_jitter=0.0, seed=args.seed, progress=False)
        m = draws_matrix({k: post.posterior[k].values[0] for k in ("fc1.weight", "fc1.bias")})
        name = f"psgld lr={lr:g}"
        results[name] = (float(post.attrs["sampling_seconds"]), m)
        print(f"{name}: {results[name][0]:.1f} s", flush=True)

    ref = results["nuts"][1]  # eager and JIT give the same draws (same seed, same arithmetic)
    ref_mean, ref_sd = ref.mean(0), ref.std(0)
    rows = []
    for name, (secs, mat) in results.items():
        e = ess(mat)
        z = np.abs(mat.mean(0) - ref_mean) / ref_sd
        sd_ratio = mat.std(0) / ref_sd
        rows.append([name, f"{secs:.1f}", f"{e.mean():.0f}", f"{e.min():.0f}",
                     f"{e.mean() / secs:.1f}", f"{e.min() / secs:.2f}",
                     f"{z.max():.2f}", f"{np.median(sd_ratio):.2f}"])
    header = ["sampler", "seconds", "mean ESS", "min ESS", "mean ESS/s", "min ESS/s",
              "max abs(mean - NUTS) / NUTS sd", "median sd / NUTS sd"]
    table = markdown_table(rows, header)
    rate = {r[0]: float(r[4]) for r in rows}
    secs = {name: v[0] for name, v in results.items()}
    summary = (
        f"JIT speed-up of our NUTS: {rate['nuts-jit'] / rate['nuts']:.2f}x in mean ESS/s. "
        f"Ours over plain Pyro on the same model, mean ESS/s: "
        f"{rate['nuts'] / rate['pyro-nuts']:.2f} (eager), "
        f"{rate['nuts-jit'] / rate['pyro-nuts-jit']:.2f} (JIT); wall time: "
        f"{secs['nuts'] / secs['pyro-nuts']:.2f} (eager), "
        f"{secs['nuts-jit'] / secs['pyro-nuts-jit']:.2f} (JIT) (the ESS differ because the "
        "two models' chains take different random paths from different starting points).")
    print(table)
    print(summary)
    text = "\n".join([
        "## MCMC: effective samples per second (logistic regression, digits 0 vs 1)",
        "",
        f"{provenance()}. Command: `python benchmarks/mcmc.py --warmup {args.warmup} "
        f"--samples {args.samples}` (one chain each, one thread; NUTS seconds include "
        f"{args.warmup} warm-up iterations, pSGLD's {args.psgld_burn_in} burn-in steps, then "
        f"{args.psgld_steps} steps thinned by {thin}, batch 64). The last two columns "
        "compare each sampler's means and sds with the bayesstruct NUTS draws (eager and JIT "
        "give identical draws, so their rows read 0 and 1).",
        "",
        table,
        "",
        summary + " The issue's reference: plain Pyro NUTS about 14 ESS/s without JIT, 32 "
        "with.",
    ])
    out.section("mcmc", text)


if __name__ == "__main__":
    main()
