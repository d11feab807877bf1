"""Real data sets with deterministic train / validation / test splits.

Sources
-------
* scikit-learn's bundled classification sets: ``digits`` (8x8 images), ``wine``,
  ``breast_cancer``, ``iris``. No network needed; used by the fast tests.
* ``sts`` (sentence pairs scored 0..5, seed 001) from a user's STS / SemEval TSV file
  (``pairs_file``) and word vectors in GloVe text format (``word_vectors``); and
  ``pairs-synthetic``, a small seeded task of the same shape for tests (:mod:`bayesstruct.pairs`).
  Pair sets are not standardised (their inputs carry a padding mask).
* ``fashion-mnist`` and ``mnist`` from IDX files (the official 60k/10k split). Files are looked
  up, in this order, in ``data_dir`` (``--data-dir``), ``$BAYESSTRUCT_DATA``, the user cache
  ``$XDG_CACHE_HOME/bayesstruct/<name>`` (``~/.cache/...``) and, for Fashion-MNIST,
  ``/usr/share/datasets/fashion-mnist`` from the Debian package ``dataset-fashion-mnist``.
  Each root is searched directly and under ``<root>/<name>/``. When nothing is found and
  ``download=True``, the files are downloaded into the user cache and checked against their
  SHA-256 sums; a mismatch leaves no file behind.

Splits are a pure function of ``seed``: the validation set is a seeded stratified fraction of
the training data, standardisation (per feature, ``(x - mean) / std``) is fitted on the training
split only and applied to all three.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .files import atomic_path

__all__ = [
    "DATASETS", "IDX_FILES", "SHA256", "FMNIST_SYSTEM_DIR", "DataNotFoundError", "Split",
    "Dataset", "load", "read_idx", "find_idx_dir", "download", "cache_dir",
]

SKLEARN_SETS = ("digits", "wine", "breast_cancer", "iris", "circles")
#: ``circles``: scikit-learn's ``make_circles`` (two noisy concentric rings in 2-D, seeded),
#: the synthetic set of seed 002's kernel-width experiment: no linear boundary exists
CIRCLES = {"n_samples": 600, "noise": 0.2, "factor": 0.5, "random_state": 0}
IDX_SETS = ("mnist", "fashion-mnist")
PAIR_SETS = ("sts", "pairs-synthetic")
DATASETS: tuple[str, ...] = SKLEARN_SETS + IDX_SETS + PAIR_SETS
SYNTHETIC_PAIRS = 3000  # examples of ``pairs-synthetic``

#: The four IDX files of MNIST-format data sets (gzip-compressed names).
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

#: SHA-256 of the published ``.gz`` files.
SHA256: dict[str, dict[str, str]] = {
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz":
            "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        "train-labels-idx1-ubyte.gz":
            "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        "t10k-images-idx3-ubyte.gz":
            "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        "t10k-labels-idx1-ubyte.gz":
            "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    },
    "mnist": {
        "train-images-idx3-ubyte.gz":
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz":
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz":
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz":
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
}

BASE_URLS = {
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
}

#: Where Debian's ``dataset-fashion-mnist`` puts the files (module constant, patchable in tests).
FMNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

CLASS_NAMES = {
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
    "mnist": tuple(str(i) for i in range(10)),
}


class DataNotFoundError(FileNotFoundError):
    """A data set's files are nowhere to be found (and could not be downloaded)."""


# --------------------------------------------------------------------------------------------
# containers
# --------------------------------------------------------------------------------------------
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
    pairs: bool = False  # inputs are sentence pairs (2, T, D + 1), see bayesstruct.pairs

    @property
    def n_features(self) -> int:
        return int(np.prod(self.input_shape))

    def to(self, device: str | torch.device) -> Dataset:
        return replace(self, train=self.train.to(device), val=self.val.to(device),
                       test=self.test.to(device))


# --------------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------------
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
               0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (LeCun's format; gzip-compressed or raw) into a numpy array.

    Layout: two zero bytes, a type code, the number of dimensions ``d``, then ``d`` big-endian
    int32 sizes and the data in C order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4]!r})")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    count = int(np.prod(shape)) if shape else 0
    if len(raw) - offset != count * dtype.itemsize:
        raise ValueError(f"{path}: header says {shape} of {dtype} but the file holds "
                         f"{len(raw) - offset} data bytes")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape)


