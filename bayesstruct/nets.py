"""Plain ``torch.nn`` architectures of the zoo.

Every network is an ``nn.Sequential`` with *named* layers (``fc1``, ``conv1``, ...), so the
posterior's dimensions read ``fc1_out``, ``fc1_in`` and pruning can address layers by name.
Nothing here knows about priors: :class:`bayesstruct.models.BayesianNet` puts them on top.

The recurrent nets (for empirical Bayes and pruning by signal-to-noise ratio) keep each weight
matrix in its own ``nn.Linear`` (``rnn.ih`` holds ``W`` and ``b``, ``rnn.hh`` holds ``U``), so
every matrix is one sample site with its own dimension names and can be pruned on its own.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["GRU", "NETS", "BasicBlock", "Conv1dNet", "ElmanRNN", "LSTMClassifier",
           "PairClassifier", "ResNet", "SequenceClassifier", "build", "lenet5_caffe",
           "lenet_300_100", "logistic_regression", "mlp"]

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


class ElmanRNN(nn.Module):
    """Elman recurrent layer (Elman 1990): ``h_t = tanh(x_t W^T + h_{t-1} U^T + b)``, ``h_0 = 0``.

    ``ih`` (``Linear(in, H)``) holds ``W`` and ``b``; ``hh`` (``Linear(H, H)``, no bias) holds
    ``U``. Equal to ``torch.nn.RNN(nonlinearity="tanh")`` with ``bias_hh = 0`` (tested).
    ``forward(x, mask)`` takes ``x`` of shape ``(B, T, in)`` and returns the last hidden state
    ``(B, H)``; where ``mask[b, t]`` is false the state is carried over unchanged (padding).
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.ih = nn.Linear(input_size, hidden_size)
        self.hh = nn.Linear(hidden_size, hidden_size, bias=False)

    def step(self, a_t: Tensor, h: Tensor) -> Tensor:
        return torch.tanh(a_t + self.hh(h))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        a = self.ih(x)  # the input projection of every step in one product
        h = x.new_zeros(x.shape[0], self.hidden_size)
        for t in range(x.shape[1]):
            new = self.step(a[:, t], h)
            h = new if mask is None else torch.where(mask[:, t, None], new, h)
        return h


