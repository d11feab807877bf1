"""Real data sets with deterministic train / validation / test splits.

Sources
-------
* scikit-learn's bundled classification sets: ``digits`` (8x8 images), ``wine``,
  ``breast_cancer``, ``iris``. No network needed; used by the fast tests.
* ``sts`` (sentence pairs scored 0..5, seed 001) from a user's STS / SemEval TSV file
  (``pairs_file``) and word vectors in GloVe text format (``word_vectors``); and
  ``pairs-synthetic``, a small seeded task of the same shape for tests (:mod:`bayesstruct.pairs`).
  Pair sets are not standardised (their inputs carry a padding mask).
* ``fashion-mnist`` and ``mnist`` from IDX files (the official 60k/10k split). A ``data_dir``
  (``--data-dir``) given explicitly is used or refused: it must hold the four files (directly
  or under ``<data_dir>/<name>/``), else :class:`DataNotFoundError` names it and the missing
  files; nothing else is searched. Without one, files are looked up, in this order, in
  ``$BAYESSTRUCT_DATA``, the user cache ``$XDG_CACHE_HOME/bayesstruct/<name>``
  (``~/.cache/...``) and, for Fashion-MNIST, ``/usr/share/datasets/fashion-mnist`` from the
  Debian package ``dataset-fashion-mnist``. Each root is searched directly and under
  ``<root>/<name>/``. When nothing is found and ``download=True``, the files are downloaded
  into the user cache and checked against their SHA-256 sums; a mismatch leaves no file behind.

A data file that exists but cannot be used (truncated or corrupt gzip, a wrong IDX header, a
garbled pair or word-vector file, too few examples for ``train_size``, bad ``classes``) raises
:class:`bayesstruct.errors.DataError` naming the file or field; a missing one raises
:class:`DataNotFoundError`. Both are printed by the CLI as an ``error:`` line (exit 2).

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
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .errors import DataError
from .files import atomic_path

__all__ = [
    "DATASETS", "IDX_FILES", "SHA256", "FMNIST_SYSTEM_DIR", "N_CLASSES", "DataError",
    "DataNotFoundError", "Split", "Dataset", "load", "read_idx", "find_idx_dir", "download",
    "cache_dir",
]

SKLEARN_SETS = ("digits", "wine", "breast_cancer", "iris", "circles")
#: ``circles``: scikit-learn's ``make_circles`` (two noisy concentric rings in 2-D, seeded),
#: the synthetic set of seed 002's kernel-width experiment: no linear boundary exists
CIRCLES = {"n_samples": 600, "noise": 0.2, "factor": 0.5, "random_state": 0}
IDX_SETS = ("mnist", "fashion-mnist")
PAIR_SETS = ("sts", "pairs-synthetic")
DATASETS: tuple[str, ...] = SKLEARN_SETS + IDX_SETS + PAIR_SETS
SYNTHETIC_PAIRS = 3000  # examples of ``pairs-synthetic``
#: Class labels of each data set before ``classes`` selects some (``0..N-1``); the config
#: checks ``data.classes`` against it.
N_CLASSES: dict[str, int] = {"digits": 10, "wine": 3, "breast_cancer": 2, "iris": 3,
                             "circles": 2, "mnist": 10, "fashion-mnist": 10, "sts": 6,
                             "pairs-synthetic": 6}

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
    #: where the data were read from: the absolute directory of the IDX files, the absolute
    #: path of the ``sts`` pairs file; ``None`` for scikit-learn and synthetic sets
    source: str | None = None

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

    Raises:
        DataError: the file cannot be read, is not gzip data (``.gz``), is truncated, or its
            header does not match its size; the message names the file and what to do.
    """
    path = Path(path)
    gz = path.suffix == ".gz"
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            raw = f.read()
    except (gzip.BadGzipFile, zlib.error, EOFError) as e:
        raise DataError(f"{path} is truncated or corrupt (gzip: {e}); "
                        f"{_refetch_hint(path)}") from None
    except OSError as e:
        raise DataError(f"cannot read IDX file {path} ({e.strerror or e}); "
                        f"{_refetch_hint(path)}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4]!r}); "
                        f"{_refetch_hint(path)}")
    ndim = raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise DataError(f"{path} is not an IDX file (header of {ndim} sizes cut short at "
                        f"{len(raw)} bytes); {_refetch_hint(path)}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(shape)) if shape else 0
    if len(raw) - offset != count * dtype.itemsize:
        raise DataError(f"{path}: header says {shape} of {dtype} but the file holds "
                        f"{len(raw) - offset} data bytes (truncated or corrupt); "
                        f"{_refetch_hint(path)}")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape)


def _refetch_hint(path: Path) -> str:
    """What to do about a broken data file: reinstall the Debian package that owns it, or
    delete it and fetch it again."""
    try:
        system = path.resolve().is_relative_to(FMNIST_SYSTEM_DIR.resolve())
    except OSError:
        system = False
    if system:
        return ("reinstall dataset-fashion-mnist "
                "(sudo apt-get install --reinstall dataset-fashion-mnist)")
    return "delete it and download it again"


