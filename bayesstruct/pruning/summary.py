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

Given the network (``net``, e.g. the posterior-mean network) and the data splits, the report
also carries the test accuracy of the network each size stores
(:mod:`~bayesstruct.pruning.quantize`): ``acc_quantised``, Deep Compression's network after
fine-tuning its shared centroids on the training split (Han et al.'s trained quantisation; the
Huffman bytes are then counted from that network's weights), and ``acc_bit_precision``, the
network with every layer's kept weights rounded to the significand bits reported; beside them
``acc_pruned``, the same masked network unquantised.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import Split
from ..models.bayesnet import BayesianNet
from .coding import bit_precision, bits_per_weight, layer_code_size
from .quantize import Quantised, deep_compression, evaluate_plain, round_to_bits

__all__ = ["CompressionNets", "compression_networks", "compression_summary", "summary_rows"]


def _units(mask: np.ndarray) -> tuple[int, int, int, int]:
    other_in = tuple(d for d in range(mask.ndim) if d != 1)
    other_out = tuple(d for d in range(mask.ndim) if d != 0)
    return (int(mask.any(axis=other_in).sum()), mask.shape[1],
            int(mask.any(axis=other_out).sum()), mask.shape[0])


@dataclass
class CompressionNets:
    """The networks whose sizes the summary reports: ``deep_compression`` (k-means shared
    weights, centroids fine-tuned; :func:`~.quantize.deep_compression`) and ``bit_precision``
    (kept weights rounded to each layer's significand bits; :func:`~.quantize.round_to_bits`)."""

    deep_compression: Quantised
    bit_precision: nn.Module


def compression_networks(net: nn.Module, masks: Mapping[str, np.ndarray],
                         kmeans_bits: Mapping[str, int], significand_bits: Mapping[str, int],
                         train: Split | None = None, *, finetune_epochs: int = 2,
                         finetune_lr: float = 1e-3, batch_size: int = 128, seed: int = 0,
                         likelihood: Any = None) -> CompressionNets:
    """Both compressed networks of ``net`` under ``masks`` (parameter name -> keep-mask).

    ``likelihood``: the model's; fine-tuning minimises its NLL per example (cross-entropy on
    logits when ``None``).
    """
    loss = (None if likelihood is None
            else (lambda out, y: likelihood.nll(out, y) / max(int(y.shape[0]), 1)))
    kwargs = {"loss": loss} if loss is not None else {}
    quantised = deep_compression(net, masks, kmeans_bits, train, epochs=finetune_epochs,
                                 lr=finetune_lr, batch_size=batch_size, seed=seed, **kwargs)
    return CompressionNets(quantised, round_to_bits(net, masks, significand_bits))


def compression_summary(model: BayesianNet, masks: Mapping[str, np.ndarray],
                        moments: Mapping[str, tuple[np.ndarray, np.ndarray]], *,
                        bits_conv: int = 8, bits_fc: int = 5, seed: int = 0,
                        net: nn.Module | None = None, train: Split | None = None,
                        test: Split | None = None, finetune_epochs: int = 2,
                        finetune_lr: float = 1e-3, batch_size: int = 128,
                        return_networks: bool = False
                        ) -> dict[str, Any] | tuple[dict[str, Any], CompressionNets | None]:
    """The report (see the module docstring) as a JSON-ready dict.

    Args:
        masks: keep-mask per weight site.
        moments: ``site -> (E[w], Var[w])`` of the network weights under the posterior
            (:func:`~bayesstruct.pruning.units.effective_moments`; zero variances for point
            estimates give 23 significant bits, i.e. float32). The variances give the bit
            precision; the means are coded when ``net`` is not given.
        net: the plain network whose weights are stored (parameter names = weight sites, e.g.
            :func:`~bayesstruct.pruning.units.mean_network`). Given, the compressed networks are
            built (:func:`compression_networks`), the Deep-Compression bytes are those of its
            fine-tuned quantised weights and, with ``test``, the accuracies ``acc_pruned``,
            ``acc_quantised`` and ``acc_bit_precision`` are measured (else they are ``None``).
        train: the split the shared centroids are fine-tuned on, for ``finetune_epochs`` epochs
            at learning rate ``finetune_lr`` (``None`` or 0 epochs: k-means centroids as they
            are).
        return_networks: return ``(summary, CompressionNets or None)`` instead of the summary.
    """
    sites = model.weight_sites
    keep = {s.name: np.asarray(masks[s.name], dtype=bool) for s in sites}
    kmeans_bits = {s.name: bits_conv if len(s.shape) > 2 else bits_fc for s in sites}
    sig = {s.name: bit_precision(np.asarray(moments[s.name][1])[keep[s.name]])
           if keep[s.name].any() else 0 for s in sites}
    nets = None
    if net is not None:
        nets = compression_networks(net, keep, kmeans_bits, sig, train,
                                    finetune_epochs=finetune_epochs, finetune_lr=finetune_lr,
                                    batch_size=batch_size, seed=seed,
                                    likelihood=model.likelihood)
        params = dict(net.named_parameters())
        q_params = dict(nets.deep_compression.net.named_parameters())
        stored = {s.name: params[s.name].detach().cpu().numpy() * keep[s.name] for s in sites}
        coded = {s.name: q_params[s.name].detach().cpu().numpy() for s in sites}
    else:
        stored = {s.name: np.asarray(moments[s.name][0], dtype=np.float32) * keep[s.name]
                  for s in sites}
        coded = stored
    overflow = max(float(np.max(np.abs(stored[s.name]), initial=0.0)) for s in sites)
    layers, dense_bits, han_bits, louizos_bits = [], 0, 0, 0
    biases = {s.layer: s for s in model.sites if s.role == "bias"}
    for s in sites:
        mask = keep[s.name]
        var = np.asarray(moments[s.name][1])
        bits = kmeans_bits[s.name]
        code = layer_code_size(coded[s.name], mask, bits=bits, index_bits=bits, seed=seed)
        kept = int(mask.sum())
        per_weight = bits_per_weight(var[mask], overflow) if kept else 0
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
            "significant_bits": int(sig[s.name]), "bits_per_weight": int(per_weight),
            "kmeans_bits": bits, "huffman_bytes": int(code["total_bytes"]),
        })
    total = sum(layer["weights"] for layer in layers)
    kept = sum(layer["weights_kept"] for layer in layers)
    evaluated: dict[str, Any] = dict.fromkeys(
        ("acc_pruned", "nll_pruned", "acc_quantised", "nll_quantised", "acc_bit_precision",
         "nll_bit_precision"))
    if nets is not None and test is not None:
        with torch.no_grad():
            masked = copy.deepcopy(net)
            m_params = dict(masked.named_parameters())
            for s in sites:
                m_params[s.name].mul_(torch.as_tensor(keep[s.name],
                                                      device=m_params[s.name].device))
        for key, plain in (("pruned", masked), ("quantised", nets.deep_compression.net),
                           ("bit_precision", nets.bit_precision)):
            res = evaluate_plain(plain, test, model.likelihood)
            evaluated[f"acc_{key}"], evaluated[f"nll_{key}"] = res["acc"], res["nll"]
    summary = {
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
        **evaluated,
        "finetune_epochs": (finetune_epochs if nets is not None and train is not None else 0),
        "finetune_loss": ([h["loss"] for h in nets.deep_compression.history]
                          if nets is not None else []),
    }
    return (summary, nets) if return_networks else summary


def _pct(acc: float | None) -> str:
    return "" if acc is None else f", acc {100 * acc:.2f}%"


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
                 f"{summary['bit_precision_ratio']:.1f}x"
                 + _pct(summary.get("acc_bit_precision")),
                 f"{summary['deep_compression_bytes']} ({summary['deep_compression_ratio']:.1f}x)"
                 + _pct(summary.get("acc_quantised"))])
    return rows, header
