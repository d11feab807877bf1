"""The compression report of a pruned posterior (Louizos et al. 2017; Han et al. 2016).

Per weight layer: weights and units kept, and three sizes of what is left,

* ``|W| / |W != 0|`` -- the sparsity ratio;
* **bit precision** (Louizos, Ullrich & Welling 2017): the significant bits a layer's kept
  weights need given their posterior variances (:func:`~.coding.bit_precision`), plus a sign
  bit and the exponent bits of the largest weight (:func:`~.coding.bits_per_weight`);
* **Deep Compression** (Han, Mao & Dally 2016): k-means weight sharing with ``2^bits``
  centroids (8 bits for conv layers, 5 for fully connected ones, as in the paper), Huffman
  coding of the centroid indices and of the relative positions (:func:`~.coding.layer_code_size`).

The compression ratio is against the float32 dense network. Both sizes count biases: the
dense size has every parameter at 32 bits, the compressed sizes add the biases of the units
that survive at 32 bits (they are few).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..models.bayesnet import BayesianNet
from .coding import bit_precision, bits_per_weight, layer_code_size

__all__ = ["compression_summary", "summary_rows"]


def _units(mask: np.ndarray) -> tuple[int, int, int, int]:
    other_in = tuple(d for d in range(mask.ndim) if d != 1)
    other_out = tuple(d for d in range(mask.ndim) if d != 0)
    return (int(mask.any(axis=other_in).sum()), mask.shape[1],
            int(mask.any(axis=other_out).sum()), mask.shape[0])


def compression_summary(model: BayesianNet, masks: Mapping[str, np.ndarray],
                        moments: Mapping[str, tuple[np.ndarray, np.ndarray]], *,
                        bits_conv: int = 8, bits_fc: int = 5, seed: int = 0) -> dict[str, Any]:
    """The report (see the module docstring) as a JSON-ready dict.

    Args:
        masks: keep-mask per weight site.
        moments: ``site -> (E[w], Var[w])`` of the network weights under the posterior
            (:func:`~bayesstruct.pruning.units.effective_moments`; zero variances for point
            estimates give 23 significant bits, i.e. float32).
    """
    sites = model.weight_sites
    overflow = max(float(np.max(np.abs(moments[s.name][0] * masks[s.name]), initial=0.0))
                   for s in sites)
    layers, dense_bits, han_bits, louizos_bits = [], 0, 0, 0
    biases = {s.layer: s for s in model.sites if s.role == "bias"}
    for s in sites:
        mask = np.asarray(masks[s.name], dtype=bool)
        mean, var = moments[s.name]
        conv = len(s.shape) > 2
        bits = bits_conv if conv else bits_fc
        code = layer_code_size(np.asarray(mean, dtype=np.float32) * mask, mask, bits=bits,
                               index_bits=bits, seed=seed)
        kept = int(mask.sum())
        if kept:
            sig = bit_precision(np.asarray(var)[mask])
            per_weight = bits_per_weight(np.asarray(var)[mask], overflow)
        else:
            sig, per_weight = 0, 0
        in_kept, n_in, out_kept, n_out = _units(mask)
        bias = biases.get(s.layer)
        bias_total = bias.numel if bias is not None else 0
        bias_kept = out_kept if bias is not None else 0
        dense_bits += 32 * (mask.size + bias_total)
        han_bits += 8 * code["total_bytes"] + 32 * bias_kept
        louizos_bits += kept * per_weight + 32 * bias_kept
        layers.append({
            "layer": s.layer, "shape": list(s.shape), "weights": int(mask.size),
            "weights_kept": kept, "in_units_kept": in_kept, "in_units": n_in,
            "out_units_kept": out_kept, "out_units": n_out,
            "significant_bits": int(sig), "bits_per_weight": int(per_weight),
            "kmeans_bits": bits, "huffman_bytes": int(code["total_bytes"]),
        })
    total = sum(layer["weights"] for layer in layers)
    kept = sum(layer["weights_kept"] for layer in layers)
    return {
        "layers": layers,
        "weights": total,
        "weights_kept": kept,
        "weights_kept_fraction": kept / max(total, 1),
        "sparsity_ratio": total / max(kept, 1),
        "dense_bytes": dense_bits // 8,
        "deep_compression_bytes": -(-han_bits // 8),
        "deep_compression_ratio": dense_bits / max(han_bits, 1),
        "bit_precision_bytes": -(-louizos_bits // 8),
        "bit_precision_ratio": dense_bits / max(louizos_bits, 1),
    }


def summary_rows(summary: Mapping[str, Any]) -> tuple[list[list[object]], list[str]]:
    """Rows and header of the printed per-layer table."""
    header = ["layer", "weights kept", "in units kept", "out units kept", "bits (Louizos)",
              "Huffman bytes"]
    rows: list[list[object]] = []
    for layer in summary["layers"]:
        rows.append([layer["layer"], f"{layer['weights_kept']}/{layer['weights']}",
                     f"{layer['in_units_kept']}/{layer['in_units']}",
                     f"{layer['out_units_kept']}/{layer['out_units']}",
                     layer["bits_per_weight"], layer["huffman_bytes"]])
    rows.append(["total", f"{summary['weights_kept']}/{summary['weights']}", "", "",
                 f"{summary['bit_precision_ratio']:.1f}x",
                 f"{summary['deep_compression_bytes']} ({summary['deep_compression_ratio']:.1f}x)"])
    return rows, header
