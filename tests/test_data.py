"""bayesstruct.data: IDX reader, search order, seeded splits, checksummed download."""

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
    np.testing.assert_array_equal(data.read_idx(p), arr)


def test_idx_bad_magic(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(p)


def test_idx_truncated(tmp_path):
    p = tmp_path / "short"
    p.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">i", 10) + b"\x00" * 3)
    with pytest.raises(ValueError, match="header says"):
        data.read_idx(p)


@pytest.mark.parametrize("name", ["digits", "wine", "breast_cancer", "iris"])
def test_sklearn_splits(name):
    ds = data.load(name, seed=3)
    n_total = len(ds.train) + len(ds.val) + len(ds.test)
    from sklearn import datasets as skd

    assert n_total == len(getattr(skd, f"load_{name}")().target)
    assert ds.train.x.dtype == torch.float32 and ds.train.y.dtype == torch.int64
    assert tuple(ds.train.x.shape[1:]) == ds.input_shape
    # every class in every split, proportions close to the whole (stratified)
    for s in (ds.train, ds.val, ds.test):
        assert set(s.y.tolist()) == set(range(ds.n_classes))
    assert abs(len(ds.test) / n_total - 0.2) < 0.02
    # no example appears in two splits
    rows = [tuple(r) for s in (ds.train, ds.val, ds.test) for r in s.x.flatten(1).tolist()]
    assert len(set(rows)) == len({tuple(r) for r in rows})


def test_digits_shape_and_determinism():
    a, b, c = data.load("digits", seed=0), data.load("digits", seed=0), data.load("digits", seed=1)
    assert a.input_shape == (1, 8, 8) and a.n_classes == 10
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.y, c.train.y)


def test_standardisation_fitted_on_train_only():
    ds = data.load("wine", seed=0)
    raw = data.load("wine", seed=0, standardize=False)
    mean, std = raw.train.x.mean(0), raw.train.x.std(0, unbiased=False)
    torch.testing.assert_close(ds.train.x.mean(0), torch.zeros(13), atol=1e-5, rtol=0)
    torch.testing.assert_close(ds.train.x.std(0, unbiased=False), torch.ones(13), atol=1e-4,
                               rtol=0)
    torch.testing.assert_close(ds.test.x, (raw.test.x - mean) / std, atol=1e-4, rtol=1e-4)


def test_constant_features_only_centred():
    ds = data.load("digits", seed=0)  # digits has always-zero corner pixels
    assert torch.isfinite(ds.train.x).all() and torch.isfinite(ds.test.x).all()


def test_train_size_subsample():
    ds = data.load("digits", seed=0, train_size=100)
    assert len(ds.train) == 100
    with pytest.raises(ValueError, match="train_size"):
        data.load("digits", train_size=10**6)


def test_unknown_name():
    with pytest.raises(ValueError, match="allowed: digits"):
        data.load("cifar-100")


def test_missing_files_message(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("BAYESSTRUCT_DATA", raising=False)
    monkeypatch.setattr(data, "FMNIST_SYSTEM_DIR", tmp_path / "nowhere")
    with pytest.raises(data.DataNotFoundError) as e:
        data.load("fashion-mnist", data_dir=tmp_path / "empty", download=False)
    msg = str(e.value)
    for needle in ("--data-dir", "$BAYESSTRUCT_DATA", "download", str(tmp_path / "cache"),
                   "apt-get install dataset-fashion-mnist"):
        assert needle in msg


def test_search_order(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "FMNIST_SYSTEM_DIR", tmp_path / "system")
    env_dir = fake_idx_dir(tmp_path / "env" / "fashion-mnist")  # <root>/<name>/ layout
    monkeypatch.setenv("BAYESSTRUCT_DATA", str(tmp_path / "env"))
    assert data.find_idx_dir("fashion-mnist") == env_dir
    explicit = fake_idx_dir(tmp_path / "explicit")
    assert data.find_idx_dir("fashion-mnist", explicit) == explicit
    monkeypatch.delenv("BAYESSTRUCT_DATA")
    system = fake_idx_dir(tmp_path / "system")
    assert data.find_idx_dir("fashion-mnist") == system
    assert data.find_idx_dir("mnist") is None  # the Debian folder is Fashion-MNIST only


def test_load_from_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    d = fake_idx_dir(tmp_path / "mnist", n_train=200, n_test=30)
    ds = data.load("mnist", data_dir=d, download=False, standardize=False)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (180, 20, 30)
    assert ds.input_shape == (1, 28, 28) and ds.train.x.shape[1:] == (1, 28, 28)
    assert 0.0 <= float(ds.train.x.min()) and float(ds.train.x.max()) <= 1.0
    raw = data.read_idx(d / "t10k-images-idx3-ubyte.gz")
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
            for f in data.IDX_FILES.values()}
    monkeypatch.setitem(data.SHA256, "mnist", sums)
    dest = data.download("mnist", tmp_path / "dl", base_url=url)
    assert sorted(os.listdir(dest)) == sorted(sums)  # no temporary files left
    assert data.find_idx_dir("mnist", dest) == dest


