"""What a run tells the user while it works: log lines, progress, phases and ``history.csv``.

* :func:`configure` sets up the ``bayesstruct`` logger (stdlib :mod:`logging`, one handler on
  stderr): ``-1`` quiet (warnings and errors only, no progress), ``0`` the default (info lines
  and progress), ``1`` verbose (debug lines too). Calling it again replaces the handler.
* :func:`progress` is a drop-in for the part of ``tqdm`` the package uses (``update``,
  ``set_postfix``, ``set_postfix_str``, ``close``, iteration, ``with``). On a terminal it *is* a
  tqdm bar; piped into a file or a CI log it writes no carriage returns, only a plain log line
  every ~10 % of the work (but not within :data:`MIN_SECONDS` of the last one) or after
  :data:`LINE_SECONDS` seconds without one, and a final line::

      svi: epoch 30/100 (30 %), loss 1.23e+03, 12 s elapsed, ~28 s left

* :func:`phase` brackets a step without a natural count ("pruning curve ...", "pruning curve
  done in 4.2 s").
* :class:`History` appends one CSV row per epoch (or per logged step) to a run directory's
  ``history.csv`` as training proceeds, flushed per row, so ``tail -f`` follows it and an
  interrupted run keeps its rows; with ``BAYESSTRUCT_TENSORBOARD=DIR`` in the environment the same
  scalars also go to TensorBoard (``pip install tensorboard``).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["HISTORY", "LINE_SECONDS", "MIN_SECONDS", "PHASE_SECONDS", "TENSORBOARD_ENV",
           "History", "Progress", "configure", "get_logger", "interactive", "phase", "progress",
           "read_history", "sample_stats_rows", "tensorboard_dir", "verbosity"]

ROOT = "bayesstruct"
#: the file name of the per-epoch history in a run directory
HISTORY = "history.csv"
#: in log-line mode, the longest gap between two progress lines (seconds)
LINE_SECONDS = 60.0
#: in log-line mode, the shortest: a ~10 % step sooner than this after the last line is not
#: reported (a loop of a few seconds gets its final line only)
MIN_SECONDS = 2.0
#: a :func:`phase` says it is running once it has taken this long (seconds); quicker ones
#: print nothing
PHASE_SECONDS = 1.0
#: the environment variable that switches on TensorBoard scalars (its value: the log folder)
TENSORBOARD_ENV = "BAYESSTRUCT_TENSORBOARD"

_LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}
_state: dict[str, Any] = {"verbosity": 0}


class _StderrHandler(logging.StreamHandler):
    """A handler on whatever ``sys.stderr`` is when a record is emitted (so a redirected or
    captured stderr gets the lines)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # the base class assigns it; sys.stderr is always used
        pass


def configure(verbosity: int = 0) -> None:
    """Set up the ``bayesstruct`` logger: ``-1`` quiet (warnings and errors, no progress),
    ``0`` info lines and progress, ``1`` debug lines too. Idempotent: the handler it adds
    replaces the one an earlier call added."""
    verbosity = max(-1, min(1, int(verbosity)))
    _state["verbosity"] = verbosity
    logger = logging.getLogger(ROOT)
    for h in list(logger.handlers):
        if isinstance(h, _StderrHandler):
            logger.removeHandler(h)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s" if verbosity < 1 else
                                           "%(asctime)s %(name)s %(levelname)s: %(message)s",
                                           datefmt="%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(_LEVELS[verbosity])
    logger.propagate = False


def verbosity() -> int:
    """The verbosity of the last :func:`configure` (``0`` before any call)."""
    return _state["verbosity"]


def get_logger(name: str) -> logging.Logger:
    """The logger ``name`` under ``bayesstruct`` (``"svi"`` -> ``bayesstruct.svi``; a module's
    ``__name__`` is taken as it is)."""
    if name == ROOT or name.startswith(ROOT + "."):
        return logging.getLogger(name)
    return logging.getLogger(f"{ROOT}.{name}")


_log = get_logger("progress")


