"""Exact reversible learning in fixed point (METHODS.md M6.3, Maclaurin et al. 2015)."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
import torch

from bayesstruct.inference.hypergrad.exact import (
    ExactRep,
    FixedPoint,
    InfoBuffer,
    ReversibleTrajectory,
    as_fraction,
)

# -- InfoBuffer ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed,shape", [(0, (7,)), (1, (3, 4)), (2, (1,))])
def test_infobuffer_pops_return_pushes_in_reverse_order(seed, shape):
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    buf = InfoBuffer(shape, "cpu")
    pushed = []
    for _ in range(300):
        m = max(2, min(2**20, round(2 ** rng.uniform(1, 20))))
        n = torch.randint(0, m, shape, generator=gen, dtype=torch.int64)
        buf.push(n, m)
        pushed.append((n, m))
    numel = math.prod(shape)
    assert buf.num_words >= 5  # ~3000 bits per element: several 64-bit words
    assert buf.bits() == pytest.approx(numel * sum(math.log2(m) for _, m in pushed), rel=1e-9)
    assert buf.nbytes() == buf.num_words * numel * 8
    for n, m in reversed(pushed):
        assert torch.equal(buf.pop(m), n)
    assert buf.is_empty and buf.num_words == 1 and buf.bits() == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_infobuffer_exchanges_are_undone_by_their_mirror(seed):
    """Mixed-base push/pop (the rational multiplication's use), over several words."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    buf = InfoBuffer((5,), max_base=1024)
    ops, refused = [], 0
    for _ in range(2000):
        a, b = rng.randint(1, 1024), rng.randint(1, 1024)
        if a < b and rng.random() < 0.8:
            a, b = b, a  # mostly growing, so that several words fill up
        r = torch.randint(0, a, (5,), generator=gen, dtype=torch.int64)
        try:
            ops.append((r, a, b, buf.exchange(r, a, b)))
        except RuntimeError:  # draining a later word below its start: refused, no change
            refused += 1
    assert buf.num_words >= 3 and refused < 100
    for r, a, b, s in reversed(ops):
        assert torch.equal(buf.exchange(s, b, a), r)
    assert buf.is_empty


def test_infobuffer_refuses_to_drain_a_later_word():
    """A later word can only be emptied by undoing what opened it; anything else that would
    take it below its start is refused and changes nothing."""
    buf = InfoBuffer((2,), max_base=1024)
    full, zero, one = (torch.full((2,), v, dtype=torch.int64) for v in (1023, 0, 1))
    for _ in range(5):
        buf.push(full, 1024)
    for _ in range(5000):
        s = buf.exchange(full, 1024, 1023)
        if buf.num_words == 2:
            break
    assert buf.num_words == 2 and torch.equal(s, zero)
    with pytest.raises(RuntimeError, match="underflow"):
        buf.exchange(one, 1023, 1024)  # same level drop as the inverse, different digits
    assert torch.equal(buf.exchange(s, 1023, 1024), full)  # the inverse closes the word
    assert buf.num_words == 1


def test_infobuffer_rejects_bad_input():
    buf = InfoBuffer((3,))
    with pytest.raises(ValueError, match="lie in"):
        buf.push(torch.tensor([0, 5, 1]), 5)
    with pytest.raises(ValueError, match="bases"):
        buf.push(torch.tensor([0, 0, 1]), 2**21)
    with pytest.raises(ValueError, match="int64"):
        buf.push(torch.tensor([0.0, 0.0, 1.0]), 4)


# -- ExactRep --------------------------------------------------------------------------------


@pytest.mark.parametrize("frac", [Fraction(9, 10), Fraction(999, 1000), Fraction(3, 7),
                                  Fraction(1, 1024), Fraction(1024, 1023)])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_exactrep_mul_then_div_restores(frac, sign):
    gen = torch.Generator().manual_seed(0)
    x = sign * (torch.rand(50, generator=gen, dtype=torch.float64) * 100.0 + 1e-6)
    rep = ExactRep(x)
    i0 = rep.intrep.clone()
    rep.mul(frac)
    # floor(i/d) n + s with 0 <= s < n: within n of the exact product, for either sign
    exact = [Fraction(int(i)) * frac for i in i0]
    assert all(abs(Fraction(int(j)) - e) < frac.numerator for j, e in zip(rep.intrep, exact,
                                                                           strict=True))
    assert torch.allclose(rep.value(), x * float(frac), rtol=0, atol=2e-6)
    rep.div(frac)
    assert torch.equal(rep.intrep, i0)
    assert rep.buffer.is_empty


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exactrep_random_sequence_is_undone_by_its_mirror(seed):
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    rep = FixedPoint(torch.randn(30, generator=gen, dtype=torch.float64) * 10, radix_bits=30)
    fracs = [Fraction(9, 10), Fraction(999, 1000), Fraction(1, 3), Fraction(5, 8),
             Fraction(7, 4), Fraction(1, 1024)]
    ops, snaps, refused = [], [rep.intrep.clone()], 0
    for _ in range(400):
        kind = rng.choice(["add", "sub", "mul", "mul", "div"])
        arg = (torch.randn(30, generator=gen, dtype=torch.float64) if kind in ("add", "sub")
               else rng.choice(fracs))
        try:
            getattr(rep, kind)(arg)
        except (OverflowError, RuntimeError):  # out of range, or draining a later word:
            refused += 1  # refused, and nothing changed
            assert torch.equal(rep.intrep, snaps[-1])
            continue
        ops.append((kind, arg))
        snaps.append(rep.intrep.clone())
    assert refused < 40 and rep.buffer.num_words >= 2
    inverse = {"add": "sub", "sub": "add", "mul": "div", "div": "mul"}
    for k in range(len(ops), 0, -1):
        kind, arg = ops[k - 1]
        getattr(rep, inverse[kind])(arg)
        assert torch.equal(rep.intrep, snaps[k - 1])
    assert rep.buffer.is_empty


def test_exactrep_spans_several_words():
    rep = ExactRep(torch.linspace(-3.0, 3.0, 11, dtype=torch.float64))
    i0 = rep.intrep.clone()
    for _ in range(40):  # 10 bits each: 400 bits per element
        rep.mul(Fraction(1, 1024))
    # floor division: the negative entries end at -1, the others at 0
    assert torch.equal(rep.intrep, -(torch.arange(11) < 5).to(torch.int64))
    assert rep.buffer.num_words >= 8
    assert rep.buffer.bits() == pytest.approx(11 * 400, rel=1e-9)
    for _ in range(40):
        rep.div(Fraction(1, 1024))
    assert torch.equal(rep.intrep, i0) and rep.buffer.is_empty


def test_exactrep_overflow_is_refused_and_changes_nothing():
    with pytest.raises(OverflowError, match="2\\*\\*19"):
        ExactRep(torch.tensor([1.0, 2.0**19 + 1.0], dtype=torch.float64))
    with pytest.raises(OverflowError):
        ExactRep(torch.tensor([float("nan")], dtype=torch.float64))
    rep = ExactRep(torch.tensor([2.0**18, -1.0], dtype=torch.float64))
    i0 = rep.intrep.clone()
    with pytest.raises(OverflowError):
        rep.add(torch.tensor([2.0**18 + 1.0, 0.0], dtype=torch.float64))
    with pytest.raises(OverflowError):
        rep.div(Fraction(1, 4))
    assert torch.equal(rep.intrep, i0) and rep.buffer.is_empty
    with pytest.raises(ValueError, match="rational"):
        rep.mul(Fraction(1, 2048))


# -- ReversibleTrajectory --------------------------------------------------------------------

P = 20


def _logistic_problem(seed: int = 0):
    """A 20-parameter L2-regularised logistic regression (full batch for even t, a half
    batch for odd t, so grad_fn depends on t too)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, P, generator=gen, dtype=torch.float64)
    y = (torch.rand(64, generator=gen, dtype=torch.float64) < 0.5).to(torch.float64)
    w0 = 0.5 * torch.randn(P, generator=gen, dtype=torch.float64)

    def grad_fn(w: torch.Tensor, t: int) -> torch.Tensor:
        xb, yb = (x, y) if t % 2 == 0 else (x[:32], y[:32])
        return xb.T @ (torch.sigmoid(xb @ w) - yb) / len(yb) + 1e-2 * w

    return w0, grad_fn


SETTINGS = {"momentum": {"lr": 0.05, "momentum": 0.9}, "adam": {"lr": 0.01}}


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_reversal_reconstructs_every_state_bit_for_bit(optimizer):
    w0, grad_fn = _logistic_problem()
    grads: list[torch.Tensor] = []

    def recording(w, t):
        g = grad_fn(w, t)
        grads.append(g)
        return g

    traj = ReversibleTrajectory(optimizer, w0, recording, **SETTINGS[optimizer])
    steps = 1000
    ints, floats = [traj.int_state()], [traj.state()]
    for _ in range(steps):
        traj.forward(1)
        ints.append(traj.int_state())
        floats.append(traj.state())
    assert traj.step == steps
    assert not torch.equal(floats[-1]["w"], floats[0]["w"])
    fwd_grads = list(grads)
    for t in range(steps - 1, -1, -1):
        state, g = traj.backward_step()
        assert traj.step == t
        assert torch.equal(g, fwd_grads[t])
        now = traj.int_state()
        assert all(torch.equal(now[k], ints[t][k]) for k in now)
        assert all(torch.equal(state[k], floats[t][k]) for k in state)
    assert traj.buffers_empty()
    assert torch.equal(traj.state()["w"], ExactRep(w0).value())
    assert traj.memory_bits() == 0
    with pytest.raises(RuntimeError, match="step 0"):
        traj.backward_step()


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_fixed_point_trajectory_follows_torch_optim(optimizer):
    w0, grad_fn = _logistic_problem(1)
    opts = SETTINGS[optimizer]
    w = w0.clone().requires_grad_(True)
    ref = (torch.optim.SGD([w], lr=opts["lr"], momentum=opts["momentum"])
           if optimizer == "momentum" else torch.optim.Adam([w], lr=opts["lr"]))
    steps = 200
    for t in range(steps):
        w.grad = grad_fn(w.detach(), t)
        ref.step()
    got = ReversibleTrajectory(optimizer, w0, grad_fn, **opts).forward(steps)["w"]
    rel = ((got - w.detach()).norm() / w.detach().norm()).item()
    assert rel < 1e-6
    assert ((w.detach() - w0).norm() / w0.norm()).item() > 1e-2  # it did move


@pytest.mark.parametrize("optimizer,kw,bits_per_step", [
    ("momentum", {"momentum": 0.9}, math.log2(10 / 9)),
    ("momentum", {"momentum": 0.5}, 1.0),
    ("momentum", {"momentum": 0.99}, math.log2(100 / 99)),
    ("adam", {}, math.log2(10 / 9) + math.log2(1000 / 999)),
])
def test_memory_is_log2_inverse_decay_bits_per_step(optimizer, kw, bits_per_step):
    w0, grad_fn = _logistic_problem()
    traj = ReversibleTrajectory(optimizer, w0, grad_fn, lr=1e-3, **kw)
    steps = 300
    traj.forward(steps)
    assert traj.memory_bits() == pytest.approx(steps * P * bits_per_step, rel=1e-6)
    # int64 words of >= ~50 useful bits, plus one (possibly empty) word per state tensor
    words = traj.memory_bytes() // (8 * P)
    assert words <= math.ceil(steps * bits_per_step / 50) + len(traj.state()) + 1
    assert traj.memory_bytes() < steps * P * 8 * len(traj.state()) / 10  # << storing it


# -- errors ----------------------------------------------------------------------------------


def test_plain_sgd_is_refused_naming_momentum():
    w0, grad_fn = _logistic_problem()
    with pytest.raises(ValueError, match="not reversible.*'momentum'"):
        ReversibleTrajectory("sgd", w0, grad_fn, lr=0.1)
    with pytest.raises(ValueError, match="reversible ones"):
        ReversibleTrajectory("rmsprop", w0, grad_fn, lr=0.1)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, 1.5])
def test_decays_outside_unit_interval_are_refused(decay):
    w0, grad_fn = _logistic_problem()
    with pytest.raises(ValueError, match="\\(0, 1\\)"):
        as_fraction(decay)
    with pytest.raises(ValueError, match="\\(0, 1\\)"):
        ReversibleTrajectory("momentum", w0, grad_fn, lr=0.1, momentum=decay)
    with pytest.raises(ValueError, match="\\(0, 1\\)"):
        ReversibleTrajectory("adam", w0, grad_fn, lr=0.1, betas=(0.9, decay))


def test_as_fraction():
    assert as_fraction(0.9) == Fraction(9, 10)
    assert as_fraction(0.999) == Fraction(999, 1000)
    with pytest.raises(ValueError, match="rational approximation"):
        as_fraction(0.9999)  # 1023/1024 would be far from it


def test_trajectory_overflow_is_refused_and_rolled_back():
    w0 = torch.zeros(3, dtype=torch.float64)
    traj = ReversibleTrajectory("momentum", w0, lambda w, t: torch.full_like(w, 2.0**18),
                                lr=1.0)
    with pytest.raises(OverflowError):
        traj.forward(5)
    assert traj.step <= 2
    before = traj.int_state()
    with pytest.raises(OverflowError):
        traj.forward(1)
    assert all(torch.equal(traj.int_state()[k], before[k]) for k in before)
    with pytest.raises(OverflowError):
        ReversibleTrajectory("momentum", torch.full((2,), 1e6, dtype=torch.float64),
                             lambda w, t: w, lr=0.1)
