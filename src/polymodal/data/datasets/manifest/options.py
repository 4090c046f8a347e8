"""The options of a manifest (``data.options`` in a config, keyword arguments of ``from_manifest``).

The options of each column kind are defined beside its codec (``codecs/<kind>.py``) and collected here.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from polymodal.data.datasets.manifest.codecs.audio import AudioOptions
from polymodal.data.datasets.manifest.codecs.image import ImageOptions
from polymodal.data.datasets.manifest.codecs.text import TextOptions
from polymodal.data.datasets.manifest.codecs.timeseries import TimeseriesOptions
from polymodal.data.datasets.manifest.codecs.video import VideoOptions
from polymodal.data.datasets.manifest.errors import ManifestError

STATE_VERSION = 1
AUTO_TASK = "auto"  # the task option's value that infers the task from the label column


class _Opts(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitOptions(_Opts):
    column: str = "split"  # used when the table has it
    group: str | None = None  # rows sharing a value stay in one split
    val: float = Field(0.15, ge=0, lt=1)
    test: float = Field(0.15, ge=0, lt=1)
    seed: int = 0
    folds: int | None = Field(None, ge=2)  # k-fold over the non-test rows; `fold` is the val part
    fold: int = Field(0, ge=0)


class ManifestOptions(_Opts):
    label: str | list[str] | None = None  # label column (required to train); a task with several (survival: [time, event])
    task: str = "auto"  # a registered task (polymodal.tasks), or auto: inferred from the label column
    root: str | None = None  # folder relative paths resolve against; default: the manifest's folder
    schema_: dict[str, str] = Field(default_factory=dict, alias="schema")  # column -> kind override
    tabular_groups: dict[str, list[str]] = Field(default_factory=dict)  # modality name -> columns
    id: str | None = None  # column naming each row in predictions (default: the row number)
    bad_files: Literal["error", "skip", "drop"] = "error"  # also for odd cells and cells that are not numbers
    delimiter: str | None = None  # CSV column separator; default: detected from the header line
    cache_features: bool = True  # keep decoded inputs (and log-mels) in memory after the first read
    splits: SplitOptions = Field(default_factory=SplitOptions)
    # one field per column kind that has options, named after the kind (codecs/<kind>.py)
    audio: AudioOptions = Field(default_factory=AudioOptions)
    image: ImageOptions = Field(default_factory=ImageOptions)
    video: VideoOptions = Field(default_factory=VideoOptions)
    timeseries: TimeseriesOptions = Field(default_factory=TimeseriesOptions)
    text: TextOptions = Field(default_factory=TextOptions)
    # set by evaluation and resume (never stored with a run): a run's splits.csv, and whether rows that
    # changed since training may be left out (else a changed table is an error)
    stored_splits: str | None = None
    allow_changed_table: bool = False

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        from polymodal.tasks import TASKS

        if value != AUTO_TASK and value not in TASKS:
            raise ValueError(f"unknown task {value!r}; expected {AUTO_TASK} or one of {', '.join(TASKS.names())}")
        return value


# a hint for option names that are easy to give by mistake
_MISTAKES = {
    "split": "the split column is splits.column, and a column named 'split' is used without any option; the split "
             "fractions are splits.val and splits.test, and splits.group keeps a group in one split",
}


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The option names allowed where ``loc`` (the path of an unknown key) points: the fields of the
    options model that holds it (ManifestOptions at the top level, SplitOptions under ``splits``, ...)."""
    model: type[BaseModel] = ManifestOptions
    for part in loc[:-1]:
        field = next((f for k, f in model.model_fields.items() if part in (k, f.alias)), None)
        ann = field.annotation if field is not None else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            break
        model = ann
    return [f.alias or k for k, f in model.model_fields.items()]


def parse_options(options: Mapping[str, Any], where: str = "manifest option") -> ManifestOptions:
    """Validate manifest options; every wrong key at once, an unknown key with the keys allowed where it is."""
    try:
        return ManifestOptions.model_validate(dict(options))
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            if err["type"] == "extra_forbidden":
                allowed = _allowed_keys(tuple(err["loc"]))
                hint = _MISTAKES.get(key) or ", ".join(
                    f"did you mean {c}?" for c in difflib.get_close_matches(str(err["loc"][-1]), allowed, n=1))
                msgs.append(f"{where} {key}: not an option{f' ({hint})' if hint else ''}; got {err.get('input')!r}; "
                            f"allowed {'here' if len(err['loc']) > 1 else 'keys'}: {', '.join(allowed)}")
            else:
                msgs.append(f"{where} {key}: {err['msg']} (got {err.get('input')!r})")
        raise ManifestError("; ".join(msgs)) from None


def codec_options(options: ManifestOptions, kind: str) -> Any:
    """The options of column kind ``kind``: the field named after it, or None (the codec's defaults)."""
    value = getattr(options, kind, None)
    return value if isinstance(value, BaseModel) else None
