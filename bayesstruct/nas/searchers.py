"""Four architecture searchers through one interface (differentiable and Bayesian architecture
search: Liu, Simonyan & Yang 2019; variational DARTS with a Gumbel-softmax structure).

``searcher.search(data, space, seed=..., device=...) -> SearchResult`` (the derived
:class:`~.space.Genotype`, the search time, the structure weights where there are any).

* :class:`DARTS` (Liu, Simonyan & Yang 2019): point-estimate logits ``alpha``,
  ``gamma = softmax(alpha)``, bilevel alternation: ``alpha`` descends the validation loss,
  the weights the training loss. ``order=1`` uses ``grad_alpha L_val(w, alpha)``;
  ``order=2`` the one-step unrolled hypergradient
  ``d/d alpha L_val(w - xi grad_w L_train(w, alpha), alpha)``, computed exactly by
  :func:`bayesstruct.inference.hypergrad.unrolled` (DARTS approximates its Hessian-vector
  product by finite differences; reverse mode needs no approximation).
* :class:`VariationalDARTS`: weights with a mean-field Gaussian posterior
  (:class:`~bayesstruct.guides.MeanField`, local reparameterisation) under a Gaussian prior,
  structure ``q(Gamma) = prod_e RelaxedOneHotCategorical(tau, alpha_e)`` with a uniform
  Concrete or Dirichlet prior (:class:`~.structure.OperationChoice`). The loss is
  ``-E_q log p(y | w, Gamma) + KL(q(Gamma) || p(Gamma)) + KL(q(w) || p(w))``; bilevel as
  DARTS: the weight posterior descends it on the training split, ``alpha`` on the
  validation split (its ``KL(q(w)||p(w))`` term does not depend on ``alpha``). ``tau`` is
  annealed geometrically from ``temperature`` to ``temperature_final``.
* :class:`RandomSearch` (Li & Talwalkar 2019): ``n_samples`` genotypes drawn uniformly,
  each trained from scratch for ``epochs`` on the training split; the best on validation.
* :class:`SPOS` (Guo et al. 2020, single-path one-shot): the supernet is trained with one
  uniformly drawn single path per minibatch; then ``n_candidates`` genotypes are scored on
  validation with the inherited weights (BatchNorm on batch statistics), the best kept.
  (SPOS ranks candidates by evolution; uniform sampling of candidates is used here.)

Every searcher derives the architecture the same way (:func:`~.space.derive` for the
gradient-based ones) and is timed by the same clock; :func:`~.train.retrain` then trains the
derived network from scratch.

A training or validation loss (or structure gradient) that becomes NaN/inf stops a search with
:class:`~bayesstruct.errors.NonFiniteLossError` naming the searcher and the epoch (checked once
per epoch on losses summed on the device).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from .. import logs
from ..data import Dataset, Split
from ..errors import NonFiniteLossError
from ..guides.meanfield import MeanField
from ..inference.hypergrad import HyperProblem, InnerOptimizer, flat_params, unflatten, unrolled
from ..models.bayesnet import BayesianNet
from ..priors.gaussian import Gaussian
from ..training import Minibatches, cosine_factor
from ..training.plain import evaluate_net, train_plain
from .networks import DerivedNet, SuperNet
from .space import Genotype, SearchSpace, derive
from .structure import OperationChoice

__all__ = ["DARTS", "SEARCHERS", "SPOS", "RandomSearch", "SearchResult", "Searcher",
           "VariationalDARTS", "build_searcher", "make_searcher"]


@dataclass
class SearchResult:
    """What a search returns."""

    method: str
    genotype: Genotype
    seconds: float
    #: structure weights ``softmax(alpha)`` ``(n_edges, n_ops)`` (gradient-based searchers)
    weights: Tensor | None = None
    #: the logits ``alpha`` (gradient-based searchers)
    logits: Tensor | None = None
    #: per-epoch records (losses, validation accuracy, temperature)
    history: list[dict[str, float]] = field(default_factory=list)
    #: ``(genotype, validation accuracy)`` of every candidate scored (random, SPOS)
    candidates: list[tuple[Genotype, float]] = field(default_factory=list)


class Searcher(ABC):
    """An architecture searcher: ``search(data, space, seed, device) -> SearchResult``."""

    name: str = ""

    def search(self, data: Dataset, space: SearchSpace, *, seed: int = 0,
               device: str | torch.device = "cpu", progress: bool = False) -> SearchResult:
        """Search on ``data.train`` (weights) and ``data.val`` (structure / selection)."""
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        device = torch.device(device)
        train, val = data.train.to(device), data.val.to(device)
        in_channels, n_classes = data.input_shape[0], data.n_classes
        t0 = time.perf_counter()
        result = self._search(train, val, space, in_channels, n_classes, seed, rng, device,
                              progress)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        result.seconds = time.perf_counter() - t0
        return result

    @abstractmethod
    def _search(self, train: Split, val: Split, space: SearchSpace, in_channels: int,
                n_classes: int, seed: int, rng: np.random.Generator, device: torch.device,
                progress: bool) -> SearchResult: ...


def _check(**kw: float) -> None:
    for k, v in kw.items():
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(f"{k} must be > 0 and finite (got {v})")


def _diverged(name: str, what: str, value: float, epoch: int, epochs: int, rates: str
              ) -> NonFiniteLossError:
    return NonFiniteLossError(f"{name} search: the {what} became {value} in epoch {epoch + 1} "
                              f"of {epochs}; no checkpoint was written. Lower the learning "
                              f"rates ({rates}) and check the data for NaN/inf.")


@torch.no_grad()
def _supernet_accuracy(net: SuperNet, arch, split: Split, batch_size: int = 500) -> float:
    """Accuracy of the supernet under ``arch``; BatchNorm on each batch's statistics (the
    running averages mix every path, so a single path is scored on its own statistics)."""
    net.train()
    correct = 0
    for i in range(0, len(split), batch_size):
        out = net(split.x[i: i + batch_size], arch)
        correct += int((out.argmax(1) == split.y[i: i + batch_size]).sum())
    return correct / max(len(split), 1)


class _Bilevel(Searcher):
    """The alternation shared by DARTS and variational DARTS: per training minibatch one
    structure step on a validation minibatch, then one weight step (DARTS' order)."""

    def __init__(self, epochs: int = 10, batch_size: int = 64, lr: float = 3e-3,
                 arch_lr: float = 3e-3, arch_weight_decay: float = 1e-3,
                 warmup_epochs: int = 0) -> None:
        _check(epochs=epochs, batch_size=batch_size, lr=lr, arch_lr=arch_lr)
        if not 0 <= warmup_epochs < epochs:
            raise ValueError(f"warmup_epochs must lie in 0..epochs-1 (got {warmup_epochs})")
        self.epochs, self.batch_size, self.lr = int(epochs), int(batch_size), float(lr)
        self.arch_lr, self.arch_weight_decay = float(arch_lr), float(arch_weight_decay)
        self.warmup_epochs = int(warmup_epochs)

    @property
    def _rates(self) -> str:
        return f"lr={self.lr:g}, arch_lr={self.arch_lr:g}"

    # the subclass's three hooks
    def _setup(self, net: SuperNet, train: Split, val: Split, space: SearchSpace,
               gen: torch.Generator) -> tuple[list[nn.Parameter], nn.Parameter]: ...

    def _arch_step(self, xt: Tensor, yt: Tensor, xv: Tensor, yv: Tensor) -> float: ...

    def _weight_step(self, x: Tensor, y: Tensor) -> Tensor: ...

    def _on_epoch(self, epoch: int) -> dict[str, float]:
        return {}

    def _search(self, train, val, space, in_channels, n_classes, seed, rng, device, progress):
        gen = torch.Generator().manual_seed(seed)
        net = SuperNet(space, in_channels, n_classes).to(device)
        weights, alpha = self._setup(net, train, val, space, gen)
        alpha.data = alpha.data.to(device)
        self.w_opt = torch.optim.Adam(weights, lr=self.lr)
        self.a_opt = torch.optim.Adam([alpha], lr=self.arch_lr, betas=(0.5, 0.999),
                                      weight_decay=self.arch_weight_decay)
        tb = Minibatches(train.x, train.y, self.batch_size, seed)
        vb = Minibatches(val.x, val.y, self.batch_size, seed + 7919).stream()
        total = self.epochs * len(tb)
        sched = torch.optim.lr_scheduler.LambdaLR(self.w_opt, cosine_factor(total, floor=0.0))
        history = []
        for epoch in logs.progress(range(self.epochs), desc=self.name, unit="epoch",
                                   enabled=progress, leave=False):
            rec = self._on_epoch(epoch)
            wsum = asum = torch.zeros((), device=device)
            for xt, yt in tb.epoch(epoch):
                if epoch >= self.warmup_epochs:
                    xv, yv = next(vb)
                    asum = asum + self._arch_step(xt, yt, xv, yv)
                self.w_opt.zero_grad(set_to_none=True)
                loss = self._weight_step(xt, yt)
                loss.backward()
                self.w_opt.step()
                sched.step()
                wsum = wsum + loss.detach()
            rec.update(epoch=epoch, train_loss=float(wsum) / len(tb),
                       arch_loss=float(asum) / len(tb))
            for what, key in (("training loss", "train_loss"),
                              ("validation (structure) loss", "arch_loss")):
                if not math.isfinite(rec[key]):
                    raise _diverged(self.name, what, rec[key], epoch, self.epochs, self._rates)
            if not all(math.isfinite(v) for v in rec.values()):
                raise NonFiniteLossError(f"{self.name} search: non-finite record in epoch "
                                         f"{epoch + 1}: {rec}")
            if not bool(torch.isfinite(alpha.detach()).all()):
                raise _diverged(self.name, "structure logits alpha", float("nan"), epoch,
                                self.epochs, self._rates)
            history.append(rec)
        w = torch.softmax(alpha.detach(), -1).cpu()
        return SearchResult(self.name, derive(w, space), 0.0, weights=w,
                            logits=alpha.detach().cpu().clone(), history=history)


class DARTS(_Bilevel):
    """Differentiable architecture search with point-estimate logits (module docstring).

    Args:
        order: 1 (first-order) or 2 (one-step unrolled hypergradient with virtual step
            ``xi``; ``xi`` defaults to the weight learning rate).
    """

    name = "darts"

    def __init__(self, order: int = 1, xi: float | None = None, **kw) -> None:
        super().__init__(**kw)
        if order not in (1, 2):
            raise ValueError(f"DARTS order must be 1 or 2 (got {order})")
        self.order = order
        self.xi = float(xi) if xi is not None else self.lr
        _check(xi=self.xi)
        if order == 2:
            self.name = "darts2"

    def _setup(self, net, train, val, space, gen):
        self.net = net
        self.alpha = nn.Parameter(1e-3 * torch.randn(space.n_edges, space.n_ops, generator=gen))
        return list(net.parameters()), self.alpha

    def _loss(self, x: Tensor, y: Tensor, alpha: Tensor, params: dict | None = None) -> Tensor:
        gamma = torch.softmax(alpha, -1)
        out = (self.net(x, gamma) if params is None else
               functional_call(self.net, params, (x, gamma)))
        return F.cross_entropy(out, y)

    def arch_gradient(self, xt: Tensor, yt: Tensor, xv: Tensor, yv: Tensor) -> Tensor:
        """``grad_alpha L_val(w, alpha)`` (order 1) or
        ``d/d alpha L_val(w - xi grad_w L_train(w, alpha), alpha)`` (order 2) at the current
        weights; the weights are not changed."""
        return self._gradient_and_loss(xt, yt, xv, yv)[0]

    def _gradient_and_loss(self, xt, yt, xv, yv) -> tuple[Tensor, Tensor]:
        if self.order == 1:
            with torch.enable_grad():
                loss = self._loss(xv, yv, self.alpha)
                return torch.autograd.grad(loss, self.alpha)[0], loss.detach()
        net = self.net
        problem = HyperProblem(
            train_loss=lambda w, a: self._loss(xt, yt, a, unflatten(net, w)),
            val_loss=lambda w, a: self._loss(xv, yv, a, unflatten(net, w)),
            w0=flat_params(net), optimizer=InnerOptimizer("sgd", lr=self.xi))
        grad = unrolled(problem, self.alpha, 1)
        with torch.no_grad():
            return grad, self._loss(xv, yv, self.alpha)

    def _arch_step(self, xt, yt, xv, yv):
        self.a_opt.zero_grad(set_to_none=True)
        self.alpha.grad, loss = self._gradient_and_loss(xt, yt, xv, yv)
        self.a_opt.step()
        return loss

    def _weight_step(self, x, y):
        return self._loss(x, y, self.alpha.detach())


class VariationalDARTS(_Bilevel):
    """Variational DARTS (module docstring).

    Args:
        prior: structure prior, ``"uniform"`` or ``"dirichlet"`` (``concentration``).
        temperature, temperature_final: the Gumbel-softmax temperature, annealed
            geometrically over the epochs.
        weight_prior_scale: ``sigma_p`` of the Gaussian weight prior ``N(0, sigma_p^2)``.
        init_scale: initial posterior standard deviation of every weight.
        kl_weight: ``beta`` of the tempered ELBO on ``KL(q(w) || p(w))`` (1: the ELBO).
    """

    name = "vardarts"

    def __init__(self, prior: str = "uniform", concentration: float = 1.0,
                 temperature: float = 1.0, temperature_final: float = 0.2,
                 weight_prior_scale: float = 1.0, init_scale: float = 1e-3,
                 kl_weight: float = 1.0, **kw) -> None:
        super().__init__(**kw)
        if not kl_weight >= 0:
            raise ValueError(f"kl_weight must be >= 0 (got {kl_weight})")
        self.kl_weight = float(kl_weight)
        _check(temperature=temperature, temperature_final=temperature_final,
               weight_prior_scale=weight_prior_scale, init_scale=init_scale)
        self.prior, self.concentration = prior, float(concentration)
        self.temperature, self.temperature_final = float(temperature), float(temperature_final)
        self.weight_prior_scale, self.init_scale = float(weight_prior_scale), float(init_scale)
        OperationChoice(1, 2, prior=prior, concentration=concentration)  # validates the prior

    def _setup(self, net, train, val, space, gen):
        self.net = net
        self.model = BayesianNet(net, Gaussian(scale=self.weight_prior_scale),
                                 num_data=len(train))
        self.model.kl_weight = self.kl_weight
        self.guide = MeanField(self.model, init_scale=self.init_scale, reparam="local")
        self.choice = OperationChoice(space.n_edges, space.n_ops, self.temperature, self.prior,
                                      self.concentration, generator=gen).to(train.x.device)
        self.n_train, self.n_val = len(train), len(val)
        return list(self.guide.parameters()), self.choice.alpha

    def _on_epoch(self, epoch):
        self._epoch = epoch
        frac = epoch / max(self.epochs - 1, 1)
        self.choice.temperature = (self.temperature *
                                   (self.temperature_final / self.temperature) ** frac)
        return {"temperature": self.choice.temperature}

    def _rsample(self) -> tuple[Tensor, Tensor]:
        """A structure draw; logits that became NaN/inf (which the distribution refuses with a
        ValueError) are reported as a diverged search."""
        try:
            return self.choice.rsample()
        except ValueError:
            alpha = self.choice.alpha.detach()
            if bool(torch.isfinite(alpha).all()):
                raise
            raise _diverged(self.name, "structure logits alpha", float(alpha.sum()),
                            getattr(self, "_epoch", 0), self.epochs, self._rates) from None

    def _arch_step(self, xt, yt, xv, yv):
        gamma, kl = self._rsample()
        with self.net.using(gamma):
            nll = F.cross_entropy(self.guide.output(xv), yv)
        loss = nll + kl / self.n_val
        (grad,) = torch.autograd.grad(loss, self.choice.alpha)
        self.a_opt.zero_grad(set_to_none=True)
        self.choice.alpha.grad = grad
        self.a_opt.step()
        return loss.detach()

    def _weight_step(self, x, y):
        with torch.no_grad():
            gamma, _ = self._rsample()
        with self.net.using(gamma):
            return self.guide.loss(x, y) / self.n_train


class RandomSearch(Searcher):
    """Random search: ``n_samples`` uniform genotypes, ``epochs`` of training each."""

    name = "random"

    def __init__(self, n_samples: int = 10, epochs: int = 1, batch_size: int = 64,
                 lr: float = 3e-3) -> None:
        _check(n_samples=n_samples, epochs=epochs, batch_size=batch_size, lr=lr)
        self.n_samples, self.epochs = int(n_samples), int(epochs)
        self.batch_size, self.lr = int(batch_size), float(lr)

    def _search(self, train, val, space, in_channels, n_classes, seed, rng, device, progress):
        scored: list[tuple[Genotype, float]] = []
        for i in logs.progress(range(self.n_samples), desc=self.name, unit="arch",
                               enabled=progress, leave=False):
            g = space.random_genotype(rng)
            torch.manual_seed(seed * 10_007 + i)
            net = DerivedNet(space, g, in_channels, n_classes).to(device)
            try:
                train_plain(net, train, epochs=self.epochs, lr=self.lr,
                            batch_size=self.batch_size, seed=seed * 10_007 + i, device=device,
                            desc=f"candidate {i + 1}")
            except NonFiniteLossError as e:
                raise NonFiniteLossError(f"{self.name} search, candidate {i + 1} of "
                                         f"{self.n_samples} ({g}): {e}") from None
            scored.append((g, evaluate_net(net, val, batch_size=500)["acc"]))
        best = max(range(len(scored)), key=lambda k: scored[k][1])
        return SearchResult(self.name, scored[best][0], 0.0, candidates=scored)


class SPOS(Searcher):
    """Single-path one-shot: uniform single-path supernet training, then candidate scoring."""

    name = "spos"

    def __init__(self, epochs: int = 10, batch_size: int = 64, lr: float = 3e-3,
                 n_candidates: int = 50, score_examples: int = 2000) -> None:
        _check(epochs=epochs, batch_size=batch_size, lr=lr, n_candidates=n_candidates,
               score_examples=score_examples)
        self.epochs, self.batch_size, self.lr = int(epochs), int(batch_size), float(lr)
        self.n_candidates, self.score_examples = int(n_candidates), int(score_examples)

    def _search(self, train, val, space, in_channels, n_classes, seed, rng, device, progress):
        net = SuperNet(space, in_channels, n_classes).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        tb = Minibatches(train.x, train.y, self.batch_size, seed)
        total = self.epochs * len(tb)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_factor(total, floor=0.0))
        history = []
        net.train()
        for epoch in logs.progress(range(self.epochs), desc=self.name, unit="epoch",
                                   enabled=progress, leave=False):
            lsum = torch.zeros((), device=device)
            for x, y in tb.epoch(epoch):
                path = space.random_genotype(rng)
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(net(x, path), y)
                loss.backward()
                opt.step()
                sched.step()
                lsum = lsum + loss.detach()
            loss_epoch = float(lsum) / len(tb)
            if not math.isfinite(loss_epoch):
                raise _diverged(self.name, "training loss", loss_epoch, epoch, self.epochs,
                                f"lr={self.lr:g}")
            history.append({"epoch": epoch, "train_loss": loss_epoch})
        held = Split(val.x[: self.score_examples], val.y[: self.score_examples])
        seen: set[str] = set()
        scored: list[tuple[Genotype, float]] = []
        while len(scored) < min(self.n_candidates, space.n_architectures):
            g = space.random_genotype(rng)
            if str(g) in seen:
                continue
            seen.add(str(g))
            scored.append((g, _supernet_accuracy(net, g, held)))
        best = max(range(len(scored)), key=lambda k: scored[k][1])
        return SearchResult(self.name, scored[best][0], 0.0, history=history, candidates=scored)