def cache_dir(name: str) -> Path:
    """The user cache for data set ``name``: ``$XDG_CACHE_HOME/bayesstruct/<name>``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bayesstruct" / name


def _search_roots(name: str, data_dir: str | os.PathLike | None) -> list[Path]:
    roots: list[Path] = []
    if data_dir is not None:
        roots.append(Path(data_dir))
    if os.environ.get("BAYESSTRUCT_DATA"):
        roots.append(Path(os.environ["BAYESSTRUCT_DATA"]))
    roots.append(cache_dir(name))
    if name == "fashion-mnist":
        roots.append(FMNIST_SYSTEM_DIR)
    out: list[Path] = []
    for r in roots:
        out += [r, r / name]
    return out


def _find_file(directory: Path, gz_name: str) -> Path | None:
    for cand in (gz_name, gz_name[:-3]):
        if (directory / cand).is_file():
            return directory / cand
    return None


def find_idx_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """First searched directory that holds all four IDX files of ``name`` (or ``None``)."""
    for d in _search_roots(name, data_dir):
        if all(_find_file(d, f) is not None for f in IDX_FILES.values()):
            return d
    return None


def _missing_message(name: str, data_dir, reason: str = "") -> str:
    searched = "\n".join(f"    {d}" for d in _search_roots(name, data_dir))
    apt = ("\n  * or install Debian's package:  sudo apt-get install dataset-fashion-mnist"
           "  (files land in /usr/share/datasets/fashion-mnist)" if name == "fashion-mnist"
           else "")
    return (f"{name} IDX files ({', '.join(IDX_FILES.values())}) not found{reason}.\n"
            f"Searched:\n{searched}\nProvide them one of these ways:\n"
            f"  * pass --data-dir DIR (or data.data_dir in the config) pointing at the files\n"
            f"  * set $BAYESSTRUCT_DATA=DIR\n"
            f"  * let bayesstruct download them into the user cache {cache_dir(name)} "
            f"(needs internet; download=True){apt}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(name: str, dest: str | os.PathLike | None = None, *, base_url: str | None = None,
             timeout: float = 10.0) -> Path:
    """Download the four IDX files of ``name`` into ``dest`` (default: the user cache).

    Each file goes to a temporary name, is checked against :data:`SHA256` and only then moved
    into place (:func:`bayesstruct.files.atomic_path`), so an interrupted or corrupt download
    leaves nothing behind.

    Raises:
        ValueError: a file's SHA-256 does not match.
        DataNotFoundError: the server could not be reached.
    """
    if name not in SHA256:
        raise ValueError(f"no download known for {name!r}; downloadable: {sorted(SHA256)}")
    dest = Path(dest) if dest is not None else cache_dir(name)
    base = base_url or BASE_URLS[name]
    if not base.endswith("/"):
        base += "/"
    dest.mkdir(parents=True, exist_ok=True)
    for fname, digest in SHA256[name].items():
        target = dest / fname
        if target.is_file() and _sha256(target) == digest:
            continue
        try:
            with atomic_path(target) as tmp:
                with open(tmp, "wb") as out, urllib.request.urlopen(base + fname,
                                                                    timeout=timeout) as resp:
                    shutil.copyfileobj(resp, out)
                got = _sha256(tmp)
                if got != digest:
                    raise ValueError(f"checksum mismatch for {base + fname}: SHA-256 {got}, "
                                     f"expected {digest}; nothing was kept")
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            raise DataNotFoundError(_missing_message(
                name, None, f" and downloading {base + fname} failed ({e})")) from e
    return dest


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------
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


def _load_sklearn(name: str) -> tuple[np.ndarray, np.ndarray, tuple[int, ...], tuple[str, ...]]:
    from sklearn import datasets as skd

    if name == "circles":
        x, y = skd.make_circles(**CIRCLES)
        return x.astype(np.float32), y.astype(np.int64), (2,), ("outer", "inner")
    bunch = getattr(skd, f"load_{name}")()
    x = np.asarray(bunch.data, dtype=np.float32)
    y = np.asarray(bunch.target, dtype=np.int64)
    names = tuple(str(t) for t in bunch.target_names)
    if name == "digits":
        return x.reshape(-1, 1, 8, 8), y, (1, 8, 8), names
    return x, y, (x.shape[1],), names


def _load_idx(name: str, data_dir, download_ok: bool):
    d = find_idx_dir(name, data_dir)
    if d is None:
        if not download_ok:
            raise DataNotFoundError(_missing_message(name, data_dir, " (download=False)"))
        d = download(name)
    arr = {k: read_idx(_find_file(d, f)) for k, f in IDX_FILES.items()}
    for part in ("train", "test"):
        xi, yi = arr[f"{part}_images"], arr[f"{part}_labels"]
        if xi.ndim != 3 or yi.shape[0] != xi.shape[0]:
            raise ValueError(f"{d}: {part} images {xi.shape} and labels {yi.shape} do not match")
    def prep(a):
        return (a.astype(np.float32) / 255.0)[:, None]
    return (prep(arr["train_images"]), arr["train_labels"].astype(np.int64),
            prep(arr["test_images"]), arr["test_labels"].astype(np.int64), d)


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
        data_dir: extra directory searched first for IDX files.
        download: allow downloading missing IDX files into the user cache.
        standardize: per-feature ``(x - mean) / std`` with statistics of the training split
            (features with ``std < 1e-6`` are only centred).
        classes: keep only these class labels (before splitting), relabelled ``0..k-1`` in the
            order given (``[0, 1]``: the two-class digits of the MCMC benchmark).
        pairs_file, word_vectors: the ``sts`` set's TSV file and GloVe-format vectors.
        max_len: words kept per sentence of a pair set (default 30 for ``sts``, 10 for
            ``pairs-synthetic``).
        device: where the tensors live.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; allowed: {', '.join(DATASETS)}")
    for field, v in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= v < 1.0:
            raise ValueError(f"{field} must lie in [0, 1) (got {v})")
    rng = np.random.default_rng(seed)
    if name in PAIR_SETS:
        x, y = _load_pairs(name, pairs_file, word_vectors, max_len, seed)
        shape, names, standardize = x.shape[1:], tuple(str(k) for k in range(6)), False
        x, y, names = _select(x, y, names, classes)
        rest, test_idx = _stratified_split(y, test_fraction, rng)
        x_test, y_test = x[test_idx], y[test_idx]
        x, y = x[rest], y[rest]
    elif name in SKLEARN_SETS:
        x, y, shape, names = _load_sklearn(name)
        x, y, names = _select(x, y, names, classes)
        rest, test_idx = _stratified_split(y, test_fraction, rng)
        x_test, y_test = x[test_idx], y[test_idx]
        x, y = x[rest], y[rest]
    else:
        x, y, x_test, y_test, _ = _load_idx(name, data_dir, download)
        shape, names = (1, 28, 28), CLASS_NAMES[name]
        x_test, y_test, _ = _select(x_test, y_test, names, classes)
        x, y, names = _select(x, y, names, classes)
    train_idx, val_idx = _stratified_split(y, val_fraction, rng)
    if train_size is not None:
        if not 0 < train_size <= len(train_idx):
            raise ValueError(f"train_size must lie in 1..{len(train_idx)} (got {train_size})")
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
                   pairs=name in PAIR_SETS)


def _load_pairs(name: str, pairs_file, word_vectors, max_len: int | None, seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
    from . import pairs

    if name == "pairs-synthetic":
        return pairs.synthetic_pairs(SYNTHETIC_PAIRS, max_len=max_len or 10, seed=seed)
    if pairs_file is None or word_vectors is None:
        raise DataNotFoundError(
            "data set 'sts' reads your own files: set data.pairs_file (a TSV of score<TAB>"
            "sentence_a<TAB>sentence_b lines, e.g. SemEval/STS-benchmark data) and "
            "data.word_vectors (GloVe text format, e.g. glove.6B.50d.txt)")
    rows = pairs.read_pairs_tsv(pairs_file)
    tokenized = [(s, pairs.tokenize(a), pairs.tokenize(b)) for s, a, b in rows]
    vocabulary = {w for _, a, b in tokenized for w in (*a, *b)}
    vectors = pairs.read_word_vectors(word_vectors, vocabulary)
    if not vectors:
        raise ValueError(f"{word_vectors}: none of the {len(vocabulary)} words of "
                         f"{pairs_file} has a vector")
    x, y, _ = pairs.encode_pairs(tokenized, vectors, max_len or 30)
    return x, y


def _select(x: np.ndarray, y: np.ndarray, names: Sequence[str], classes: Sequence[int] | None
            ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Keep the examples of ``classes`` and relabel them ``0..k-1`` in that order."""
    if classes is None:
        return x, y, tuple(names)
    classes = [int(c) for c in classes]
    bad = [c for c in classes if not 0 <= c < len(names)]
    if bad or len(set(classes)) != len(classes) or len(classes) < 2:
        raise ValueError(f"classes must be >= 2 distinct labels in 0..{len(names) - 1} "
                         f"(got {classes})")
    keep = np.isin(y, classes)
    relabel = np.full(len(names), -1, dtype=np.int64)
    relabel[classes] = np.arange(len(classes))
    return x[keep], relabel[y[keep]], tuple(names[c] for c in classes)
