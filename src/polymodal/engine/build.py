"""Build a run's datasets, strategy and model from its configuration (shared by train and evaluate)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from polymodal import registries
from polymodal.config import ConfigError, RunConfig, load_config
from polymodal.data.base import SPLITS, MultimodalDataset, build_dataset
from polymodal.models import MultimodalModel, build_model
from polymodal.runpaths import RunPaths
from polymodal.strategies.base import Strategy
from polymodal.tasks import TASKS, task_of


def build_datasets(cfg: RunConfig, splits: Sequence[str] = SPLITS, *,
                   use_stored_splits: bool = True) -> dict[str, MultimodalDataset]:
    """``split -> dataset`` from ``cfg.data``; checks that every split has the first split's modalities
    and task (a registered task, :mod:`polymodal.tasks`).

    use_stored_splits: a table dataset takes the split of every row from the run's ``splits.csv`` when the
    run folder has one (evaluation, resume); a fresh training passes False."""
    from polymodal.data.datasets.run_splits import stored_split_options

    data = cfg.data
    check_data_options(cfg)
    stored = stored_split_options(cfg.run_dir, data.dataset) if use_stored_splits else {}
    out = {
        split: build_dataset(
            data.dataset, split, root=data.root, cache_features=data.cache_features,
            **{**data.options, **data.split_options.get(split, {}), **stored},
        )
        for split in splits
    }
    first_split, first = next(iter(out.items()))
    for split, ds in out.items():
        if len(ds) == 0:
            raise ValueError(f"dataset {data.dataset!r}: split {split!r} is empty (check data.options)")
        if ds.task not in TASKS:
            raise ValueError(f"dataset {data.dataset!r} ({split}) declares task {ds.task!r}; expected one of "
                             f"{', '.join(TASKS.names())}")
        if ds.task != first.task:
            raise ValueError(
                f"dataset {data.dataset!r}: split {split!r} is a {ds.task} task but split {first_split!r} is a "
                f"{first.task} task; every split must share one task"
            )
        if [m.name for m in ds.schema] != [m.name for m in first.schema] or ds.num_outputs != first.num_outputs:
            raise ValueError(
                f"dataset {data.dataset!r}: split {split!r} has modalities {ds.modalities} and "
                f"{ds.num_outputs} outputs but split {first_split!r} has {first.modalities} and "
                f"{first.num_outputs}; every split must share one schema"
            )
        task_of(ds).check_labels(ds.labels, ds.num_outputs, f"dataset {data.dataset!r} ({split})")
    return out


# keyword arguments that build_datasets gives every dataset builder itself (a data.options key of the same name
# would be a second value for them), with what to set instead
_BUILDER_KEYS = {
    "split": "the split is not a dataset option: every dataset is built once for each split (train, val, test). "
             "For a table (data.manifest), a column named 'split' is used as the split column without any option; "
             "name another column with data.options.splits.column=<column>, set the fractions with "
             "data.options.splits.val / data.options.splits.test, keep groups in one split with "
             "data.options.splits.group=<column>; options for one split only go in data.split_options.<train|val|test>",
    "name": "the dataset is named by data.dataset (or data.manifest for a table), not by an option",
    "root": "set data.root instead (for a table: the folder its relative paths resolve against)",
    "cache_features": "set data.cache_features instead",
}


def check_data_options(cfg: RunConfig) -> None:
    """``data.options`` and ``data.split_options.<split>`` must not name what the builder is given anyway
    (``split``, ``root``, ...): a :class:`ConfigError` naming each such key and what to set instead."""
    data = cfg.data
    given = [("data.options", data.options), *((f"data.split_options.{s}", o) for s, o in data.split_options.items())]
    problems = [f"  {where}.{key}={opts[key]!r}: {why}" for where, opts in given for key, why in _BUILDER_KEYS.items()
                if key in opts]
    if problems:
        raise ConfigError(f"invalid configuration: dataset {data.dataset!r}: options that polymodal sets itself:\n"
                          + "\n".join(problems))


def check_task(cfg: RunConfig, train_dataset: MultimodalDataset, strategy: Strategy) -> None:
    """Raise a ValueError for settings that do not fit the dataset's task, before any model is built: a
    strategy that requires a capability the task lacks (:meth:`polymodal.tasks.Task.check_strategy`), and
    class weights or balanced sampling that the task does not define."""
    task = task_of(train_dataset)
    task.check_strategy(strategy, cfg.strategy.name, cfg.data.dataset)
    if cfg.data.class_weights:
        task.class_weights(train_dataset.labels, train_dataset.num_outputs)
    if cfg.data.balanced_sampling:
        task.sample_weights(train_dataset.labels, train_dataset.num_outputs)


def resolved_strategy_args(cfg: RunConfig) -> dict[str, Any]:
    """``strategy.args`` with every default the strategy's constructor fills in (the settings a run was trained
    with, even after a default changes); arguments without a plain YAML value (objects) are left out."""
    import inspect

    factory = registries.STRATEGIES.get(cfg.strategy.name).factory
    out: dict[str, Any] = {}
    for name, param in inspect.signature(factory).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.default is param.empty:
            continue
        if param.default is None or isinstance(param.default, (bool, int, float, str)):
            out[name] = param.default
    out.update(cfg.strategy.args)
    return out


def build_strategy(cfg: RunConfig) -> Strategy:
    """The configured strategy, ``STRATEGIES.create(strategy.name, **strategy.args)``."""
    try:
        return registries.STRATEGIES.create(cfg.strategy.name, **cfg.strategy.args)
    except TypeError as e:
        raise ValueError(f"strategy.args {cfg.strategy.args} do not fit strategy {cfg.strategy.name!r}: {e}") from None


def build_run_model(cfg: RunConfig, dataset: MultimodalDataset, strategy: Strategy) -> MultimodalModel:
    """Encoders + fusion for ``dataset``'s schema; the fusion defaults to the strategy's choice.
    ``trainer.channels_last`` puts the model in channels_last memory format (see MultimodalModel)."""
    model = build_model(
        dataset.schema,
        dataset.num_outputs,
        fusion=cfg.model.fusion or strategy.default_fusion,
        fusion_args=cfg.model.fusion_args,
        encoders=cfg.model.encoders,
        width=cfg.model.width,
    )
    if cfg.trainer.channels_last:
        model.use_channels_last()
    return model


def restore_trained(cfg: RunConfig, run_dir: str | os.PathLike, dataset: MultimodalDataset, which: str = "best",
                    checkpoint: Any = None) -> tuple[MultimodalModel, Strategy]:
    """The run's model and strategy for ``dataset``'s schema, set up and loaded from its ``which`` checkpoint
    (``checkpoint``: an already loaded :class:`~polymodal.engine.checkpoint.Checkpoint`): the one way a
    finished run is rebuilt (evaluation, ``load_run``, the Predictor, embedders)."""
    from polymodal.engine.checkpoint import load_checkpoint, load_model_state

    paths = RunPaths(run_dir)
    ckpt = checkpoint if checkpoint is not None else load_checkpoint(paths.checkpoint(which))
    strategy = build_strategy(cfg)
    model = build_run_model(cfg, dataset, strategy)
    strategy.setup(model, dataset)
    load_model_state(model, ckpt.model, paths.model(which), paths.config)
    strategy.load_state_dict(ckpt.strategy)
    return model, strategy


def rebuild_run_model(run_dir: str | os.PathLike) -> MultimodalModel:
    """The model that ``run_dir/config.yaml`` describes, freshly initialised (its training split is read
    for the schema); for naming what does not fit when a checkpoint will not load."""
    cfg = load_config(RunPaths(run_dir).config)
    train = build_datasets(cfg, ["train"])["train"]
    return build_run_model(cfg, train, build_strategy(cfg))
