"""The UGC datasets' recipe, shared by sections 4 and 5 (``recipes/ugc.yaml``): DeepQoE inputs and network
on the 60-d VIDEVAL features, and the 4 MOS classes."""

from __future__ import annotations

import numpy as np

from deepqoe.experiments.common import Settings, load_recipe

RECIPE = load_recipe("ugc")
UGC_DATASETS: dict[str, str] = RECIPE["datasets"]
VIDEVAL_PUBLISHED: dict[str, dict] = RECIPE["videval_published"]
TARGET_SROCC: float = RECIPE["target_srocc"]
MOS_CLASS_THRESHOLDS = tuple(RECIPE["class_thresholds"])
MOS_CLASSES: list[str] = RECIPE["classes"]


def mos_classes(y) -> np.ndarray:
    """MOS (1-5) -> the 4 quality classes, cut at :data:`MOS_CLASS_THRESHOLDS`."""
    return np.asarray(MOS_CLASSES, dtype=object)[np.digitize(np.asarray(y, float), MOS_CLASS_THRESHOLDS)]


def ugc_inputs(data, with_metadata: bool = True) -> list[dict]:
    """DeepQoE inputs on the UGC sets: the 60 VIDEVAL features as one vector input, plus (YouTube-UGC)
    the category as text and the resolution as a category."""
    inputs = [dict(RECIPE["features_input"], columns=list(data.feature_columns))]
    if with_metadata and "category" in data.X.columns:
        inputs += [dict(i) for i in RECIPE["metadata_inputs"]]
    return inputs


def ugc_net(settings: Settings, seed: int) -> dict:
    """The DeepQoE recipe on the UGC sets (chosen on VIDEVAL splits 91-100, never on reported ones)."""
    return dict(RECIPE["network"], max_epochs=settings.ugc_epochs,
                patience=RECIPE["patience"]["quick" if settings.quick else "full"], random_state=seed)
