"""The life of a run directory: who may write into it, what a resume may change.

A run directory holds ``config.yaml`` (written first), a ``.lock`` file and what the run
writes. The rules:

* **One process at a time.** :func:`open_run_dir` holds :class:`~bayesstruct.files.RunLock` for
  the run's life; a second process is refused with "RUN_DIR is in use by pid N".
* **Only our own folders.** ``--out`` on an existing, non-empty folder that is not a
  bayesstruct run directory is refused (:func:`check_out`), so a user's files are never
  overwritten; an existing run is only continued by ``--resume``.
* **A failed start leaves nothing.** If the run created the folder and stops on a
  :class:`~bayesstruct.errors.UserInputError` before anything was trained, the folder is removed.
* **A resume continues the same run.** :func:`resume_changes` lists the settings a resume would
  change; everything that shapes training must stay (``inference.epochs`` may grow, and the
  device, the posterior draws and the pruning settings may change).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import RunDirError, UserInputError
from .files import RunLock, remove_stale_temporaries

__all__ = ["RESUMABLE", "check_out", "open_run_dir", "resume_changes"]

CONFIG = "config.yaml"

#: fields a ``--resume`` may change (dotted paths; a trailing ``.`` is a prefix). Everything
#: else in the config shapes what was already trained and is compared with the saved value.
RESUMABLE = ("device", "description", "name", "recipe", "data.data_dir", "inference.epochs",
             "inference.description", "inference.num_draws", "pruning.", "compare.methods")


def _is_run_dir(out: Path) -> bool:
    return (out / CONFIG).is_file() or (out / RunLock.NAME).is_file()


def check_out(out: str | Path, resume: bool) -> Path:
    """Refuse an ``out`` this run may not write into, before anything is written.

    Raises:
        RunDirError: ``out`` is a file, a non-empty folder that is not a run directory, an
            existing run without ``resume``, or (with ``resume``) holds no run."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} is a file, not a folder")
    if resume:
        if not (out / CONFIG).is_file():
            raise RunDirError(f"nothing to resume: {out / CONFIG} does not exist")
        return out
    if (out / CONFIG).is_file():
        raise RunDirError(f"{out} already holds a run; pass --resume to continue it or choose "
                          "another --out")
    if out.is_dir() and not _is_run_dir(out):
        held = sorted(p.name for p in out.iterdir())
        if held:
            shown = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
            raise RunDirError(f"--out {out} is not a bayesstruct run directory (it holds "
                              f"{shown}); choose a new or empty folder so nothing of yours is "
                              "overwritten")
    return out


def _has_progress(out: Path) -> bool:
    ckpt = out / "checkpoints"
    return (out / "posterior.nc").exists() or (ckpt.is_dir() and any(ckpt.iterdir()))


@contextlib.contextmanager
def open_run_dir(out: str | Path, resume: bool) -> Iterator[Path]:
    """Hold ``out`` for one run: check it (:func:`check_out`), lock it, delete temporary files
    a killed writer left, and on a :class:`UserInputError` before any training remove the
    folder again if this run created it."""
    out = check_out(out, resume)
    created = not out.exists() or not any(out.iterdir())
    lock = RunLock(out).acquire()
    try:
        check_out(out, resume)  # again under the lock: another process may have started
        remove_stale_temporaries(out)
        yield out
    except UserInputError:
        if created and not resume and not _has_progress(out):
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        lock.release()


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: d}


def resume_changes(old: dict, new: dict) -> list[tuple[str, Any, Any]]:
    """``(field, old, new)`` for every setting that differs between the saved config ``old``
    and the config of a resume ``new`` and is not in :data:`RESUMABLE`."""
    a, b = _flatten(old), _flatten(new)
    changed = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) == b.get(key):
            continue
        if any(key == r or (r.endswith(".") and key.startswith(r)) for r in RESUMABLE):
            continue
        changed.append((key, a.get(key), b.get(key)))
    return changed
