"""Mean-field SVI of LeNet-300-100 against its peers: epoch time, accuracy and memory, side by side.

Every method trains the same network (Fashion-MNIST, 784-300-100-10, ReLU) on the same
minibatches (``Minibatches(seed=0)``, batch 128 by default), with N(0, 1) priors on every weight
and bias and a mean-field Normal posterior starting at standard deviation 1e-3:

  plain        -- torch.nn, cross-entropy, fused Adam (the floor every ratio is taken to);
  ours         -- ``bayesstruct.inference.svi`` (the engine itself) with the MeanField guide:
                  local reparameterisation and the closed-form KL; fused Adam;
  pyro         -- the textbook Pyro way: PyroSample priors, AutoNormal, Trace_ELBO;
  tyxe         -- TyXe 0.0.2 VariationalBNN with AutoNormal (TraceMeanField_ELBO);
  tyxe-lrt     -- the same inside ``tyxe.poutine.local_reparameterization()``;
  bt-reparam   -- bayesian-torch 0.5 ``dnn_to_bnn`` (Reparameterization layers), cross-entropy +
                  ``get_kl_loss / N``, fused Adam;
  bt-flipout   -- the same with Flipout layers.

The epochs are interleaved: each round runs one epoch of every method back to back, so machine
load hits all alike. The first round is a warm-up; the ratio of a method is the median over
the counted rounds of its epoch time over plain's epoch time *in the same round*. After the
rounds each method's test accuracy is measured (the Bayesian methods average the softmax of 8
forward draws), so a fast method that learns less shows it.

Memory: the peak tensor memory of one training step of each method (``benchmarks/memory.py``:
every storage an operator allocates, followed until it is freed, plus the parameters, gradients
and optimiser state alive before the step; the data set is left out), each method measured in a
fresh process of its own, for LeNet-300-100 and (plain, ours, bayesian-torch) LeNet-5-Caffe.

A peer that is not installed is reported as skipped: ``make bench-peers`` installs them
(``pip install --no-deps``: bayesian-torch's requirements would replace torch). TyXe 0.0.2
calls ``pyro.util.deep_getattr``, which Pyro 1.9 removed; this script puts it back (a
``functools.reduce(getattr, ...)``) before importing TyXe.

    python benchmarks/peers.py [--rounds 5] [--batch-size 128] [--methods ...]
        [--skip-memory] [--out DIR | --write-results]

NUTS against NumPyro is the sibling ``benchmarks/nuts_peers.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F

from bayesstruct import data, guides, nets, priors
from bayesstruct.inference import svi
from bayesstruct.models import BayesianNet
from bayesstruct.training import Minibatches, make_adam

sys.path.insert(0, str(Path(__file__).parent))
from _results import Output, add_output_args, markdown_table, provenance  # noqa: E402
from memory import peak_step_bytes  # noqa: E402
from svi_throughput import NaiveLeNet  # noqa: E402

INIT_SD = 1e-3  # every method's initial posterior standard deviation
LR = 1e-3
DRAWS = 8  # forward draws averaged for the test accuracy of a Bayesian method
METHODS = ("plain", "ours", "pyro", "tyxe", "tyxe-lrt", "bt-reparam", "bt-flipout")
MEMORY_NETS = {"lenet300": METHODS, "lenet5": ("plain", "ours", "bt-reparam", "bt-flipout")}


class Skipped(Exception):
    """A peer that cannot run here (not installed); the message says why."""


def make_net(net: str, n_in: int, n_out: int, shape) -> torch.nn.Module:
    return nets.lenet_300_100(n_in, n_out) if net == "lenet300" else nets.lenet5_caffe(shape,
                                                                                    n_out)


class Method:
    """One way of training: ``step(x, y)``, ``epoch(batches)`` and ``probs(x)``."""

    def __init__(self, net: str, ds: data.Dataset) -> None:
        self.n = len(ds.train)
        self.net_kind, self.shape = net, ds.input_shape
        self.n_in, self.n_out = ds.n_features, ds.n_classes

    def net(self) -> torch.nn.Module:
        torch.manual_seed(0)
        return make_net(self.net_kind, self.n_in, self.n_out, self.shape)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        raise NotImplementedError

    def epoch(self, batches) -> None:
        for x, y in batches:
            self.step(x, y)

    @torch.no_grad()
    def probs(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Plain(Method):
    def __init__(self, net, ds):
        super().__init__(net, ds)
        self.model = self.net()
        self.opt = make_adam(self.model.parameters(), LR)

    def step(self, x, y):
        loss = F.cross_entropy(self.model(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    @torch.no_grad()
    def probs(self, x):
        return self.model(x).softmax(-1)


class Ours(Method):
    """The engine's own step (``svi`` runs the timed epochs; this class is for memory and
    for the accuracy of the guide ``svi`` trained)."""

    def __init__(self, net, ds):
        super().__init__(net, ds)
        self.model = BayesianNet(self.net(), priors.Gaussian(1.0), num_data=self.n)
        self.guide = guides.MeanField(self.model, init_scale=INIT_SD)
        self.opt = make_adam(self.guide.parameters(), LR)

    def step(self, x, y):  # what bayesstruct.inference.svi does per minibatch
        loss = self.guide.loss(x, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.guide.constrain_()

    @torch.no_grad()
    def probs(self, x):
        return torch.stack([self.guide.output(x).softmax(-1) for _ in range(DRAWS)]).mean(0)


class NaivePyro(Method):
    def __init__(self, net, ds):
        super().__init__(net, ds)
        if net != "lenet300":
            raise Skipped("the textbook Pyro model here is LeNet-300-100 only")
        from pyro.infer import SVI, Trace_ELBO
        from pyro.infer.autoguide import AutoNormal
        torch.manual_seed(0)
        self.model = NaiveLeNet(self.n_in, self.n_out, self.n)
        self.guide = AutoNormal(self.model, init_scale=INIT_SD)
        self.svi = SVI(self.model, self.guide, pyro.optim.Adam({"lr": LR}), Trace_ELBO())

    def step(self, x, y):
        self.svi.step(x, y)

    @torch.no_grad()
    def probs(self, x):
        from pyro.infer import Predictive
        out = Predictive(self.model, guide=self.guide, num_samples=DRAWS,
                         return_sites=("_RETURN",))(x)["_RETURN"]
        return out.softmax(-1).mean(0)


def _tyxe():
    try:
        import pyro.util
        if not hasattr(pyro.util, "deep_getattr"):  # removed in Pyro 1.9; TyXe 0.0.2 calls it
            pyro.util.deep_getattr = lambda obj, name: functools.reduce(getattr, name.split("."),
                                                                        obj)
        import tyxe
    except ImportError as e:
        raise Skipped(f"TyXe is not installed ({e}); `make bench-peers` installs it") from e
    return tyxe


class TyXe(Method):
    lrt = False

    def __init__(self, net, ds):
        super().__init__(net, ds)
        if net != "lenet300":
            raise Skipped("measured on LeNet-300-100 only")
        tyxe = _tyxe()
        prior = tyxe.priors.IIDPrior(dist.Normal(0.0, 1.0))
        likelihood = tyxe.likelihoods.Categorical(self.n)
        guide = functools.partial(tyxe.guides.AutoNormal, init_scale=INIT_SD)
        self.bnn = tyxe.VariationalBNN(self.net(), prior, likelihood, guide,
                                       name="lrt" if self.lrt else "")
        self.optim = pyro.optim.Adam({"lr": LR})
        self.tyxe = tyxe
        self._svi = None

    def _context(self):
        import contextlib
        return (self.tyxe.poutine.local_reparameterization() if self.lrt
                else contextlib.nullcontext())

    def epoch(self, batches):
        with self._context():
            self.bnn.fit(batches, self.optim, 1)

    def step(self, x, y):
        with self._context():
            if self._svi is None:  # what fit() builds, kept for single steps
                from pyro.infer import SVI, TraceMeanField_ELBO
                self._svi = SVI(self.bnn.model, self.bnn.guide, self.optim, TraceMeanField_ELBO())
            self._svi.step((x,), y)

    @torch.no_grad()
    def probs(self, x):
        with self._context():
            return self.bnn.predict(x, num_predictions=DRAWS).softmax(-1)


class TyXeLRT(TyXe):
    lrt = True


class BayesianTorch(Method):
    kind = "Reparameterization"

    def __init__(self, net, ds):
        super().__init__(net, ds)
        try:
            from bayesian_torch.models.dnn_to_bnn import dnn_to_bnn, get_kl_loss
        except ImportError as e:
            raise Skipped(f"bayesian-torch is not installed ({e}); `make bench-peers` "
                          "installs it") from e
        self.model = self.net()
        dnn_to_bnn(self.model, {"prior_mu": 0.0, "prior_sigma": 1.0, "posterior_mu_init": 0.0,
                                "posterior_rho_init": float(torch.tensor(INIT_SD).expm1().log()),
                                "type": self.kind, "moped_enable": False})
        with torch.no_grad():  # the same initial means as the other methods
            for p, q in zip(_means(self.model), self.net().parameters(), strict=True):
                p.copy_(q)
        self.kl = get_kl_loss
        self.opt = make_adam(self.model.parameters(), LR)

    def step(self, x, y):
        loss = F.cross_entropy(self.model(x), y) + self.kl(self.model) / self.n
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    @torch.no_grad()
    def probs(self, x):
        return torch.stack([self.model(x).softmax(-1) for _ in range(DRAWS)]).mean(0)


def _means(model: torch.nn.Module):
    """bayesian-torch's posterior means (``mu_weight``, ``mu_bias``, ``mu_kernel``) in the order
    of the plain net's parameters."""
    for mod in model.modules():
        for w in ("mu_weight", "mu_kernel"):
            if hasattr(mod, w):
                yield getattr(mod, w)
                if getattr(mod, "mu_bias", None) is not None:
                    yield mod.mu_bias


