"""The UTD-MHAD release layout: which files exist, what they must hold, and the 27 action names.

The release (Chen, Jafari, Kehtarnavaz, ICIP 2015) keeps one MATLAB 5 file per sequence and sensor::

    Depth/a{action}_s{subject}_t{trial}_depth.mat        d_depth  (240, 320, frames) uint16, millimetres
    Skeleton/a{action}_s{subject}_t{trial}_skeleton.mat  d_skel   (20, 3, frames) float64, metres
    Inertial/a{action}_s{subject}_t{trial}_inertial.mat  d_iner   (rows, 6) float64: accelerometer x, y, z (g),
                                                                  gyroscope x, y, z (degrees / s)

and, in the authors' full download, ``RGB/a{action}_s{subject}_t{trial}_color.avi`` videos, which polymodal
accepts and ignores. 27 actions x 8 subjects x 4 trials, less three sequences the release lacks: 861.
The inertial sensor is worn on the right wrist for actions 1-21 and on the right thigh for 22-27.
docs/utd_mhad.md.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ACTIONS: tuple[str, ...] = (
    "right arm swipe to the left",
    "right arm swipe to the right",
    "right hand wave",
    "two hand front clap",
    "right arm throw",
    "cross arms in the chest",
    "basketball shoot",
    "right hand draw x",
    "right hand draw circle (clockwise)",
    "right hand draw circle (counter clockwise)",
    "draw triangle",
    "bowling (right hand)",
    "front boxing",
    "baseball swing from right",
    "tennis right hand forehand swing",
    "arm curl (two arms)",
    "tennis serve",
    "two hand push",
    "right hand knock on door",
    "right hand catch an object",
    "right hand pick up and throw",
    "jogging in place",
    "walking in place",
    "sit to stand",
    "stand to sit",
    "forward lunge (left foot forward)",
    "squat (two arms stretch out)",
)
SUBJECTS: tuple[int, ...] = tuple(range(1, 9))
TRAIN_SUBJECTS: tuple[int, ...] = (1, 3, 5, 7)  # the published cross-subject protocol
TEST_SUBJECTS: tuple[int, ...] = (2, 4, 6, 8)
JOINTS: tuple[str, ...] = (
    "head", "shoulder_center", "spine", "hip_center", "left_shoulder", "left_elbow", "left_wrist", "left_hand",
    "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip", "left_knee", "left_ankle", "left_foot",
    "right_hip", "right_knee", "right_ankle", "right_foot",
)
INERTIAL_CHANNELS: tuple[str, ...] = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
DEPTH_SIZE = (240, 320)
EXPECTED_SEQUENCES = 861


@dataclass(frozen=True)
class Kind:
    """One sensor's folder of the release."""

    folder: str
    suffix: str
    key: str  # the variable inside the .mat file


KINDS: dict[str, Kind] = {
    "depth": Kind("Depth", "depth", "d_depth"),
    "skeleton": Kind("Skeleton", "skeleton", "d_skel"),
    "inertial": Kind("Inertial", "inertial", "d_iner"),
}
IGNORED_FOLDERS = ("RGB",)  # the colour videos of the full download: accepted, not used
ALLOWED_EXTRA_FILES = {"Skeleton_joint_order.txt", "SHA256SUMS", "README.md", "README.txt"}
NAME = re.compile(r"^a(\d+)_s(\d+)_t(\d+)_([a-z]+)\.mat$")


@dataclass(frozen=True, order=True)
class SequenceId:
    action: int  # 1-27
    subject: int  # 1-8
    trial: int  # 1-4

    @property
    def stem(self) -> str:
        return f"a{self.action}_s{self.subject}_t{self.trial}"

    def path(self, root: Path, kind: str) -> Path:
        k = KINDS[kind]
        return root / k.folder / f"{self.stem}_{k.suffix}.mat"


