"""Turn many videos into one feature table: inputs, cache, in-process or Dask execution, outputs.

::

    items = collect_inputs(["videos/"], reference_dir="originals/")
    run = extract_features(items, ["cnn-frames", "siti", "stream"], options={"fps": 2},
                           cache_dir="~/.cache/deepqoe/features", scheduler=None)
    write_outputs(run, "features.parquet")

One task per video (``process_video``) does the work; without a scheduler the tasks run one after the
other in this process, with ``scheduler="local"`` on a Dask LocalCluster, with ``"tcp://host:port"``
on a Dask cluster: the same function either way. Results already in the cache are found before any
task is sent; each task writes its results to the cache as soon as they are computed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from deepqoe.dask_cluster import dask_client as _dask_client
from deepqoe.errors import DeepQoEError
from deepqoe.features.video.base import Extractor, Features, cached_extractor, make_extractor
from deepqoe.features.video.cache import FeatureCache, cache_key, sha256_file
from deepqoe.features.video.decode import VIDEO_EXTENSIONS, file_problem

LIST_SUFFIXES = (".txt", ".csv", ".tsv", ".lst")


@dataclass
class VideoItem:
    id: str
    path: str
    reference: str | None = None
    reference_problem: str | None = None  # why no reference was found (said as the video's error)

    def as_dict(self) -> dict:
        return {"id": self.id, "path": self.path, "reference": self.reference,
                "reference_problem": self.reference_problem}


# --------------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------------
def _is_video_name(p: Path) -> bool:
    return p.suffix.lower() in VIDEO_EXTENSIONS


def _read_list(p: Path) -> list[VideoItem]:
    """A .txt list (one path a line, '#' comments) or a CSV with 'path' (or 'file') and optional 'id',
    'reference' columns. Relative paths are relative to the list's folder."""
    base = p.parent
    items: list[VideoItem] = []

    def resolve(s: str) -> str:
        q = Path(str(s).strip()).expanduser()
        return str(q if q.is_absolute() else base / q)

    if p.suffix.lower() in (".csv", ".tsv"):
        from deepqoe.io import read_table

        df = read_table(p, dtype={"path": str, "file": str, "id": str, "reference": str})
        col = "path" if "path" in df.columns else "file" if "file" in df.columns else None
        if col is None:
            raise DeepQoEError(f"a video list needs a 'path' (or 'file') column; found {list(df.columns)}",
                               file=str(p))
        for i, row in enumerate(df.itertuples(index=False), start=2):
            r = row._asdict()
            path = r[col]
            if _blank(path):
                raise DeepQoEError("empty path", file=str(p), column=col, row=i)
            vid = r.get("id")
            vid = None if _blank(vid) else str(vid).strip()
            ref = r.get("reference")
            ref = None if _blank(ref) else resolve(ref)
            items.append(VideoItem(id=vid or Path(str(path)).stem, path=resolve(path), reference=ref))
        return items
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DeepQoEError(f"cannot read the video list: {e}", file=str(p)) from None
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            items.append(VideoItem(id=Path(line).stem, path=resolve(line)))
    if not items:
        raise DeepQoEError("no videos in the list (it has no line that is not empty or a '#' comment)",
                           file=str(p))
    return items


def _blank(v) -> bool:
    """An empty cell of a table: None, NaN or only spaces."""
    if v is None:
        return True
    if isinstance(v, float):
        return math.isnan(v)
    try:
        if pd.isna(v):
            return True
    except (TypeError, ValueError):
        pass
    return not str(v).strip()


