r"""Storage cost of a pruned layer: weight sharing, Huffman coding, sparse positions, bit precision.

Two ways of counting how many bytes a pruned network needs are implemented here (pure numpy).

**Deep Compression** (Han, Mao & Dally 2016, "Deep Compression: Compressing Deep Neural Networks
with Pruning, Trained Quantization and Huffman Coding", ICLR 2016):

* *Weight sharing* (their Sec. 3): the ``n`` kept weights ``w_i`` of a layer are clustered into
  ``k = min(2**bits, #distinct values)`` shared values ``c_j`` by 1-D k-means,

  .. math:: \min_{c, a} \sum_i (w_i - c_{a_i})^2,

  solved with Lloyd's algorithm from *linear initialisation*
  ``c_j = min(w) + j (max(w) - min(w)) / (k - 1)`` (Han et al. found linear initialisation the
  best of random / density-based / linear, Sec. 3.2).  Each weight is then stored as the index
  ``a_i`` of its centroid, and the layer stores the codebook ``c`` (``k`` float32 = ``32 k``
  bits).  See :func:`kmeans_share`.
* *Relative-index sparse storage* (their Sec. 2, Fig. 2): the positions of the kept weights in
  the flattened layer are stored as gaps between consecutive positions; a gap larger than the
  bound ``2**index_bits - 1`` is split by padding *filler* entries, which are stored like weights
  whose value is zero.  See :func:`relative_index` for the exact convention.
* *Huffman coding* (their Sec. 4): the stream of centroid indices and the stream of gaps are each
  entropy-coded with an optimal prefix (Huffman) code; a stream with symbol frequencies ``f_s``
  and code lengths ``l_s`` costs exactly ``sum_s f_s l_s`` bits.  See :func:`huffman_bits`.

  :func:`layer_code_size` puts the three together::

      bits(layer) = H(index stream incl. fillers) + H(gap stream) + 32 k

  As in Han et al., the Huffman tables themselves and the layer shape are not counted.

**Bayesian Compression** (Louizos, Ullrich & Welling 2017, "Bayesian Compression for Deep
Learning", NeurIPS 2017): the posterior variance of a weight says how many significant (mantissa)
bits are worth storing; a coarser rounding than the posterior spread changes nothing that
matters.  With the unit round-off of a ``t``-bit significand, ``u_t = 0.5 * 2**(1 - t)``
(Heath 1996, ch. 1), the reference implementation (github.com/KarenUllrich/
Tutorial_BayesianCompressionForDL, ``compression.py``) gives each kept weight
``#{t in 1..23 : 2 sigma_i^2 < u_t}`` significant bits and a layer the ceiling of the mean of
those counts; every weight also pays 1 sign bit and
``ceil(log2(log2(overflow) + 1) + 1)`` exponent bits, ``overflow = max |w|`` over the network.
See :func:`bit_precision`, :func:`exponent_bits`, :func:`bits_per_weight` and
:func:`louizos_compressed_bytes`.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "SIGNIFICAND_BITS",
    "bit_precision",
    "bits_per_weight",
    "decode_layer",
    "exponent_bits",
    "huffman_bits",
    "huffman_code_lengths",
    "huffman_codebook",
    "kmeans_objective",
    "kmeans_share",
    "layer_code_size",
    "louizos_compressed_bytes",
    "relative_index",
    "relative_positions",
    "unit_round_off",
]

#: Significand bits of IEEE float32; the largest precision :func:`bit_precision` returns.
SIGNIFICAND_BITS = 23


def _as_numpy(x: Any) -> np.ndarray:
    """``x`` as a numpy array; torch tensors are detached and moved to the CPU first."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


# ---------------------------------------------------------------------------------------------
# k-means weight sharing (Han et al. 2016, Sec. 3)
# ---------------------------------------------------------------------------------------------


