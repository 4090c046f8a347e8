"""Typed, validated run configuration: YAML file + ``key=value`` overrides.

An unknown key or a bad value fails at start-up with the key path, the value received and what is
allowed (:class:`ConfigError`). Registry names (dataset, fusion, strategy, encoders) are checked
against their registries.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A configuration problem; the message names the key path, the value and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    dataset: str = "avdigits-hard"  # registry name (`polymodal list datasets`)
    root: str | None = None  # raw data folder; default $POLYMODAL_DATA, else ../shared/data
    cache_features: bool = True  # precompute deterministic front-end features (log-mel) once
    num_workers: int = Field(0, ge=0)  # DataLoader worker processes
    batch_size: int = Field(64, ge=1)  # per process: the global batch is batch_size x trainer.devices
    eval_batch_size: int = Field(64, ge=1)  # MLA's entropy-batch rule is defined at 64
    # order of the evaluation batches: "auto" = a fixed seeded random order for batch-level test-time
    # rules (entropy-batch: its weights depend on which samples share a batch), dataset order otherwise;
    # "dataset" / "shuffled" force one (per-sample rules give the same predictions in any order)
    eval_order: Literal["auto", "dataset", "shuffled"] = "auto"
    balanced_sampling: bool = False  # sample classes equally often (with replacement)
    class_weights: bool = False  # inverse-frequency weights in the cross-entropy
    options: dict[str, Any] = Field(default_factory=dict)  # extra keyword args of the dataset builder
    # per-split keyword args over `options`, e.g. {"test": {"missing_rate": 0.3}} (missing at test only)
    split_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # your own data: a CSV / Parquet / JSON Lines table or a dataset folder, and its label column;
    # setting it selects the `manifest` dataset (manifest options such as splits.group go in `options`)
    manifest: str | None = None
    label: str | list[str] | None = None  # several columns for a task that needs them (survival: [time, event])

    @model_validator(mode="after")
    def _manifest(self) -> DataConfig:
        if self.manifest is None:
            if self.dataset in ("manifest",) and "manifest" not in self.options:
                raise ValueError("data.dataset=manifest needs data.manifest=<table file or dataset folder> and data.label=<column>")
            return self
        if self.dataset not in ("manifest", "avdigits-hard") or ("dataset" in self.model_fields_set and self.dataset != "manifest"):
            raise ValueError(f"data.manifest is set but data.dataset is {self.dataset!r}; drop data.dataset (or set it to manifest)")
        path = Path(self.manifest).expanduser()
        manifest = str(path.resolve()) if path.exists() else self.manifest  # runs evaluated from elsewhere find it
        for key, value in (("manifest", manifest), ("label", self.label)):
            given = self.options.get(key)
            if value is not None and given is not None and given != value and key == "label":
                raise ValueError(f"data.label={value!r} but data.options.label={given!r}; give the label once")
        opts = {**self.options, "manifest": manifest}
        if self.label is not None:
            opts["label"] = self.label
        object.__setattr__(self, "manifest", manifest)
        object.__setattr__(self, "dataset", "manifest")
        object.__setattr__(self, "options", opts)
        return self

    @field_validator("split_options")
    @classmethod
    def _known_splits(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        unknown = sorted(set(v) - {"train", "val", "test"})
        if unknown:
            raise ValueError(f"unknown split(s) {unknown}; allowed: train, val, test")
        return v


class ModelConfig(_Section):
    width: int = Field(64, ge=1)  # feature width of every encoder (MLA's shared head needs one width)
    encoders: dict[str, dict[str, Any]] = Field(default_factory=dict)  # modality -> {name: ..., **kwargs}
    fusion: str | None = None  # fusion registry name; default: the strategy's own choice
    fusion_args: dict[str, Any] = Field(default_factory=dict)


class StrategyConfig(_Section):
    name: str = "mla"  # `polymodal list strategies`; the main job trains MLA
    args: dict[str, Any] = Field(default_factory=dict)  # keyword args of the strategy class


class OptimConfig(_Section):
    name: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = Field(2e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)  # SGD only
    weight_decay: float = Field(1e-4, ge=0)
    scheduler: Literal["none", "step", "cosine"] = "cosine"  # cosine: T_max = trainer.max_epochs
    step_size: int = Field(70, ge=1)  # StepLR period in epochs (MLA's recipe: 70)
    gamma: float = Field(0.1, gt=0)  # StepLR factor
    grad_clip: float | None = Field(None, gt=0)  # max global gradient norm; None = no clipping
    accumulate: int = Field(1, ge=1)  # gradient accumulation steps


class TrainerConfig(_Section):
    max_epochs: int = Field(20, ge=1)
    patience: int | None = Field(5, ge=1)  # early stopping on validation; None = off
    accelerator: Literal["cpu", "cuda", "gpu", "mps", "auto"] = "cpu"
    devices: int = Field(1, ge=1)
    strategy: Literal["auto", "ddp", "ddp_spawn"] = "auto"  # Fabric strategy (distributed)
    precision: Literal["32-true", "16-mixed", "bf16-mixed", "bf16-true", "64-true"] = "32-true"
    num_threads: int | None = Field(None, ge=1)  # torch intra-op threads; None = torch default
    progress: bool = True  # progress bar with loss and throughput
    loggers: list[Literal["csv", "tensorboard"]] = Field(default_factory=lambda: ["csv"])
    max_steps_per_epoch: int | None = Field(None, ge=1)  # for smoke runs
    deterministic: bool = True
    # 4-D activations (images, spectrograms) in channels_last memory format: about 1.5x faster training of
    # the default CNNs on CPU (benchmarks/results/throughput.md). Numbers agree to float rounding per step;
    # over whole trainings the main job gave no resolved difference (benchmarks/results/channels_last.md:
    # +0.8 [-1.7, +3.3] points, 3 seeds), so it is the default. Models without 4-D activations are unaffected
    channels_last: bool = True


class RunConfig(_Section):
    name: str = "run"  # run folder name under out_dir
    out_dir: str = "runs"
    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not v or "/" in v or v in (".", ".."):
            raise ValueError("must be a plain folder name (no '/')")
        return v

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


def _format_errors(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"])
        value = e.get("input")
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            section = _section_for(e["loc"][:-1])
            allowed = sorted(section.model_fields) if section else []
            close = difflib.get_close_matches(str(e["loc"][-1]), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            lines.append(f"  {path}: unknown key{hint}; allowed keys here: {', '.join(allowed)}")
        else:
            lines.append(f"  {path}: {msg}; got {value!r}")
    return f"invalid configuration ({source}):\n" + "\n".join(lines)


def _section_for(loc: Sequence[Any]) -> type[BaseModel] | None:
    model: type[BaseModel] = RunConfig
    for key in loc:
        field = model.model_fields.get(str(key))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return None
        model = field.annotation
    return model


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key=value (e.g. optim.lr=0.01)")
    key, raw = item.split("=", 1)
    if not key:
        raise ConfigError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: cannot parse value {raw!r}: {e}") from None
    return key.split("."), value


def _set(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        nxt = node.get(key)
        if nxt is None:
            nxt = node[key] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {'.'.join(path)}: {key!r} is a value, not a section")
        node = nxt
    node[path[-1]] = value


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """Read YAML (or start from defaults), apply ``key=value`` overrides, validate."""
    tree: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist (see configs/ for examples)")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p} is not valid YAML: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at top level, got {type(loaded).__name__}")
        tree, source = loaded, str(p)
    for item in overrides:
        key, value = parse_override(item)
        _set(tree, key, value)
    if overrides:
        source += " + overrides " + " ".join(overrides)
    return validate_config(tree, source)


def validate_config(tree: dict[str, Any], source: str = "config") -> RunConfig:
    try:
        cfg = RunConfig.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, source)) from None
    _check_registry_names(cfg)
    _check_component_args(cfg)
    return cfg


# arguments the builders pass themselves: never config keys
_BUILDER_ARGS = {"self", "split", "modality", "in_dims", "num_outputs", "root", "cache_features"}


def _accepted(factory: Any) -> tuple[list[str], bool]:
    """(parameter names a factory accepts from a config, whether it takes any keyword: **kwargs)."""
    sig = inspect.signature(factory)
    names = [p.name for p in sig.parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in _BUILDER_ARGS]
    return names, any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def _unknown_args(path: str, given: dict[str, Any], factory: Any, what: str, extra: Sequence[str] = ()) -> list[str]:
    allowed, open_ended = _accepted(factory)
    allowed = [*allowed, *extra]
    if open_ended:
        return []
    problems = []
    for key in given:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"  {path}.{key}: {what} takes no argument {key!r}{hint}; got value {given[key]!r}; "
                            f"allowed: {', '.join(allowed) or 'none'}")
    return problems + _bad_values(path, {k: v for k, v in given.items() if k in allowed}, factory, what)


def _annotations(factory: Any) -> dict[str, Any]:
    """parameter -> its annotation resolved to a type, for the parameters whose annotation resolves (an
    annotation that names what the factory's module imports only for type checking is left out)."""
    import sys

    target = factory.__init__ if isinstance(factory, type) else factory
    module = sys.modules.get(getattr(factory, "__module__", ""), None)
    namespace = {**vars(module)} if module is not None else {}
    namespace.update(getattr(target, "__globals__", {}))
    out = {}
    for p in inspect.signature(factory).parameters.values():
        ann = p.annotation
        if ann is inspect.Parameter.empty:
            continue
        if isinstance(ann, str):
            try:
                ann = eval(ann, namespace)  # noqa: S307  (a source annotation of a registered factory)
            except Exception:  # noqa: BLE001 - a name only imported for type checking: not checked here
                continue
        out[p.name] = ann
    return out


def _bad_values(path: str, given: dict[str, Any], factory: Any, what: str) -> list[str]:
    """Problems with the VALUES of a factory's arguments, from its annotations (an enumerated option is a
    ``Literal``): each value is validated by pydantic in lax mode (``"3"`` is not an int, a YAML list is a
    tuple); an annotation pydantic cannot read (a tensor type) is not checked."""
    from pydantic import TypeAdapter
    from pydantic.errors import PydanticSchemaGenerationError, PydanticUndefinedAnnotation

    annotations = _annotations(factory)
    problems = []
    for key, value in given.items():
        ann = annotations.get(key)
        if ann is None:
            continue
        try:
            adapter = TypeAdapter(ann)
        except (PydanticSchemaGenerationError, PydanticUndefinedAnnotation, TypeError, NameError):
            continue
        try:
            adapter.validate_python(value)
        except ValidationError as e:
            allowed = _allowed_text(ann)
            why = f"takes {allowed}" if allowed else f"takes no such value ({e.errors()[0]['msg'].lower()})"
            problems.append(f"  {path}.{key}: {what} {why}; got {value!r}")
    return problems


def _allowed_text(ann: Any) -> str:
    """``one of 'a', 'b'`` for a Literal (also inside ``X | None``), else ''."""
    from typing import get_args, get_origin

    if get_origin(ann) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(ann))
    literals = [a for arg in get_args(ann) if get_origin(arg) is Literal for a in get_args(arg)]
    return ("one of " + ", ".join(repr(a) for a in literals) + (" or null" if type(None) in get_args(ann) else "")) if literals else ""


