"""Files a run writes: atomic, durable, readable by the user, and never half there.

* :func:`atomic_path` writes to a temporary file beside the target, ``fsync``\\ s it, renames
  it over the target (``os.replace``, atomic on POSIX) and ``fsync``\\ s the folder, so a crash
  or ``SIGKILL`` at any moment leaves either the old file or the new one. The file gets the
  mode an ordinary ``open()`` would give (``0666`` less the umask: ``0644`` under ``022``),
  not ``mkstemp``'s private ``0600``.
* :func:`save_checkpoint` can keep the previous checkpoint beside the newest (``keep=2``), and
  :func:`load_latest_checkpoint` falls back to it, with a warning, when the newest cannot be
  read.
* :func:`remove_stale_temporaries` deletes what a killed writer left behind.
* :func:`write_json` writes strict JSON: a NaN or infinity becomes ``null`` and its path is
  listed under ``"non_finite"``, so every JSON parser reads the file.
* :class:`RunLock` makes a run directory belong to one process for the run's life.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError, RunDirError

__all__ = ["PREVIOUS_SUFFIX", "RunLock", "atomic_path", "load_checkpoint",
           "load_latest_checkpoint", "previous_path", "remove_stale_temporaries",
           "save_checkpoint", "write_json", "write_text"]

TEMP_SUFFIX = ".tmp"
PREVIOUS_SUFFIX = ".prev"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some file systems do not open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, keep_previous: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The temporary file is flushed to disk before the rename and the folder after it; the new
    file has mode ``0666 & ~umask``. On an exception the temporary file is removed and ``path``
    is untouched. ``keep_previous`` moves the old ``path`` to :func:`previous_path` just before
    the rename (the new file is then already complete on disk)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        if keep_previous and path.exists():
            os.replace(path, previous_path(path))
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files (``.NAME.XXXX.tmp``) that a killed writer left under
    ``directory``. Call it only while no other process writes there (under :class:`RunLock`)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.rglob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _finite(obj: Any, where: str, bad: dict[str, str]) -> Any:
    if isinstance(obj, dict):
        return {k: _finite(v, f"{where}.{k}" if where else str(k), bad) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v, f"{where}[{i}]", bad) for i, v in enumerate(obj)]
    if isinstance(obj, float) and not math.isfinite(obj):
        bad[where] = repr(obj)
        return None
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # numpy / torch scalars
        return _finite(obj.item(), where, bad)
    return obj


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as strict JSON (RFC 8259) atomically.

    A non-finite float is written as ``null`` and its dotted path recorded, with the value it
    had, under the top-level key ``"non_finite"`` (e.g. ``{"test_nll": "nan"}``), so the file
    parses everywhere and the reader still learns why the value is missing."""
    bad: dict[str, str] = {}
    clean = _finite(obj, "", bad)
    if bad and isinstance(clean, dict):
        clean["non_finite"] = bad
    return write_text(path, json.dumps(clean, indent=indent, allow_nan=False))


def previous_path(path: str | os.PathLike) -> Path:
    """Where :func:`save_checkpoint` keeps the checkpoint before ``path`` (``last.prev.pt``)."""
    path = Path(path)
    return path.with_name(f"{path.stem}{PREVIOUS_SUFFIX}{path.suffix}")


def save_checkpoint(obj: dict, path: str | os.PathLike, *, keep: int = 1) -> Path:
    """``torch.save`` atomically; only tensors and plain Python values (``weights_only`` safe).

    ``keep=2`` keeps the checkpoint that ``path`` held before as :func:`previous_path`, the
    fallback of :func:`load_latest_checkpoint`. The new file is complete on disk before the old
    one moves, so at every instant at least one readable checkpoint exists."""
    if keep not in (1, 2):
        raise ValueError(f"keep must be 1 or 2 (got {keep})")
    with atomic_path(path, keep_previous=keep == 2) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load with ``weights_only=True``: a checkpoint can never execute code.

    Raises:
        CheckpointError: the file is missing, empty, truncated or not a checkpoint (the
            message names it)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - EOFError, UnpicklingError, RuntimeError (zip), ...
        reason = "it is empty" if path.stat().st_size == 0 else f"{type(e).__name__}: {e}"
        raise CheckpointError(f"checkpoint {path} cannot be read ({reason.splitlines()[0]})"
                              ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a "
                              "bayesstruct checkpoint")
    return obj


def load_latest_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                           ) -> tuple[dict, Path]:
    """The newest readable checkpoint of ``path`` and the file it came from: ``path`` itself,
    or (with a warning naming what was wrong with the newest) :func:`previous_path`.

    Raises:
        CheckpointError: neither can be read."""
    path = Path(path)
    errors = []
    for candidate in (path, previous_path(path)):
        if not candidate.exists():
            continue
        try:
            obj = load_checkpoint(candidate, map_location)
        except CheckpointError as e:
            errors.append(str(e))
            continue
        if errors:
            warnings.warn(f"{errors[0]}; using the previous checkpoint {candidate} "
                          f"(epoch {obj.get('epoch', '?')})", stacklevel=2)
        return obj, candidate
    if not errors:
        raise CheckpointError(f"no checkpoint at {path} (nor {previous_path(path).name})")
    raise CheckpointError("; ".join(errors) + " and there is no readable earlier checkpoint")


class RunLock:
    """An exclusive, advisory lock on a run directory for the life of one process.

    ``flock`` on ``RUN_DIR/.lock`` (released by the kernel when the process ends, even on
    ``SIGKILL``: a lock is never stale); the holder's pid is written into the file so a
    second process can say who holds it::

        with RunLock(out):
            ...  # only this process writes into out

    Raises:
        RunDirError: another process holds the directory ("RUN_DIR is in use by pid N")."""

    NAME = ".lock"

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.path = self.directory / self.NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        import fcntl

        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            try:
                pid = self.path.read_text().strip() or "?"
            except OSError:
                pid = "?"
            raise RunDirError(f"{self.directory} is in use by pid {pid}; wait for it to finish "
                              "or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
