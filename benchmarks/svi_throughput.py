"""SVI epoch time against a plain-PyTorch epoch of the same network, measured side by side.

Three ways to train LeNet-300-100 on Fashion-MNIST (54k training examples, one pass = one
epoch), timed in this one process with the epochs interleaved so machine load hits all three
alike:

  plain  -- torch.nn LeNet-300-100, cross-entropy, Adam (the floor);
  ours   -- the real engine: ``bayesstruct.svi`` on BayesianNet(Gaussian prior) with the
            MeanField guide (local reparameterisation + closed-form KL); the epoch time is the
            engine's own per-epoch training time (``record["seconds"]``, no validation pass);
  naive  -- the textbook Pyro way: PyroModule with PyroSample N(0, 1) priors on every
            parameter, AutoNormal guide, Trace_ELBO, pyro.optim.Adam.

plain uses the same Adam as the engine (``make_adam``: the fused kernel), so the ratio measures
the inference, not the optimiser. Prints the median epoch time of each and the ratios
ours/plain and naive/plain (median over rounds of the paired per-round ratio); the first epoch
of each is a warm-up and is not counted.

``--profile STEPS`` also times STEPS single steps of plain and ours, split into forward,
backward and optimiser step (median milliseconds per step), the KL term alone as the
generic (unfused) path computes it (``MeanField.kl``, forward and backward; the fused path
computes each Linear layer's KL inside its node instead), ours on the generic autograd graph
(``MeanField(fuse=False)``, without the fused Linear node of ``bayesstruct.guides.fused``),
and a *floor*: the same step
written by hand as one autograd node for the whole network over flat parameter buffers (one
``exp`` and three reductions for every layer's KL, the gradients written in place; no library
code), checked first against the engine's loss and gradients on one minibatch with the same
noise. The floor is what an exact float32 step of this net costs with PyTorch's own
operations, so its ratio to plain is about as low as the engine can go. ``--compile`` also times
``torch.compile`` of our loss: the first compiled step (which compiles) and the median step,
compiled against eager.

Everything printed is also written as the section ``svi-throughput:b<batch size>`` of
``<out>/RESULTS.md`` (``--out DIR``; ``--write-results`` updates ``benchmarks/RESULTS.md``).

    python benchmarks/svi_throughput.py [--rounds 3] [--batch-size 128] [--device cpu]
        [--profile 200] [--compile] [--out DIR | --write-results]
"""

from __future__ import annotations

import argparse
import math
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroModule, PyroSample

from bayesstruct import data, guides, nets, priors
from bayesstruct.guides.base import site_key
from bayesstruct.inference import svi
from bayesstruct.models import BayesianNet
from bayesstruct.training import Minibatches, make_adam

sys.path.insert(0, str(Path(__file__).parent))
from _results import Output, add_output_args, provenance  # noqa: E402


class NaiveLeNet(PyroModule):
    def __init__(self, n_in: int, n_out: int, num_data: int) -> None:
        super().__init__()
        widths = [n_in, 300, 100, n_out]
        self.layers = PyroModule[torch.nn.ModuleList](
            [PyroModule[torch.nn.Linear](a, b)
             for a, b in zip(widths[:-1], widths[1:], strict=True)])
        for layer in self.layers:
            layer.weight = PyroSample(
                dist.Normal(0.0, 1.0).expand(layer.weight.shape).to_event(2))
            layer.bias = PyroSample(dist.Normal(0.0, 1.0).expand(layer.bias.shape).to_event(1))
        self.num_data = num_data

    def forward(self, x, y=None):
        h = x.flatten(1)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = F.relu(h)
        with pyro.plate("data", self.num_data, subsample=torch.arange(x.shape[0])):
            pyro.sample("obs", dist.Categorical(logits=h), obs=y)
        return h


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _ms(times: list[float]) -> str:
    return f"{1e3 * statistics.median(times):.2f}"


