"""A bilevel problem and the inner optimisers as differentiable steps.

    min_lambda L_val(w_T(lambda), lambda),    w_{t+1} = step(w_t, grad_w L_train(w_t, lambda))

The parameters are one flat vector ``w`` (:func:`flat_params` / :func:`unflatten` go between a
module and it). The inner optimisers follow PyTorch's conventions exactly (tested against
``torch.optim``), so a trajectory here is the one ``torch.optim`` would take:

* ``sgd``:       ``w <- w - lr g``;
* ``momentum``:  ``b <- mu b + g``, ``w <- w - lr b`` (``torch.optim.SGD(momentum=mu)``);
* ``adam``:      ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
                 ``w <- w - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``, ``t = 1, 2, ..``

with ``g`` the gradient at the weights before the step. :func:`opt_step` is written with
tensor operations only, so reverse mode differentiates through it (unrolled), and the
exact fixed-point version (:mod:`.exact`) mirrors it operation by operation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ...errors import NonFiniteLossError

__all__ = ["OPTIMIZERS", "HyperProblem", "InnerOptimizer", "epoch_batches", "flat_params",
           "init_state", "opt_step", "run_inner", "unflatten"]

OPTIMIZERS = ("sgd", "momentum", "adam")

#: ``(w, lambda) -> scalar`` (full batch) or ``(w, lambda, t) -> scalar`` (the batch of step t)
LossFn = Callable[..., Tensor]


@dataclass(frozen=True)
class InnerOptimizer:
    """The inner optimiser and its settings (PyTorch conventions; module docstring)."""

    kind: str = "momentum"
    lr: float = 0.1
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.kind not in OPTIMIZERS:
            raise ValueError(f"optimizer kind {self.kind!r}; allowed: {', '.join(OPTIMIZERS)}")
        if not self.lr > 0:
            raise ValueError(f"optimizer lr must be > 0, got {self.lr}")
        if self.kind == "momentum" and not 0.0 < self.momentum < 1.0:
            raise ValueError(f"momentum must be in (0, 1), got {self.momentum}")
        if self.kind == "adam" and not all(0.0 < b < 1.0 for b in self.betas):
            raise ValueError(f"adam betas must be in (0, 1), got {self.betas}")

    @property
    def state_keys(self) -> tuple[str, ...]:
        return {"sgd": ("w",), "momentum": ("w", "b"), "adam": ("w", "m", "v")}[self.kind]


@dataclass
class HyperProblem:
    """``L_train(w, lambda)``, ``L_val(w, lambda)``, the inner optimiser and ``w_0``.

    Args:
        train_loss: ``(w, lam) -> scalar``, the full-batch training loss (the implicit method
            and the honest loop need it deterministic).
        val_loss: ``(w, lam) -> scalar``.
        w0: the initial flat parameter vector.
        optimizer: the inner optimiser.
        batch_loss: optional ``(w, lam, t) -> scalar``, the loss the inner step ``t`` descends
            (a minibatch); ``train_loss`` when absent.
    """

    train_loss: LossFn
    val_loss: LossFn
    w0: Tensor
    optimizer: InnerOptimizer = field(default_factory=InnerOptimizer)
    batch_loss: LossFn | None = None

    def step_loss(self, w: Tensor, lam: Tensor, t: int) -> Tensor:
        return self.batch_loss(w, lam, t) if self.batch_loss is not None else self.train_loss(
            w, lam)

    def grad(self, w: Tensor, lam: Tensor, t: int, create_graph: bool = False) -> Tensor:
        """``grad_w`` of step ``t``'s loss (a graph through ``w`` and ``lam`` if asked)."""
        with torch.enable_grad():
            if not w.requires_grad:
                w = w.detach().requires_grad_(True)
            return torch.autograd.grad(self.step_loss(w, lam, t), w,
                                       create_graph=create_graph)[0]


def init_state(opt: InnerOptimizer, w0: Tensor) -> dict[str, Tensor]:
    """The optimiser's state at step 0: the weights and zero moments."""
    state = {"w": w0}
    for k in opt.state_keys[1:]:
        state[k] = torch.zeros_like(w0)
    return state