def _reference_lookup(reference_dir: str | None, reference_map: str | None
                      ) -> Callable[[VideoItem], tuple[str | None, str | None]]:
    """A video's reference and, when none is found, why (None: the caller's generic reason)."""
    if reference_dir and reference_map:
        raise DeepQoEError("give either --reference-dir or --reference-map, not both")
    if reference_dir:
        d = Path(reference_dir).expanduser()
        if not d.exists():
            raise DeepQoEError("reference folder not found", file=str(d), field="--reference-dir")
        if not d.is_dir():
            raise DeepQoEError("is a file, not a folder: --reference-dir takes the folder of the reference "
                               "videos (for one video's reference use --reference-map CSV)", file=str(d),
                               field="--reference-dir")
        by_stem: dict[str, list[Path]] = {}
        for q in sorted(d.rglob("*")):  # a folder with a video's name is found too: "is a folder" later
            if _is_video_name(q):
                by_stem.setdefault(q.stem, []).append(q)

        def in_folder(it: VideoItem) -> tuple[str | None, str | None]:
            stems = list(dict.fromkeys((it.id, Path(it.path).stem)))
            for stem in stems:
                hits = by_stem.get(stem)
                if hits and len(hits) > 1:
                    names = ", ".join(str(h.relative_to(d)) for h in hits[:3]) + (", ..." if len(hits) > 3 else "")
                    return None, (f"more than one reference video named '{stem}' in --reference-dir {d} ({names}): "
                                  "keep one, or name each video's reference with --reference-map")
                if hits:
                    return str(hits[0]), None
            return None, f"no reference video named '{stems[0]}' (any video suffix) in --reference-dir {d}"
        return in_folder
    if reference_map:
        from deepqoe.io import read_table

        p = Path(reference_map).expanduser()
        df = read_table(p, dtype={"id": str, "path": str, "reference": str})
        if "reference" not in df.columns:
            raise DeepQoEError(f"the reference map needs a 'reference' column; found {list(df.columns)}",
                               file=str(p))
        key = "id" if "id" in df.columns else "path" if "path" in df.columns else None
        if key is None:
            raise DeepQoEError("the reference map needs an 'id' or 'path' column (the distorted video) and "
                               "a 'reference' column", file=str(p))

        def norm(k: str) -> str:  # the distorted video a row is for, as it is looked up
            if key == "id":
                return k
            q = Path(k).expanduser()
            return str((q if q.is_absolute() else p.parent / q).resolve())

        table: dict[str, str] = {}
        first_row: dict[str, int] = {}
        for row, (k, ref) in enumerate(zip(df[key], df["reference"]), start=2):
            if _blank(k):
                raise DeepQoEError(f"empty {key}", file=str(p), column=key, row=row)
            if _blank(ref):
                raise DeepQoEError(f"empty reference for {key} '{str(k).strip()}'", file=str(p),
                                   column="reference", row=row)
            k = norm(str(k).strip())
            if k in table:
                raise DeepQoEError(f"the {key} '{str(df[key].iloc[row - 2]).strip()}' is given a reference "
                                   f"twice (rows {first_row[k]} and {row}); keep one row per video",
                                   file=str(p), column=key, row=row)
            q = Path(str(ref).strip()).expanduser()
            table[k] = str(q if q.is_absolute() else p.parent / q)
            first_row[k] = row
        if key == "id":
            return lambda it: (table.get(it.id), None)
        return lambda it: (table.get(str(Path(it.path).resolve())), None)
    return lambda it: (None, None)


def collect_inputs(inputs: list[str], reference_dir: str | None = None,
                   reference_map: str | None = None) -> list[VideoItem]:
    """Expand files, folders (recursively, video extensions) and .txt/.csv lists into videos with ids.

    A path that does not exist is kept (its error is reported in the error table, not here). In a
    folder, every entry with a video extension is kept, also one that is not a readable file (a folder
    named ``x.mp4``, a broken symbolic link): the extraction reports it as failed, with the reason,
    instead of leaving it out without a word. Ids are file stems unless a CSV list gives them; two
    videos with one id are an error.
    """
    if not inputs:
        raise DeepQoEError("no input given: name video files, folders or a .txt/.csv list of videos")
    items: list[VideoItem] = []
    for raw in inputs:
        p = Path(raw).expanduser()
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if _is_video_name(q)
                           and not any(part.startswith(".") for part in q.relative_to(p).parts))
            if not found:
                raise DeepQoEError(f"no video files ({', '.join(VIDEO_EXTENSIONS[:6])}, ...) in the folder",
                                   file=str(p))
            items += [VideoItem(id=q.stem, path=str(q)) for q in found]
        elif p.is_file() and p.suffix.lower() in LIST_SUFFIXES:
            items += _read_list(p)
        else:
            items.append(VideoItem(id=p.stem, path=str(p)))
    seen: dict[str, str] = {}
    for it in items:
        if it.id in seen and os.path.abspath(seen[it.id]) != os.path.abspath(it.path):
            raise DeepQoEError(f"two videos have the id '{it.id}': {seen[it.id]} and {it.path}; rename one or "
                               "give ids in a CSV list (columns path,id)")
        seen[it.id] = it.path
    # the same file twice: keep it once
    unique, done = [], set()
    for it in items:
        if it.id not in done:
            done.add(it.id)
            unique.append(it)
    lookup = _reference_lookup(reference_dir, reference_map)
    for it in unique:
        if it.reference is None:
            it.reference, it.reference_problem = lookup(it)
    return unique


