"""Coding cost of pruned layers: k-means sharing, Huffman, relative indices, bit precision."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from bayesstruct.pruning import coding
from tests.helpers import seed


def _streams() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "geometric": rng.geometric(0.4, size=500) - 1,
        "uniform": rng.integers(0, 8, size=400),
        "single": np.full(37, 5),
        "two": np.array([0, 1, 1, 1, 0, 1, 1]),
    }


def _decode(bitstring: str, book: dict[int, str]) -> list[int]:
    inverse = {code: sym for sym, code in book.items()}
    out, cur = [], ""
    for bit in bitstring:
        cur += bit
        if cur in inverse:
            out.append(inverse[cur])
            cur = ""
    assert cur == "", "trailing bits"
    return out


@pytest.mark.parametrize("name", ["geometric", "uniform", "single", "two"])
def test_huffman_bits_equal_actual_encoding_and_decode(name):
    symbols = _streams()[name]
    book = coding.huffman_codebook(symbols)
    codes = list(book.values())
    for a, b in itertools.permutations(codes, 2):
        assert not b.startswith(a), "not prefix-free"
    lengths = coding.huffman_code_lengths(symbols)
    assert {s: len(c) for s, c in book.items()} == lengths
    bitstring = "".join(book[int(s)] for s in symbols)
    assert len(bitstring) == coding.huffman_bits(symbols)
    assert _decode(bitstring, book) == [int(s) for s in symbols]


def test_huffman_single_symbol_and_empty():
    assert coding.huffman_code_lengths(np.array([3, 3, 3])) == {3: 1}
    assert coding.huffman_bits(np.array([3, 3, 3])) == 3
    assert coding.huffman_code_lengths(np.array([], dtype=int)) == {}
    assert coding.huffman_bits(np.array([], dtype=int)) == 0


@pytest.mark.parametrize(
    "counts", [[5, 1, 1], [1, 1, 1], [10, 3, 2, 1], [4, 4, 4, 4], [7, 6, 1, 1], [1, 2, 4, 8]]
)
def test_huffman_optimal_against_brute_force(counts):
    symbols = np.repeat(np.arange(len(counts)), counts)
    best = math.inf
    for lengths in itertools.product(range(1, 5), repeat=len(counts)):
        if sum(2.0 ** -ell for ell in lengths) <= 1.0:  # Kraft: a prefix code exists
            best = min(best, sum(c * ell for c, ell in zip(counts, lengths, strict=True)))
    assert coding.huffman_bits(symbols) == best


@pytest.mark.stochastic
def test_kmeans_recovers_separated_clusters():
    """Four clusters of 200 draws (sd 0.05, 1.5 or more apart): the codebook is their sample
    means, within 0.02 of the true ones (bound: 5.7 SE, the SE of a cluster's mean being
    0.05 / sqrt(200) = 0.0035), and every draw is assigned its own cluster (the midpoints
    between the means are 15 sd away)."""
    rng = np.random.default_rng(seed(1))
    means = np.array([-3.0, -1.0, 0.5, 2.0])
    values = np.concatenate([m + 0.05 * rng.standard_normal(200) for m in means])
    rng.shuffle(values)
    codebook, idx = coding.kmeans_share(values, bits=2)
    assert codebook.dtype == np.float32 and codebook.shape == (4,)
    assert idx.shape == values.shape
    np.testing.assert_allclose(codebook, means, atol=0.02)
    # every value sits in the cluster of its own mean
    np.testing.assert_array_equal(idx, np.argmin(np.abs(values[:, None] - means), axis=1))
    # deterministic
    c2, i2 = coding.kmeans_share(values, bits=2)
    np.testing.assert_array_equal(codebook, c2)
    np.testing.assert_array_equal(idx, i2)


def test_kmeans_objective_does_not_increase():
    rng = np.random.default_rng(2)
    values = np.concatenate([rng.standard_normal(300), 4 + 0.3 * rng.standard_normal(50)])
    objectives = []
    for iters in range(0, 12):
        codebook, idx = coding.kmeans_share(values, bits=3, iters=iters)
        objectives.append(coding.kmeans_objective(values, codebook, idx))
    diffs = np.diff(objectives)
    assert np.all(diffs <= 1e-6 * objectives[0])
    assert objectives[-1] < objectives[0]


def test_kmeans_exact_when_k_covers_distinct_values():
    rng = np.random.default_rng(3)
    values = rng.choice(np.array([0.0, 0.1, 0.2, 10.0, -7.5], dtype=np.float32), size=300)
    codebook, idx = coding.kmeans_share(values, bits=3)
    assert codebook.size == 5
    np.testing.assert_array_equal(codebook[idx], values)


def test_kmeans_empty_and_constant():
    codebook, idx = coding.kmeans_share(np.array([]), bits=4)
    assert codebook.size == 0 and idx.size == 0
    codebook, idx = coding.kmeans_share(np.full(10, 1.5), bits=4)
    np.testing.assert_array_equal(codebook, [1.5])
    np.testing.assert_array_equal(idx, np.zeros(10))


def test_relative_index_decodes_to_kept_positions():
    rng = np.random.default_rng(4)
    mask = rng.random(2000) < 0.03
    mask[1500:1700] = False  # a long gap: several fillers
    gaps, n_fillers = coding.relative_index(mask, index_bits=4)
    assert gaps.min() >= 1 and gaps.max() <= 2**4 - 1
    positions = coding.relative_positions(gaps)
    kept = np.flatnonzero(mask)
    assert np.all(np.diff(positions) > 0)
    assert np.isin(kept, positions).all()
    fillers = np.setdiff1d(positions, kept)
    assert fillers.size == n_fillers == positions.size - kept.size
    assert n_fillers >= (200 - 1) // 15


def test_relative_index_hand_example():
    mask = np.zeros(100, dtype=bool)
    mask[[2, 72, 73]] = True  # gaps 3, 70, 1
    gaps, n_fillers = coding.relative_index(mask, index_bits=5)  # bound 31
    np.testing.assert_array_equal(gaps, [3, 31, 31, 8, 1])
    assert n_fillers == 2
    np.testing.assert_array_equal(coding.relative_positions(gaps), [2, 33, 64, 72, 73])
    gaps, n_fillers = coding.relative_index(np.zeros(10, dtype=bool), index_bits=5)
    assert gaps.size == 0 and n_fillers == 0


def _sparse_layer(shape=(64, 80), keep=0.1, seed=5):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape).astype(np.float32)
    mask = rng.random(shape) < keep
    return w, mask


def test_layer_code_size_accounting_and_roundtrip():
    w, mask = _sparse_layer()
    mask[10:14, :] = False  # long empty stretch: fillers
    out = coding.layer_code_size(w, mask, bits=4, index_bits=3)
    parts = out["index_huffman_bits"] + out["position_huffman_bits"] + out["codebook_bits"]
    assert out["total_bytes"] * 8 >= parts
    assert out["total_bytes"] == math.ceil(parts / 8)
    assert out["n_weights"] == w.size and out["n_kept"] == mask.sum()
    assert out["n_fillers"] > 0
    assert out["k"] == 16 and out["codebook_bits"] == 32 * 16
    assert out["dense_bytes"] == 4 * w.size
    q = out["quantised"]
    assert q.shape == w.shape
    assert np.all(q[~mask] == 0)
    assert np.abs(q[mask] - w[mask]).max() < 0.5
    decoded = coding.decode_layer(out["gap_stream"], out["index_stream"], out["codebook"],
                                  w.shape)
    np.testing.assert_array_equal(decoded, q)
    assert len(out["index_stream"]) == out["n_kept"] + out["n_fillers"]


def test_layer_code_size_ratio_for_sparse_layer():
    w, mask = _sparse_layer(keep=0.1)
    out = coding.layer_code_size(w, mask)
    assert out["ratio"] > 1
    assert out["ratio"] == pytest.approx(out["dense_bytes"] / out["total_bytes"])
    # mask=None keeps the nonzero weights
    out2 = coding.layer_code_size(w * mask, None)
    assert out2["n_kept"] == mask.sum()
    assert out2["total_bytes"] == out["total_bytes"]


def test_layer_code_size_accepts_torch():
    torch = pytest.importorskip("torch")
    w, mask = _sparse_layer(shape=(8, 9), keep=0.5)
    a = coding.layer_code_size(torch.from_numpy(w), torch.from_numpy(mask), bits=2)
    b = coding.layer_code_size(w, mask, bits=2)
    assert a["total_bytes"] == b["total_bytes"]
    np.testing.assert_array_equal(a["quantised"], b["quantised"])


def test_bit_precision_hand_values():
    # bits_i = #{t in 1..23 : 2 var < 2**-t}
    assert coding.bit_precision(np.array([1e-2])) == 5  # 2**-5 = .031 > .02 > 2**-6
    assert coding.bit_precision(np.array([1e-4])) == 12  # 2**-12 = 2.4e-4 > 2e-4 > 2**-13
    assert coding.bit_precision(np.array([2.0**-6])) == 4  # 2 var = 2**-5: strict "<"
    assert coding.bit_precision(np.array([1.0])) == 0
    # per-weight counts are averaged, then rounded up: ceil((5 + 12) / 2) = 9, whereas the
    # round-offs above the mean variance (5.05e-3) would give only 6
    assert coding.bit_precision(np.array([1e-2, 1e-4])) == 9


def test_bit_precision_monotone_and_capped():
    variances = 10.0 ** -np.arange(0, 20, 0.5)
    precisions = [coding.bit_precision(np.array([v])) for v in variances]
    assert all(b >= a for a, b in itertools.pairwise(precisions))
    assert precisions[-1] == 23
    assert coding.bit_precision(np.zeros(5)) == 23
    assert max(precisions) <= 23


def test_exponent_and_bits_per_weight():
    # reference: ceil(log2(log2(overflow) + 1) + 1)
    assert coding.exponent_bits(2.0) == 2  # log2(2) = 1 -> log2(2) + 1 = 2
    assert coding.exponent_bits(8.0) == 3  # log2(8) = 3 -> log2(4) + 1 = 3
    assert coding.exponent_bits(1e39) == 9
    assert coding.exponent_bits(0.3) == 1  # clamped
    assert coding.bits_per_weight(np.array([1e-2]), 8.0) == 1 + 3 + 5
    n = coding.louizos_compressed_bytes([10, 3, 0], [np.full(10, 1e-2), np.full(3, 1e-4),
                                                     np.zeros(0)], 8.0)
    assert n == math.ceil((10 * 9 + 3 * 16) / 8)