class BayesianTorchFlipout(BayesianTorch):
    kind = "Flipout"


CLASSES: dict[str, type[Method]] = {
    "plain": Plain, "ours": Ours, "pyro": NaivePyro, "tyxe": TyXe, "tyxe-lrt": TyXeLRT,
    "bt-reparam": BayesianTorch, "bt-flipout": BayesianTorchFlipout}


def accuracy(m: Method, x: torch.Tensor, y: torch.Tensor, chunk: int = 1000) -> float:
    hits = sum(int((m.probs(x[i:i + chunk]).argmax(-1) == y[i:i + chunk]).sum())
               for i in range(0, len(y), chunk))
    return hits / len(y)


def load(dataset: str, train_size: int | None) -> data.Dataset:
    ds = data.load(dataset, seed=0)
    if train_size is None:
        return ds
    return dataclasses.replace(ds, train=data.Split(ds.train.x[:train_size],
                                                    ds.train.y[:train_size]))


def memory_of(method: str, net: str, dataset: str, batch_size: int) -> int:
    """Peak bytes of one step of ``method`` (run in this process, which holds nothing else)."""
    ds = data.load(dataset, seed=0)
    m = CLASSES[method](net, ds)
    batches = Minibatches(ds.train.x, ds.train.y, batch_size, seed=0).epoch(0)
    for _ in range(2):  # optimiser state and caches exist before the measured step
        m.step(*next(batches))
    x, y = next(batches)
    held = [t for split in (ds.train, ds.test, ds.val) if split is not None
            for t in (split.x, split.y)]
    return peak_step_bytes(lambda: m.step(x, y), exclude=[*held, x, y])


