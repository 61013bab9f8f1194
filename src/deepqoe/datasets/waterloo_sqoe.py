"""The Waterloo SQoE family: any folder in its layout (:func:`load_waterloo_folder`) and Waterloo SQoE-IV
(``$DEEPQOE_DATA/waterloo-sqoe-iv/``, the partial release of Leo-rojo/Analysis-of-Waterloo-IV-QoE-dataset)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from deepqoe.datasets.files import data_root, need
from deepqoe.errors import DeepQoEError, DeepQoENote
from deepqoe.sessions.readers import StreamingDataset
from deepqoe.sessions.schema import short_value
from deepqoe.sessions.session import IgnoredMos, Session

_DISPLAY = {"phone": 1080, "hdtv": 1080, "uhdtv": 2160}
#: data.csv columns copied into ``meta`` where the folder has them.
WATERLOO_META_COLUMNS = ("abr", "content", "encoding_profile", "device", "trace")
#: log column -> pooled (duration-weighted) ``meta`` column, where the log has it.
WATERLOO_POOLED = {"psnr": "psnr_mean", "ssim": "ssim_mean", "representation_index": "rep_index_mean",
                   "qp": "qp_mean"}
#: The number columns of a log that are read (every cell checked, :func:`_log_numbers`).
_LOG_NUMBERS = ("chunk_duration", "rebuffering_duration", "video_bitrate", "width", "height", "framerate", "vmaf",
                *WATERLOO_POOLED)
_TEXT = {c: str for c in ("streaming_log", "abr", "content", "encoding_profile", "device", "individual_scores")}


#: The most bad cells one error lists (the first and the others after it); the rest are counted.
MAX_BAD_CELLS = 20


def _bad_numbers(cells: pd.Series, column: str, *, missing_ok: bool = False) -> tuple[np.ndarray, list]:
    """A column as floats, and its bad cells: ``(row index, column, problem)`` for each cell that is not a
    finite number (with ``missing_ok`` an empty cell is NaN, not a bad cell)."""
    v = pd.to_numeric(cells, errors="coerce").to_numpy(float)
    bad = ~np.isfinite(v) & ~(missing_ok & cells.isna().to_numpy())
    return v, [(int(i), column, "expected a finite number, got "
                + ("a missing value" if pd.isna(cells.iloc[i]) else short_value(cells.iloc[i])))  # n/a, NA: missing
               for i in np.flatnonzero(bad)]


def _cells_error(bad: list, file: Path, where: str) -> DeepQoEError:
    """One error for the bad cells ``(row index, column, problem)`` of one file, in row order (a row's cells in
    the order given): the first is the error's column and row (rows counted from 1 after the header), as
    when it is the only one; the others follow it, each with its column and row, at most
    :data:`MAX_BAD_CELLS` named in all and the rest counted. ``where``: where they are (``"in this log"``)."""
    bad = sorted(bad, key=lambda b: b[0])
    i, column, problem = bad[0]
    rest = bad[1:]
    if rest:
        named = [f"column '{c}', row {k + 1}: {p}" for k, c, p in rest[:MAX_BAD_CELLS - 1]]
        if len(rest) > len(named):
            named.append(f"and {len(rest) - len(named)} more")
        problem += f" (and {len(rest)} more bad cell(s) {where}: {'; '.join(named)})"
    return DeepQoEError(problem, file=str(file), column=column, row=i + 1)


def _numbers(cells: pd.Series, file: Path, column: str, *, missing_ok: bool = False) -> np.ndarray:
    """A column as floats; the cells that are not finite numbers are one error naming the file, column and
    row of each (:func:`_cells_error`). With ``missing_ok`` an empty cell is NaN."""
    v, bad = _bad_numbers(cells, column, missing_ok=missing_ok)
    if bad:
        raise _cells_error(bad, file, "in this column")
    return v


def _log_numbers(log: pd.DataFrame, f: Path) -> dict[str, np.ndarray]:
    """The number columns of a log that are read (:data:`_LOG_NUMBERS`, where the log has them) as floats.
    Every bad cell of the log (not a finite number; a negative ``rebuffering_duration``) is named in one
    error (:func:`_cells_error`), so that one run shows all there is to fix in the log."""
    cols, bad = {}, []
    for c in log.columns:
        if c in _LOG_NUMBERS:
            cols[c], b = _bad_numbers(log[c], c)
            bad.extend(b)
    reb = cols.get("rebuffering_duration")
    if reb is not None:
        bad.extend((int(i), "rebuffering_duration", f"a stall duration must not be negative (got {reb[i]:g})")
                   for i in np.flatnonzero(reb < 0))
    if bad:
        where = {c: k for k, c in enumerate(log.columns)}  # a row's cells in the log's order
        raise _cells_error(sorted(bad, key=lambda b: (b[0], where[b[1]])), f, "in this log")
    return cols


def _first_true(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _trace(v):
    """A ``trace`` id: an integer where it is one (``3``, or ``3.0`` from a column with an empty cell), else
    the value as it is (text such as ``t2``)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return int(f) if f.is_integer() else v


