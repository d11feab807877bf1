"""bayesstruct.data.idx: the IDX reader, the search order, loading from a folder, the
checksummed download."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from bayesstruct import data
from bayesstruct.data import idx


def write_idx(path: Path, arr: np.ndarray, compress: bool = True) -> None:
    """Independent IDX writer (uint8 only), the inverse of what read_idx must do."""
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">i", s) for s in arr.shape)
    payload = header + arr.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def fake_idx_dir(root: Path, n_train: int = 50, n_test: int = 20, seed: int = 0) -> Path:
    """Small MNIST-format files for search/loading tests (format checks, not a data set)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{part}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(root / f"{part}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return root


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, compress):
    arr = np.random.default_rng(1).integers(0, 256, (7, 5, 3)).astype(np.uint8)
    p = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(p, arr, compress)
    np.testing.assert_array_equal(idx.read_idx(p), arr)


def test_idx_bad_magic(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        idx.read_idx(p)


def test_idx_truncated(tmp_path):
    p = tmp_path / "short"
    p.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">i", 10) + b"\x00" * 3)
    with pytest.raises(ValueError, match="header says"):
        idx.read_idx(p)


def test_missing_files_message(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("BAYESSTRUCT_DATA", raising=False)
    monkeypatch.setattr(idx, "FMNIST_SYSTEM_DIR", tmp_path / "nowhere")
    with pytest.raises(data.DataNotFoundError) as e:
        data.load("fashion-mnist", data_dir=tmp_path / "empty", download=False)
    msg = str(e.value)
    for needle in ("--data-dir", "$BAYESSTRUCT_DATA", "download", str(tmp_path / "cache"),
                   "apt-get install dataset-fashion-mnist"):
        assert needle in msg
    with pytest.raises(data.DataNotFoundError, match="make data-mnist"):
        data.load("mnist", data_dir=tmp_path / "empty", download=False)


def test_search_order(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(idx, "FMNIST_SYSTEM_DIR", tmp_path / "system")
    env_dir = fake_idx_dir(tmp_path / "env" / "fashion-mnist")  # <root>/<name>/ layout
    monkeypatch.setenv("BAYESSTRUCT_DATA", str(tmp_path / "env"))
    assert idx.find_idx_dir("fashion-mnist") == env_dir
    explicit = fake_idx_dir(tmp_path / "explicit")
    assert idx.find_idx_dir("fashion-mnist", explicit) == explicit
    monkeypatch.delenv("BAYESSTRUCT_DATA")
    system = fake_idx_dir(tmp_path / "system")
    assert idx.find_idx_dir("fashion-mnist") == system
    assert idx.find_idx_dir("mnist") is None  # the Debian folder is Fashion-MNIST only


def test_load_from_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    d = fake_idx_dir(tmp_path / "mnist", n_train=200, n_test=30)
    ds = data.load("mnist", data_dir=d, download=False, standardize=False)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (180, 20, 30)
    assert ds.input_shape == (1, 28, 28) and ds.train.x.shape[1:] == (1, 28, 28)
    assert 0.0 <= float(ds.train.x.min()) and float(ds.train.x.max()) <= 1.0
    raw = idx.read_idx(d / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_allclose(ds.test.x[:, 0].numpy(), raw / 255.0, rtol=1e-6)


# -- download over a loopback HTTP server -----------------------------------------------------
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_dir(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = lambda *a, **k: _Quiet(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_download_checks_sha256(tmp_path, http_dir, monkeypatch):
    served, url = http_dir
    fake_idx_dir(served)
    sums = {f: hashlib.sha256((served / f).read_bytes()).hexdigest()
            for f in idx.IDX_FILES.values()}
    monkeypatch.setitem(idx.SHA256, "mnist", sums)
    dest = idx.download("mnist", tmp_path / "dl", base_url=url)
    assert sorted(os.listdir(dest)) == sorted(sums)  # no temporary files left
    assert idx.find_idx_dir("mnist", dest) == dest


def test_download_corrupt_file_leaves_nothing(tmp_path, http_dir, monkeypatch):
    served, url = http_dir
    fake_idx_dir(served)
    sums = {f: "0" * 64 for f in idx.IDX_FILES.values()}
    monkeypatch.setitem(idx.SHA256, "mnist", sums)
    with pytest.raises(ValueError, match="checksum mismatch"):
        idx.download("mnist", tmp_path / "dl", base_url=url)
    assert os.listdir(tmp_path / "dl") == []


def test_download_unreachable(tmp_path):
    with pytest.raises(data.DataNotFoundError, match="downloading"):
        idx.download("mnist", tmp_path / "dl", base_url="http://127.0.0.1:9/", timeout=2)
    assert os.listdir(tmp_path / "dl") == []


def _raw_copy(src: Path, dst: Path) -> Path:
    """The fake files of ``src`` unpacked into ``dst`` (the npm package's layout)."""
    dst.mkdir(parents=True)
    for f in idx.IDX_FILES.values():
        (dst / f[:-3]).write_bytes(gzip.decompress((src / f).read_bytes()))
    return dst


def test_install_checks_unpacked_files_by_md5(tmp_path, monkeypatch):
    raw = _raw_copy(fake_idx_dir(tmp_path / "gz"), tmp_path / "raw")
    sums = {f.name: hashlib.md5(f.read_bytes()).hexdigest() for f in raw.iterdir()}
    monkeypatch.setitem(idx.RAW_MD5, "mnist", sums)
    dest = idx.install("mnist", raw, tmp_path / "cache")
    assert sorted(os.listdir(dest)) == sorted(sums)  # no temporary files left
    for f in raw.iterdir():
        assert (dest / f.name).read_bytes() == f.read_bytes()
    ds = data.load("mnist", data_dir=dest, download=False, standardize=False)
    assert len(ds.test) == 20


def test_install_mismatch_copies_nothing(tmp_path, monkeypatch):
    raw = _raw_copy(fake_idx_dir(tmp_path / "gz"), tmp_path / "raw")
    sums = {f.name: hashlib.md5(f.read_bytes()).hexdigest() for f in raw.iterdir()}
    sums["t10k-labels-idx1-ubyte"] = "0" * 32  # the last file checked is the bad one
    monkeypatch.setitem(idx.RAW_MD5, "mnist", sums)
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte: MD5 .* nothing was copied"):
        idx.install("mnist", raw, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    (raw / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(data.DataNotFoundError, match="lacks train-labels-idx1-ubyte.gz"):
        idx.install("mnist", raw, tmp_path / "cache")


def test_installed_mnist_is_the_published_data():
    """MNIST, where this machine has it (``make data-mnist``): the unpacked files' MD5s and
    the class counts of both splits are the published ones."""
    d = idx.find_idx_dir("mnist")
    if d is None:
        pytest.skip("MNIST is not installed (make data-mnist, or $BAYESSTRUCT_DATA)")
    for name, digest in idx.RAW_MD5["mnist"].items():
        if (d / name).is_file():
            assert hashlib.md5((d / name).read_bytes()).hexdigest() == digest
    train = idx.read_idx(idx._find_file(d, "train-labels-idx1-ubyte.gz"))
    test = idx.read_idx(idx._find_file(d, "t10k-labels-idx1-ubyte.gz"))
    assert np.bincount(train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265,
                                           5851, 5949]
    assert np.bincount(test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_published_checksums_match_debian_package():
    """The SHA-256 table agrees with the files Debian ships (when the package is installed)."""
    d = idx.FMNIST_SYSTEM_DIR
    if not d.is_dir():
        pytest.skip("dataset-fashion-mnist is not installed (make data installs it as root)")
    for fname, digest in idx.SHA256["fashion-mnist"].items():
        assert hashlib.sha256((d / fname).read_bytes()).hexdigest() == digest


def test_fashion_mnist_official_split(fashion_mnist):
    ds = fashion_mnist
    assert (len(ds.train), len(ds.val), len(ds.test)) == (54000, 6000, 10000)
    assert ds.input_shape == (1, 28, 28) and ds.n_classes == 10
    assert ds.classes[9] == "Ankle boot"
    counts = torch.bincount(ds.test.y, minlength=10)
    assert (counts == 1000).all()
