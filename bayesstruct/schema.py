"""The base of every config model (pydantic), shared by the modules that declare one.

A prior's settings live beside the prior (``priors/gaussian.py``: ``GaussianConfig``), an
engine's beside the engine (``inference/svi.py``: ``SVIConfig``), an experiment's section beside
the experiment; :mod:`bayesstruct.config` assembles them into the run config. Models are strict:
an unknown field is an error, never silently ignored, and a validated config is immutable.
"""

from __future__ import annotations

from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Seed", "Strict", "to_yaml"]

#: A seed is what numpy's legacy ``np.random.seed`` (called by ``pyro.set_rng_seed``) accepts.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


class Strict(BaseModel):
    """A config model that forbids unknown fields and is frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def to_yaml(cfg: BaseModel) -> str:
    """A validated config as YAML (what ``config.yaml`` in a run directory holds)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
