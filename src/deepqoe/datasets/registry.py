"""Every dataset the package reads, by name: kind, loader, licence and upstream source.

Kinds: ``sessions`` (streaming sessions with a MOS: a :class:`~deepqoe.sessions.readers.StreamingDataset`),
``continuous`` (per-second scores: a :class:`~deepqoe.sessions.continuous.ContinuousDataset`), ``table``
(a YAML dataset config read by :func:`deepqoe.datasets.load_dataset`) and ``videval`` (pre-computed
VIDEVAL features: a :class:`~deepqoe.datasets.videval.VidevalData`). Every loader takes ``root`` (the
data folder; ``$DEEPQOE_DATA`` when None) and reads from it without copying anything.

Each public dataset is one module of this package (``p1203_open``, ``waterloo_sqoe``, ``live_nflx``,
``live_nflx_continuous``, ``lfovia_qoe``, ``videval``) or a YAML config (``configs/``). A new dataset is
that one file plus one :func:`register` line below; experiments, the session trainer and the
pre-trained builder find it by name (:func:`get_dataset`, :func:`load_session_dataset`).
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from deepqoe.errors import DeepQoEError

KINDS = ("sessions", "continuous", "table", "videval")
#: The dataset configs shipped with the source tree (``configs/`` at the repository root).
CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs"


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    kind: str
    loader: Callable[..., Any]   # loader(root=None)
    folder: str                  # the folder under the data directory
    licence: str
    upstream: str

    def load(self, root=None):
        return self.loader(root)


_REGISTRY: dict[str, DatasetEntry] = {}


def register(name: str, kind: str, loader: Callable[..., Any], *, folder: str, licence: str,
             upstream: str) -> DatasetEntry:
    """Add a dataset under ``name`` (names are unique)."""
    if kind not in KINDS:
        raise DeepQoEError(f"dataset '{name}': unknown kind '{kind}'; use one of {', '.join(KINDS)}")
    if name in _REGISTRY:
        raise DeepQoEError(f"a dataset named '{name}' is already registered")
    entry = DatasetEntry(name, kind, loader, folder, licence, upstream)
    _REGISTRY[name] = entry
    return entry


def dataset_names(kind: str | None = None) -> list[str]:
    """The registered names (of one kind), in registration order."""
    if kind is not None and kind not in KINDS:
        raise DeepQoEError(f"unknown dataset kind '{kind}'; use one of {', '.join(KINDS)}")
    return [n for n, e in _REGISTRY.items() if kind is None or e.kind == kind]


def get_dataset(name: str) -> DatasetEntry:
    """The registry entry for ``name``; an unknown name is a DeepQoEError listing the known ones."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise DeepQoEError(f"unknown dataset '{name}'{hint}; known datasets: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def _load_kind(name: str, kind: str, root):
    entry = get_dataset(name)
    if entry.kind != kind:
        raise DeepQoEError(f"dataset '{name}' is a {entry.kind} dataset, not a {kind} one; {kind} datasets: "
                           f"{', '.join(dataset_names(kind))}")
    return entry.load(root)


def load_session_dataset(name: str, root=None):
    """A ``sessions`` dataset by name -> :class:`~deepqoe.sessions.readers.StreamingDataset`."""
    return _load_kind(name, "sessions", root)


def load_continuous_dataset(name: str, root=None):
    """A ``continuous`` dataset by name -> :class:`~deepqoe.sessions.continuous.ContinuousDataset`."""
    return _load_kind(name, "continuous", root)


# ------------------------------------------------------------------------------------ loaders

def _function(module: str, attr: str) -> Callable[..., Any]:
    """``deepqoe.datasets.<module>.<attr>(root)``, imported on first call (so the registry imports
    nothing heavy)."""
    def load(root=None):
        return getattr(importlib.import_module(f"deepqoe.datasets.{module}"), attr)(root)

    load.__qualname__ = load.__name__ = attr
    return load


def _videval(key: str) -> Callable[..., Any]:
    def load(root=None):
        from deepqoe.datasets.videval import load_videval

        return load_videval(key, root)

    return load


def _table(config: str) -> Callable[..., Any]:
    """A YAML dataset config (``configs/<config>``) -> :class:`deepqoe.datasets.Dataset`."""
    def load(root=None):
        from deepqoe.config import load_config
        from deepqoe.datasets import load_dataset

        cfg = load_config(CONFIG_DIR / config).dataset
        if root is not None:
            data = str(Path(root).expanduser().absolute())
            src = [cfg.source] if isinstance(cfg.source, str) else list(cfg.source)
            src = [s.replace("${DEEPQOE_DATA}", data).replace("$DEEPQOE_DATA", data) for s in src]
            cfg.source = src[0] if len(src) == 1 else src
        return load_dataset(cfg)

    return load


_VIDEVAL = "MIT (VIDEVAL features); the source videos keep their own licences"

register("p1203-open", "sessions", _function("p1203_open", "load_p1203_open"), folder="p1203-open",
         licence="non-commercial research licence (ITU-T P.1203 open dataset)", upstream="itu-p1203/open-dataset")
register("waterloo-sqoe-iv", "sessions", _function("waterloo_sqoe", "load_waterloo_sqoe_iv"), folder="waterloo-sqoe-iv",
         licence="CC BY 4.0", upstream="Leo-rojo/Analysis-of-Waterloo-IV-QoE-dataset @ WaterlooIV partial database")
register("live-nflx", "sessions", _function("live_nflx", "load_live_nflx"), folder="live-nflx",
         licence="UT Austin permissive licence (keep the notice, cite Bampis et al.)",
         upstream="christosbampis/VideoATLAS_release")
register("live-nflx-continuous", "continuous", _function("live_nflx_continuous", "load_live_nflx_continuous"),
         folder="continuous-qoe/live-nflx", licence="research use; cite Bampis et al. (LIVE-NFLX)",
         upstream="lfovia/lstm_qoe @ LIVE_Netflix/")
register("lfovia-qoe", "continuous", _function("lfovia_qoe", "load_lfovia_qoe"), folder="continuous-qoe/lfovia-qoe",
         licence="research use; cite Eswara et al., IEEE TCSVT 2019", upstream="lfovia/lstm_qoe @ LFOVIA_QoE/")
register("konvid-1k", "videval", _videval("konvid-1k"), folder="videval-ugc", licence=_VIDEVAL,
         upstream="vztu/VIDEVAL @ features/")
register("youtube-ugc", "videval", _videval("youtube-ugc"), folder="videval-ugc", licence=_VIDEVAL,
         upstream="vztu/VIDEVAL @ features/")
register("live-vqa", "videval", _videval("live-vqa"), folder="videval-ugc", licence=_VIDEVAL,
         upstream="vztu/VIDEVAL @ features/")
register("upec-qoe-lab", "table", _table("upec-qoe-lab.yaml"), folder="upec-qoe-lab", licence="MIT-style licence",
         upstream="PhDAmour/QoEcontrlledLaboratory @ data/QoEcontrolledLab.csv")