# --------------------------------------------------------------------------------------------------
# one video: the task
# --------------------------------------------------------------------------------------------------
def _error_text(e: BaseException) -> str:
    if isinstance(e, DeepQoEError):
        return getattr(e, "message", str(e))
    return f"{type(e).__name__}: {e}"


def _put_quietly(cache: FeatureCache, vsha: str, name: str, key: str, feats: Features,
                 meta: dict | None = None) -> str | None:
    """Write one result to the cache; a cache that cannot be written is not the video's problem: the
    reason is returned (None: written), never raised."""
    try:
        cache.put(vsha, name, key, feats, meta=meta)
    except (OSError, DeepQoEError) as e:
        return getattr(e, "message", None) or getattr(e, "strerror", None) or str(e)
    return None


def cache_problem(cache_dir: str | os.PathLike) -> str | None:
    """Why results cannot be written to the cache folder ``cache_dir`` (it is created when missing), or
    None when they can: checked once before a run, so that an unwritable cache is one warning."""
    import tempfile

    root = Path(cache_dir).expanduser()
    if root.exists() and not root.is_dir():
        return "it is a file, not a folder"
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".deepqoe-tmp.probe.", dir=root)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        from deepqoe.io import write_blocker

        return write_blocker(root, permission=False) or e.strerror or str(e)
    return None


def process_video(item: dict, specs: list[dict], cache_dir: str | None = None,
                  runtime: dict | None = None) -> dict:
    """Run the extractors of ``specs`` on one video (the unit of work, in-process or on a Dask worker).

    ``specs``: ``[{"name", "options", "key"}]`` (``key``: the cache key, computed by the caller).
    ``item`` carries ``video_sha256`` / ``reference_sha256`` when the caller hashed the files already.
    Every result is written to the cache as soon as it is computed (not with ``runtime["cache_write"]``
    False); a cache that cannot be written keeps the results and returns the reason as ``cache_error``.
    Never raises for a bad video: errors are returned per extractor.
    """
    runtime = runtime or {}
    if runtime.get("torch_threads"):
        import torch

        if torch.get_num_threads() != int(runtime["torch_threads"]):
            torch.set_num_threads(int(runtime["torch_threads"]))
    out: dict[str, Any] = {"id": item["id"], "path": item["path"], "results": {}, "errors": {}, "frames": 0,
                           "seconds": 0.0, "computed": []}
    t0 = time.perf_counter()
    cache = FeatureCache(cache_dir) if cache_dir else None
    vsha = item.get("video_sha256")
    if cache is not None and vsha is None:
        problem = file_problem(item["path"])
        if problem is None:
            try:
                vsha = sha256_file(item["path"])
            except OSError as e:
                problem = f"cannot read the file: {e.strerror or e}"
        if problem is not None:
            for s in specs:
                out["errors"][s["name"]] = problem
            return out
    for spec in specs:
        name = spec["name"]
        try:
            ex = cached_extractor(name, spec.get("options"))
            ref = item.get("reference")
            if ex.needs_reference and ref is None:
                from deepqoe.features.video.decode import check_complete

                check_complete(item["path"])  # a damaged video is said as such, before its missing reference
                raise DeepQoEError(item.get("reference_problem") or "no reference video for the full-reference "
                                   "extractor (give --reference-dir or --reference-map, or a 'reference' column in "
                                   "the input list)")
            feats = ex.extract(item["path"], reference=ref if ex.needs_reference else None)
            out["computed"].append(name)
            if cache is not None and vsha is not None and runtime.get("cache_write", True) \
                    and "cache_error" not in out:
                problem = _put_quietly(cache, vsha, name, spec["key"], feats,
                                       meta={"version": ex.version, "options": ex.options(), "path": item["path"],
                                             "reference_sha256": item.get("reference_sha256")
                                             if ex.needs_reference else None})
                if problem is not None:  # a full disk or a read-only cache must not lose the result
                    out["cache_error"] = problem
            out["results"][name] = {"values": feats.values, "frames": feats.frames, "per_frame": feats.per_frame}
            out["frames"] += feats.frames
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - a bad video must not stop the batch
            if not isinstance(e, DeepQoEError):
                logging.getLogger(__name__).debug("extractor %s failed on %s\n%s", name, item["path"],
                                                  traceback.format_exc())
            out["errors"][name] = _error_text(e)
    out["seconds"] = time.perf_counter() - t0
    return out


