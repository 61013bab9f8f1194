"""Readers of user input: session JSON, ITU-T P.1203 input JSON, flat CSV; and the dataset type.

* :func:`load_sessions` (what ``deepqoe predict`` calls) accepts a session JSON (one session, a list,
  or ``{"sessions": [...]}``), a P.1203 input JSON, a CSV of sessions (``.csv``; ``.tsv`` tab-separated;
  ``.parquet``, as ``deepqoe sessions convert`` writes it), or a folder of those (or a folder
  in the Waterloo SQoE layout, read by :mod:`deepqoe.datasets.waterloo_sqoe`). A bad
  session does not stop the batch: it is skipped and reported in ``failures`` (DeepQoEError naming
  the file, session and field).
* A streaming dataset (sessions + MOS + per-session metadata) is a :class:`StreamingDataset`; the
  public datasets' loaders are in :mod:`deepqoe.datasets` (one module each, found by name through
  :mod:`deepqoe.datasets.registry`).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepqoe.errors import DeepQoEError, DeepQoENote
from deepqoe.sessions.schema import short_value
from deepqoe.sessions.session import DISPLAY_HEIGHT_RANGE, IgnoredMos, Session, warn_note

# ------------------------------------------------------------------------------------ user input


def read_json(path: Path) -> Any:
    """The parsed JSON of ``path``; a DeepQoEError naming the file when it is not readable JSON."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not JSON (CSVs are read so too)
    except UnicodeDecodeError:
        raise DeepQoEError("not a text (UTF-8) file; expected JSON", file=str(path)) from None
    except OSError as e:
        raise DeepQoEError(f"cannot read: {e.strerror or e}", file=str(path)) from None
    if not text.strip():
        raise DeepQoEError("the file is empty; expected JSON", file=str(path))
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DeepQoEError(f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})",
                           file=str(path)) from None
    except RecursionError:
        raise DeepQoEError("the JSON is nested too deeply to be sessions", file=str(path)) from None


def is_p1203_input(obj: Any) -> bool:
    return isinstance(obj, dict) and any(k in obj for k in ("I13", "I23", "IGen", "I11"))


