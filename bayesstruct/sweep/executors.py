"""Where a sweep's trials run: one class per executor, registered by its ``--executor`` key.

``local`` (the default) is a pool of worker processes on this machine, one torch thread each,
at most one per core. ``ray`` submits the same trial function as Ray tasks (``num_cpus=1``
each) to a local Ray instance it starts, or to a running cluster at ``--address``; it needs the
optional extra ``pip install 'bayesstruct[ray]'``. Both yield each trial's outcome as it
finishes, so the sweep records it at once.

Adding an executor is one class here with ``@register_executor("key")`` and an entry in the
executor contract test (``tests/sweep/test_executors.py``).
"""

from __future__ import annotations

import multiprocessing
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from ..errors import ConfigError

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RayExecutor", "get_executor",
           "register_executor"]

EXECUTORS: dict[str, type[Executor]] = {}

Task = tuple[int, dict[str, Any]]  # (index, spec)


def register_executor(key: str) -> Callable[[type[Executor]], type[Executor]]:
    """Class decorator: make ``cls`` the executor ``--executor key``."""

    def deco(cls: type[Executor]) -> type[Executor]:
        cls.key = key
        EXECUTORS[key] = cls
        return cls

    return deco


def get_executor(key: str, **kw: Any) -> Executor:
    """The executor registered as ``key``, constructed with ``kw``."""
    if key not in EXECUTORS:
        raise ConfigError(f"--executor {key!r}; allowed: {', '.join(EXECUTORS)}")
    return EXECUTORS[key](**kw)


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Executor(ABC):
    """Runs ``fn(spec)`` for every task, at most ``max_parallel`` at a time; :meth:`map`
    yields ``(index, outcome)`` in the order the trials finish."""

    key: str = ""

    def __init__(self, max_parallel: int | None = None, address: str | None = None) -> None:
        if max_parallel is not None and max_parallel < 1:
            raise ConfigError(f"--max-parallel {max_parallel}: need an integer >= 1")
        self.max_parallel = max_parallel
        self.address = address

    @abstractmethod
    def map(self, fn: Callable[[dict], dict], tasks: list[Task]) -> Iterator[tuple[int, dict]]:
        """Run the tasks; yield each one's ``(index, fn(spec))`` as it finishes."""

    def describe(self) -> str:
        return self.key


@register_executor("local")
class LocalExecutor(Executor):
    """A pool of ``max_parallel`` worker processes (default: one per core, never more), each
    started fresh (``spawn``) and running one torch thread."""

    def __init__(self, max_parallel: int | None = None, address: str | None = None) -> None:
        super().__init__(max_parallel, address)
        if address is not None:
            raise ConfigError("--address names a Ray cluster; it goes with --executor ray")
        self.workers = min(max_parallel or cores(), cores())

    def describe(self) -> str:
        return f"local pool of {self.workers} process(es), 1 torch thread each"

    def map(self, fn, tasks):
        if not tasks:
            return
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(self.workers, len(tasks)),
                                 mp_context=ctx) as pool:
            pending = {pool.submit(fn, spec): i for i, spec in tasks}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = pending.pop(fut)
                    try:
                        outcome = fut.result()
                    except Exception as e:  # noqa: BLE001 -- the worker process itself died
                        outcome = {"status": "failed", "error": f"worker process failed: "
                                   f"{type(e).__name__}: {e}", "seconds": None}
                    yield i, outcome


@register_executor("ray")
class RayExecutor(Executor):
    """Ray tasks of one CPU each: on a local Ray instance started for the sweep (at most
    ``max_parallel`` CPUs, default one per core) or on the cluster at ``address``
    (``ray://HOST:10001`` or ``HOST:6379``; at most ``max_parallel`` trials in flight)."""

    def __init__(self, max_parallel: int | None = None, address: str | None = None) -> None:
        super().__init__(max_parallel, address)
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError("--executor ray needs Ray: pip install 'bayesstruct[ray]' (or "
                              "use the default --executor local)") from None

    def describe(self) -> str:
        where = self.address or "a local Ray instance"
        return f"ray ({where}), 1 CPU per trial"

    def map(self, fn, tasks):
        import ray

        if not tasks:
            return
        started = not ray.is_initialized()
        if started:
            kw: dict[str, Any] = {"address": self.address, "log_to_driver": False,
                                  "include_dashboard": False}
            if self.address is None:
                kw["num_cpus"] = min(self.max_parallel or cores(), cores())
            ray.init(**kw)
        try:
            remote = ray.remote(num_cpus=1, max_retries=0)(fn)
            limit = self.max_parallel or len(tasks)
            queue = list(tasks)
            inflight: dict[Any, int] = {}
            while queue or inflight:
                while queue and len(inflight) < limit:
                    i, spec = queue.pop(0)
                    inflight[remote.remote(spec)] = i
                done, _ = ray.wait(list(inflight), num_returns=1)
                for ref in done:
                    i = inflight.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except Exception as e:  # noqa: BLE001 -- the Ray worker died
                        outcome = {"status": "failed", "error": f"ray task failed: "
                                   f"{type(e).__name__}: {str(e).splitlines()[0]}",
                                   "seconds": None}
                    yield i, outcome
        finally:
            if started:
                ray.shutdown()
