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

    python benchmarks/svi_throughput.py [--rounds 3] [--batch-size 128] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-naive", action="store_true")
    args = ap.parse_args()
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
    print(f"LeNet-300-100 on {args.dataset} ({n} examples/epoch, batch {args.batch_size}), "
          f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{cpu}; median of {args.rounds} epochs")
    for k, v in med.items():
        print(f"  {k:6s} epoch {v:7.2f} s   ({', '.join(f'{t:.2f}' for t in times[k])})")
    # each round's epochs run back to back, so the per-round ratio cancels slow drifts in
    # machine load; report the median of the paired ratios (and their range)
    for k, note in (("ours", "   (goal <= 2.5x)"), ("naive", "")):
        if k in times:
            r = [a / b for a, b in zip(times[k], times["plain"], strict=True)]
            print(f"  ratio {k + '/plain':11s} = {statistics.median(r):.2f}x   "
                  f"(rounds: {', '.join(f'{x:.2f}' for x in r)}){note}")


if __name__ == "__main__":
    main()
