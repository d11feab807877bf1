"""Bad data and config input: one exception naming the file or field, and at the CLI one
``error:`` message with exit code 2 (no traceback, no bare ``Aborted``).

The IDX files are small but valid ones written here (scikit-learn digits upscaled to 28x28),
then truncated or corrupted: these are tests of the reader's errors, not data to train on.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from bayesstruct import config, data
from bayesstruct.cli import app
from bayesstruct.config import ConfigError
from bayesstruct.data import DataNotFoundError, pairs
from bayesstruct.errors import DataError, UserInputError

runner = CliRunner()
TRAIN_IMAGES = "train-images-idx3-ubyte.gz"


# -- helpers ---------------------------------------------------------------------------------
def _write_idx(path: Path, arr: np.ndarray) -> None:
    """A uint8 IDX file (gzip-compressed when the name ends in .gz)."""
    payload = (bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">i", s) for s in arr.shape)
               + arr.astype(np.uint8).tobytes())
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def idx_dir(root: Path, n_train: int = 20, n_test: int = 10) -> Path:
    """The four IDX files of an MNIST-format set: digits images 8x8 -> 24x24 (3x3 blocks),
    padded to 28x28, scaled 0..16 -> 0..255, with their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    n = n_train + n_test
    img = np.pad(np.kron(d.images[:n], np.ones((3, 3))), ((0, 0), (2, 2), (2, 2)))
    img = np.rint(img * 255 / 16).astype(np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    _write_idx(root / "train-images-idx3-ubyte.gz", img[:n_train])
    _write_idx(root / "train-labels-idx1-ubyte.gz", d.target[:n_train])
    _write_idx(root / "t10k-images-idx3-ubyte.gz", img[n_train:])
    _write_idx(root / "t10k-labels-idx1-ubyte.gz", d.target[n_train:n])
    return root


@pytest.fixture
def no_other_copies(tmp_path, monkeypatch):
    """Nothing outside the test's own folders: an empty cache and Debian folder, no
    $BAYESSTRUCT_DATA."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("BAYESSTRUCT_DATA", raising=False)
    monkeypatch.setattr(data.idx, "FMNIST_SYSTEM_DIR", tmp_path / "system")


@pytest.fixture
def truncated_dir(tmp_path, no_other_copies) -> Path:
    d = idx_dir(tmp_path / "truncated")
    raw = (d / TRAIN_IMAGES).read_bytes()
    (d / TRAIN_IMAGES).write_bytes(raw[: len(raw) // 2])
    return d


@pytest.fixture
def garbage_dir(tmp_path, no_other_copies) -> Path:
    d = idx_dir(tmp_path / "garbage")
    (d / TRAIN_IMAGES).write_bytes(np.random.default_rng(0).bytes(4000))
    return d


@pytest.fixture
def sts_files(tmp_path):
    """A small valid STS-style TSV file and GloVe-format vectors for its words."""
    rng = np.random.default_rng(0)
    words = ["a", "man", "is", "playing", "guitar", "the", "dog", "runs", "cat", "sleeps", "."]
    vec = tmp_path / "glove.txt"
    vec.write_text("".join(f"{w} " + " ".join(f"{v:.4f}" for v in rng.normal(size=4)) + "\n"
                           for w in words), encoding="utf-8")
    templates = [("A man is playing guitar.", "A man is playing guitar.", 5.0),
                 ("The dog runs.", "The cat sleeps.", 0.4),
                 ("A dog runs.", "The dog runs.", 3.6)]
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join(f"{s}\t{a}\t{b}\n" for a, b, s in templates * 20), encoding="utf-8")
    return tsv, vec


def cli_error(res, *needles: str, one_line: bool = True) -> str:
    """Exit code 2, an ``error:`` message (one line unless ``one_line=False``, then its first
    line) holding every needle; no traceback, no bare ``Aborted``."""
    assert res.exit_code == 2, (res.exit_code, res.output, repr(res.exception))
    assert "Traceback" not in res.output and "Aborted" not in res.output, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines and lines[0].startswith("error: "), res.output
    if one_line:
        assert len(lines) == 1, res.stderr
    text = "\n".join(lines)
    for n in needles:
        assert n in text, (n, text)
    return text


def run_cli(tmp_path, *args: str):
    return runner.invoke(app, ["run", *args, "--out", str(tmp_path / "run"), "--quiet",
                               "--set", "inference.epochs=1"])


# -- 1. a truncated IDX .gz ------------------------------------------------------------------
def test_truncated_idx_gz_is_a_data_error_naming_the_file(truncated_dir):
    with pytest.raises(DataError) as e:
        data.load("fashion-mnist", data_dir=truncated_dir, download=False)
    msg = str(e.value)
    assert str(truncated_dir / TRAIN_IMAGES) in msg and "\n" not in msg
    assert "truncated or corrupt (gzip: " in msg and "delete it and download it again" in msg
    assert isinstance(e.value, UserInputError)


def test_truncated_debian_copy_says_reinstall(tmp_path, no_other_copies):
    system = idx_dir(data.idx.FMNIST_SYSTEM_DIR)
    raw = (system / TRAIN_IMAGES).read_bytes()
    (system / TRAIN_IMAGES).write_bytes(raw[:100])
    with pytest.raises(DataError, match="reinstall dataset-fashion-mnist") as e:
        data.load("fashion-mnist", download=False)
    assert str(system / TRAIN_IMAGES) in str(e.value)


def test_cli_truncated_idx_gz_exits_2(tmp_path, truncated_dir):
    res = run_cli(tmp_path, "ard-logreg-fashion-mnist", "--data-dir", str(truncated_dir))
    cli_error(res, str(truncated_dir / TRAIN_IMAGES), "truncated or corrupt")


# -- 2. a garbage .gz, a wrong IDX header ----------------------------------------------------
@pytest.mark.parametrize("kind", ["random-bytes", "gzip-header-then-garbage", "empty"])
def test_garbage_gz_is_a_data_error_naming_the_file(tmp_path, kind):
    p = tmp_path / TRAIN_IMAGES
    rng = np.random.default_rng(1)
    if kind == "random-bytes":
        p.write_bytes(b"PK" + rng.bytes(2000))
    elif kind == "gzip-header-then-garbage":
        _write_idx(p, np.zeros((4, 28, 28), np.uint8))
        p.write_bytes(p.read_bytes()[:10] + rng.bytes(2000))  # zlib.error
    else:
        p.write_bytes(b"")
    with pytest.raises(DataError) as e:
        data.read_idx(p)
    msg = str(e.value)
    assert str(p) in msg and "\n" not in msg
    assert "truncated or corrupt (gzip: " in msg or "not an IDX file" in msg


@pytest.mark.parametrize("compress", [True, False])
def test_wrong_idx_header_is_a_data_error(tmp_path, compress):
    name = "t10k-labels-idx1-ubyte" + (".gz" if compress else "")
    p = tmp_path / name
    _write_idx(p, np.arange(30, dtype=np.uint8))
    good = gzip.decompress(p.read_bytes()) if compress else p.read_bytes()
    wrong_size = good[:4] + struct.pack(">i", 31) + good[8:]  # header: 31 labels, holds 30
    p.write_bytes(gzip.compress(wrong_size) if compress else wrong_size)
    with pytest.raises(DataError, match="header says") as e:
        data.read_idx(p)
    assert str(p) in str(e.value)
    p.write_bytes(gzip.compress(b"\x00\x00\x08\x03\x00") if compress else b"\x00\x00\x08\x03")
    with pytest.raises(DataError, match="not an IDX file") as e:  # header cut short
        data.read_idx(p)
    assert str(p) in str(e.value)


def test_idx_images_of_the_wrong_shape_or_count_are_a_data_error(tmp_path, no_other_copies):
    d = idx_dir(tmp_path / "shape")
    _write_idx(d / TRAIN_IMAGES, np.zeros((20, 8, 8), np.uint8))
    with pytest.raises(DataError, match=r"expected \(N, 28, 28\)") as e:
        data.load("mnist", data_dir=d)
    assert str(d / TRAIN_IMAGES) in str(e.value)
    d = idx_dir(tmp_path / "count")
    _write_idx(d / "train-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))
    with pytest.raises(DataError, match="do not match") as e:
        data.load("mnist", data_dir=d)
    assert "train-labels-idx1-ubyte.gz" in str(e.value)


def test_cli_garbage_gz_exits_2(tmp_path, garbage_dir):
    res = run_cli(tmp_path, "ard-logreg-fashion-mnist", "--data-dir", str(garbage_dir))
    cli_error(res, str(garbage_dir / TRAIN_IMAGES), "truncated or corrupt")


# -- 3. sentence-pair and word-vector files --------------------------------------------------
def test_absent_pairs_file_is_one_line_naming_the_path(tmp_path, sts_files):
    _, vec = sts_files
    missing = tmp_path / "nope" / "sts-train.tsv"
    with pytest.raises(DataNotFoundError) as e:
        data.load("sts", pairs_file=missing, word_vectors=vec)
    msg = str(e.value)
    assert str(missing) in msg and "data.pairs_file" in msg and "\n" not in msg
    tsv, _ = sts_files
    with pytest.raises(DataNotFoundError, match="data.word_vectors") as e:
        data.load("sts", pairs_file=tsv, word_vectors=tmp_path / "glove.840B.txt")
    assert str(tmp_path / "glove.840B.txt") in str(e.value)
    with pytest.raises(DataNotFoundError, match="data.word_vectors is not set"):
        data.load("sts", pairs_file=tsv)


@pytest.mark.parametrize("content,needle", [
    (b"\xff\xfe3\x00.\x00", "is not UTF-8 text (byte 0xff at offset 0, line 1)"),
    (b"4.0\ta b\n1.0\tonly two fields\n", "pairs.tsv:1: expected 3 tab-separated fields"),
    (b"4.0\ta\tb\nnan?\ta\tb\n", "pairs.tsv:2: score 'nan?' is not a number"),
    (b"4.0\ta\tb\n9\ta\tb\n", "pairs.tsv:2: score 9.0 outside 0..5"),
    (b"score\tsentence1\tsentence2\n\n", "no sentence pairs found"),
])
def test_garbled_pairs_file_is_a_data_error_naming_it(tmp_path, sts_files, content, needle):
    _, vec = sts_files
    bad = tmp_path / "pairs.tsv"
    bad.write_bytes(content)
    with pytest.raises(DataError) as e:
        data.load("sts", pairs_file=bad, word_vectors=vec)
    msg = str(e.value)
    assert str(bad) in msg and needle in msg and "\n" not in msg, msg


@pytest.mark.parametrize("content,needle", [
    ("a 1 2 3 4\nman 1 2 x 4\n", "glove.txt:2: value 'x' is not a number"),
    ("a 1 2 3 4\nman 1 2\n", "glove.txt:2: 2 values, expected 4"),
    ("\n\n", "no word vectors found"),
    ("zebra 1 2\n", "none of the"),
])
def test_garbled_word_vectors_are_a_data_error_naming_them(tmp_path, sts_files, content,
                                                           needle):
    tsv, vec = sts_files
    vec.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as e:
        data.load("sts", pairs_file=tsv, word_vectors=vec)
    msg = str(e.value)
    assert str(vec) in msg and needle in msg and "data.word_vectors" in msg, msg
    assert "\n" not in msg


def test_pair_readers_refuse_a_directory(tmp_path):
    with pytest.raises(DataNotFoundError, match="is not a file"):
        pairs.read_pairs_tsv(tmp_path)
    with pytest.raises(DataNotFoundError, match="is not a file"):
        pairs.read_word_vectors(tmp_path)


def test_cli_absent_pairs_file_exits_2(tmp_path, sts_files):
    _, vec = sts_files
    missing = tmp_path / "absent.tsv"
    res = run_cli(tmp_path, "rnn-sts", "--set", f"data.pairs_file={missing}",
                  "--set", f"data.word_vectors={vec}")
    cli_error(res, str(missing), "data.pairs_file")


def test_cli_garbled_pairs_file_exits_2(tmp_path, sts_files):
    _, vec = sts_files
    bad = tmp_path / "latin1.tsv"
    bad.write_bytes("4.0\ta\tb\n4.0\tCaf\xe9 au lait.\tA coffee.\n".encode("latin-1"))
    res = run_cli(tmp_path, "rnn-sts", "--set", f"data.pairs_file={bad}",
                  "--set", f"data.word_vectors={vec}")
    cli_error(res, str(bad), "not UTF-8 text (byte 0xe9 at offset 15, line 2)")


# -- 4. data.train_size and data.classes -----------------------------------------------------
def test_train_size_beyond_the_training_split_names_the_field_and_range():
    n = len(data.load("digits", seed=0).train)
    with pytest.raises(DataError) as e:
        data.load("digits", seed=0, train_size=99999)
    msg = str(e.value)
    assert isinstance(e.value, UserInputError)
    assert "data.train_size=99999" in msg and f"has {n} examples" in msg
    assert f"allowed 1..{n}" in msg and "digits" in msg


def test_train_size_beyond_an_idx_split_names_the_directory(tmp_path, no_other_copies):
    d = idx_dir(tmp_path / "small", n_train=20)  # 2 per class: none held out for val
    with pytest.raises(DataError, match=r"data.train_size=50: .* has 20 examples .*"
                                        r"allowed 1\.\.20") as e:
        data.load("mnist", data_dir=d, train_size=50)
    assert str(d.resolve()) in str(e.value)


@pytest.mark.parametrize("classes,problem", [
    ([0, 10], "[10] out of range"),
    ([1, 1], "duplicate labels"),
    ([3], "fewer than 2 labels"),
])
def test_bad_classes_name_the_field_value_and_allowed_labels(classes, problem):
    with pytest.raises(DataError) as e:
        data.load("digits", classes=classes)
    msg = str(e.value)
    assert f"data.classes={classes}" in msg and problem in msg and "0..9" in msg
    with pytest.raises(ConfigError) as e:
        config.resolve("ard-logreg-digits", overrides=[f"data.classes={classes}"])
    msg = str(e.value)
    assert "data.classes" in msg and problem in msg and "0..9" in msg and str(classes) in msg


def test_bad_classes_of_an_idx_set_list_the_class_names(tmp_path, no_other_copies):
    d = idx_dir(tmp_path / "fm")
    with pytest.raises(DataError, match="9=Ankle boot"):
        data.load("fashion-mnist", data_dir=d, classes=[0, 12])
    with pytest.raises(ConfigError, match="data.classes"):
        config.resolve("ard-logreg-fashion-mnist", overrides=["data.classes=[2, 2]"])


def test_cli_train_size_too_large_exits_2(tmp_path):
    res = run_cli(tmp_path, "ard-logreg-digits", "--set", "data.train_size=99999")
    cli_error(res, "data.train_size=99999", "allowed 1..")


def test_cli_bad_classes_exits_2(tmp_path):
    res = run_cli(tmp_path, "ard-logreg-digits", "--set", "data.classes=[0,10]")
    cli_error(res, "data.classes", "out of range", "0..9", one_line=False)


# -- 5. a negative seed ----------------------------------------------------------------------
@pytest.mark.parametrize("entry,override,field", [
    ("ard-logreg-digits", "seed=-1", "seed"),
    ("ard-logreg-digits", f"seed={2**32}", "seed"),
    ("nas-digits", "nas.seeds=[0,-3]", "nas.seeds.1"),
])
def test_negative_seed_is_refused_by_validation(entry, override, field):
    with pytest.raises(ConfigError) as e:
        config.resolve(entry, overrides=[override])
    assert f"  {field}: " in str(e.value)


def test_cli_negative_seed_exits_2(tmp_path):
    res = run_cli(tmp_path, "ard-logreg-digits", "--set", "seed=-1")
    cli_error(res, "seed", "greater than or equal to 0", one_line=False)


# -- 6. YAML that is not UTF-8, not valid YAML, or not a mapping -----------------------------
@pytest.mark.parametrize("content,needle", [
    (b"\xff\xfedata:\n  name: digits\n", "not UTF-8 text (byte 0xff at offset 0, line 1)"),
    (b"data:\n  name: caf\xe9\n", "not UTF-8 text (byte 0xe9 at offset 17, line 2)"),
    (b"data: [digits\nnet: x\n", "invalid YAML: line 2, column 4"),
    (b"data:\n  name: digits\n    val_fraction: 0.1\n", "invalid YAML: line 3, column 17"),
    (b"epochs: 'unterminated\n", "invalid YAML: line 2, column 1"),
    (b"epochs: 5\x07\n", "invalid YAML: line 1, column 10: character #x0007"),
    (b"- a list\n- not a mapping\n", "expected a mapping (key: value lines) at the top, got list"),
    (b"just a string\n", "got str"),
])
def test_load_yaml_names_the_file_and_the_problem(tmp_path, content, needle):
    p = tmp_path / "entry.yaml"
    p.write_bytes(content)
    with pytest.raises(ConfigError) as e:
        config.load_yaml(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: ") and needle in msg and "\n" not in msg, msg


def test_cli_bad_yaml_entry_and_recipe_exit_2(tmp_path):
    entry = tmp_path / "utf16.yaml"
    entry.write_bytes("description: x\n".encode("utf-16"))  # starts b"\xff\xfe"
    cli_error(run_cli(tmp_path, str(entry)), str(entry), "not UTF-8 text")
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: {name: digits\nnet: {kind: logreg}\n", encoding="utf-8")
    cli_error(run_cli(tmp_path, str(broken)), str(broken), "invalid YAML: line ")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("engine: svi\n  epochs: 3\n", encoding="utf-8")
    cli_error(run_cli(tmp_path, "ard-logreg-digits", "--inference", str(recipe)), str(recipe),
              "invalid YAML: line 2")


# -- 7. an explicit --data-dir is used or refused --------------------------------------------
def test_absent_data_dir_is_refused_not_replaced(tmp_path, monkeypatch, no_other_copies):
    # a complete copy elsewhere must not be picked instead
    monkeypatch.setenv("BAYESSTRUCT_DATA", str(idx_dir(tmp_path / "env")))
    idx_dir(data.idx.FMNIST_SYSTEM_DIR)
    absent = tmp_path / "typo"
    with pytest.raises(DataNotFoundError) as e:
        data.load("fashion-mnist", data_dir=absent)
    first = str(e.value).splitlines()[0]
    assert f"data directory {absent} (--data-dir / data.data_dir) does not exist" in first
    for f in data.IDX_FILES.values():
        assert f in first
    assert "apt-get install dataset-fashion-mnist" in str(e.value)  # where to get them
    assert data.find_idx_dir("fashion-mnist", absent) is None


def test_data_dir_with_two_of_four_files_names_the_missing_ones(tmp_path, no_other_copies):
    d = idx_dir(tmp_path / "half")
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (d / f).unlink()
    idx_dir(data.cache_dir("mnist"))  # a complete cache must not be picked instead
    with pytest.raises(DataNotFoundError) as e:
        data.load("mnist", data_dir=d)
    first = str(e.value).splitlines()[0]
    lacks = first.split(" lacks ", 1)[1].split("(", 1)[0]
    assert str(d) in first and lacks.startswith("2 of the 4 mnist IDX files")
    assert "t10k-images-idx3-ubyte.gz" in lacks and "t10k-labels-idx1-ubyte.gz" in lacks
    assert "train-" not in lacks
    assert "ossci-datasets" in str(e.value)  # where to get them


def test_dataset_source_is_the_directory_actually_read(tmp_path, monkeypatch, sts_files,
                                                      no_other_copies):
    explicit = idx_dir(tmp_path / "explicit")
    idx_dir(data.idx.FMNIST_SYSTEM_DIR)
    ds = data.load("fashion-mnist", data_dir=explicit)
    assert ds.source == str(explicit.resolve())
    nested = idx_dir(tmp_path / "root" / "fashion-mnist")  # <data_dir>/<name>/ layout
    assert data.load("fashion-mnist", data_dir=tmp_path / "root").source == str(nested)
    unzipped = tmp_path / "plain"
    unzipped.mkdir()
    for f in data.IDX_FILES.values():  # uncompressed files count too
        (unzipped / f[:-3]).write_bytes(gzip.decompress((explicit / f).read_bytes()))
    assert data.load("fashion-mnist", data_dir=unzipped).source == str(unzipped.resolve())
    monkeypatch.chdir(tmp_path)
    assert data.load("fashion-mnist", data_dir="explicit").source == str(explicit.resolve())
    assert data.load("fashion-mnist").source == str(data.idx.FMNIST_SYSTEM_DIR.resolve())
    assert data.load("digits").source is None
    tsv, vec = sts_files
    assert data.load("sts", pairs_file=os.path.relpath(tsv), word_vectors=vec).source == str(
        tsv.resolve())


def test_cli_absent_data_dir_exits_2(tmp_path, no_other_copies):
    idx_dir(data.idx.FMNIST_SYSTEM_DIR)  # present, but --data-dir names another folder
    absent = tmp_path / "nowhere"
    res = run_cli(tmp_path, "ard-logreg-fashion-mnist", "--data-dir", str(absent))
    first = cli_error(res, str(absent), "does not exist", one_line=False).splitlines()[0]
    assert str(absent) in first and TRAIN_IMAGES in first


def test_cli_data_dir_with_two_of_four_files_exits_2(tmp_path, no_other_copies):
    d = idx_dir(tmp_path / "half")
    (d / "train-images-idx3-ubyte.gz").unlink()
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    res = run_cli(tmp_path, "ard-logreg-fashion-mnist", "--data-dir", str(d))
    first = cli_error(res, str(d), one_line=False).splitlines()[0]
    assert "lacks 2 of the 4 fashion-mnist IDX files: train-images-idx3-ubyte.gz, " \
           "t10k-labels-idx1-ubyte.gz" in first


def test_config_yaml_records_the_directory_actually_read(tmp_path, no_other_copies,
                                                        monkeypatch):
    """A relative --data-dir is written into config.yaml as the absolute folder read."""
    d = idx_dir(tmp_path / "idx", n_train=200, n_test=50)
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["run", "ard-logreg-fashion-mnist", "--data-dir", "idx", "--out",
                              str(tmp_path / "run"), "--quiet", "--set", "inference.epochs=1",
                              "--set", "inference.num_draws=2", "--set", "pruning.mc_samples=2"])
    assert res.exit_code == 0, res.output
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["data"]["data_dir"] == str(d.resolve())
