"""Small UTD-MHAD releases written in the release's exact layout and format, for the tests.

Each sequence gets three MATLAB 5 files (``scipy.io.savemat``, compressed as the release's are) with the
release's variable names, shapes and dtypes: ``d_depth`` (240, 320, frames) uint16 millimetres,
``d_skel`` (20, 3, frames) float64 metres, ``d_iner`` (rows, 6) float64. The content is a deterministic
function of (action, subject, trial): a rectangle of depth that moves with the action, a skeleton whose
right hand moves along the action's direction, an accelerometer whose mean encodes the action.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import savemat

from polymodal.data.datasets.utd_mhad.release import KINDS, SequenceId


def write_sequence(root: Path, sid: SequenceId, frames: int = 41, rows: int = 107) -> None:
    rng = np.random.default_rng([sid.action, sid.subject, sid.trial])
    depth = np.zeros((240, 320, frames), dtype=np.uint16)
    for t in range(frames):
        x = 40 + (sid.action * 7 + t) % 200
        depth[60:200, x:x + 60, t] = 2000 + 20 * sid.subject
    skel = np.zeros((20, 3, frames))
    skel[:, 2, :] = 2.8
    skel[1, 1, :] = 0.3  # shoulder centre 0.3 m above the hip centre (joint 4, at the origin)
    skel[11, 0, :] = 0.1 * sid.action * np.linspace(0, 1, frames)  # right hand
    skel += rng.normal(0, 0.001, skel.shape)
    iner = rng.normal(0, 0.05, (rows, 6))
    iner[:, 0] += sid.action / 10
    for kind, array in (("depth", depth), ("skeleton", skel), ("inertial", iner)):
        path = sid.path(root, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        savemat(path, {KINDS[kind].key: array}, do_compression=True)


def write_release(root: Path, actions=(1, 2, 3), subjects=tuple(range(1, 9)), trials=(1,), **kw) -> list[SequenceId]:
    """Write every (action, subject, trial) combination under ``root``; returns the ids written."""
    ids = [SequenceId(a, s, t) for a in actions for s in subjects for t in trials]
    for sid in ids:
        write_sequence(root, sid, **kw)
    (root / "Skeleton" / "Skeleton_joint_order.txt").write_text("1. head;\n", encoding="utf-8")
    return ids