def _is_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    try:
        ip = shell.get_ipython()
    except AttributeError:
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def interactive() -> bool:
    """Whether :func:`progress` draws tqdm bars (stderr is a terminal, or a notebook) rather
    than log lines; for code that hands progress to a library's own bar (Pyro's MCMC)."""
    return _is_terminal() or _in_notebook()


def _seconds(s: float) -> str:
    if s < 60:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def _value(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if isinstance(v, int):
        return str(v)
    return f"{v:.4g}" if math.isfinite(v) else str(v)


class Progress:
    """Progress of one loop (:func:`progress`): a tqdm bar on a terminal, plain log lines
    elsewhere, nothing when disabled."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | float | None = None,
                 desc: str = "", unit: str = "it", enabled: bool = True, initial: int = 0,
                 leave: bool = True, every: float = 0.1, seconds: float | None = None,
                 min_seconds: float | None = None) -> None:
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.leave = leave
        self._lines = 0
        self.n = initial
        self.initial = initial
        self.postfix = ""
        self.disable = not enabled or verbosity() < 0
        self._bar = None
        self._closed = False
        self._t0 = time.perf_counter()
        self._last = self._t0
        self._every = every
        self._seconds = LINE_SECONDS if seconds is None else seconds
        self._min_seconds = MIN_SECONDS if min_seconds is None else min_seconds
        self._next = self._milestone(initial)
        if self.disable:
            return
        if interactive():
            from tqdm.auto import tqdm

            self._bar = tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial,
                             leave=leave, dynamic_ncols=True)

    # -- the tqdm subset -----------------------------------------------------------------------
    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("progress() without an iterable cannot be iterated")
        if self._bar is not None:
            try:
                yield from self._bar
            finally:
                self._bar.close()
            return
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total) if self.total is not None else 0

    def __bool__(self) -> bool:  # a bar without a total is still a bar
        return True

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int | float = 1) -> None:
        """Count ``n`` more units done."""
        self.n += n
        if self.disable:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.perf_counter()
        crossed = self._next is not None and self.n >= self._next
        if crossed:
            self._next = self._milestone(self.n)
        since = now - self._last
        if (crossed and since >= self._min_seconds) or since >= self._seconds:
            if self.total is None or self.n < self.total:  # the final line says the rest
                self._emit(self._line(now))
                self._last = now

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True,
                    **kwargs: Any) -> None:
        """Show ``key value`` pairs after the count (numbers with 4 significant digits)."""
        items = {**(ordered_dict or {}), **kwargs}
        if self._bar is not None:
            self._bar.set_postfix(items, refresh=refresh)
        self.postfix = ", ".join(f"{k} {_value(v)}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(s, refresh=refresh)
        self.postfix = s

    def set_description(self, desc: str = "", refresh: bool = True) -> None:
        if self._bar is not None:
            self._bar.set_description(desc, refresh=refresh)
        self.desc = desc

    def write(self, s: str) -> None:
        """A message that does not break the bar."""
        if self._bar is not None:
            self._bar.write(s, file=sys.stderr)
        else:
            _log.info(s)

    def close(self) -> None:
        """End the bar; in log-line mode write the final line (once)."""
        if self._closed:
            return
        self._closed = True
        if self.disable:
            return
        if self._bar is not None:
            self._bar.close()
            return
        now = time.perf_counter()
        quick = not self._lines and now - self._t0 < self._min_seconds
        finished = self.total is not None and self.n >= self.total
        if quick and (not self.leave or (finished and not self.postfix)):
            return  # over at once with nothing to report (no loss, no accuracy): no line
        if self.n > self.initial or self.total is not None:
            self._emit(self._line(now, final=True))

    # -- log-line mode -------------------------------------------------------------------------
    def _milestone(self, n: float) -> float | None:
        if not self.total or self._every <= 0:
            return None
        step = max(self.total * self._every, 1)
        return (math.floor(n / step) + 1) * step

    def _count(self) -> str:
        unit = self.unit if self.unit != "it" else "step"
        if self.total is None:
            return f"{_value(self.n)} {unit}{'s' if self.n != 1 else ''}"
        pct = 100 * self.n / self.total if self.total else 100.0
        return f"{unit} {_value(self.n)}/{_value(self.total)} ({pct:.0f} %)"

    def _line(self, now: float, final: bool = False) -> str:
        elapsed = now - self._t0
        parts = [self._count()]
        if self.postfix:
            parts.append(self.postfix)
        if final:
            finished = self.total is None or self.n >= self.total
            parts.append(f"{'done' if finished else 'stopped'} in {_seconds(elapsed)}")
        else:
            parts.append(f"{_seconds(elapsed)} elapsed")
            done = self.n - self.initial
            if self.total and done > 0 and self.n < self.total:
                parts.append(f"~{_seconds(elapsed / done * (self.total - self.n))} left")
        return (f"{self.desc}: " if self.desc else "") + ", ".join(parts)

    def _emit(self, line: str) -> None:
        self._lines += 1
        _log.info(line)


def progress(iterable: Iterable | None = None, *, total: int | float | None = None,
             desc: str = "", unit: str = "it", enabled: bool = True, initial: int = 0,
             **kwargs: Any) -> Progress:
    """A progress report over ``iterable`` (or ``total`` units counted by ``.update``): a
    tqdm bar when stderr is a terminal, else plain log lines at ~10 % steps and at most
    :data:`LINE_SECONDS` apart, plus a final line; nothing when ``enabled`` is false or
    :func:`configure` made the logger quiet. ``leave``, ``every`` (the fraction between two
    lines), ``seconds`` and ``min_seconds`` (the longest and shortest gap between two lines)
    may be passed too; a ``leave=False`` loop over within ``min_seconds`` writes no line."""
    return Progress(iterable, total=total, desc=desc, unit=unit, enabled=enabled,
                    initial=initial, **kwargs)


@contextlib.contextmanager
def phase(name: str, *, enabled: bool = True, logger: logging.Logger | None = None
          ) -> Iterator[None]:
    """Say that a step without a natural count is running, if it takes a while: ``"name ..."``
    once it has run for :data:`PHASE_SECONDS` and ``"name done in X s"`` at its end (info
    level); a phase left by an exception after its start line logs ``"name stopped after X
    s"``. A quicker phase prints nothing (with ``-v``, verbosity 1, every phase is logged)."""
    log = logger or get_logger("phase")
    on = enabled and verbosity() >= 0
    t0 = time.perf_counter()
    started = threading.Event()

    def announce() -> None:
        started.set()
        log.info(f"{name} ...")

    timer = None
    if on and verbosity() >= 1:
        announce()
    elif on:
        timer = threading.Timer(PHASE_SECONDS, announce)
        timer.daemon = True
        timer.start()
    try:
        yield
    except BaseException:
        if timer is not None:
            timer.cancel()
        if started.is_set():
            log.info(f"{name} stopped after {_seconds(time.perf_counter() - t0)}")
        raise
    if timer is not None:
        timer.cancel()
    if started.is_set():
        log.info(f"{name} done in {_seconds(time.perf_counter() - t0)}")


# -- history.csv --------------------------------------------------------------------------------
def tensorboard_dir() -> Path | None:
    """The TensorBoard log folder asked for by ``BAYESSTRUCT_TENSORBOARD`` (``None``: not asked).

    Raises:
        ConfigError: it is asked for and ``torch.utils.tensorboard`` cannot be imported."""
    value = os.environ.get(TENSORBOARD_ENV, "").strip()
    if not value:
        return None
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError(f"{TENSORBOARD_ENV}={value} asks for TensorBoard scalars, but "
                          "TensorBoard is not installed: pip install tensorboard (or unset "
                          f"{TENSORBOARD_ENV})") from None
    return Path(value)


def _tensorboard_writer(path: Path):
    folder = tensorboard_dir()
    if folder is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(folder / path.parent.name))


