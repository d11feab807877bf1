"""One entry point from a posterior to pruning decisions, whatever the criterion.

==============  ==========================================  =============================
criterion       score (larger = removed first)              removed when
==============  ==========================================  =============================
``rho``         ``log rho`` per weight                      ``rho >= threshold``
``magnitude``   ``-|E w|`` per weight                       ``|E w| <= magnitude_threshold``
``log_alpha``   ``log Var[w] - log E[w]^2`` per weight      ``log alpha >= 3`` (sparse VD)
``unit``        ``log alpha_g`` per input unit / channel    ``log alpha_g >= threshold_l``
==============  ==========================================  =============================

Every criterion scores the *network's* weights ``w``. For the group-scale priors (BC-GNJ,
BC-GHS, IBP) the weight sites hold ``w~`` and ``w = theta_g w~``
(:meth:`~bayesstruct.priors.base.Prior.net_params`), so the scores are those of ``w``: under
a variational posterior from its moments (``E[w] = E[theta] m``, ``Var[w] = E[theta^2](m^2 +
s^2) - E[theta]^2 m^2``; :func:`~bayesstruct.pruning.units.effective_moments`; ``rho`` then
``exp(-E[w]^2 / 2 Var[w])``), for a sampler (NUTS, SGLD, pSGLD) from the draws of ``w``
(:func:`~bayesstruct.pruning.units.effective_draws`; ``rho`` by KDE, ``log alpha`` and the
unit rule from the draws' moments, :mod:`~bayesstruct.pruning.units`). For the other priors
the sites are the weights and nothing changes.

``unit_threshold="auto"`` calibrates one threshold per layer on a validation split
(:func:`calibrate_unit_thresholds`): layer by layer from the input, the largest fraction of
units (from a fixed grid) whose removal keeps the validation accuracy of the posterior-mean
network within ``tolerance`` of the unpruned one; layers given explicit thresholds are held at
them and skipped, so the tolerance goes to the rest. Louizos et al. (2017) set these per-layer
thresholds by hand; this makes the choice reproducible and keeps the test split out of it.

``auto`` takes the prior's own criterion (:attr:`Prior.criterion`) when the posterior has
variational factors. For the draws of a sampler it takes ``unit`` for priors with discrete
masks (their inclusion frequencies) and for the group-scale priors whose criterion is
``unit`` (BC-GHS: the unit rule of the effective weights' draws), ``rho`` by KDE
(:func:`~bayesstruct.pruning.density.kde_log_relative_density`) when the prior's criterion is
``rho`` (its sites are the weights), and ``magnitude`` otherwise, as for point estimates (a
MAP fit: ``magnitude`` of the network's weights).
For ``unit`` the weight masks are the outer products of unit masks
(:func:`~bayesstruct.pruning.units.weight_masks_from_units`) and the per-weight scores used
for pruning curves are the unit scores broadcast over each group.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..data import Split
from ..errors import UserInputError
from ..models.bayesnet import BayesianNet
from ..posterior import InferenceData
from .compression import mask_params
from .decisions import check_matches, check_threshold, magnitude, masks_at
from .density import log_relative_density
from .units import (
    log_alpha,
    mean_values,
    sampled,
    unit_keep,
    unit_log_alpha,
    weight_masks_from_units,
)

__all__ = ["CRITERIA", "Decision", "calibrate_unit_thresholds", "make_decision",
           "resolve_criterion"]

CRITERIA = ("auto", "rho", "magnitude", "log_alpha", "unit")
#: how unit thresholds are set: per layer (greedy from the input), one for the network, or a
#: fixed fraction of every unit space (:func:`~bayesstruct.pruning.unit_spaces.fraction_keep`)
UNIT_CALIBRATIONS = ("per_layer", "network", "fraction")
#: fractions of a layer's units tried by :func:`calibrate_unit_thresholds`, boldest first
CALIBRATION_GRID = (0.99, 0.98, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1,
                    0.05)


@dataclass
class Decision:
    """Masks (``site -> keep``), the per-weight scores behind them, and unit scores if any."""

    criterion: str
    threshold: float
    masks: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]
    unit_scores: dict[str, np.ndarray] = field(default_factory=dict)
    unit_masks: dict[str, np.ndarray] = field(default_factory=dict)
    layer_thresholds: dict[str, float] = field(default_factory=dict)


def resolve_criterion(criterion: str, post: InferenceData, model: BayesianNet) -> str:
    """The criterion ``criterion`` names; ``auto`` as in the module docstring: the prior's own
    under ``q``; for a sampler's draws ``unit`` (discrete masks, or a group-scale prior whose
    criterion is ``unit``: its unit rule on the draws of the network weights), ``rho`` (a
    prior whose criterion is ``rho``), else ``magnitude`` (of the network weights)."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion {criterion!r}; allowed: {', '.join(CRITERIA)}")
    if criterion != "auto":
        return criterion
    if "variational_loc" not in post.groups():
        if model.prior.discrete:  # sampled masks: their inclusion frequencies decide
            return "unit"
        if _sampled(post) and model.prior.criterion in ("rho", "unit"):
            return model.prior.criterion
        return "magnitude"
    return model.prior.criterion