def _parse_resolution(res: Any, sid: str, file: str | None, fname: str) -> tuple[float, float]:
    if isinstance(res, str):
        m = re.match(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$", res)
        if m:
            return float(m.group(1)), float(m.group(2))
    raise DeepQoEError(f"session '{sid}': expected a resolution 'WIDTHxHEIGHT', got {res!r}", file=file,
                       field=fname)


def _segments_from_o22(o22: Any, sid: str, file: str | None) -> pd.DataFrame:
    """One 1-s segment per value of ``O22`` (ITU-T P.1203.1's per-second video quality, a 1-5 MOS), its
    quality on 0-100 by the common scale's linear map (:mod:`deepqoe.sessions.scales`: 1 -> 0, 5 -> 100), with
    a note: the standard's own output stands in for a metric such as VMAF."""
    if not isinstance(o22, list) or not o22:
        raise DeepQoEError(f"session '{sid}': 'O22' must be a list of per-second video qualities (1-5)", file=file,
                           field="O22")
    for i, v in enumerate(o22):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 1.0 - 1e-6 <= float(v) <= 5.0 + 1e-6:
            raise DeepQoEError(f"session '{sid}': expected a quality from 1 to 5, got {v!r}", file=file,
                               field=f"O22[{i}]")
    q = np.clip((np.asarray(o22, float) - 1.0) * 25.0, 0.0, 100.0)
    warnings.warn("P.1203 input without 'I13.segments': the quality track is the standard's own per-second video "
                  "quality 'O22' (1-5, read as 0-100 linearly), not the bitrate mapping", DeepQoENote, stacklevel=3)
    return pd.DataFrame({"start": np.arange(len(q), dtype=float), "duration": 1.0, "quality": q})


def session_from_p1203(obj: dict, sid: str, *, file: str | None = None, segments: pd.DataFrame | None = None,
                       mos: float | None = None) -> Session:
    """A P.1203 input (mode 0: ``I13.segments``, ``I23.stalling``, ``IGen``) as a :class:`Session`.

    ``segments`` (columns start, duration, bitrate_kbps, width, height, fps, codec) replaces ``I13``
    when the file has none (the P.1203 open dataset keeps the mode-0 segment data in a CSV). The
    standard's own outputs in the file (``O21``, ``O22``, ``O46``...) are ignored where there are segments;
    a file without them that has ``O22`` (the input of the standard's integration module, P.1203.3: ``O21``,
    ``O22``, ``I23``, ``IGen``) takes ``O22``, the per-second video quality, as its quality track (with a note).
    """
    ig = obj.get("IGen") or {}
    if not isinstance(ig, dict):
        raise DeepQoEError(f"session '{sid}': 'IGen' must be an object", file=file, field="IGen")
    ctx: dict = {}
    if ig.get("displaySize"):
        w, h = _parse_resolution(ig["displaySize"], sid, file, "IGen.displaySize")
        ctx.update(display_width=int(w), display_height=int(h))
    if ig.get("viewingDistance"):
        ctx["viewing_distance"] = str(ig["viewingDistance"])
    i13 = obj.get("I13")
    no_segments = not isinstance(i13, dict) or not isinstance(i13.get("segments"), list) or not i13["segments"]
    if segments is None and no_segments and "O22" in obj:  # the standard's Pq input: O22 is its quality track
        segments = _segments_from_o22(obj["O22"], sid, file)
    if segments is None:
        if no_segments:
            raise DeepQoEError(f"session '{sid}': missing the video segments 'I13.segments' (mode 0 input), and "
                               "no per-second video quality 'O22'", file=file, field="I13.segments")
        rows = []
        for i, s in enumerate(i13["segments"]):
            f = f"I13.segments[{i}]"
            if not isinstance(s, dict):
                raise DeepQoEError(f"session '{sid}': expected an object", file=file, field=f)
            for k in ("start", "duration", "bitrate"):
                if k not in s:
                    raise DeepQoEError(f"session '{sid}': missing '{k}'", file=file, field=f"{f}.{k}")
            w, h = (_parse_resolution(s["resolution"], sid, file, f"{f}.resolution") if "resolution" in s
                    else (None, None))
            rows.append({"start": s["start"], "duration": s["duration"], "bitrate_kbps": s["bitrate"],
                         "width": w, "height": h, "fps": s.get("fps"), "codec": s.get("codec")})
        seg_list = rows
    else:
        seg_list = segments.to_dict("records")
    i23 = obj.get("I23") or {}
    stall = i23.get("stalling", []) if isinstance(i23, dict) else None
    if not isinstance(stall, list):
        raise DeepQoEError(f"session '{sid}': 'I23.stalling' must be a list of [start, duration]", file=file,
                           field="I23.stalling")
    d = {"id": sid, "segments": seg_list,
         "stalls": [list(x) if isinstance(x, (list, tuple)) else x for x in stall],
         "stall_time_base": "media", "device": ig.get("device", "unknown"), "context": ctx}
    if mos is not None:
        d.update(mos=mos, mos_scale="1-5")
    try:
        with warnings.catch_warnings(record=True) as notes:  # said again below, in P.1203's names
            warnings.simplefilter("always", DeepQoENote)
            session = Session.from_dict(d, file=file)
    except DeepQoEError as e:  # name P.1203 fields
        raise DeepQoEError(e.message, file=file, field=_p1203_field(e.field or "")) from None
    for n in notes:
        e = getattr(n.message, "error", None)  # a session's note (warn_note) carries its error
        if e is not None:
            warn_note(DeepQoEError(e.message, file=e.file, field=_p1203_field(e.field or "")))
        else:
            warnings.warn_explicit(n.message, n.category, n.filename, n.lineno)
    return session


def _p1203_field(name: str) -> str:
    """A session field as a P.1203 input names it (``segments[3].bitrate_kbps`` -> ``I13.segments[3].bitrate``)."""
    name = name.replace("stalls", "I23.stalling").replace("segments", "I13.segments")
    name = re.sub(r"^(I13\.segments\[\d+\])\.(?:width|height)$", r"\1.resolution", name)
    name = re.sub(r"^(I13\.segments\[\d+\])\.bitrate_kbps$", r"\1.bitrate", name)
    return {"device": "IGen.device", "context.display_height": "IGen.displaySize"}.get(name, name)


def _with_mos_scale(d: Any, mos_scale: str | None, file: str | None = None) -> Any:
    """A session object with ``mos_scale`` set to the given scale (None: as it is: a training entry's
    ``scale:``, ``sessions validate --mos-scale``). A session that writes another ``mos_scale`` of its own, with
    its ``mos`` inside that one, is an error (field ``mos_scale``): read on the given scale, a correct score
    would become a target that means something else (1-5 ratings read as 0-100 all lie near the floor). One
    whose ``mos`` lies outside its own written scale (a wrong label, or no scale at all) takes the given one."""
    if mos_scale is None or not isinstance(d, dict):
        return d
    own, mos = d.get("mos_scale"), d.get("mos")
    if isinstance(own, str) and own.strip() and isinstance(mos, (int, float)) and not isinstance(mos, bool):
        from deepqoe.sessions.scales import parse_scale

        given = parse_scale(mos_scale)
        try:
            written = parse_scale(own)
        except DeepQoEError:
            written = given   # not a scale: the given one replaces it
        inside = written.kind == "z" or written.lo - 1e-9 <= mos <= written.hi + 1e-9
        if written.name != given.name and inside:
            raise DeepQoEError(f"session '{d.get('id')}': its mos_scale is {written.name} and its mos {mos:g} lies "
                               f"within it, but every mos here is read on {given.name} (a training entry's scale:, "
                               f"--mos-scale); drop that scale to read each mos on its own mos_scale, or correct the "
                               "file's mos_scale", file=file, field="mos_scale")
    return {**d, "mos_scale": mos_scale}


def _sessions_from_json(path: Path, mos_scale: str | None = None, ignore_mos: IgnoredMos | None = None
                        ) -> tuple[list[Session], list[DeepQoEError]]:
    obj = read_json(path)
    if is_p1203_input(obj):
        sid = path.stem.removesuffix("-input")
        return [session_from_p1203(obj, sid, file=str(path))], []
    if isinstance(obj, dict) and "sessions" in obj:
        extra = sorted(set(obj) - {"sessions"})
        if extra:  # as the service answers it: a typo here would otherwise be silently dropped
            raise DeepQoEError(f"unknown field '{extra[0]}' next to 'sessions' (a file of sessions is a session, a "
                               "list of sessions or {\"sessions\": [...]})", file=str(path), field=extra[0])
        obj = obj["sessions"]
    items = obj if isinstance(obj, list) else [obj]
    out, fails = [], []
    seen: set[str] = set()
    for i, d in enumerate(items):
        try:
            s = Session.from_dict(_with_mos_scale(d, mos_scale, str(path)), file=str(path),
                                  index=i if isinstance(obj, list) else None, ignore_mos=ignore_mos)
            if s.id in seen:
                raise DeepQoEError(f"session '{s.id}': the id is used twice", file=str(path), field="id")
            seen.add(s.id)
            out.append(s)
        except DeepQoEError as e:
            fails.append(e)
    return out, fails


CSV_SEGMENT_COLUMNS = ("start", "duration", "bitrate_kbps", "width", "height", "fps", "codec", "quality",
                       "representation")
CSV_SESSION_COLUMNS = ("device", "content", "mos", "mos_scale", "dataset", "display_height")
#: Session columns that are a field of the session's ``context`` (the field as session JSON names it): the only
#: context the CSV layout holds.
CSV_CONTEXT_COLUMNS = {"display_height": "context.display_height"}
CSV_TEXT_COLUMNS = ("session_id", "codec", "representation", "device", "content", "mos_scale", "dataset")
#: Every column a CSV of sessions may have (any other is an error, as an unknown field of session JSON is).
CSV_COLUMNS = ("session_id", *CSV_SEGMENT_COLUMNS, "stall_before", *CSV_SESSION_COLUMNS)
_CSV_NUMBERS = ("start", "duration", "bitrate_kbps", "width", "height", "fps", "quality", "stall_before", "mos",
                "display_height")


#: Suffixes of the tables of sessions (the CSV-of-sessions layout) :func:`load_sessions` reads: ``.tsv`` is
#: separated by tabs, ``.parquet`` / ``.pq`` is what ``deepqoe sessions convert --out x.parquet`` writes.
SESSION_TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
#: Suffixes of the session files :func:`load_sessions` reads (a folder's other files are not read).
SESSION_SUFFIXES = (".json", *SESSION_TABLE_SUFFIXES)
_SUFFIXES_TEXT = ".json (session or P.1203 JSON), .csv, .tsv or .parquet (one row per segment)"


def _text_dtypes(path: Path) -> dict:
    """The text columns' dtype for :func:`deepqoe.io.read_table`, keyed by the header as written too: the
    names are stripped only after reading, and the ids under a header `` session_id`` must stay text as well
    ('001' is not 1)."""
    dtype = {c: str for c in CSV_TEXT_COLUMNS}
    if path.suffix.lower() in (".parquet", ".pq"):
        return dtype
    try:
        header = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", nrows=0, encoding="utf-8")
    except (OSError, ValueError):  # read_table says what is wrong with the file
        return dtype
    dtype.update({c: str for c in header.columns if str(c).strip() in CSV_TEXT_COLUMNS})
    return dtype


def _sessions_from_csv(path: Path, mos_scale: str | None = None, ignore_mos: IgnoredMos | None = None
                       ) -> tuple[list[Session], list[DeepQoEError]]:
    """Flat CSV, one row per segment: ``session_id``, segment columns, ``stall_before`` (seconds of
    stalling just before the segment; on the first segment it is the initial loading), and session
    columns repeated on every row (``device``, ``content``, ``mos``, ``mos_scale``, ``dataset``,
    ``display_height``: the session's ``context.display_height``).
    ``.tsv``: the same, separated by tabs; ``.parquet`` / ``.pq``: the same columns in Parquet.

    Spaces around a column name are ignored, and so are spaces around a ``session_id`` (``" s000"`` is the
    session ``s000``: a CSV written with ``", "`` between the values reads as one would expect)."""
    from deepqoe.io import read_table

    # ids stay text ('001' is not 1); only an empty cell is missing ('NaN' in a number column is refused)
    df = read_table(path, dtype=_text_dtypes(path), only_empty_is_missing=True)
    check_csv_columns(list(df.columns), str(path))
    return sessions_from_frame(df.reset_index(drop=True), file=str(path), mos_scale=mos_scale, strip_ids=True,
                               ignore_mos=ignore_mos)


def _column_key(name: Any) -> str:
    """A column name as a person means it: case, surrounding spaces and inner spaces / '-' ignored."""
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def _exact_names_hint(name: Any, meant: str) -> str:
    """What to rename the column ``name`` that :func:`_column_key` reads as ``meant``."""
    text = str(name)
    why = [w for w, differs in (("spaces around it", text.strip() != text),
                                ("capitals", text.strip().lower() != text.strip()),
                                ("a space or '-' for '_'", text.strip().lower() != meant)) if differs]
    return (f"the header has {short_value(text)} ({', '.join(why)}): write it '{meant}' (column names are "
            "matched as written)")


def check_csv_columns(columns: list[str], file: str) -> None:
    """The columns of a CSV of sessions (also each input of batch scoring): ``session_id``, ``start`` and
    ``duration`` present, nothing outside :data:`CSV_COLUMNS` (an unknown column is an error, as an unknown
    field of session JSON is)."""
    import difflib

    for c in ("session_id", "start", "duration"):
        if c not in columns:
            sep = next((x for x in (";", "\t", "|") if len(columns) == 1 and x in str(columns[0])), None)
            near = next((x for x in columns if _column_key(x) == c), None)
            hint = (f"; the header reads as one column: is the file separated by {sep!r}? a CSV of sessions is "
                    "separated by commas" if sep else f"; {_exact_names_hint(near, c)}" if near is not None else "")
            raise DeepQoEError(f"missing the column '{c}' (one row per segment){hint}", file=file, column=c)
    for c in columns:
        if c not in CSV_COLUMNS:
            close = difflib.get_close_matches(c, CSV_COLUMNS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            if _column_key(c) in CSV_COLUMNS:
                hint = f" (did you mean '{_column_key(c)}'? column names are matched as written)"
            if re.fullmatch(r"Unnamed: \d+", str(c)):
                hint = " (a column without a name: a comma at the end of each line?)"
            raise DeepQoEError(f"unknown column{hint}; a CSV of sessions has the columns {', '.join(CSV_COLUMNS)}",
                               file=file, column=c)


def _cells(col: pd.Series, number: bool) -> list:
    """A column's cells as Python values (NaN: empty). In a number column, text that reads as a number is
    that number: pandas reads the whole column as text when one cell is not a number, and only the session
    of that cell should fail (the format then says which value is not a number)."""
    if number and not pd.api.types.is_numeric_dtype(col):
        text = col.map(lambda v: isinstance(v, str)).astype(bool)
        num = pd.to_numeric(col.where(text), errors="coerce")
        col = col.astype(object).where(num.isna(), num)
    return col.tolist()


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))


