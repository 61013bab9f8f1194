"""The UPEC lab data and the small-dataset network, shared by sections 1-3 (``recipes/upec.yaml``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepqoe.experiments.common import Settings, load_recipe

RECIPE = load_recipe("upec")
UPEC_CLASSES = RECIPE["classes"]
UPEC_RATING_INPUTS = RECIPE["rating_inputs"]
UPEC_CONDITION_INPUTS = RECIPE["condition_inputs"]


def load_upec() -> pd.DataFrame:
    """The UPEC controlled-lab ratings (one row per viewer rating), read through the dataset registry
    (``configs/upec-qoe-lab.yaml``): its inputs, ``id_video`` (the config's group column) and ``mos``."""
    from deepqoe.datasets.registry import get_dataset

    d = get_dataset(RECIPE["dataset"]).load()
    df = d.X.copy()
    df["resolution"] = df["resolution"].astype(int).astype(str)
    df["id_video"] = np.asarray(d.groups).astype(int)
    df["mos"] = np.asarray(d.y).astype(int)
    return df


def upec_conditions(df: pd.DataFrame) -> pd.DataFrame:
    """MOS per video condition: the ratings of one source video (``id_video``) at one resolution."""
    g = df.groupby(["id_video", "resolution"], sort=True)
    return g.agg(content=("content", "first"), bitrate_video=("bitrate_video", "mean"),
                 mos=("mos", "mean"), n_ratings=("mos", "size")).reset_index()


def small_net(settings: Settings, seed: int) -> dict:
    """The paper's small-dataset network (FC 512, 256, dropout 0.5) for this run."""
    return dict(RECIPE["network"], max_epochs=settings.epochs_small,
                patience=max(10, settings.epochs_small // 6), random_state=seed)


def deepqoe_regress(Xtr, ytr, Xte, inputs, settings: Settings, seeds: int, base_seed: int = 0) -> np.ndarray:
    """The mean prediction of ``seeds`` small DeepQoE regressors."""
    from deepqoe.estimators import DeepQoERegressor

    preds = [DeepQoERegressor(inputs=inputs, **small_net(settings, base_seed * 100 + s)).fit(Xtr, ytr).predict(Xte)
             for s in range(seeds)]
    return np.mean(preds, 0)
