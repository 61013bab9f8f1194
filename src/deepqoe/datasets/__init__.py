"""Datasets: from a dataset config to (X, y, groups), and the data directory.

The data directory is given by the ``DEEPQOE_DATA`` environment variable; configs refer to files in it
as ``$DEEPQOE_DATA/<folder>/<file>``. :func:`load_dataset` reads the source table(s), joins
pre-computed feature vectors, optionally averages ratings per condition (``aggregate_by``) or cuts a
score into classes (``target_bins``), and checks every column the config names, so a problem is
reported once, naming the file, column and row.
"""

from __future__ import annotations

import difflib
import json
import os
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepqoe.config import DatasetConfig, InputConfig
from deepqoe.errors import DeepQoEError, DeepQoENote
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
    # per vector input read from a file written by ``deepqoe extract``: how its features were made
    # (:func:`feature_files_metadata`; model.json's ``feature_files``, checked again at prediction)
    feature_files: dict | None = None

    def __len__(self):
        return len(self.X)


def _check_column(df: pd.DataFrame, column: str, file: str, role: str) -> None:
    if column not in df.columns:
        listed = columns_hint(file, df.columns)
        close = difflib.get_close_matches(column, [str(c) for c in df.columns], n=1)
        hint = f" (did you mean '{close[0]}'?)" if close and listed.startswith("columns are") else ""
        raise DeepQoEError(f"{role} column not found{hint}; {listed}", file=file, column=column)


# ---- join keys: one rule for training and prediction -----------------------------------------------------
def join_columns(cfg: DatasetConfig) -> list[str]:
    """The columns of a ratings table read as text, so ids stay as written (``001`` stays ``'001'``, never the
    number 1): the dataset's ``id`` and the ``column`` of each vector input joined to a feature file. Training
    (:func:`load_dataset`) and prediction (:func:`read_rated_table`) read them so; :func:`as_ids` turns them
    (and a feature file's ``file_id_column``) into join keys."""
    cols = [cfg.id] if cfg.id else []
    for inp in cfg.inputs:
        if inp.modality == "vector" and inp.file and not inp.file.lower().endswith(".mat") \
                and inp.column not in cols:
            cols.append(inp.column)
    return cols


def _as_id(v):
    if isinstance(v, str):
        return unicodedata.normalize("NFC", v)
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return None
        return str(int(v)) if np.isfinite(v) and float(v).is_integer() else repr(float(v))
    return unicodedata.normalize("NFC", str(v))


def as_ids(values) -> pd.Series:
    """Join keys as text, on both sides of a join: text as written, in Unicode NFC (a macOS file name's
    ``e`` + combining accent is ``é``), an integer (a Parquet integer column) as its digits, a whole float
    (an integer column with a gap) as its digits; a missing value is None. ``'001'`` and ``'1'`` differ."""
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    return pd.Series([_as_id(v) for v in s.tolist()], index=s.index, dtype=object)


def read_rated_table(cfg: DatasetConfig, path, any_sep: bool = False) -> pd.DataFrame:
    """A table of the dataset (a source at training, a table to predict on), read with the config's reader
    options and the join columns (:func:`join_columns`) as text. ``any_sep``: a CSV that reads as one column
    is read again with a comma (written with another separator, e.g. deepqoe's own CSV output)."""
    text = {c: str for c in join_columns(cfg)} or None
    df = read_table(path, sep=cfg.reader.sep, decimal=cfg.reader.decimal, encoding=cfg.reader.encoding, dtype=text)
    if any_sep and len(df.columns) == 1 and Path(path).suffix.lower() not in (".parquet", ".pq"):
        df = read_table(path, dtype=text)
    return df


def _read_sources(cfg: DatasetConfig) -> tuple[pd.DataFrame, str]:
    frames = []
    for p in cfg.sources:
        frames.append(read_rated_table(cfg, p))
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


