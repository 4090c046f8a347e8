"""Train, evaluate and use a multimodal model on your own table in a few lines.

    import polymodal
    predictor = polymodal.Predictor(label="diagnosis").fit(train_df, strategy="mla")
    predictor.evaluate(test_df)          # fused and per-modality metrics
    predictor.predict(new_df)            # a data frame: prediction, class probabilities, modalities present
    predictor.save("models/diagnosis"); polymodal.Predictor.load("models/diagnosis")

A predictor is a run folder (``config.yaml``, checkpoints, ``data_state.json``, report): ``load`` reads
any run trained on a manifest, including one trained with ``polymodal train data.manifest=...``. The
table is a CSV / Parquet / JSON Lines path or a pandas DataFrame; file paths in it resolve against
``root`` (default: the table's folder, or the working directory for a data frame). The training table is
split into train / val / test as :mod:`polymodal.data.datasets.manifest` describes; the model is
selected on val and ``fit`` reports its test metrics (:attr:`Predictor.test_metrics`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.runpaths import RunPaths
from polymodal.tasks import get_task


class Predictor:
    """A multimodal classifier or regressor for a table of samples (see the module docstring).

    label:   the label column (a list of columns for a task that needs several: survival's ``["time", "event"]``)
    path:    run folder to train into (default: ``runs/predictor-<label>-<time>``)
    root:    folder that relative file paths resolve against
    schema:  column -> kind overrides (or a YAML file of them)
    options: further manifest options (``splits={"group": "patient"}``, ``image={"size": [64, 64]}``,
             ``bad_files="skip"``, ``task="regression"``, ...)
    """

    def __init__(self, label: str | Sequence[str] | None = None, *, path: str | os.PathLike | None = None,
                 root: str | os.PathLike | None = None, schema: Mapping[str, str] | str | None = None,
                 **options: Any) -> None:
        self.label = label
        self.path = Path(path) if path is not None else None
        self.root = root
        self.schema = schema
        self.options = options
        self.run_dir: Path | None = None
        self.test_metrics: dict[str, Any] = {}
        self._state: dict[str, Any] | None = None
        self._model = None

    # ---- training

    def fit(self, data: Any, *, strategy: str = "mla", strategy_args: Mapping[str, Any] | None = None,
            seed: int = 0, max_epochs: int | None = None, config: str | os.PathLike | None = None,
            overrides: Sequence[str] = ()) -> Predictor:
        """Train on ``data`` (table path or DataFrame); the run's settings start from ``config`` (a YAML
        run config; default: the package defaults) and ``overrides`` (``key=value`` items)."""
        import pandas as pd
        import yaml

        from polymodal.config import dump_config, load_config, validate_config
        from polymodal.engine import train
        from polymodal.engine.runfolder import run_folder

        if self.label is None:
            raise ValueError("Predictor(label=...) names the label column; it is needed to fit")
        run_dir = self.path or Path("runs") / f"predictor-{_slug(self.label)}-{time.strftime('%Y%m%d-%H%M%S')}"
        schema = None
        if self.schema is not None:  # a bad schema file is named before any folder is made
            from polymodal.data.datasets.manifest import _schema_mapping

            schema = _schema_mapping(self.schema)
        with run_folder(run_dir):  # one writer; a failed start leaves no folder behind
            if RunPaths(run_dir).results.exists():
                raise FileExistsError(f"{run_dir} already holds a trained run; choose another path (Predictor(path=...))")
            options = dict(self.options)
            if isinstance(data, pd.DataFrame):
                table = RunPaths(run_dir).train_table
                data.to_parquet(table, index=False)
                root = Path(self.root) if self.root is not None else Path.cwd()
            else:
                table = Path(data).expanduser().resolve()
                root = Path(self.root) if self.root is not None else (table if table.is_dir() else table.parent)
            if schema is not None:
                options["schema"] = schema
            tree = yaml.safe_load(dump_config(load_config(config, list(overrides))))
            tree["name"], tree["out_dir"], tree["seed"] = run_dir.name, str(run_dir.parent), seed
            tree["data"].update({"dataset": "manifest", "manifest": str(table.resolve()), "label": self.label,
                                 "root": str(root.expanduser().resolve()),
                                 "options": {**tree["data"].get("options", {}), **options}})
            tree["strategy"] = {"name": strategy, "args": dict(strategy_args or {})}
            if max_epochs is not None:
                tree["trainer"]["max_epochs"] = max_epochs
            cfg = validate_config(tree, "Predictor.fit")
            result = train(cfg)
        self.run_dir = Path(result.run_dir)
        self.test_metrics = dict(result.metrics)
        self._state = None
        self._model = None
        return self

    def cross_validate(self, data: Any, *, folds: int = 5, strategy: str = "mla", **fit_args: Any) -> dict[str, Any]:
        """k-fold cross-validation: one run per fold under ``path/fold<i>`` (the test rows are held out
        once and shared by all folds; fold i is the validation split of run i). Returns the per-fold val
        and test metrics of each run (as in results.json) and their mean and sample std over folds.
        The predictor itself stays untrained."""
        if folds < 2:
            raise ValueError(f"cross_validate: folds={folds}; need at least 2")
        base = self.path or Path("runs") / f"predictor-{_slug(self.label or 'label')}-cv-{time.strftime('%Y%m%d-%H%M%S')}"
        per_fold = []
        for i in range(folds):
            splits = {**dict(self.options.get("splits") or {}), "folds": folds, "fold": i}
            p = Predictor(self.label, path=base / f"fold{i}", root=self.root, schema=self.schema,
                          **{**self.options, "splits": splits}).fit(data, strategy=strategy, **fit_args)
            results = _read_results(p._require_run()) or {}
            per_fold.append({"run_dir": str(p.run_dir), "val": results["val"], "test": results["test"]})
        summary: dict[str, Any] = {}
        for part in ("val", "test"):
            keys = [k for k, v in per_fold[0][part].items() if isinstance(v, int | float) and k != "n"]
            summary[part] = {}
            for k in keys:
                vals = [f[part][k] for f in per_fold if f[part].get(k) is not None]
                if vals:
                    summary[part][k] = {"mean": float(np.mean(vals)),
                                        "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, "values": vals}
        return {"folds": per_fold, **summary}

    # ---- loading

    @classmethod
    def load(cls, path: str | os.PathLike) -> Predictor:
        """A predictor from a run folder trained on a manifest (``Predictor.save`` or ``polymodal train``)."""
        run = Path(path)
        paths = RunPaths(run)
        for f in (paths.config, paths.data_state):
            if not f.is_file():
                raise FileNotFoundError(
                    f"{f} does not exist; {run} is not a run trained on a manifest (train one with "
                    "Predictor.fit or `polymodal train data.manifest=... data.label=...`)"
                )
        from polymodal.engine.runfolder import read_data_state

        state = read_data_state(paths.data_state)  # a damaged file is named, not a KeyError
        p = cls(label=state["label"])
        p.run_dir = run
        p._state = state
        p._load_model()  # the weights are read (and checked: readable, finite) now, not at the first predict
        results = _read_results(run)
        if results is not None:
            p.test_metrics = dict(results.get("test") or {})
        return p

    def save(self, path: str | os.PathLike) -> Path:
        """Copy the run folder to ``path`` (a new folder) and return it; ``Predictor.load(path)`` reads it."""
        src = self._require_run()
        dst = Path(path)
        if dst.resolve() == src.resolve():
            return dst
        if dst.exists():
            raise FileExistsError(f"{dst} exists; save into a new folder")
        shutil.copytree(src, dst)
        return dst

    def _require_run(self) -> Path:
        if self.run_dir is None:
            raise RuntimeError("this predictor is not trained: call fit() or Predictor.load(path) first")
        return self.run_dir

    @property
    def state(self) -> dict[str, Any]:
        if self._state is None:
            self._state = json.loads(RunPaths(self._require_run()).data_state.read_text())
        return self._state

    @property
    def task(self) -> str:
        return self.state["task"]

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.state["class_names"])

    @property
    def modalities(self) -> list[str]:
        return [m["name"] for m in self.state["modalities"]]

    # ---- inference

    def _manifest(self, data: Any, root: str | os.PathLike | None, bad_files: str | None = None):
        from polymodal.data.datasets.manifest import Manifest

        options = dict(self.state["options"])
        options.pop("splits", None)
        if bad_files is not None:
            options["bad_files"] = bad_files
        import pandas as pd

        if root is not None:
            options["root"] = str(root)
        elif isinstance(data, pd.DataFrame):
            options["root"] = options.get("root") or str(Path.cwd())
        else:
            options["root"] = str(Path(data).expanduser().resolve().parent)
        return Manifest(data, options, state=self.state)

    def _load_model(self):
        """(config, best checkpoint) of the run, read once."""
        if self._model is None:
            from polymodal.config import load_config
            from polymodal.engine.checkpoint import checkpoint_dir, load_checkpoint

            run = self._require_run()
            self._model = (load_config(RunPaths(run).config), load_checkpoint(checkpoint_dir(run)))
        return self._model

    def _outputs(self, data: Any, root: str | os.PathLike | None, bad_files: str | None = None):
        import torch
        from lightning_fabric import Fabric

        from polymodal.engine.build import restore_trained
        from polymodal.engine.data import make_loader
        from polymodal.engine.evaluate import collect_outputs

        cfg, ckpt = self._load_model()
        manifest = self._manifest(data, root, bad_files)
        ds = manifest.dataset("predict")
        if len(ds) == 0:  # every row without input: nothing for the model to do
            return None, ds, manifest
        model, strategy = restore_trained(cfg, self._require_run(), ds, "best", ckpt)
        fabric = Fabric(accelerator="cpu", devices=1)
        model = fabric.setup_module(model)
        loader = fabric.setup_dataloaders(
            make_loader(ds, batch_size=cfg.data.eval_batch_size, seed=cfg.seed, shuffle=False, num_workers=0),
            use_distributed_sampler=False,
        )
        with torch.no_grad():
            out = collect_outputs(fabric, model, strategy, loader, ds.schema, task=ds.task)
        out.fitted = self._fitted()
        return out, ds, manifest

    def _fitted(self) -> Any:
        """What the task fitted after training (a threshold chosen on validation, ...), kept in the run folder."""
        from polymodal.tasks import read_task_state

        return read_task_state(get_task(self.task), RunPaths(self._require_run()).task_state)

    def predict(self, data: Any, *, root: str | os.PathLike | None = None, bad_files: str | None = None):
        """A data frame with one row per input row: ``id``, ``prediction`` (class name or value), for
        classification ``prob_<class>`` per class, ``present_<modality>`` (whether the row had it),
        ``no_input`` (the row had no modality at all: its prediction is empty and its probabilities NaN) and
        ``stored_split``: for a row of the run's own training table (same input cells) the split it had in
        training (train / val / test), else "" (a row the model never saw).

        bad_files: what to do with a missing or unreadable file, an odd cell or a cell that is not a number
        ("error", "skip": predict the row without it, "drop": leave the row out); default: the setting the
        predictor was trained with."""
        import pandas as pd

        out, ds, manifest = self._outputs(data, root, bad_files)
        rows, at, order = _placement(out, ds, manifest)
        frame: dict[str, Any] = {"id": manifest.row_ids(rows)}
        task = get_task(self.task)
        columns = task.prediction_columns(_sorted(out, order) if out is not None else _no_outputs(ds), self.class_names)
        for key, values in columns.items():
            frame[key] = _placed(values, at, len(rows))
        for m in self.modalities:
            present = np.zeros(len(rows), dtype=bool)
            if out is not None:
                present[at] = out.present[m][order]
            frame[f"present_{m}"] = present
        frame["no_input"] = manifest.no_input[rows]
        stored = self._stored_splits(manifest)
        if stored is not None:
            frame["stored_split"] = [stored[r] for r in rows]
        return pd.DataFrame(frame)

    def embed(self, data: Any, *, root: str | os.PathLike | None = None, bad_files: str | None = None) -> dict[str, np.ndarray]:
        """Each modality's (N, D) float32 embeddings, rows in table order (NaN where the row lacks the
        modality), for a predictor trained with ``task="contrastive"`` and ``strategy="contrastive"``: the
        vectors to search with (cosine = dot product, they are unit length) or to give to a FAISS index."""
        task = get_task(self.task)
        task.embeddings(None, self.modalities)  # a task without embeddings says so before any row is read
        out, ds, manifest = self._outputs(data, root, bad_files)
        rows, at, order = _placement(out, ds, manifest)
        placed = task.embeddings(_sorted(out, order) if out is not None else _no_outputs(ds), self.modalities)
        result = {}
        for m, e in placed.items():
            full = np.full((len(rows), e.shape[1]), np.nan, dtype=np.float32)
            full[at] = e
            result[m] = full
        return result

    def _stored_splits(self, manifest) -> list[str] | None:
        """The split each row of ``manifest`` had in training (matched by its input cells; "" for a row the
        run never saw), or None when the run stored no splits with input hashes."""
        from polymodal.data.datasets.run_splits import read_splits_csv, stored_splits_of

        path = RunPaths(self._require_run()).splits
        if not path.is_file():
            return None
        stored = read_splits_csv(path)
        if not stored or not all(s.inputs for s in stored):
            return None
        return stored_splits_of(stored, manifest.input_keys, also=manifest.text_input_keys)

    def predict_proba(self, data: Any, *, root: str | os.PathLike | None = None) -> np.ndarray:
        """(N, classes) class probabilities, rows in table order (a task whose predictions have ``prob_<class>``
        columns: classification, multilabel)."""
        df = self.predict(data, root=root)
        columns = [f"prob_{c}" for c in self.class_names]
        if not columns or any(c not in df for c in columns):
            try:
                get_task(self.task).embeddings(None, [])
                how = "embed"
            except ValueError:
                how = "predict"
            raise ValueError(f"predict_proba is for classification (a task that predicts class probabilities, "
                             f"prob_<class>); this predictor's task is {self.task} (use {how})")
        return df[columns].to_numpy()

    def evaluate(self, data: Any = None, *, root: str | os.PathLike | None = None, bad_files: str | None = None,
                 split: str | None = None, allow_changed_table: bool = False) -> dict[str, Any]:
        """Fused and per-modality metrics (as in a run's results.json).

        data:  a table: every labelled row of it is scored (new data, unseen in training).
               None: the run's own table, on the split each row had in training (``split``, default
               "test"); rows are matched to the stored splits by id or by content, and a table whose rows
               changed since is an error unless ``allow_changed_table`` (then only the rows whose stored
               split is known are scored)."""
        from polymodal.engine.evaluate import compute_metrics

        if data is None:
            return self._evaluate_own_table(split or "test", allow_changed_table)
        if split is not None or allow_changed_table:
            raise ValueError("split= and allow_changed_table= score the run's own table: call evaluate() without data")
        out, ds, manifest = self._outputs(data, root, bad_files)
        keep = ds.has_label[out.index] if out is not None else np.zeros(0, dtype=bool)
        if not keep.any():
            raise ValueError(f"no row of {manifest.source} has a known label in column {self.label!r} and an input; "
                             "nothing to score")
        sub = out.rows(keep)
        stored = self._stored_splits(manifest)
        if stored is not None:
            seen = Counter(stored[r] for r in ds.rows[out.index[keep]] if stored[r] in ("train", "val"))
            if seen:
                warnings.warn(
                    f"{sum(seen.values())} of the {int(keep.sum())} rows scored in {manifest.source} were used to train or "
                    f"select this model ({', '.join(f'{n} {s}' for s, n in sorted(seen.items()))} rows of its stored split, "
                    "matched by their input cells): these metrics are optimistic. evaluate() without data scores the "
                    "run's own test rows", stacklevel=2)
        return compute_metrics(sub, self.modalities)

    def _evaluate_own_table(self, split: str, allow_changed_table: bool) -> dict[str, Any]:
        from polymodal.config import load_config
        from polymodal.data.datasets.run_splits import run_splits
        from polymodal.engine.evaluate import _outputs_for, compute_metrics

        if split not in ("train", "val", "test"):
            raise ValueError(f"split={split!r}; expected train, val or test")
        run = self._require_run()
        with run_splits(run, allow_changed_table=allow_changed_table):
            out, ds = _outputs_for(load_config(RunPaths(run).config), run, split, "best", "cpu")
        return compute_metrics(out, [m.name for m in ds.schema])


def _placement(out: Any, ds: Any, manifest: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, at, order): the table rows of the output (every predicted row and every row without input, in
    table order), where each predicted row goes among them, and the order that sorts the model's outputs
    by dataset position."""
    rows = np.sort(np.concatenate([ds.rows, np.flatnonzero(manifest.no_input)]))
    at = np.searchsorted(rows, ds.rows)
    order = np.argsort(out.index) if out is not None else np.zeros(0, dtype=np.int64)
    return rows, at, order