def profile_steps(plain, plain_opt, guide, guide_opt, batches, steps, device,
                  unfused=None, floor=None) -> list[str]:
    """Median milliseconds per step of plain and ours, split into forward / backward /
    optimiser step, of our KL term alone (forward / backward), and of ours with the generic
    autograd graph instead of the fused Linear node (``unfused``: a ``(guide, optimiser)``
    pair with ``fuse=False``) and of the hand-written floor (``floor``: a ``(loss,
    optimiser)`` pair from :func:`floor_step`); steps interleaved."""
    split = {k: ([], [], []) for k in ("plain", "ours", "kl", "unfused", "floor")}

    def one(name, forward, args, opt):
        _sync(device)
        t0 = time.perf_counter()
        loss = forward(*args)
        _sync(device)
        t1 = time.perf_counter()
        loss.backward()
        _sync(device)
        t2 = time.perf_counter()
        if opt is not None:
            opt.step()
            _sync(device)
        t3 = time.perf_counter()
        for i, t in enumerate((t1 - t0, t2 - t1, t3 - t2)):
            split[name][i].append(t)

    done = 0
    while done < steps + 1:
        for xb, yb in batches.epoch(done):
            plain_opt.zero_grad(set_to_none=True)
            one("plain", lambda x, y: F.cross_entropy(plain(x), y), (xb, yb), plain_opt)
            guide_opt.zero_grad(set_to_none=True)
            one("ours", guide.loss, (xb, yb), guide_opt)
            guide_opt.zero_grad(set_to_none=True)
            one("kl", guide.kl, (), None)
            if unfused is not None:
                unfused[1].zero_grad(set_to_none=True)
                one("unfused", unfused[0].loss, (xb, yb), unfused[1])
            if floor is not None:
                floor[1].zero_grad(set_to_none=True)
                one("floor", floor[0], (xb, yb), floor[1])
            done += 1
            if done == steps + 1:
                break
    split = {k: tuple(v[1:] for v in parts) for k, parts in split.items()}  # 1st: warm-up
    lines = [f"per step, median of {steps} steps (ms): forward / backward / optimiser step"]
    total = {}
    for k, label in (("plain", "plain"), ("ours", "ours"), ("kl", "KL, unfused path"),
                     ("unfused", "ours, unfused"), ("floor", "floor")):
        if not split[k][0]:
            continue
        f, b, o = split[k]
        opt = f" / {_ms(o)}" if k != "kl" else ""
        if k != "kl":
            total[k] = statistics.median([sum(t) for t in zip(f, b, o, strict=True)])
            opt += f"   total {1e3 * total[k]:.2f}, {total[k] / total['plain']:.2f}x plain"
        lines.append(f"  {label:16s} {_ms(f)} / {_ms(b)}{opt}")
    return lines