_sampled = sampled  # the name this module used before it moved to .units


def calibrate_unit_thresholds(post: InferenceData, model: BayesianNet,
                              units: Mapping[str, np.ndarray], val: Split,
                              tolerance: float = 0.01,
                              grid: tuple[float, ...] = CALIBRATION_GRID,
                              fixed: Mapping[str, float] | None = None) -> dict[str, float]:
    """Per-layer unit thresholds chosen on ``val`` (see the module docstring).

    Greedy from the first layer: for each layer the boldest fraction ``f`` in ``grid`` whose
    removal (the ``f`` units with the largest ``log alpha_g``, on top of the layers already
    decided) keeps ``acc_val >= acc_val(unpruned) - tolerance``; ``+inf`` (keep all) if none.
    Layers in ``fixed`` (``layer -> threshold``, e.g. ``{"fc1": inf}`` to keep every input
    pixel) are not calibrated: their thresholds hold from the start, so the tolerance is spent
    on the other layers only. Returns ``layer name -> threshold`` for every layer.
    """
    from ..training import evaluate

    device = next(model.net.parameters()).device
    val = val.to(device)
    point = mean_values(post, model, device)
    base = evaluate(model, point, val)["acc"]
    chosen: dict[str, float] = {k: float(v) for k, v in (fixed or {}).items()}
    for name, scores in units.items():
        layer = name.rsplit(".", 1)[0]
        if layer in chosen:
            continue
        desc = np.sort(np.asarray(scores, dtype=np.float64))[::-1]

        def within(n_remove: int, layer: str = layer, desc: np.ndarray = desc) -> bool:
            keep = unit_keep(units, float("inf"), {**chosen, layer: float(desc[n_remove - 1])})
            masks = weight_masks_from_units(model, keep)
            return evaluate(model, mask_params(point, masks), val)["acc"] >= base - tolerance

        n = boldest_within(desc.size, grid, within, refine=False)
        chosen[layer] = float(desc[n - 1]) if n else float("inf")
    return chosen


def boldest_within(size: int, grid: Sequence[float], within: Callable[[int], bool],
                   refine: bool = False) -> int:
    """The number of units to remove: the largest ``round(f size)`` over ``f`` in ``grid``
    (``1 <= n < size``) for which ``within(n)``; with ``refine`` then the counts between it and
    the next bolder failing one, tried one by one, boldest first. ``0`` if none qualifies."""
    counts = sorted({int(round(f * size)) for f in grid} & set(range(1, size)), reverse=True)
    bolder, chosen = size, 0  # the smallest count known to fail (or all units)
    for n in counts:
        if within(n):
            chosen = n
            break
        bolder = n
    if refine:
        for n in range(bolder - 1, chosen, -1):
            if within(n):
                return n
    return chosen


