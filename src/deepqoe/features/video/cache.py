"""A feature cache keyed by the video's content: a second run does no work for files already done.

Key: sha256 of the video's bytes, the extractor's name, version and output-changing options (and the
reference video's sha256 for full-reference metrics). Each result is one JSON file, written atomically
the moment it is computed, so an interrupted run loses nothing and the next run resumes. Layout::

    CACHE/<sha[:2]>/<sha>/<extractor>-<key[:24]>.json

The default folder is ``$DEEPQOE_CACHE_DIR``, else ``$XDG_CACHE_HOME/deepqoe/features``, else
``~/.cache/deepqoe/features``. Entries are plain JSON (never pickle). Each entry carries ``digest``,
the SHA-256 of its canonical JSON (key, values, per-frame series, everything but the digest itself):
an entry edited by hand, damaged on disk or written by a deepqoe without digests is not used; it is
listed in :attr:`FeatureCache.rejected` (the extraction says so on stderr) and recomputed. The digest
catches accidents and hand edits, not a forger who recomputes it: the cache folder is trusted as much
as the videos are.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from deepqoe.features.video.base import Features
from deepqoe.io import atomic_write_json, to_json


def default_cache_dir() -> Path:
    env = os.environ.get("DEEPQOE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "deepqoe" / "features"


def sha256_file(path: str | os.PathLike, chunk: int = 4 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def cache_key(extractor: str, version: str, options: dict[str, Any], reference_sha: str | None = None) -> str:
    blob = json.dumps({"extractor": extractor, "version": version, "options": options,
                       "reference": reference_sha}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _nan(v):
    return float("nan") if v is None else float(v)


def entry_digest(entry: dict) -> str:
    """SHA-256 of an entry's canonical JSON, every field but ``digest`` (as parsed from the file)."""
    body = {k: v for k, v in entry.items() if k != "digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


class FeatureCache:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        #: (entry file, reason) for every existing entry that :meth:`get` refused
        self.rejected: list[tuple[Path, str]] = []

    def path(self, video_sha: str, extractor: str, key: str) -> Path:
        return self.root / video_sha[:2] / video_sha / f"{extractor}-{key[:24]}.json"

    def get(self, video_sha: str, extractor: str, key: str) -> Features | None:
        """The cached result, or None: not cached, or an entry that fails its checks (then recorded in
        :attr:`rejected`)."""
        p = self.path(video_sha, extractor, key)
        try:
            with open(p, encoding="utf-8") as f:
                d = json.load(f)
        except (FileNotFoundError, NotADirectoryError):  # not cached (or no cache folder at all)
            return None
        except (OSError, ValueError) as e:
            return self._reject(p, f"unreadable ({type(e).__name__})")
        try:
            if not isinstance(d, dict) or "digest" not in d:
                return self._reject(p, "no digest (written by an older deepqoe, or edited)")
            if d["digest"] != entry_digest(d):
                return self._reject(p, "its digest does not match its content (edited or damaged)")
            if d.get("key") != key:
                return self._reject(p, "written for another cache key")
            per_frame = d.get("per_frame")
            if per_frame is not None:
                per_frame = {k: [_nan(x) for x in v] for k, v in per_frame.items()}
            return Features(values={k: _nan(v) for k, v in d["values"].items()}, frames=int(d.get("frames", 0)),
                            per_frame=per_frame)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            return self._reject(p, f"malformed ({type(e).__name__})")

    def _reject(self, p: Path, reason: str) -> None:
        self.rejected.append((p, reason))
        return None

    def put(self, video_sha: str, extractor: str, key: str, features: Features, meta: dict | None = None) -> None:
        entry = {"key": key, "extractor": extractor, "video_sha256": video_sha, **(meta or {}),
                 "frames": features.frames,
                 "values": {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                            for k, v in features.values.items()},
                 "per_frame": features.per_frame}
        entry = json.loads(to_json(entry, indent=None))  # the digest is of exactly what is read back
        entry["digest"] = entry_digest(entry)
        atomic_write_json(self.path(video_sha, extractor, key), entry)