def parse_name(path: Path, kind: str) -> SequenceId:
    """The sequence a release file belongs to; a ValueError names the file and the expected pattern."""
    m = NAME.match(path.name)
    suffix = KINDS[kind].suffix
    if m is None or m.group(4) != suffix:
        raise ValueError(f"UTD-MHAD: unexpected file {path}: files in {KINDS[kind].folder}/ must be named "
                         f"a{{action}}_s{{subject}}_t{{trial}}_{suffix}.mat (move other files out of the folder)")
    sid = SequenceId(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    if not (1 <= sid.action <= len(ACTIONS) and sid.subject in SUBJECTS and 1 <= sid.trial <= 4):
        raise ValueError(f"UTD-MHAD: {path}: action {sid.action}, subject {sid.subject}, trial {sid.trial} is outside "
                         f"the release (actions 1-{len(ACTIONS)}, subjects 1-8, trials 1-4)")
    return sid


def scan(root: Path) -> list[SequenceId]:
    """Every sequence of a release folder, sorted; a ValueError names the files that are odd or unpaired."""
    missing = [KINDS[k].folder for k in KINDS if not (root / KINDS[k].folder).is_dir()]
    if missing:
        raise FileNotFoundError(f"UTD-MHAD: {root} lacks the folder(s) {missing}; expected Depth/, Skeleton/ and "
                                "Inertial/ of the release (run `polymodal prepare utd-mhad --raw DIR` on the "
                                "authors' download, or set the config key data.root to the folder holding them)")
    found: dict[str, set[SequenceId]] = {}
    for kind, k in KINDS.items():
        ids: set[SequenceId] = set()
        for path in sorted((root / k.folder).iterdir()):
            if path.name in ALLOWED_EXTRA_FILES or path.name.startswith("."):
                continue
            ids.add(parse_name(path, kind))
        found[kind] = ids
    every = set().union(*found.values())
    unpaired = {kind: sorted(every - ids) for kind, ids in found.items() if every - ids}
    if unpaired:
        lines = "; ".join(f"{len(v)} without a {KINDS[k].folder} file (e.g. {v[0].path(root, k)})" for k, v in unpaired.items())
        raise ValueError(f"UTD-MHAD: {root}: every sequence needs all three files: {lines}. Restore the missing "
                         "files from the release, or remove the sequence's other files")
    if not every:
        raise ValueError(f"UTD-MHAD: {root}: Depth/, Skeleton/ and Inertial/ hold no a*_s*_t*_*.mat file")
    return sorted(every)


def read(path: Path, kind: str, data: bytes | None = None) -> np.ndarray:
    """The array of one release file, checked: the variable, its dimensions, its dtype and finite values.

    data: the file's bytes when already read (``path`` then only names the file in messages)."""
    from scipy.io import loadmat  # scipy ships with scikit-learn, a core dependency

    k = KINDS[kind]
    try:
        content = loadmat(io.BytesIO(data) if data is not None else path)
    except Exception as e:  # scipy raises several types on a damaged file
        raise ValueError(f"UTD-MHAD: cannot read {path} as a MATLAB 5 file ({type(e).__name__}: {e}); "
                         "replace it with the release's file") from e
    if k.key not in content:
        keys = sorted(x for x in content if not x.startswith("__"))
        raise ValueError(f"UTD-MHAD: {path} holds {keys}, not the variable {k.key!r} of a {kind} file")
    a = np.asarray(content[k.key])
    expected = {"depth": "(240, 320, frames) integers", "skeleton": "(20, 3, frames)", "inertial": "(rows, 6)"}[kind]
    ok = {
        "depth": a.ndim == 3 and a.shape[:2] == DEPTH_SIZE and np.issubdtype(a.dtype, np.integer),
        "skeleton": a.ndim == 3 and a.shape[:2] == (len(JOINTS), 3),
        "inertial": a.ndim == 2 and a.shape[1] == len(INERTIAL_CHANNELS),
    }[kind]
    length = a.shape[-1] if kind != "inertial" else (a.shape[0] if a.ndim == 2 else 0)
    if not ok or length < 2:
        raise ValueError(f"UTD-MHAD: {path}: {k.key} has shape {a.shape} and dtype {a.dtype}; expected {expected} "
                         "with at least 2 frames / rows")
    if kind != "depth" and not np.isfinite(a).all():
        raise ValueError(f"UTD-MHAD: {path}: {k.key} holds NaN or infinite values")
    return a


__all__ = [
    "ACTIONS", "DEPTH_SIZE", "EXPECTED_SEQUENCES", "INERTIAL_CHANNELS", "JOINTS", "KINDS", "SUBJECTS",
    "TEST_SUBJECTS", "TRAIN_SUBJECTS", "Kind", "SequenceId", "parse_name", "read", "scan",
]