def measure_memory(args) -> tuple[list[list[object]], list[str]]:
    rows, lines = [], []
    for net, methods in MEMORY_NETS.items():
        base = None
        for method in methods:
            if method not in args.methods:
                continue
            cmd = [sys.executable, __file__, "--memory-of", method, "--net", net,
                   "--dataset", args.dataset, "--batch-size", str(args.batch_size)]
            r = subprocess.run(cmd, capture_output=True, text=True)
            last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
            if r.returncode != 0 or not last.startswith("{"):
                why = (r.stderr.strip().splitlines() or ["failed"])[-1]
                rows.append([net, method, "skipped", why[:80]])
                lines.append(f"  {net:9s} {method:11s} skipped: {why}")
                continue
            res = json.loads(last)
            if "skipped" in res:
                rows.append([net, method, "skipped", res["skipped"][:80]])
                lines.append(f"  {net:9s} {method:11s} skipped: {res['skipped']}")
                continue
            mb = res["bytes"] / 2**20
            base = mb if method == "plain" else base
            ratio = f"{mb / base:.2f}x" if base else "-"
            rows.append([net, method, f"{mb:.1f}", ratio])
            lines.append(f"  {net:9s} {method:11s} {mb:8.1f} MiB  {ratio} plain")
    return rows, lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="counted rounds (plus one warm-up)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--train-size", type=int, default=None,
                    help="the first N training examples only (a quick look; not for RESULTS)")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--memory-of", choices=METHODS, help=argparse.SUPPRESS)
    ap.add_argument("--net", default="lenet300", choices=sorted(MEMORY_NETS),
                    help=argparse.SUPPRESS)
    add_output_args(ap)
    args = ap.parse_args()
    if args.memory_of:  # the child process of measure_memory
        try:
            print(json.dumps({"bytes": memory_of(args.memory_of, args.net, args.dataset,
                                                 args.batch_size)}))
        except Skipped as e:
            print(json.dumps({"skipped": str(e)}))
        return
    out = Output(args)
    if "plain" not in args.methods or "ours" not in args.methods:
        ap.error("--methods must include plain and ours (the ratios are taken to plain)")
    ds = load(args.dataset, args.train_size)
    batches = Minibatches(ds.train.x, ds.train.y, args.batch_size, seed=0)
    methods: dict[str, Method] = {}
    skipped: dict[str, str] = {}
    for name in args.methods:
        if name == "ours":
            continue
        try:
            methods[name] = CLASSES[name]("lenet300", ds)
        except Skipped as e:
            skipped[name] = str(e)
    ours = Ours("lenet300", ds)
    times: dict[str, list[float]] = {k: [] for k in ["ours", *methods]}

    def timed(fn: Callable[[], None]) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    def after_our_epoch(record: dict) -> None:  # the engine calls this after each epoch
        r = record["epoch"] - 1
        for name, m in methods.items():
            t = timed(lambda m=m: m.epoch(batches.epoch(r)))
            if r > 0:
                times[name].append(t)
        if r > 0:
            times["ours"].append(record["seconds"])
        print(f"round {r}{' (warm-up)' if r == 0 else ''}: ours {record['seconds']:.2f} s, "
              + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()
                          if k != "ours" and v and r > 0), flush=True)

    svi(ours.model, ours.guide, ds.train, epochs=args.rounds + 1, batch_size=args.batch_size,
        lr=LR, device="cpu", progress=False, num_draws=1, callbacks=[after_our_epoch])
    acc = {"ours": accuracy(ours, ds.test.x, ds.test.y)}
    acc.update({k: accuracy(m, ds.test.x, ds.test.y) for k, m in methods.items()})

    cpu = platform.processor() or platform.machine()
    head = (f"LeNet-300-100 on {args.dataset} ({len(ds.train)} examples/epoch, batch "
            f"{args.batch_size}), torch {torch.__version__}, pyro {pyro.__version__}, "
            f"{torch.get_num_threads()} threads, {cpu}; {args.rounds} counted rounds after 1 "
            f"warm-up, {args.rounds + 1} epochs of training before the test accuracy")
    rows = []
    lines = [head]
    for name in args.methods:
        if name in skipped:
            rows.append([name, "skipped", "", "", skipped[name]])
            lines.append(f"  {name:11s} skipped: {skipped[name]}")
            continue
        t = times[name]
        r = [a / b for a, b in zip(t, times["plain"], strict=True)]
        med = statistics.median(r)
        rows.append([name, f"{statistics.median(t):.2f}", f"{med:.2f}x",
                     f"{min(r):.2f}-{max(r):.2f}", f"{100 * acc[name]:.2f}"])
        lines.append(f"  {name:11s} epoch {statistics.median(t):6.2f} s  {med:5.2f}x plain "
                     f"(rounds {', '.join(f'{x:.2f}' for x in r)})  test acc "
                     f"{100 * acc[name]:.2f} %")
    print("\n".join(lines), flush=True)
    table = markdown_table(rows, ["method", "epoch (s)", "epoch / plain (median)",
                                  "range over rounds", "test acc (%)"])
    text = f"{provenance()}; command `python benchmarks/peers.py"
    text += "".join(f" {a}" for a in sys.argv[1:] if a not in ("--write-results",)) + "`.\n\n"
    text += head + ".\n\n" + table
    if not args.skip_memory:
        mrows, mlines = measure_memory(args)
        print("peak tensor memory of one training step (batch "
              f"{args.batch_size}):\n" + "\n".join(mlines), flush=True)
        text += ("\n\nPeak tensor memory of one training step (batch "
                 f"{args.batch_size}; `benchmarks/memory.py`, each method in a fresh process):"
                 "\n\n" + markdown_table(mrows, ["net", "method", "peak (MiB)", "/ plain"]))
    out.section("peers", text)


if __name__ == "__main__":
    main()
