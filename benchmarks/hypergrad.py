"""Hypergradients: peak memory and time against the number of inner steps T.

Four hypergradient methods of :mod:`bayesstruct.inference.hypergrad` on one bilevel problem,
for T in ``--steps`` (default 100, 1000, 10000):

  unrolled      -- autograd through the whole unrolled loop (memory O(T) states and graphs);
  reversible    -- exact fixed-point reversal, only an information buffer is kept
                   (O(T) bits, about 0.15 bits per weight and step for momentum 0.9);
  checkpointed  -- tree (binomial) checkpointing: O(log T) states, O(T log T) forward steps;
  implicit      -- T inner steps without a graph, then the implicit function theorem at w_T
                   (memory O(1) in T; exact only at a converged inner problem, so it is not
                   expected to agree with the others). The linear solve (``--implicit-solver``,
                   default ``auto``): conjugate gradients, tol 1e-6, at most 200 iterations;
                   where CG meets non-positive curvature (w_T of a network is rarely a strict
                   minimum) the Neumann series with alpha = the inner lr, as many iterations.

The problem: an MLP 64-32-32-10 (ReLU, ``bayesstruct.nets.mlp``, 3,466 parameters, float64)
on scikit-learn's ``digits`` (``bayesstruct.data.load("digits", seed=0)``, 8x8 images
flattened to 64 standardised features). Inner loss of step t: cross-entropy on minibatch t
(64 examples; a fixed permutation per epoch seeded by the epoch's index, so deterministic in
t, last incomplete batch dropped) plus ``1/(2N) sum_l exp(lambda_l) |W_l|^2``, one log L2
coefficient per weight matrix (3; biases unpenalised), started at weight decay
``exp(lambda)/N = 1e-3``. Inner optimiser: SGD with momentum (PyTorch's convention),
lr 0.05, momentum 0.9. Outer loss: cross-entropy on the validation split.

Each (method, T) runs in a fresh subprocess (``--one METHOD T``) with one thread, which builds
the problem, runs a warm-up hypergradient with T = 2, reads the baseline peak resident set
size (``getrusage(RUSAGE_SELF).ru_maxrss``), times one hypergradient with T steps and reads
the peak again: "memory" is the growth of the peak RSS over the baseline (imports, data and
the warm-up do not count), the absolute peak is reported too. Also reported: the reversible
run's information buffer at the end of its forward run, where it is largest (bytes of int64
words, and bits of information held), the checkpointed run's most states held at once and
forward steps computed, and the implicit run's solver iterations. A child that runs past
``--timeout`` or fails (e.g. killed for memory) becomes a "timed out" / "failed" row. A
further child (``--check T``, T the smallest of ``--steps``) computes all hypergradients at
that T and prints each method's largest difference to ``unrolled`` relative to
``max |unrolled|`` (and central finite differences as an independent check).

Results go to the ``hypergrad-memory`` section of ``DIR/RESULTS.md`` and the figure
``DIR/figures/hypergrad-memory.png`` (memory and seconds against T, log-log), ``DIR`` given by
``--out`` (default ``runs/benchmarks/``); ``--write-results`` writes them into the tracked
``benchmarks/RESULTS.md`` and ``benchmarks/figures/`` instead.

    python benchmarks/hypergrad.py [--steps 100 1000 10000]
        [--methods unrolled reversible checkpointed implicit] [--timeout 1800]
        [--implicit-solver auto|cg|neumann] [--out DIR] [--write-results]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import Output, add_output_args, markdown_table, provenance  # noqa: E402

from bayesstruct.data import load  # noqa: E402
from bayesstruct.inference import hypergrad as hg  # noqa: E402
from bayesstruct.nets import mlp  # noqa: E402

METHODS = ("unrolled", "reversible", "checkpointed", "implicit")
WIDTHS = [64, 32, 32, 10]
BATCH = 64
LR, MOMENTUM = 0.05, 0.9
INIT_DECAY = 1e-3
SEED = 0
SOLVE_TOL, SOLVE_MAX_ITER = 1e-6, 200
SOLVERS = ("auto", "cg", "neumann")


def build_problem(seed: int = SEED) -> tuple[hg.HyperProblem, torch.Tensor]:
    """The bilevel problem of the module docstring and the starting ``lambda``."""
    torch.manual_seed(seed)
    ds = load("digits", seed=seed)
    xt = ds.train.x.reshape(len(ds.train), -1).to(torch.float64)
    yt = ds.train.y
    xv = ds.val.x.reshape(len(ds.val), -1).to(torch.float64)
    yv = ds.val.y
    net = mlp(WIDTHS).double()
    n = xt.shape[0]
    # which lambda each weight's penalty uses (0 for biases, masked out)
    layer, mask, k = [], [], 0
    for name, p in net.named_parameters():
        is_weight = name.endswith("weight")
        layer.append(torch.full((p.numel(),), k if is_weight else 0, dtype=torch.long))
        mask.append(torch.full((p.numel(),), float(is_weight), dtype=torch.float64))
        k += is_weight
    layer, mask = torch.cat(layer), torch.cat(mask)
    batch = hg.epoch_batches(n, BATCH, seed, drop_last=True)

    def logits(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return functional_call(net, hg.unflatten(net, w), (x,))

    def penalty(w: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        return 0.5 * (torch.exp(lam)[layer] * mask * w * w).sum() / n

    def batch_loss(w, lam, t):
        idx = batch(t)
        return F.cross_entropy(logits(w, xt[idx]), yt[idx]) + penalty(w, lam)

    def train_loss(w, lam):
        return F.cross_entropy(logits(w, xt), yt) + penalty(w, lam)

    def val_loss(w, lam):
        return F.cross_entropy(logits(w, xv), yv)

    problem = hg.HyperProblem(train_loss, val_loss, hg.flat_params(net),
                              hg.InnerOptimizer("momentum", lr=LR, momentum=MOMENTUM),
                              batch_loss=batch_loss)
    lam = torch.full((k,), math.log(INIT_DECAY * n), dtype=torch.float64)
    return problem, lam


class _AtForwardEnd(list):
    """The ``trajectory`` list of the reversible method, reading the information buffer's
    size when the trajectory is appended: right after the forward run, where the buffer is
    largest (the reverse sweep then empties it again)."""

    nbytes: int = 0
    bits: float = 0.0

    def append(self, traj) -> None:
        self.nbytes, self.bits = int(traj.memory_bytes()), float(traj.memory_bits())
        super().append(traj)


def run_method(problem: hg.HyperProblem, lam: torch.Tensor, method: str, steps: int,
               solver: str = "auto") -> tuple[torch.Tensor, dict]:
    """One hypergradient and what the method reports about itself; ``solver`` is the
    implicit method's (``auto``: CG, and the Neumann series where CG meets non-positive
    curvature)."""
    extra: dict = {}
    if method == "reversible":
        traj = _AtForwardEnd()
        out = hg.hypergradient(problem, lam, method=method, steps=steps, trajectory=traj)
        extra = {"buffer_bytes": traj.nbytes, "buffer_bits": traj.bits}
    elif method == "checkpointed":
        stats = hg.ReverseStats()
        out = hg.hypergradient(problem, lam, method=method, steps=steps, stats=stats)
        extra = {"max_states": stats.max_states, "forward_steps": stats.forward_steps}
    elif method == "implicit":
        w_star = hg.run_inner(problem, lam, steps)["w"]
        info = hg.SolveInfo()
        extra = {"solver": solver}
        if solver in ("auto", "cg"):
            try:
                out = hg.hypergradient(problem, lam, method=method, steps=steps, w_star=w_star,
                                       tol=SOLVE_TOL, max_iter=SOLVE_MAX_ITER, info=info)
                extra.update(solver="cg", cg_iterations=info.iterations,
                             converged=info.converged)
                return out, extra
            except ValueError:  # non-positive curvature: w_T is not a strict minimum
                if solver == "cg":
                    raise
                extra["cg_failed_after"] = info.iterations
        info = hg.SolveInfo()
        out = hg.hypergradient(problem, lam, method=method, steps=steps, w_star=w_star,
                               solver="neumann", neumann_lr=LR, tol=SOLVE_TOL,
                               max_iter=SOLVE_MAX_ITER, info=info)
        extra.update(solver="neumann", neumann_iterations=info.iterations,
                     converged=info.converged)
    else:
        out = hg.hypergradient(problem, lam, method=method, steps=steps)
    return out, extra


def maxrss_kib() -> int:
    """Peak resident set size of this process so far (KiB on Linux)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def child_one(method: str, steps: int, solver: str) -> dict:
    torch.set_num_threads(1)
    problem, lam = build_problem()
    run_method(problem, lam, method, 2, solver)  # warm-up: autograd, allocator, code paths
    gc.collect()
    base = maxrss_kib()
    t0 = time.perf_counter()
    grad, extra = run_method(problem, lam, method, steps, solver)
    seconds = time.perf_counter() - t0
    peak = maxrss_kib()
    return {"method": method, "steps": steps, "seconds": seconds, "baseline_kib": base,
            "peak_kib": peak, "growth_kib": max(0, peak - base),
            "grad": [float(x) for x in grad], **extra}


