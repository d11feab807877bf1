"""Schemas of catalog entries, inference recipes and resolved run configs (pydantic).

A run combines one catalog entry (``models/X.yaml``: data, architecture, prior, likelihood,
pruning, ``defaults``) with one inference recipe (``inference/Y.yaml``) and ``--set key=value``
overrides:

    recipe  <-  entry.defaults (minus ``inference``)  <-  overrides      ->  RunConfig

The sections that vary with what is registered are assembled from the registries, not listed
here: ``prior:`` is the union of the priors' config models (each beside its prior, keyed on
``kind``), ``inference:`` the union of the engines' recipe models (keyed on ``engine``, default
``svi``), and each experiment kind adds its optional section (``compare:``, ``hypergrad:``,
``nas:``). An entry's ``defaults`` apply where the chosen engine takes the field.

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
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from .data import DATASETS, N_CLASSES, classes_problem
from .errors import ConfigError
from .experiments import EXPERIMENTS, experiment_for
from .inference import ENGINES
from .priors import PRIORS
from .schema import Seed, Strict

__all__ = [
    "ConfigError",
    "EntryConfig",
    "InferenceConfig",
    "RunConfig",
    "apply_overrides",
    "catalog",
    "find_entry",
    "find_recipe",
    "load_run_config",
    "load_yaml",
    "resolve",
]

DEFAULT_ENTRY = "ard-logreg-digits"
_Strict = Strict


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
    """``kind``: ``logreg``, ``mlp``, ``lenet300``, ``lenet5``, ``resnet`` (``hidden``: stage
    widths), or the sequence nets, which read an input's second-last axis as time: the
    recurrent ``rnn`` (Elman) / ``gru`` / ``lstm`` (torch's LSTM; one ``hidden`` width) and
    ``conv1d`` (``hidden``: channel widths)."""

    kind: Literal["logreg", "mlp", "lenet300", "lenet5", "rnn", "gru", "resnet", "lstm",
                  "conv1d"]
    hidden: list[Annotated[int, Field(ge=1)]] = []
    activation: Literal["relu", "tanh", "elu"] = "relu"
    #: a state dict of this network (``torch.save(net.state_dict(), path)``, or another run's
    #: ``network/posterior_mean.pt``) whose weights start the fit: the guide's means start
    #: there (a pretrained start, as Neklyudov et al. 2017 and Molchanov et al. 2017 prune)
    init_weights: str | None = None
    #: epochs of plain maximum-likelihood training of the network (the recipe's batch size and
    #: learning rate, no prior) before the Bayesian fit, whose guide means then start at the
    #: trained weights: the pruning papers' protocol in one run (SVI fit entries only; the
    #: trained network is kept as ``pretrained.pt`` in the run directory)
    pretrain_epochs: int = Field(0, ge=0)


#: ``prior:``: one registered prior's config (``priors/<kind>.py``), chosen by ``kind``
PriorConfig = Annotated[Union[tuple(p.Config for p in PRIORS.values())],  # noqa: UP007
                        Field(discriminator="kind")]


def _engine_tag(v: Any) -> str | None:
    """A recipe's engine; a recipe without ``engine:`` is SVI."""
    if isinstance(v, dict):
        return v.get("engine", "svi")
    return getattr(v, "engine", None)


#: ``inference:``: one registered engine's recipe (``inference/<engine>.py``), chosen by
#: ``engine`` (default ``svi``)
InferenceConfig = Annotated[
    Union[tuple(Annotated[e.config, Tag(name)] for name, e in ENGINES.items())],  # noqa: UP007
    Discriminator(_engine_tag)]


def _recipe_fields() -> set[str]:
    """Every field some engine's recipe has."""
    return {f for e in ENGINES.values() for f in e.config.model_fields}


class PruningConfig(_Strict):
    """How decisions are made. ``auto`` takes the prior's own criterion: ``rho`` (Gaussian,
    ARD), ``log_alpha`` per weight (sparse VD), ``unit`` (BC-GNJ, BC-GHS); ``magnitude`` for
    point estimates."""

    criterion: Literal["auto", "rho", "magnitude", "log_alpha", "unit"] = "auto"
    threshold: float = Field(0.5, gt=0, le=1)
    magnitude_threshold: float = Field(1e-2, ge=0)
    log_alpha_threshold: float = 3.0
    unit_threshold: float | Literal["auto"] = "auto"
    val_tolerance: float = Field(0.01, ge=0, le=1)
    #: unit thresholds fixed by hand (``.inf`` keeps a layer's units); with
    #: ``unit_threshold: auto`` the other layers are calibrated given these
    layer_thresholds: dict[str, float] = {}
    #: unit thresholds per layer (greedy from the input) or one for the network, each unit
    #: removed from all of its readers at once (bayesstruct.pruning.unit_spaces); or
    #: ``fraction``: ``unit_fraction`` of the units of every unit space removed, the
    #: highest-scoring ones (a target width, meant for ``retrain_epochs``)
    unit_calibration: Literal["per_layer", "network", "fraction"] = "per_layer"
    unit_fraction: float = Field(0.5, ge=0, lt=1)
    #: the fraction of the network's input features (each layer's groups no unit space
    #: covers: an MLP's pixels) removed, the highest-scoring ones, the rest of the decision
    #: made with them held: a target, like ``unit_fraction``, meant for ``retrain_epochs``
    #: (criterion ``unit`` only)
    input_fraction: float = Field(0.0, ge=0, lt=1)
    #: epochs of plain training of the pruned posterior-mean network with the masks held
    #: (Adam, cosine schedule from ``retrain_lr``), before it is shrunk and exported; 0: none
    #: (the pruned network is the posterior mean masked)
    retrain_epochs: int = Field(0, ge=0, le=1000)
    retrain_lr: float = Field(1e-3, gt=0, le=1)
    kmeans_bits_conv: int = Field(8, ge=1, le=16)
    kmeans_bits_fc: int = Field(5, ge=1, le=16)
    #: Deep Compression's trained quantisation (Han et al. 2016): epochs of fine-tuning the
    #: shared k-means centroids on the training split (0: the k-means centroids as they are),
    #: and its learning rate (Adam, cosine schedule)
    finetune_epochs: int = Field(2, ge=0, le=1000)
    finetune_lr: float = Field(1e-3, gt=0, le=1)
    fractions: list[Annotated[float, Field(ge=0, le=1)]] = [
        0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99]
    mc_samples: int = Field(20, ge=0)
    snr_tolerance: float = Field(0.01, ge=0, le=1)
    #: the curves against the |mu / sigma| threshold (about 90 thresholds, each evaluated on the
    #: test and validation splits: the longest part of a big network's analysis)
    snr_curve: bool = True

    @model_validator(mode="after")
    def _input_fraction_of_units(self):
        """``input_fraction`` removes input units: refused with a per-weight criterion."""
        if self.input_fraction and self.criterion in ("rho", "magnitude", "log_alpha"):
            raise ValueError(f"pruning.input_fraction={self.input_fraction} removes input "
                             f"units, and criterion {self.criterion!r} scores single weights; "
                             "allowed with criterion 'unit' or 'auto' (a unit-level prior), "
                             "or pruning.input_fraction=0")
        return self


class CollapseCheckConfig(_Strict):
    """The collapse check of a variational run (:mod:`bayesstruct.collapse`): the
    posterior-mean network against a plain fit of the same net of at most ``plain_steps``
    minibatch steps (the recipe's batch size and learning rate), on the validation split; a
    warning when its accuracy is more than ``tolerance`` below (and McNemar's paired counts
    say it is beyond chance). ``plain_lr_schedule``: ``constant`` (the default, the reference
    the 2 pp tolerance was set against on the zoo) or ``recipe`` (the recipe's own schedule, a
    cosine one over the plain fit's steps: a stronger reference that also flags the ordinary
    cost of variational inference, not only a collapse)."""

    enabled: bool = True
    tolerance: float = Field(0.02, ge=0, le=1)
    plain_steps: int = Field(1000, ge=1)
    plain_lr_schedule: Literal["constant", "recipe"] = "constant"


class _EntryCore(_Strict):
    name: str = ""
    description: str = ""
    data: DataConfig
    net: NetConfig | None = None
    prior: PriorConfig | None = None
    likelihood: Literal["categorical", "bernoulli"] = "categorical"
    pruning: PruningConfig = PruningConfig()
    collapse_check: CollapseCheckConfig = CollapseCheckConfig()
    seed: Seed = 0

    @model_validator(mode="after")
    def _needs_net_and_prior(self):
        """``net`` and ``prior`` are required unless the experiment's section says it needs
        neither (kernel logistic regression, ``hypergrad.experiment: kernel_width``; the
        architecture search, whose space is its ``nas`` section) or only a net (``l2``)."""
        exp = experiment_for(self)
        section = getattr(self, exp.key) if exp.section is not None else None
        required = section.required() if section is not None else frozenset({"net", "prior"})
        for name in ("net", "prior"):
            if name in required and getattr(self, name) is None:
                raise ValueError(f"{name}: field required")
        return self


#: an entry: the core fields plus one optional section per registered experiment kind
#: (``compare:``, ``hypergrad:``, ``nas:``; :mod:`bayesstruct.experiments`)
_EntryBase = create_model(
    "_EntryBase", __base__=_EntryCore,
    **{key: (exp.section | None, None) for key, exp in EXPERIMENTS.items()
       if exp.section is not None})


class EntryConfig(_EntryBase):
    """A catalog entry (``models/*.yaml``). ``defaults`` holds the recipe name under
    ``inference`` and any recipe fields the entry overrides (epochs, lr, ...)."""

    defaults: dict[str, Any] = {}

    @field_validator("defaults")
    @classmethod
    def _known_defaults(cls, v: dict[str, Any]) -> dict[str, Any]:
        allowed = _recipe_fields() | {"inference"}
        bad = sorted(set(v) - allowed)
        if bad:
            raise ValueError(f"unknown keys {bad}; allowed: {sorted(allowed)}")
        return v


class RunConfig(_EntryBase):
    """Everything one run needs; written to the run directory as ``config.yaml``."""

    recipe: str = ""
    inference: InferenceConfig
    device: str = "cpu"

    @model_validator(mode="after")
    def _pretrain_where_it_starts_a_guide(self):
        """``net.pretrain_epochs`` starts a variational guide's means: a fit entry with an
        engine that takes a starting point (SVI); anything else is refused, not ignored."""
        epochs = self.net.pretrain_epochs if self.net is not None else 0
        if epochs:
            exp = experiment_for(self)
            if exp.section is not None:
                raise ValueError(f"net.pretrain_epochs={epochs}: pretraining starts the fit "
                                 f"of a plain entry; a {exp.key} entry does not take it "
                                 "(set net.pretrain_epochs=0)")
            if not self.inference.supports_init_from:
                raise ValueError(f"net.pretrain_epochs={epochs}: pretraining starts the "
                                 "guide's means at the trained weights, and engine "
                                 f"{self.inference.engine!r} starts from its own point; use "
                                 f"one of the recipes {', '.join(recipes_with_init_from())} "
                                 "or net.pretrain_epochs=0")
        return self

    @model_validator(mode="after")
    def _retrain_a_categorical_classifier(self):
        """``pruning.retrain_epochs`` trains with the cross-entropy over the network's class
        outputs: refused up front for the one-output Bernoulli likelihood."""
        if self.pruning.retrain_epochs and self.likelihood != "categorical":
            raise ValueError(f"pruning.retrain_epochs={self.pruning.retrain_epochs}: "
                             "retraining minimises the cross-entropy over class outputs, and "
                             f"likelihood {self.likelihood!r} has one output; allowed with "
                             "likelihood 'categorical' (or set pruning.retrain_epochs=0)")
        return self

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


def recipes_with_init_from() -> list[str]:
    """The catalog's recipes whose engine starts from a given point
    (:attr:`~bayesstruct.inference.registry.EngineConfig.supports_init_from`): the ones that
    take ``--init-from`` and ``net.pretrain_epochs``. A recipe that does not parse is left
    out (loading it names its own error)."""
    names = []
    for name, path in catalog("inference").items():
        try:
            node = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            continue
        engine = ENGINES.get(_engine_tag(node)) if isinstance(node, dict) else None
        if engine is not None and engine.config.supports_init_from:
            names.append(name)
    return names


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


def validate(cls: Any, data: dict[str, Any], source: str) -> Any:
    """``data`` validated as ``cls`` (a model, or a union such as :data:`InferenceConfig`),
    with errors rewritten as one :class:`ConfigError`."""
    try:
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            return cls.model_validate(data)
        return TypeAdapter(cls).validate_python(data)
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
    takes = ENGINES[_engine_tag(rec)].config.model_fields
    # the entry's defaults apply where the recipe's engine takes them (an entry tuned for SVI
    # sets epochs, which NUTS does not have)
    run["inference"] = {**rec, **{k: v for k, v in defaults.items() if k in takes}}
    run["recipe"] = recipe_path.stem
    if device is not None:
        run["device"] = device
    old_tags = {"prior": (run.get("prior") or {}).get("kind"),
                "inference": _engine_tag(run["inference"])}
    run = apply_overrides(run, overrides)
    for section, old in old_tags.items():
        dropped = _drop_switched_fields(run, section, old, overrides)
        if not dropped:
            continue
        field = _UNIONS[section]
        new = run[section][field]
        what = "prior" if section == "prior" else "engine"
        msg = (f"{section}.{field} {old} -> {new}: dropped "
               f"{', '.join(f'{section}.{k}={v!r}' for k, v in dropped.items())} (not taken "
               f"by the {new} {what})")
        if notify is None:
            warnings.warn(msg, UserWarning, stacklevel=2)
        else:
            notify(msg)
    return validate(RunConfig, run, f"{entry_path} + {recipe_path}")


def _union_models(section: str) -> dict[str, type[BaseModel]]:
    """``tag -> model`` of a union section (``prior`` by ``kind``, ``inference`` by
    ``engine``)."""
    if section == "prior":
        return {k: p.Config for k, p in PRIORS.items()}
    return {k: e.config for k, e in ENGINES.items()}


def _drop_switched_fields(run: dict[str, Any], section: str, old_tag: str | None,
                          overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Remove (and return) the fields of ``run[section]`` that came with ``old_tag`` when the
    overrides switched the section's member (``prior.kind``, ``inference.engine``); fields the
    overrides name are left for validation to judge."""
    node = run.get(section)
    tag_field = _UNIONS[section]
    if not isinstance(node, dict) or old_tag is None:
        return {}
    new_tag = node.get(tag_field, "svi" if section == "inference" else None)
    model = _union_models(section).get(new_tag)
    if new_tag == old_tag or model is None:  # an unknown tag: validation names the allowed
        return {}
    named = {o.partition("=")[0].strip()[len(section) + 1:] for o in overrides
             if o.strip().startswith(section + ".")}
    dropped = {k: v for k, v in node.items()
               if k not in model.model_fields and k not in named}
    for k in dropped:
        del node[k]
    try:  # a shared field whose value the new member does not allow (ARD's per=weight)
        model.model_validate(node)
    except ValidationError as e:
        for err in e.errors():
            k = err["loc"][0] if err["loc"] else None
            if isinstance(k, str) and k in node and k not in named and k != tag_field:
                dropped[k] = node.pop(k)
    return dropped


def load_run_config(out: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()
                    ) -> RunConfig:
    """The config saved in a run directory (``out/config.yaml``), with ``overrides`` applied
    (for ``--resume``). A config.yaml written before each engine had its own recipe model
    carries every engine's fields; those the run's engine does not take are dropped."""
    path = Path(out) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"nothing to resume: {path} does not exist")
    raw = load_yaml(path)
    inf = raw.get("inference")
    if isinstance(inf, dict) and _engine_tag(inf) in ENGINES:
        takes = ENGINES[_engine_tag(inf)].config.model_fields
        raw["inference"] = {k: v for k, v in inf.items() if k in takes}
    return validate(RunConfig, apply_overrides(raw, overrides), str(path))


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
            fields = getattr(m, "model_fields", {})
            if any(tag in get_args(fields[d].annotation) for d in _UNIONS.values() if d in fields):
                return m
        return members[0] if len(members) == 1 else node
    return node


def _format(err: ValidationError, cls: type[BaseModel], source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        loc = tuple(e["loc"])
        shown = ".".join(str(p) for i, p in enumerate(loc) if not _is_tag(loc, i))
        if e["type"] == "extra_forbidden":
            allowed = _fields_at(cls, loc[:-1])
            hint = f"; allowed fields: {', '.join(allowed)}" if allowed else ""
            lines.append(f"  {shown}: unknown field{hint}")
        elif e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            section = str(loc[-1]) if loc else "inference"
            field = _UNIONS.get(section, "kind")
            tags = _union_models(section) if section in _UNIONS else {}
            got = (e.get("ctx") or {}).get("tag")
            lines.append(f"  {shown + '.' if shown else ''}{field}: unknown {field} {got!r}; "
                         f"allowed: {', '.join(tags)}")
        elif e["type"] == "missing":
            lines.append(f"  {shown}: required field is missing")
        else:
            lines.append(f"  {shown}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


#: the sections that are unions of registered models, and the field that chooses the member
_UNIONS = {"prior": "kind", "inference": "engine"}


def _is_tag(loc: tuple[Any, ...], i: int) -> bool:
    """Whether ``loc[i]`` is the tag pydantic puts into an error location after a union
    section (``('prior', 'ard', 'hyper')``), or at the start when a recipe is validated alone."""
    tags = {"prior": PRIORS, "inference": ENGINES}
    if i > 0 and loc[i - 1] in tags:
        return loc[i] in tags[loc[i - 1]]
    return i == 0 and len(loc) > 1 and loc[0] in ENGINES
