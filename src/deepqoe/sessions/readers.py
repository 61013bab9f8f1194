"""Readers: session JSON, ITU-T P.1203 input JSON, flat CSV, and the public datasets.

* :func:`load_sessions` (what ``deepqoe predict`` calls) accepts a session JSON (one session, a list,
  or ``{"sessions": [...]}``), a P.1203 input JSON, a CSV of sessions, or a folder of those. A bad
  session does not stop the batch: it is skipped and reported in ``failures`` (DeepQoEError naming
  the file, session and field).
* Dataset loaders return a :class:`StreamingDataset` (sessions + MOS + per-session metadata):
  :func:`load_p1203_open`, :func:`load_waterloo_sqoe_iv`, :func:`load_live_nflx`. They read from
  ``$DEEPQOE_DATA`` (or the ``root`` given) and copy nothing into the project.
  :func:`load_waterloo_folder` reads any folder in the Waterloo SQoE layout (``data.csv`` +
  ``streaming_logs/``), whichever optional columns it has.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepqoe.errors import DeepQoEError
from deepqoe.sessions.session import Session

# ------------------------------------------------------------------------------------ user input


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
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


def is_p1203_input(obj: Any) -> bool:
    return isinstance(obj, dict) and any(k in obj for k in ("I13", "I23", "IGen", "I11"))


def _parse_resolution(res: Any, sid: str, file: str | None, fname: str) -> tuple[float, float]:
    if isinstance(res, str):
        m = re.match(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$", res)
        if m:
            return float(m.group(1)), float(m.group(2))
    raise DeepQoEError(f"session '{sid}': expected a resolution 'WIDTHxHEIGHT', got {res!r}", file=file,
                       field=fname)


def session_from_p1203(obj: dict, sid: str, *, file: str | None = None, segments: pd.DataFrame | None = None,
                       mos: float | None = None) -> Session:
    """A P.1203 input (mode 0: ``I13.segments``, ``I23.stalling``, ``IGen``) as a :class:`Session`.

    ``segments`` (columns start, duration, bitrate_kbps, width, height, fps, codec) replaces ``I13``
    when the file has none (the P.1203 open dataset keeps the mode-0 segment data in a CSV). The
    standard's own outputs in the file (``O21``, ``O22``, ``O46``...) are ignored: they are never inputs.
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
    if segments is None:
        i13 = obj.get("I13")
        if not isinstance(i13, dict) or not isinstance(i13.get("segments"), list) or not i13["segments"]:
            raise DeepQoEError(f"session '{sid}': missing the video segments 'I13.segments' (mode 0 input)",
                               file=file, field="I13.segments")
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
        return Session.from_dict(d, file=file)
    except DeepQoEError as e:  # name P.1203 fields
        fieldname = (e.field or "").replace("stalls", "I23.stalling").replace("segments", "I13.segments")
        fieldname = "IGen.device" if fieldname == "device" else fieldname
        raise DeepQoEError(e.message, file=file, field=fieldname) from None


def _sessions_from_json(path: Path) -> tuple[list[Session], list[DeepQoEError]]:
    obj = _read_json(path)
    if is_p1203_input(obj):
        sid = path.stem.removesuffix("-input")
        return [session_from_p1203(obj, sid, file=str(path))], []
    if isinstance(obj, dict) and "sessions" in obj:
        obj = obj["sessions"]
    items = obj if isinstance(obj, list) else [obj]
    out, fails = [], []
    seen: set[str] = set()
    for i, d in enumerate(items):
        try:
            s = Session.from_dict(d, file=str(path), index=i if isinstance(obj, list) else None)
            if s.id in seen:
                raise DeepQoEError(f"session '{s.id}': the id is used twice", file=str(path), field="id")
            seen.add(s.id)
            out.append(s)
        except DeepQoEError as e:
            fails.append(e)
    return out, fails


CSV_SEGMENT_COLUMNS = ("start", "duration", "bitrate_kbps", "width", "height", "fps", "codec", "quality")
CSV_SESSION_COLUMNS = ("device", "content", "mos", "mos_scale", "dataset")
CSV_TEXT_COLUMNS = ("session_id", "codec", "device", "content", "mos_scale", "dataset")


