"""Batch scoring on Dask: ``deepqoe predict MODEL INPUT --out OUT/ --scheduler local|tcp://host:port``.

::

    deepqoe predict streaming sessions/ --out scores/ --scheduler local --workers 2   # partitioned Parquet
    deepqoe predict upec-qoe-lab rows.csv --out scores/ --scheduler tcp://10.0.0.5:8786

    from deepqoe.batch_scoring import score_batch
    result = score_batch("streaming", "sessions/", "scores/", scheduler="local", workers=2)

For tables larger than memory. ``INPUT`` is a Parquet file, a folder of Parquet partitions (``*.parquet``
/ ``*.pq``, read in name order), a CSV, or a folder of CSVs; it is read in partitions by the workers
(CSV in blocks of ``blocksize`` bytes). ``OUT`` is a new folder of Parquet partitions
``part-00000.parquet``, ... (one per non-empty partition), written atomically: the partitions are written
into a temporary sibling folder, renamed onto ``OUT`` when every partition has been scored; nothing is
left at ``OUT`` when the run fails. An ``OUT`` that exists already is an error (nothing is overwritten).
A remote cluster must see ``INPUT``, ``OUT``'s parent folder and the model at the same paths (a shared
file system).

* **Session models** (``streaming``): the input is in the CSV-of-sessions layout (one row per segment,
  a ``session_id`` column; see :func:`deepqoe.sessions.readers.sessions_from_frame`, the parser
  ``deepqoe predict`` uses for a CSV). Every input file's header is checked first, with ``deepqoe predict``'s
  hints (:func:`check_session_headers`). The rows are shuffled by ``session_id`` (Dask's hash shuffle) so
  that every row of a session lands in one partition, whichever input partitions it was spread over,
  then put back in input order; an id whose rows come back after other sessions' rows is an id used twice
  (the first block is scored, the later one is a failure, its rows numbered over the whole input), as
  ``deepqoe predict`` says it. The output has one row per session: ``id, score, scale`` (+ interval
  columns when asked), in no particular order across partitions. A session that cannot be read or
  scored is left out and reported (the exit status is then 3, partial), as ``deepqoe predict`` does.
* **Table models** (``upec-qoe-lab``): each input partition is scored as it is; the output is
  ``deepqoe predict``'s table (``row`` numbered over the whole input, ``id``, ``score``, ...). A bad
  value stops the run with one error naming the row, as ``deepqoe predict`` does. With ``--features``
  (``features=``) a vector input joins that feature file instead of the model's, as in ``deepqoe predict``.

Scores come from :class:`deepqoe.predictor.Predictor` (``predict_sessions`` / ``predict_rows``), the one
path to scores: they are the same as ``deepqoe predict``'s. Each worker process loads the model once
(:func:`worker_predictor`, cached per process) whatever the number of partitions it scores. Dask
(``dask[distributed]``) comes with the ``[video]`` extra.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepqoe.errors import DeepQoEError, DeepQoENote

PART_NAME = "part-{:05d}.parquet"
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".tsv")
SESSION_CHUNK = 5000  # sessions scored at a time inside a partition (bounds a worker's memory)
DASK_MISSING = "batch scoring (--scheduler) needs Dask: pip install 'deepqoe[video]'"
LOCAL_PROCESSES = True  # `--scheduler local` workers are processes (threads would share one GIL)


@dataclass
class BatchResult:
    """What a batch run did: where it wrote, how many sessions / rows it scored, what failed."""

    out: Path
    kind: str                        # "sessions" or "rows"
    n_scored: int
    n_partitions: int                # output partitions written
    failures: list[DeepQoEError] = field(default_factory=list)
    seconds: float = 0.0


# ------------------------------------------------------------------------------------------- workers
_LOAD_LOCK = threading.Lock()


def worker_predictor(model: str, torch_threads: int | None = None):
    """The model, loaded once per worker process (every partition a process scores reuses it, and worker
    threads of one process wait for the first load); sets the process's torch threads to ``torch_threads``."""
    with _LOAD_LOCK:
        return _load_predictor(model, torch_threads)


@functools.lru_cache(maxsize=4)
def _load_predictor(model: str, torch_threads: int | None):
    from deepqoe.features.text import set_progress
    from deepqoe.predictor import load_predictor

    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    import multiprocessing

    if multiprocessing.current_process().name != "MainProcess":  # a worker process (not threads of the client)
        set_progress(False)  # draws no loading bar: many workers on one terminal, and -q never reaches them
    return load_predictor(model)