_ITEM = re.compile(r"(segments|stalls)\[(\d+)\](?:\.(\w+))?")


def _session_ids(codes: np.ndarray, uniques: list, strip: bool) -> tuple[np.ndarray, list, set]:
    """The sessions of :func:`sessions_from_frame` (codes, ids by first appearance) with an id of spaces alone
    as no id, and with ``strip`` the ids stripped of surrounding spaces (``" s000"`` joins ``"s000"``);
    without it, the ids with spaces around them (the third value), to refuse."""
    keys = [u.strip() if isinstance(u, str) else u for u in uniques]
    if keys == uniques:  # the usual case: nothing to do
        return codes, uniques, set()
    index: dict = {}
    remap = np.full(len(uniques) + 1, -1, np.int64)  # the last entry: a row without an id (code -1)
    for k, (u, key) in enumerate(zip(uniques, keys)):
        if key == "":
            continue
        name = key if strip else u
        remap[k] = index.setdefault(name, len(index))
    spaced = set() if strip else {u for u, key in zip(uniques, keys) if key != "" and u != key}
    return remap[codes], list(index), spaced


def _id_blocks(codes: np.ndarray, n: int) -> dict[int, list[tuple[int, int]]]:
    """The sessions (codes of :func:`sessions_from_frame`) whose rows are not one block: code -> the blocks
    (first and last position), rows without an id not counted as breaking a block."""
    at = np.flatnonzero(codes >= 0)
    c = codes[at]
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]]) if len(c) else np.zeros(0, np.int64)
    if len(starts) == n:  # each id one block: the usual case
        return {}
    ends = np.r_[starts[1:] - 1, len(c) - 1]
    out: dict[int, list[tuple[int, int]]] = {}
    for a, b in zip(starts, ends):
        out.setdefault(int(c[a]), []).append((int(at[a]), int(at[b])))
    return {k: v for k, v in out.items() if len(v) > 1}