class _FloorNet(torch.autograd.Function):
    """An MLP's whole step as one autograd node over flat buffers ``M`` (every weight mean,
    layer by layer, then every bias mean) and ``LV`` (their ``log s^2``): the local
    reparameterisation and the closed-form KL against ``N(0, 1/p)`` (one precision for the
    weights, one for the biases) with hand-written gradients, one ``exp`` and three
    reductions per block for the KL, the noise drawn layer by layer as the engine draws it.
    No library code: a reference for how fast an exact step can be."""

    @staticmethod
    def forward(ctx, x, M, LV, layout, precs):
        V = torch.exp(LV)
        h, saved = x.flatten(1), []
        for i, (out, inn, a, b, c) in enumerate(layout):
            h2 = h * h
            sd = torch.addmm(V[b:c], h2, V[a:a + out * inn].view(out, inn).t())
            sd = sd.add_(1e-16).sqrt_()
            eps = torch.randn(h.shape[0], out, dtype=h.dtype, device=h.device)
            z = torch.addmm(M[b:c], h, M[a:a + out * inn].view(out, inn).t()).addcmul_(sd, eps)
            saved.append((h, h2, sd, eps))
            h = z.clamp_min_(0) if i < len(layout) - 1 else z
        nw = layout[0][3]  # the first bias's offset: the weights' block ends there
        kl = 0
        for (lo, hi), p in zip(((0, nw), (nw, M.numel())), precs, strict=True):
            m, v, lv = M[lo:hi], V[lo:hi], LV[lo:hi]
            kl = kl + 0.5 * (p * (v.sum() + torch.dot(m, m)) - lv.sum()
                             - (hi - lo) * (math.log(p) + 1))
        ctx.saved, ctx.layout, ctx.precs = saved, layout, precs
        ctx.save_for_backward(M, V)
        return h, kl

    @staticmethod
    def backward(ctx, g, g_kl):
        M, V = ctx.saved_tensors
        dM, dLV = torch.empty_like(M), torch.empty_like(M)
        for i in reversed(range(len(ctx.layout))):
            out, inn, a, b, c = ctx.layout[i]
            h, h2, sd, eps = ctx.saved[i]
            w = slice(a, a + out * inn)
            hh = torch.mul(g, eps).div_(sd).mul_(0.5)
            torch.mm(g.t(), h, out=dM[w].view(out, inn))
            torch.sum(g, 0, out=dM[b:c])
            torch.mm(hh.t(), h2, out=dLV[w].view(out, inn))
            torch.sum(hh, 0, out=dLV[b:c])
            if i > 0:
                g = torch.addcmul(g @ M[w].view(out, inn), h, hh @ V[w].view(out, inn),
                                  value=2.0).mul_(h > 0)
        nw = ctx.layout[0][3]
        for (lo, hi), p in zip(((0, nw), (nw, M.numel())), ctx.precs, strict=True):
            ck = g_kl * p
            dM[lo:hi].add_(M[lo:hi] * ck)
            dLV[lo:hi].add_(ck, alpha=0.5).mul_(V[lo:hi]).sub_(g_kl, alpha=0.5)
        return None, dM, dLV, None, None


def _floor_layers(guide):
    return [m for m in guide.lrt_net.modules() if hasattr(m, "weight_name")]


def floor_step(guide, num_data: int):
    """``(loss(x, y), [M, LV])``: :class:`_FloorNet` started from ``guide``'s parameters (a
    MeanField guide of a ReLU MLP with Bayesian biases under a Gaussian prior with one
    constant precision for the weights and one for the biases).

    Raises:
        ValueError: the prior gives the weights (or the biases) more than one precision.
    """
    layers = _floor_layers(guide)
    loc, log_var = guide.locs(), guide.log_variances()
    prior, sites = guide.model.prior, {s.name: s for s in guide.model.sites}
    precs = []
    for kind in ("weight_name", "bias_name"):
        cps = [prior.constant_precision(sites[getattr(m, kind)], {}, {}) for m in layers]
        if any(cp is None for cp in cps):
            raise ValueError(f"the floor needs a constant-precision Gaussian KL for every "
                             f"{kind[:-5]}")
        ps = torch.cat([cp[0].reshape(-1) for cp in cps])
        if not bool((ps == ps[0]).all()):
            raise ValueError(f"the floor needs one precision for every {kind[:-5]} (found "
                             f"{float(ps.min()):.4g} to {float(ps.max()):.4g})")
        precs.append(float(ps[0]))
    nw = sum(loc[m.weight_name].numel() for m in layers)
    layout, a, b = [], 0, nw
    for m in layers:
        out, inn = loc[m.weight_name].shape
        layout.append((out, inn, a, b, b + out))
        a, b = a + out * inn, b + out
    order = [m.weight_name for m in layers] + [m.bias_name for m in layers]
    M = torch.nn.Parameter(torch.cat([loc[n].detach().reshape(-1) for n in order]))
    LV = torch.nn.Parameter(torch.cat([log_var[n].detach().reshape(-1) for n in order]))

    def loss(x, y):
        out, kl = _FloorNet.apply(x, M, LV, layout, tuple(precs))
        return F.cross_entropy(out, y, reduction="sum") * (num_data / x.shape[0]) + kl

    return loss, [M, LV]


