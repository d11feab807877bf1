"""Sentence-pair data: the TSV and word-vector readers, the synthetic task, the pair net."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bayesstruct import data, nets
from bayesstruct.data import pairs


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def sts_files(tmp_path):
    rng = np.random.default_rng(0)
    words = ["a", "man", "is", "playing", "guitar", "woman", "cooking", "the", "dog", "runs",
             "cat", "sleeps", "."]
    glove = "\n".join(f"{w} " + " ".join(f"{v:.4f}" for v in rng.normal(size=4)) for w in words)
    vec = _write(tmp_path / "glove.txt", glove + "\n")
    lines = ["score\tsentence1\tsentence2"]  # a header is skipped
    templates = [("A man is playing guitar.", "A man is playing guitar."),
                 ("The dog runs.", "The cat sleeps."),
                 ("A woman is cooking.", "A man is cooking.")]
    for k in range(60):
        a, b = templates[k % 3]
        lines.append(f"{[5.0, 0.4, 2.6][k % 3]}\t{a}\t{b}")
    tsv = _write(tmp_path / "pairs.tsv", "\n".join(lines) + "\n")
    return tsv, vec


def test_tokenize():
    assert pairs.tokenize("Don't STOP, now!") == ["don't", "stop", ",", "now", "!"]


def test_read_pairs_tsv_formats_and_errors(tmp_path):
    three = _write(tmp_path / "a.tsv", "4.2\tA b.\tA c.\n")
    bench = _write(tmp_path / "b.csv", "main-captions\tMSRvid\t2012test\t0001\t5.000\tA b.\tA b.\n")
    assert pairs.read_pairs_tsv(three) == [(4.2, "A b.", "A c.")]
    assert pairs.read_pairs_tsv(bench) == [(5.0, "A b.", "A b.")]
    with pytest.raises(ValueError, match=r"c.tsv:1: expected 3 tab-separated"):
        pairs.read_pairs_tsv(_write(tmp_path / "c.tsv", "1\t2\n"))
    with pytest.raises(ValueError, match=r"d.tsv:2: score 'x'"):
        pairs.read_pairs_tsv(_write(tmp_path / "d.tsv", "1\ta\tb\nx\ta\tb\n"))
    with pytest.raises(ValueError, match="outside 0..5"):
        pairs.read_pairs_tsv(_write(tmp_path / "e.tsv", "7\ta\tb\n"))
    with pytest.raises(FileNotFoundError, match="score<TAB>sentence_a"):
        pairs.read_pairs_tsv(tmp_path / "missing.tsv")


def test_read_word_vectors(tmp_path):
    glove = _write(tmp_path / "g.txt", "the 1 2\ncat 3 4\n")
    w2v = _write(tmp_path / "w.txt", "2 2\nthe 1 2\ncat 3 4\n")
    for path in (glove, w2v):
        v = pairs.read_word_vectors(path)
        assert sorted(v) == ["cat", "the"] and v["cat"].tolist() == [3.0, 4.0]
    assert list(pairs.read_word_vectors(glove, {"cat"})) == ["cat"]
    with pytest.raises(ValueError, match="g2.txt:2: 1 values, expected 2"):
        pairs.read_word_vectors(_write(tmp_path / "g2.txt", "the 1 2\ncat 3\n"))


def test_encode_pairs_pads_masks_and_counts_unknown_words():
    vectors = {"a": np.array([1.0, 2.0], np.float32), "b": np.array([3.0, 4.0], np.float32)}
    x, y, oov = pairs.encode_pairs([(2.6, ["a", "zz", "b"], ["b"])], vectors, max_len=3)
    assert x.shape == (1, 2, 3, 3) and y.tolist() == [3] and oov == pytest.approx(0.25)
    assert x[0, 0, :, 2].tolist() == [1, 1, 0] and x[0, 0, 1, :2].tolist() == [3, 4]
    assert x[0, 1, :, 2].tolist() == [1, 0, 0]


def test_synthetic_pairs_are_seeded_and_scored_by_shared_words():
    x1, y1 = pairs.synthetic_pairs(200, seed=3)
    x2, y2 = pairs.synthetic_pairs(200, seed=3)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert x1.shape == (200, 2, 10, 9) and set(np.unique(y1)) == set(range(6))
    same = (x1[:, 0] == x1[:, 1]).all(axis=-1).sum(-1) - (x1[:, 0, :, -1] == 0).sum(-1)
    share = same / x1[:, 0, :, -1].sum(-1)
    # score 5 pairs are identical; the shared share rises with the score
    assert np.all(share[y1 == 5] == 1.0)
    means = [share[y1 == k].mean() for k in range(6)]
    assert all(a < b for a, b in zip(means[:-1], means[1:], strict=True))


def test_sts_loads_user_files_with_a_70_15_15_split(sts_files):
    tsv, vec = sts_files
    ds = data.load("sts", pairs_file=tsv, word_vectors=vec, max_len=6, test_fraction=0.15,
                   val_fraction=0.1765)
    assert ds.pairs and ds.n_classes == 6 and ds.input_shape == (2, 6, 5)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (42, 9, 9)
    assert sorted(torch.unique(ds.train.y).tolist()) == [0, 3, 5]
    with pytest.raises(data.DataNotFoundError, match="data.pairs_file"):
        data.load("sts")


def test_pair_classifier_is_symmetric_and_ignores_padding():
    torch.manual_seed(0)
    net = nets.build("gru", (2, 7, 5), 6, [8], pairs=True)
    x = torch.zeros(3, 2, 7, 5)
    x[:, :, :4, :4] = torch.randn(3, 2, 4, 4)
    x[:, :, :4, 4] = 1.0
    out = net(x)
    assert out.shape == (3, 6)
    torch.testing.assert_close(net(x.flip(1)), out)
    torch.testing.assert_close(net(x[:, :, :4]), out)  # the same pairs without padding
    with pytest.raises(ValueError, match="pair data sets need a recurrent net"):
        nets.build("mlp", (2, 7, 5), 6, [8], pairs=True)