# ---- feature files ------------------------------------------------------------------------------------------
def feature_file_metadata(path) -> dict:
    """How a feature table written by ``deepqoe extract`` was made: the ``deepqoe`` metadata of a Parquet
    file's schema (:func:`deepqoe.features.video.pipeline.read_feature_metadata`), or for a CSV its
    ``OUT.meta.json``; ``{}`` for a file without it (or with metadata that names no extractors)."""
    path = Path(path)
    if path.suffix.lower() == ".mat" or not path.is_file():
        return {}
    from deepqoe.features.video.pipeline import read_feature_metadata, sidecar_paths

    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            meta = read_feature_metadata(path)
        else:
            side = sidecar_paths(path)["meta"]
            meta = json.loads(side.read_text(encoding="utf-8")) if side.is_file() else {}
    except Exception:  # unreadable metadata is no metadata: nothing to record or check
        return {}
    if not isinstance(meta, dict) or not isinstance(meta.get("extractors"), dict) or not meta["extractors"]:
        return {}
    extractors = {}
    for name, e in meta["extractors"].items():
        e = e if isinstance(e, dict) else {}
        cols = e.get("columns") if isinstance(e.get("columns"), list) else []
        extractors[str(name)] = {"version": e.get("version"),
                                 "options": e.get("options") if isinstance(e.get("options"), dict) else {},
                                 "columns": [c for c in cols if isinstance(c, str)]}
    return {"format": meta.get("format"), "deepqoe_version": meta.get("deepqoe_version"), "extractors": extractors}


def feature_files_metadata(cfg: DatasetConfig) -> dict:
    """``{input: {"file", "format", "deepqoe_version", "extractors"}}`` of each vector input whose feature
    file holds extraction metadata (:func:`feature_file_metadata`): saved in model.json (``feature_files``)
    and compared with the feature file read at prediction."""
    out = {}
    for inp in cfg.active_inputs:
        if inp.modality == "vector" and inp.file:
            meta = feature_file_metadata(cfg.resolve(inp.file))
            if meta:
                out[inp.key] = {"file": inp.file, **meta}
    return out


def _made_by(column: str, *metas) -> str | None:
    for m in metas:
        for name, e in ((m or {}).get("extractors") or {}).items():
            if column in (e.get("columns") or []):
                return name
    return None


def _show_option(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return "not set" if v is None else json.dumps(v) if not isinstance(v, (int, float, str)) else str(v)


def extraction_changes(trained: dict, now: dict) -> list[str]:
    """What differs between the extractors that made training's feature file (``trained``) and those of the
    feature file read now (``now``), each ``feature file metadata`` (:func:`feature_file_metadata`):
    ``["siti: fps 2 at training, 0 here", "stream: version 6 at training, 7 here"]``."""
    changes = []
    here = now.get("extractors") or {}
    for name, t in (trained.get("extractors") or {}).items():
        n = here.get(name)
        if n is None:
            changes.append(f"{name}: made training's features, not this file's")
            continue
        if str(t.get("version")) != str(n.get("version")):
            changes.append(f"{name}: version {t.get('version')} at training, {n.get('version')} here")
        to, no = t.get("options") or {}, n.get("options") or {}
        for k in sorted(set(to) | set(no)):
            if to.get(k) != no.get(k):
                changes.append(f"{name}: {k} {_show_option(to.get(k))} at training, {_show_option(no.get(k))} here")
    return changes


def read_vector_file(cfg: DatasetConfig, inp: InputConfig, needed: list[str] | None = None,
                     trained: dict | None = None) -> pd.DataFrame:
    """A feature file: CSV/Parquet with an id column + numeric columns, or a .mat matrix (row order).

    The id column is read as text and made join keys (:func:`as_ids`); a row without an id is left out (it
    joins nothing); the frame's index is each row's position in the file (0-based). ``needed``: the feature
    columns the model reads (at prediction), an error naming the file when one is missing (and, where the
    metadata of the file or of training's (``trained``) says so, the extractor that makes it)."""
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
    idc = inp.file_id_column or "id"
    df = read_table(path, dtype={idc: str})
    _check_column(df, idc, str(path), "id")
    if needed is None:
        feats = [c for c in df.columns if c != idc and pd.api.types.is_numeric_dtype(df[c])]
        if not feats:
            raise DeepQoEError("the feature file has no numeric feature columns", file=str(path))
    else:
        feats = list(needed)
        missing = [c for c in feats if c not in df.columns or c == idc]
        if missing:
            raise _missing_columns(path, df, missing, trained, feature_file_metadata(path))
    ids = as_ids(df[idc])
    known = ids.notna().to_numpy()
    dup = ids.duplicated().to_numpy() & known
    if dup.any():
        r = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero((ids == ids.iloc[r]).to_numpy())[0])
        a, b = df[idc].iloc[first], df[idc].iloc[r]
        how = (f" (as row {first + 1}'s {show_value(a)}: they differ only in Unicode normalisation)" if a != b
               else f" (first in row {first + 1})")
        raise DeepQoEError(f"id {show_value(b)} appears twice{how}", file=str(path), column=idc, row=r + 1)
    out = pd.concat([ids.rename(idc).to_frame(), df[feats].rename(columns={c: f"{inp.key}__{c}" for c in feats})],
                    axis=1)
    return out[known]