def duplicate_rows_error(sid: Any, blocks: list[tuple[int, int]], row, file: str | None) -> DeepQoEError:
    """A session id on two blocks of rows (or more) of a table of sessions: the rows of one session are one
    block, so the later block is another session with the same id (as in the Waterloo layout's ``data.csv``,
    a second session is refused and the first one read)."""
    times = "twice" if len(blocks) == 2 else f"{len(blocks)} times"
    if row(blocks[1][0]) is None:  # no row numbers (batch scoring's partitions): the session's id
        return DeepQoEError(f"session id '{sid}' is used {times}: its rows are not one block (the rows of a "
                            "session follow each other)", file=file, field="id")
    shown = [f"{row(a)}-{row(b)}" if a != b else f"{row(a)}" for a, b in blocks[:4]]
    more = f" and {len(blocks) - 4} more block(s)" if len(blocks) > 4 else ""
    listed = f"{', '.join(shown[:-1])} and {shown[-1]}" if not more else f"{', '.join(shown)}{more}"
    return DeepQoEError(f"session id '{sid}' is used {times}: rows {listed} (the rows of a session follow each "
                        "other; only the first block is read)", file=file, column="session_id",
                        row=row(blocks[1][0]))


def ids_used_twice(session_ids: Any, strip_ids: bool = False) -> list[tuple[Any, list[tuple[int, int]]]]:
    """Each id of ``session_ids`` (a table of sessions' ids in row order) whose rows are not one block, with its
    blocks (first and last position), as :func:`sessions_from_frame` finds them (no id, or one of spaces alone,
    does not break a block; ``strip_ids`` as there). For a caller that regroups the rows before parsing them
    (batch scoring), with :func:`duplicate_rows_error` to say it as :func:`sessions_from_frame` does."""
    codes, uniques = pd.factorize(pd.Series(session_ids, dtype=object))
    codes, uniques, _ = _session_ids(codes, list(uniques), strip_ids)
    return [(uniques[k], blocks) for k, blocks in _id_blocks(codes, len(uniques)).items()]


