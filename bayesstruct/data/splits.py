"""A data set by name, with deterministic train / validation / test splits.

:func:`load` reads a set from its source (:mod:`~bayesstruct.data.sklearn_sets`,
:mod:`~bayesstruct.data.idx`, :mod:`~bayesstruct.data.pairs`), keeps the chosen ``classes``,
and splits it into a :class:`Dataset` of three :class:`Split`. Splits are a pure function of
``seed``: the validation set is a seeded stratified fraction of the training data,
standardisation (per feature, ``(x - mean) / std``) is fitted on the training split only and
applied to all three.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .idx import CLASS_NAMES, load_idx
from .sets import DATASETS, PAIR_SETS, SKLEARN_SETS, DataNotFoundError
from .sklearn_sets import load_sklearn

__all__ = ["SYNTHETIC_PAIRS", "Dataset", "Split", "classes_problem", "load"]

SYNTHETIC_PAIRS = 3000  # examples of ``pairs-synthetic``


@dataclass(frozen=True)
class Split:
    """Inputs ``x`` (float32, ``(N, *input_shape)``) and integer labels ``y`` (int64, ``(N,)``)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: str | torch.device) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True)
class Dataset:
    """A named data set with its three splits."""

    name: str
    train: Split
    val: Split
    test: Split
    input_shape: tuple[int, ...]
    n_classes: int
    classes: tuple[str, ...]
    pairs: bool = False  # inputs are sentence pairs (2, T, D + 1), see bayesstruct.data.pairs
    #: where the data were read from: the absolute directory of the IDX files, the absolute
    #: path of the ``sts`` pairs file; ``None`` for scikit-learn and synthetic sets
    source: str | None = None

    @property
    def n_features(self) -> int:
        return int(np.prod(self.input_shape))

    def to(self, device: str | torch.device) -> Dataset:
        return replace(self, train=self.train.to(device), val=self.val.to(device),
                       test=self.test.to(device))


def _stratified_split(y: np.ndarray, fraction: float, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) with ``round(fraction * n_c)`` held out from every class c."""
    keep, held = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(fraction * len(idx)))
        held.append(idx[:k])
        keep.append(idx[k:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def load(name: str, *, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2,
         train_size: int | None = None, data_dir: str | os.PathLike | None = None,
         download: bool = True, standardize: bool = True,
         classes: Sequence[int] | None = None, pairs_file: str | os.PathLike | None = None,
         word_vectors: str | os.PathLike | None = None, max_len: int | None = None,
         device: str | torch.device = "cpu") -> Dataset:
    """Load data set ``name`` with deterministic splits.

    Args:
        name: one of :data:`DATASETS`.
        seed: the splits (and the ``train_size`` subsample) are a function of this seed only.
        val_fraction: stratified fraction of the training data held out for validation.
        test_fraction: stratified test fraction for the scikit-learn sets (MNIST-format sets
            use their official 10k test set and ignore it).
        train_size: keep only this many training examples (seeded, after the validation split).
        data_dir: the directory of the IDX files (or of ``<name>/`` holding them); when given
            it is used or refused (:class:`DataNotFoundError` naming the missing files), never
            replaced by another copy.
        download: allow downloading missing IDX files into the user cache.
        standardize: per-feature ``(x - mean) / std`` with statistics of the training split
            (features with ``std < 1e-6`` are only centred).
        classes: keep only these class labels (before splitting), relabelled ``0..k-1`` in the
            order given (``[0, 1]``: the two-class digits of the MCMC benchmark).
        pairs_file, word_vectors: the ``sts`` set's TSV file and GloVe-format vectors.
        max_len: words kept per sentence of a pair set (default 30 for ``sts``, 10 for
            ``pairs-synthetic``).
        device: where the tensors live.

    Raises:
        DataNotFoundError: the files are missing (an explicit ``data_dir`` lacks some).
        DataError: a file is unreadable or corrupt, ``train_size`` exceeds the training split,
            or ``classes`` is not a list of >= 2 distinct labels of the set.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; allowed: {', '.join(DATASETS)}")
    for field, v in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= v < 1.0:
            raise ValueError(f"{field} must lie in [0, 1) (got {v})")
    rng = np.random.default_rng(seed)
    source = None
    if name in PAIR_SETS:
        x, y = _load_pairs(name, pairs_file, word_vectors, max_len, seed)
        if name == "sts":
            source = str(Path(pairs_file).expanduser().resolve())
        shape, names, standardize = x.shape[1:], tuple(str(k) for k in range(6)), False
        x, y, names = _select(x, y, names, classes)
        rest, test_idx = _stratified_split(y, test_fraction, rng)
        x_test, y_test = x[test_idx], y[test_idx]
        x, y = x[rest], y[rest]
    elif name in SKLEARN_SETS:
        x, y, shape, names = load_sklearn(name)
        x, y, names = _select(x, y, names, classes)
        rest, test_idx = _stratified_split(y, test_fraction, rng)
        x_test, y_test = x[test_idx], y[test_idx]
        x, y = x[rest], y[rest]
    else:
        x, y, x_test, y_test, d = load_idx(name, data_dir, download)
        source = str(d)
        shape, names = (1, 28, 28), CLASS_NAMES[name]
        x_test, y_test, _ = _select(x_test, y_test, names, classes)
        x, y, names = _select(x, y, names, classes)
    train_idx, val_idx = _stratified_split(y, val_fraction, rng)
    if train_size is not None:
        if not 0 < train_size <= len(train_idx):
            where = f"{name} (from {source})" if source else name
            chosen = f", classes {list(classes)}" if classes is not None else ""
            raise DataError(f"data.train_size={train_size}: the training split of {where} has "
                            f"{len(train_idx)} examples (val_fraction {val_fraction}{chosen}); "
                            f"allowed 1..{len(train_idx)}")
        train_idx = np.sort(rng.choice(train_idx, size=train_size, replace=False))
    x_train, y_train, x_val, y_val = x[train_idx], y[train_idx], x[val_idx], y[val_idx]
    if standardize:
        mean = x_train.mean(axis=0, keepdims=True)
        std = x_train.std(axis=0, keepdims=True)
        std = np.where(std < 1e-6, 1.0, std).astype(np.float32)
        x_train, x_val, x_test = ((a - mean) / std for a in (x_train, x_val, x_test))

    def split(a, b) -> Split:
        return Split(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(device),
                     torch.from_numpy(np.ascontiguousarray(b, dtype=np.int64)).to(device))

    n_classes = len(names) if name in PAIR_SETS else int(max(y.max(), y_test.max())) + 1
    return Dataset(name, split(x_train, y_train), split(x_val, y_val), split(x_test, y_test),
                   tuple(int(s) for s in shape), n_classes, tuple(names),
                   pairs=name in PAIR_SETS, source=source)