def child_check(steps: int, solver: str) -> dict:
    torch.set_num_threads(1)
    problem, lam = build_problem()
    grads = {m: run_method(problem, lam, m, steps, solver)[0] for m in METHODS}
    grads["finite_diff"] = hg.hypergradient(problem, lam, method="finite_diff", steps=steps)
    ref = grads["unrolled"]
    scale = float(ref.abs().max()) or 1.0
    return {"steps": steps, "unrolled": [float(x) for x in ref],
            "rel_diff": {m: float((g - ref).abs().max()) / scale for m, g in grads.items()
                         if m != "unrolled"}}


def spawn(args: list[str], timeout: float) -> tuple[dict | None, str]:
    """Run this script in a fresh interpreter; ``(parsed JSON, status)``."""
    try:
        res = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args, "--json"],
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    if res.returncode != 0:
        tail = (res.stderr or "").strip().splitlines()[-1:] or [f"exit {res.returncode}"]
        why = "killed (out of memory?)" if res.returncode in (-9, 137) else tail[0]
        print(f"  child {' '.join(args)} failed: {why}", file=sys.stderr)
        return None, "failed"
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return None, "failed"
    return json.loads(lines[-1]), "ok"


def mib(kib: float) -> str:
    return f"{kib / 1024:.2f}"


