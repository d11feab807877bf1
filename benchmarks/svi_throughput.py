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
backward and optimiser step (median milliseconds per step), the KL term of ours alone
(forward and backward), and ours on the generic autograd graph (``MeanField(fuse=False)``,
without the fused Linear node of ``bayesstruct.guides.fused``). ``--compile`` also times
``torch.compile`` of our loss: the first compiled step (which compiles) and the median step,
compiled against eager.

Everything printed is also written as the section ``svi-throughput:b<batch size>`` of
``<out>/RESULTS.md`` (``--out DIR``; ``--write-results`` updates ``benchmarks/RESULTS.md``).

    python benchmarks/svi_throughput.py [--rounds 3] [--batch-size 128] [--device cpu]
        [--profile 200] [--compile] [--out DIR | --write-results]
"""

from __future__ import annotations

import argparse
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
                  unfused=None) -> list[str]:
    """Median milliseconds per step of plain and ours, split into forward / backward /
    optimiser step, of our KL term alone (forward / backward), and of ours with the generic
    autograd graph instead of the fused Linear node (``unfused``: a ``(guide, optimiser)``
    pair with ``fuse=False``); steps interleaved."""
    split = {k: ([], [], []) for k in ("plain", "ours", "kl", "unfused")}

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
            done += 1
            if done == steps + 1:
                break
    split = {k: tuple(v[1:] for v in parts) for k, parts in split.items()}  # 1st: warm-up
    lines = [f"per step, median of {steps} steps (ms): forward / backward / optimiser step"]
    for k, label in (("plain", "plain"), ("ours", "ours"), ("kl", "ours, KL alone"),
                     ("unfused", "ours, unfused")):
        if not split[k][0]:
            continue
        f, b, o = split[k]
        opt = f" / {_ms(o)}" if k != "kl" else ""
        lines.append(f"  {label:15s} {_ms(f)} / {_ms(b)}{opt}")
    return lines


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
    for k, note in (("ours", "   (goal <= 2.5x)"), ("naive", "")):
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
            extra += profile_steps(plain, plain_opt, guide, guide_opt, batches, args.profile,
                                   device, (generic, make_adam(generic.parameters(), 1e-3)))
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
