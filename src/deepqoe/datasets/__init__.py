"""Datasets: from a dataset config to (X, y, groups), and the data directory.

The data directory is given by the ``DEEPQOE_DATA`` environment variable; configs refer to files in it
as ``$DEEPQOE_DATA/<folder>/<file>``. :func:`load_dataset` reads the source table(s), joins
pre-computed feature vectors, optionally averages ratings per condition (``aggregate_by``) or cuts a
score into classes (``target_bins``), and checks every column the config names, so a problem is
reported once, naming the file, column and row.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepqoe.config import DatasetConfig, InputConfig
from deepqoe.errors import DeepQoEError
from deepqoe.io import columns_hint, read_table


def data_dir(required: bool = True) -> Path | None:
    """The folder of datasets: ``DEEPQOE_DATA``, else the per-user folder ``deepqoe datasets fetch`` fills
    (:func:`deepqoe.datasets.catalog.default_data_dir`) when it exists."""
    d = os.environ.get("DEEPQOE_DATA")
    if not d:
        from deepqoe.datasets.catalog import default_data_dir

        if default_data_dir().is_dir():
            return default_data_dir()
        if required:
            raise DeepQoEError("set DEEPQOE_DATA to the folder that holds the datasets, or run "
                               f"`deepqoe datasets fetch --all` (downloads into {default_data_dir()})")
        return None
    p = Path(d)
    if not p.is_dir():
        if required:
            raise DeepQoEError(f"DEEPQOE_DATA points at '{d}', which is not a folder")
        return None
    return p


@dataclass
class Dataset:
    """A loaded dataset: inputs X (one column per input, vector files joined), target y, groups."""

    config: DatasetConfig
    X: pd.DataFrame
    y: np.ndarray
    groups: np.ndarray | None
    ids: np.ndarray | None
    inputs: list[dict]  # estimator-ready input dicts (vector files resolved into columns)
    ratings: list[np.ndarray] | None = None  # each row's individual ratings (config ``individual``)

    def __len__(self):
        return len(self.X)


def _check_column(df: pd.DataFrame, column: str, file: str, role: str) -> None:
    if column not in df.columns:
        listed = columns_hint(file, df.columns)
        close = difflib.get_close_matches(column, [str(c) for c in df.columns], n=1)
        hint = f" (did you mean '{close[0]}'?)" if close and listed.startswith("columns are") else ""
        raise DeepQoEError(f"{role} column not found{hint}; {listed}", file=file, column=column)


def _read_sources(cfg: DatasetConfig) -> tuple[pd.DataFrame, str]:
    frames = []
    for p in cfg.sources:
        frames.append(read_table(p, sep=cfg.reader.sep, decimal=cfg.reader.decimal, encoding=cfg.reader.encoding))
    names = ", ".join(str(p) for p in cfg.sources)
    if len(frames) > 1:
        cols = set(frames[0].columns)
        for p, f in zip(cfg.sources[1:], frames[1:]):
            if set(f.columns) != cols:
                diff = sorted(set(f.columns) ^ cols)[:5]
                what = f"not the same columns as the first source (differing: {', '.join(diff)})" \
                    if columns_hint(p, f.columns).startswith("columns are") else columns_hint(p, f.columns)
                raise DeepQoEError(what, file=str(p))
    return (pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]), names


def read_vector_file(cfg: DatasetConfig, inp: InputConfig) -> pd.DataFrame:
    """A feature file: CSV/Parquet with an id column + numeric columns, or a .mat matrix (row order)."""
    path = cfg.resolve(inp.file)
    if path.suffix.lower() == ".mat":
        from scipy.io import loadmat

        if not path.exists():
            raise DeepQoEError("feature file not found", file=str(path))
        try:
            mat = loadmat(path)
        except Exception as e:  # scipy raises many kinds for a bad .mat
            raise DeepQoEError(f"cannot read the .mat file: {e}", file=str(path)) from None
        key = inp.mat_key or next((k for k in mat if not k.startswith("__")), None)
        if key not in mat:
            raise DeepQoEError(f"no matrix '{key}' in the file; it has {[k for k in mat if not k.startswith('__')]}",
                               file=str(path))
        m = np.asarray(mat[key], dtype=np.float64)
        return pd.DataFrame(m, columns=[f"{inp.key}__{j}" for j in range(m.shape[1])])
    df = read_table(path)
    idc = inp.file_id_column or "id"
    _check_column(df, idc, str(path), "id")
    feats = [c for c in df.columns if c != idc and pd.api.types.is_numeric_dtype(df[c])]
    if not feats:
        raise DeepQoEError("the feature file has no numeric feature columns", file=str(path))
    out = df[[idc] + feats].rename(columns={c: f"{inp.key}__{c}" for c in feats})
    if out[idc].duplicated().any():
        r = int(np.flatnonzero(out[idc].duplicated().to_numpy())[0]) + 1
        raise DeepQoEError(f"id {out[idc].iloc[r - 1]!r} appears twice", file=str(path), column=idc, row=r)
    return out


def prepare_inputs(cfg: DatasetConfig, df: pd.DataFrame, source_name: str) -> tuple[pd.DataFrame, list[dict]]:
    """Check the input columns of a table and join vector files; return X and estimator-ready inputs."""
    X = pd.DataFrame(index=df.index)
    inputs = []
    for inp in cfg.active_inputs:
        d = inp.model_dump(exclude_none=False)
        if inp.modality == "vector" and inp.file:
            vec = read_vector_file(cfg, inp)
            if inp.file.lower().endswith(".mat"):
                if len(vec) != len(df):
                    raise DeepQoEError(f"the .mat has {len(vec)} rows but the table has {len(df)}; "
                                       "a .mat feature file must follow the table's row order", file=inp.file)
                vec.index = df.index
                joined = vec
            else:
                _check_column(df, inp.column, source_name, "id")
                idc = inp.file_id_column or "id"
                keyed = vec.set_index(idc)
                keys = df[inp.column].astype(str)
                keyed.index = keyed.index.astype(str)
                missing = ~keys.isin(keyed.index)
                if missing.any():
                    r = int(np.flatnonzero(missing.to_numpy())[0]) + 1
                    raise DeepQoEError(f"id {keys.iloc[r - 1]!r} has no row in the feature file {inp.file}",
                                       file=source_name, column=inp.column, row=r)
                joined = keyed.loc[keys.to_numpy()].set_index(df.index)
            for c in joined.columns:
                X[c] = joined[c].to_numpy()
            d.update(columns=list(joined.columns), file=None)
        elif inp.role == "viewer" and inp.column not in df.columns:
            pass  # no viewer column: every row is the unknown viewer (the population prediction)
        else:
            for c in (inp.columns or [inp.column]):
                _check_column(df, c, source_name, f"input '{inp.key}'")
                X[c] = df[c]
        inputs.append(d)
    _validate_values(cfg, X, inputs, source_name)
    return X, inputs


def _validate_values(cfg: DatasetConfig, X: pd.DataFrame, inputs: list[dict], source_name: str) -> None:
    """Check every input value once, on the whole table, so errors name the file and its data row."""
    from deepqoe.features.tabular import numeric_matrix

    for d in inputs:
        try:
            if d["modality"] in ("continuous", "vector"):
                numeric_matrix(X, d.get("columns") or [d["column"]],
                               nan_to=d.get("nan_to") if d["modality"] == "vector" else None)
            elif d["modality"] in ("text", "categorical") and d.get("role") != "viewer":  # no viewer: unknown
                bad = X[d["column"]].isna().to_numpy()
                if bad.any():
                    raise DeepQoEError(f"a missing {d['modality']} value", column=d["column"],
                                       row=int(np.flatnonzero(bad)[0]) + 1)
        except DeepQoEError as e:
            if e.file is None:
                raise DeepQoEError(e.message, file=source_name, column=e.column, row=e.row) from None
            raise


def load_dataset(cfg: DatasetConfig) -> Dataset:
    df, name = _read_sources(cfg)
    _check_column(df, cfg.target, name, "target")
    for extra, role in ((cfg.group, "group"), (cfg.id, "id"), (cfg.individual, "individual")):
        if extra:
            _check_column(df, extra, name, role)
    if cfg.aggregate_by:
        for c in cfg.aggregate_by:
            _check_column(df, c, name, "aggregate_by")
        keep = {c: "first" for c in df.columns if c not in cfg.aggregate_by and c != cfg.target}
        tgt = pd.to_numeric(df[cfg.target], errors="coerce")
        df = df.assign(**{cfg.target: tgt}).groupby(cfg.aggregate_by, sort=True, as_index=False).agg(
            {**keep, cfg.target: "mean"})
    X, inputs = prepare_inputs(cfg, df, name)
    y = _target(cfg, df[cfg.target], name)
    groups = df[cfg.group].astype(str).to_numpy() if cfg.group else None
    ids = df[cfg.id].to_numpy() if cfg.id else None
    ratings = None
    if cfg.individual:
        from deepqoe.distribution import RatingScale, parse_ratings

        sc = RatingScale(cfg.rating_scale)
        outside = (y < sc.lo) | (y > sc.hi)
        if outside.any():  # the target is the mean rating: on the ratings' scale
            r = int(np.flatnonzero(outside)[0]) + 1
            raise DeepQoEError(f"the target must be on rating_scale {cfg.rating_scale} (the scale of the "
                               f"'{cfg.individual}' ratings), found {y[r - 1]:g}", file=name, column=cfg.target, row=r)
        ratings = [parse_ratings(v, sc, file=name, column=cfg.individual, row=r)
                   for r, v in enumerate(df[cfg.individual].tolist(), start=1)]
        if not any(len(r) > 1 for r in ratings):  # nothing to learn a spread from
            raise DeepQoEError("every row has one individual rating; a rating distribution needs rows with "
                               "several (e.g. '[4 5 3]')", file=name, column=cfg.individual)
    return Dataset(cfg, X.reset_index(drop=True), y, groups, ids, inputs, ratings)


def _target(cfg: DatasetConfig, s: pd.Series, name: str) -> np.ndarray:
    col = cfg.target
    if cfg.task == "regression" or cfg.target_bins is not None:
        from deepqoe.features.tabular import MAX_ABS_VALUE

        v = pd.to_numeric(s, errors="coerce")
        num = v.fillna(0).to_numpy(dtype=np.float64)
        bad = v.isna().to_numpy() | ~np.isfinite(num) | (np.abs(num) > MAX_ABS_VALUE)
        if bad.any():
            r = int(np.flatnonzero(bad)[0]) + 1
            raise DeepQoEError(f"target must be a finite number of magnitude at most {MAX_ABS_VALUE:g}, found "
                               f"{s.iloc[r - 1]!r}", file=name, column=col, row=r)
        v = v.to_numpy(dtype=np.float64)
        if cfg.target_bins is None:
            return v
        codes = np.searchsorted(np.asarray(cfg.target_bins, float), v, side="right")
        return np.asarray(cfg.classes, dtype=object)[codes]
    # classification on labels: match the configured classes, comparing as numbers where both are
    classes = list(cfg.classes)
    out = np.empty(len(s), dtype=object)
    lookup = {str(c): c for c in classes}
    for r, v in enumerate(s.tolist(), start=1):
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            raise DeepQoEError("missing target value", file=name, column=col, row=r)
        key = str(v)
        if key not in lookup and isinstance(v, float) and v.is_integer():
            key = str(int(v))
        if key not in lookup:
            raise DeepQoEError(f"target value {v!r} is not one of the configured classes {classes}",
                               file=name, column=col, row=r)
        out[r - 1] = lookup[key]
    try:
        return out.astype(type(classes[0])) if len({type(c) for c in classes}) == 1 else out
    except (TypeError, ValueError):
        return out
