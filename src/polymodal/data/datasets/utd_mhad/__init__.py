"""UTD-MHAD: 861 sequences of 27 actions by 8 subjects, recorded at once by a Kinect (depth video, skeleton)
and a wearable inertial sensor. Three naturally paired modalities, cross-subject splits. docs/utd_mhad.md.

    release.py    the release layout, the checked reader of its .mat files, the action names
    features.py   the fixed-size preprocessing, cached memory-mapped once per (files, settings)
    prepare.py    ``polymodal prepare utd-mhad --raw DIR``: check a user's download and copy it into place

Modalities (in this order; any non-empty subset through ``data.options.modalities``):

    depth     video        (depth_frames, 1, H, W) float32 in [0, 1]   (default 16 x 1 x 64 x 48, person cropped)
    skeleton  timeseries   (skeleton_frames, 60)                       (default 64 x 60)
    inertial  timeseries   (inertial_rows, 6)                          (default 128 x 6)

Splits: the published protocol trains on subjects 1, 3, 5, 7 and tests on 2, 4, 6, 8. Validation is carved
from the training subjects by subject (``val_subjects``, default subject 7), so no subject is in two splits;
the model therefore trains on three subjects, not four (say so beside any comparison with published
numbers, which train on all four).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from polymodal.data.base import DATASETS, MultimodalDataset
from polymodal.data.batch import Sample
from polymodal.data.datasets.utd_mhad.features import (
    CACHE_VERSION,
    Preprocessing,
    prepared_cache,
    sequence_arrays,
)
from polymodal.data.datasets.utd_mhad.release import (
    ACTIONS,
    EXPECTED_SEQUENCES,
    INERTIAL_CHANNELS,
    JOINTS,
    TEST_SUBJECTS,
    TRAIN_SUBJECTS,
    SequenceId,
    scan,
)
from polymodal.data.missing import missing_mask
from polymodal.data.schema import Modality
from polymodal.paths import resolve_data_root

MODALITIES = ("depth", "skeleton", "inertial")
# the depth video's recommended encoder (models built without a config naming one get it): a (2+1)-D CNN whose
# stride-4 stem turns the 64 x 48 person crop into 16 x 12 patches (configs/utd_mhad.yaml; docs/utd_mhad.md)
DEPTH_ENCODER = {"name": "video_r2plus1d", "stem_stride": 4}
FOLDER = "utd_mhad"  # under the raw data folder


def release_root(root: str | None) -> Path:
    """The folder holding Depth/, Skeleton/, Inertial/: ``root`` itself if it holds them, else ``root/utd_mhad``
    (``root`` defaults to the raw data folder, ``$POLYMODAL_DATA``)."""
    base = resolve_data_root(root)
    return base if (base / "Depth").is_dir() else base / FOLDER


def split_subjects(split: str, val_subjects: Sequence[int]) -> tuple[int, ...]:
    """The subjects of a split under the cross-subject protocol with ``val_subjects`` held out of training."""
    val = tuple(int(s) for s in val_subjects)
    if not val or len(set(val)) != len(val) or not set(val) < set(TRAIN_SUBJECTS):
        raise ValueError(f"utd-mhad dataset: data.options.val_subjects={list(val_subjects)}; expected one or more of the "
                         f"training subjects {list(TRAIN_SUBJECTS)}, not all of them (the test subjects "
                         f"{list(TEST_SUBJECTS)} are never used for selection)")
    return {"train": tuple(s for s in TRAIN_SUBJECTS if s not in val), "val": val, "test": TEST_SUBJECTS}[split]


class UTDMHAD(MultimodalDataset):
    """One cross-subject split of UTD-MHAD (see the module docstring).

    root:           raw data folder (holding ``utd_mhad/``) or the release folder itself; default ``$POLYMODAL_DATA``
    modalities:     subset of depth, skeleton, inertial to serve (default all three)
    val_subjects:   training subjects held out for validation (default [7])
    depth_frames, depth_size, depth_range_mm, skeleton_frames, inertial_rows: the preprocessing (features.py)
    missing_rate:   fraction of (sample, modality) slots marked absent (every sample keeps one modality;
                    polymodal.data.missing), drawn from ``missing_seed`` and the split
    absent:         modalities absent from EVERY sample of the split (served as None: the model's own
                    missing-modality path), e.g. ["depth"] to score the skeleton + inertial pair
    cache_features: True (default) reads the memory-mapped cache (built on first use); False decodes the
                    .mat files of each sample on every access (identical values, slow)
    """

    def __init__(
        self,
        split: str = "train",
        root: str | None = None,
        modalities: Sequence[str] = MODALITIES,
        val_subjects: Sequence[int] = (7,),
        depth_frames: int = 16,
        depth_size: Sequence[int] = (64, 48),
        depth_range_mm: float = 1000.0,
        skeleton_frames: int = 64,
        inertial_rows: int = 128,
        missing_rate: float = 0.0,
        missing_seed: int = 0,
        absent: Sequence[str] = (),
        cache_features: bool = True,
    ) -> None:
        names = list(modalities)
        if not names or any(m not in MODALITIES for m in names) or len(set(names)) != len(names):
            raise ValueError(f"utd-mhad dataset: data.options.modalities={names}; expected a non-empty subset of "
                             f"{list(MODALITIES)} without repeats")
        subjects = split_subjects(split, val_subjects)
        self.settings = Preprocessing(int(depth_frames), tuple(depth_size), float(depth_range_mm),  # type: ignore[arg-type]
                                      int(skeleton_frames), int(inertial_rows))
        self.root = release_root(root)
        ids = scan(self.root)
        rows = [i for i, sid in enumerate(ids) if sid.subject in subjects]
        self.ids = [ids[i] for i in rows]
        if not self.ids:
            raise ValueError(f"utd-mhad dataset: {self.root} holds no sequence of subjects {list(subjects)} "
                             f"(the {split} split)")
        self.name, self.split, self.names = "utd-mhad", split, names
        self.labels = np.array([sid.action - 1 for sid in self.ids], dtype=np.int64)
        self.num_outputs, self.class_names = len(ACTIONS), ACTIONS
        p = self.settings
        self.schema = tuple(
            {"depth": Modality("depth", "video", (p.depth_frames, 1, *p.depth_size), representation="depth",
                               extra={"units": f"person cropped; 0.5 + (median - depth) / {p.depth_range_mm:g} mm, 0 = background",
                                      "encoder": dict(DEPTH_ENCODER)}),
             "skeleton": Modality("skeleton", "timeseries", (p.skeleton_frames, 3 * len(JOINTS)), representation="features",
                                  extra={"columns": [f"{j}_{c}" for j in JOINTS for c in "xyz"]}),
             "inertial": Modality("inertial", "timeseries", (p.inertial_rows, len(INERTIAL_CHANNELS)),
                                  representation="features", extra={"columns": list(INERTIAL_CHANNELS)})}[m]
            for m in names
        )
        gone = list(absent)
        if any(m not in names for m in gone) or len(set(gone)) >= len(names):
            raise ValueError(f"utd-mhad dataset: data.options.absent={gone}; expected served modalities ({names}), "
                             "leaving at least one present")
        rate = float(missing_rate)
        if gone and rate > 0:
            raise ValueError(f"utd-mhad dataset: data.options.absent={gone} and missing_rate={rate} cannot be combined "
                             "(a sample could lose every modality); use one of them")
        rng = np.random.default_rng([int(missing_seed), ("train", "val", "test").index(split)])
        self.present = missing_mask(len(self.ids), len(names), rate, rng)
        self.present[:, [names.index(m) for m in gone]] = False
        self.realised_missing_rate = float(1.0 - self.present.mean())
        self.arrays: dict[str, np.ndarray] | None = None
        provenance: dict = {"dataset": "utd-mhad", "source": "UTD-MHAD (Chen, Jafari, Kehtarnavaz, ICIP 2015)",
                            "root": str(self.root), "split": split, "subjects": list(subjects),
                            "val_subjects": list(split_subjects("val", val_subjects)), "size": len(self.ids),
                            "release_sequences": len(ids), "settings": {**p.__dict__, "depth_size": list(p.depth_size)},
                            "modalities": names, "cache_version": CACHE_VERSION, "missing_rate": rate,
                            "missing_seed": int(missing_seed), "absent": gone,
                            "realised_missing_rate": self.realised_missing_rate}
        if cache_features:
            cache = prepared_cache(self.root, p)
            self.arrays = cache.arrays()
            self.rows = np.asarray(rows, dtype=np.int64)
            provenance.update(cache=str(cache.path), arrays_sha256=cache.index["arrays_sha256"])
        if len(ids) != EXPECTED_SEQUENCES:
            provenance["note"] = f"{len(ids)} sequences, not the release's {EXPECTED_SEQUENCES}"
        self.provenance = provenance

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Sample:
        i = range(len(self))[i]  # IndexError out of range; negative indices normalised
        if self.arrays is not None:
            row = int(self.rows[i])
            values = {m: np.asarray(self.arrays[m][row]) for m in self.names}
        else:
            values, _ = sequence_arrays(self.root, self.ids[i], self.settings)
        inputs = {m: torch.from_numpy(np.array(values[m], dtype=np.float32)) if self.present[i, j] else None
                  for j, m in enumerate(self.names)}
        return {"inputs": inputs, "label": int(self.labels[i]), "index": int(i)}

    def sequence(self, i: int) -> SequenceId:
        """The action, subject and trial of sample i."""
        return self.ids[i]


@DATASETS.register("utd-mhad", tiny={})
def utd_mhad(split: str = "train", **options: object) -> UTDMHAD:
    """UTD-MHAD: depth video, skeleton and wrist / thigh inertial sensor of 27 actions, cross-subject splits."""
    return UTDMHAD(split=split, **options)  # type: ignore[arg-type]


utd_mhad.__signature__ = inspect.signature(UTDMHAD)  # type: ignore[attr-defined]

from polymodal.data.datasets.utd_mhad import prepare as _prepare  # noqa: E402,F401  (registers the preparer)

__all__ = ["ACTIONS", "MODALITIES", "UTDMHAD", "release_root", "split_subjects"]
