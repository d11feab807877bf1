"""Exactly reversible optimiser dynamics in fixed-point arithmetic.

Maclaurin, Duvenaud & Adams (2015), "Gradient-based hyperparameter optimization through
reversible learning": run the inner optimiser in fixed point and store, in an *information
buffer*, exactly the bits that the momentum decay destroys; the trajectory can then be run
backwards step by step, bit for bit, without storing it. Three layers:

* :class:`InfoBuffer`: a per-element LIFO store of small integers, packed into int64 words.
* :class:`ExactRep` (alias :data:`FixedPoint`): a tensor held as ``intrep = round(x 2^r)``
  (int64) with exactly invertible ``add``/``sub`` of floats and ``mul``/``div`` by rationals.
* :class:`ReversibleTrajectory`: SGD with momentum or Adam in ``ExactRep`` arithmetic, with
  ``forward(T)`` and an exact ``backward_step()``.

**Invertible multiplication by** ``n/d`` (the paper's Algorithm 3). With ``i`` the integer
representation and ``B`` the buffer seen as a big integer,

    mul(n/d):  B <- B d + (i mod d);   i <- floor(i / d) n + (B mod n);   B <- floor(B / n)
    div(n/d) = mul(d/n),

and ``div`` undoes ``mul`` exactly (both ``mod`` with Python semantics, so negative ``i``
work: ``i = floor(i/d) d + (i mod d)`` with ``0 <= i mod d < d``). The buffer grows by
``log2(d/n)`` bits per element per ``mul`` (``log2(1/mu)`` per momentum step): the paper's
``O(T log2(1/gamma))`` memory, against ``64 T`` bits per element per state tensor to store the
trajectory in float64.

**Reversibility of the steps.** Every float quantity that is added to or subtracted from a
fixed-point state is computed in float64 from the *current exact values* (:meth:`ExactRep.value`,
which is exact), and the reverse step recomputes the identical float from the identical
values, so ``sub(x)`` removes exactly the ``round(x 2^r)`` that ``add(x)`` added. ``grad_fn``
must therefore be a deterministic function of ``(w, t)``. Note that the trajectory that is
reversed is the fixed-point one: it differs from the float64 trajectory of ``torch.optim`` by
rounding, about ``2^-r`` per step and state entry (tested to agree to ``< 1e-6`` relative).

Plain SGD (``w <- w - lr g(w)``) is not reversible this way: recovering ``w_t`` from
``w_{t+1}`` needs ``g(w_t)`` at the unknown ``w_t``. Momentum is, because the step
``w_{t+1} = w_t - lr b_{t+1}`` only involves the stored velocity.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from fractions import Fraction

import torch
from torch import Tensor

__all__ = ["MAX_TERM", "ExactRep", "FixedPoint", "InfoBuffer", "ReversibleTrajectory",
           "as_fraction"]

#: The largest numerator or denominator of a rational :meth:`ExactRep.mul` accepts.
MAX_TERM = 2**10
#: ``|intrep| <= 2^51`` always: ``floor(i/d) n`` then stays below ``2^61 + 2^10 < 2^63`` for
#: ``n, d <= 2^10``, and the sum of two representable values cannot overflow int64.
_MAX_INT = 2**51
#: Buffer levels are kept as integers in units of ``2^-32`` bits (exact to add and subtract).
_LEVEL_UNIT = 2**32


@functools.cache
def _level(base: int) -> int:
    """``log2(base)`` in units of ``2^-32`` bits (deterministic; strictly increasing)."""
    return round(math.log2(base) * _LEVEL_UNIT)


def _split(t: Tensor, base: int) -> tuple[Tensor, Tensor]:
    """``(floor(t / base), t mod base)`` for an int64 tensor ``t >= 0``."""
    if base == 1:
        return t, torch.zeros_like(t)
    return torch.div(t, base, rounding_mode="floor"), torch.remainder(t, base)


def _max(t: Tensor) -> int:
    return int(t.max()) if t.numel() else 0


class InfoBuffer:
    """An exact per-element store of integers, packed into int64 words (LIFO).

    ``push(N, M)`` stores the int64 tensor ``N`` (``0 <= N < M`` elementwise, one Python int
    ``2 <= M <= max_base`` for all elements): ``cur <- cur M + N``; ``pop(M)`` returns
    ``cur mod M`` and sets ``cur <- floor(cur / M)``, i.e. the last pushed ``N``. The general
    operation is :meth:`exchange` (push in one base, pop in another), which the
    rational multiplication of :class:`ExactRep` needs: there the popped digit is *not* a
    previously pushed one but ``log2(n)`` bits taken back from the word (Maclaurin et al.
    2015, Alg. 3), so the buffer grows by ``log2(d/n)`` bits only.

    **Words.** The current word ``cur`` is kept below ``C = 2^62 // max_base`` elementwise, so
    ``cur M + N < 2^63`` never overflows. When an operation would take any element of
    ``cur`` above ``C``, the word is appended (with its level) to a list and a fresh zero word
    is started; the inverse operation returns to the previous word exactly when it brings the
    current word back to its fresh state. The *level* of a word (a Python int, in units of
    ``2^-32`` bits) is the information it holds: ``+log2 M`` per push, ``-log2 M`` per pop.
    A word other than the first must keep a positive level: popping below what was pushed
    into it raises ``RuntimeError`` (this never happens when every shrinking operation undoes
    an earlier growing one, as in reversible learning); the first word may go negative (pops
    from an empty buffer return zeros, and pushing them back restores it).

    Args:
        shape: the per-element shape (that of the tensor whose information is stored).
        device: the torch device of the words.
        max_base: the largest base ``M`` accepted (at most ``2^20``).
    """

    def __init__(self, shape: torch.Size | tuple[int, ...], device: torch.device | str | None
                 = None, *, max_base: int = 2**20) -> None:
        if not 2 <= max_base <= 2**20:
            raise ValueError(f"max_base must be in [2, 2**20], got {max_base}")
        self.shape = torch.Size(shape)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.max_base = int(max_base)
        self._cmax = 2**62 // self.max_base
        self._cur = torch.zeros(self.shape, dtype=torch.int64, device=self.device)
        self._level = 0
        self._words: list[tuple[Tensor, int]] = []

    # -- public operations ------------------------------------------------------------------

    def push(self, n: Tensor, m: int) -> None:
        """Store ``n`` (int64, ``0 <= n < m`` elementwise) in base ``m``."""
        self.exchange(n, m, 1)

    def pop(self, m: int) -> Tensor:
        """The last value pushed in base ``m`` (int64 tensor, ``0 <= . < m``)."""
        return self.exchange(torch.zeros(self.shape, dtype=torch.int64, device=self.device),
                             1, m)

    def exchange(self, n: Tensor, push_base: int, pop_base: int) -> Tensor:
        """Push ``n`` in base ``push_base``, then pop and return a digit in base ``pop_base``.

        ``exchange(s, b, a)`` exactly undoes ``s = exchange(r, a, b)`` (the buffer returns to
        the same words and levels, and it returns ``r``)."""
        for base in (push_base, pop_base):
            if not (isinstance(base, int) and 1 <= base <= self.max_base):
                raise ValueError(f"bases must be ints in [1, {self.max_base}], got {base!r}")
        n = torch.as_tensor(n, device=self.device)
        if n.dtype != torch.int64 or n.shape != self.shape:
            raise ValueError(f"expected an int64 tensor of shape {tuple(self.shape)}, got "
                             f"{n.dtype} {tuple(n.shape)}")
        if n.numel() and (int(n.min()) < 0 or _max(n) >= push_base):
            raise ValueError(f"pushed values must lie in [0, {push_base})")
        return self._exchange(n, push_base, pop_base)

    def _exchange(self, n: Tensor, a: int, b: int) -> Tensor:
        """:meth:`exchange` without argument checks (``0 <= n < a``, ``a, b <= max_base``)."""
        if a == b:
            return n
        if a > b:  # grows by log2(a/b) bits
            new, s = _split(self._cur * a + n, b)
            if _max(new) > self._cmax:  # would overflow the word: start a fresh one
                self._words.append((self._cur, self._level))
                self._cur, self._level = torch.zeros_like(self._cur), 0
                new, s = _split(n, b)
            self._cur = new
            self._level += _level(a) - _level(b)
            return s
        # shrinks by log2(b/a) bits
        new, s = _split(self._cur * a + n, b)
        level = self._level - (_level(b) - _level(a))
        if self._words and level <= 0:
            prev, prev_level = self._words[-1]
            # back to the fresh state of a word that the inverse operation would have opened
            if level == 0 and not bool(new.any()) and _max(
                    torch.div(prev * b + s, a, rounding_mode="floor")) > self._cmax:
                self._words.pop()
                self._cur, self._level = prev, prev_level
                return s
            raise RuntimeError("InfoBuffer underflow: popping more information from a word "
                               "than was pushed into it (only undo earlier pushes)")
        self._cur, self._level = new, level
        return s

    # -- accounting -------------------------------------------------------------------------

    @property
    def num_words(self) -> int:
        """Words in use (the saved ones and the current one)."""
        return len(self._words) + 1

    @property
    def is_empty(self) -> bool:
        """No information held: a single, zero word at level 0."""
        return not self._words and self._level == 0 and not bool(self._cur.any())

    def bits(self) -> float:
        """Bits of information held: ``numel * sum over words of max(level, 0)``, with the
        level of a word ``sum log2(M_push) - sum log2(M_pop)`` over its operations."""
        levels = [lv for _, lv in self._words] + [self._level]
        return self._cur.numel() * sum(max(lv, 0) for lv in levels) / _LEVEL_UNIT

    def nbytes(self) -> int:
        """Bytes of the int64 words allocated (the saved ones and the current one)."""
        return self.num_words * self._cur.numel() * self._cur.element_size()


def as_fraction(x: float, max_denominator: int = MAX_TERM, rtol: float = 1e-3) -> Fraction:
    """The rational ``n/d`` (``d <= max_denominator``) nearest a decay ``x`` in ``(0, 1)``.

    The exact dynamics multiply by this rational (``0.9 -> 9/10``, ``0.999 -> 999/1000``).
    Raises ``ValueError`` when ``x`` is not in ``(0, 1)``, or when neither ``x`` nor
    ``1 - x`` is matched to relative accuracy ``rtol`` (e.g. ``0.9999`` with ``d <= 1024``).
    """
    x = float(x)
    if not 0.0 < x < 1.0:
        raise ValueError(f"a decay must lie in (0, 1), got {x}")
    if not 2 <= max_denominator <= MAX_TERM:
        raise ValueError(f"max_denominator must be in [2, {MAX_TERM}], got {max_denominator}")
    f = Fraction(x).limit_denominator(max_denominator)
    if not 0 < f < 1 or abs(float(f) - x) > rtol * min(x, 1.0 - x):
        raise ValueError(f"decay {x} has no rational approximation n/d with d <= "
                         f"{max_denominator} to relative accuracy {rtol} (got {f})")
    return f


def _as_ratio(frac: Fraction | int) -> tuple[int, int]:
    frac = Fraction(frac)
    n, d = frac.numerator, frac.denominator
    if not (1 <= n <= MAX_TERM and d <= MAX_TERM):
        raise ValueError(f"need a positive rational n/d with n, d <= {MAX_TERM}, got {frac}")
    return n, d


class ExactRep:
    """A float64 tensor held exactly in fixed point: ``intrep = round(x 2^radix_bits)`` (int64).

    Representable range ``|x| <= 2^(51 - radix_bits)`` (``2^19 = 524288`` for the default
    ``radix_bits = 32``), resolution ``2^-radix_bits``. The bound ``|intrep| <= 2^51`` leaves
    room for the products ``floor(i/d) n`` with ``n, d <= 2^10`` (:data:`MAX_TERM`) in int64;
    any operation whose result would leave it raises ``OverflowError`` and changes nothing.

    Operations (each exactly undone by its mirror, Maclaurin et al. 2015):

    * ``add(x)`` / ``sub(x)``: ``intrep +-= round(x 2^radix_bits)`` for a float tensor ``x``
      (rounding half to even, deterministic, so ``sub(x)`` undoes ``add(x)``);
    * ``mul(n/d)``: ``push(intrep mod d, d)``; ``intrep <- floor(intrep/d) n + pop(n)``
      (module docstring), with the information in :attr:`buffer`;
    * ``div(n/d) = mul(d/n)``.

    :meth:`value` is exact (``|intrep| <= 2^51 < 2^53``).
    """

    def __init__(self, x: Tensor, radix_bits: int = 32) -> None:
        if not 1 <= radix_bits <= 50:
            raise ValueError(f"radix_bits must be in [1, 50], got {radix_bits}")
        self.radix_bits = int(radix_bits)
        x = torch.as_tensor(x)
        self.intrep = self._to_int(x)
        self.buffer = InfoBuffer(self.intrep.shape, self.intrep.device, max_base=MAX_TERM)

    @classmethod
    def zeros(cls, shape: torch.Size | tuple[int, ...], radix_bits: int = 32,
              device: torch.device | str | None = None) -> ExactRep:
        return cls(torch.zeros(shape, dtype=torch.float64, device=device), radix_bits)

    @property
    def max_abs(self) -> float:
        """The largest representable ``|x|``: ``2^(51 - radix_bits)``."""
        return 2.0 ** (51 - self.radix_bits)

    def _to_int(self, x: Tensor) -> Tensor:
        xs = x.to(torch.float64) * 2.0**self.radix_bits
        if not bool((xs.abs() <= _MAX_INT).all()):  # also catches nan
            bad = x.to(torch.float64).abs().max().item()
            raise OverflowError(f"ExactRep(radix_bits={self.radix_bits}) holds |x| <= "
                                f"2**{51 - self.radix_bits} = {self.max_abs:g}; got |x| = {bad}")
        return torch.round(xs).to(torch.int64)

    def _commit(self, new: Tensor, what: str) -> None:
        if new.numel() and _max(new.abs()) > _MAX_INT:
            raise OverflowError(f"ExactRep.{what}: the result leaves the representable range "
                                f"|x| <= 2**{51 - self.radix_bits} = {self.max_abs:g}")
        self.intrep = new

    def value(self) -> Tensor:
        """``intrep / 2^radix_bits`` as float64 (exact)."""
        return self.intrep.to(torch.float64) * 2.0**-self.radix_bits

    def add(self, x: Tensor | float) -> None:
        """``intrep += round(x 2^radix_bits)``."""
        x = torch.as_tensor(x, dtype=torch.float64, device=self.intrep.device)
        self._commit(self.intrep + self._to_int(x), "add")

    def sub(self, x: Tensor | float) -> None:
        """``intrep -= round(x 2^radix_bits)`` (exactly undoes ``add(x)``)."""
        x = torch.as_tensor(x, dtype=torch.float64, device=self.intrep.device)
        self._commit(self.intrep - self._to_int(x), "sub")

    def mul(self, frac: Fraction | int) -> None:
        """Multiply by the positive rational ``n/d`` (``n, d <= 2^10``), exactly invertibly."""
        n, d = _as_ratio(frac)
        if n == d:
            return
        q, r = torch.div(self.intrep, d, rounding_mode="floor"), torch.remainder(self.intrep, d)
        s = self.buffer._exchange(r, d, n)
        new = q * n + s
        try:
            self._commit(new, "mul")
        except OverflowError:
            self.buffer._exchange(s, n, d)  # undo the buffer's part, then refuse
            raise

    def div(self, frac: Fraction | int) -> None:
        """Divide by ``n/d``: ``mul(d/n)``, the exact inverse of ``mul(n/d)``."""
        n, d = _as_ratio(frac)
        self.mul(Fraction(d, n))


#: Alias: the fixed-point representation is the ``ExactRep`` of Maclaurin et al.
FixedPoint = ExactRep

GradFn = Callable[[Tensor, int], Tensor]


class ReversibleTrajectory:
    """An inner optimisation run in exact fixed point, reversible step by step (Maclaurin,
    Duvenaud & Adams 2015).

    Conventions (PyTorch's, as the float steps of :mod:`.problem`), ``g = grad_fn(w_t, t)``
    at the weights before step ``t`` (0-based):

    * ``momentum`` (``torch.optim.SGD(momentum=mu)``): ``b <- mu b + g``; ``w <- w - lr b``.
      Forward: ``b.mul(mu); b.add(g); w.sub(lr b)``. Reverse: ``w.add(lr b)`` (the post-step
      ``b``), ``g = grad_fn(w, t)``, ``b.sub(g); b.div(mu)``.
    * ``adam`` (``torch.optim.Adam``), ``k = t + 1``: ``m <- b1 m + (1 - b1) g``,
      ``v <- b2 v + (1 - b2) g^2``, ``w <- w - lr (m / (1 - b1^k)) / (sqrt(v / (1 - b2^k)) +
      eps)``. Reverse: ``w.add(...)`` with the post-step ``m, v``, ``g = grad_fn(w, t)``,
      ``v.sub((1 - b2) g^2); v.div(b2); m.sub((1 - b1) g); m.div(b1)``.
    * ``sgd``: not reversible (module docstring); refused.

    The decays are used as the rationals :func:`as_fraction` gives (``0.9 = 9/10``); only the
    current state and the information buffers are kept. ``v`` is held with
    ``v_radix_bits`` (default ``radix_bits + 8``) fractional bits, as ``(1 - b2) g^2`` is
    small; its range is then ``v <= 2^(51 - v_radix_bits)`` (2048 by default).

    Memory: ``log2(1/mu)`` bits per parameter per step for momentum (``0.152`` for
    ``mu = 9/10``), ``log2(1/b1) + log2(1/b2)`` for Adam, in int64 words of about
    ``62 - 10`` bits (:meth:`memory_bits`, :meth:`memory_bytes`).

    Args:
        optimizer: ``"momentum"`` or ``"adam"``.
        w0: the initial weights (any shape; held as float64 fixed point).
        grad_fn: ``(w float64, t) -> gradient float64`` of ``w``'s shape; deterministic.
        lr: the learning rate.
        momentum: the momentum decay (``optimizer="momentum"``).
        betas: Adam's decays ``(b1, b2)``.
        eps: Adam's ``eps``.
        radix_bits: fractional bits of ``w`` and ``b`` / ``m``.
        v_radix_bits: fractional bits of Adam's ``v``.
        max_denominator: the largest denominator of the rational decays (at most 1024).
    """

    def __init__(self, optimizer: str, w0: Tensor, grad_fn: GradFn, *, lr: float,
                 momentum: float = 0.9, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, radix_bits: int = 32, v_radix_bits: int | None = None,
                 max_denominator: int = MAX_TERM) -> None:
        if optimizer == "sgd":
            raise ValueError("plain SGD ('sgd') is not reversible: undoing w <- w - lr g(w) "
                             "needs the gradient at the unknown previous weights; use "
                             "'momentum' (SGD with momentum) or 'adam'")
        if optimizer not in ("momentum", "adam"):
            raise ValueError(f"optimizer {optimizer!r}; reversible ones: 'momentum', 'adam'")
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {lr}")
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        self.optimizer = optimizer
        self.grad_fn = grad_fn
        self.lr = float(lr)
        self.eps = float(eps)
        w0 = torch.as_tensor(w0).detach().to(torch.float64)
        self._w = ExactRep(w0, radix_bits)
        self._reps: dict[str, ExactRep] = {"w": self._w}
        if optimizer == "momentum":
            self.mu = as_fraction(momentum, max_denominator)
            self._reps["b"] = ExactRep.zeros(w0.shape, radix_bits, w0.device)
        else:
            self.beta1 = as_fraction(betas[0], max_denominator)
            self.beta2 = as_fraction(betas[1], max_denominator)
            vbits = radix_bits + 8 if v_radix_bits is None else v_radix_bits
            self._reps["m"] = ExactRep.zeros(w0.shape, radix_bits, w0.device)
            self._reps["v"] = ExactRep.zeros(w0.shape, vbits, w0.device)
        self._step = 0

    @property
    def step(self) -> int:
        """Steps taken (the index of the next forward step)."""
        return self._step

    @property
    def decays(self) -> dict[str, Fraction]:
        """The rational decays the exact dynamics use."""
        if self.optimizer == "momentum":
            return {"momentum": self.mu}
        return {"beta1": self.beta1, "beta2": self.beta2}

    def state(self) -> dict[str, Tensor]:
        """The current state as float64 tensors (exact values of the fixed-point state)."""
        return {k: r.value() for k, r in self._reps.items()}

    def int_state(self) -> dict[str, Tensor]:
        """The current state's integer representations (copies)."""
        return {k: r.intrep.clone() for k, r in self._reps.items()}

    def memory_bits(self) -> float:
        """Information held in the buffers, in bits (all elements)."""
        return sum(r.buffer.bits() for r in self._reps.values())

    def memory_bytes(self) -> int:
        """Bytes of the buffers' int64 words."""
        return sum(r.buffer.nbytes() for r in self._reps.values())

    def buffers_empty(self) -> bool:
        return all(r.buffer.is_empty for r in self._reps.values())

    def _grad(self, w: Tensor, t: int) -> Tensor:
        g = torch.as_tensor(self.grad_fn(w, t)).detach().to(torch.float64)
        if g.shape != w.shape:
            raise ValueError(f"grad_fn returned shape {tuple(g.shape)}, expected "
                             f"{tuple(w.shape)}")
        return g

    def _adam_update(self, t: int) -> Tensor:
        k = t + 1
        bc1 = 1.0 - float(self.beta1) ** k
        bc2 = 1.0 - float(self.beta2) ** k
        m, v = self._reps["m"].value(), self._reps["v"].value()
        return self.lr * (m / bc1) / ((v / bc2).sqrt() + self.eps)

    def _forward_step(self) -> None:
        t = self._step
        g = self._grad(self._w.value(), t)
        done: list[Callable[[], None]] = []
        try:
            if self.optimizer == "momentum":
                b, mu = self._reps["b"], self.mu
                b.mul(mu)
                done.append(lambda: b.div(mu))
                b.add(g)
                done.append(lambda: b.sub(g))
                self._w.sub(self.lr * b.value())
            else:
                m, v, b1, b2 = self._reps["m"], self._reps["v"], self.beta1, self.beta2
                gm, gv = (1.0 - float(b1)) * g, (1.0 - float(b2)) * (g * g)
                m.mul(b1)
                done.append(lambda: m.div(b1))
                m.add(gm)
                done.append(lambda: m.sub(gm))
                v.mul(b2)
                done.append(lambda: v.div(b2))
                v.add(gv)
                done.append(lambda: v.sub(gv))
                self._w.sub(self._adam_update(t))
        except OverflowError:
            for undo in reversed(done):  # leave the trajectory as it was
                undo()
            raise
        self._step += 1

    def forward(self, steps: int) -> dict[str, Tensor]:
        """Run ``steps`` exact steps from the current step index; returns :meth:`state`."""
        for _ in range(int(steps)):
            self._forward_step()
        return self.state()

    def backward_step(self) -> tuple[dict[str, Tensor], Tensor]:
        """Undo the last step exactly: ``(state before it, the gradient g it used)``."""
        if self._step == 0:
            raise RuntimeError("no step to reverse (the trajectory is at step 0)")
        t = self._step - 1
        if self.optimizer == "momentum":
            b = self._reps["b"]
            self._w.add(self.lr * b.value())
            g = self._grad(self._w.value(), t)
            b.sub(g)
            b.div(self.mu)
        else:
            m, v = self._reps["m"], self._reps["v"]
            self._w.add(self._adam_update(t))
            g = self._grad(self._w.value(), t)
            v.sub((1.0 - float(self.beta2)) * (g * g))
            v.div(self.beta2)
            m.sub((1.0 - float(self.beta1)) * g)
            m.div(self.beta1)
        self._step = t
        return self.state(), g

    def reverse(self, steps: int) -> dict[str, Tensor]:
        """Undo ``steps`` steps; returns the state then reached."""
        if steps > self._step:
            raise ValueError(f"cannot reverse {steps} steps from step {self._step}")
        for _ in range(int(steps)):
            self.backward_step()
        return self.state()