def make_decision(post: InferenceData, model: BayesianNet, criterion: str = "auto", *,
                  rho_threshold: float = 0.5, magnitude_threshold: float = 1e-2,
                  log_alpha_threshold: float = 3.0, unit_threshold: float | str = 0.0,
                  layer_thresholds: Mapping[str, float] | None = None,
                  val: Split | None = None, tolerance: float = 0.01,
                  unit_calibration: str = "per_layer", unit_fraction: float = 0.5,
                  input_fraction: float = 0.0) -> Decision:
    """Pruning masks of every weight site by ``criterion`` (see the module table).

    ``unit_threshold="auto"`` needs ``val`` (calibration, :func:`calibrate_unit_thresholds`);
    explicit ``layer_thresholds`` are held fixed and the others calibrated given them (``+inf``
    keeps a layer's units, and the validation tolerance is spent on the other layers).
    ``unit_calibration="network"`` treats each unit of the network as one, removed from all of
    its readers at once, under one threshold for the whole network
    (:mod:`~bayesstruct.pruning.unit_spaces`; calibrated on ``val`` with ``"auto"``).
    ``unit_calibration="fraction"`` removes ``unit_fraction`` of the units of every unit space
    (the highest-scoring ones, each from all of its readers;
    :func:`~bayesstruct.pruning.unit_spaces.fraction_keep`): a target width rather than a
    tolerance, for a network that is retrained after pruning (``pruning.retrain_epochs``);
    the decision's ``threshold`` is then ``unit_fraction``.
    ``input_fraction`` (criterion ``unit`` only) removes that fraction of the groups no unit
    space covers -- the network's input features, e.g. an MLP's pixels -- the highest-scoring
    ones of each layer (:func:`~bayesstruct.pruning.unit_spaces.inputs_keep`), and makes the
    rest of the decision with them held (a per-layer calibration keeps their layers'
    thresholds at ``+inf``; the network-wide one leaves them out of its ranking). Like
    ``unit_fraction`` it is a target, for a network retrained after pruning.

    Refused (:class:`~bayesstruct.errors.UserInputError`, a ``ValueError``, naming the
    argument): a posterior whose weight sites are not the model's
    (:func:`~bayesstruct.pruning.decisions.check_matches`), ``rho_threshold`` outside
    ``[0, 1]``, a negative ``magnitude_threshold``, and any NaN/inf threshold (a layer
    threshold may be ``+inf``).
    """
    criterion = resolve_criterion(criterion, post, model)
    check_matches(post, model)
    weight_names = [s.name for s in model.weight_sites]
    input_fraction = check_threshold("input_fraction", input_fraction, 0.0, 1.0)
    if input_fraction >= 1.0:
        raise UserInputError(f"input_fraction={input_fraction!r}; need 0 <= input_fraction < "
                             "1 (1 would remove every input feature)")
    if input_fraction and criterion != "unit":
        raise UserInputError(f"input_fraction={input_fraction!r} removes input units, and "
                             f"criterion {criterion!r} scores single weights; allowed with "
                             "criterion 'unit' (or input_fraction=0)")
    if criterion == "rho":
        rho_threshold = check_threshold("rho_threshold", rho_threshold, 0.0, 1.0)
        scores = log_relative_density(post, model=model)
        thr = float(np.log(rho_threshold)) if rho_threshold > 0 else -np.inf
        return Decision(criterion, rho_threshold, masks_at(scores, thr), scores)
    if criterion == "magnitude":
        magnitude_threshold = check_threshold("magnitude_threshold", magnitude_threshold, 0.0)
        scores = magnitude(post, model=model)
        return Decision(criterion, magnitude_threshold,
                        masks_at(scores, -magnitude_threshold), scores)
    if criterion == "log_alpha":
        log_alpha_threshold = check_threshold("log_alpha_threshold", log_alpha_threshold)
        scores = log_alpha(post, weight_names, model)
        return Decision(criterion, log_alpha_threshold,
                        masks_at(scores, log_alpha_threshold), scores)
    if unit_threshold != "auto":
        unit_threshold = check_threshold("unit_threshold", unit_threshold)
    for layer, t in (layer_thresholds or {}).items():
        if not (isinstance(t, (int, float, np.floating, np.integer)) and not np.isnan(t)
                and t != -np.inf):
            raise UserInputError(f"layer_thresholds[{layer!r}]={t!r} is not a number "
                                 "(finite, or +inf to keep every unit of the layer)")
    units = unit_log_alpha(post, model)
    if unit_calibration not in UNIT_CALIBRATIONS:
        raise UserInputError(f"unit_calibration={unit_calibration!r}; allowed: "
                             f"{', '.join(UNIT_CALIBRATIONS)}")
    if input_fraction:
        from .unit_spaces import input_sites, inputs_keep, network_units

        net_units = network_units(model)
        decision = _unit_decision_of(post, model, criterion, units, unit_threshold,
                                     layer_thresholds, val, tolerance, unit_calibration,
                                     unit_fraction, net_units)
        inputs = inputs_keep(net_units, units, input_fraction)
        if all(v.all() for v in inputs.values()):
            n = sum(len(g) for g in input_sites(net_units).values())
            warnings.warn(f"input_fraction={input_fraction:g} removes none of the network's "
                          f"{n} input features (floor({input_fraction:g} n) is 0 for each "
                          "layer reading them)", UserWarning, stacklevel=2)
        keep = {k: v & inputs[k] for k, v in decision.unit_masks.items()}
        return _unit_decision(criterion, decision.threshold, model, units, keep,
                              decision.layer_thresholds)
    return _unit_decision_of(post, model, criterion, units, unit_threshold, layer_thresholds,
                             val, tolerance, unit_calibration, unit_fraction)


