"""Inference engines (METHODS.md M4). Each returns an ArviZ ``InferenceData``."""

from __future__ import annotations

from .svi import NonFiniteLossError, evaluate, svi

__all__ = ["ENGINES", "NonFiniteLossError", "evaluate", "svi"]

ENGINES = ("svi",)