def _load_pairs(name: str, pairs_file, word_vectors, max_len: int | None, seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
    from . import pairs

    if name == "pairs-synthetic":
        return pairs.synthetic_pairs(SYNTHETIC_PAIRS, max_len=max_len or 10, seed=seed)
    if pairs_file is None or word_vectors is None:
        unset = " and ".join(f for f, v in (("data.pairs_file", pairs_file),
                                            ("data.word_vectors", word_vectors)) if v is None)
        raise DataNotFoundError(
            f"data set 'sts' reads your own files but {unset} is not set: set data.pairs_file "
            "(a TSV of score<TAB>sentence_a<TAB>sentence_b lines, e.g. SemEval/STS-benchmark "
            "data) and data.word_vectors (GloVe text format, e.g. glove.6B.50d.txt)")
    rows = pairs.read_pairs_tsv(pairs_file)
    tokenized = [(s, pairs.tokenize(a), pairs.tokenize(b)) for s, a, b in rows]
    vocabulary = {w for _, a, b in tokenized for w in (*a, *b)}
    vectors = pairs.read_word_vectors(word_vectors, vocabulary)
    if not vectors:
        raise DataError(f"{word_vectors} (data.word_vectors): none of the {len(vocabulary)} "
                        f"words of {pairs_file} has a vector")
    x, y, _ = pairs.encode_pairs(tokenized, vectors, max_len or 30)
    return x, y


def _select(x: np.ndarray, y: np.ndarray, names: Sequence[str], classes: Sequence[int] | None
            ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Keep the examples of ``classes`` and relabel them ``0..k-1`` in that order."""
    if classes is None:
        return x, y, tuple(names)
    problem = classes_problem(classes, len(names))
    if problem:
        labels = ("" if all(n == str(k) for k, n in enumerate(names)) else
                  " (" + ", ".join(f"{k}={n}" for k, n in enumerate(names)) + ")")
        raise DataError(f"data.classes={list(classes)}: {problem}; classes must be >= 2 "
                        f"distinct labels in 0..{len(names) - 1}{labels}")
    classes = [int(c) for c in classes]
    keep = np.isin(y, classes)
    relabel = np.full(len(names), -1, dtype=np.int64)
    relabel[classes] = np.arange(len(classes))
    return x[keep], relabel[y[keep]], tuple(names[c] for c in classes)


def classes_problem(classes: Sequence, n_labels: int) -> str | None:
    """What is wrong with ``classes`` as a selection of the labels ``0..n_labels-1``, or
    ``None`` (shared with the config's check of ``data.classes``)."""
    if any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) for c in classes):
        return "labels must be integers"
    bad = [int(c) for c in classes if not 0 <= c < n_labels]
    if bad:
        return f"{bad} out of range"
    if len(set(classes)) != len(classes):
        return "duplicate labels"
    if len(classes) < 2:
        return "fewer than 2 labels"
    return None