def _assign(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid for every value (ties go to the lower centroid).

    1-D nearest neighbour by binary search on the midpoints between sorted centroids: no
    ``n x k`` distance matrix, no Python loop over values.
    """
    order = np.argsort(centroids, kind="stable")
    sorted_c = centroids[order]
    mids = 0.5 * (sorted_c[1:] + sorted_c[:-1])
    return order[np.searchsorted(mids, values, side="left")]


def kmeans_objective(values: np.ndarray, codebook: np.ndarray, indices: np.ndarray) -> float:
    """Within-cluster sum of squares ``sum_i (values_i - codebook[indices_i])**2`` (float64)."""
    v = _as_numpy(values).astype(np.float64).ravel()
    c = _as_numpy(codebook).astype(np.float64)
    idx = _as_numpy(indices).ravel()
    if v.size == 0:
        return 0.0
    return float(np.sum((v - c[idx]) ** 2))


def kmeans_share(
    values: np.ndarray, bits: int, *, seed: int = 0, iters: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Share weights by 1-D k-means (Lloyd) with linear initialisation (Han et al. 2016, Sec. 3).

    Args:
        values: the weights to share (any shape; flattened).  Torch tensors are accepted.
        bits: index width; ``k = min(2**bits, number of distinct values)`` centroids.
        seed: unused; linear initialisation is deterministic.  Kept so that callers can pass a
            seed uniformly to every compression step.
        iters: maximum number of Lloyd iterations (assignment + mean update); stops early when
            the centroids no longer move.  ``iters=0`` returns the linear initialisation.

    Returns:
        ``(codebook, indices)``: ``codebook`` float32 ``[k]`` sorted ascending, ``indices`` int64
        ``[n]`` with ``indices[i]`` the nearest centroid of ``values[i]`` (assignment to the
        returned codebook).

    Notes:
        * When the number of distinct values is at most ``2**bits`` the codebook is exactly the
          distinct values (the k-means optimum, objective 0), so reconstruction
          ``codebook[indices]`` is exact for float32 input.
        * Empty clusters keep their previous centroid.
        * The objective :func:`kmeans_objective` never increases from one iteration to the next
          (each assignment and each mean update can only lower it).
    """
    if bits < 0:
        raise ValueError(f"bits must be >= 0, got {bits}")
    if iters < 0:
        raise ValueError(f"iters must be >= 0, got {iters}")
    v = _as_numpy(values).astype(np.float64).ravel()
    if v.size == 0:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
    if not np.all(np.isfinite(v)):
        raise ValueError("values must be finite")
    distinct = np.unique(v)
    if distinct.size <= 2**bits:
        codebook = distinct.astype(np.float32)
        return codebook, _assign(v, codebook.astype(np.float64)).astype(np.int64)
    k = 2**bits
    c = np.linspace(v.min(), v.max(), k)
    for _ in range(iters):
        idx = _assign(v, c)
        counts = np.bincount(idx, minlength=k)
        sums = np.bincount(idx, weights=v, minlength=k)
        new = np.where(counts > 0, sums / np.maximum(counts, 1), c)
        if np.array_equal(new, c):
            break
        c = new
    c = np.sort(c)
    codebook = c.astype(np.float32)
    return codebook, _assign(v, codebook.astype(np.float64)).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Huffman coding (Han et al. 2016, Sec. 4)
# ---------------------------------------------------------------------------------------------


def _symbol_counts(symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = _as_numpy(symbols).ravel()
    if s.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if s.dtype.kind not in "iub":
        raise TypeError(f"symbols must be integers, got dtype {s.dtype}")
    return np.unique(s.astype(np.int64), return_counts=True)


def huffman_code_lengths(symbols: np.ndarray) -> dict[int, int]:
    """Optimal prefix-code lengths for the symbol frequencies of ``symbols`` (Huffman 1952).

    Standard heap construction: repeatedly merge the two least frequent subtrees; a symbol's
    length is its depth in the final tree.  Ties are broken deterministically (by insertion
    order, symbols ascending first).  A stream with a single distinct symbol gets length 1 (a
    code must spend at least one bit per symbol); an empty stream gives ``{}``.

    Args:
        symbols: integer array (any shape) of the stream to code.

    Returns:
        ``{symbol: code length in bits}`` for every distinct symbol.
    """
    uniq, counts = _symbol_counts(symbols)
    if uniq.size == 0:
        return {}
    if uniq.size == 1:
        return {int(uniq[0]): 1}
    lengths = dict.fromkeys((int(u) for u in uniq), 0)
    heap: list[tuple[int, int, list[int]]] = [
        (int(c), i, [int(u)]) for i, (u, c) in enumerate(zip(uniq, counts, strict=True))
    ]
    heapq.heapify(heap)
    tie = len(heap)
    while len(heap) > 1:
        f1, _, s1 = heapq.heappop(heap)
        f2, _, s2 = heapq.heappop(heap)
        for s in s1:
            lengths[s] += 1
        for s in s2:
            lengths[s] += 1
        heapq.heappush(heap, (f1 + f2, tie, s1 + s2))
        tie += 1
    return lengths


def huffman_codebook(symbols: np.ndarray) -> dict[int, str]:
    """Canonical Huffman code for ``symbols``: ``{symbol: bit string}``.

    The lengths are those of :func:`huffman_code_lengths`; codewords are assigned canonically
    (symbols sorted by ``(length, symbol)``, each codeword = previous + 1, left-shifted when the
    length grows), so the code is prefix-free and determined by the lengths alone.
    """
    lengths = huffman_code_lengths(symbols)
    code = 0
    prev_len = 0
    book: dict[int, str] = {}
    for sym, length in sorted(lengths.items(), key=lambda kv: (kv[1], kv[0])):
        code <<= length - prev_len
        book[sym] = format(code, f"0{length}b")
        code += 1
        prev_len = length
    return book


def huffman_bits(symbols: np.ndarray) -> int:
    """Exact length in bits of ``symbols`` Huffman-coded: ``sum_s count(s) * length(s)``."""
    uniq, counts = _symbol_counts(symbols)
    if uniq.size == 0:
        return 0
    lengths = huffman_code_lengths(symbols)
    return int(sum(int(c) * lengths[int(u)] for u, c in zip(uniq, counts, strict=True)))


# ---------------------------------------------------------------------------------------------
# Relative-index sparse storage (Han et al. 2016, Sec. 2 and Fig. 2)
# ---------------------------------------------------------------------------------------------


def _relative_index(mask_flat: np.ndarray, index_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Gap stream and a boolean array marking which entries are fillers."""
    if index_bits < 1:
        raise ValueError(f"index_bits must be >= 1, got {index_bits}")
    bound = 2**index_bits - 1
    pos = np.flatnonzero(_as_numpy(mask_flat).ravel())
    if pos.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    gaps = np.diff(pos, prepend=-1).astype(np.int64)  # >= 1
    n_fill = (gaps - 1) // bound  # entries of `bound` before the remainder
    ends = np.cumsum(n_fill + 1) - 1  # index of each kept weight in the output stream
    out = np.full(int(ends[-1]) + 1, bound, dtype=np.int64)
    out[ends] = gaps - n_fill * bound
    is_filler = np.ones(out.size, dtype=bool)
    is_filler[ends] = False
    return out, is_filler


def relative_index(mask_flat: np.ndarray, index_bits: int) -> tuple[np.ndarray, int]:
    """Relative (gap) encoding of the kept positions, with filler entries (Han et al. 2016).

    Convention: with kept positions ``p_0 < p_1 < ...`` of the flattened mask and ``p_{-1} = -1``,
    the gap of entry ``i`` is ``p_i - p_{i-1} >= 1`` (so the first gap is ``p_0 + 1``).  Every gap
    must fit in ``[1, B]`` with ``B = 2**index_bits - 1``; a larger gap ``g`` is split into
    ``(g - 1) // B`` filler entries of gap ``B`` followed by the remainder
    ``g - B * ((g - 1) // B)`` (Han: "when the gap exceeds the bound we pad a filler zero").  E.g.
    ``g = 70, B = 31`` gives gaps ``31, 31, 8`` and 2 fillers.

    A filler sits at a position whose weight is zero; it is stored like a weight (it has an entry
    in the gap stream *and* in the weight/index stream, where :func:`layer_code_size` gives it a
    reserved symbol that decodes to 0), so fillers cost extra stored weights.

    Args:
        mask_flat: boolean (or 0/1) mask; flattened if not 1-D.  Nonzero = kept.
        index_bits: width of one stored gap.

    Returns:
        ``(gaps, n_fillers)``: ``gaps`` int64 ``[n_kept + n_fillers]`` in ``[1, B]``; the
        positions of all stored entries (kept and fillers) are ``cumsum(gaps) - 1``
        (:func:`relative_positions`).
    """
    gaps, is_filler = _relative_index(mask_flat, index_bits)
    return gaps, int(is_filler.sum())


def relative_positions(gaps: np.ndarray) -> np.ndarray:
    """Inverse of :func:`relative_index`: flat positions ``cumsum(gaps) - 1`` of all entries."""
    return np.cumsum(_as_numpy(gaps).astype(np.int64)) - 1


# ---------------------------------------------------------------------------------------------
# One layer, Deep-Compression style
# ---------------------------------------------------------------------------------------------


def layer_code_size(
    weights: np.ndarray,
    mask: np.ndarray | None,
    *,
    bits: int = 5,
    index_bits: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Bytes to store one pruned layer with k-means sharing + relative indices + Huffman.

    Steps (Han et al. 2016): k-means (:func:`kmeans_share`, ``bits``) on the kept weights;
    relative-index gaps with fillers (:func:`relative_index`, ``index_bits``); the cluster-index
    stream (one symbol per stored entry, in position order; fillers get the reserved symbol
    ``k`` = "weight 0", not in the codebook) and the gap stream are Huffman-coded
    (:func:`huffman_bits`); the codebook costs 32 bits per centroid.  Huffman tables and the
    layer shape are not counted.

    Args:
        weights: the layer's weights (any shape; numpy or torch).
        mask: kept entries (nonzero = kept), same shape as ``weights``; ``None`` keeps the
            nonzero weights.
        bits: k-means index width (``k <= 2**bits``).
        index_bits: gap width (bound ``2**index_bits - 1``).
        seed: passed to :func:`kmeans_share`.

    Returns:
        dict with ``n_weights``, ``n_kept``, ``n_fillers``, ``k``, ``index_huffman_bits``,
        ``position_huffman_bits``, ``codebook_bits``, ``total_bits`` (sum of the three),
        ``total_bytes`` (``ceil(total_bits / 8)``), ``dense_bytes`` (``4 * n_weights``, float32),
        ``ratio`` (``dense_bytes / total_bytes``; ``inf`` when nothing is stored),
        ``quantised`` (float32, shape of ``weights``: ``codebook[idx]`` at kept positions, 0
        elsewhere) and the streams themselves, ``codebook``, ``index_stream``, ``gap_stream``
        (decodable with :func:`decode_layer`).
    """
    w = _as_numpy(weights)
    if mask is None:
        m = w != 0
    else:
        m = _as_numpy(mask)
        if m.shape != w.shape:
            raise ValueError(f"mask shape {m.shape} != weights shape {w.shape}")
        m = m.astype(bool)
    flat_w = w.astype(np.float64).ravel()
    flat_m = m.ravel()
    codebook, idx = kmeans_share(flat_w[flat_m], bits, seed=seed)
    k = int(codebook.size)
    gaps, is_filler = _relative_index(flat_m, index_bits)
    index_stream = np.full(gaps.size, k, dtype=np.int64)
    index_stream[~is_filler] = idx
    index_bits_total = huffman_bits(index_stream)
    position_bits = huffman_bits(gaps)
    codebook_bits = 32 * k
    total_bits = index_bits_total + position_bits + codebook_bits
    total_bytes = -(-total_bits // 8)
    dense_bytes = 4 * int(w.size)
    quantised = np.zeros(w.size, dtype=np.float32)
    quantised[flat_m] = codebook[idx]
    return {
        "n_weights": int(w.size),
        "n_kept": int(flat_m.sum()),
        "n_fillers": int(is_filler.sum()),
        "k": k,
        "index_huffman_bits": index_bits_total,
        "position_huffman_bits": position_bits,
        "codebook_bits": codebook_bits,
        "total_bits": total_bits,
        "total_bytes": total_bytes,
        "dense_bytes": dense_bytes,
        "ratio": dense_bytes / total_bytes if total_bytes > 0 else math.inf,
        "quantised": quantised.reshape(w.shape),
        "codebook": codebook,
        "index_stream": index_stream,
        "gap_stream": gaps,
    }


def decode_layer(
    gap_stream: np.ndarray,
    index_stream: np.ndarray,
    codebook: np.ndarray,
    shape: tuple[int, ...],
) -> np.ndarray:
    """Rebuild a layer from the streams of :func:`layer_code_size` (symbol ``k`` = filler = 0)."""
    gaps = _as_numpy(gap_stream)
    sym = _as_numpy(index_stream).astype(np.int64)
    cb = np.append(_as_numpy(codebook).astype(np.float32), np.float32(0.0))
    out = np.zeros(math.prod(shape), dtype=np.float32)
    out[relative_positions(gaps)] = cb[sym]
    return out.reshape(shape)


# ---------------------------------------------------------------------------------------------
# Bit precision from posterior variance (Louizos, Ullrich & Welling 2017)
# ---------------------------------------------------------------------------------------------


def unit_round_off(t: int | np.ndarray) -> float | np.ndarray:
    """Unit round-off of a ``t``-bit significand with round-to-nearest: ``0.5 * 2**(1 - t)``."""
    return 0.5 * 2.0 ** (1.0 - np.asarray(t, dtype=np.float64))


_ROUND_OFFS_ASC = np.sort(unit_round_off(np.arange(1, SIGNIFICAND_BITS + 1)))


def bit_precision(variances: np.ndarray) -> int:
    """Significant (mantissa) bits a layer needs, as in Louizos, Ullrich & Welling (2017).

    Follows the authors' reference implementation exactly (KarenUllrich/
    Tutorial_BayesianCompressionForDL, ``compression.py``: ``unit_round_off``,
    ``float_precision``, ``float_precisions`` called from ``compute_compression_rate`` with
    ``dist_fun = np.mean``).  What it does is **not** "compare the mean variance (or mean
    standard deviation) with the round-offs": it counts, *per weight*, the unit round-offs
    ``u_t = 0.5 * 2**(1 - t)``, ``t = 1..23``, that are strictly larger than **twice the
    posterior variance** (``float_precision(2 * x)`` with ``x`` the variance from
    ``compute_posterior_params``, not a standard deviation), then takes the **mean over the
    layer's weights** of these counts and rounds it **up**::

        bits_i = #{t in 1..23 : 2 * var_i < u_t}        (= #{t : var_i < 2**-(t + 1)})
        bits   = ceil(mean_i bits_i)                     (in 0..23)

    E.g. variance ``1e-2`` -> 5 bits, ``1e-4`` -> 12 bits, 0 -> 23 bits.

    The reference applies this to the masked variances after dropping all-zero rows/columns;
    here the caller passes the variances of the kept weights only.

    Args:
        variances: posterior variances of the layer's kept weights (any shape; >= 0).

    Returns:
        The number of significant bits, capped at 23 (float32).
    """
    v = _as_numpy(variances).astype(np.float64).ravel()
    if v.size == 0:
        raise ValueError("bit_precision needs at least one variance")
    if np.any(np.isnan(v)) or np.any(v < 0):
        raise ValueError("variances must be non-negative and not NaN")
    # number of round-offs strictly larger than 2 v (round-offs sorted ascending)
    per_weight = SIGNIFICAND_BITS - np.searchsorted(_ROUND_OFFS_ASC, 2.0 * v, side="right")
    total = int(per_weight.sum())
    return -(-total // v.size)


def exponent_bits(overflow: float) -> int:
    """Exponent bits to reach ``overflow`` (= max |weight| of the network).

    Reference (``_compute_compression_rate``):
    ``exponent_bit = ceil(log2(log2(overflow) + 1) + 1)``.  The formula is undefined for
    ``overflow <= 0.5`` and gives values below 1 just above it; here ``overflow`` is clamped to
    at least 1, which gives 1 exponent bit for every ``overflow <= 1`` (a deviation from the
    reference, which would return NaN or a non-positive count there).
    """
    o = max(float(overflow), 1.0)
    if not math.isfinite(o):
        raise ValueError(f"overflow must be finite, got {overflow}")
    return int(math.ceil(math.log2(math.log2(o) + 1.0) + 1.0))


def bits_per_weight(variances: np.ndarray, max_abs_weight: float) -> int:
    """Bits per stored weight (Louizos et al. 2017 reference): ``1 + exponent + significand``.

    ``1`` sign bit + :func:`exponent_bits` ``(max_abs_weight)`` + :func:`bit_precision`
    ``(variances)``.
    """
    return 1 + exponent_bits(max_abs_weight) + bit_precision(variances)


def louizos_compressed_bytes(
    n_kept_per_layer: Sequence[int],
    variances_per_layer: Sequence[np.ndarray],
    max_abs_weight: float,
) -> int:
    """Bytes of a network stored at the Bayesian-compression bit precision.

    ``ceil(sum_l n_kept_l * bits_per_weight(variances_l, max_abs_weight) / 8)``, following
    ``_compute_compression_rate`` of the reference implementation (which counts the weights of
    the matrix left after removing all-zero rows and columns; here ``n_kept_l`` is whatever the
    caller counts as stored).  Positions of the kept weights are not counted, as in the
    reference.  Layers with ``n_kept_l == 0`` cost nothing.

    Args:
        n_kept_per_layer: number of stored weights of each layer.
        variances_per_layer: posterior variances of each layer's kept weights.
        max_abs_weight: the overflow level, ``max |posterior mean|`` over the whole network.
    """
    if len(n_kept_per_layer) != len(variances_per_layer):
        raise ValueError("n_kept_per_layer and variances_per_layer differ in length")
    total = 0
    for n, var in zip(n_kept_per_layer, variances_per_layer, strict=True):
        if int(n) == 0:
            continue
        total += int(n) * bits_per_weight(var, max_abs_weight)
    return -(-total // 8)
