"""The report's part about the outputs' extras (:mod:`polymodal.tasks.outputs`): one section per group of
extras (the part of an extra's name before the first dot, ``concept`` in ``concept.audio.digit``).

A group with a writer registered in :data:`EXTRA_SECTIONS` (``@EXTRA_SECTIONS.register("concept")`` on a
function ``(extras, present) -> Markdown lines``, where ``extras`` maps the rest of each name to its (N, ...)
array) gets that section; any other group gets the generic one: each extra's shape, mean and spread. So a
new kind of extra reaches the report without any change here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from polymodal.registry import Registry
from polymodal.report.escape import md_code, md_text
from polymodal.report.table import markdown_table

ExtraSection = Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], list[str]]

EXTRA_SECTIONS: Registry[list[str]] = Registry("extra section")


def groups(extras: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """group -> {rest of the name: array}, in the order the extras come."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, value in extras.items():
        group, _, rest = key.partition(".")
        out.setdefault(group, {})[rest or group] = np.asarray(value)
    return out


def generic_section(group: str, extras: Mapping[str, np.ndarray]) -> list[str]:
    """Every extra of a group without its own writer: shape per sample, mean, standard deviation, range."""
    rows = []
    for key, value in extras.items():
        v = np.asarray(value, dtype=np.float64)
        finite = v[np.isfinite(v)]
        stats = [f"{finite.mean():.4g}", f"{finite.std():.4g}", f"{finite.min():.4g} to {finite.max():.4g}"] if finite.size else ["n/a"] * 3
        rows.append([md_text(f"{group}.{key}" if key != group else group), str(tuple(v.shape[1:]) or "()"), *stats])
    return [f"## Extras: {md_text(group)} (test)", "",
            f"Per-sample outputs of the {md_code(group)} group beside the prediction; per-sample values are in "
            f"`predictions_test.npz` ({md_code(f'extra_{group}.<name>')}).", "",
            *markdown_table(["extra", "shape per sample", "mean", "std", "range"], rows), ""]


def extras_section(pred: object) -> list[str]:
    """The Markdown lines about a predictions object's extras (none without extras)."""
    extras = getattr(pred, "extras", None) or {}
    present = getattr(pred, "present", None) or {}
    out: list[str] = []
    for group, items in groups(extras).items():
        if group in EXTRA_SECTIONS:
            out += EXTRA_SECTIONS.get(group).factory(items, present)
        else:
            out += generic_section(group, items)
    return out


__all__ = ["EXTRA_SECTIONS", "ExtraSection", "extras_section", "generic_section", "groups"]