SEARCHERS: dict[str, type[Searcher]] = {"darts": DARTS, "vardarts": VariationalDARTS,
                                        "random": RandomSearch, "spos": SPOS}


def make_searcher(name: str, **kw) -> Searcher:
    """A searcher by name (:data:`SEARCHERS`; ``"darts2"`` is DARTS with ``order=2``)."""
    if name == "darts2":
        return DARTS(order=2, **kw)
    if name not in SEARCHERS:
        raise ValueError(f"unknown searcher {name!r}; allowed: {', '.join([*SEARCHERS, 'darts2'])}")
    return SEARCHERS[name](**kw)


def build_searcher(name: str, *, epochs: int = 8, batch_size: int = 64, lr: float = 3e-3,
                   arch_lr: float = 1e-2, prior: str = "uniform", concentration: float = 1.0,
                   temperature: float = 1.0, temperature_final: float = 0.2,
                   random_samples: int = 10, random_epochs: int = 2,
                   spos_candidates: int = 50) -> Searcher:
    """A searcher from one flat set of settings (a ``nas`` config section, the benchmark's
    flags): each takes the ones it uses."""
    bilevel = dict(epochs=epochs, batch_size=batch_size, lr=lr, arch_lr=arch_lr)
    if name in ("darts", "darts2"):
        return make_searcher(name, **bilevel)
    if name == "vardarts":
        return VariationalDARTS(prior=prior, concentration=concentration,
                                temperature=temperature, temperature_final=temperature_final,
                                **bilevel)
    if name == "random":
        return RandomSearch(n_samples=random_samples, epochs=random_epochs,
                            batch_size=batch_size, lr=lr)
    if name == "spos":
        return SPOS(epochs=epochs, batch_size=batch_size, lr=lr, n_candidates=spos_candidates)
    return make_searcher(name)  # raises, naming the allowed ones
