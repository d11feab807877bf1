"""The network's units, each with every weight group that reads it, for unit decisions that
remove a unit from all of its readers at once.

A unit-level prior scores each *reader's* input group: BC-GNJ has one ``z_g`` per column of
every weight site. A hidden unit, though, is read by several groups -- an LSTM's unit ``j`` by
column ``j`` of its recurrence and by column ``j`` of the classifier; a ResNet channel by every
convolution on every branch that reads it; a channel flattened into a Linear by ``k``
consecutive columns -- and the network only gets smaller when *all* of them go
(:mod:`~bayesstruct.pruning.graph`). Masking some of them costs accuracy and removes nothing.

:func:`network_units` follows the unit spaces of :mod:`~bayesstruct.pruning.graph` through the
traced network and lists, for each unit of each free space (one not pinned by a reader that
cannot drop it), its members ``(site, group)``. Which weight entries feed unit ``j`` is asked of
the layer families themselves (:meth:`LayerFamily.input_blocks`, :meth:`LayerFamily.
self_blocks`), on a copy of the network whose parameters hold their own flat indices: no
family-specific mapping is written here. Every grouped weight group that no free space covers
(the network's input features, a pinned space) is a unit of its own.

:func:`calibrate_network_units` then ranks the units by the *smallest* score among their
members (a unit goes only when every reader agrees) and removes the boldest fraction whose
validation accuracy stays within the tolerance of the unpruned network's: one threshold for
the whole network on the dimensionless ``log alpha_g``, instead of a greedy walk layer by layer
in which the first layer spends the whole tolerance.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import fx

from ..data import Split
from ..layers import family_of
from ..models.bayesnet import BayesianNet
from ..posterior import InferenceData
from .compression import mask_params
from .units import mean_values, weight_masks_from_units

__all__ = ["NetworkUnit", "calibrate_network_units", "fraction_keep", "input_sites",
           "inputs_keep", "network_units", "unit_space_keep"]


@dataclass(frozen=True)
class NetworkUnit:
    """One unit of the network: the ``(site, group)`` pairs that read it, and what it is
    (``"space <producers>[j]"`` or ``"<site>[g]"`` for a unit of its own)."""

    members: tuple[tuple[str, int], ...]
    label: str
    #: the unit space it belongs to (its producers), ``""`` for a unit of its own (a network
    #: input feature, a pinned space's group)
    space: str = ""


def _indexed_copy(net: torch.nn.Module) -> tuple[torch.nn.Module, list[tuple[int, str]]]:
    """A float64 copy of ``net`` whose parameter ``p`` holds ``offset_p + arange(numel)``."""
    twin = copy.deepcopy(net).double().eval()
    offsets, start = [], 0
    with torch.no_grad():
        for name, p in twin.named_parameters():
            p.copy_(torch.arange(start, start + p.numel(), dtype=torch.float64).view(p.shape))
            offsets.append((start, name))
            start += p.numel()
    return twin, offsets


def network_units(model: BayesianNet) -> list[NetworkUnit]:
    """Every unit of ``model``'s network with its reading groups (module docstring). A network
    ``torch.fx`` cannot trace gets one unit per group (each reader's groups on their own)."""
    from .graph import analyse_units  # the unit spaces the shrinking code follows

    grouped = {s.name: s for s in model.weight_sites if s.group_dim is not None}
    units: list[NetworkUnit] = []
    covered: set[tuple[str, int]] = set()
    twin, offsets = _indexed_copy(model.net)
    starts = np.array([o for o, _ in offsets])
    shapes = dict((n, p.shape) for n, p in twin.named_parameters())
    try:
        gm = fx.symbolic_trace(twin)
    except Exception:  # untraceable: every group on its own (torch.fx raises many kinds)
        gm = None
    if gm is not None:
        spaces = analyse_units(gm)
        for root in spaces.roots():
            space = spaces.data[root]
            if space.pinned or not (space.readers or space.own):
                continue
            blocks = []
            try:
                for name in space.readers:
                    layer = gm.get_submodule(name)
                    blocks.append(family_of(layer).input_blocks(layer, space.size).detach())
                for name in space.own:
                    layer = gm.get_submodule(name)
                    blocks.append(family_of(layer).self_blocks(layer).detach())
            except (RuntimeError, NotImplementedError):
                continue  # its inputs do not split into the space's units: leave it alone
            space_units = []
            for j in range(space.size):
                flat = np.concatenate([b[:, j].reshape(-1).numpy(force=True)
                                       for b in blocks]).astype(np.int64)
                which = np.searchsorted(starts, flat, side="right") - 1
                members = set()
                for i in np.unique(which):
                    pname = offsets[i][1]
                    site = grouped.get(pname)
                    if site is None:  # a reader with no unit groups: cannot score it
                        members = None
                        break
                    idx = np.unravel_index(flat[which == i] - starts[i], tuple(shapes[pname]))
                    members.update((pname, int(g)) for g in np.unique(idx[site.group_dim]))
                if members is None:
                    space_units = []
                    break
                name = f"{'+'.join(space.producers) or 'space'}#{root}"
                label = f"{'+'.join(space.producers) or 'space'}[{j}]"
                space_units.append(NetworkUnit(tuple(sorted(members)), label, name))
            for u in space_units:
                covered.update(u.members)
            units.extend(space_units)
    for name, s in grouped.items():
        for g in range(s.shape[s.group_dim]):
            if (name, g) not in covered:
                units.append(NetworkUnit(((name, g),), f"{name}[{g}]"))
    return units


def _unit_score(unit: NetworkUnit, scores: Mapping[str, np.ndarray]) -> float:
    return min(float(scores[site][g]) for site, g in unit.members)


def unit_space_keep(units: Sequence[NetworkUnit], scores: Mapping[str, np.ndarray],
                    threshold: float) -> dict[str, np.ndarray]:
    """Per-site keep masks of the groups: a unit is removed (every member group) when the
    smallest score among its members is ``>= threshold``."""
    keep = {k: np.ones(np.asarray(v).shape, dtype=bool) for k, v in scores.items()}
    for u in units:
        if _unit_score(u, scores) >= threshold:
            for site, g in u.members:
                keep[site][g] = False
    return keep


def fraction_keep(units: Sequence[NetworkUnit], scores: Mapping[str, np.ndarray],
                  fraction: float) -> dict[str, np.ndarray]:
    """Per-site keep masks that remove ``floor(fraction * n)`` of the ``n`` units of every
    unit space, those with the largest scores (their members' smallest ``log alpha_g``; ties
    by position), each from all of its readers at once. Units of their own (the network's input
    features, the groups of a pinned space) are kept: the rule thins hidden layers uniformly,
    as a width multiplier does, with the posterior choosing which units of each layer go."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction={fraction!r}; need 0 <= fraction < 1")
    keep = {k: np.ones(np.asarray(v).shape, dtype=bool) for k, v in scores.items()}
    spaces: dict[str, list[NetworkUnit]] = {}
    for u in units:
        if u.space:
            spaces.setdefault(u.space, []).append(u)
    for members in spaces.values():
        ranked = sorted(members, key=lambda u: -_unit_score(u, scores))  # stable: by position
        for u in ranked[: int(np.floor(fraction * len(members)))]:
            for site, g in u.members:
                keep[site][g] = False
    return keep


def input_sites(units: Sequence[NetworkUnit]) -> dict[str, list[int]]:
    """``site -> groups`` for the groups that no unit space covers (units of their own: the
    network's input features, e.g. the pixels read by an MLP's first layer, and the groups of
    a pinned space)."""
    out: dict[str, list[int]] = {}
    for u in units:
        if not u.space:
            for site, g in u.members:
                out.setdefault(site, []).append(g)
    return out


def inputs_keep(units: Sequence[NetworkUnit], scores: Mapping[str, np.ndarray],
                fraction: float) -> dict[str, np.ndarray]:
    """Per-site keep masks that remove ``floor(fraction * n)`` of the ``n`` groups of each
    site that no unit space covers (:func:`input_sites`), those with the largest scores (ties
    by position); every other group is kept. With an MLP's first layer this is a target number
    of input pixels, chosen by the posterior's ``log alpha_g``."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction={fraction!r}; need 0 <= fraction < 1")
    keep = {k: np.ones(np.asarray(v).shape, dtype=bool) for k, v in scores.items()}
    for site, groups in input_sites(units).items():
        g = np.asarray(sorted(groups))
        s = np.asarray(scores[site], dtype=np.float64)[g]
        order = np.argsort(-s, kind="stable")  # largest score first; ties by position
        keep[site][g[order[: int(np.floor(fraction * g.size))]]] = False
    return keep


def calibrate_network_units(post: InferenceData, model: BayesianNet,
                            scores: Mapping[str, np.ndarray], val: Split,
                            tolerance: float = 0.01,
                            grid: Sequence[float] | None = None,
                            units: Sequence[NetworkUnit] | None = None,
                            refine: bool = True
                            ) -> tuple[float, dict[str, np.ndarray]]:
    """One threshold for the whole network (module docstring): the boldest fraction ``f`` in
    ``grid`` of the units, ranked by their members' smallest score, whose removal keeps
    ``acc_val >= acc_val(unpruned) - tolerance``. With ``refine`` the unit counts between that
    fraction and the next bolder one of the grid are then tried one by one, boldest first (a
    step of the grid is up to 10 % of the units: 16 of the 156 units of the 128-unit LSTM
    entry). Returns the threshold (the score of the last unit removed; ``+inf`` if nothing
    qualifies) and the per-site keep masks."""
    from ..training import evaluate
    from .criteria import CALIBRATION_GRID, boldest_within

    grid = CALIBRATION_GRID if grid is None else grid
    units = network_units(model) if units is None else units
    device = next(model.net.parameters()).device
    val = val.to(device)
    point = mean_values(post, model, device)
    base = evaluate(model, point, val)["acc"]
    desc = np.sort(np.array([_unit_score(u, scores) for u in units]))[::-1]

    def within(n_remove: int) -> bool:
        keep = unit_space_keep(units, scores, float(desc[n_remove - 1]))
        masks = weight_masks_from_units(model, keep)
        return evaluate(model, mask_params(point, masks), val)["acc"] >= base - tolerance

    chosen = boldest_within(desc.size, grid, within, refine)
    if chosen == 0:
        return float("inf"), unit_space_keep(units, scores, float("inf"))
    thr = float(desc[chosen - 1])
    return thr, unit_space_keep(units, scores, thr)
