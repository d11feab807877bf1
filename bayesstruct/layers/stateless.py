"""Parameter-free modules that keep units apart: what shrinking may look through.

``STATELESS`` act on every entry alone (activations; dropout, which is the identity in eval
mode), so unit ``j`` of their input is unit ``j`` of their output; ``POOLS`` do the same for
the channels of a convolution's output. Both lists are shared by the functional forward of
``nn.Sequential`` nets (:func:`bayesstruct.models.bayesnet.is_functional`) and by
:func:`bayesstruct.pruning.prune`."""

from __future__ import annotations

from torch import nn

__all__ = ["POOLS", "STATELESS"]

STATELESS: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.Tanh, nn.ELU, nn.Sigmoid, nn.LeakyReLU, nn.GELU, nn.Identity, nn.Dropout,
    nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.ReLU6, nn.SELU, nn.CELU, nn.SiLU, nn.Softplus,
    nn.Hardtanh, nn.Softsign, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.LogSigmoid)

POOLS: tuple[type[nn.Module], ...] = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