def cache_dir(name: str) -> Path:
    """The user cache for data set ``name``: ``$XDG_CACHE_HOME/bayesstruct/<name>``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bayesstruct" / name


def _search_roots(name: str, data_dir: str | os.PathLike | None) -> list[Path]:
    """The directories searched for ``name``: only ``data_dir`` (and ``data_dir/<name>``) when
    it is given, else ``$BAYESSTRUCT_DATA``, the user cache and the Debian folder."""
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        return [root, root / name]
    roots: list[Path] = []
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
    """First searched directory that holds all four IDX files of ``name`` (or ``None``).

    With ``data_dir`` only it (and ``data_dir/<name>``) is searched: an explicit folder is
    never silently replaced by another copy."""
    for d in _search_roots(name, data_dir):
        if all(_find_file(d, f) is not None for f in IDX_FILES.values()):
            return d
    return None


def _get_them(name: str) -> str:
    """The ways to provide the IDX files of ``name`` (lines for an error message)."""
    apt = ("\n  * or install Debian's package:  sudo apt-get install dataset-fashion-mnist"
           "  (files land in /usr/share/datasets/fashion-mnist)" if name == "fashion-mnist"
           else "")
    return (f"Provide them one of these ways:\n"
            f"  * pass --data-dir DIR (or data.data_dir in the config) pointing at the files "
            f"(from {BASE_URLS[name]})\n"
            f"  * set $BAYESSTRUCT_DATA=DIR and leave out --data-dir\n"
            f"  * leave out --data-dir and let bayesstruct download them into the user cache "
            f"{cache_dir(name)} (needs internet; download=True){apt}")


def _explicit_idx_dir(name: str, data_dir: str | os.PathLike) -> Path:
    """The folder (``data_dir`` or ``data_dir/<name>``) holding all four IDX files, absolute;
    else :class:`DataNotFoundError` naming ``data_dir`` and each missing file."""
    root = Path(data_dir).expanduser()
    found = find_idx_dir(name, root)
    if found is not None:
        return found.resolve()
    files = list(IDX_FILES.values())
    if not root.exists():
        what = "does not exist"
    elif not root.is_dir():
        what = "is not a directory"
    else:
        missing = [f for f in files if _find_file(root, f) is None]
        what = (f"lacks {len(missing)} of the 4 {name} IDX files: {', '.join(missing)} "
                f"(gzip-compressed or not; {root / name} does not hold all four either)")
    raise DataNotFoundError(
        f"data directory {root} (--data-dir / data.data_dir) {what}; a {name} data directory "
        f"holds {', '.join(files)} (or the same names without .gz).\n{_get_them(name)}")


def _missing_message(name: str, data_dir, reason: str = "") -> str:
    searched = "\n".join(f"    {d}" for d in _search_roots(name, data_dir))
    return (f"{name} IDX files ({', '.join(IDX_FILES.values())}) not found{reason}.\n"
            f"Searched:\n{searched}\n{_get_them(name)}")


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
        DataError: a file's SHA-256 does not match.
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
                    raise DataError(f"checksum mismatch for {base + fname}: SHA-256 {got}, "
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
    if data_dir is not None:
        d = _explicit_idx_dir(name, data_dir)
    else:
        d = find_idx_dir(name)
        if d is None:
            if not download_ok:
                raise DataNotFoundError(_missing_message(name, None, " (download=False)"))
            d = download(name)
        d = d.resolve()
    paths = {k: _find_file(d, f) for k, f in IDX_FILES.items()}
    arr = {k: read_idx(p) for k, p in paths.items()}
    for part in ("train", "test"):
        xi, yi = arr[f"{part}_images"], arr[f"{part}_labels"]
        if xi.ndim != 3 or xi.shape[1:] != (28, 28):
            raise DataError(f"{paths[f'{part}_images']}: images of shape {xi.shape}, expected "
                            f"(N, 28, 28); {_refetch_hint(paths[f'{part}_images'])}")
        if yi.ndim != 1 or yi.shape[0] != xi.shape[0]:
            raise DataError(f"{d}: {part} images {xi.shape} and labels {yi.shape} do not match "
                            f"({paths[f'{part}_images'].name}, {paths[f'{part}_labels'].name})")
        if yi.size and not 0 <= int(yi.min()) <= int(yi.max()) < N_CLASSES[name]:
            raise DataError(f"{paths[f'{part}_labels']}: labels must lie in "
                            f"0..{N_CLASSES[name] - 1} (found {int(yi.min())}..{int(yi.max())})")

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
        x, y, shape, names = _load_sklearn(name)
        x, y, names = _select(x, y, names, classes)
        rest, test_idx = _stratified_split(y, test_fraction, rng)
        x_test, y_test = x[test_idx], y[test_idx]
        x, y = x[rest], y[rest]
    else:
        x, y, x_test, y_test, d = _load_idx(name, data_dir, download)
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