def sessions_from_frame(df: pd.DataFrame, file: str | None = None, first_row: int | None = 1,
                        mos_scale: str | None = None, strip_ids: bool = False,
                        ignore_mos: IgnoredMos | None = None) -> tuple[list[Session], list[DeepQoEError]]:
    """Sessions from a table in the CSV-of-sessions layout (columns checked by the caller), grouped by
    ``session_id`` in order of first appearance; the parser of :func:`load_sessions` for CSV files and of
    batch scoring (:mod:`deepqoe.batch_scoring`) for each partition.

    A failure names the column and row of the bad value (row ``df.index + first_row``: with the default 1,
    the data rows of a CSV counted from 1, the header not counted; ``first_row=None``: no row numbers, the
    session's field instead). A row without ``session_id`` is a failure; so is a session column (``device``,
    ``mos``...) with different values on two rows of one session (empty cells are not values; the column
    ``display_height`` is the session's ``context.display_height``, checked as in session JSON), and so is a
    second block of rows with an id already read (the rows of a session follow each other: the first block is
    the session, the later one is named as the id used twice).
    ``mos_scale``: the scale of every ``mos``, whatever the ``mos_scale`` column says (:func:`load_sessions`).
    ``ignore_mos`` (reading for prediction): an unusable ``mos`` is left out and counted there
    (:class:`~deepqoe.sessions.session.IgnoredMos`).

    A ``session_id`` of spaces alone is no id. ``strip_ids``: spaces around an id are dropped (``" s000"`` is
    ``s000``; what :func:`load_sessions` does, with the whole file in hand); otherwise such an id is refused
    with a clear failure (batch scoring: the rows of ``" s000"`` and ``"s000"`` may be in different
    partitions, so they could not be joined into one session)."""
    out, fails = [], []

    def row(i: int) -> int | None:
        return None if first_row is None else int(df.index[i]) + first_row

    codes, uniques = pd.factorize(df["session_id"])  # by first appearance; a missing id is -1
    codes, uniques, spaced = _session_ids(codes, list(uniques), strip_ids)
    if (codes < 0).any():
        lost = np.flatnonzero(codes < 0)
        more = f" (and {len(lost) - 1} more row(s) without one)" if len(lost) > 1 else ""
        fails.append(DeepQoEError(f"the row has no session_id, so it belongs to no session{more}", file=file,
                                  column="session_id", row=row(int(lost[0]))))
    order = np.argsort(codes, kind="stable")
    order = order[codes[order] >= 0]
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    blocks = _id_blocks(codes, len(uniques))
    # the columns as lists once (a pandas lookup per row or per session is slow on millions of rows)
    cols = {c: _cells(df[c], c in _CSV_NUMBERS) for c in (*CSV_SEGMENT_COLUMNS, "stall_before", *CSV_SESSION_COLUMNS)
            if c in df.columns}
    seg_cols = [(c, cols[c]) for c in CSV_SEGMENT_COLUMNS if c in cols]
    for k, sid in enumerate(uniques):
        idx = order[bounds[k]:bounds[k + 1]]
        if k in blocks:  # a second block of rows with this id: the first is the session, the others fail
            fails.append(duplicate_rows_error(sid, blocks[k], row, file))
            idx = idx[idx <= blocks[k][0][1]]
        if sid in spaced:
            where = {"field": "id"} if first_row is None else {"column": "session_id", "row": row(idx[0])}
            fails.append(DeepQoEError(f"session '{sid}': the id has spaces around it ({short_value(sid)}); write it "
                                      f"without them (ids are matched as written here: {short_value(sid)} and "
                                      f"{short_value(sid.strip())} would be two sessions)", file=file, **where))
            continue
        stall_rows, origin = [], {"id": ("session_id", idx[0])}  # where each field of the session comes from
        try:
            segs = [{c: a[i] for c, a in seg_cols if not _missing(a[i])} for i in idx]
            stalls = []
            for i in idx if "stall_before" in cols else ():
                v = cols["stall_before"][i]
                if not _missing(v) and v != 0:
                    stalls.append({"start": cols["start"][i], "duration": v})
                    stall_rows.append(i)
            d = {"id": str(sid), "segments": segs, "stalls": stalls}
            for c in (c for c in CSV_SESSION_COLUMNS if c in cols):
                given = [i for i in idx if not _missing(cols[c][i])]
                if given:
                    v = cols[c][given[0]]
                    other = next((i for i in given if cols[c][i] != v), None)
                    name = CSV_CONTEXT_COLUMNS.get(c, c)  # the session's field (context.display_height)
                    origin[name] = (c, given[0] if other is None else other)
                    if other is not None:
                        raise DeepQoEError(f"session '{sid}': {short_value(cols[c][other])} here but {short_value(v)} "
                                           "on an earlier row; a session column must be the same on every row of "
                                           "the session", field=name)
                    if c in CSV_CONTEXT_COLUMNS:  # checked by the format as in JSON; 2160.0 (empty cells) is 2160
                        whole = isinstance(v, float) and v.is_integer() and abs(v) <= DISPLAY_HEIGHT_RANGE[1]
                        d.setdefault("context", {})[c] = int(v) if whole else v
                    else:
                        d[c] = v
            out.append(Session.from_dict(_with_mos_scale(d, mos_scale, file), file=file, ignore_mos=ignore_mos))
        except DeepQoEError as e:
            m = _ITEM.fullmatch(e.field or "")
            if m and m.group(1) == "segments":
                origin[e.field] = (m.group(3), idx[int(m.group(2))])
            elif m:
                origin[e.field] = ("stall_before", stall_rows[int(m.group(2))])
            column, i = origin.get(e.field, (None, None))
            if first_row is None or i is None:  # a field of the session as a whole (or no row numbers)
                rows = "" if first_row is None else f" (rows from {row(idx[0])})"
                fails.append(DeepQoEError(f"{e.message}{rows}", file=file, field=e.field))
            else:
                fails.append(DeepQoEError(e.message, file=file, column=column, row=row(i)))
    return out, fails