def describe_extra(r: dict) -> str:
    if "buffer_bytes" in r:
        return (f"buffer {r['buffer_bytes'] / 1024:.1f} KiB "
                f"({r['buffer_bits'] / 8 / 1024:.1f} KiB of information)")
    if "max_states" in r:
        return f"max states {r['max_states']}, forward steps {r['forward_steps']}"
    if r.get("solver") == "cg":
        return f"CG, {r['cg_iterations']} iterations{'' if r['converged'] else ' (no conv.)'}"
    if r.get("solver") == "neumann":
        why = (f"CG met non-positive curvature at iteration {r['cg_failed_after'] + 1}; "
               if "cg_failed_after" in r else "")
        return (f"{why}Neumann, {r['neumann_iterations']} iterations"
                f"{'' if r['converged'] else ' (no conv.)'}")
    return ""


def growth_sentence(results: dict[tuple[str, int], dict], methods: list[str],
                    steps: list[int]) -> str:
    """Growth of the peak memory (over baseline) from the smallest to the largest T, per
    method, from the measured numbers."""
    lo, hi = min(steps), max(steps)
    parts = []
    for m in methods:
        a, b = results.get((m, lo)), results.get((m, hi))
        if a is None or b is None:
            parts.append(f"{m}: not measured at both T")
            continue
        ma, mb = a["growth_kib"] / 1024, b["growth_kib"] / 1024
        if ma >= 0.5:
            parts.append(f"{m} x{mb / ma:.1f} ({ma:.1f} -> {mb:.1f} MiB)")
        else:
            parts.append(f"{m} {ma:.2f} -> {mb:.2f} MiB (below resolution at T={lo})")
        if "buffer_bytes" in a and a["buffer_bytes"] > 0:
            parts[-1] += (f"; information buffer x{b['buffer_bytes'] / a['buffer_bytes']:.1f} "
                          f"({a['buffer_bytes'] / 1024:.1f} -> "
                          f"{b['buffer_bytes'] / 1024:.1f} KiB)")
    return (f"Peak memory over the baseline from T={lo} to T={hi} (T x{hi / lo:g}): "
            + ", ".join(parts) + ".")


