"""A network whose early stopping keeps the first epoch's weights learned little: said in one note (a user
audit: 2560 CNN features on 12 rows kept epoch 1 and predicted 2.9-3.4 for MOS 1.5-4.6, without a word)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from deepqoe.errors import DeepQoENote
from deepqoe.estimators import DeepQoERegressor


def _notes(rec):
    return [str(w.message) for w in rec if issubclass(w.category, DeepQoENote) and "first epoch" in str(w.message)]


def test_weights_of_the_first_epoch_are_noted():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 30)), columns=[f"f{i}" for i in range(30)])
    y = rng.normal(size=40)
    # a step size so small that no epoch improves on the first: the weights of epoch 1 are kept
    est = DeepQoERegressor(hidden_layers=(16,), learning_rate=1e-12, max_epochs=10, validation_fraction=0.3,
                           dropout=0.0)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        est.fit(X, y)
    assert est.fit_result_.best_epoch == 1 and est.fit_result_.epochs_run > 1
    assert len(_notes(rec)) == 1


def test_a_network_that_learns_gets_no_such_note():
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    y = X["a"].to_numpy() * 2 + X["b"].to_numpy()
    est = DeepQoERegressor(hidden_layers=(16,), learning_rate=0.01, max_epochs=40, validation_fraction=0.2)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        est.fit(X, y)
    assert est.fit_result_.best_epoch > 1 and not _notes(rec)
