"""Plain ``torch.nn`` architectures of the zoo.

Every network is an ``nn.Sequential`` with *named* layers (``fc1``, ``conv1``, ...), so the
posterior's dimensions read ``fc1_out``, ``fc1_in`` and pruning can address layers by name.
Nothing here knows about priors: :class:`bayesstruct.models.BayesianNet` puts them on top.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

__all__ = ["NETS", "build", "lenet5_caffe", "lenet_300_100", "logistic_regression", "mlp"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}


def logistic_regression(in_features: int, n_classes: int) -> nn.Sequential:
    """Multinomial logistic regression, ``p(y | x) = softmax(W x + b)``."""
    return nn.Sequential(
        OrderedDict([("flatten", nn.Flatten()), ("fc1", nn.Linear(in_features, n_classes))])
    )


def mlp(widths: Sequence[int], activation: str = "relu") -> nn.Sequential:
    """Fully connected network with layer widths ``widths = [in, h1, ..., out]``.

    Layers are named ``fc1 .. fcL``; activations ``act1 .. act{L-1}``.
    """
    if len(widths) < 2:
        raise ValueError(f"mlp needs at least [in, out] widths, got {list(widths)}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation {activation!r} not in {sorted(_ACTIVATIONS)}")
    layers: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True), start=1):
        layers.append((f"fc{i}", nn.Linear(a, b)))
        if i < len(widths) - 1:
            layers.append((f"act{i}", _ACTIVATIONS[activation]()))
    return nn.Sequential(OrderedDict(layers))


def lenet_300_100(in_features: int = 784, n_classes: int = 10) -> nn.Sequential:
    """LeNet-300-100 (LeCun et al. 1998): ``in -> 300 -> 100 -> classes``, ReLU."""
    return mlp([in_features, 300, 100, n_classes])


def lenet5_caffe(input_shape: Sequence[int] = (1, 28, 28), n_classes: int = 10) -> nn.Sequential:
    """LeNet-5-Caffe: conv 5x5 (20) - maxpool 2 - conv 5x5 (50) - maxpool 2 - fc 500 - fc.

    The variant used by Molchanov et al. (2017) and Louizos et al. (2017). For inputs smaller
    than 28x28 (``digits`` is 8x8) the convolutions are padded so the spatial size survives.
    """
    channels, height, width = (int(s) for s in input_shape)
    pad = 0 if min(height, width) >= 28 else 2
    h, w = height, width
    for _ in range(2):
        h, w = (h + 2 * pad - 4) // 2, (w + 2 * pad - 4) // 2
    if h < 1 or w < 1:
        raise ValueError(f"lenet5 needs larger inputs than {tuple(input_shape)}")
    return nn.Sequential(
        OrderedDict(
            [
                ("conv1", nn.Conv2d(channels, 20, 5, padding=pad)),
                ("act1", nn.ReLU()),
                ("pool1", nn.MaxPool2d(2)),
                ("conv2", nn.Conv2d(20, 50, 5, padding=pad)),
                ("act2", nn.ReLU()),
                ("pool2", nn.MaxPool2d(2)),
                ("flatten", nn.Flatten()),
                ("fc1", nn.Linear(50 * h * w, 500)),
                ("act3", nn.ReLU()),
                ("fc2", nn.Linear(500, n_classes)),
            ]
        )
    )


NETS = ("logreg", "mlp", "lenet300", "lenet5")


def build(
    kind: str,
    input_shape: Sequence[int],
    n_classes: int,
    hidden: Sequence[int] = (),
    activation: str = "relu",
) -> nn.Sequential:
    """Build a zoo network by name (``logreg``, ``mlp``, ``lenet300``, ``lenet5``)."""
    n_in = math.prod(int(s) for s in input_shape)
    if kind == "logreg":
        return logistic_regression(n_in, n_classes)
    if kind == "mlp":
        return mlp([n_in, *hidden, n_classes], activation)
    if kind == "lenet300":
        return lenet_300_100(n_in, n_classes)
    if kind == "lenet5":
        return lenet5_caffe(input_shape, n_classes)
    raise ValueError(f"net kind {kind!r} not in {list(NETS)}")