# --------------------------------------------------------------------------------------------------
# many videos
# --------------------------------------------------------------------------------------------------
@dataclass
class ExtractionRun:
    extractors: list[Extractor]
    rows: dict[str, dict]                       # id -> {"path", "results": {name: {...}}, "errors": {...}}
    order: list[str]                            # ids in input order
    computed: int = 0                           # extractor runs actually computed (not from the cache)
    cached: int = 0                             # extractor results found in the cache
    frames: int = 0
    seconds: float = 0.0
    meta: dict = field(default_factory=dict)
    cache_rejected: list[tuple[str, str]] = field(default_factory=list)  # (entry file, reason): recomputed
    cache_warning: str | None = None  # why results could not be written to the cache (they are kept)

    @property
    def outcome(self) -> str:
        """``"ok"``: every extractor succeeded on every video; ``"partial"``: some extractor failed on some
        video (see :attr:`failed_ids` and :meth:`errors_table`) and the feature table has a row all the
        same (:attr:`table_ids`); ``"failed"``: no extractor succeeded on any video (or there was none),
        so there is no table to write."""
        if self.order and not self.failed_ids:
            return "ok"
        return "partial" if self.table_ids else "failed"

    @property
    def failed_ids(self) -> list[str]:
        """The videos on which some extractor failed (those of :meth:`errors_table`), in input order."""
        return [i for i in self.order if self.rows[i]["errors"]]

    @property
    def ok_ids(self) -> list[str]:
        """The videos on which every extractor succeeded."""
        return [i for i in self.order if not self.rows[i]["errors"]]

    @property
    def partial_ids(self) -> list[str]:
        """The videos on which some extractors failed and others succeeded: in the feature table, the
        failed extractors' columns missing."""
        return [i for i in self.order if self.rows[i]["errors"] and self._succeeded(i)]

    @property
    def table_ids(self) -> list[str]:
        """The rows of the feature table: every video on which at least one extractor succeeded."""
        return [i for i in self.order if self._succeeded(i)]

    def _succeeded(self, i: str) -> list[str]:
        """The extractors (in the run's order) that gave video ``i`` a result."""
        res = self.rows[i]["results"]
        return [ex.name for ex in self.extractors if res.get(ex.name) is not None]

    def extractor_columns(self) -> dict[str, list[str]]:
        """Each extractor's columns, in the run's extractor order: those its results on the videos gave,
        in the order they give them (the same whichever videos it failed on; none when it failed on
        every video: nothing names its columns then)."""
        cols: dict[str, list[str]] = {}
        seen: set[str] = set()
        for ex in self.extractors:
            mine = cols.setdefault(ex.name, [])
            for i in self.order:
                r = self.rows[i]["results"].get(ex.name)
                for c in (r["values"] if r else ()):
                    if c not in seen:
                        seen.add(c)
                        mine.append(c)
        return cols

    def features_table(self) -> pd.DataFrame:
        """One row per video on which at least one extractor succeeded (:attr:`table_ids`, input order):
        ``id`` + every extractor's columns (float64), empty (NaN) for the extractors that failed on that
        video. A video on which every extractor failed has no row (it is in :meth:`errors_table`)."""
        columns = [c for cols in self.extractor_columns().values() for c in cols]
        ids = self.table_ids
        data: dict[str, list] = {c: [] for c in columns}
        for i in ids:
            vals: dict[str, Any] = {}
            for r in self.rows[i]["results"].values():
                if r:
                    vals.update(r["values"])
            for c in columns:
                v = vals.get(c)
                data[c].append(np.nan if v is None else float(v))
        df = pd.DataFrame({"id": ids, **{c: np.asarray(data[c], dtype=np.float64) for c in columns}})
        df["id"] = df["id"].astype(str)
        return df

    def errors_table(self) -> pd.DataFrame:
        rows = []
        for i in self.failed_ids:
            r = self.rows[i]
            by_msg: dict[str, list[str]] = {}
            for name, msg in r["errors"].items():
                by_msg.setdefault(msg, []).append(name)
            for msg, names in by_msg.items():  # one row per distinct error of a video
                rows.append({"id": i, "path": r["path"], "extractor": ",".join(names), "error": msg})
        return pd.DataFrame(rows, columns=["id", "path", "extractor", "error"])

    def per_frame_table(self) -> pd.DataFrame:
        """Per-frame values of every extractor that succeeded on a video (so only of videos in the
        feature table): a failed extractor has none."""
        recs = []
        for i in self.table_ids:
            results = self.rows[i]["results"]
            for name in self._succeeded(i):
                for metric, series in (results[name].get("per_frame") or {}).items():
                    for k, v in enumerate(series):
                        recs.append((i, name, metric, k, np.nan if v is None else float(v)))
        return pd.DataFrame(recs, columns=["id", "extractor", "metric", "frame", "value"])

    def extractor_metadata(self) -> dict:
        cols = self.extractor_columns()
        return {ex.name: {"version": ex.version, "options": ex.options(), "columns": cols[ex.name]}
                for ex in self.extractors}