def _error_dict(e: DeepQoEError) -> dict:
    return {"message": e.message, "file": e.file, "field": e.field, "column": e.column, "row": e.row}


def _error(d: dict) -> DeepQoEError:
    return DeepQoEError(d["message"], file=d["file"], field=d["field"], column=d["column"], row=d["row"])


def _plain_strings(df: pd.DataFrame) -> pd.DataFrame:
    """Text columns as pandas' ``str`` dtype (missing = NaN), as ``deepqoe predict`` reads a CSV (Dask's
    Arrow strings mark a missing value with pd.NA, which the session parser does not take for missing)."""
    for c in df.columns:
        if isinstance(df[c].dtype, pd.StringDtype) or df[c].dtype == object:
            df[c] = df[c].astype(pd.StringDtype(na_value=np.nan))
    return df


def _with_notes(partition_fn):
    """A partition task that also returns the notes on the input (:class:`DeepQoENote` warnings) it raised, as
    ``"notes"``: a worker's warnings never reach the user, so the client says each distinct one once."""
    @functools.wraps(partition_fn)
    def run(*args, **kwargs) -> dict:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DeepQoENote)
            res = partition_fn(*args, **kwargs)
        notes = [str(w.message) for w in caught if issubclass(w.category, DeepQoENote)]
        for w in caught:  # any other warning as it would have been shown
            if not issubclass(w.category, DeepQoENote):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return dict(res, notes=list(dict.fromkeys(notes)))
    return run


def _id_runs(df: pd.DataFrame) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """One input partition's ``session_id`` as runs of equal cells: (its rows, each run's id, first and last
    position); what :func:`_ids_used_twice` needs of it (far fewer values than rows)."""
    ids = df["session_id"]
    starts = np.flatnonzero((ids != ids.shift()).to_numpy(dtype=bool, na_value=True))  # a missing id: its own run
    return len(ids), ids.to_numpy(dtype=object)[starts], starts, np.r_[starts[1:] - 1, len(ids) - 1]


def _ids_used_twice(runs: list, source: str) -> dict:
    """The ids whose rows are not one block in the whole input (the input partitions' :func:`_id_runs`, in
    order), as ``deepqoe predict`` finds them in a CSV: id -> ((input partition, position) of the first block's
    last row, the error naming the blocks by row of the whole input). The shuffle brings an id's blocks
    together, so a partition alone cannot tell them apart."""
    from deepqoe.sessions.readers import duplicate_rows_error, ids_used_twice

    if not runs:
        return {}
    offsets = np.r_[0, np.cumsum([r[0] for r in runs])[:-1]]
    part = np.concatenate([np.full(len(r[1]), k, np.int64) for k, r in enumerate(runs)])
    ids = np.concatenate([r[1] for r in runs])
    first, last = (np.concatenate([r[i] + offsets[k] for k, r in enumerate(runs)]) for i in (2, 3))
    out = {}
    for sid, blocks in ids_used_twice(ids):  # blocks of runs: as rows of the input, numbered from 1
        e = duplicate_rows_error(sid, [(int(first[a]), int(last[b])) for a, b in blocks], lambda i: i + 1, source)
        end = blocks[0][1]
        out[sid] = ((int(part[end]), int(last[end] - offsets[part[end]])), _error_dict(e))
    return out