def waterloo_layout(path: str | os.PathLike) -> Path | None:
    """The folder, when ``path`` is a folder in the Waterloo SQoE layout (``data.csv`` and
    ``streaming_logs/``) or that folder's ``data.csv``; else None."""
    p = Path(path)
    if p.is_file() and p.name.lower() == "data.csv":
        p = p.parent
    return p if p.is_dir() and (p / "data.csv").is_file() and (p / "streaming_logs").is_dir() else None


def _read_data_csv(base: Path, *, mos_required: bool = True, for_prediction: bool = False
                   ) -> tuple[pd.DataFrame, Path, np.ndarray]:
    """``data.csv`` (text columns kept as text) and its ``mos`` (NaN without the column; an empty cell is NaN
    too unless ``mos_required``). ``for_prediction`` (the mos plays no part): a cell that is not a number is NaN,
    with one note naming the first, instead of an error."""
    from deepqoe.io import read_table

    data_file = need(base / "data.csv")
    data = read_table(data_file, dtype=_TEXT)
    if "streaming_log" not in data.columns:
        raise DeepQoEError("missing the column 'streaming_log' (the log file of each session)",
                           file=str(data_file), column="streaming_log")
    if "mos" not in data.columns:
        return data, data_file, np.full(len(data), np.nan)
    if for_prediction:
        mos, bad = _bad_numbers(data["mos"], "mos", missing_ok=True)
        if bad:  # said as every mos prediction does without (IgnoredMos): one note
            k, _, problem = bad[0]
            ignored = IgnoredMos()
            ignored.add(DeepQoEError(problem, file=str(data_file), column="mos", row=k + 1), n=len(bad))
            ignored.note()
        return data, data_file, mos
    return data, data_file, _numbers(data["mos"], data_file, "mos", missing_ok=not mos_required)


def _note_log_mos(data_file: Path, logs: dict) -> None:
    """One note for a folder whose logs have a per-chunk ``mos`` column (``logs``: each log read -> whether it
    has one, :func:`_layout_session`): it is ignored, naming the first such log and how many have one."""
    with_mos = [f for f, has in logs.items() if has]
    if with_mos:
        warnings.warn(f"{with_mos[0]}: column 'mos' (a per-chunk score) is ignored, as in every log of this folder "
                      f"that has one ({len(with_mos)} of the {len(logs)} logs read): only the session's mos in "
                      f"{data_file} is a target", DeepQoENote, stacklevel=3)