def _sessions_from_csv(path: Path) -> tuple[list[Session], list[DeepQoEError]]:
    """Flat CSV, one row per segment: ``session_id``, segment columns, ``stall_before`` (seconds of
    stalling just before the segment; on the first segment it is the initial loading), and session
    columns repeated on every row (``device``, ``content``, ``mos``, ``mos_scale``)."""
    from deepqoe.io import read_table

    df = read_table(path, dtype={c: str for c in CSV_TEXT_COLUMNS})  # ids stay text: '001' is not 1
    if "session_id" not in df.columns:
        raise DeepQoEError("missing the column 'session_id' (one row per segment)", file=str(path),
                           column="session_id")
    for c in ("start", "duration"):
        if c not in df.columns:
            raise DeepQoEError(f"missing the column '{c}'", file=str(path), column=c)
    out, fails = [], []
    df = df.reset_index(drop=True)
    for sid, g in df.groupby("session_id", sort=False):
        try:
            segs = []
            for r in g.itertuples(index=False):
                d = {}
                for c in CSV_SEGMENT_COLUMNS:
                    if c in g.columns:
                        v = getattr(r, c)
                        if not (isinstance(v, float) and np.isnan(v)):
                            d[c] = v.item() if hasattr(v, "item") else v
                segs.append(d)
            stalls = []
            if "stall_before" in g.columns:
                sb = pd.to_numeric(g["stall_before"], errors="coerce").to_numpy()
                starts = pd.to_numeric(g["start"], errors="coerce").to_numpy()
                for k, (st, dd) in enumerate(zip(starts, sb)):
                    if np.isfinite(dd) and dd != 0:
                        stalls.append({"start": float(st), "duration": float(dd)})
            d = {"id": str(sid), "segments": segs, "stalls": stalls}
            first = g.iloc[0]
            for c in CSV_SESSION_COLUMNS:
                if c in g.columns and pd.notna(first[c]):
                    v = first[c]
                    d[c] = v.item() if hasattr(v, "item") else v
            out.append(Session.from_dict(d, file=str(path)))
        except DeepQoEError as e:
            row = int(g.index[0]) + 2  # 1-based, after the header
            fails.append(DeepQoEError(f"{e.message} (rows from {row})", file=str(path), field=e.field))
    return out, fails


def load_sessions(path: str | os.PathLike) -> tuple[list[Session], list[DeepQoEError]]:
    """Sessions from a session JSON, a P.1203 input JSON, a CSV of sessions or a folder of those.

    Returns ``(sessions, failures)``; each failure is a DeepQoEError naming the file, the session and
    the field. Raises only when nothing can be read at all (missing path, empty folder).
    """
    p = Path(path)
    if not p.exists():
        raise DeepQoEError("file or folder not found", file=str(p))
    files = (sorted(f for f in p.iterdir() if f.suffix.lower() in (".json", ".csv") and f.is_file())
             if p.is_dir() else [p])
    if p.is_dir() and not files:
        raise DeepQoEError("no .json or .csv session files in the folder", file=str(p))
    sessions, failures = [], []
    seen: dict[str, str] = {}
    for f in files:
        try:
            if f.suffix.lower() == ".csv":
                got, bad = _sessions_from_csv(f)
            else:
                got, bad = _sessions_from_json(f)
        except DeepQoEError as e:
            failures.append(e)
            continue
        failures.extend(bad)
        for s in got:
            if s.id in seen:
                failures.append(DeepQoEError(f"session '{s.id}': the id is already used in {seen[s.id]}",
                                             file=str(f), field="id"))
                continue
            seen[s.id] = str(f)
            sessions.append(s)
    return sessions, failures


def save_sessions(sessions: list[Session], path: str | os.PathLike) -> None:
    """Write sessions as one JSON file ``{"sessions": [...]}`` (atomically)."""
    from deepqoe.io import atomic_write_json

    atomic_write_json(path, {"sessions": [s.to_dict() for s in sessions]})


# ------------------------------------------------------------------------------------ datasets

