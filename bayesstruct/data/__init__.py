"""Real data sets with deterministic train / validation / test splits.

Sources
-------
* scikit-learn's bundled classification sets: ``digits`` (8x8 images), ``wine``,
  ``breast_cancer``, ``iris``, and the seeded synthetic ``circles``. No network needed; used by
  the fast tests (:mod:`~bayesstruct.data.sklearn_sets`).
* ``sts`` (sentence pairs scored 0..5) from a user's STS / SemEval TSV file
  (``pairs_file``) and word vectors in GloVe text format (``word_vectors``); and
  ``pairs-synthetic``, a small seeded task of the same shape for tests
  (:mod:`~bayesstruct.data.pairs`). Pair sets are not standardised (their inputs carry a
  padding mask).
* ``fashion-mnist`` and ``mnist`` from IDX files (the official 60k/10k split;
  :mod:`~bayesstruct.data.idx`). A ``data_dir`` (``--data-dir``) given explicitly is used or
  refused: it must hold the four files (directly or under ``<data_dir>/<name>/``), else
  :class:`DataNotFoundError` names it and the missing files; nothing else is searched. Without
  one, files are looked up, in this order, in ``$BAYESSTRUCT_DATA``, the user cache
  ``$XDG_CACHE_HOME/bayesstruct/<name>`` (``~/.cache/...``) and, for Fashion-MNIST,
  ``/usr/share/datasets/fashion-mnist`` from the Debian package ``dataset-fashion-mnist``. Each
  root is searched directly and under ``<root>/<name>/``. When nothing is found and
  ``download=True``, the files are downloaded into the user cache and checked against their
  SHA-256 sums; a mismatch leaves no file behind.

A data file that exists but cannot be used (truncated or corrupt gzip, a wrong IDX header, a
garbled pair or word-vector file, too few examples for ``train_size``, bad ``classes``) raises
:class:`bayesstruct.errors.DataError` naming the file or field; a missing one raises
:class:`DataNotFoundError`. Both are printed by the CLI as an ``error:`` line (exit 2).

Splits are a pure function of ``seed``: the validation set is a seeded stratified fraction of
the training data, standardisation (per feature, ``(x - mean) / std``) is fitted on the training
split only and applied to all three (:func:`load`, :mod:`~bayesstruct.data.splits`).

Modules: :mod:`~bayesstruct.data.sets` (the names of the sets, their class counts,
:class:`DataNotFoundError`), :mod:`~bayesstruct.data.splits` (:class:`Split`,
:class:`Dataset`, :func:`load`), and one per source, above.
"""

from __future__ import annotations

from ..errors import DataError
from . import idx, pairs, sets, sklearn_sets, splits
from .idx import (
    BASE_URLS,
    CLASS_NAMES,
    FMNIST_SYSTEM_DIR,
    IDX_FILES,
    SHA256,
    cache_dir,
    download,
    find_idx_dir,
    read_idx,
)
from .sets import DATASETS, IDX_SETS, N_CLASSES, PAIR_SETS, SKLEARN_SETS, DataNotFoundError
from .sklearn_sets import CIRCLES
from .splits import SYNTHETIC_PAIRS, Dataset, Split, classes_problem, load

__all__ = [
    "DATASETS", "IDX_FILES", "IDX_SETS", "SHA256", "FMNIST_SYSTEM_DIR", "N_CLASSES", "DataError",
    "DataNotFoundError", "Split", "Dataset", "load", "read_idx", "find_idx_dir", "download",
    "cache_dir", "classes_problem",
    # the modules, and their other constants (reachable here as before the split into modules)
    "idx", "pairs", "sets", "sklearn_sets", "splits", "BASE_URLS", "CIRCLES", "CLASS_NAMES",
    "PAIR_SETS", "SKLEARN_SETS", "SYNTHETIC_PAIRS",
]