def session_files(path: Path) -> list[Path]:
    """The sources :func:`load_sessions` reads from ``path``, one at a time: the file itself, a folder in the
    Waterloo SQoE layout (one source), or a folder's files named ``*.json``, ``*.csv``, ``*.tsv``,
    ``*.parquet`` or ``*.pq`` (:data:`SESSION_SUFFIXES`), sorted (none: an error). Only the folder itself is
    read: its subfolders, and files of other suffixes, are skipped. A broken symbolic link of those suffixes
    is listed (reading it fails, naming it), not skipped."""
    from deepqoe.datasets.waterloo_sqoe import waterloo_layout

    if not path.is_dir() or waterloo_layout(path):
        return [path]
    files = sorted(f for f in path.iterdir() if f.suffix.lower() in SESSION_SUFFIXES
                   and (f.is_file() or _broken_link(f)))
    if not files:
        raise DeepQoEError(f"no session files in the folder (files named *{', *'.join(SESSION_SUFFIXES)}; "
                           "subfolders are not read)", file=str(path))
    return files


def _broken_link(path: Path) -> bool:
    return path.is_symlink() and not path.exists()


def _broken_link_error(path: Path) -> DeepQoEError:
    try:
        target = f" to '{os.readlink(path)}'"
    except OSError:
        target = ""
    return DeepQoEError(f"a broken symbolic link{target}: its target does not exist (or cannot be reached)",
                        file=str(path))