def check_floor(guide, floor, params, x, y) -> str:
    """The floor's loss and gradients against the engine's on one minibatch with the same
    noise (both seeded alike): the largest relative differences."""
    torch.manual_seed(123)
    ours = guide.loss(x, y)
    trainable = [(n, p) for n, p in guide.named_parameters() if p.requires_grad]
    grads = dict(zip([n for n, _ in trainable],
                     torch.autograd.grad(ours, [p for _, p in trainable]), strict=True))
    torch.manual_seed(123)
    theirs = floor(x, y)
    fg = torch.autograd.grad(theirs, params)
    layers = _floor_layers(guide)
    order = [m.weight_name for m in layers] + [m.bias_name for m in layers]
    rel = 0.0
    for k, g in zip(("loc", "log_var"), fg, strict=True):
        flat = torch.cat([grads[f"{k}.{site_key(n)}"].reshape(-1) for n in order])
        rel = max(rel, float((flat - g).abs().max() / g.abs().max()))
    a, b = float(theirs.detach()), float(ours.detach())
    return (f"floor check on one minibatch, same noise: loss {a:.8g} against ours {b:.8g} "
            f"(relative difference {abs(a - b) / abs(b):.1e}); largest gradient difference "
            f"{rel:.1e} of the largest gradient")