def _missing_columns(path: Path, df: pd.DataFrame, missing: list[str], trained: dict | None,
                     now: dict) -> DeepQoEError:
    """The error for feature columns the model reads that the feature file does not have."""
    shown = ", ".join(missing[:5]) + (f", ... ({len(missing)} in all)" if len(missing) > 5 else "")
    what = (f"the model needs the feature column '{missing[0]}', which this feature file does not have"
            if len(missing) == 1 else
            f"the model needs {len(missing)} feature columns that this feature file does not have: {shown}")
    makers = list(dict.fromkeys(m for m in (_made_by(c, trained, now) for c in missing) if m))
    if makers:
        names = ", ".join(f"'{m}'" for m in makers)
        what += f"; made by the extractor{'s' if len(makers) > 1 else ''} {names}"
        if now:
            what += f" (this file was extracted with: {', '.join(now['extractors']) or 'none'})"
    else:
        what += f"; {columns_hint(path, df.columns)}"
    return DeepQoEError(what, file=str(path), column=missing[0])


def _model_columns(model_meta: dict, inp: InputConfig) -> list[str] | None:
    """The feature file's columns a trained model reads for the vector input ``inp`` (its input's columns,
    less the ``<input>__`` prefix), or None when model.json does not say."""
    prefix = f"{inp.key}__"
    for d in model_meta.get("inputs") or []:
        if isinstance(d, dict) and (d.get("name") or d.get("column")) == inp.key and d.get("modality") == "vector":
            cols = d.get("columns")
            if isinstance(cols, list) and cols and all(isinstance(c, str) and c.startswith(prefix) for c in cols):
                return [c[len(prefix):] for c in cols]
    return None


def _near_ids(missing: list[str], known, shown: dict) -> str:
    """A hint when a missing id differs from a feature file's id only by leading zeros, case or spaces."""
    def canon(s: str) -> str:
        s = s.strip().casefold()
        return (s.lstrip("0") or "0") if s.isdigit() else s

    wanted = {canon(m): m for m in missing}
    for k in known:
        m = wanted.get(canon(k))
        if m is not None and m != k:
            return (f" (the feature file has {show_value(k)} where the table has {show_value(shown[m])}: ids are "
                    "matched as text, as written)")
    return ""


def _missing_ids(raw: pd.Series, keys: pd.Series, missing: np.ndarray, known, feature_file: str, source: str,
                 column: str) -> DeepQoEError:
    """One error for every table row whose id has no row in the feature file: how many ids, and the first few
    with their rows."""
    rows: dict[str, list[int]] = {}
    shown: dict[str, object] = {}
    for r in np.flatnonzero(missing):
        k = keys.iloc[r]
        rows.setdefault(k, []).append(int(r) + 1)
        shown.setdefault(k, raw.iloc[r])
    hint = _near_ids(list(rows), known, shown) or (
        " (extract their features into it; for new videos, `deepqoe predict --features FILE` reads their own "
        "feature file)")
    if len(rows) == 1:
        (k, rs), = rows.items()
        more = f" (rows {', '.join(map(str, rs[:5]))}{', ...' if len(rs) > 5 else ''})" if len(rs) > 1 else ""
        return DeepQoEError(f"id {show_value(shown[k])}{more} has no row in the feature file {feature_file}{hint}",
                            file=source, column=column, row=rs[0])

    def one(k):
        rs = rows[k]
        return (f"{show_value(shown[k])} (row{'s' if len(rs) > 1 else ''} {', '.join(map(str, rs[:3]))}"
                f"{', ...' if len(rs) > 3 else ''})")

    n_rows = int(missing.sum())
    listed = ", ".join(one(k) for k in list(rows)[:5]) + (", ..." if len(rows) > 5 else "")
    of_rows = f" ({n_rows} rows)" if n_rows > len(rows) else ""
    return DeepQoEError(f"{len(rows)} ids{of_rows} have no row in the feature file {feature_file}: {listed}{hint}",
                        file=source, column=column)