def _sessions_from_file(f: Path, mos_scale: str | None, ignore_mos: IgnoredMos | None = None
                        ) -> tuple[list[Session], list[DeepQoEError]]:
    """The sessions of one file: by its suffix a table of sessions, else JSON (session or P.1203)."""
    if _broken_link(f):
        raise _broken_link_error(f)
    if f.suffix.lower() in SESSION_TABLE_SUFFIXES:
        return _sessions_from_csv(f, mos_scale, ignore_mos)
    try:
        return _sessions_from_json(f, mos_scale, ignore_mos)
    except DeepQoEError as e:
        not_json = e.message.startswith(("not valid JSON", "not a text", "the file is empty"))
        if f.suffix.lower() == ".json" or not not_json:  # a .txt or .xlsx that is not JSON: say what is read
            raise
        raise DeepQoEError(f"{e.message}; session files are {_SUFFIXES_TEXT}", file=e.file, field=e.field,
                           column=e.column, row=e.row) from None


def load_sessions(path: str | os.PathLike, mos_scale: str | None = None, for_prediction: bool = False
                  ) -> tuple[list[Session], list[DeepQoEError]]:
    """Sessions from a session JSON, a P.1203 input JSON, a CSV of sessions (``.csv``; ``.tsv`` separated by
    tabs; ``.parquet`` / ``.pq``), a folder of those (:func:`session_files`: its files of those suffixes, not
    its subfolders; a broken symbolic link is a failure naming it), or a folder
    in the Waterloo SQoE layout (``data.csv`` + ``streaming_logs/``, also given as its ``data.csv``:
    :func:`deepqoe.datasets.waterloo_sqoe.waterloo_layout_sessions`). A file of another suffix is read as
    JSON (when it is not JSON, the error names the suffixes read).

    ``mos_scale``: the scale of every ``mos`` read, in place of each session's own ``mos_scale`` (a training
    entry's ``scale:``), so a ``mos`` is checked against it. ``for_prediction`` (``deepqoe predict``, ``sessions
    compare``: the mos plays no part): a session's unusable ``mos`` / ``mos_scale`` is left out instead of failing
    it, with one note per file (:class:`~deepqoe.sessions.session.IgnoredMos`). Returns ``(sessions,
    failures)``; each failure is a DeepQoEError naming the file, the session and the field. Raises only when
    nothing can be read at all (missing path, empty folder).
    """
    p = Path(path)
    if _broken_link(p):
        raise _broken_link_error(p)
    if not p.exists():
        raise DeepQoEError("file or folder not found", file=str(p))
    from deepqoe.datasets.waterloo_sqoe import waterloo_layout, waterloo_layout_sessions

    layout = waterloo_layout(p)
    if layout is not None:
        return waterloo_layout_sessions(layout, mos_scale=mos_scale, for_prediction=for_prediction)
    files = session_files(p)
    sessions, failures = [], []
    seen: dict[str, str] = {}
    for f in files:
        ignored = IgnoredMos() if for_prediction else None
        try:
            got, bad = _sessions_from_file(f, mos_scale, ignored)
        except DeepQoEError as e:
            failures.append(e)
            continue
        if ignored is not None:
            ignored.note()
        failures.extend(bad)
        for s in got:
            if s.id in seen:
                failures.append(duplicate_id_error(s.id, seen[s.id], str(f)))
                continue
            seen[s.id] = str(f)
            sessions.append(s)
    return sessions, failures


def duplicate_id_error(sid: str, kept: str, refused: str) -> DeepQoEError:
    """The failure of a session whose id an earlier file of a folder has (files are read in name order): it
    names both files, the one whose session is kept and this one (``file``), whose session is left out."""
    return DeepQoEError(f"session '{sid}': the id is used twice: in '{kept}' (kept: a folder's files are read in "
                        f"name order) and here (this one is left out; give one of them another id)", file=refused,
                        field="id")


