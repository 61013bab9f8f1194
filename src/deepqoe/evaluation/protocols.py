"""Evaluation protocols: how a dataset is split into training and test parts.

* ``holdout``: one random split (``test_size``).
* ``repeated``: ``n_splits`` independent random splits (e.g. 10 x 90/10, or VIDEVAL's 100 x 80/20).
* ``kfold``: k-fold cross-validation (shuffled).
* ``group``: leave-one-group-out (content, title or genre disjoint): every test set is one group.
* ``group-kfold``: k group-disjoint folds (as many as there are groups when there are fewer than k, with a
  :class:`~deepqoe.errors.DeepQoENote` saying so).
* ``group-shuffle``: ``n_splits`` random group-disjoint splits, each holding out ``test_size`` of the groups
  (at least one, never all), drawn independently.
* ``videval``: the VIDEVAL authors' 80/20 splits (``train_test_split(test_size=0.2,
  random_state=ceil(8.8 i))`` for i = 1..n), the protocol of the UGC video-quality literature.

Each split is a :class:`Split` of integer indices; the same function serves the CLI, the experiments
and the benchmarks, so two methods compared in one run always see the same splits.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from deepqoe.errors import DeepQoEError, DeepQoENote

PROTOCOLS = ("holdout", "repeated", "kfold", "group", "group-kfold", "group-shuffle", "videval")


@dataclass(frozen=True)
class Split:
    name: str
    train: np.ndarray
    test: np.ndarray


def _n_test(n: int, test_size: float) -> int:
    k = int(round(n * test_size)) if test_size < 1 else int(test_size)
    return min(max(k, 1), n - 1)


def make_splits(protocol: str, n_samples: int, *, groups=None, n_splits: int = 10, test_size: float = 0.1,
                seed: int = 0) -> list[Split]:
    if n_samples < 2:
        raise DeepQoEError(f"need at least 2 rows to split, got {n_samples}")
    rng = np.random.default_rng(seed)
    idx = np.arange(n_samples)
    if protocol in ("holdout", "repeated"):
        reps = 1 if protocol == "holdout" else n_splits
        k = _n_test(n_samples, test_size)
        out = []
        for r in range(reps):
            perm = rng.permutation(n_samples)
            out.append(Split(f"split{r}", np.sort(perm[k:]), np.sort(perm[:k])))
        return out
    if protocol == "kfold":
        if n_splits > n_samples:
            raise DeepQoEError(f"kfold with {n_splits} folds needs at least {n_splits} rows, got {n_samples}")
        folds = np.array_split(rng.permutation(n_samples), n_splits)
        return [Split(f"fold{i}", np.setdiff1d(idx, f), np.sort(f)) for i, f in enumerate(folds)]
    if protocol in ("group", "group-kfold", "group-shuffle"):
        if groups is None:
            raise DeepQoEError(f"the '{protocol}' protocol needs a group column (set 'group' in the dataset config)")
        groups = np.asarray(groups)
        uniq = list(dict.fromkeys(groups.tolist()))
        if len(uniq) < 2:
            raise DeepQoEError(f"the '{protocol}' protocol needs at least 2 groups, found {len(uniq)}")
        if protocol == "group":
            return [Split(f"group={g}", idx[groups != g], idx[groups == g]) for g in uniq]
        if protocol == "group-shuffle":
            values = np.unique(groups)
            k = min(max(1, int(round(test_size * len(values)))), len(values) - 1)  # never every group
            out = []
            for r in range(n_splits):
                mask = np.isin(groups, rng.choice(values, k, replace=False))
                out.append(Split(f"groupshuffle{r}", idx[~mask], idx[mask]))
            return out
        if n_splits > len(uniq):
            warnings.warn(f"group-kfold: {n_splits} folds asked, but there are only {len(uniq)} groups; using "
                          f"{len(uniq)} folds (one group each)", DeepQoENote, stacklevel=2)
        order = rng.permutation(len(uniq))
        parts = np.array_split(order, min(n_splits, len(uniq)))
        out = []
        for i, part in enumerate(parts):
            test_groups = {uniq[j] for j in part}
            mask = np.isin(groups, list(test_groups))
            out.append(Split(f"groupfold{i}", idx[~mask], idx[mask]))
        return out
    if protocol == "videval":
        return videval_splits(n_samples, n_splits)
    raise DeepQoEError(f"unknown protocol '{protocol}'; use one of {', '.join(PROTOCOLS)}")


def fixed_splits(train_masks) -> list[Split]:
    """A dataset's own published splits, given as a (rows x splits) boolean matrix of training rows."""
    m = np.asarray(train_masks, dtype=bool)
    return [Split(f"split{j}", np.flatnonzero(m[:, j]), np.flatnonzero(~m[:, j])) for j in range(m.shape[1])]


