"""Config -> run directory: the pipeline one ``bayesstruct run`` goes through, in one import.

>>> from bayesstruct import config, runner
>>> cfg = config.resolve("ard-logreg-digits", overrides=["inference.epochs=5"])
>>> metrics = runner.run(cfg, "runs/ard")          # writes runs/ard/metrics.json and more

:func:`run` picks the experiment kind the config asks for (:mod:`bayesstruct.experiments`:
a plain fit, or an entry's ``compare:``, ``hypergrad:`` or ``nas:`` section); each kind's
module lists the files it writes. :func:`build_model`, :func:`load_data` and :func:`infer` are
the fit's first steps, for notebooks that want the model and posterior without a run
directory.

Every file is written atomically; an existing run is never overwritten (resume it instead), a
folder that is not a run directory is refused, and ``--resume`` refuses to change what shaped
the training (:mod:`bayesstruct.rundir`). The run directory also holds ``.lock`` while a
process runs in it.
"""

from __future__ import annotations

from .config import load_run_config
from .experiments import run
from .experiments.base import build_model, load_data, resolve_device
from .experiments.compare import run_compare as compare
from .experiments.fit import fit as infer
from .experiments.hypergrad import run_hypergrad as hypergrad
from .experiments.nas import run_nas as nas

__all__ = ["build_model", "compare", "hypergrad", "infer", "load_data", "load_run_config", "nas",
           "resolve_device", "run"]