def _report_rejected(rejected: list[tuple[str, str]], bar, shown: int = 5) -> None:
    """Say on stderr which cache entries were refused (they are recomputed)."""
    bar.write(f"deepqoe extract: {len(rejected)} cache entr{'y' if len(rejected) == 1 else 'ies'} failed the "
              "integrity check and will be recomputed:", file=sys.stderr)
    for q, why in rejected[:shown]:
        bar.write(f"  {q}: {why}", file=sys.stderr)
    if len(rejected) > shown:
        bar.write(f"  ... and {len(rejected) - shown} more", file=sys.stderr)


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="video", desc="extract", disable=not enabled, dynamic_ncols=True,
                file=sys.stderr, smoothing=0.1)


def build_extractors(names: list[str], options: dict[str, Any] | None = None) -> tuple[list[Extractor], list[dict]]:
    """Create (and so validate) the extractors once, before any video is touched."""
    extractors = [make_extractor(n, options) for n in names]
    specs = []
    for ex, n in zip(extractors, names):
        opts = {k: v for k, v in (options or {}).items() if k in type(ex).defaults}
        specs.append({"name": n, "options": opts, "version": ex.version, "cache_options": ex.options(),
                      "needs_reference": ex.needs_reference})
    return extractors, specs


def extract_features(items: list[VideoItem], extractors: list[str], options: dict[str, Any] | None = None,
                     cache_dir: str | os.PathLike | None = None, scheduler: str | None = None,
                     workers: int | None = None, processes: bool = True, progress: bool = True,
                     _task: Callable = process_video) -> ExtractionRun:
    """Extract features of every video (see the module docstring). ``cache_dir=None``: no cache."""
    t_start = time.perf_counter()
    exs, base_specs = build_extractors(extractors, options)
    cache = FeatureCache(cache_dir) if cache_dir else None
    rows = {it.id: {"path": it.path, "results": {}, "errors": {}} for it in items}
    run = ExtractionRun(extractors=exs, rows=rows, order=[it.id for it in items])
    bar = _progress(len(items), progress)

    def warn_cache(why: str) -> None:  # once a run: the cache is an optimisation, the results are kept
        if run.cache_warning is None:
            run.cache_warning = why
            bar.write(f"deepqoe extract: warning: cannot write the cache folder '{cache.root}' ({why}); "
                      "the results are kept but not cached", file=sys.stderr)

    cache_write = True
    if cache is not None and items:
        why = cache_problem(cache.root)
        if why is not None:
            warn_cache(why)
            cache_write = False
            if not cache.root.is_dir():  # nothing to read either
                cache = None

    def show():
        el = time.perf_counter() - t_start
        bar.set_postfix_str(f"{run.frames / el if el > 0 else 0:.0f} frames/s, "
                            f"{len(run.failed_ids)} failed, {run.cached} cached", refresh=False)

    # 1. hash, look up the cache, and plan the tasks
    tasks: list[tuple[dict, list[dict]]] = []
    ref_hashes: dict[str, str | None] = {}
    for it in items:
        row = rows[it.id]
        d = it.as_dict()
        specs = []
        vsha = None
        if cache is not None:  # hashing reads the file here (else only the task does: remote workers)
            problem = file_problem(it.path)  # a folder named x.mp4, a broken link, a missing file...
            if problem is None:
                try:
                    vsha = sha256_file(it.path)
                except OSError as e:
                    problem = f"cannot read the file: {e.strerror or e}"
            if problem is not None:  # the same reason the extractors give (decode.file_problem)
                for s in base_specs:
                    row["errors"][s["name"]] = problem
                bar.update(1)
                continue
            d["video_sha256"] = vsha
            if it.reference and any(s["needs_reference"] for s in base_specs):
                if it.reference not in ref_hashes:
                    try:
                        ref_hashes[it.reference] = sha256_file(it.reference)
                    except OSError:
                        ref_hashes[it.reference] = None
                d["reference_sha256"] = ref_hashes[it.reference]
        for s in base_specs:
            rsha = d.get("reference_sha256") if s["needs_reference"] else None
            key = cache_key(s["name"], s["version"], s["cache_options"], rsha)
            hit = None
            if cache is not None and not (s["needs_reference"] and rsha is None):
                hit = cache.get(vsha, s["name"], key)
            if hit is not None:
                row["results"][s["name"]] = {"values": hit.values, "frames": hit.frames, "per_frame": hit.per_frame}
                run.cached += 1
            else:
                specs.append({"name": s["name"], "options": s["options"], "key": key})
        if specs:
            tasks.append((d, specs))
        else:
            bar.update(1)
    if cache is not None and cache.rejected:
        run.cache_rejected = [(str(q), why) for q, why in cache.rejected]
        _report_rejected(run.cache_rejected, bar)
    show()

    def take(result: dict):
        if result.get("cache_error"):
            warn_cache(result["cache_error"])
        row = rows[result["id"]]
        row["results"].update(result["results"])
        row["errors"].update(result["errors"])
        run.computed += len(result.get("computed", []))
        run.frames += int(result.get("frames", 0))
        bar.update(1)
        show()

    cache_arg = str(cache.root) if cache is not None else None
    # 2. run the tasks
    try:
        if scheduler:
            client, cluster, torch_threads = _dask_client(scheduler, workers, processes)
            try:
                from distributed import as_completed

                runtime = {"torch_threads": torch_threads} if torch_threads else {}
                runtime["cache_write"] = cache_write
                futures = {}
                for d, specs in tasks:
                    fut = client.submit(_task, d, specs, cache_arg, runtime, pure=False,
                                        key=f"deepqoe-extract-{d['id']}-{time.time_ns()}")
                    futures[fut] = (d, specs)
                for fut in as_completed(list(futures)):
                    d, specs = futures.pop(fut)
                    try:
                        res = fut.result()
                    except Exception as e:  # noqa: BLE001 - a lost worker, a task that could not run
                        res = {"id": d["id"], "results": {}, "frames": 0, "computed": [],
                               "errors": {s["name"]: f"the task failed on the cluster: {_error_text(e)}"
                                          for s in specs}}
                    else:
                        # a cluster that cannot see the cache folder: keep the results here too (a
                        # worker's failure to write is not a warning when this process can)
                        res.pop("cache_error", None)
                        if cache is not None and cache_write and d.get("video_sha256") \
                                and run.cache_warning is None:
                            for s in specs:
                                r = res["results"].get(s["name"])
                                if r and not cache.path(d["video_sha256"], s["name"], s["key"]).exists():
                                    why = _put_quietly(cache, d["video_sha256"], s["name"], s["key"],
                                                       Features(r["values"], r["frames"], r.get("per_frame")))
                                    if why is not None:
                                        res["cache_error"] = why
                                        break
                    take(res)
            finally:
                client.close()
                if cluster is not None:
                    cluster.close()
        else:
            for d, specs in tasks:
                take(_task(d, specs, cache_arg, {"cache_write": cache_write and run.cache_warning is None}))
    finally:
        bar.close()
    run.seconds = time.perf_counter() - t_start
    run.meta = {"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "scheduler": scheduler or "in-process"}
    return run


# --------------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------------
def sidecar_paths(out: str | os.PathLike) -> dict[str, Path]:
    p = Path(out)
    stem = p.with_suffix("") if p.suffix else p
    return {"errors": Path(f"{stem}.errors.csv"), "meta": Path(f"{stem}.meta.json"),
            "frames": Path(f"{stem}.frames.parquet")}


def output_paths(out: str | os.PathLike, per_frame: bool = False) -> dict[str, Path]:
    """Every file :func:`write_outputs` writes for ``out``: ``features`` (``out``), ``errors``, ``meta``
    and, with ``per_frame``, ``frames``."""
    side = sidecar_paths(out)
    paths = {"features": Path(out), "errors": side["errors"], "meta": side["meta"]}
    if per_frame:
        paths["frames"] = side["frames"]
    return paths


_EXACT_INT = 2.0 ** 53  # every whole number up to this size is a float64 and an int64 alike


def whole_numbers_as_integers(df: pd.DataFrame) -> pd.DataFrame:
    """For a CSV: each float column whose every value present is a whole number (a width, a frame count,
    a rotation, a one-hot codec) as pandas' nullable ``Int64``, so that it is written ``640``, not
    ``640.0``, and a missing value stays empty. The values are the same numbers; a column with any other
    value (``0.5``, infinity, ``-0.0``) and a column with no value at all are left as they are, and so
    written as before. (Parquet keeps float64 for every feature column: one schema whatever the values.)"""
    whole = {}
    for c in df.columns:
        if df[c].dtype != np.float64:
            continue
        v = df[c].to_numpy()
        v = v[~np.isnan(v)]
        if v.size and np.all(np.abs(v) <= _EXACT_INT) and np.all(v == np.trunc(v)) \
                and not np.any((v == 0) & np.signbit(v)):
            whole[c] = "Int64"
    return df.astype(whole) if whole else df


def write_outputs(run: ExtractionRun, out: str | os.PathLike, per_frame: bool = False) -> dict[str, Path]:
    """Write the feature table (Parquet, or CSV by suffix), its errors CSV and metadata JSON (and, with
    ``per_frame``, the per-frame Parquet).

    All or nothing: every file is first written to a temporary file beside its target (a target that
    cannot be written, e.g. a folder named ``OUT.errors.csv``, stops the run before any file is
    replaced), then all are renamed into place, the feature table last."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from deepqoe import __version__
    from deepqoe.io import atomic_path

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv", ".tsv"):
        raise DeepQoEError("the output must end in .parquet (or .csv)", file=str(out))
    paths = output_paths(out, per_frame)
    df = run.features_table()
    meta = {"format": "deepqoe-video-features", "deepqoe_version": __version__, "id_column": "id",
            "extractors": run.extractor_metadata(), "videos": len(run.order), "ok": len(run.ok_ids),
            "failed": len(run.failed_ids), "partial": len(run.partial_ids), "rows": len(df), **run.meta}
    from deepqoe.io import to_json

    with contextlib.ExitStack() as stack:
        # every temporary file first (each in its target's folder): a target that cannot be written is an
        # error before anything is replaced; leaving the block renames them all (the feature table last)
        tmp = {k: stack.enter_context(atomic_path(q)) for k, q in paths.items()}
        if suffix in (".parquet", ".pq"):
            table = pa.Table.from_pandas(df, preserve_index=False)
            md = dict(table.schema.metadata or {})
            md[b"deepqoe"] = json.dumps(meta).encode()
            pq.write_table(table.replace_schema_metadata(md), tmp["features"])
        else:
            whole_numbers_as_integers(df).to_csv(tmp["features"], index=False,
                                                 sep="\t" if suffix == ".tsv" else ",")
        run.errors_table().to_csv(tmp["errors"], index=False)
        tmp["meta"].write_text(to_json(meta) + "\n", encoding="utf-8")
        if per_frame:
            run.per_frame_table().to_parquet(tmp["frames"], index=False)
    return paths


def read_feature_metadata(path: str | os.PathLike) -> dict:
    """The ``deepqoe`` metadata of a feature table written by :func:`write_outputs`."""
    import pyarrow.parquet as pq

    md = pq.read_schema(path).metadata or {}
    raw = md.get(b"deepqoe")
    return json.loads(raw) if raw else {}