def _check_component_args(cfg: RunConfig) -> None:
    """Bind every component's arguments to its registered factory's signature at load time, before any data
    is read: ``strategy.args``, ``model.fusion_args``, ``model.encoders.<modality>``, ``data.options`` and
    ``data.split_options.<split>``. Every problem is reported at once."""
    from polymodal import registries
    from polymodal.encoders.base import DEFAULT_ENCODER

    strategy = registries.STRATEGIES.get(cfg.strategy.name).factory
    problems = _unknown_args("strategy.args", cfg.strategy.args, strategy, f"strategy {cfg.strategy.name!r}")
    fusion = cfg.model.fusion or getattr(strategy, "default_fusion", None)
    if fusion in registries.FUSIONS:
        problems += _unknown_args("model.fusion_args", cfg.model.fusion_args, registries.FUSIONS.get(fusion).factory,
                                  f"fusion {fusion!r}")
    for modality, spec in cfg.model.encoders.items():
        name = spec.get("name", DEFAULT_ENCODER.get(modality))  # a modality named after its kind: its default
        if name is None or name not in registries.ENCODERS:
            continue
        args = {k: v for k, v in spec.items() if k != "name"}
        problems += _unknown_args(f"model.encoders.{modality}", args, registries.ENCODERS.get(name).factory,
                                  f"encoder {name!r}")
    if cfg.data.manifest is None:
        factory = registries.DATASETS.get(cfg.data.dataset).factory
        problems += _unknown_args("data.options", cfg.data.options, factory, f"dataset {cfg.data.dataset!r}")
        for split, opts in cfg.data.split_options.items():
            problems += _unknown_args(f"data.split_options.{split}", opts, factory, f"dataset {cfg.data.dataset!r}")
    if problems:
        raise ConfigError("invalid configuration: component arguments that nothing takes, or values they do not "
                          "take:\n" + "\n".join(problems))


def _check_registry_names(cfg: RunConfig) -> None:
    from polymodal import registries

    checks = [("data.dataset", cfg.data.dataset, registries.DATASETS), ("strategy.name", cfg.strategy.name, registries.STRATEGIES)]
    if cfg.model.fusion is not None:
        checks.append(("model.fusion", cfg.model.fusion, registries.FUSIONS))
    for modality, spec in cfg.model.encoders.items():
        if "name" in spec:
            checks.append((f"model.encoders.{modality}.name", spec["name"], registries.ENCODERS))
    for path, value, reg in checks:
        if value not in reg:
            close = difflib.get_close_matches(value, reg.names(), n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise ConfigError(f"invalid configuration: {path}: unknown {reg.kind} {value!r}{hint}; allowed: {', '.join(reg.names())}")


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