def _layout_session(base: Path, r: dict, mos: float, *, name: str, mos_scale: str,
                    chunk_duration: float | None, row: int, seen: dict, logs: dict) -> tuple[Session, dict]:
    """One ``data.csv`` row (number ``row``) and its log: the session and its ``meta`` row. ``seen`` maps the
    ids read so far to their rows (a second row naming the same log is an error); ``logs`` gets the log's
    path -> whether it has a per-chunk ``mos`` (ignored; :func:`_note_log_mos` says so once per folder). A
    ``mos`` off ``mos_scale`` is an error naming ``data.csv``, its column and row."""
    from deepqoe.io import read_table

    log_name = str(r["streaming_log"]).strip()
    if not log_name.lower().endswith(".csv"):
        log_name += ".csv"
    if log_name[:-4] in seen:
        raise DeepQoEError(f"session '{log_name[:-4]}': the id is used twice (row {seen[log_name[:-4]]} names the "
                           f"same log)", file=str(base / "data.csv"), column="streaming_log", row=row)
    f = base / "streaming_logs" / log_name
    if not f.is_file():  # a log data.csv names but the folder lacks: the user's folder, not DEEPQOE_DATA
        raise DeepQoEError(f"no log '{log_name}' in streaming_logs/ for this row", file=str(base / "data.csv"),
                           column="streaming_log", row=row)
    log = read_table(f)
    logs[f] = "mos" in log.columns
    if "chunk_duration" not in log.columns and chunk_duration is None:
        raise DeepQoEError("missing the column 'chunk_duration' (give chunk_duration= for logs "
                           "without it)", file=str(f), column="chunk_duration")
    if "rebuffering_duration" not in log.columns:
        raise DeepQoEError("missing the column 'rebuffering_duration' (the stall before each chunk)",
                           file=str(f), column="rebuffering_duration")
    cols = _log_numbers(log, f)
    dur = cols["chunk_duration"] if "chunk_duration" in cols else np.full(len(log), float(chunk_duration))
    reb = cols["rebuffering_duration"]
    start = np.concatenate([[0.0], np.cumsum(dur)[:-1]])
    stall = reb > 0
    vmaf = cols.get("vmaf")
    off = None if vmaf is None else (vmaf < 0) | (vmaf > 100)
    if off is not None and off.any():
        k, more = _first_true(off), int(off.sum()) - 1
        warnings.warn(f"{f}: column 'vmaf', row {k + 1}: {vmaf[k]:g} is outside 0-100"
                      f"{f' ({more} more in this log)' if more else ''}; clipped to 0-100 (the segment quality's "
                      "range)", DeepQoENote, stacklevel=2)
    codec = r.get("encoding_profile")
    device = r.get("device")
    device = str(device) if isinstance(device, str) else "unknown"
    content = r.get("content") if isinstance(r.get("content"), str) else None
    ctx = {"display_height": _DISPLAY[device]} if device in _DISPLAY else {}  # data.csv's device is in meta
    try:
        session = Session.from_arrays(
            log_name[:-4], start, dur, bitrate_kbps=cols.get("video_bitrate"),
            width=cols.get("width"), height=cols.get("height"),
            fps=cols.get("framerate"), quality=None if vmaf is None else np.clip(vmaf, 0, 100),
            codec=codec.strip().lower() if isinstance(codec, str) else None,
            stall_start=start[stall], stall_duration=reb[stall], device=device, context=ctx, content=content,
            representation=cols.get("representation_index"),
            mos=None if np.isnan(mos) else float(mos), mos_scale=None if np.isnan(mos) else mos_scale,
            dataset=name, file=str(f))
    except DeepQoEError as e:  # the session's mos is data.csv's (its scale check), not the log's
        if e.field != "mos":
            raise
        raise DeepQoEError(e.message, file=str(base / "data.csv"), column="mos", row=row) from None
    meta = {"session_id": session.id, "streaming_log": log_name}
    for c in WATERLOO_META_COLUMNS:
        if c in r:
            meta[c] = _trace(r[c]) if c == "trace" and pd.notna(r[c]) else r[c]
    w = dur / dur.sum()
    for col, out in WATERLOO_POOLED.items():
        v = cols.get(col)
        if v is not None:
            meta[out] = float((v * w).sum())
    seen[session.id] = row
    return session, meta


def load_waterloo_folder(folder: str | os.PathLike, *, name: str | None = None, mos_scale: str = "0-100",
                         chunk_duration: float | None = None) -> StreamingDataset:
    """A folder in the Waterloo SQoE layout: ``data.csv`` (one row per session: ``streaming_log``,
    ``mos``) and one per-chunk log per session in ``streaming_logs/``; the first problem raises (a bad log:
    one error naming every bad cell of that log, :func:`_cells_error`).

    Logs: ``rebuffering_duration`` of chunk i is a stall just before chunk i (chunk 0: the initial
    loading); ``chunk_duration`` (or the ``chunk_duration`` given); optional ``video_bitrate`` (kbps),
    ``width``, ``height``, ``framerate``, ``vmaf`` (the segment ``quality``, clipped to 0-100) and
    ``representation_index`` (the segment ``representation``); ``psnr``, ``ssim``, ``qp`` are pooled
    into ``meta``. A per-chunk ``mos`` (or any other column) in a log is ignored (a per-chunk ``mos``
    with one note per folder, :func:`_note_log_mos`): only the session's ``mos`` in ``data.csv`` is a
    target (one off ``mos_scale`` is an error naming its row), and nothing subjective becomes an input.
    ``data.csv`` columns ``abr``, ``content``, ``encoding_profile`` (the codec), ``device`` and
    ``trace`` are used where present: without them the codec is unknown, the device ``unknown`` and
    the content unset. Without ``mos`` the sessions have no score (``mos`` is NaN). An
    ``individual_scores`` column (``"[95 83 ...]"`` per session, on ``mos_scale``) gives the individual
    ratings (``ratings``), parsed strictly (:func:`deepqoe.distribution.parse_ratings`).
    """
    base = Path(folder)
    name = name or base.name
    data, data_file, mos_all = _read_data_csv(base)
    ratings = layout_ratings(base, mos_scale)
    seen: dict = {}
    logs: dict = {}
    pairs = [_layout_session(base, r, mos_all[i], name=name, mos_scale=mos_scale, chunk_duration=chunk_duration,
                             row=i + 1, seen=seen, logs=logs)
             for i, r in enumerate(data.to_dict("records"))]
    _note_log_mos(data_file, logs)
    return StreamingDataset(name, [s for s, _ in pairs], mos_all, mos_scale, pd.DataFrame([r for _, r in pairs]),
                            ratings, mos_scale if ratings is not None else None)