def test_download_corrupt_file_leaves_nothing(tmp_path, http_dir, monkeypatch):
    served, url = http_dir
    fake_idx_dir(served)
    sums = {f: "0" * 64 for f in data.IDX_FILES.values()}
    monkeypatch.setitem(data.SHA256, "mnist", sums)
    with pytest.raises(ValueError, match="checksum mismatch"):
        data.download("mnist", tmp_path / "dl", base_url=url)
    assert os.listdir(tmp_path / "dl") == []


def test_download_unreachable(tmp_path):
    with pytest.raises(data.DataNotFoundError, match="downloading"):
        data.download("mnist", tmp_path / "dl", base_url="http://127.0.0.1:9/", timeout=2)
    assert os.listdir(tmp_path / "dl") == []


def test_published_checksums_match_debian_package():
    """The SHA-256 table agrees with the files Debian ships (when the package is installed)."""
    d = data.FMNIST_SYSTEM_DIR
    if not d.is_dir():
        pytest.skip("dataset-fashion-mnist is not installed (make data installs it as root)")
    for fname, digest in data.SHA256["fashion-mnist"].items():
        assert hashlib.sha256((d / fname).read_bytes()).hexdigest() == digest


def test_fashion_mnist_official_split(fashion_mnist):
    ds = fashion_mnist
    assert (len(ds.train), len(ds.val), len(ds.test)) == (54000, 6000, 10000)
    assert ds.input_shape == (1, 28, 28) and ds.n_classes == 10
    assert ds.classes[9] == "Ankle boot"
    counts = torch.bincount(ds.test.y, minlength=10)
    assert (counts == 1000).all()


def test_class_selection_relabels_in_the_order_given():
    full = data.load("digits", seed=0, standardize=False)
    two = data.load("digits", seed=0, classes=[7, 1], standardize=False)
    assert two.n_classes == 2 and two.classes == ("7", "1")
    for split in (two.train, two.val, two.test):
        assert set(split.y.tolist()) == {0, 1}
    n = sum(len(s) for s in (two.train, two.val, two.test))
    assert n == sum(int(((s.y == 7) | (s.y == 1)).sum()) for s in (full.train, full.val,
                                                                   full.test))
    # the images of label 0 after relabelling are sevens: their mean matches the sevens'
    sevens = torch.cat([s.x[s.y == 7] for s in (full.train, full.val, full.test)])
    mine = torch.cat([s.x[s.y == 0] for s in (two.train, two.val, two.test)])
    torch.testing.assert_close(mine.mean(0), sevens.mean(0))
    for bad in ([3], [1, 1], [0, 10]):
        with pytest.raises(ValueError, match="distinct labels in 0..9"):
            data.load("digits", classes=bad)


def test_circles_is_the_seeded_synthetic_two_ring_set():
    """The kernel-width experiment's synthetic data (seed 002): two noisy rings, no linear
    boundary (a linear classifier is near chance), the same points for every seed of splits."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    ds = data.load("circles", seed=0, val_fraction=0.33, test_fraction=0.33)
    assert ds.input_shape == (2,) and ds.n_classes == 2
    assert len(ds.train) + len(ds.val) + len(ds.test) == 600
    lin = LogisticRegression().fit(ds.train.x.numpy(), ds.train.y.numpy())
    auc = roc_auc_score(ds.test.y.numpy(), lin.predict_proba(ds.test.x.numpy())[:, 1])
    assert abs(auc - 0.5) < 0.1
    radius = ds.train.x.norm(dim=1)
    assert float(radius[ds.train.y == 1].mean()) < float(radius[ds.train.y == 0].mean())