def compile_steps(guide, guide_opt, batches, steps, device) -> list[str]:
    """``torch.compile`` of our loss: the first compiled step (compiling) and the median
    step (forward + backward + optimiser step) compiled against eager, interleaved."""
    compiled = torch.compile(guide.loss)
    it = iter(batches.epoch(0))

    def step(loss_fn, xb, yb):
        _sync(device)
        t0 = time.perf_counter()
        guide_opt.zero_grad(set_to_none=True)
        loss_fn(xb, yb).backward()
        guide_opt.step()
        _sync(device)
        return time.perf_counter() - t0

    xb, yb = next(it)
    first = step(compiled, xb, yb)
    eager, comp = [], []
    seed = 1
    while len(eager) < steps:
        for xb, yb in it:
            eager.append(step(guide.loss, xb, yb))
            comp.append(step(compiled, xb, yb))
            if len(eager) == steps:
                break
        it = iter(batches.epoch(seed))
        seed += 1
    e, c = statistics.median(eager), statistics.median(comp)
    return [f"torch.compile of our loss: first compiled step {first:.1f} s (compiles); "
            f"median step over {steps} steps: eager {1e3 * e:.2f} ms, compiled "
            f"{1e3 * c:.2f} ms (compiled / eager {c / e:.2f}x)"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--profile", type=int, default=0, metavar="STEPS",
                    help="also time STEPS single steps split into forward/backward/optimiser")
    ap.add_argument("--compile", action="store_true",
                    help="also time torch.compile of our loss against eager")
    ap.add_argument("--compile-steps", type=int, default=50)
    add_output_args(ap)
    args = ap.parse_args()
    out = Output(args)
    device = torch.device(args.device)
    ds = data.load(args.dataset, seed=0, device=device)
    x, y = ds.train.x, ds.train.y
    batches = Minibatches(x, y, args.batch_size, seed=0)  # the engine's own minibatches
    n_in, n_out, n = ds.n_features, ds.n_classes, len(ds.train)

    torch.manual_seed(0)
    plain = nets.lenet_300_100(n_in, n_out).to(device)
    plain_opt = make_adam(plain.parameters(), 1e-3)

    model = BayesianNet(nets.lenet_300_100(n_in, n_out), priors.Gaussian(1.0), num_data=n)

    naive_model = NaiveLeNet(n_in, n_out, n).to(device)
    naive_guide = AutoNormal(naive_model)
    naive = SVI(naive_model, naive_guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())

    def plain_epoch(seed):
        for xb, yb in batches.epoch(seed):
            loss = F.cross_entropy(plain(xb), yb)
            plain_opt.zero_grad(set_to_none=True)
            loss.backward()
            plain_opt.step()

    def naive_epoch(seed):
        for xb, yb in batches.epoch(seed):
            naive.step(xb, yb)

    others = {"plain": plain_epoch}
    if not args.skip_naive:
        others["naive"] = naive_epoch
    times: dict[str, list[float]] = {"plain": [], "ours": [], "naive": []}

    def timed(fn, r):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(r)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    def after_our_epoch(record):  # the engine calls this after each of its epochs
        r = record["epoch"] - 1
        for name, fn in others.items():
            t = timed(fn, r)
            if r > 0:
                times[name].append(t)
        if r > 0:
            times["ours"].append(record["seconds"])

    svi(model, guides.MeanField(), ds.train, epochs=args.rounds + 1, batch_size=args.batch_size,
        lr=1e-3, device=device, progress=False, num_draws=1, callbacks=[after_our_epoch])
    times = {k: v for k, v in times.items() if v}
    med = {k: statistics.median(v) for k, v in times.items()}
    cpu = platform.processor() or platform.machine()
    lines = [f"LeNet-300-100 on {args.dataset} ({n} examples/epoch, batch {args.batch_size}), "
             f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
             f"{cpu}; median of {args.rounds} epochs"]
    for k, v in med.items():
        lines.append(f"  {k:6s} epoch {v:7.2f} s   ({', '.join(f'{t:.2f}' for t in times[k])})")
    # each round's epochs run back to back, so the per-round ratio cancels slow drifts in
    # machine load; report the median of the paired ratios (and their range)
    for k, note in (("ours", "   (goal <= 2.0x)"), ("naive", "")):
        if k in times:
            r = [a / b for a, b in zip(times[k], times["plain"], strict=True)]
            lines.append(f"  ratio {k + '/plain':11s} = {statistics.median(r):.2f}x   "
                         f"(rounds: {', '.join(f'{x:.2f}' for x in r)}){note}")
    print("\n".join(lines), flush=True)
    if args.profile or args.compile:
        extra = []
        torch.manual_seed(0)
        fresh = BayesianNet(nets.lenet_300_100(n_in, n_out), priors.Gaussian(1.0), num_data=n)
        guide = guides.MeanField(fresh.to(device))
        guide.to(device)
        guide_opt = make_adam(guide.parameters(), 1e-3)
        if args.profile:
            torch.manual_seed(0)
            generic = guides.MeanField(BayesianNet(nets.lenet_300_100(n_in, n_out),
                                                   priors.Gaussian(1.0), num_data=n).to(device),
                                       fuse=False)
            generic.to(device)
            floor, floor_params = floor_step(guide, n)
            extra.append(check_floor(guide, floor, floor_params, *next(iter(batches.epoch(0)))))
            extra += profile_steps(plain, plain_opt, guide, guide_opt, batches, args.profile,
                                   device, (generic, make_adam(generic.parameters(), 1e-3)),
                                   (floor, make_adam(floor_params, 1e-3)))
        if args.compile:
            extra += compile_steps(guide, guide_opt, batches, args.compile_steps, device)
        print("\n".join(extra), flush=True)
        lines += extra
    argv, shown = sys.argv[1:], []
    while argv:  # the command as run, less where it wrote
        a = argv.pop(0)
        if a == "--out":
            argv = argv[1:]
        elif a not in ("--write-results", "--no-write") and not a.startswith("--out="):
            shown.append(shlex.quote(a))
    cmd = " ".join(["python", "benchmarks/svi_throughput.py", *shown])
    out.section(f"svi-throughput:b{args.batch_size}",
                f"{provenance()}; command `{cmd}`.\n\n```\n" + "\n".join(lines) + "\n```")


if __name__ == "__main__":
    main()
