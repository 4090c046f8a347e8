"""The report's concept section: what each modality's concept head predicted on the test rows (the
``concept`` extras of a concept fusion, :data:`polymodal.reasoning.fusion.CONCEPT_EXTRA`)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from polymodal.report.escape import md_text
from polymodal.report.extras import EXTRA_SECTIONS
from polymodal.report.table import markdown_table


@EXTRA_SECTIONS.register("concept")
def concept_section(concepts: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray]) -> list[str]:
    """Predicted concepts: per concept, the rows where its modality is present, the mean confidence of the
    predicted value, the share of rows below 0.5, and the most frequent predicted values."""
    rows = []
    for key, p in concepts.items():
        p = np.asarray(p, dtype=np.float64)
        here = np.asarray(present.get(key.split(".", 1)[0], np.ones(len(p), dtype=bool)), dtype=bool)
        if not here.any():
            rows.append([md_text(key), "0", "n/a", "n/a", "-"])
            continue
        conf, value = p[here].max(axis=1), p[here].argmax(axis=1)
        counts = np.bincount(value, minlength=p.shape[1])
        top = ", ".join(f"{v} ({100 * counts[v] / here.sum():.0f} %)" for v in np.argsort(-counts, kind="stable")[:3])
        rows.append([md_text(key), str(int(here.sum())), f"{conf.mean():.3f}", f"{100 * np.mean(conf < 0.5):.1f} %", top])
    return ["## Concepts (test)", "",
            "What each modality's concept head predicts on the test rows where the modality is present; "
            "per-sample concept probabilities are in `predictions_test.npz` (`extra_concept.<key>`).", "",
            *markdown_table(["concept", "rows", "mean confidence", "confidence < 0.5", "most predicted values"], rows), ""]


__all__ = ["concept_section"]
