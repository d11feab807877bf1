"""Schemas of catalog entries, inference recipes and resolved run configs (pydantic).

A run combines one catalog entry (``models/X.yaml``: data, architecture, prior, likelihood,
pruning, ``defaults``) with one inference recipe (``inference/Y.yaml``) and ``--set key=value``
overrides:

    recipe  <-  entry.defaults (minus ``inference``)  <-  overrides      ->  RunConfig

YAML is read with ``yaml.safe_load`` only: a config can never execute code. Every validation
error is a :class:`ConfigError` naming the file, the field (dotted path), the bad value and the
allowed values or fields.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .data import DATASETS, N_CLASSES, classes_problem
from .errors import UserInputError

__all__ = [
    "CompareConfig",
    "ConfigError",
    "EntryConfig",
    "InferenceConfig",
    "RunConfig",
    "apply_overrides",
    "catalog",
    "find_entry",
    "find_recipe",
    "load_yaml",
    "resolve",
]

DEFAULT_ENTRY = "ard-logreg-digits"
#: A seed is what numpy's legacy ``np.random.seed`` (called by ``pyro.set_rng_seed``) accepts.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


class ConfigError(UserInputError):
    """An invalid config: the message names the field, the bad value and the allowed ones."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    name: Literal[DATASETS]  # type: ignore[valid-type]
    val_fraction: float = Field(0.1, gt=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    train_size: int | None = Field(None, ge=1)
    data_dir: str | None = None
    standardize: bool = True
    classes: list[Annotated[int, Field(ge=0)]] | None = None
    pairs_file: str | None = None
    word_vectors: str | None = None
    max_len: int | None = Field(None, ge=1)

    @field_validator("classes")
    @classmethod
    def _classes(cls, v: list[int] | None, info: ValidationInfo) -> list[int] | None:
        """>= 2 distinct labels of the data set (``name`` is validated first)."""
        name = info.data.get("name")
        if v is None or name not in N_CLASSES:
            return v
        problem = classes_problem(v, N_CLASSES[name])
        if problem:
            raise ValueError(f"{problem}; data.classes must be >= 2 distinct labels of {name} "
                             f"in 0..{N_CLASSES[name] - 1}")
        return v


class NetConfig(_Strict):
    """``kind``: ``logreg``, ``mlp``, ``lenet300``, ``lenet5``, or the recurrent ``rnn``
    (Elman) / ``gru``, which read an input's second-last axis as time (one ``hidden`` width)."""

    kind: Literal["logreg", "mlp", "lenet300", "lenet5", "rnn", "gru"]
    hidden: list[Annotated[int, Field(ge=1)]] = []
    activation: Literal["relu", "tanh", "elu"] = "relu"


class GaussianPriorConfig(_Strict):
    kind: Literal["gaussian"]
    scale: float = Field(1.0, gt=0)
    loc: float = 0.0
    empirical_bayes: bool = False
    per: Literal["layer", "unit"] = "layer"
    bias_scale: float = Field(1.0, gt=0)


class ARDPriorConfig(_Strict):
    kind: Literal["ard"]
    per: Literal["weight", "unit"] = "weight"
    hyper: Literal["gamma", "empirical_bayes"] = "empirical_bayes"
    a: float = Field(1.0, gt=0)
    b: float = Field(1.0, gt=0)
    init_precision: float = Field(1.0, gt=0)
    bias_scale: float = Field(1.0, gt=0)


class LogUniformPriorConfig(_Strict):
    kind: Literal["log_uniform"]
    level: Literal["weight", "unit"] = "weight"
    init_log_alpha: float = Field(-8.0, le=8, ge=-20)
    init_group_scale: float = Field(1.0, gt=0)
    bias_scale: float = Field(1.0, gt=0)


class HorseshoePriorConfig(_Strict):
    kind: Literal["horseshoe"]
    tau0: float = Field(1.0, gt=0)
    slab_scale: float | None = Field(None, gt=0)
    init_group_scale: float = Field(1.0, gt=0)
    bias_scale: float = Field(1.0, gt=0)


class IBPPriorConfig(_Strict):
    """M2.5: cascading IBP unit masks on an MLP's hidden layers (their widths are the
    truncations ``K``); ``temperature`` is the masks' Concrete relaxation in SVI."""

    kind: Literal["ibp"]
    alpha: float = Field(5.0, gt=0)
    temperature: float = Field(0.5, gt=0)
    init_inclusion: Annotated[float, Field(gt=0, lt=1)] | Literal["prior"] = "prior"
    bias_scale: float = Field(1.0, gt=0)


PriorConfig = Annotated[Union[GaussianPriorConfig, ARDPriorConfig,  # noqa: UP007
                              LogUniformPriorConfig, HorseshoePriorConfig, IBPPriorConfig],
                        Field(discriminator="kind")]


class InferenceConfig(_Strict):
    """An inference recipe (``inference/*.yaml``).

    ``engine`` picks what runs: ``svi`` (M4.1; guide, epochs, batch_size, lr, ...), ``nuts`` /
    ``hmc`` (M4.2; num_warmup, num_samples, num_chains, chain_method, jit_compile, ...) or
    ``sgld`` / ``psgld`` (M4.3; burn_in, num_samples, thin, num_chains, batch_size, lr,
    gamma, decay_steps, beta, eps). Fields of the other engines are ignored.
    """

    description: str = ""
    engine: Literal["svi", "nuts", "hmc", "sgld", "psgld"] = "svi"
    # -- svi
    guide: Literal["meanfield", "delta"] = "meanfield"
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    kl_weight: float = Field(1.0, ge=0)
    kl_warmup_epochs: float = Field(0.0, ge=0)
    patience: int | None = Field(None, ge=1)
    prior_update: Literal["auto", "none", "closed_form"] = "auto"
    eb_every: int = Field(1, ge=1)
    num_draws: int = Field(100, ge=1)
    init_scale: float = Field(1e-3, gt=0)
    covariance: Literal["diagonal", "scalar"] = "diagonal"
    reparam: Literal["auto", "local", "weights"] = "auto"
    temperature: float | None = Field(None, gt=0)
    temperature_final: float | None = Field(None, gt=0)
    # -- nuts / hmc / sgld / psgld
    num_samples: int = Field(500, ge=1)
    num_chains: int = Field(4, ge=1)
    # -- nuts / hmc
    num_warmup: int = Field(500, ge=0)
    chain_method: Literal["sequential", "parallel"] = "parallel"
    jit_compile: bool = True
    target_accept: float = Field(0.8, gt=0, lt=1)
    max_tree_depth: int = Field(10, ge=1)
    step_size: float = Field(0.1, gt=0)
    num_steps: int = Field(10, ge=1)
    noncentred: bool = True
    # -- sgld / psgld (lr and batch_size above)
    burn_in: int = Field(1000, ge=0)
    thin: int = Field(1, ge=1)
    gamma: float = Field(0.0, ge=0)
    decay_steps: float = Field(1000.0, gt=0)
    beta: float = Field(0.99, ge=0, lt=1)
    eps: float = Field(1e-5, gt=0)
    init_jitter: float = Field(0.1, ge=0)


class PruningConfig(_Strict):
    """How decisions are made (M5). ``auto`` takes the prior's own criterion: ``rho`` (Gaussian,
    ARD), ``log_alpha`` per weight (sparse VD), ``unit`` (BC-GNJ, BC-GHS); ``magnitude`` for
    point estimates."""

    criterion: Literal["auto", "rho", "magnitude", "log_alpha", "unit"] = "auto"
    threshold: float = Field(0.5, gt=0, le=1)
    magnitude_threshold: float = Field(1e-2, ge=0)
    log_alpha_threshold: float = 3.0
    unit_threshold: float | Literal["auto"] = "auto"
    val_tolerance: float = Field(0.01, ge=0, le=1)
    layer_thresholds: dict[str, float] = {}
    kmeans_bits_conv: int = Field(8, ge=1, le=16)
    kmeans_bits_fc: int = Field(5, ge=1, le=16)
    fractions: list[Annotated[float, Field(ge=0, le=1)]] = [
        0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99]
    mc_samples: int = Field(20, ge=0)
    snr_tolerance: float = Field(0.01, ge=0, le=1)


COMPARE_METHODS = ("random", "random-retrain", "magnitude-l1", "magnitude-l1-retrain",
                   "magnitude-l2", "magnitude-l2-retrain", "variational", "obd", "obd-retrain",
                   "obs")


class CompareConfig(_Strict):
    """A pruning comparison (``bayesstruct compare``; :mod:`bayesstruct.pruning.comparison`).

    ``epochs``, ``lr`` and ``batch_size`` default to the inference recipe's; the variational
    base is trained by the recipe (SVI with the entry's prior)."""

    methods: list[Literal[COMPARE_METHODS]] = [  # type: ignore[valid-type]
        "random", "magnitude-l1", "magnitude-l1-retrain", "magnitude-l2",
        "magnitude-l2-retrain", "variational", "obd", "obs"]
    epochs: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    batch_size: int | None = Field(None, ge=1)
    l1: float = Field(1e-4, ge=0)
    l2: float = Field(1e-4, ge=0)
    retrain_epochs: int = Field(3, ge=1)
    retrain_lr_factor: float = Field(0.1, gt=0, le=1)
    obd_hessian: Literal["exact", "gauss_newton", "hutchinson"] = "exact"
    obs_hessian: Literal["exact", "gauss_newton"] = "gauss_newton"
    hutchinson_samples: int = Field(64, ge=1)
    hessian_examples: int | None = Field(None, ge=1)
    obs_block: int | None = Field(None, ge=1)
    obs_damping: float = Field(0.0, ge=0)
    obs_max_weights: int = Field(20000, ge=1)
    fractions: list[Annotated[float, Field(ge=0, lt=1)]] = [
        0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99]


class HypergradConfig(_Strict):
    """A hypergradient experiment (:mod:`bayesstruct.inference.hypergrad.
    experiments`). ``l2``: no / one shared / one-per-parameter L2 coefficient on the entry's
    net, ``epochs_weights`` epochs with the coefficients fixed, then ``epochs_hyper`` epochs
    of the greedy loop (a ``k``-step unrolled hypergradient every ``k`` steps).
    ``kernel_width``: kernel logistic regression with the RBF width learned by the honest loop
    (Newton inner solves, implicit hypergradient by CG)."""

    experiment: Literal["l2", "kernel_width"]
    # -- l2
    modes: list[Literal["none", "shared", "individual"]] = ["none", "shared", "individual"]
    epochs_weights: int = Field(20, ge=0)
    epochs_hyper: int = Field(20, ge=1)
    k: int = Field(10, ge=1)
    hyper_lr: float = Field(0.05, gt=0)
    init_decay: float = Field(1e-4, gt=0)
    optimizer: Literal["sgd", "momentum", "adam"] = "adam"
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(128, ge=1)
    # -- kernel_width
    width0: float = Field(50.0, gt=0)
    c: float = Field(1e-2, gt=0)
    jitter: float = Field(1e-2, gt=0)
    outer_steps: int = Field(60, ge=1)
    inner_tol: float = Field(1e-9, gt=0)


_NAS_OPS = Literal["conv_3x3", "sep_conv_3x3", "conv_5x5", "dil_conv_3x3", "max_pool_3x3",
                  "avg_pool_3x3", "skip_connect", "none"]


class NasConfig(_Strict):
    """An architecture-search experiment (:mod:`bayesstruct.nas`): each of
    ``searchers`` searches the cell space on the training split (weights) and the validation
    split (structure / selection) for each seed; the derived cell is retrained from scratch
    with ``retrain_channels`` channels and scored on the test split."""

    searchers: list[Literal["darts", "darts2", "vardarts", "random", "spos"]] = [
        "darts", "vardarts", "random", "spos"]
    seeds: list[Seed] = [0, 1, 2]
    # -- the space
    ops: list[_NAS_OPS] = ["conv_3x3", "conv_5x5", "dil_conv_3x3", "max_pool_3x3",
                           "avg_pool_3x3", "skip_connect", "none"]
    n_nodes: int = Field(4, ge=1)
    n_cells: int = Field(1, ge=1, le=4)
    channels: int = Field(8, ge=1)
    stem_stride: int = Field(2, ge=1, le=4)
    # -- search
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(3e-3, gt=0)
    arch_lr: float = Field(1e-2, gt=0)
    prior: Literal["uniform", "dirichlet"] = "uniform"
    concentration: float = Field(1.0, gt=0)
    temperature: float = Field(1.0, gt=0)
    temperature_final: float = Field(0.2, gt=0)
    random_samples: int = Field(10, ge=1)
    random_epochs: int = Field(2, ge=1)
    spos_candidates: int = Field(50, ge=1)
    # -- retraining
    retrain_channels: int = Field(16, ge=1)
    retrain_epochs: int = Field(8, ge=1)


class _EntryBase(_Strict):
    name: str = ""
    description: str = ""
    data: DataConfig
    net: NetConfig | None = None
    prior: PriorConfig | None = None
    likelihood: Literal["categorical", "bernoulli"] = "categorical"
    pruning: PruningConfig = PruningConfig()
    compare: CompareConfig | None = None
    hypergrad: HypergradConfig | None = None
    nas: NasConfig | None = None
    seed: Seed = 0

    @model_validator(mode="after")
    def _needs_net_and_prior(self):
        """``net`` and ``prior`` are required except by experiments that use neither (the
        kernel machine of ``hypergrad.experiment: kernel_width``, architecture search, whose
        space is its ``nas`` section); ``l2`` needs a net."""
        kernel = self.hypergrad is not None and self.hypergrad.experiment == "kernel_width"
        if self.net is None and not kernel and self.nas is None:
            raise ValueError("net: field required")
        if self.prior is None and self.hypergrad is None and self.nas is None:
            raise ValueError("prior: field required")
        return self


class EntryConfig(_EntryBase):
    """A catalog entry (``models/*.yaml``). ``defaults`` holds the recipe name under
    ``inference`` and any recipe fields the entry overrides (epochs, lr, ...)."""

    defaults: dict[str, Any] = {}

    @field_validator("defaults")
    @classmethod
    def _known_defaults(cls, v: dict[str, Any]) -> dict[str, Any]:
        allowed = set(InferenceConfig.model_fields) | {"inference"}
        bad = sorted(set(v) - allowed)
        if bad:
            raise ValueError(f"unknown keys {bad}; allowed: {sorted(allowed)}")
        return v


class RunConfig(_EntryBase):
    """Everything one run needs; written to the run directory as ``config.yaml``."""

    recipe: str = ""
    inference: InferenceConfig
    device: str = "cpu"

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v == "cpu" or v == "cuda" or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        raise ValueError(f"device {v!r}; allowed: cpu, cuda, cuda:N")


# -- catalog ---------------------------------------------------------------------------------
def _catalog_dirs(kind: str) -> list[Path]:
    """Where catalog files live: inside the installed wheel, then the source checkout."""
    dirs = []
    try:
        packaged = resources.files("bayesstruct") / "catalog" / kind
        if packaged.is_dir():
            dirs.append(Path(str(packaged)))
    except (ModuleNotFoundError, TypeError):
        pass
    source = Path(__file__).resolve().parent.parent / kind
    if source.is_dir():
        dirs.append(source)
    return dirs


def catalog(kind: str = "models") -> dict[str, Path]:
    """``name -> path`` of the catalog entries (``kind="models"``) or recipes (``"inference"``)."""
    found: dict[str, Path] = {}
    for d in _catalog_dirs(kind):
        for p in sorted(d.glob("*.yaml")):
            found.setdefault(p.stem, p)
    return found


def _find(arg: str | os.PathLike, kind: str) -> Path:
    p = Path(arg)
    if p.suffix in (".yaml", ".yml") or os.sep in str(arg):
        if not p.is_file():
            raise ConfigError(f"{kind} file {str(arg)!r} does not exist")
        return p
    names = catalog(kind)
    if str(arg) not in names:
        raise ConfigError(f"unknown {kind} {str(arg)!r}; allowed: {', '.join(names) or '(none)'}")
    return names[str(arg)]


def find_entry(arg: str | os.PathLike) -> Path:
    return _find(arg, "models")


def find_recipe(arg: str | os.PathLike) -> Path:
    return _find(arg, "inference")


# -- loading and validation ------------------------------------------------------------------
def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """``yaml.safe_load`` a mapping from a UTF-8 file.

    Raises:
        ConfigError: one line naming the file and the problem: unreadable, not UTF-8 text
            (the offending byte and its offset), a YAML syntax error (line and column), or a
            top level that is not a mapping.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte {raw[e.start]:#04x} at offset "
                          f"{e.start}, line {line}); save it as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {_yaml_problem(e, text)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping (key: value lines) at the top, got "
                          f"{type(data).__name__}")
    return data


def _yaml_problem(e: yaml.YAMLError, text: str) -> str:
    """A YAML error in one line: ``line L, column C: problem (context)``."""
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        context = f" ({e.context})" if e.context else ""
        return f"{where}{e.problem or 'syntax error'}{context}"
    if isinstance(e, yaml.reader.ReaderError):
        char = e.character if isinstance(e.character, int) else ord(e.character[:1] or "\0")
        line = text.count("\n", 0, e.position) + 1
        column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        return f"line {line}, column {column}: character #x{char:04x} is not allowed in YAML"
    return " ".join(str(e).split())


def apply_overrides(cfg: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings (values parsed as YAML scalars/lists) to a copy."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value (e.g. inference.epochs=5)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = cfg
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return cfg


def validate(cls: type[BaseModel], data: dict[str, Any], source: str) -> Any:
    """``cls.model_validate(data)`` with errors rewritten as one :class:`ConfigError`."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format(e, cls, source)) from None


def resolve(entry: str | os.PathLike = DEFAULT_ENTRY, recipe: str | os.PathLike | None = None,
            overrides: list[str] | tuple[str, ...] = (), device: str | None = None,
            notify: Callable[[str], Any] | None = None) -> RunConfig:
    """Entry + recipe + overrides -> a validated :class:`RunConfig`.

    An override that switches ``prior.kind`` drops the entry's fields the new kind does not
    have (``--set prior.kind=gaussian`` on an ARD entry drops ``per`` and ``hyper``) and says
    which through ``notify`` (default: a :class:`UserWarning`); fields set by the overrides
    themselves are kept, so a misspelt one is still reported."""
    entry_path = find_entry(entry)
    entry_raw = load_yaml(entry_path)
    entry_raw.setdefault("name", entry_path.stem)
    ent: EntryConfig = validate(EntryConfig, entry_raw, str(entry_path))
    defaults = dict(ent.defaults)
    recipe_arg = recipe if recipe is not None else defaults.get("inference", "svi-meanfield")
    defaults.pop("inference", None)
    recipe_path = find_recipe(recipe_arg)
    rec = load_yaml(recipe_path)
    validate(InferenceConfig, rec, str(recipe_path))
    run = ent.model_dump(exclude={"defaults"})
    run["inference"] = {**rec, **defaults}
    run["recipe"] = recipe_path.stem
    if device is not None:
        run["device"] = device
    old_kind = (run.get("prior") or {}).get("kind")
    run = apply_overrides(run, overrides)
    dropped = _drop_other_kind_fields(run, old_kind, overrides)
    if dropped:
        new_kind = run["prior"]["kind"]
        msg = (f"prior.kind {old_kind} -> {new_kind}: dropped the entry's "
               f"{', '.join(f'prior.{k}={v!r}' for k, v in dropped.items())} (not taken by the "
               f"{new_kind} prior)")
        if notify is None:
            warnings.warn(msg, UserWarning, stacklevel=2)
        else:
            notify(msg)
    return validate(RunConfig, run, f"{entry_path} + {recipe_path}")


def _prior_models() -> dict[str, type[BaseModel]]:
    """``kind -> config model`` of every prior in :data:`PriorConfig`."""
    union = get_args(PriorConfig)[0]
    return {get_args(m.model_fields["kind"].annotation)[0]: m for m in get_args(union)}


def _drop_other_kind_fields(run: dict[str, Any], old_kind: str | None,
                            overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Remove (and return) the prior fields that came with ``old_kind`` when the overrides
    switched ``prior.kind``; fields the overrides name are left for validation to judge."""
    prior = run.get("prior")
    if not isinstance(prior, dict) or old_kind is None or prior.get("kind") == old_kind:
        return {}
    model = _prior_models().get(prior.get("kind"))
    if model is None:  # an unknown kind: validation names the allowed ones
        return {}
    named = {o.partition("=")[0].strip()[len("prior."):] for o in overrides
             if o.strip().startswith("prior.")}
    dropped = {k: v for k, v in prior.items()
               if k not in model.model_fields and k not in named}
    for k in dropped:
        del prior[k]
    try:  # a shared field whose value the new kind does not allow (ARD's per=weight)
        model.model_validate(prior)
    except ValidationError as e:
        for err in e.errors():
            k = err["loc"][0] if err["loc"] else None
            if isinstance(k, str) and k in prior and k not in named and k != "kind":
                dropped[k] = prior.pop(k)
    return dropped


def to_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


# -- error messages --------------------------------------------------------------------------
def _fields_at(cls: Any, loc: tuple[Any, ...]) -> list[str] | None:
    """The allowed field names of the model found at ``loc`` (through unions by tag)."""
    node = cls
    for part in loc:
        node = _unwrap(node, part)
        if node is None:
            return None
        if isinstance(part, int):
            continue
        fields = getattr(node, "model_fields", None)
        if fields is None or part not in fields:
            # a discriminated-union tag in the location ('prior', 'ard', ...)
            continue
        node = fields[part].annotation
    node = _unwrap(node, None)
    fields = getattr(node, "model_fields", None)
    return list(fields) if fields else None


def _unwrap(node: Any, tag: Any) -> Any:
    while get_origin(node) is Annotated:
        node = get_args(node)[0]
    if get_origin(node) in (Union, getattr(__import__("types"), "UnionType", Union)):
        members = [a for a in get_args(node) if a is not type(None)]
        if len(members) == 1:  # Optional[X]: look into X with the same tag
            return _unwrap(members[0], tag)
        for m in members:
            m = _unwrap(m, None)
            kind = getattr(m, "model_fields", {}).get("kind")
            if kind is not None and tag in get_args(kind.annotation):
                return m
        return members[0] if len(members) == 1 else node
    return node


def _format(err: ValidationError, cls: type[BaseModel], source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        loc = tuple(e["loc"])
        shown = ".".join(str(p) for p in loc if not (isinstance(p, str) and p in _TAGS))
        if e["type"] == "extra_forbidden":
            allowed = _fields_at(cls, loc[:-1])
            hint = f"; allowed fields: {', '.join(allowed)}" if allowed else ""
            lines.append(f"  {shown}: unknown field{hint}")
        elif e["type"] == "missing":
            lines.append(f"  {shown}: required field is missing")
        else:
            lines.append(f"  {shown}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


#: the tags of the discriminated unions, which pydantic puts into error locations
_TAGS = set(_prior_models())