def validation_split(n_train: int, fraction: float, seed: int, groups=None) -> tuple[np.ndarray, np.ndarray]:
    """Split the training part once more for early stopping (group-disjoint when groups are given and there
    are at least 3 of them; random rows otherwise: :func:`validation_split_how` says which)."""
    fit, val, _ = validation_split_how(n_train, fraction, seed, groups)
    return fit, val


def validation_split_how(n_train: int, fraction: float, seed: int, groups=None
                         ) -> tuple[np.ndarray, np.ndarray, str]:
    """:func:`validation_split` and how it was made: ``"none"`` (nothing held out: a fraction of 0 or fewer
    than 10 rows), ``"group-disjoint"``, or ``"random rows"`` (no groups given, or too few of them: then the
    description says so)."""
    idx = np.arange(n_train)
    if fraction <= 0 or n_train < 10:
        return idx, idx[:0], "none"
    rng = np.random.default_rng(seed + 7919)
    how = "random rows"
    if groups is not None:
        groups = np.asarray(groups)
        uniq = np.array(list(dict.fromkeys(groups.tolist())), dtype=object)
        how = (f"random rows, not group-disjoint: the {n_train} rows they are drawn from hold {len(uniq)} "
               f"group{'' if len(uniq) == 1 else 's'}, and a group-disjoint split needs at least 3")
        if len(uniq) >= 3:
            rng.shuffle(uniq)
            n_val = max(1, int(round(len(uniq) * fraction)))
            mask = np.isin(groups, uniq[:n_val])
            if 0 < mask.sum() < n_train:
                return idx[~mask], idx[mask], "group-disjoint"
            how = "random rows, not group-disjoint: the groups could not be split"
    k = max(1, int(round(n_train * fraction)))
    perm = rng.permutation(n_train)
    return np.sort(perm[k:]), np.sort(perm[:k]), how


def holdout_split_how(n_samples: int, test_size: float, seed: int, groups=None) -> tuple[Split, str]:
    """The one held-out test part of ``deepqoe train`` and how it was chosen: ``"group-disjoint"`` when
    ``groups`` are given and there are at least 2 of them (``group-shuffle``: ``test_size`` of the groups, at
    least one, never all, so the test part's share of the rows follows the groups' sizes); ``"random rows"``
    without groups (``holdout``: ``test_size`` of the rows), or ``"random rows, not group-disjoint: ..."`` (the
    same, and why) when there are too few groups. :func:`validation_split_how` does the same for early
    stopping's and the prediction intervals' rows."""
    if groups is None:
        return make_splits("holdout", n_samples, test_size=test_size, seed=seed)[0], "random rows"
    groups = np.asarray(groups)
    n_groups = len(set(groups.tolist()))
    if n_groups < 2:
        split = make_splits("holdout", n_samples, test_size=test_size, seed=seed)[0]
        return split, (f"random rows, not group-disjoint: {n_groups} group{'' if n_groups == 1 else 's'} in the "
                       "data, and group-disjoint needs at least 2")
    split = make_splits("group-shuffle", n_samples, groups=groups, n_splits=1, test_size=test_size, seed=seed)[0]
    return split, "group-disjoint"


def videval_split(n_samples: int, i: int):
    """The i-th (1-based) VIDEVAL 80/20 split of ``n_samples`` rows, as a protocols.Split."""
    from sklearn.model_selection import train_test_split

    if i < 1:
        raise DeepQoEError(f"VIDEVAL splits are numbered from 1, got {i}")
    tr, te = train_test_split(np.arange(n_samples), test_size=0.2, random_state=math.ceil(8.8 * i))
    return Split(f"videval{i}", np.asarray(tr), np.asarray(te))


def videval_splits(n_samples: int, n_splits: int = 100) -> list:
    return [videval_split(n_samples, i) for i in range(1, n_splits + 1)]


def videval_inner_split(n_train: int, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (within the training part) of the inner 80/20 split that tunes the SVR of split i."""
    from sklearn.model_selection import train_test_split

    a, b = train_test_split(np.arange(n_train), test_size=0.2, random_state=math.ceil(6.6 * i))
    return np.asarray(a), np.asarray(b)
