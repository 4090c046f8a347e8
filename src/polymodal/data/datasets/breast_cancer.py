"""The breast-cancer survival data set as two tabular modalities: 76 gene expressions and 4 clinical variables
of 198 patients with time to distant metastasis (51 observed, 147 censored), as scikit-survival ships it
(``sksurv.datasets.load_breast_cancer``: GEO GSE7390, Desmedt et al., Clin Cancer Res 2007). docs/survival.md.

scikit-survival is GPL-3 and an optional extra (``pip install 'polymodal[survival]'``): only this module
imports it, to read the table it ships (no download). The split is seeded (``split_seed``) and stratified by
the event indicator; every feature is standardised with the TRAINING split's mean and standard deviation:

- ``genes`` (76): the expression values, each standardised;
- ``clinical`` (6): age and tumour size (standardised), oestrogen receptor (1 positive, 0 negative), tumour
  grade one-hot (well, intermediate, poorly differentiated; the 2 patients of unknown grade have zeros).

Targets are ``(time, event)``: days to distant metastasis or censoring, and 1 when metastasis was observed.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from polymodal.data.base import DATASETS, MultimodalDataset
from polymodal.data.batch import Sample
from polymodal.data.schema import Modality
from polymodal.data.splits import assign_splits
from polymodal.tasks import get_task

MODALITIES = ("genes", "clinical")
GRADES = ("well differentiated", "intermediate", "poorly differentiated")
CLINICAL = ("age", "size", "er_positive", *(f"grade_{g.split()[0]}" for g in GRADES))
EXTRA = "survival"


def missing_extra_message(what: str) -> str:
    return (f"{what} needs scikit-survival, the optional extra {EXTRA!r}: pip install 'polymodal[{EXTRA}]' "
            "(scikit-survival is GPL-3, so polymodal does not install it by default)")


@lru_cache(maxsize=1)
def load_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...], str, str]:
    """(genes (198, 76), clinical (198, 6) unstandardised, targets (198, 2), gene names, sha256 of the arrays,
    scikit-survival's version); an ImportError names the extra to install."""
    try:
        import sksurv
        from sksurv.datasets import load_breast_cancer
    except ImportError as e:
        raise ImportError(missing_extra_message("the breast-cancer dataset")) from e
    x, y = load_breast_cancer()
    genes_cols = [c for c in x.columns if c not in ("age", "er", "grade", "size")]
    genes = x[genes_cols].to_numpy(np.float64)
    er = x["er"].astype(str).to_numpy()
    grade = x["grade"].astype(str).to_numpy()
    unknown = sorted(set(er) - {"positive", "negative"}) + sorted(set(grade) - {*GRADES, "unkown", "unknown"})
    if unknown:
        raise ValueError(f"breast-cancer dataset: unexpected er / grade values {unknown} in scikit-survival "
                         f"{sksurv.__version__}'s table")
    clinical = np.column_stack([
        x["age"].to_numpy(np.float64), x["size"].to_numpy(np.float64), (er == "positive").astype(np.float64),
        *[(grade == g).astype(np.float64) for g in GRADES],
    ])
    targets = np.column_stack([np.asarray(y["t.tdm"], dtype=np.float64), np.asarray(y["e.tdm"], dtype=np.float64)])
    digest = hashlib.sha256()
    for a in (genes, clinical, targets):
        digest.update(np.ascontiguousarray(a).tobytes())
    return genes, clinical, targets, tuple(genes_cols), digest.hexdigest(), str(sksurv.__version__)


class BreastCancer(MultimodalDataset):
    """One split of the breast-cancer survival data (see the module docstring).

    split_seed: seed of the stratified train / val / test split
    val, test:  fractions of the 198 patients in the validation and test splits
    modalities: the modalities to serve (a subset of ``genes``, ``clinical``; default both)
    """

    def __init__(
        self,
        split: str = "train",
        split_seed: int = 0,
        val: float = 0.2,
        test: float = 0.2,
        modalities: Sequence[str] = MODALITIES,
        root: str | None = None,  # passed to every dataset by the engine; the table ships with scikit-survival
        cache_features: bool = True,
    ) -> None:
        names = list(modalities)
        if not names or any(m not in MODALITIES for m in names) or len(set(names)) != len(names):
            raise ValueError(f"breast-cancer dataset: data.options.modalities={names}; expected a non-empty subset "
                             f"of {list(MODALITIES)} without repeats")
        genes, clinical, targets, gene_names, digest, version = load_table()
        task = get_task("survival")
        assignment = assign_splits(targets, task="survival", val=val, test=test, seed=split_seed).split
        train = assignment == "train"
        rows = np.flatnonzero(assignment == split)
        standardise = [0, 1]  # age and size; the indicator columns stay 0 / 1
        clin = clinical.copy()
        mean, std = clin[train][:, standardise].mean(0), clin[train][:, standardise].std(0)
        clin[:, standardise] = (clin[:, standardise] - mean) / std
        g_mean, g_std = genes[train].mean(0), genes[train].std(0)
        features = {"genes": (genes - g_mean) / np.where(g_std > 0, g_std, 1.0), "clinical": clin}
        self.name, self.split, self.task = "breast-cancer", split, task.name
        self.x = {m: torch.from_numpy(features[m][rows].astype(np.float32)) for m in names}
        self.labels = task.read_targets(targets[rows])
        self.schema = tuple(Modality(m, "tabular", (features[m].shape[1],), representation="features") for m in names)
        self.num_outputs = 1
        self.class_names = ()
        self.feature_names = {"genes": gene_names, "clinical": CLINICAL}
        self.provenance = {
            "dataset": "breast-cancer",
            "source": "scikit-survival load_breast_cancer (GEO GSE7390, Desmedt et al. 2007)",
            "scikit_survival": version,
            "sha256": digest,
            "split_seed": split_seed,
            "fractions": {"val": val, "test": test},
            "size": len(rows),
            "events": int(self.labels[:, 1].sum()),
            "modalities": names,
        }

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Sample:
        return {"inputs": {m: x[i] for m, x in self.x.items()},
                "label": [float(v) for v in self.labels[i]], "index": int(i)}


@DATASETS.register("breast-cancer", tiny={})
def breast_cancer(split: str = "train", **options: object) -> BreastCancer:
    """Breast-cancer survival: 76 gene expressions + 4 clinical variables, time to metastasis (needs the survival extra)."""
    return BreastCancer(split=split, **options)  # type: ignore[arg-type]


breast_cancer.__signature__ = inspect.signature(BreastCancer)  # type: ignore[attr-defined]

__all__ = ["BreastCancer", "load_table", "missing_extra_message"]