def _sorted(out: Any, order: np.ndarray) -> Any:
    """The outputs of the predicted rows in dataset order."""
    return out.rows(order)


def _no_outputs(ds: Any) -> Any:
    """Outputs of no row (every row of the table lacks an input): the task's columns stay empty."""
    from polymodal.tasks import EvalOutputs

    return EvalOutputs(index=np.zeros(0, dtype=np.int64), label=np.zeros(0), logits=np.zeros((0, ds.num_outputs), np.float32),
                       per_modality={}, present={m: np.zeros(0, dtype=bool) for m in ds.modalities}, task=ds.task)


def _placed(values: np.ndarray, at: np.ndarray, n: int) -> list[Any] | np.ndarray:
    """A column of the predicted rows placed at ``at`` among ``n`` rows: NaN (numbers), "" (names) or None
    (anything else) on the other rows."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        full = np.full(n, np.nan)
    elif values.dtype.kind == "b":
        full = np.zeros(n, dtype=bool)
    elif values.dtype.kind in "US":
        full = np.full(n, "", dtype=object)
    else:
        full = np.full(n, None, dtype=object)
    full[at] = values
    return list(full) if full.dtype == object else full


def _read_results(run_dir: Path) -> dict[str, Any] | None:
    """The run's results.json through the engine's reader (None when the run has none)."""
    from polymodal.engine.results import read_results

    return read_results(run_dir)


def _slug(s: str | Sequence[str]) -> str:
    s = s if isinstance(s, str) else "-".join(s)  # a label of several columns (survival: time, event)
    return "".join(c if c.isalnum() else "-" for c in s).strip("-") or "label"
