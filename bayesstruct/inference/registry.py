"""The engine registry: the ``engine:`` name of a recipe -> its config model and entry function.

An engine module declares one config model (a subclass of :class:`EngineConfig` whose
``engine`` field is a ``Literal`` of the names it answers to) and one entry function, and
registers the pair::

    class SVIConfig(EngineConfig):
        engine: Literal["svi"] = "svi"
        epochs: int = Field(20, ge=1)
        ...

    @register_engine(SVIConfig)
    def fit_svi(cfg: SVIConfig, model, data, options: FitOptions) -> InferenceData: ...

:mod:`bayesstruct.config` builds the ``inference:`` section of a run config as the union of the
registered models (keyed on ``engine``, as ``prior:`` is keyed on ``kind``), and the runner
calls ``ENGINES[cfg.engine].fit``. Adding an engine is that module, its import in
``inference/__init__.py``, a recipe in ``inference/*.yaml`` and its tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, get_args

import torch

from ..errors import ConfigError
from ..schema import Strict

if TYPE_CHECKING:
    from arviz import InferenceData

    from ..data import Dataset
    from ..models.bayesnet import BayesianNet

__all__ = ["ENGINES", "Engine", "EngineConfig", "FitOptions", "get_engine", "register_engine",
           "require_fixed_prior"]


class EngineConfig(Strict):
    """An inference recipe (``inference/*.yaml``): ``engine`` and that engine's settings.

    Subclasses add ``engine: Literal[...]`` and their fields (with allowed ranges); the hooks
    below have defaults that suit an engine without epochs or warm starts."""

    description: str = ""
    #: whether ``--init-from`` (start from another run's parameters) applies to this engine
    supports_init_from: ClassVar[bool] = False

    def summary(self) -> str:
        """What the run's first line says about the engine's settings."""
        return ""

    def check_resume(self, saved: dict[str, Any], checkpoint_dir: Path,
                     echo: Callable[[str], Any]) -> None:
        """Refuse (``ConfigError``) or explain a resume of the run whose saved ``inference``
        section is ``saved`` with these settings, before anything is written."""


@dataclass(frozen=True)
class FitOptions:
    """How one fit runs, beside the recipe: where, with which seed, with what checkpoints.

    ``init_from``: a checkpoint (as loaded) whose parameters start the fit (engines with
    :attr:`EngineConfig.supports_init_from`). ``history_path``: where the engine appends its
    per-epoch (or per-step) rows as training proceeds (``history.csv`` of a run directory;
    :class:`~bayesstruct.logs.History`); ``None`` writes none."""

    seed: int = 0
    device: torch.device | str = "cpu"
    checkpoint_dir: Path | None = None
    resume: bool = False
    progress: bool = True
    init_from: dict | None = None
    history_path: Path | None = None


FitFunction = Callable[[Any, "BayesianNet", "Dataset", FitOptions], "InferenceData"]


@dataclass(frozen=True)
class Engine:
    """A registered engine: its name, config model and entry function."""

    name: str
    config: type[EngineConfig]
    fit: FitFunction


#: ``name -> Engine``, filled by :func:`register_engine` as the engine modules are imported
ENGINES: dict[str, Engine] = {}

F = TypeVar("F", bound=FitFunction)


def register_engine(config: type[EngineConfig]) -> Callable[[F], F]:
    """Register ``fit`` under every name of ``config.engine``'s ``Literal``."""
    names = get_args(config.model_fields["engine"].annotation)
    if not names or not all(isinstance(n, str) for n in names):
        raise TypeError(f"{config.__name__}.engine must be a Literal of engine names")

    def decorate(fit: F) -> F:
        for name in names:
            if name in ENGINES:
                raise TypeError(f"engine {name!r} is registered twice "
                                f"({ENGINES[name].fit.__qualname__} and {fit.__qualname__})")
            ENGINES[name] = Engine(name, config, fit)
        return fit

    return decorate


def get_engine(name: str) -> Engine:
    """The registered engine called ``name``."""
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"engine {name!r}; allowed: {', '.join(ENGINES)}") from None


def require_fixed_prior(model: BayesianNet, engine: str) -> None:
    """Samplers draw every parameter from the posterior of a fixed prior: refuse a prior set
    to empirical Bayes, and point-estimated parameters (a sampler has no point estimates)."""
    model.require_no_point_estimates(f"engine {engine!r}")
    if getattr(model.prior, "empirical_bayes", False):
        kind = model.prior.kind
        raise ConfigError(f"engine {engine!r} samples a fixed prior; prior {kind!r} is set to "
                          "empirical Bayes (use prior.hyper=gamma for ARD, "
                          "prior.empirical_bayes=false for gaussian, or engine svi)")