def waterloo_layout_sessions(folder: str | os.PathLike, *, chunk_duration: float | None = None,
                             mos_scale: str | None = None, for_prediction: bool = False
                             ) -> tuple[list[Session], list[DeepQoEError]]:
    """The sessions of a Waterloo-layout folder for :func:`deepqoe.sessions.readers.load_sessions`: a bad
    log is a failure of its session (one error naming every bad cell of the log; the others are read), a bad
    ``data.csv`` raises.

    ``mos`` is on the family's 0-100 scale; when some ``mos`` fall outside 0-100 (z-scored releases) they
    are read as ``z`` (through these scores' own mean and SD), with a note naming the first such row; scores
    that all lie within 0-5 get a note too (1-5 ratings read as 0-100 would all be "bad"). ``mos_scale`` (a
    training entry's ``scale:``) is the scale instead, checked on every ``mos`` (one off it fails its session,
    naming ``data.csv``'s row), and no note is given on the scale. Logs with a per-chunk ``mos`` get one note
    for the folder (:func:`_note_log_mos`). ``for_prediction`` (the mos plays no part): a ``mos`` that is not a
    number is left out with one note (:func:`_read_data_csv`)."""
    base = Path(folder)
    data, data_file, mos = _read_data_csv(base, mos_required=False, for_prediction=for_prediction)
    known = mos[np.isfinite(mos)]
    scale = mos_scale
    if scale is None:
        outside = np.isfinite(mos) & ((mos < 0) | (mos > 100))
        scale = "0-100" if not outside.any() else "z"
        if outside.any():
            k = _first_true(outside)
            warnings.warn(f"{data_file}: column 'mos', row {k + 1}: {mos[k]:g} is outside 0-100, so every mos of "
                          f"this folder is read as a z-score (through their own mean and SD; {int(outside.sum())} "
                          "outside 0-100); if that is a typo, fix it, or give the dataset's scale (a training "
                          "entry's scale:, --mos-scale)", DeepQoENote, stacklevel=2)
        elif len(known) >= 2 and known.max() <= 5:
            warnings.warn(f"{data_file}: every mos is within 0-5 ({known.min():g}-{known.max():g}), but is read on "
                          "this layout's 0-100 scale; if these are 1-5 ratings, give the dataset's scale "
                          "(a training entry's scale: 1-5, --mos-scale 1-5)", DeepQoENote, stacklevel=2)
    sessions, failures, seen, logs = [], [], {}, {}
    for i, r in enumerate(data.to_dict("records")):
        try:
            sessions.append(_layout_session(base, r, mos[i], name=base.name, mos_scale=scale,
                                            chunk_duration=chunk_duration, row=i + 1, seen=seen, logs=logs)[0])
        except DeepQoEError as e:
            failures.append(e)
    _note_log_mos(data_file, logs)
    return sessions, failures


def layout_ratings(folder: str | os.PathLike, rating_scale: str) -> list | None:
    """The individual ratings of a Waterloo-layout folder's sessions, in ``data.csv``'s order (its
    ``individual_scores`` column on ``rating_scale``, parsed strictly), or None without that column."""
    from deepqoe.distribution import RatingScale, parse_ratings

    base = Path(folder)
    data, data_file, _ = _read_data_csv(base, mos_required=False)
    if "individual_scores" not in data.columns:
        return None
    rs = RatingScale(rating_scale)
    return [parse_ratings(v, rs, file=str(data_file), column="individual_scores", row=i + 1)
            for i, v in enumerate(data["individual_scores"].tolist())]


def load_waterloo_sqoe_iv(root=None) -> StreamingDataset:
    """Waterloo SQoE-IV (partial, 1350 sessions; 4-s chunks, VMAF as ``quality``, MOS 0-100) through
    :func:`load_waterloo_folder`. ``meta`` holds abr, content, encoding_profile, device, trace and the
    pooled chunk PSNR / SSIM / representation index / QP."""
    return load_waterloo_folder(data_root(root) / "waterloo-sqoe-iv", name="waterloo-sqoe-iv")
