"""Loaders for the pre-computed VIDEVAL feature sets (KoNViD-1k, YouTube-UGC, LIVE-VQA).

The files come from the VIDEVAL repository (``features/`` there, ``$DEEPQOE_DATA/videval-ugc/features/``
here): one ``<DATASET>_<VARIANT>_feats.mat`` holding the 60-d feature matrix under ``feats_mat`` and a
``<DATASET>_metadata.csv`` whose rows are aligned with it.

:func:`load_videval` returns a :class:`VidevalData` whose ``X`` is a table with the features as columns
``f0..f59`` (NaN / inf set to 0, as in the authors' protocol) plus, for YouTube-UGC, the ``category``
(as words, e.g. ``NewsClip`` -> ``news clip`` so a word embedding can read it) and the ``resolution``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from deepqoe.errors import DeepQoEError

# The 57 greyscale YouTube-UGC videos the VIDEVAL authors drop (1-based row indices).
YOUTUBE_UGC_GREYSCALE = (
    3, 6, 10, 22, 23, 46, 51, 52, 68, 74, 77, 99, 103, 122, 136, 141, 158, 173, 368, 426, 467, 477, 506,
    563, 594, 639, 654, 657, 666, 670, 671, 681, 690, 697, 702, 703, 710, 726, 736, 764, 768, 777, 786,
    796, 977, 990, 1012, 1015, 1023, 1091, 1118, 1205, 1282, 1312, 1336, 1344, 1380)

# dataset name -> (file stem, MOS column of the metadata, id column)
DATASETS = {
    "konvid-1k": ("KONVID_1K", "mos", "flickr_id"),
    "youtube-ugc": ("YOUTUBE_UGC", "MOSFull", "vid"),
    "live-vqa": ("LIVE_VQA", "MOS", "filename"),
}
VARIANTS = ("VIDEVAL", "VIDEVAL_light480_3fps", "VIDEVAL_light720_3fps", "VIDEVAL_light720_6fps")


@dataclass
class VidevalData:
    name: str
    X: pd.DataFrame          # f0..f{d-1} (+ category, resolution for YouTube-UGC)
    y: np.ndarray            # MOS
    meta: pd.DataFrame       # the metadata rows kept (aligned with X)
    feature_columns: list[str] = field(default_factory=list)

    @property
    def features(self) -> np.ndarray:
        return self.X[self.feature_columns].to_numpy(dtype=float)


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The VIDEVAL feature folder under ``DEEPQOE_DATA`` (or below ``path``)."""
    if path is None:
        from deepqoe.datasets import data_dir as root_dir

        path = root_dir()
    p = Path(path)
    for cand in (p / "videval-ugc" / "features", p / "features", p):
        if (cand / "KONVID_1K_metadata.csv").is_file() or (cand / "YOUTUBE_UGC_metadata.csv").is_file():
            return cand
    raise DeepQoEError("no VIDEVAL features found (expected videval-ugc/features/*_metadata.csv)", file=str(p))


def category_words(cat: str) -> str:
    """``NewsClip`` -> ``news clip``, ``HDR`` -> ``hdr``: YouTube-UGC categories as plain words."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", str(cat))
    return " ".join(w.lower() for w in words) or str(cat).lower()


def load_videval(name: str, root: str | os.PathLike | None = None, variant: str = "VIDEVAL",
                 color_only: bool = True) -> VidevalData:
    """Load one VIDEVAL feature set with its MOS.

    ``color_only`` drops the 57 greyscale YouTube-UGC videos, as the VIDEVAL authors do.
    """
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise DeepQoEError(f"unknown VIDEVAL dataset '{name}'; use one of {', '.join(DATASETS)}")
    if variant not in VARIANTS:
        raise DeepQoEError(f"unknown VIDEVAL feature variant '{variant}'; use one of {', '.join(VARIANTS)}")
    stem, mos_col, id_col = DATASETS[key]
    folder = data_dir(root)
    mat_file = folder / f"{stem}_{variant}_feats.mat"
    csv_file = folder / f"{stem}_metadata.csv"
    for f in (mat_file, csv_file):
        if not f.is_file():
            raise DeepQoEError("file not found", file=str(f))
    from scipy.io import loadmat

    try:
        feats = np.asarray(loadmat(mat_file)["feats_mat"], dtype=float)
    except KeyError:
        raise DeepQoEError("no 'feats_mat' matrix in the file", file=str(mat_file)) from None
    except Exception as e:  # noqa: BLE001 - scipy raises many types on a bad file
        raise DeepQoEError(f"cannot read the .mat file: {e}", file=str(mat_file)) from None
    meta = pd.read_csv(csv_file)
    if mos_col not in meta.columns:
        raise DeepQoEError(f"no MOS column '{mos_col}'", file=str(csv_file), column=mos_col)
    if len(meta) != len(feats):
        raise DeepQoEError(f"{len(meta)} metadata rows but {len(feats)} feature rows", file=str(mat_file))
    feats[~np.isfinite(feats)] = 0.0
    keep = np.ones(len(meta), dtype=bool)
    if key == "youtube-ugc" and color_only:
        keep[np.asarray(YOUTUBE_UGC_GREYSCALE) - 1] = False
    meta = meta.loc[keep].reset_index(drop=True)
    feats = feats[keep]
    cols = [f"f{i}" for i in range(feats.shape[1])]
    X = pd.DataFrame(feats, columns=cols)
    X.insert(0, "id", meta[id_col].astype(str).to_numpy())
    if key == "youtube-ugc":
        X["category"] = [category_words(c) for c in meta["category"]]
        X["resolution"] = meta["resolution"].astype(int).astype(str).to_numpy()
    y = meta[mos_col].to_numpy(dtype=float)
    return VidevalData(name=key, X=X, y=y, meta=meta, feature_columns=cols)


# The VIDEVAL protocol lives with the other protocols and learners; re-exported here for convenience.
from deepqoe.evaluation.protocols import videval_inner_split, videval_split, videval_splits  # noqa: E402,F401
from deepqoe.shallow import SVR_C_RANGE, SVR_GAMMA_RANGE, videval_svr_fit  # noqa: E402,F401