@dataclass
class StreamingDataset:
    """Sessions with MOS; ``meta`` is one row per session (same order) with group keys and extras."""

    name: str
    sessions: list[Session]
    mos: np.ndarray
    scale: str
    meta: pd.DataFrame = field(default_factory=pd.DataFrame)


def data_root(root: str | os.PathLike | None = None) -> Path:
    if root is not None:
        return Path(root)
    from deepqoe.datasets import data_dir

    return data_dir()


def _need(p: Path) -> Path:
    if not p.exists():
        raise DeepQoEError("dataset file not found (is DEEPQOE_DATA right?)", file=str(p))
    return p


def load_p1203_open(root=None) -> StreamingDataset:
    """ITU-T P.1203 open dataset (TR04, TR06, VL04, VL13), mode 0: 239 rated (PVS, context) sessions.

    Segments come from ``features/features_mode0.csv`` (per-second samples: segment bitrate, coding
    resolution, frame rate; codec H.264), stalls and device from ``mode0_inputs/*.json``, MOS (1-5)
    from ``subjective_scores/mos.csv``. ``meta`` holds ``database``, ``src`` (content), ``hrc`` and the
    standard's own mode-0 score ``O46`` (for comparison only, never an input).
    """
    base = data_root(root) / "p1203-open"
    feats = pd.read_csv(_need(base / "features" / "features_mode0.csv"))
    mos = pd.read_csv(_need(base / "subjective_scores" / "mos.csv"))
    o46 = pd.read_csv(_need(base / "O46.csv"))
    o46 = o46[o46["mode"] == 0].set_index(["pvs_id", "context"])["O46"]
    seg_by_pvs = {}
    for pvs, g in feats.sort_values(["pvs_id", "sample_index"]).groupby("pvs_id"):
        n = len(g)
        seg_by_pvs[pvs] = pd.DataFrame({
            "start": np.arange(n, dtype=float), "duration": np.ones(n),
            "bitrate_kbps": g["bitrate_kbps_segment_size"].to_numpy(float),
            "width": g["coding_width"].to_numpy(float), "height": g["coding_height"].to_numpy(float),
            "fps": g["framerate"].to_numpy(float), "codec": "h264"})
    sessions, ys, rows = [], [], []
    for r in mos.itertuples(index=False):
        f = base / "mode0_inputs" / f"046-{r.pvs_id}-{r.context}-input.json"
        obj = _read_json(_need(f))
        s = session_from_p1203(obj, f"{r.pvs_id}-{r.context}", file=str(f), segments=seg_by_pvs[r.pvs_id],
                               mos=float(r.mos))
        db, src, hrc = r.pvs_id.split("_")
        s.content = f"{db}_{src}"
        s.dataset = "p1203-open"
        sessions.append(s)
        ys.append(float(r.mos))
        rows.append({"session_id": s.id, "pvs_id": r.pvs_id, "database": db, "src": f"{db}_{src}",
                     "hrc": hrc, "context": r.context, "O46": float(o46.get((r.pvs_id, r.context), np.nan))})
    return StreamingDataset("p1203-open", sessions, np.array(ys), "1-5", pd.DataFrame(rows))


_WATERLOO_DISPLAY = {"phone": 1080, "hdtv": 1080, "uhdtv": 2160}
#: data.csv columns copied into ``meta`` where the folder has them.
WATERLOO_META_COLUMNS = ("abr", "content", "encoding_profile", "device", "trace")
#: log column -> pooled (duration-weighted) ``meta`` column, where the log has it.
WATERLOO_POOLED = {"psnr": "psnr_mean", "ssim": "ssim_mean", "representation_index": "rep_index_mean",
                   "qp": "qp_mean"}
_WATERLOO_TEXT = {c: str for c in ("streaming_log", "abr", "content", "encoding_profile", "device")}


def _log_column(log: pd.DataFrame, name: str, f: Path) -> np.ndarray | None:
    if name not in log.columns:
        return None
    v = pd.to_numeric(log[name], errors="coerce").to_numpy(float)
    bad = ~np.isfinite(v)
    if bad.any():
        raise DeepQoEError(f"expected a number, got {log[name].iloc[_first_true(bad)]!r}", file=str(f),
                           column=name, row=_first_true(bad) + 1)
    return v


