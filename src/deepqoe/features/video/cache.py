"""A feature cache keyed by the video's content: a second run does no work for files already done.

Key: sha256 of the video's bytes, the extractor's name, version and output-changing options (and the
reference video's sha256 for full-reference metrics). Each result is one JSON file, written atomically
the moment it is computed, so an interrupted run loses nothing and the next run resumes. Layout::

    CACHE/<sha[:2]>/<sha>/<extractor>-<key[:24]>.json

The default folder is ``$DEEPQOE_CACHE_DIR``, else ``$XDG_CACHE_HOME/deepqoe/features``, else
``~/.cache/deepqoe/features``. Entries are plain JSON (never pickle); a damaged entry is ignored and
recomputed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from deepqoe.features.video.base import Features
from deepqoe.io import atomic_write_json


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


class FeatureCache:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()

    def path(self, video_sha: str, extractor: str, key: str) -> Path:
        return self.root / video_sha[:2] / video_sha / f"{extractor}-{key[:24]}.json"

    def get(self, video_sha: str, extractor: str, key: str) -> Features | None:
        p = self.path(video_sha, extractor, key)
        try:
            with open(p, encoding="utf-8") as f:
                d = json.load(f)
            if d.get("key") != key:
                return None
            per_frame = d.get("per_frame")
            if per_frame is not None:
                per_frame = {k: [_nan(x) for x in v] for k, v in per_frame.items()}
            return Features(values={k: _nan(v) for k, v in d["values"].items()}, frames=int(d.get("frames", 0)),
                            per_frame=per_frame)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, video_sha: str, extractor: str, key: str, features: Features, meta: dict | None = None) -> None:
        entry = {"key": key, "extractor": extractor, "video_sha256": video_sha, **(meta or {}),
                 "frames": features.frames,
                 "values": {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                            for k, v in features.values.items()},
                 "per_frame": features.per_frame}
        atomic_write_json(self.path(video_sha, extractor, key), entry)
