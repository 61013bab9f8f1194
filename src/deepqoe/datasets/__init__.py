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
from deepqoe.features.tabular import show_value
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
    source: str | None = None  # the table file(s) read, for messages about the data as a whole

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


def _missing_key(df: pd.DataFrame, column: str, file: str, role: str) -> None:
    """A ``role`` column (group, aggregate_by, a feature file's id) must have a value in every row."""
    bad = df[column].isna().to_numpy()
    if bad.any():
        raise DeepQoEError(f"a missing {role} value; every row needs one (fill or drop the row)", file=file,
                           column=column, row=int(np.flatnonzero(bad)[0]) + 1)


def prepare_inputs(cfg: DatasetConfig, df: pd.DataFrame, source_name: str) -> tuple[pd.DataFrame, list[dict]]:
    """Check the input columns of a table and join vector files; return X and estimator-ready inputs."""
    cols: dict[str, object] = {}  # X's columns, built at once (one by one, pandas warns of fragmentation)
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
                _missing_key(df, inp.column, source_name, "id")
                idc = inp.file_id_column or "id"
                keyed = vec.set_index(idc)
                keys = df[inp.column].astype(str)
                keyed.index = keyed.index.astype(str)
                missing = ~keys.isin(keyed.index)
                if missing.any():
                    r = int(np.flatnonzero(missing.to_numpy())[0]) + 1
                    raise DeepQoEError(f"id {show_value(keys.iloc[r - 1])} has no row in the feature file {inp.file}",
                                       file=source_name, column=inp.column, row=r)
                joined = keyed.loc[keys.to_numpy()].set_index(df.index)
            for c in joined.columns:
                cols[c] = joined[c].to_numpy()
            d.update(columns=list(joined.columns), file=None)
        elif inp.role == "viewer" and inp.column not in df.columns:
            pass  # no viewer column: every row is the unknown viewer (the population prediction)
        else:
            for c in (inp.columns or [inp.column]):
                _check_column(df, c, source_name, f"input '{inp.key}'")
                cols[c] = df[c]
        inputs.append(d)
    X = pd.DataFrame(cols, index=df.index)
    _validate_values(cfg, X, inputs, source_name)
    return X, inputs


def _validate_values(cfg: DatasetConfig, X: pd.DataFrame, inputs: list[dict], source_name: str) -> None:
    """Check every input value once, on the whole table, so errors name the file and its data row (the
    encoders check them again on the training split, whose rows are not the file's)."""
    from deepqoe.features.tabular import check_log_values, check_sequences, numeric_matrix

    for d in inputs:
        try:
            if d["modality"] in ("continuous", "vector"):
                columns = d.get("columns") or [d["column"]]
                x = numeric_matrix(X, columns, nan_to=d.get("nan_to") if d["modality"] == "vector" else None)
                if d.get("log"):
                    check_log_values(x, columns)
            elif d["modality"] == "sequence":
                check_sequences(X[d["column"]].tolist(), d["column"])
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
    for c in cfg.aggregate_by or []:
        _check_column(df, c, name, "aggregate_by")
        _missing_key(df, c, name, "aggregate_by")
    if cfg.group:  # as text a missing group would be one more group, "nan"
        _missing_key(df, cfg.group, name, "group")
    _enough_rows(len(df), name, "the table has")
    X, inputs = prepare_inputs(cfg, df, name)
    if cfg.aggregate_by:
        # the target is checked on the file's rows, then averaged per condition (config: a number, since
        # classification needs target_bins with aggregate_by); each input must be the same within a condition
        target = _numeric_target(df[cfg.target], cfg.target, name)
        code, first = _conditions(df, cfg.aggregate_by)
        _same_within(cfg, df, X, code, first, name)
        mean = np.bincount(code, weights=target) / np.bincount(code)
        X, df = X.iloc[first], df.iloc[first]
        _enough_rows(len(df), name, f"aggregate_by ({', '.join(cfg.aggregate_by)}) leaves")
        y = _target(cfg, pd.Series(mean, index=df.index), name)
    else:
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
    return Dataset(cfg, X.reset_index(drop=True), y, groups, ids, inputs, ratings, source=name)


def _enough_rows(n: int, name: str, what: str) -> None:
    if n < 2:
        raise DeepQoEError(f"{what} {n} row(s); training needs at least 2 (some to train on, some to test)",
                           file=name)


def _conditions(df: pd.DataFrame, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``aggregate_by``: each row's condition (0.. in the order of the sorted keys, or of first appearance
    where the keys do not sort) and each condition's first row."""
    try:
        code = df.groupby(keys, sort=True).ngroup().to_numpy()
    except TypeError:  # numbers and text in one key column
        code = df.groupby(keys, sort=False).ngroup().to_numpy()
    _, first = np.unique(code, return_index=True)
    return code, first


def _comparable(v):
    """A hashable stand-in of a table value, equal for equal values (a list by its items, NaN to NaN)."""
    from deepqoe.features.tabular import is_missing

    if isinstance(v, np.ndarray):
        return ("array", v.shape, str(v.dtype), v.tobytes()) if v.dtype != object else tuple(map(_comparable, v))
    if isinstance(v, (list, tuple)):
        return tuple(map(_comparable, v))
    if isinstance(v, dict):
        return repr(v)
    if not isinstance(v, (str, bytes)) and is_missing(v):
        return ("missing",)
    return v


