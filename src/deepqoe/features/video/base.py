"""The one interface every video feature extractor has, and the registry of extractors.

An extractor is a small class with a ``name``, a ``version`` (bump it whenever its output changes: it is
part of the cache key) and one method::

    extract(video_path, reference=None) -> Features

``Features.values`` maps column names (prefixed with the extractor's name, e.g. ``siti_si_max``) to
floats; ``frames`` is how many frames were decoded (for the frames/s display); ``per_frame`` optionally
holds per-frame series (e.g. VMAF of every frame). Options are given to the constructor, validated
there, and ``options()`` returns those that change the output (also part of the cache key).

Extractors are created by name with :func:`make_extractor`; the classes are imported on first use,
so a missing optional dependency only matters to the extractor that needs it.
"""

from __future__ import annotations

import importlib
import math
import threading
from dataclasses import dataclass
from typing import Any, ClassVar

from deepqoe.errors import DeepQoEError

# name -> "module:Class" (imported lazily)
EXTRACTORS: dict[str, str] = {
    "cnn-frames": "deepqoe.features.video.cnn_frames:CNNFramesExtractor",
    "c3d": "deepqoe.features.video.c3d:C3DExtractor",
    "siti": "deepqoe.features.video.siti:SITIExtractor",
    "stream": "deepqoe.features.video.stream:StreamExtractor",
    "full-reference": "deepqoe.features.video.full_reference:FullReferenceExtractor",
    "niqe": "deepqoe.features.video.niqe:NIQEExtractor",
}
DEFAULT_EXTRACTORS = ("cnn-frames", "siti", "stream")


@dataclass
class Features:
    values: dict[str, float]
    frames: int = 0
    per_frame: dict[str, list[float]] | None = None


class Extractor:
    """Base class: subclasses set ``name``, ``version`` and ``defaults`` and implement ``extract``."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    needs_reference: ClassVar[bool] = False
    #: option name -> default; only these options are accepted (others given to the run are ignored)
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options):
        unknown = set(options) - set(self.defaults)
        if unknown:
            raise DeepQoEError(f"extractor '{self.name}' has no option(s) {sorted(unknown)}; "
                               f"its options are {sorted(self.defaults)}")
        self.opts = {**self.defaults, **{k: v for k, v in options.items() if v is not None}}
        if "fps" in self.defaults:  # a sampling rate: a finite number, 0 or more (0: every frame)
            fps = self.opts["fps"]
            try:
                ok = fps is None or (not isinstance(fps, bool) and math.isfinite(float(fps)) and float(fps) >= 0)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise DeepQoEError(f"the sampling rate must be a finite number of frames a second, 0 or more; "
                                   f"got {fps!r}", field="fps")

    def options(self) -> dict[str, Any]:
        """The options that change the output (part of the cache key)."""
        return dict(self.opts)

    def extract(self, video_path, reference=None) -> Features:  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options()})"


def extractor_class(name: str) -> type[Extractor]:
    if name not in EXTRACTORS:
        import difflib

        close = difflib.get_close_matches(name, EXTRACTORS, n=1)
        raise DeepQoEError(f"unknown extractor '{name}'" + (f" (did you mean '{close[0]}'?)" if close else "")
                           + f"; known: {', '.join(EXTRACTORS)}", field="extractors")
    mod, cls = EXTRACTORS[name].split(":")
    try:
        module = importlib.import_module(mod)
    except ImportError as e:
        raise DeepQoEError(f"extractor '{name}' needs a package that is not installed ({e}); "
                           "install the video extras: pip install 'deepqoe[video]'") from None
    return getattr(module, cls)


def make_extractor(name: str, options: dict[str, Any] | None = None) -> Extractor:
    """Create an extractor; options it does not know are dropped (one option dict serves all)."""
    cls = extractor_class(name)
    opts = {k: v for k, v in (options or {}).items() if k in cls.defaults}
    return cls(**opts)


_memo: dict[tuple, Extractor] = {}
_memo_lock = threading.Lock()


def cached_extractor(name: str, options: dict[str, Any] | None = None) -> Extractor:
    """One extractor per (name, options) and process: models are loaded once per worker."""
    import json

    key = (name, json.dumps(options or {}, sort_keys=True, default=str))
    with _memo_lock:
        ex = _memo.get(key)
        if ex is None:
            ex = _memo[key] = make_extractor(name, options)
        return ex


def parse_extractor_list(text: str | list[str]) -> list[str]:
    names = text if isinstance(text, list) else [t.strip() for t in str(text).split(",")]
    names = [n for n in names if n]
    if not names:
        raise DeepQoEError("no extractor given; use e.g. --extractors cnn-frames,siti,stream",
                           field="extractors")
    for n in names:
        extractor_class_name_check(n)
    seen = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return seen


def extractor_class_name_check(name: str) -> None:
    if name not in EXTRACTORS:
        extractor_class(name)  # raises with a hint


class torch_threads:
    """Run a block with ``n`` torch intra-op threads (``None`` or 0: leave as is), then restore."""

    def __init__(self, n: int | None):
        self.n = int(n or 0)
        self.old = None

    def __enter__(self):
        if self.n > 0:
            import torch

            self.old = torch.get_num_threads()
            if self.old != self.n:
                torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if self.old is not None and self.old != self.n:
            import torch

            torch.set_num_threads(self.old)
        return False