@_with_notes
def _score_sessions_partition(df: pd.DataFrame, number: int, folder: str, model: str, torch_threads: int | None,
                              scale: str | None, interval: float | None, source: str,
                              calibration: str | None = None, twice: dict | None = None) -> dict:
    """Score the sessions of one shuffled partition and write its Parquet file: ``{"n", "failures"}`` (+
    ``"ignored_mos"``: [how many, the first's error] of the sessions whose unusable mos was left out, for the
    client's one note). ``twice`` (:func:`_ids_used_twice`): the later blocks of rows of those ids are left out,
    each id a failure."""
    from deepqoe.sessions.readers import sessions_from_frame
    from deepqoe.sessions.session import IgnoredMos

    try:
        predictor = worker_predictor(model, torch_threads)
        if not len(df):
            return {"n": 0, "failures": []}
        df = df.sort_values(["_part", "_pos"], kind="stable").reset_index(drop=True)
        failures = []
        mine = df["session_id"].isin(list(twice)).to_numpy() if twice else np.zeros(len(df), bool)
        if mine.any():  # an id used twice: its first block is the session, as deepqoe predict reads it
            ids = df["session_id"][mine]
            failures = [twice[sid][1] for sid in pd.unique(ids)]
            end_part, end_pos = (ids.map({sid: v[0][i] for sid, v in twice.items()}).to_numpy() for i in (0, 1))
            p, q = df["_part"].to_numpy()[mine], df["_pos"].to_numpy()[mine]
            later = np.zeros(len(df), bool)
            later[mine] = (p > end_part) | ((p == end_part) & (q > end_pos))
            df = df[~later]
        df = _plain_strings(df.drop(columns=["_part", "_pos"]).reset_index(drop=True))
        codes, _ = pd.factorize(df["session_id"], use_na_sentinel=False)  # sessions by first appearance
        order = np.argsort(codes, kind="stable")
        df, codes = df.iloc[order].reset_index(drop=True), codes[order]
        bounds = np.searchsorted(codes, np.arange(0, int(codes[-1]) + 1 + SESSION_CHUNK, SESSION_CHUNK))
        rows, ignored = [], IgnoredMos()
        for a, b in zip(bounds[:-1], bounds[1:]):
            if a == b:
                continue
            sessions, bad = sessions_from_frame(df.iloc[a:b], file=source, first_row=None, ignore_mos=ignored)
            got, bad2 = (predictor.predict_sessions(sessions, scale=scale, curve=False, interval=interval,
                                                    calibration=calibration)
                         if sessions else ([], []))
            rows.extend(got)
            failures.extend(_error_dict(e) for e in list(bad) + list(bad2))
        if rows:
            from deepqoe.sessions.predict import session_table

            session_table(rows).to_parquet(Path(folder) / PART_NAME.format(number), index=False)
        return {"n": len(rows), "failures": failures,
                "ignored_mos": [ignored.n, _error_dict(ignored.first)] if ignored.n else None}
    except DeepQoEError as e:  # the whole partition (a bad model, an unreadable column): stop the run
        return {"n": 0, "failures": [], "error": _error_dict(e)}


@_with_notes
def _score_rows_partition(df: pd.DataFrame, number: int, first_row: int, folder: str, model: str,
                          torch_threads: int | None, interval: float | None, source: str,
                          features: dict | None = None) -> dict:
    """Score one partition of a table model's rows and write its Parquet file: ``{"n", "failures"}``
    (``features``: {input: feature file} read instead of the model's own, :func:`score_batch`)."""
    from deepqoe.predictor import prediction_table, with_feature_files
    from deepqoe.workflow import prediction_frame

    try:
        predictor = worker_predictor(model, torch_threads)
        if not len(df):
            return {"n": 0, "failures": []}
        df = _plain_strings(df.reset_index(drop=True))
        try:
            meta = predictor.meta if not features else with_feature_files(predictor.meta, features)
            X, ids = prediction_frame(meta, df, source)
            rows = predictor.predict_rows(X, interval=interval)
        except DeepQoEError as e:  # its row is the partition's: make it the input's
            if e.row is None:
                raise
            raise DeepQoEError(e.message, file=e.file, field=e.field, column=e.column,
                               row=e.row + first_row - 1) from None
        prediction_table(predictor, rows, ids, first_row).to_parquet(Path(folder) / PART_NAME.format(number),
                                                                      index=False)
        return {"n": len(rows), "failures": []}
    except DeepQoEError as e:
        return {"n": 0, "failures": [], "error": _error_dict(e)}


# ------------------------------------------------------------------------------------------- client
def input_files(data: str | Path) -> tuple[list[Path], str]:
    """The files of ``INPUT`` and their format (``"parquet"`` or ``"csv"``)."""
    p = Path(data)
    if not p.exists():
        raise DeepQoEError("file or folder not found", file=str(p))
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in PARQUET_SUFFIXES + CSV_SUFFIXES
                       and not f.name.startswith("."))
        if not files:
            raise DeepQoEError("no .parquet or .csv files in the folder", file=str(p))
    else:
        files = [p]
    kinds = {"parquet" if f.suffix.lower() in PARQUET_SUFFIXES else "csv" if f.suffix.lower() in CSV_SUFFIXES
             else None for f in files}
    if None in kinds:
        raise DeepQoEError("batch scoring reads Parquet or CSV (a file, or a folder of partitions)", file=str(p))
    if len(kinds) > 1:
        raise DeepQoEError("the folder mixes Parquet and CSV files; give one format", file=str(p))
    return files, kinds.pop()