def sample_stats_rows(post: Any) -> list[dict[str, Any]]:
    """One row per chain and draw of an ``InferenceData``'s ``sample_stats`` (every variable
    with one value per draw: step size, divergence, log density, ...), for a sampler's
    ``history.csv``."""
    if post is None or "sample_stats" not in post.groups():
        return []
    stats = post.sample_stats
    names = [k for k, v in stats.data_vars.items() if v.dims == ("chain", "draw")]
    values = {k: stats[k].values for k in names}
    rows = []
    for c in range(stats.sizes.get("chain", 0)):
        for d in range(stats.sizes.get("draw", 0)):
            rows.append({"chain": c, "draw": d, **{k: values[k][c, d] for k in names}})
    return rows


def read_history(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a ``history.csv`` (values as strings; ``[]`` when there is none)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _cell(v: Any) -> Any:
    if hasattr(v, "item") and getattr(v, "ndim", None) == 0:  # numpy / torch scalars
        v = v.item()
    if isinstance(v, bool):
        return int(v)
    return v


class History:
    """``history.csv``: rows appended as training proceeds, each flushed to disk.

    ``rows`` are the rows already done (a resumed run's, from its checkpoint): the file is
    rewritten atomically with them before anything is appended, so a resume never duplicates
    a row nor keeps one of a step it redoes. A row with a key the header lacks rewrites the
    file with the wider header. ``path=None`` gives a writer that writes nothing.

    ``step`` names the column TensorBoard uses as the step (``epoch``); with
    ``BAYESSTRUCT_TENSORBOARD`` set, every numeric value of a row is also logged as a scalar
    ``<prefix><column>``."""

    def __init__(self, path: str | os.PathLike | None, rows: Sequence[Mapping[str, Any]] = (),
                 *, step: str = "epoch", prefix: str = "",
                 tensorboard: Callable[[Path], Any] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.step, self.prefix = step, prefix
        self.rows: list[dict[str, Any]] = [dict(r) for r in rows]
        self.fields: list[str] = []
        self._file = None
        self._writer = None
        self._tb = None
        if self.path is None:
            return
        self._tb = (tensorboard or _tensorboard_writer)(self.path)
        self._rewrite()

    @classmethod
    def resume(cls, path: str | os.PathLike | None, keep: Callable[[dict[str, str]], bool],
               **kwargs: Any) -> History:
        """Continue ``path``: the rows ``keep`` accepts stay, the rest is dropped."""
        rows = [r for r in read_history(path) if keep(r)] if path is not None else []
        return cls(path, rows, **kwargs)

    def _rewrite(self) -> None:
        from .files import atomic_path

        assert self.path is not None
        self.close_file()
        for r in self.rows:
            self._widen(r)
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, self.fields, extrasaction="ignore")
            if self.fields:
                w.writeheader()
            w.writerows({k: _cell(v) for k, v in r.items()} for r in self.rows)
        self._file = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.DictWriter(self._file, self.fields, extrasaction="ignore")

    def _widen(self, row: Mapping[str, Any]) -> bool:
        new = [k for k in row if k not in self.fields]
        self.fields.extend(new)
        return bool(new)

    def append(self, row: Mapping[str, Any]) -> None:
        """Add ``row`` (flushed at once)."""
        row = {k: _cell(v) for k, v in row.items()}
        self.rows.append(row)
        if self.path is None:
            return
        if self._writer is None or self._widen(row):
            self._rewrite()  # a new column (or a closed file): the whole file again
        else:
            self._writer.writerow(row)
            self._file.flush()
            with contextlib.suppress(OSError):
                os.fsync(self._file.fileno())
        if self._tb is not None:
            step = row.get(self.step, len(self.rows))
            for k, v in row.items():
                if k != self.step and isinstance(v, int | float) and not isinstance(v, bool):
                    self._tb.add_scalar(f"{self.prefix}{k}", v, int(step))
            self._tb.flush()

    def close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None

    def close(self) -> None:
        """Close the file (and the TensorBoard writer)."""
        self.close_file()
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