def save_sessions(sessions: list[Session], path: str | os.PathLike) -> list[DeepQoEError]:
    """Write sessions atomically: ``.json`` as one file ``{"sessions": [...]}``; ``.csv`` / ``.parquet`` in the
    CSV-of-sessions layout (one row per segment, what batch scoring reads), each session only if it reads back
    exactly (a stall that does not start a segment, a ``context`` with more than ``display_height``,
    ``quality_per_second`` or ``extra`` have no column; a ``representation`` is written as text, a whole number
    without ".0", and reads back as the same switches): the sessions left out are returned as failures, naming
    the field (``segments[3].representation``)."""
    from deepqoe.io import atomic_write_json, write_table

    if Path(path).suffix.lower() == ".json":
        atomic_write_json(path, {"sessions": [s.to_dict() for s in sessions]})
        return []
    frames, failures = [], []
    for s in sessions:
        rows = session_rows(s)
        back, bad = sessions_from_frame(rows, first_row=None)
        lost = _not_read_back(s, back[0] if back and not bad else None)
        if lost is None:
            frames.append(rows)
        else:
            why = ("representation ids are text there: two that read back alike, such as 1 and \"1\", become one"
                   if lost.endswith(".representation") else "a row per segment, each stall at a segment's start; "
                   "no context but display_height, no quality_per_second or extra")
            failures.append(DeepQoEError(f"session '{s.id}': its '{lost}' has no exact form in the CSV layout ({why}): "
                                         "write .json instead", file=str(path), field=lost))
    if frames:
        table = pd.concat(frames, ignore_index=True)
        for c in (c for c in CSV_CONTEXT_COLUMNS if c in table.columns):  # 2160, not 2160.0, beside empty cells
            if table[c].dropna().map(lambda v: float(v).is_integer()).all():
                table[c] = table[c].astype("Int64")
        write_table(table, path)
    return failures


def _same_ids(reps: list) -> list[int]:
    """Which representations of a session are one id (each the index of its first occurrence): all that
    :meth:`Session.switches` compares them by."""
    first: dict = {}
    return [first.setdefault(r, i) for i, r in enumerate(reps)]


def _not_read_back(s: Session, back: Session | None) -> str | None:
    """The first field of ``s`` that ``back`` (``s`` read back from its CSV rows) does not hold exactly (None:
    none); a segment's own field is named (``segments[3].representation``). Representations are compared by
    which segments share an id (written as text, 0 reads back as "0": the same switches)."""
    want, got = s.to_dict(), back.to_dict() if back is not None else {}
    lost = next((k for k in want if k != "segments" and want[k] != got.get(k)), None)
    if lost is not None or back is None:
        return lost or "segments"
    ws, gs = want["segments"], got["segments"]
    if len(ws) != len(gs):
        return "segments"
    same_rep = [a == b for a, b in zip(_same_ids([g.get("representation") for g in ws]),
                                       _same_ids([g.get("representation") for g in gs]))]
    for i, (a, b) in enumerate(zip(ws, gs)):
        for k in dict.fromkeys([*a, *b]):  # to_dict leaves out what is None
            if (k in a) != (k in b) or not (same_rep[i] if k == "representation" else a[k] == b[k]):
                return f"segments[{i}].{k}"
    return None


def representation_text(v: Any) -> Any:
    """A representation id as the CSV layout writes it: text as it is, a number as text, a whole one without
    ".0" (``0.0`` -> ``"0"``, as it was most likely given); None / NaN stay missing."""
    if v is None or isinstance(v, str) or (isinstance(v, float) and np.isnan(v)):
        return v
    v = float(v)
    return str(int(v)) if v.is_integer() else repr(v)


def session_rows(s: Session) -> pd.DataFrame:
    """One session as rows of the CSV-of-sessions layout: a row per segment, its stall (the initial loading
    on the first) as ``stall_before``, the session columns on every row (``display_height`` when the session's
    context holds nothing else: a context with other keys is not written)."""
    d = s.to_dict()
    stall_at = {}
    for st in d["stalls"]:
        stall_at[st["start"]] = stall_at.get(st["start"], 0.0) + st["duration"]
    ctx = d.get("context") or {}
    if set(ctx) <= set(CSV_CONTEXT_COLUMNS):  # any other context key has no column: save_sessions names it
        d.update(ctx)
    session_cols = {c: d[c] for c in CSV_SESSION_COLUMNS if d.get(c) is not None}
    rows = [{"session_id": s.id, **seg, "stall_before": stall_at.get(seg["start"], 0.0), **session_cols}
            for seg in d["segments"]]
    df = pd.DataFrame(rows)
    for c in CSV_TEXT_COLUMNS:  # as the reader types them
        if c == "representation" and c in df.columns:
            df[c] = df[c].map(representation_text)
        elif c in df.columns:
            df[c] = df[c].map(lambda v: v if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    return df


# ------------------------------------------------------------------------------------ dataset type

@dataclass
class StreamingDataset:
    """Sessions with MOS; ``meta`` is one row per session (same order) with group keys and extras."""

    name: str
    sessions: list[Session]
    mos: np.ndarray
    scale: str
    meta: pd.DataFrame = field(default_factory=pd.DataFrame)
    ratings: list | None = None        # individual ratings per session (own scale), where the dataset has them
    rating_scale: str | None = None    # their scale (``"1-5"``, ``"0-100"``)
