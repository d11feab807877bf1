"""NUTS effective samples per second: bayesstruct's batched NUTS against NumPyro, same model.

The model is the zoo's ``logreg-digits01`` (scikit-learn digits 0 vs 1, 259 training examples,
64 standardised pixels, Bernoulli likelihood, N(0, 1) prior on the 64 weights and the bias: 65
parameters), loaded as ``benchmarks/mcmc.py`` loads it. Rows:

  numpyro         -- NumPyro's NUTS on the same data and prior (``chain_method="vectorized"``
                     for 8 chains), run twice on one ``MCMC`` object: the first run pays the
                     JIT compilation, the second ("warm") is the one compared;
  batched         -- ``bayesstruct.inference.batched_nuts`` on the zoo's Pyro model (the
                     potential derived from it, traced and compiled by TorchInductor), all
                     chains in lockstep in this process; compile time reported apart.

Both: 500 warm-up + 1000 draws per chain, target acceptance 0.8, max tree depth 10, Stan's
windowed diagonal mass-matrix adaptation. ESS is ArviZ's bulk ESS of each parameter over all
chains; seconds are warm-up plus draws (compilation excluded: NumPyro's warm run, our
``run_seconds``). ``ours / numpyro`` is the ratio of mean ESS/s at the same chain count.
``--repeats N`` runs both samplers N times per chain count (seeds ``seed``, ``seed + 1``, ...;
our kernels compiled once): the table gives the medians over the runs, and the ratio is the
median of the N paired ratios, which are listed (a single run's ratio moves with the
machine's load and with the seeds' ESS).
``max |dmean| / sd``: the largest difference of the two posterior means over the 65
parameters, in NumPyro posterior sds. ``--tricks`` adds microseconds per leapfrog step of our
sampler with the potential evaluated eagerly by Pyro, as a traced FX graph, and compiled.

    python benchmarks/nuts_peers.py [--chains 1,8] [--threads 1] [--repeats 1] [--tricks]
                                    [--out DIR] [--write-results]

NumPyro and JAX are optional: without them the NumPyro rows are skipped (said so).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import Output, add_output_args, markdown_table, provenance  # noqa: E402

from bayesstruct import config, runner  # noqa: E402
from bayesstruct.inference import batched_nuts as bn  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az


def ess(draws: np.ndarray) -> np.ndarray:
    """Bulk ESS of each column of ``(chains, draws, 65)``."""
    return az.ess({"p": draws}, method="bulk")["p"].values


def run_numpyro(x: np.ndarray, y: np.ndarray, chains: int, args: argparse.Namespace,
                seed: int | None = None) -> dict | None:
    """Cold and warm NumPyro runs; ``None`` when numpyro/jax cannot be imported."""
    try:
        import jax
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as nd
        from numpyro.infer import MCMC, NUTS
    except ImportError as e:
        print(f"numpyro skipped: {e}", flush=True)
        return None

    def model(x, y):
        w = numpyro.sample("w", nd.Normal(jnp.zeros(x.shape[1]), 1.0).to_event(1))
        b = numpyro.sample("b", nd.Normal(0.0, 1.0))
        numpyro.sample("obs", nd.Bernoulli(logits=x @ w + b), obs=y)

    xj, yj = jnp.asarray(x), jnp.asarray(y)
    run = MCMC(NUTS(model, target_accept_prob=0.8, max_tree_depth=10),
               num_warmup=args.warmup, num_samples=args.samples, num_chains=chains,
               chain_method="vectorized", progress_bar=False)
    seconds = []
    for rep in range(2):
        t0 = time.perf_counter()
        run.run(jax.random.PRNGKey((args.seed if seed is None else seed) + 1000 * rep), xj, yj)
        s = run.get_samples(group_by_chain=True)
        jax.block_until_ready(s)
        seconds.append(time.perf_counter() - t0)
    draws = np.concatenate([np.asarray(s["w"]), np.asarray(s["b"])[..., None]], -1)
    return {"draws": draws, "seconds": seconds[1], "compile": seconds[0] - seconds[1],
            "cold": seconds[0]}


def run_ours(mp: bn.ModelPotential, chains: int, args: argparse.Namespace,
             compile: str = "inductor", warmup: int | None = None,
             samples: int | None = None, seed: int | None = None,
             kernels: dict | None = None) -> dict:
    """One run of our batched NUTS; ``kernels`` (a dict keyed by chain count) keeps the
    compiled kernels for the next run with as many chains."""
    seed = args.seed if seed is None else seed
    init = bn.initial_points(mp, chains, seed=seed)
    res = bn.batched_nuts(mp, init, num_warmup=args.warmup if warmup is None else warmup,
                          num_samples=args.samples if samples is None else samples,
                          target_accept=0.8, max_tree_depth=10, compile=compile,
                          seed=seed, kernels=(kernels or {}).get(chains))
    if kernels is not None:
        kernels[chains] = res.kernels
    steps = int(res.stats["n_steps"].max(0).values.sum()
                + res.warmup_stats["n_steps"].max(0).values.sum())
    return {"draws": res.draws.double().numpy(), "seconds": res.run_seconds,
            "compile": res.compile_seconds, "steps": steps, "result": res}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--chains", default="1,8", help="comma-separated chain counts, a row each")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (and XLA's)")
    ap.add_argument("--tricks", action="store_true",
                    help="also time a leapfrog step with the potential eager / FX / compiled")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1,
                    help="paired runs per chain count (seeds seed, seed+1, ...): the table "
                         "gives medians and the ratio is the median of the paired ratios")
    add_output_args(ap)
    args = ap.parse_args()
    out = Output(args)
    torch.set_num_threads(args.threads)
    if "jax" not in sys.modules:  # before jax is imported: XLA's CPU threads
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen="
                              + ("false" if args.threads == 1 else "true"))
    chain_counts = [int(v) for v in args.chains.split(",")]

    cfg = config.resolve("logreg-digits01", "nuts")
    ds = runner.load_data(cfg, torch.device("cpu"))
    x = ds.train.x.flatten(1).numpy()
    y = ds.train.y.float().numpy()
    model = runner.build_model(cfg, ds)
    model.num_data, model.kl_weight = len(ds.train), 1.0
    mp = bn.model_potential(model, ds.train.x, ds.train.y)
    threads = (f"torch threads {torch.get_num_threads()}, OMP_NUM_THREADS="
               f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, XLA_FLAGS="
               f"{os.environ.get('XLA_FLAGS', 'unset')}")
    print(threads, flush=True)

    rows, agree, ratios = [], [], {}
    header = ["sampler", "chains", "mean ESS", "min ESS", "seconds", "compile s",
              "mean ESS/s", "min ESS/s", "ours / numpyro"]
    kernels: dict = {}
    for chains in chain_counts:
        runs = []  # (theirs, ours) per repeat
        for rep in range(max(1, args.repeats)):
            runs.append((run_numpyro(x, y, chains, args, seed=args.seed + rep),
                         run_ours(mp, chains, args, seed=args.seed + rep, kernels=kernels)))
        rates = {name: [] for name in ("numpyro", "batched")}
        for rep, (theirs, ours) in enumerate(runs):
            for name, r in (("numpyro", theirs), ("batched", ours)):
                if r is not None:
                    r["ess"] = ess(r["draws"])
                    rates[name].append(r["ess"].mean() / r["seconds"])
            if len(runs) > 1:
                print(f"  {chains} chain(s), run {rep + 1}: mean ESS/s "
                      + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items() if v), flush=True)
        paired = [a / b for a, b in zip(rates["batched"], rates["numpyro"], strict=False)]
        if paired:
            ratios[chains] = (float(np.median(paired)), paired)
        for name, k in (("numpyro", 0), ("batched", 1)):
            rs = [r[k] for r in runs if r[k] is not None]
            if not rs:
                continue
            mean_ess = np.median([r["ess"].mean() for r in rs])
            min_ess = np.median([r["ess"].min() for r in rs])
            secs = np.median([r["seconds"] for r in rs])
            min_rate = np.median([r["ess"].min() / r["seconds"] for r in rs])
            rows.append([name, str(chains), f"{mean_ess:.0f}", f"{min_ess:.0f}", f"{secs:.2f}",
                         f"{rs[0]['compile']:.1f}", f"{float(np.median(rates[name])):.0f}",
                         f"{min_rate:.0f}",
                         f"{ratios[chains][0]:.2f}" if name == "batched" and paired else ""])
            print(" | ".join(rows[-1]), flush=True)
        theirs, ours = runs[0]
        res = ours["result"]
        print(f"  batched, {chains} chains: step sizes "
              f"{np.round(res.step_size.numpy(), 3).tolist()}, mean acceptance "
              f"{float(res.stats['acceptance_rate'].mean()):.3f}, mean leapfrog steps per "
              f"draw {float(res.stats['n_steps'].float().mean()):.1f}, divergences "
              f"{int(res.stats['diverging'].sum())}, "
              f"{ours['seconds'] / ours['steps'] * 1e6:.0f} us per leapfrog step (all chains)",
              flush=True)
        if theirs is not None:
            a, b = ours["draws"], theirs["draws"]
            dz = np.abs(a.mean((0, 1)) - b.mean((0, 1))) / b.std((0, 1))
            agree.append(f"{chains} chain(s): max |mean(ours) - mean(numpyro)| / sd(numpyro) "
                         f"= {dz.max():.3f} over the 65 parameters (median {np.median(dz):.3f});"
                         f" sd ratio median {np.median(a.std((0, 1)) / b.std((0, 1))):.3f}")
            print(agree[-1], flush=True)

    tricks = []
    if args.tricks:
        short = dict(warmup=50, samples=50)
        for mode in ("eager", "fx", "inductor"):
            r = run_ours(mp, 1, args, compile=mode, **short)
            tricks.append([mode, f"{r['compile']:.1f}", f"{r['seconds'] / r['steps'] * 1e6:.0f}",
                           str(r["steps"])])
            print("trick " + " | ".join(tricks[-1]), flush=True)

    table = markdown_table(rows, header)
    print()
    print(table)
    summary = ("; ".join(
        f"{c} chain(s): ours / numpyro = {v:.2f} in mean ESS/s"
        + (f" (median of {len(p)} paired runs: {', '.join(f'{x:.2f}' for x in p)})"
           if len(p) > 1 else "")
        for c, (v, p) in ratios.items()) or "NumPyro skipped")
    print(summary)
    for line in agree:
        print(line)
    lines = [
        "## NUTS against NumPyro (logistic regression, digits 0 vs 1)",
        "",
        f"{provenance()}. Command: `python benchmarks/nuts_peers.py --warmup {args.warmup} "
        f"--samples {args.samples} --chains {args.chains} --threads {args.threads}"
        + (f" --repeats {args.repeats}" if args.repeats > 1 else "")
        + (f" --seed {args.seed}" if args.seed else "") + "` "
        f"({threads}). Seconds: warm-up plus draws, compilation apart (NumPyro: its second "
        "run on the same `MCMC` object; ours: tracing and TorchInductor compilation).",
        "",
        table,
        "",
        summary + ".",
        "",
        *[f"- {line}" for line in agree],
    ]
    if tricks:
        lines += ["", "Our leapfrog step, 1 chain, 50 + 50 iterations:", "",
                  markdown_table(tricks, ["potential", "trace/compile s", "us per leapfrog",
                                          "leapfrog steps"])]
        print(markdown_table(tricks, ["potential", "trace/compile s", "us per leapfrog",
                                      "leapfrog steps"]))
    out.section("nuts-peers", "\n".join(lines))


if __name__ == "__main__":
    main()