def _first_true(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def load_waterloo_folder(folder: str | os.PathLike, *, name: str | None = None, mos_scale: str = "0-100",
                         chunk_duration: float | None = None) -> StreamingDataset:
    """A folder in the Waterloo SQoE layout: ``data.csv`` (one row per session: ``streaming_log``,
    ``mos``) and one per-chunk log per session in ``streaming_logs/``.

    Logs: ``rebuffering_duration`` of chunk i is a stall just before chunk i (chunk 0: the initial
    loading); ``chunk_duration`` (or the ``chunk_duration`` given); optional ``video_bitrate`` (kbps),
    ``width``, ``height``, ``framerate``, ``vmaf`` (the segment ``quality``, clipped to 0-100) and
    ``representation_index`` (the segment ``representation``); ``psnr``, ``ssim``, ``qp`` are pooled
    into ``meta``. A per-chunk ``mos`` (or any other column) in a log is ignored: only the
    session's ``mos`` in ``data.csv`` is a target, and nothing subjective becomes an input.
    ``data.csv`` columns ``abr``, ``content``, ``encoding_profile`` (the codec), ``device`` and
    ``trace`` are used where present: without them the codec is unknown, the device ``unknown`` and
    the content unset. Without ``mos`` the sessions have no score (``mos`` is NaN).
    """
    base = Path(folder)
    name = name or base.name
    data_file = _need(base / "data.csv")
    from deepqoe.io import read_table

    data = read_table(data_file, dtype=_WATERLOO_TEXT)
    if "streaming_log" not in data.columns:
        raise DeepQoEError("missing the column 'streaming_log' (the log file of each session)",
                           file=str(data_file), column="streaming_log")
    if "mos" in data.columns:
        mos_all = pd.to_numeric(data["mos"], errors="coerce").to_numpy(float)
        bad = ~np.isfinite(mos_all)
        if bad.any():
            raise DeepQoEError(f"expected a number, got {data['mos'].iloc[_first_true(bad)]!r}",
                               file=str(data_file), column="mos", row=_first_true(bad) + 1)
    else:
        mos_all = np.full(len(data), np.nan)
    sessions, rows = [], []
    for i, r in enumerate(data.to_dict("records")):
        log_name = str(r["streaming_log"]).strip()
        if not log_name.lower().endswith(".csv"):
            log_name += ".csv"
        f = _need(base / "streaming_logs" / log_name)
        log = read_table(f)
        dur = _log_column(log, "chunk_duration", f)
        if dur is None:
            if chunk_duration is None:
                raise DeepQoEError("missing the column 'chunk_duration' (give chunk_duration= for logs "
                                   "without it)", file=str(f), column="chunk_duration")
            dur = np.full(len(log), float(chunk_duration))
        reb = _log_column(log, "rebuffering_duration", f)
        if reb is None:
            raise DeepQoEError("missing the column 'rebuffering_duration' (the stall before each chunk)",
                               file=str(f), column="rebuffering_duration")
        start = np.concatenate([[0.0], np.cumsum(dur)[:-1]])
        stall = reb > 0
        vmaf = _log_column(log, "vmaf", f)
        codec = r.get("encoding_profile")
        device = r.get("device")
        device = str(device) if isinstance(device, str) else "unknown"
        content = r.get("content") if isinstance(r.get("content"), str) else None
        ctx = {"display_height": _WATERLOO_DISPLAY[device], "device_model": device} \
            if device in _WATERLOO_DISPLAY else {}
        sid = log_name[:-4]
        mos = None if np.isnan(mos_all[i]) else float(mos_all[i])
        sessions.append(Session.from_arrays(
            sid, start, dur, bitrate_kbps=_log_column(log, "video_bitrate", f), width=_log_column(log, "width", f),
            height=_log_column(log, "height", f), fps=_log_column(log, "framerate", f),
            quality=None if vmaf is None else np.clip(vmaf, 0, 100),
            codec=codec.strip().lower() if isinstance(codec, str) else None,
            stall_start=start[stall], stall_duration=reb[stall], device=device, context=ctx, content=content,
            representation=_log_column(log, "representation_index", f), mos=mos,
            mos_scale=mos_scale if mos is not None else None, dataset=name, file=str(f)))
        row = {"session_id": sid, "streaming_log": log_name}
        for c in WATERLOO_META_COLUMNS:
            if c in data.columns:
                row[c] = int(r[c]) if c == "trace" and pd.notna(r[c]) else r[c]
        w = dur / dur.sum()
        for col, out in WATERLOO_POOLED.items():
            v = _log_column(log, col, f)
            if v is not None:
                row[out] = float((v * w).sum())
        rows.append(row)
    return StreamingDataset(name, sessions, mos_all, mos_scale, pd.DataFrame(rows))


def load_waterloo_sqoe_iv(root=None) -> StreamingDataset:
    """Waterloo SQoE-IV (partial, 1350 sessions; 4-s chunks, VMAF as ``quality``, MOS 0-100) through
    :func:`load_waterloo_folder`. ``meta`` holds abr, content, encoding_profile, device, trace and the
    pooled chunk PSNR / SSIM / representation index / QP."""
    return load_waterloo_folder(data_root(root) / "waterloo-sqoe-iv", name="waterloo-sqoe-iv")


def natural_key(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


LIVE_NFLX_METRICS = ("PSNR", "PSNRhvs_oss", "SSIM", "MSSIM", "STRRED", "GMSD", "NIQE", "VMAF")
LIVE_NFLX_STALL = ("ns", "ds", "ds_norm", "lt", "lt_norm", "tsl", "tsl_norm", "tsl_stall", "tsl_stall_norm")


def _mat_scalar(d, k):
    return float(np.asarray(d[k]).reshape(-1)[0])


#: per-frame metrics of the LIVE-NFLX release where lower means better
LOWER_IS_BETTER = ("STRRED", "GMSD", "NIQE")


def _per_second(v: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nfr = len(v)
    T = int(np.ceil(nfr / fps))
    edges = np.minimum((np.arange(T) * fps).astype(int), nfr)
    return np.add.reduceat(v, edges) / np.diff(np.append(edges, nfr)), edges, np.diff(np.append(edges, nfr)) / fps


def load_live_nflx(root=None, quality_metric: str = "VMAF") -> StreamingDataset:
    """LIVE-NFLX (VideoATLAS release): 112 sessions in the natural order of the file names (content_1..14,
    seq_0..7), i.e. the row order of ``TrainingMatrix_LIVENetflix_1000_trials.mat``.

    ``quality_metric`` picks the per-second ``quality``: ``VMAF`` (default, 0-100 as is) or another metric
    of the release (``STRRED``, the VideoATLAS convention, ``SSIM``, ...), put on VMAF's 0-100 scale by a
    monotone (isotonic) regression of per-second VMAF on that metric over the release's seconds: objective
    measurements only, no subjective score.

    The ``.mat`` files hold per-frame VQA of the played frames but not where the stalls are, so the
    session is built as 1-s segments with ``quality`` = mean per-frame VMAF of that second, and stalls
    placed approximately: ``ns`` stalls of ``ds / ns`` s each, the last one ending ``tsl_stall`` s
    before the end (exact for one stall), earlier ones spread evenly before it. ``meta`` holds the
    release's own pooled metrics (``<METRIC>_mean|_hyst|_kmeans``), stall/memory features (``ns, ds,
    ds_norm, lt, lt_norm, tsl, tsl_norm``), per-frame statistics (``<METRIC>_p10``, ``_std``,
    ``_last``) and ``content`` / ``seq``.
    """
    import scipy.io as sio

    base = data_root(root) / "live-nflx" / "LIVE_NFLX_PublicData_VideoATLAS_Release"
    files = sorted(_need(base).glob("content_*_seq_*.mat"), key=lambda p: natural_key(p.name))
    if len(files) != 112:
        raise DeepQoEError(f"expected 112 content_*_seq_*.mat files, found {len(files)}", file=str(base))
    if quality_metric not in LIVE_NFLX_METRICS:
        raise DeepQoEError(f"unknown LIVE-NFLX quality metric {quality_metric!r}; use one of {', '.join(LIVE_NFLX_METRICS)}")
    mats = [sio.loadmat(f) for f in files]
    qual = []
    for d in mats:
        fps = _mat_scalar(d, "vid_fps")
        vm = _per_second(np.clip(np.asarray(d["VMAF_vec"], float).reshape(-1), 0, 100), fps)[0]
        qual.append((vm, _per_second(np.asarray(d[f"{quality_metric}_vec"], float).reshape(-1), fps)[0]))
    if quality_metric != "VMAF":
        from sklearn.isotonic import IsotonicRegression

        x, y = np.concatenate([m for _, m in qual]), np.concatenate([v for v, _ in qual])
        ok = np.isfinite(x) & np.isfinite(y)
        iso = IsotonicRegression(increasing=quality_metric not in LOWER_IS_BETTER, out_of_bounds="clip",
                                 y_min=0, y_max=100).fit(x[ok], y[ok])
        qual = [(iso.predict(np.nan_to_num(m, nan=float(np.nanmedian(x)))), m) for _, m in qual]
    sessions, ys, rows = [], [], []
    for f, d, (q, _) in zip(files, mats, qual):
        fps = _mat_scalar(d, "vid_fps")
        nfr = len(np.asarray(d["VMAF_vec"]).reshape(-1))
        _, edges, dur = _per_second(np.zeros(nfr), fps)
        start = edges / fps
        ns, ds = int(round(_mat_scalar(d, "ns"))), _mat_scalar(d, "ds")
        media = nfr / fps
        if ns > 0:
            wall = _mat_scalar(d, "Nframes") / fps
            each = ds / ns
            last_end_wall = wall - _mat_scalar(d, "tsl_stall")
            last_start_media = float(np.clip(last_end_wall - ds, 0.5, media - 0.5))
            st = last_start_media * np.arange(1, ns + 1) / ns
            sst, sdur = st, np.full(ns, each)
        else:
            sst = sdur = np.zeros(0)
        m = re.match(r"content_(\d+)_seq_(\d+)", f.stem)
        sid = f.stem
        y = _mat_scalar(d, "final_subj_score")
        s = Session.from_arrays(sid, start, dur, quality=q, fps=fps, stall_start=sst, stall_duration=sdur,
                                device="unknown", content=f"content_{m.group(1)}", mos=y, mos_scale="z",
                                dataset="live-nflx", file=str(f))
        sessions.append(s)
        ys.append(y)
        row = {"session_id": sid, "content": int(m.group(1)), "seq": int(m.group(2))}
        for k in LIVE_NFLX_STALL:
            row[k] = _mat_scalar(d, k)
        for met in LIVE_NFLX_METRICS:
            for suf in ("mean", "hyst", "kmeans"):
                row[f"{met}_{suf}"] = _mat_scalar(d, f"{met}_{suf}")
            v = np.asarray(d[f"{met}_vec"], float).reshape(-1)
            v = v[np.isfinite(v)]
            row[f"{met}_p10"] = float(np.percentile(v, 10))
            row[f"{met}_p90"] = float(np.percentile(v, 90))
            row[f"{met}_std"] = float(v.std())
            row[f"{met}_min1s"] = float(np.min(np.convolve(v, np.ones(int(fps)) / fps, "valid")))
            row[f"{met}_last"] = float(v[-int(10 * fps):].mean())
            row[f"{met}_first"] = float(v[:int(10 * fps)].mean())
        rows.append(row)
    return StreamingDataset("live-nflx", sessions, np.array(ys), "z", pd.DataFrame(rows))


def live_nflx_splits(root=None) -> np.ndarray:
    """The 1000 fixed content-disjoint splits: bool array (112, 1000), True = train."""
    import scipy.io as sio

    p = _need(data_root(root) / "live-nflx" / "TrainingMatrix_LIVENetflix_1000_trials.mat")
    m = sio.loadmat(p)["TrainingMatrix_LIVENetflix_1000_trials"]
    return np.asarray(m) == 1
