"""Peak tensor memory of one training step, measured the same way for every method.

``peak_step_bytes(step, exclude)`` runs ``step()`` once under a ``TorchDispatchMode`` that sees
every tensor an operator returns (forward, backward and the optimiser's step, on the calling
thread) and follows each *storage* (views share one) until Python frees it (storages keep their
Python object, so ``weakref.finalize`` fires when the memory is released). Storages alive before
the step (parameters, their gradients, optimiser state, a parameter store: every tensor ``gc``
finds) are counted from the start and followed the same way, so run it in a process that holds
one method only. The result is the largest number of bytes alive at once during the step, less
the storages of ``exclude`` (the data set).

Allocations an operator makes and frees inside its own kernel (workspace) are not seen, for any
method alike.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["peak_step_bytes"]


class _Tracker(TorchDispatchMode):
    def __init__(self, skip: set[int]) -> None:
        super().__init__()
        self.skip = skip  # data pointers never counted (the data set)
        self.seen: set[int] = set()
        self.live = 0
        self.peak = 0
        self.active = True

    def follow(self, t: torch.Tensor) -> None:
        st = t.untyped_storage()
        ptr, n = st.data_ptr(), st.nbytes()
        if n == 0 or ptr in self.skip or ptr in self.seen or st.device.type == "meta":
            return
        self.seen.add(ptr)
        self.live += n
        self.peak = max(self.peak, self.live)
        weakref.finalize(st, self._freed, ptr, n)

    def _freed(self, ptr: int, n: int) -> None:
        if self.active:
            self.live -= n
            self.seen.discard(ptr)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.follow(t)
        return out


def _live_tensors() -> Iterable[torch.Tensor]:
    for o in gc.get_objects():
        try:
            if isinstance(o, torch.Tensor):
                yield o
        except ReferenceError:  # a dead weak proxy
            continue


def peak_step_bytes(step: Callable[[], object],
                    exclude: Iterable[torch.Tensor] = ()) -> int:
    """Bytes of tensor storage alive at the peak of one ``step()`` (see the module docstring);
    the storages of ``exclude`` are left out."""
    gc.collect()
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    tracker = _Tracker(skip)
    for t in _live_tensors():
        if t.device.type != "meta" and not t.is_sparse:
            try:
                tracker.follow(t)
            except (RuntimeError, NotImplementedError):  # tensors without a storage
                continue
    try:
        with tracker:
            step()
    finally:
        tracker.active = False
    return tracker.peak
