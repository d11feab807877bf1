"""The experiment registry: which kind of run a config asks for, and the function that runs it.

An experiment kind is one module under ``bayesstruct/experiments/`` that declares its config
section (a :class:`Section` subclass, or none) and registers its run function::

    class SweepConfig(Section):
        values: list[float]

    @register_experiment("sweep", section=SweepConfig)
    def run_sweep(cfg, out, *, resume, progress, echo, init_from) -> dict: ...

The run config gets an optional ``sweep:`` section of that type (:mod:`bayesstruct.config`
builds the entry model from the registry); a config with that section runs ``run_sweep``. The
first registered kind whose section a config has wins; ``fit`` (no section) runs otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ..schema import Strict

if TYPE_CHECKING:
    from ..config import RunConfig

__all__ = ["EXPERIMENTS", "Experiment", "Section", "experiment_for", "register_experiment"]


class Section(Strict):
    """The config section of an experiment kind (``compare:``, ``hypergrad:``, ``nas:``)."""

    #: the top-level sections of the entry the experiment needs besides its own
    needs: ClassVar[frozenset[str]] = frozenset({"net", "prior"})

    def required(self) -> frozenset[str]:
        """The entry sections this experiment needs (``net``, ``prior``)."""
        return self.needs


RunFunction = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Experiment:
    """A registered experiment kind.

    ``section``: the config model of its section (``None``: the plain fit, chosen when no
    section is present); ``resumable``: whether ``--resume`` applies (the run keeps
    checkpoints); ``init_from``: whether ``--init-from`` applies; ``writes``: the files it
    leaves in the run directory (for ``bayesstruct run -h`` and the docs)."""

    key: str
    run: RunFunction
    section: type[Section] | None = None
    resumable: bool = False
    init_from: bool = False
    writes: tuple[str, ...] = ()


#: ``key -> Experiment`` in registration order
EXPERIMENTS: dict[str, Experiment] = {}

F = TypeVar("F", bound=RunFunction)


def register_experiment(key: str, *, section: type[Section] | None = None,
                        resumable: bool = False, init_from: bool = False,
                        writes: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Register ``run`` as the experiment ``key`` (its config section, if any, is ``key:``)."""

    def decorate(run: F) -> F:
        if key in EXPERIMENTS:
            raise TypeError(f"experiment {key!r} is registered twice")
        EXPERIMENTS[key] = Experiment(key, run, section, resumable, init_from, writes)
        return run

    return decorate


def experiment_for(cfg: RunConfig | Any) -> Experiment:
    """The experiment a config asks for: the first registered kind whose section it has
    (works on a validated config or on a model under validation)."""
    for exp in EXPERIMENTS.values():
        if exp.section is not None and getattr(cfg, exp.key, None) is not None:
            return exp
    return next(e for e in EXPERIMENTS.values() if e.section is None)