def _missing_key(df: pd.DataFrame, column: str, file: str, role: str) -> None:
    """A ``role`` column (group, aggregate_by, a feature file's id) must have a value in every row."""
    bad = df[column].isna().to_numpy()
    if bad.any():
        raise DeepQoEError(f"a missing {role} value; every row needs one (fill or drop the row)", file=file,
                           column=column, row=int(np.flatnonzero(bad)[0]) + 1)


def prepare_inputs(cfg: DatasetConfig, df: pd.DataFrame, source_name: str,
                   model_meta: dict | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """Check the input columns of a table and join vector files; return X and estimator-ready inputs.

    A vector file is joined on its ``file_id_column`` and the table's ``column``, both as text
    (:func:`as_ids`); every id without a row in the file is reported in one error. ``model_meta`` (the
    model.json of a trained model, at prediction): only the feature columns the model reads are joined (one
    it lacks is an error naming the file), and a note says where the file's extractors, versions or options
    differ from those recorded at training (model.json's ``feature_files``)."""
    cols: dict[str, object] = {}  # X's columns, built at once (one by one, pandas warns of fragmentation)
    inputs = []
    # input -> (feature file, its row (1-based) joined to each table row, the table's ids as written, the table)
    joins: dict[str, tuple] = {}
    for inp in cfg.active_inputs:
        d = inp.model_dump(exclude_none=False)
        if inp.modality == "vector" and inp.file:
            if inp.file.lower().endswith(".mat"):
                vec = read_vector_file(cfg, inp)
                if len(vec) != len(df):
                    raise DeepQoEError(f"the .mat has {len(vec)} rows but the table has {len(df)}; "
                                       "a .mat feature file must follow the table's row order", file=inp.file)
                vec.index = df.index
                joined = vec
            else:
                _check_column(df, inp.column, source_name, "id")
                _missing_key(df, inp.column, source_name, "id")
                path = cfg.resolve(inp.file)
                trained = needed = None
                if model_meta is not None:
                    trained = (model_meta.get("feature_files") or {}).get(inp.key)
                    trained = trained if isinstance(trained, dict) else None
                    needed = _model_columns(model_meta, inp)
                vec = read_vector_file(cfg, inp, needed=needed, trained=trained)
                if trained:
                    _note_extraction(path, inp, trained)
                idc = inp.file_id_column or "id"
                keyed = pd.Index(vec[idc])
                keys = as_ids(df[inp.column])
                pos = keyed.get_indexer(keys.to_numpy())
                missing = pos < 0
                if missing.any():
                    raise _missing_ids(df[inp.column], keys, missing, keyed, inp.file, source_name, inp.column)
                joined = vec.drop(columns=[idc]).iloc[pos].set_index(df.index)
                joins[inp.key] = (str(path), vec.index.to_numpy()[pos] + 1, df[inp.column], source_name)
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
    _validate_values(cfg, X, inputs, source_name, joins)
    return X, inputs


def _note_extraction(path: Path, inp: InputConfig, trained: dict) -> None:
    """A note when the feature file read at prediction was not made as training's was (other extractors,
    versions or options), or does not say how it was made."""
    now = feature_file_metadata(path)
    if not now:
        warnings.warn(f"file '{path}': this feature file has no extraction metadata (training's, "
                      f"{trained.get('file')}, had), so whether its extractors, versions and options are training's "
                      f"cannot be checked", DeepQoENote, stacklevel=3)
        return
    changes = extraction_changes(trained, now)
    if changes:
        shown = "; ".join(changes[:6]) + (f"; ... ({len(changes)} in all)" if len(changes) > 6 else "")
        warnings.warn(f"file '{path}': the features of input '{inp.key}' were made otherwise than the model's "
                      f"training features ({shown}): the model was not trained on such values, so its predictions "
                      "can be off; extract them as for training", DeepQoENote, stacklevel=3)


def _feature_file_error(e: DeepQoEError, key: str, join: tuple) -> DeepQoEError:
    """An error of a joined feature column (found on the table's rows) as the feature file's: its file,
    its own column name and its row, and the id and table row that joined it."""
    path, frows, raw, source = join
    column = e.column[len(key) + 2:] if e.column and e.column.startswith(f"{key}__") else e.column
    if e.row is None:
        return DeepQoEError(e.message, file=path, column=column)
    r = e.row - 1
    head, sep, tail = e.message.partition("; ")
    where = f" in the row of id {show_value(raw.iloc[r])} (joined to row {r + 1} of {source})"
    return DeepQoEError(f"{head}{where}{sep}{tail}", file=path, column=column, row=int(frows[r]))


def _validate_values(cfg: DatasetConfig, X: pd.DataFrame, inputs: list[dict], source_name: str,
                     joins: dict | None = None) -> None:
    """Check every input value once, on the whole table, so errors name the file and its data row (the
    encoders check them again on the training split, whose rows are not the file's). A value of a joined
    feature file is named by the feature file's column and row."""
    from deepqoe.features.tabular import check_log_values, check_sequences, numeric_matrix

    joins = joins or {}
    for d in inputs:
        key = d.get("name") or d["column"]
        join = joins.get(key)
        try:
            if d["modality"] in ("continuous", "vector"):
                columns = d.get("columns") or [d["column"]]
                if d["modality"] == "vector":
                    x = numeric_matrix(X, columns, nan_to=float("nan"))  # NaN where NaN or inf
                    x = _fill_empty(X, x, columns, d, key, join, source_name)
                else:
                    x = numeric_matrix(X, columns)
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
            if join is not None and e.file is None:
                raise _feature_file_error(e, key, join) from None
            if e.file is None:
                raise DeepQoEError(e.message, file=source_name, column=e.column, row=e.row) from None
            raise


def _fill_empty(X: pd.DataFrame, x: np.ndarray, columns: list[str], d: dict, key: str, join: tuple | None,
                source_name: str) -> np.ndarray:
    """A vector input's empty cells (NaN, inf; NaN in ``x``): an error naming the first one's column and row
    (``nan_to`` null, the default), or set to ``nan_to``, with one note saying how many and where."""
    bad = np.isnan(x)
    if not bad.any():
        return x
    nan_to = d.get("nan_to")
    if nan_to is None:
        r, j = (int(v) for v in np.argwhere(bad)[0])
        v = pd.to_numeric(pd.Series([X[columns[j]].iloc[r]]), errors="coerce").iloc[0]
        what = "an infinite value" if pd.notna(v) else "a missing value (an empty cell, NaN)"
        raise DeepQoEError(f"{what}; fill it or drop the row, or set nan_to on input '{key}' (the number to read "
                           "such cells as)", column=columns[j], row=r + 1)
    rows = np.flatnonzero(bad.any(1))
    if join is not None:  # counted in the feature file: several table rows can join one of its rows
        path, frows, raw, _ = join
        first = {}
        for r in rows:
            first.setdefault(int(frows[r]), r)
        n_cells = int(sum(bad[r].sum() for r in first.values()))
        where = (f"file '{path}', input '{key}': {n_cells} empty cell(s) (NaN or inf) in {len(first)} row(s) of the "
                 f"feature file read as nan_to {nan_to:g} (ids " +
                 ", ".join(show_value(raw.iloc[r]) for r in list(first.values())[:3]) +
                 (", ..." if len(first) > 3 else "") + ")")
    else:
        where = (f"file '{source_name}', input '{key}': {int(bad.sum())} empty cell(s) (NaN or inf) in {len(rows)} "
                 f"row(s) read as nan_to {nan_to:g} (rows " + ", ".join(str(r + 1) for r in rows[:3]) +
                 (", ..." if len(rows) > 3 else "") + ")")
    warnings.warn(where, DeepQoENote, stacklevel=4)
    return np.where(bad, nan_to, x)


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
    feature_files = feature_files_metadata(cfg)
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
    return Dataset(cfg, X.reset_index(drop=True), y, groups, ids, inputs, ratings, source=name,
                   feature_files=feature_files or None)


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
                      if inp.file.lower().endswith(".mat") else [(inp.column, as_ids(df[inp.column]).to_numpy(object))])
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