class GRU(ElmanRNN):
    """Gated recurrent unit (Cho et al. 2014) in ``torch.nn.GRU``'s form (gates r, z, n):

        r = sigma(W_r x + b_ir + U_r h + b_hr),   z = sigma(W_z x + b_iz + U_z h + b_hz)
        n = tanh(W_n x + b_in + r * (U_n h + b_hn)),   h' = (1 - z) * n + z * h

    ``ih = Linear(in, 3H)`` and ``hh = Linear(H, 3H)`` stack the three gates in that order, so
    the weights copy one to one into ``torch.nn.GRU`` (tested).
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        nn.Module.__init__(self)
        self.hidden_size = hidden_size
        self.ih = nn.Linear(input_size, 3 * hidden_size)
        self.hh = nn.Linear(hidden_size, 3 * hidden_size)

    def step(self, a_t: Tensor, h: Tensor) -> Tensor:
        a_r, a_z, a_n = a_t.chunk(3, dim=-1)
        g_r, g_z, g_n = self.hh(h).chunk(3, dim=-1)
        r = torch.sigmoid(a_r + g_r)
        z = torch.sigmoid(a_z + g_z)
        n = torch.tanh(a_n + r * g_n)
        return n + z * (h - n)


_CELLS: dict[str, type[ElmanRNN]] = {"rnn": ElmanRNN, "gru": GRU}


class SequenceClassifier(nn.Module):
    """A recurrent layer read over ``steps`` time steps, then ``fc`` on the last state.

    Inputs of any shape ``(B, ...)`` are read as ``(B, steps, features)``: an image
    ``(B, 1, 28, 28)`` with ``steps=28`` is read row by row (sequential MNIST)."""

    def __init__(self, cell: str, steps: int, features: int, hidden: int,
                 n_classes: int) -> None:
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"recurrent cell {cell!r} not in {sorted(_CELLS)}")
        self.steps = steps
        self.rnn = _CELLS[cell](features, hidden)
        self.fc = nn.Linear(hidden, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.rnn(x.reshape(x.shape[0], self.steps, -1)))


class PairClassifier(nn.Module):
    """Sentence-pair similarity (Tai, Socher & Manning 2015's head).

    One recurrent layer is shared by both sentences, ``h_a = rnn(a)``, ``h_b = rnn(b)``, and
    the classes (the 0..5 similarity score) are ``softmax(fc([h_a * h_b, |h_a - h_b|]))``.
    Inputs are ``(B, 2, T, D + 1)``: two word-vector sequences padded to ``T`` with a 0/1
    mask in the last column (:mod:`bayesstruct.data`'s pair sets)."""

    def __init__(self, cell: str, features: int, hidden: int, n_classes: int) -> None:
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"recurrent cell {cell!r} not in {sorted(_CELLS)}")
        self.rnn = _CELLS[cell](features, hidden)
        self.fc = nn.Linear(2 * hidden, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        seq, mask = x[..., :-1].flatten(0, 1), x[..., -1].flatten(0, 1) > 0.5
        h = self.rnn(seq, mask).view(x.shape[0], 2, -1)
        h_a, h_b = h[:, 0], h[:, 1]
        return self.fc(torch.cat([h_a * h_b, (h_a - h_b).abs()], dim=-1))


class BasicBlock(nn.Module):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`` (He et al. 2016); the shortcut
    is the identity, or a strided 1x1 convolution and BatchNorm when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """A small ResNet for small images: a 3x3 stem with BatchNorm, one :class:`BasicBlock` per
    stage (``widths``; every stage after the first halves the resolution), a global mean over
    the positions and a Linear classifier. Channels of a stage are shared by its stem or
    shortcut and every block's last convolution through the residual additions; pruning keeps
    them consistent (:mod:`bayesstruct.pruning.graph`)."""

    def __init__(self, in_channels: int, n_classes: int, widths: Sequence[int] = (16, 32)
                 ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(widths[0])
        self.stages = nn.Sequential(*[
            BasicBlock(c_in, c_out, 1 if i == 0 else 2)
            for i, (c_in, c_out) in enumerate(zip([widths[0], *widths[:-1]], widths,
                                                  strict=True))])
        self.fc = nn.Linear(widths[-1], n_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        return self.fc(self.stages(x).mean((2, 3)))


class LSTMClassifier(nn.Module):
    """``torch.nn.LSTM`` over the input's rows (``(B, 1, 28, 28)``: 28 steps of 28 pixels),
    then ``fc`` on the last step's output: sequential Fashion-MNIST with torch's own LSTM,
    whose hidden units (every gate tied) are pruned for real."""

    def __init__(self, steps: int, features: int, hidden: int, n_classes: int) -> None:
        super().__init__()
        self.steps = steps
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.lstm(x.reshape(x.shape[0], self.steps, -1))[0]
        return self.fc(out[:, -1])


class Conv1dNet(nn.Module):
    """A 1-D convolutional net over a sequence ``(B, steps, features)`` (an image's rows):
    the features are the input channels, ``Conv1d -> ReLU -> MaxPool1d(2)`` per width, a
    global max over time and a Linear classifier."""

    def __init__(self, steps: int, features: int, n_classes: int,
                 widths: Sequence[int] = (32, 32)) -> None:
        super().__init__()
        self.steps = steps
        layers: list[nn.Module] = []
        c_in = features
        for w in widths:
            layers += [nn.Conv1d(c_in, int(w), 3, padding=1), nn.ReLU(), nn.MaxPool1d(2)]
            c_in = int(w)
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        seq = x.reshape(x.shape[0], self.steps, -1).transpose(1, 2)
        return self.fc(self.features(seq).amax(2))


NETS = ("logreg", "mlp", "lenet300", "lenet5", "rnn", "gru", "resnet", "lstm", "conv1d")


def build(
    kind: str,
    input_shape: Sequence[int],
    n_classes: int,
    hidden: Sequence[int] = (),
    activation: str = "relu",
    pairs: bool = False,
) -> nn.Module:
    """Build a zoo network by name (``logreg``, ``mlp``, ``lenet300``, ``lenet5``, ``rnn``,
    ``gru``, ``resnet``, ``lstm``, ``conv1d``).

    ``hidden`` is the stage widths of ``resnet`` (default 16, 32), the channel widths of
    ``conv1d`` (default 32, 32) and the one hidden width of ``rnn``, ``gru`` and ``lstm``
    (default 64).

    The recurrent kinds take one hidden width (default 64) and read the input's second-last
    axis as time (``(1, 28, 28)`` images: 28 steps of 28 features); ``pairs=True`` (pair data
    sets, input ``(2, T, D + 1)``) builds a :class:`PairClassifier` instead."""
    if kind not in NETS:
        raise ValueError(f"net kind {kind!r} not in {list(NETS)}")
    if kind in _CELLS:
        if len(hidden) > 1:
            raise ValueError(f"net {kind!r} has one recurrent layer; hidden={list(hidden)} "
                             "gives more than one width")
        width = int(hidden[0]) if hidden else 64
        shape = [int(s) for s in input_shape]
        if pairs:
            return PairClassifier(kind, shape[-1] - 1, width, n_classes)
        if len(shape) < 2:
            raise ValueError(f"net {kind!r} reads sequences; input shape {tuple(shape)} has "
                             "no time axis")
        steps = shape[-2]
        return SequenceClassifier(kind, steps, math.prod(shape) // steps, width, n_classes)
    if pairs:
        raise ValueError(f"pair data sets need a recurrent net (rnn, gru), not {kind!r}")
    n_in = math.prod(int(s) for s in input_shape)
    if kind == "logreg":
        return logistic_regression(n_in, n_classes)
    if kind == "mlp":
        return mlp([n_in, *hidden, n_classes], activation)
    if kind == "lenet300":
        return lenet_300_100(n_in, n_classes)
    if kind == "lenet5":
        return lenet5_caffe(input_shape, n_classes)
    shape = [int(s) for s in input_shape]
    if kind == "resnet":
        if len(shape) != 3:
            raise ValueError(f"net 'resnet' reads images (C, H, W); input shape {tuple(shape)}")
        return ResNet(shape[0], n_classes, hidden or (16, 32))
    if len(shape) < 2:
        raise ValueError(f"net {kind!r} reads sequences; input shape {tuple(shape)} has no "
                         "time axis")
    steps = shape[-2]
    if kind == "lstm":
        if len(hidden) > 1:
            raise ValueError(f"net 'lstm' has one layer; hidden={list(hidden)}")
        return LSTMClassifier(steps, n_in // steps, int(hidden[0]) if hidden else 64, n_classes)
    if kind == "conv1d":
        return Conv1dNet(steps, n_in // steps, n_classes, hidden or (32, 32))
    raise ValueError(f"net kind {kind!r} not in {list(NETS)}")
