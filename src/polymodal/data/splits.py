"""Seeded train/val/test splits: stratified by label, grouped (a patient, speaker or session stays in one
split), and k-fold cross-validation over the non-test rows.

Stratification uses the task's strata (:meth:`polymodal.tasks.Task.strata`): the class for classification
and five quantile bins of the target for regression.
A class with a single row cannot be stratified: it stays on the training side and the other classes are
stratified as usual (``SplitResult.notes`` names it). A split given for some rows is kept; a split that
is not given at all (a table with only ``train`` and ``test`` rows, or only ``train`` rows) is carved out
of the given training rows, and ``SplitResult.info`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from polymodal.tasks import DEFAULT_TASK, get_task


@dataclass
class SplitResult:
    split: np.ndarray  # (N,) "train" | "val" | "test"
    notes: list[str] = field(default_factory=list)  # what the splitter had to give up (stratification)
    info: list[str] = field(default_factory=list)  # what it did beyond the defaults (splits carved from train rows)


def _strata(y: np.ndarray, task: str) -> np.ndarray:
    """The task's stratum per row (:meth:`polymodal.tasks.Task.strata`)."""
    return get_task(task).strata(y)


def _holdout(idx: np.ndarray, strata: np.ndarray, groups: np.ndarray | None, frac: float, seed: int,
             notes: list[str], what: str, names: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` into (rest, held-out) with about ``frac`` of the rows (or groups) held out."""
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, train_test_split

    if frac <= 0 or len(idx) < 2:
        return idx, idx[:0]
    s = strata[idx]
    if groups is None:
        counts = np.bincount(s)
        single = counts[s] < 2  # rows of a class with one row here: they cannot be on both sides
        big = idx[~single]
        n_hold = max(1, int(round(frac * len(idx))))
        n_classes = len(np.unique(s[~single]))
        if n_hold < n_classes <= len(big) // 3:  # room for one row of every class: stratify with that many
            n_hold = n_classes
        if single.any() and n_classes >= 1:
            shown = ", ".join(sorted({str(names[i]) for i in idx[single]})) if names is not None else str(int(single.sum()))
            notes.append(f"{what}: class(es) {shown} with a single row kept on the training side; the other classes "
                         "are stratified")
        if n_classes >= 1 and n_classes <= n_hold < len(big):
            rest, hold = train_test_split(big, test_size=n_hold, random_state=seed,
                                          stratify=s[~single] if n_classes > 1 else None)
            return np.sort(np.concatenate([rest, idx[single]])), np.sort(hold)
        notes.append(f"{what}: not stratified (the split is smaller than the number of classes)")
        rest, hold = train_test_split(idx, test_size=min(n_hold, len(idx) - 1), random_state=seed)
        return np.sort(rest), np.sort(hold)
    g = groups[idx]
    n_groups = len(np.unique(g))
    if n_groups < 2:
        raise ValueError(f"{what}: the group column has a single value; a grouped split needs at least 2 groups")
    k = max(2, int(round(1 / frac)))
    if k <= n_groups:
        try:
            folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
            rest, hold = next(folds.split(idx, s, g))
            return np.sort(idx[rest]), np.sort(idx[hold])
        except ValueError:
            pass
    notes.append(f"{what}: grouped split not stratified (too few groups per class)")
    rest, hold = next(GroupShuffleSplit(n_splits=1, test_size=frac, random_state=seed).split(idx, s, g))
    return np.sort(idx[rest]), np.sort(idx[hold])


def assign_splits(
    y: np.ndarray,
    *,
    task: str = DEFAULT_TASK,
    groups: np.ndarray | None = None,
    given: np.ndarray | None = None,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    folds: int | None = None,
    fold: int = 0,
) -> SplitResult:
    """One of train/val/test per row.

    given: an existing split per row ("train"/"val"/"test"; "" = unassigned). Rows with a given split
           keep it, unless ``folds`` re-partitions the non-test rows.
    folds, fold: k-fold cross-validation: the non-test rows are cut into ``folds`` parts (stratified and
           grouped like the hold-out) and part ``fold`` is the validation split.
    """
    n = len(y)
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"split fractions val={val}, test={test}: each must be in [0, 1) with val + test < 1")
    if folds is not None and not (folds >= 2 and 0 <= fold < folds):
        raise ValueError(f"k-fold: folds={folds}, fold={fold}; need folds >= 2 and 0 <= fold < folds")
    notes: list[str] = []
    info: list[str] = []
    strata = _strata(y, task)
    names = get_task(task).stratum_names(y)
    out = np.array([""] * n, dtype=object) if given is None else np.asarray(given, dtype=object).copy()
    if given is not None and (out == "train").any() and not ((out == "val").any() or (out == "test").any()):
        # only train rows given: they are split like rows without a split column
        out[out == "train"] = ""
        info.append("the split column gives only train rows: val and test carved out of them "
                    f"(splits.val={val:g}, splits.test={test:g} of the table, stratified by label)")
    free = np.flatnonzero(out == "")
    if len(free):
        # without a given test split, hold one out first; rows already split keep theirs
        has_test = bool((out == "test").any())
        rest, hold = (free, free[:0]) if has_test else _holdout(free, strata, groups, test, seed, notes, "test split", names)
        out[hold] = "test"
        if folds is None:
            frac = val / (1 - (0 if has_test else test)) if val else 0.0
            tr, va = _holdout(rest, strata, groups, frac, seed + 1, notes, "val split", names)
            out[tr], out[va] = "train", "val"
        else:
            out[rest] = "train"
    if folds is None and given is not None:
        # a split the table does not give (e.g. only train and test rows): carved out of the train rows
        for part, frac_all, extra in (("test", test, 0), ("val", val, 1)):
            pool = np.flatnonzero(out == "train")
            if frac_all <= 0 or (out == part).any() or len(pool) < 2:
                continue
            frac = min(frac_all * n / len(pool), 0.5)
            tr, held = _holdout(pool, strata, groups, frac, seed + extra, notes, f"{part} split", names)
            out[held] = part
            how = "grouped by splits.group" if groups is not None else "stratified by label"
            info.append(f"no {part} rows given: {len(held)} of the {len(pool)} train rows carved out as {part} "
                        f"(splits.{part}={frac_all:g} of the table, {how})")
    if folds is not None:
        from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold

        pool = np.flatnonzero(out != "test")
        s = strata[pool]
        if groups is not None:
            splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
            parts = list(splitter.split(pool, s, groups[pool]))
        elif np.bincount(s)[np.bincount(s) > 0].min() >= folds:
            parts = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(pool, s))
        else:
            notes.append(f"{folds}-fold split not stratified (a class has fewer rows than folds)")
            parts = list(KFold(n_splits=folds, shuffle=True, random_state=seed).split(pool))
        _, va = parts[fold]
        out[pool] = "train"
        out[pool[va]] = "val"
    return SplitResult(out.astype(str), notes, info)