def plot(results: dict[tuple[str, int], dict], methods: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayesstruct.plots import save_figure

    floor = 0.01
    fig, (ax_m, ax_t) = plt.subplots(1, 2, figsize=(10, 4))
    for i, m in enumerate(methods):
        rows = sorted((t, r) for (mm, t), r in results.items() if mm == m)
        if not rows:
            continue
        ts = [t for t, _ in rows]
        ax_m.loglog(ts, [max(floor, r["growth_kib"] / 1024) for _, r in rows], "o-",
                    color=f"C{i}", label=m)
        ax_t.loglog(ts, [r["seconds"] for _, r in rows], "o-", color=f"C{i}", label=m)
        if m == "reversible":
            ax_m.loglog(ts, [max(floor, r["buffer_bytes"] / 2**20) for _, r in rows], "--",
                        color=f"C{i}", label="reversible: info buffer")
    ax_m.set(xlabel="inner steps T", ylabel=f"peak RSS over baseline (MiB, >= {floor})")
    ax_t.set(xlabel="inner steps T", ylabel="seconds")
    for ax in (ax_m, ax_t):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    save_figure(fig, path, "Hypergradients of an MLP on digits: memory and time against T")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per child")
    ap.add_argument("--implicit-solver", default="auto", choices=SOLVERS,
                    help="auto: CG, the Neumann series where CG meets non-positive curvature")
    add_output_args(ap)
    ap.add_argument("--one", nargs=2, metavar=("METHOD", "T"), help=argparse.SUPPRESS)
    ap.add_argument("--check", type=int, metavar="T", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        method, steps = args.one[0], int(args.one[1])
        if method not in METHODS:
            ap.error(f"--one: method {method!r}; allowed: {', '.join(METHODS)}")
        print(json.dumps(child_one(method, steps, args.implicit_solver)))
        return
    if args.check is not None:
        print(json.dumps(child_check(args.check, args.implicit_solver)))
        return
    out = Output(args)

    steps = sorted(set(args.steps))
    methods = list(dict.fromkeys(args.methods))
    print(f"MLP {'-'.join(map(str, WIDTHS))} on digits, momentum SGD lr {LR} mu {MOMENTUM}, "
          f"batch {BATCH}; T in {steps}; one fresh process per measurement")

    solver = ["--implicit-solver", args.implicit_solver]
    check, status = spawn(["--check", str(steps[0]), *solver], args.timeout)
    if check is None:
        check_text = f"The agreement check at T={steps[0]} {status}."
    else:
        diffs = ", ".join(f"{m} {d:.1e}" for m, d in check["rel_diff"].items())
        check_text = (f"Agreement at T={steps[0]} (max |g - g_unrolled| / max |g_unrolled|, "
                      f"g_unrolled = {[float(f'{x:.4g}') for x in check['unrolled']]}): "
                      f"{diffs}; implicit differentiates at w_T as if it were an inner "
                      "optimum, so it is not expected to agree.")
    print(check_text)

    header = ["method", "T", "seconds", "peak memory over baseline (MiB)",
              "absolute peak RSS (MiB)", "extra"]
    print(f"{'method':<13} {'T':>6} {'seconds':>9} {'over base MiB':>14} {'peak MiB':>9}  "
          "extra", flush=True)
    results: dict[tuple[str, int], dict] = {}
    rows: list[list[object]] = []
    for t in steps:
        for m in methods:
            r, status = spawn(["--one", m, str(t), *solver], args.timeout)
            if r is None:
                rows.append([m, t, status, "-", "-", ""])
                print(f"{m:<13} {t:>6} {status:>9}", flush=True)
                continue
            results[(m, t)] = r
            rows.append([m, t, f"{r['seconds']:.2f}", mib(r["growth_kib"]), mib(r["peak_kib"]),
                         describe_extra(r)])
            print(f"{m:<13} {t:>6} {r['seconds']:>9.2f} {mib(r['growth_kib']):>14} "
                  f"{mib(r['peak_kib']):>9}  {describe_extra(r)}", flush=True)
    growth = growth_sentence(results, methods, steps)
    print(growth)
    table = markdown_table(rows, header)
    figure = ""
    if results:
        plot(results, methods, out.figure("hypergrad-memory.png"))
        figure = " Figure: `figures/hypergrad-memory.png`."
    cmd = ("python benchmarks/hypergrad.py " + " ".join(sys.argv[1:])).strip()
    out.section("hypergrad-memory", "\n".join([
        "## Hypergradients: memory and time against T (issue 8)", "",
        f"{provenance()}; command `{cmd}`; one thread, one fresh process per row. Problem: "
        f"MLP {'-'.join(map(str, WIDTHS))} (ReLU, float64) on scikit-learn digits; inner loss "
        f"= cross-entropy on minibatch t ({BATCH} examples, a seeded permutation per epoch) + "
        "per-weight-matrix L2 with coefficients exp(lambda_l) (3 hyperparameters, started at "
        f"weight decay {INIT_DECAY:g}); inner optimiser SGD with momentum, lr {LR}, momentum "
        f"{MOMENTUM}, T steps; outer loss = validation cross-entropy. Memory: growth of the "
        "process's peak resident set size (`ru_maxrss`) during the hypergradient call over "
        "the peak after building the problem and a T=2 warm-up (so imports and data do not "
        "count; resolution a few pages, allocator noise about 1 MiB); the absolute peak "
        "beside it. Extra: the reversible run's information buffer after the forward run "
        "(int64 words; the bits of information it holds), the checkpointed run's most states "
        "held at once and forward steps, the implicit run's linear solve: conjugate "
        "gradients, and where CG meets non-positive curvature (w_T of a network is no strict "
        "minimum) the Neumann series with alpha = lr (implicit solver "
        f"`{args.implicit_solver}`; tol {SOLVE_TOL:g}, at most {SOLVE_MAX_ITER} iterations, on "
        f"the full training set). {check_text}{figure}", "",
        table, "", growth]))


if __name__ == "__main__":
    main()
