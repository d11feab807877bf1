"""Experiment kinds: what ``bayesstruct run`` does with a config, one module each.

==============  ==========================  ==============================================
kind            chosen when the entry has    module
==============  ==========================  ==============================================
``fit``         no experiment section        :mod:`~bayesstruct.experiments.fit`
``compare``     ``compare:``                 :mod:`~bayesstruct.experiments.compare`
``hypergrad``   ``hypergrad:``               :mod:`~bayesstruct.experiments.hypergrad`
``nas``         ``nas:``                     :mod:`~bayesstruct.experiments.nas`
==============  ==========================  ==============================================

Each module declares its config section and registers its run function
(:mod:`~bayesstruct.experiments.registry`); :func:`run` looks the kind up.

>>> from bayesstruct import config, experiments
>>> cfg = config.resolve("ard-logreg-digits", overrides=["inference.epochs=5"])
>>> metrics = experiments.run(cfg, "runs/ard")
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

# the import order is the registration order: the first kind whose section a config has wins
# isort: off
from .registry import EXPERIMENTS, Experiment, Section, experiment_for, register_experiment
from . import fit, compare, hypergrad, nas
# isort: on
from .. import parallel
from .base import build_model, load_data, resolve_device
from .compare import run_compare
from .fit import run_fit
from .hypergrad import run_hypergrad
from .nas import run_nas

if TYPE_CHECKING:
    from ..config import RunConfig

__all__ = ["EXPERIMENTS", "Experiment", "Section", "build_model", "check_data_parallel",
           "compare", "experiment_for", "fit", "hypergrad", "load_data", "nas",
           "register_experiment", "resolve_device", "run", "run_compare", "run_fit",
           "run_hypergrad", "run_nas"]


def run(cfg: RunConfig, out: str | Path, *, resume: bool = False, progress: bool = True,
        echo: Callable[[str], Any] = print, init_from: str | Path | None = None
        ) -> dict[str, Any]:
    """Run the experiment ``cfg`` asks for (:func:`experiment_for`) into ``out``; return its
    metrics (also in ``out/metrics.json``)."""
    from ..errors import ConfigError

    exp = experiment_for(cfg)
    if resume and not exp.resumable:
        raise ConfigError(f"{exp.key} experiments have no checkpoints to resume; run again "
                          "with a new --out")
    if init_from is not None and not exp.init_from:
        raise ConfigError("--init-from starts a new SVI run from another run's parameters; it "
                          f"does not combine with {exp.key} entries")
    if parallel.ranks().world > 1:
        check_data_parallel(cfg)
    return exp.run(cfg, out, resume=resume, progress=progress, echo=echo, init_from=init_from)


def check_data_parallel(cfg: RunConfig) -> None:
    """Refuse, naming the reason, a config a data-parallel run cannot train: only SVI fits
    split their minibatches over ranks (samplers run chains in parallel instead)."""
    from ..errors import ConfigError

    exp = experiment_for(cfg)
    if exp.key != "fit" or cfg.inference.engine != "svi":
        what = (f"{exp.key} entries" if exp.key != "fit"
                else f"engine {cfg.inference.engine!r}")
        raise ConfigError(f"a data-parallel run (--nproc-per-node, torchrun) trains SVI fits; "
                          f"{what} run in one process (allowed with more than one rank: "
                          "inference.engine=svi on an entry without compare/hypergrad/nas)")