def _unit_decision_of(post, model, criterion, units, unit_threshold, layer_thresholds, val,
                      tolerance, unit_calibration, unit_fraction, held_units=None) -> Decision:
    """The unit decision of :func:`make_decision`; with ``held_units`` (the network's units)
    every group no unit space covers is held: kept, and left out of any calibration."""
    if held_units is not None and unit_calibration == "per_layer":  # hold the input layers
        from .unit_spaces import input_sites

        held = input_sites(held_units)
        full = {site.rsplit(".", 1)[0] for site, g in held.items()
                if len(g) == np.asarray(units[site]).size}
        mixed = sorted(site for site in held if site.rsplit(".", 1)[0] not in full)
        if mixed:
            raise UserInputError(f"input_fraction with unit_calibration='per_layer': "
                                 f"layers {mixed} read input features and hidden units "
                                 "together; use unit_calibration='network' or 'fraction'")
        clash = sorted(full & set(layer_thresholds or {}))
        if clash:
            raise UserInputError(f"layer_thresholds{clash} and input_fraction both decide "
                                 "the input features of those layers: pass one of them")
        layer_thresholds = {**(layer_thresholds or {}), **dict.fromkeys(full, np.inf)}
    if unit_calibration == "fraction":
        if layer_thresholds:
            raise UserInputError("layer_thresholds are per layer; unit_calibration='fraction' "
                                 "removes one fraction of every unit space: pass one of them")
        from .unit_spaces import fraction_keep, network_units

        unit_fraction = check_threshold("unit_fraction", unit_fraction, 0.0, 1.0)
        if unit_fraction >= 1.0:
            raise UserInputError(f"unit_fraction={unit_fraction!r}; need 0 <= unit_fraction < 1 "
                                 "(1 would remove every hidden unit)")
        keep = fraction_keep(held_units or network_units(model), units, unit_fraction)
        return _unit_decision(criterion, unit_fraction, model, units, keep, {})
    if unit_calibration == "network":
        if layer_thresholds:
            raise UserInputError("layer_thresholds are per layer; unit_calibration='network' "
                                 "has one threshold for the whole network: pass one of them")
        from .unit_spaces import calibrate_network_units, network_units, unit_space_keep

        net_units = network_units(model) if held_units is None else [
            u for u in held_units if u.space]
        if unit_threshold == "auto":
            if val is None:
                raise ValueError("unit_threshold='auto' calibrates on a validation split: "
                                 "pass val=")
            unit_threshold, keep = calibrate_network_units(post, model, units, val, tolerance,
                                                           units=net_units)
        else:
            keep = unit_space_keep(net_units, units, float(unit_threshold))
        return _unit_decision(criterion, float(unit_threshold), model, units, keep, {})
    if unit_threshold == "auto":
        if val is None:
            raise ValueError("unit_threshold='auto' calibrates on a validation split: pass val=")
        layer_thresholds = calibrate_unit_thresholds(post, model, units, val, tolerance,
                                                     fixed=layer_thresholds)
        unit_threshold = float("inf")
    keep = unit_keep(units, float(unit_threshold), layer_thresholds)
    return _unit_decision(criterion, unit_threshold, model, units, keep,
                          dict(layer_thresholds or {}))


def _unit_decision(criterion, threshold, model, units, keep, layer_thresholds) -> Decision:
    masks = weight_masks_from_units(model, keep)
    scores = {}
    for s in model.weight_sites:
        if s.name in units:
            shape = [1] * len(s.shape)
            shape[s.group_dim] = s.shape[s.group_dim]
            scores[s.name] = np.broadcast_to(units[s.name].reshape(shape), s.shape).copy()
    return Decision(criterion, threshold, masks, scores, units, keep, layer_thresholds)