def _same_within(cfg: DatasetConfig, df: pd.DataFrame, X: pd.DataFrame, code: np.ndarray, first: np.ndarray,
                 name: str) -> None:
    """``aggregate_by`` keeps one row per condition: every input column must hold one value per condition
    (compared as its encoder reads it), else the first row's would silently stand for all of them."""
    from deepqoe.features.tabular import CategoricalEncoder, numeric_matrix

    ref = first[code]  # the first row of each row's condition
    for inp in cfg.active_inputs:
        if inp.modality == "vector" and inp.file:
            checks = ([(c, X[c].to_numpy(np.float64)) for c in X.columns if c.startswith(f"{inp.key}__")]
                      if inp.file.lower().endswith(".mat") else [(inp.column, df[inp.column].astype(str).to_numpy())])
        elif inp.role == "viewer" and inp.column not in df.columns:
            continue
        elif inp.modality in ("continuous", "vector"):
            nan_to = inp.nan_to if inp.modality == "vector" else None
            checks = [(c, numeric_matrix(df, [c], nan_to=nan_to)[:, 0]) for c in (inp.columns or [inp.column])]
        elif inp.modality == "categorical":
            checks = [(inp.column, np.asarray(CategoricalEncoder._as_str(df[inp.column]), dtype=object))]
        elif inp.modality == "text":
            checks = [(inp.column, df[inp.column].astype(str).to_numpy(object))]
        else:
            vals = np.empty(len(df), dtype=object)
            for i, v in enumerate(df[inp.column].tolist()):  # one by one: numpy would unpack the tuples
                vals[i] = _comparable(v)
            checks = [(inp.column, vals)]
        for column, a in checks:
            if a.dtype == object:
                differ = np.fromiter((x != y for x, y in zip(a, a[ref])), dtype=bool, count=len(a))
            else:
                differ = ~((a == a[ref]) | (np.isnan(a) & np.isnan(a[ref])))
            if differ.any():
                i = int(np.flatnonzero(differ)[0])
                j = int(ref[i])
                shown = df[column].iloc if column in df.columns else X[column].iloc
                raise DeepQoEError(
                    f"{show_value(shown[i])} differs from the {show_value(shown[j])} of row {j + 1}, of the same "
                    f"aggregate_by condition, whose ratings are averaged into one row: an input must be the same "
                    f"across a condition (add '{column}' to aggregate_by, or drop the input)",
                    file=name, column=column, row=i + 1)


def _numeric_target(s: pd.Series, col: str, name: str) -> np.ndarray:
    """A regression target (or a score cut by ``target_bins``): finite numbers up to MAX_ABS_VALUE."""
    from deepqoe.features.tabular import MAX_ABS_VALUE

    if pd.api.types.is_bool_dtype(s):
        raise DeepQoEError("the target must be numbers, found booleans (True/False)", file=name, column=col)
    try:
        v = pd.to_numeric(s, errors="coerce")
    except OverflowError:  # an integer beyond float range
        v = pd.to_numeric(s.map(lambda x: float("inf") if isinstance(x, int) and abs(x) > 1e300 else x),
                          errors="coerce")
    num = v.fillna(0).to_numpy(dtype=np.float64)
    bad = v.isna().to_numpy() | ~np.isfinite(num) | (np.abs(num) > MAX_ABS_VALUE)
    if bad.any():
        r = int(np.flatnonzero(bad)[0]) + 1
        raise DeepQoEError(f"target must be a finite number of magnitude at most {MAX_ABS_VALUE:g}, found "
                           f"{show_value(s.iloc[r - 1])}", file=name, column=col, row=r)
    return v.to_numpy(dtype=np.float64)


def _class_keys(v) -> list:
    """The keys under which a target value matches a class: as a number (5 and 5.0 alike) and as text."""
    if isinstance(v, (bool, np.bool_)):
        return [("text", str(bool(v)))]
    if isinstance(v, (int, float, np.integer, np.floating)):
        keys = [("number", float(v))]
        if float(v).is_integer():
            keys.append(("text", str(int(v))))
        return keys + [("text", str(v))]
    if isinstance(v, str):
        keys = [("text", v), ("text", v.strip())]
        try:
            keys.append(("number", float(v)))
        except ValueError:
            pass
        return keys
    return [("text", str(v))]


def _target(cfg: DatasetConfig, s: pd.Series, name: str) -> np.ndarray:
    from deepqoe.features.tabular import is_missing

    col = cfg.target
    if cfg.task == "regression" or cfg.target_bins is not None:
        v = _numeric_target(s, col, name)
        if cfg.target_bins is None:
            return v
        codes = np.searchsorted(np.asarray(cfg.target_bins, float), v, side="right")
        return np.asarray(cfg.classes, dtype=object)[codes]
    # classification on labels: match the configured classes, comparing as numbers where both are
    classes = list(cfg.classes)
    lookup = {}
    for c in classes:
        lookup.setdefault(("text", c) if isinstance(c, str) else ("number", float(c)), c)
    out = np.empty(len(s), dtype=object)
    memo: dict = {}
    for r, v in enumerate(s.tolist(), start=1):
        if is_missing(v) or (isinstance(v, float) and not np.isfinite(v)):
            raise DeepQoEError("missing target value", file=name, column=col, row=r)
        key = (type(v), v)  # True and 1 are equal keys, but not the same target value
        try:
            label = memo[key]
        except (KeyError, TypeError):  # TypeError: a list or an array
            label = next((lookup[k] for k in _class_keys(v) if k in lookup), None)
            try:
                memo[key] = label
            except TypeError:
                pass
        if label is None:
            shown = ", ".join(show_value(c, 20) for c in classes[:10]) + (", ..." if len(classes) > 10 else "")
            raise DeepQoEError(f"target value {show_value(v)} is not one of the configured classes [{shown}]",
                               file=name, column=col, row=r)
        out[r - 1] = label
    try:
        return out.astype(type(classes[0])) if len({type(c) for c in classes}) == 1 else out
    except (TypeError, ValueError):
        return out