def _sqrt0(x: Tensor) -> Tensor:
    """``sqrt(x)`` with derivative 0 (not inf) where ``x == 0`` (Adam's ``v`` of a weight that
    never had a gradient)."""
    pos = x > 0
    return torch.where(pos, x, torch.ones_like(x)).sqrt() * pos


def opt_step(opt: InnerOptimizer, state: dict[str, Tensor], g: Tensor, t: int
             ) -> dict[str, Tensor]:
    """One inner step (module docstring) from ``state`` with gradient ``g``; ``t`` is the
    0-based step index (Adam's bias correction uses ``t + 1``). Differentiable."""
    w = state["w"]
    if opt.kind == "sgd":
        return {"w": w - opt.lr * g}
    if opt.kind == "momentum":
        b = opt.momentum * state["b"] + g
        return {"w": w - opt.lr * b, "b": b}
    b1, b2 = opt.betas
    m = b1 * state["m"] + (1.0 - b1) * g
    v = b2 * state["v"] + (1.0 - b2) * g * g
    mhat = m / (1.0 - b1 ** (t + 1))
    vhat = v / (1.0 - b2 ** (t + 1))
    return {"w": w - opt.lr * mhat / (_sqrt0(vhat) + opt.eps), "m": m, "v": v}


@torch.no_grad()
def run_inner(problem: HyperProblem, lam: Tensor, steps: int, state: dict[str, Tensor] | None
              = None, start: int = 0) -> dict[str, Tensor]:
    """``steps`` inner steps from ``state`` (default: ``w_0`` and zero moments) starting at
    step index ``start``; no graph is kept. Weights that are not finite after the steps raise
    :class:`~bayesstruct.errors.NonFiniteLossError` (one check per call)."""
    opt = problem.optimizer
    state = dict(state) if state is not None else init_state(opt, problem.w0.detach())
    for t in range(start, start + steps):
        g = problem.grad(state["w"], lam.detach(), t)
        state = opt_step(opt, state, g, t)
    if steps > 0 and not bool(torch.isfinite(state["w"]).all()):
        raise NonFiniteLossError(f"inner optimisation ({opt.kind}, lr={opt.lr:g}): the weights "
                                 f"became non-finite within steps {start + 1}..{start + steps}; "
                                 "lower the inner learning rate")
    return state


def flat_params(module: nn.Module) -> Tensor:
    """The module's parameters as one flat vector (a copy)."""
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).clone()


def unflatten(module: nn.Module, w: Tensor) -> dict[str, Tensor]:
    """``name -> view of w`` shaped like the module's parameters (for ``functional_call``)."""
    out, i = {}, 0
    for name, p in module.named_parameters():
        out[name] = w[i: i + p.numel()].view_as(p)
        i += p.numel()
    if i != w.numel():
        raise ValueError(f"w has {w.numel()} entries; the module has {i} parameters")
    return out


def epoch_batches(n: int, batch_size: int, seed: int = 0, device: torch.device | str | None =
                  None, drop_last: bool = False) -> Callable[[int], Tensor]:
    """``t -> indices of step t's minibatch``: epoch ``e`` is a permutation seeded by ``(seed,
    e)``, so a step's batch does not depend on the order steps are visited in (checkpointing
    and reversal revisit them); two epochs are cached, so memory does not grow with T."""
    per_epoch = n // batch_size if drop_last else -(-n // batch_size)
    if per_epoch < 1:
        raise ValueError(f"{n} examples make no batch of {batch_size}")
    perms: dict[int, Tensor] = {}

    def batch(t: int) -> Tensor:
        epoch, i = divmod(t, per_epoch)
        if epoch not in perms:
            if len(perms) >= 2:
                perms.pop(min(perms))
            g = torch.Generator().manual_seed(1_000_003 * seed + epoch)
            perms[epoch] = torch.randperm(n, generator=g).to(device)
        return perms[epoch][i * batch_size: (i + 1) * batch_size]

    return batch
