"""The steps every experiment kind shares: device, data, model, run-directory checks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .. import data as data_mod
from .. import nets, priors
from ..errors import CheckpointError, ConfigError
from ..files import load_checkpoint, save_checkpoint
from ..models import BayesianNet, likelihoods
from ..rundir import check_out, resume_changes

if TYPE_CHECKING:
    from ..config import RunConfig

__all__ = ["PRETRAINED", "build_model", "build_net", "load_data", "load_weights",
           "new_experiment", "pretrain", "record_data_source", "refuse_resume_changes",
           "resolve_device"]

#: the run directory's file holding the network after ``net.pretrain_epochs`` of plain training
PRETRAINED = "pretrained.pt"


def resolve_device(cfg: RunConfig) -> torch.device:
    """The config's device, refused if it is CUDA and this machine has none."""
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but CUDA is not available here; use cpu")
    return device


def load_data(cfg: RunConfig, device: torch.device | None = None) -> data_mod.Dataset:
    """The data set and splits a config names, on ``device`` (default: the config's)."""
    device = resolve_device(cfg) if device is None else device
    d = cfg.data
    return data_mod.load(d.name, seed=cfg.seed, val_fraction=d.val_fraction,
                         test_fraction=d.test_fraction, train_size=d.train_size,
                         data_dir=d.data_dir, standardize=d.standardize, classes=d.classes,
                         pairs_file=d.pairs_file, word_vectors=d.word_vectors,
                         max_len=d.max_len, device=device)


def build_net(cfg: RunConfig, ds: data_mod.Dataset, outputs: int | None = None,
              pairs: bool = True) -> torch.nn.Module:
    """The plain network of ``cfg.net`` for ``ds`` (``outputs`` default: one per class)."""
    return nets.build(cfg.net.kind, ds.input_shape,
                      ds.n_classes if outputs is None else outputs, cfg.net.hidden,
                      cfg.net.activation, **({"pairs": ds.pairs} if pairs else {}))


def build_model(cfg: RunConfig, ds: data_mod.Dataset) -> BayesianNet:
    """The BayesianNet a config describes (network initialised from ``cfg.seed``)."""
    torch.manual_seed(cfg.seed)
    likelihood = likelihoods.get(cfg.likelihood)
    try:
        outputs = likelihood.outputs(ds.n_classes)
    except ValueError as e:
        raise ConfigError(f"likelihood: {e}") from None
    try:
        net = build_net(cfg, ds, outputs)
    except ValueError as e:
        raise ConfigError(f"net: {e}") from None
    if cfg.net.init_weights is not None:
        load_weights(net, cfg.net.init_weights)
    prior = priors.from_config(cfg.prior)
    try:
        return BayesianNet(net, prior, likelihood, num_data=len(ds.train))
    except NotImplementedError as e:  # a prior that needs another architecture
        raise ConfigError(f"prior: {e} (net.kind={cfg.net.kind!r})") from None


def load_weights(net: torch.nn.Module, path: str | Path) -> None:
    """Load a state dict of ``net`` from ``path`` (``weights_only=True``: never code), or
    refuse naming the field, the file and what does not fit."""
    try:
        state = load_checkpoint(path)
    except CheckpointError as e:
        raise ConfigError(f"net.init_weights: {e}") from None
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        first = " ".join(x.strip() for x in str(e).splitlines()[:3])
        raise ConfigError(f"net.init_weights: {path} is not a state dict of this network "
                          f"({first})") from None


def pretrain(cfg: RunConfig, ds: data_mod.Dataset, model: BayesianNet,
             device: torch.device | str = "cpu", path: str | Path | None = None,
             progress: bool = False) -> bool:
    """Train ``model.net`` by maximum likelihood for ``cfg.net.pretrain_epochs`` epochs before
    the Bayesian fit, so that the guide's means start at a trained network: the protocol of
    the pruning papers, which sparsify a pretrained network (Molchanov et al. 2017, Neklyudov
    et al. 2017, Louizos et al. 2017).

    The plain fit is :func:`bayesstruct.collapse.plain_fit` started from ``model.net`` (its
    seeded initialisation, or ``net.init_weights``): the recipe's batch size and learning
    rate, a constant learning rate, no prior. Its state dict (weights and normalisation
    statistics) is written to ``path`` atomically; a ``path`` that already holds one (a
    resumed run) is read back (``weights_only=True``) instead of training again. Returns
    whether it trained."""
    from ..collapse import plain_fit

    epochs = cfg.net.pretrain_epochs
    if not epochs:
        return False
    path = Path(path) if path is not None else None
    if path is not None and path.is_file():
        model.net.load_state_dict(load_checkpoint(path))
        return False
    plain, params, _ = plain_fit(cfg, ds, device, epochs=epochs, start=model.net,
                                 lr_schedule="constant", progress=progress)
    with torch.no_grad():
        state = {k: v.detach().cpu() for k, v in
                 {**plain.net.state_dict(), **plain.prior.net_params(params)}.items()}
    model.net.load_state_dict(state)
    if path is not None:
        save_checkpoint(state, path)
    return True


def record_data_source(cfg: RunConfig, ds: data_mod.Dataset) -> RunConfig:
    """Write the folder the IDX files were actually read from into ``data.data_dir``."""
    source = getattr(ds, "source", None)
    if source is None or cfg.data.data_dir == source or cfg.data.name not in data_mod.IDX_SETS:
        return cfg
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"data_dir": str(source)})})


def refuse_resume_changes(cfg: RunConfig, out: Path) -> dict:
    """The saved config of the run in ``out`` (as a dict); refuses a resume whose ``cfg``
    changes what shaped that run, naming every field with its old and new value."""
    from ..config import load_run_config  # config builds its model from this package's registry

    saved = load_run_config(out).model_dump()
    changed = resume_changes(saved, cfg.model_dump())
    if changed:
        raise ConfigError(
            f"--resume cannot change what shaped the run in {out}: "
            + "; ".join(f"{k} {a!r} -> {b!r}" for k, a, b in changed)
            + ". Start a new run instead (bayesstruct run ENTRY --init-from "
            f"{out} --set ... starts one from its last good parameters)")
    return saved


def new_experiment(cfg: RunConfig, out: str | Path
                   ) -> tuple[Path, torch.device, data_mod.Dataset]:
    """An experiment without checkpoints: refuse a used ``out``, then the device and data."""
    out = check_out(out, resume=False)
    device = resolve_device(cfg)
    return out, device, load_data(cfg, device)