def _csv_sep(files: list[Path], reader: dict) -> str:
    """The separator of the input CSVs: the model's reader's, or a tab when every file is a ``.tsv``."""
    sep = reader.get("sep", ",")
    return "\t" if sep == "," and all(f.suffix.lower() == ".tsv" for f in files) else sep


def _header(f: Path, fmt: str, sep: str, encoding: str) -> list[str]:
    """The column names of one input file as written (Parquet: its schema's, less an index pandas stored)."""
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            schema = pq.read_schema(f)
            index = {c for c in (schema.pandas_metadata or {}).get("index_columns", ()) if isinstance(c, str)}
            return [n for n in schema.names if n not in index]
        return [str(c) for c in pd.read_csv(f, sep=sep, nrows=0, encoding=encoding).columns]
    except (OSError, ValueError) as e:  # an encoding error, an empty file, not Parquet...
        raise DeepQoEError(f"cannot read the input: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                           file=str(f)) from None


def check_session_headers(files: list[Path], fmt: str, sep: str = ",", encoding: str = "utf-8") -> None:
    """The header of each input file of a session model, checked before any work by
    :func:`deepqoe.sessions.readers.check_csv_columns` as ``deepqoe predict`` checks a CSV of sessions (the
    same hints: a file separated by ';', a comma at the end of each line, a column name in capitals or with
    spaces around it), naming the file. The names are taken as written (the ids are too: see
    :func:`~deepqoe.sessions.readers.sessions_from_frame`). The CSVs of a folder are read as one table, so
    they must have one header (Parquet partitions may differ)."""
    from deepqoe.sessions.readers import check_csv_columns

    first: list[str] | None = None
    for f in files:
        names = _header(f, fmt, sep, encoding)
        check_csv_columns(names, str(f))
        if first is None:
            first = names
        elif fmt == "csv" and names != first:
            raise DeepQoEError(f"the header differs from that of {files[0].name} ({', '.join(first)}); the CSVs of "
                               "a folder are read as one table, so every file needs the same columns in the same "
                               "order", file=str(f))


def _read(files: list[Path], fmt: str, source: str, reader: dict, blocksize: str | int):
    """The input as a Dask DataFrame (text columns of sessions as text: '001' is not 1)."""
    import dask.dataframe as dd

    from deepqoe.sessions.readers import CSV_TEXT_COLUMNS

    names = [str(f) for f in files]
    try:
        if fmt == "parquet":
            return dd.read_parquet(names)
        return dd.read_csv(names, blocksize=blocksize, sep=_csv_sep(files, reader), decimal=reader.get("decimal", "."),
                           encoding=reader.get("encoding", "utf-8"), assume_missing=True,
                           dtype={c: str for c in list(CSV_TEXT_COLUMNS) + list(reader.get("text", []))})
    except (OSError, ValueError) as e:
        raise DeepQoEError(f"cannot read the input: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                           file=source) from None


def _tag(df: pd.DataFrame, partition_info: dict | None = None) -> pd.DataFrame:
    """Each row's input partition and position in it, to put a session's rows back in order after the
    shuffle."""
    number = (partition_info or {}).get("number", 0)
    return df.assign(_part=np.int64(number), _pos=np.arange(len(df), dtype=np.int64))


def _model_ref(model: Any, predictor) -> str:
    """How workers find the model: a shipped model's name (found in each worker's own installation), else
    the model folder's absolute path."""
    from deepqoe.persistence import PRETRAINED_DIR, resolve_model_dir

    d = (predictor.model_dir if predictor.model_dir is not None else resolve_model_dir(model)).resolve()
    return d.name if d.parent == PRETRAINED_DIR.resolve() else str(d)


def check_out(out: str | Path) -> Path:
    """The output folder: it must not exist yet and must not look like a file name."""
    o = Path(out)
    if o.suffix.lower() in (".csv", ".json", ".parquet", ".pq", ".tsv"):
        raise DeepQoEError("with --scheduler, --out is a folder of Parquet partitions (part-00000.parquet, ...); "
                           "give a folder name", file=str(o))
    if o.exists():
        raise DeepQoEError("already exists; batch scoring writes a new folder (remove it or choose another "
                           "--out)", file=str(o))
    return o


def score_batch(model: Any, data: str | Path, out: str | Path, *, scheduler: str = "local",
                workers: int | None = None, processes: bool = True, scale: str | None = None,
                interval: float | None = None, blocksize: str | int = "64MB", npartitions: int | None = None,
                progress: bool = False, predictor=None, say=None, calibration: str | None = None,
                features: dict | None = None) -> BatchResult:
    """Score ``data`` into the folder ``out`` on a Dask cluster (see the module docstring). ``model``: a
    model folder or a shipped name (``predictor``: the same, already loaded here). ``npartitions``: of the
    session shuffle (default: as many as the input has). ``features``: a table model's vector inputs read
    these feature files ({input: file}; the input None: its one such input) instead of the model's own, as
    ``deepqoe predict --features`` (:func:`deepqoe.predictor.with_feature_files`; a remote cluster must see
    them at the same paths). Raises a DeepQoEError when nothing was scored or a partition failed as a whole;
    otherwise the failed sessions are in the result."""
    from deepqoe.dask_cluster import dask_client
    from deepqoe.io import atomic_directory
    from deepqoe.predictor import load_predictor
    from deepqoe.sessions.scales import COMMON_SCALE, parse_scale

    t0 = time.perf_counter()
    say = say or (lambda m: print(m, file=sys.stderr, flush=True))
    predictor = predictor if predictor is not None else load_predictor(model)
    kind = "sessions" if predictor.is_session else "rows"
    if kind == "sessions":
        parse_scale(scale or COMMON_SCALE)  # a bad scale fails before any work
    elif scale or calibration:
        raise DeepQoEError(f"--{'scale' if scale else 'calibration'} is for session models; this model predicts "
                           "from table rows")
    if features:
        if kind == "sessions":
            raise DeepQoEError("--features is for table models with a vector input read from a feature file; "
                               "this is a session model", field="features")
        from deepqoe.predictor import resolve_feature_files

        features = resolve_feature_files(predictor.meta, features)  # checked here, before any work
    calibration = predictor.check_calibration(calibration)
    if interval is not None:
        interval = predictor.check_interval(interval, calibration)
    out = check_out(out)
    source = str(data)
    files, fmt = input_files(data)
    try:
        import dask
        import dask.dataframe  # noqa: F401  (Dask distributed: checked by dask_client)
    except ImportError:
        raise DeepQoEError(DASK_MISSING) from None
    reader: dict = {}
    if kind == "rows":
        from deepqoe.datasets import join_columns
        from deepqoe.workflow import prediction_dataset

        cfg = prediction_dataset(predictor.meta)
        if cfg is not None:  # ids and join keys as written, as deepqoe predict reads them
            reader = {"sep": cfg.reader.sep, "decimal": cfg.reader.decimal, "encoding": cfg.reader.encoding,
                      "text": join_columns(cfg)}
    if kind == "sessions":  # before starting a cluster: a bad header of any file is said at once
        check_session_headers(files, fmt, _csv_sep(files, reader), reader.get("encoding", "utf-8"))
    ref = _model_ref(model, predictor)
    client, cluster, _ = dask_client(scheduler, workers, processes)
    # one torch thread per worker: the parallelism is across workers, and the per-batch work is small enough
    # that more threads only contend (2 threads on a busy 2-core machine: 6x slower, docs/benchmarks.md)
    torch_threads = 1
    try:
        with dask.config.set({"dataframe.convert-string": False}):
            ddf = _read(files, fmt, source, reader, blocksize)
            with atomic_directory(out, "part-*.parquet", "a folder of scored partitions") as tmp:
                if kind == "sessions":
                    n = npartitions or ddf.npartitions
                    tagged = ddf.map_partitions(_tag, meta=ddf._meta.assign(_part=np.int64(0), _pos=np.int64(0)))
                    parts = tagged.shuffle(on="session_id", npartitions=n).to_delayed()
                    # the ids on two blocks of rows, found in input order (the shuffle joins the blocks)
                    twice = dask.delayed(_ids_used_twice)([dask.delayed(_id_runs)(p) for p in ddf.to_delayed()],
                                                          source)
                    tasks = [dask.delayed(_score_sessions_partition, pure=False)(
                        p, i, str(tmp), ref, torch_threads, scale, interval, source, calibration, twice)
                        for i, p in enumerate(parts)]
                else:
                    parts = ddf.to_delayed()
                    lengths = [int(x) for x in client.gather(client.compute([dask.delayed(len)(p) for p in parts]))]
                    starts = np.concatenate([[1], 1 + np.cumsum(lengths)[:-1]]).astype(int).tolist()
                    tasks = [dask.delayed(_score_rows_partition, pure=False)(
                        p, i, starts[i], str(tmp), ref, torch_threads, interval, source, features or None)
                        for i, p in enumerate(parts)]
                n_workers = len(client.nthreads())
                where = f"a local Dask cluster ({n_workers} workers)" if scheduler == "local" else scheduler
                say(f"deepqoe predict: scoring {source} ({len(files)} file(s), {len(tasks)} partition(s)) on {where}")
                n_ok, failures = _run(client, tasks, kind, progress)
                if n_ok == 0:
                    from deepqoe.cli import finish_batch

                    finish_batch(failures, 0, verb="predicted", file=source)  # lists them, raises
                n_written = sum(1 for _ in tmp.glob("part-*.parquet"))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return BatchResult(out=out, kind=kind, n_scored=n_ok, n_partitions=n_written, failures=failures,
                       seconds=time.perf_counter() - t0)


def _run(client, tasks: list, kind: str, progress: bool) -> tuple[int, list[DeepQoEError]]:
    """Compute the partition tasks, with a progress bar on standard error: (scored, failures)."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    from deepqoe.sessions.session import IgnoredMos

    futures = client.compute(tasks)
    n_ok, failures, notes, ignored = 0, [], {}, IgnoredMos()
    bar = tqdm(total=len(futures), unit="partition", desc="predict", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)
    try:
        for fut in as_completed(futures):
            try:
                res = fut.result()
            except DeepQoEError:
                raise
            except Exception as e:  # noqa: BLE001 - a lost worker, a partition that could not be read
                raise DeepQoEError(f"a partition failed on the cluster: {type(e).__name__}: "
                                   f"{str(e).splitlines()[0] if str(e) else ''}") from None
            if "error" in res:
                raise _error(res["error"])
            n_ok += res["n"]
            failures.extend(_error(d) for d in res["failures"])
            notes.update(dict.fromkeys(res.get("notes", ())))
            if res.get("ignored_mos"):  # the partitions' sessions whose mos was left out: one note for the batch
                ignored.add(_error(res["ignored_mos"][1]), res["ignored_mos"][0])
            bar.update(1)
            bar.set_postfix_str(f"{n_ok} {kind} scored, {len(failures)} failed", refresh=False)
    finally:
        bar.close()
        for f in futures:
            f.cancel()
    for note in notes:  # each distinct note of the workers once (a partition's counts are its own rows)
        warnings.warn(note, DeepQoENote, stacklevel=2)
    ignored.note()
    return n_ok, failures


def predict_batch(predictor, args, features: dict | None = None) -> int:
    """The ``deepqoe predict --scheduler`` route (``args``: ``model_dir``, ``data``, ``out``, ``scheduler``,
    ``workers``, optional ``scale``, ``interval``, ``json``, ``quiet``; ``features``: ``--features``' files,
    {input: file}, as :func:`score_batch` takes them): the exit status, 0, or 3 when some sessions failed (a
    DeepQoEError when none was scored)."""
    from deepqoe.cli import UsageError, finish_batch, show_progress, status

    if not getattr(args, "out", None):
        raise UsageError("--scheduler needs --out FOLDER (the scores are written as Parquet partitions)")
    if args.workers is not None and args.scheduler != "local":
        raise UsageError("--workers is for --scheduler local (a remote cluster has its own workers)")
    most = 4 * (os.cpu_count() or 1)  # each worker is a process that loads torch and the model
    if args.workers is not None and not 1 <= args.workers <= most:
        raise UsageError(f"--workers must be 1 to {most} (4 per core of this machine), got {args.workers}")
    from deepqoe.cli_models import interval_level

    interval = interval_level(args, predictor)  # --interval (default 0.9 when the model has intervals.json)
    res = score_batch(args.model_dir, args.data, args.out, scheduler=args.scheduler, workers=args.workers,
                      processes=LOCAL_PROCESSES, scale=getattr(args, "scale", None), interval=interval,
                      calibration=getattr(args, "calibration", None), features=features,
                      progress=show_progress(args), predictor=predictor, say=lambda m: status(args, m))
    rate = res.n_scored / res.seconds if res.seconds > 0 else math.inf
    status(args, f"{res.n_scored} {res.kind} scored in {res.seconds:.1f} s ({rate:.0f}/s); "
                 f"{res.n_partitions} partition(s) written to {res.out}")
    return finish_batch(res.failures, res.n_scored, verb="predicted", file=args.data)
