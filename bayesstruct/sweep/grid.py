"""The trials of a sweep: a grid of ``--set`` overrides times a list of seeds.

    --grid prior.hyper=empirical_bayes,gamma --grid inference.lr=1e-3,3e-3 --seeds 0-4

is 2 x 2 x 5 = 20 trials. A value list splits on commas outside brackets, so a list value
stays whole: ``--grid "net.hidden=[100],[300,100]"`` is two settings.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field

from ..errors import ConfigError

__all__ = ["Trial", "parse_grid", "parse_seeds", "trials"]


@dataclass(frozen=True)
class Trial:
    """One training run of a sweep: grid ``settings`` (key -> value, as ``--set`` takes
    them) and a ``seed``."""

    settings: tuple[tuple[str, str], ...]
    seed: int
    overrides: tuple[str, ...] = field(default=(), compare=False)

    @property
    def setting(self) -> str:
        """``key=value`` pairs joined by spaces (the summary's row label)."""
        return " ".join(f"{k}={v}" for k, v in self.settings) or "(entry as is)"

    @property
    def id(self) -> str:
        """A file-name-safe, stable name: the settings and seed, readable where short."""
        text = "__".join(f"{k}={v}" for k, v in self.settings)
        safe = re.sub(r"[^A-Za-z0-9._=-]+", "-", text).strip("-")
        if len(safe) > 80 or safe != text.replace(" ", "-"):
            safe = safe[:60] + "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
        return f"{safe}__seed={self.seed}" if safe else f"seed={self.seed}"

    def set_args(self) -> list[str]:
        """Every ``--set`` override of the trial: the sweep's fixed ones, its grid settings,
        its seed."""
        return [*self.overrides, *(f"{k}={v}" for k, v in self.settings), f"seed={self.seed}"]


def _split_values(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[{("
        depth -= ch in "]})"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [v.strip() for v in out]


def parse_grid(specs: list[str]) -> list[tuple[str, list[str]]]:
    """``["key=v1,v2", ...]`` -> ``[(key, [v1, v2]), ...]``; refuses a malformed spec, an
    empty value and a key given twice."""
    grid: list[tuple[str, list[str]]] = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--grid {spec!r}: expected KEY=V1,V2,... (e.g. "
                              "prior.hyper=empirical_bayes,gamma)")
        vals = _split_values(values)
        if any(v == "" for v in vals):
            raise ConfigError(f"--grid {spec!r}: an empty value; expected KEY=V1,V2,...")
        if len(set(vals)) < len(vals):
            raise ConfigError(f"--grid {spec!r}: a value is listed twice")
        if key in (k for k, _ in grid):
            raise ConfigError(f"--grid: key {key!r} given twice; list its values in one --grid")
        if key == "seed":
            raise ConfigError("--grid seed=...: give seeds with --seeds (e.g. --seeds 0-4)")
        grid.append((key, vals))
    return grid


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> ``[0, 1, 2, 3, 4]``; ``"0,3,7"`` and mixtures such as ``"0-2,9"`` too."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if m is None:
            raise ConfigError(f"--seeds {text!r}: expected seeds such as 0-4 or 0,3,7")
        lo, hi = int(m[1]), int(m[2]) if m[2] is not None else int(m[1])
        if hi < lo:
            raise ConfigError(f"--seeds {text!r}: range {part} runs backwards")
        seeds.extend(range(lo, hi + 1))
    if len(set(seeds)) < len(seeds):
        raise ConfigError(f"--seeds {text!r}: a seed is listed twice")
    return seeds


def trials(grid: list[tuple[str, list[str]]], seeds: list[int],
           overrides: list[str] | None = None) -> list[Trial]:
    """Every combination of the grid's values, each with every seed (seeds innermost)."""
    keys = [k for k, _ in grid]
    fixed = tuple(overrides or ())
    return [Trial(tuple(zip(keys, combo, strict=True)), s, fixed)
            for combo in itertools.product(*(v for _, v in grid)) for s in seeds]
