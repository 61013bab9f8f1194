"""scikit-learn's own estimator checks on the three DeepQoE estimators.

With ``inputs=None`` every column of a numeric X is a continuous input, which is what the checks feed.
The check instances train tiny networks for a few epochs so the whole file runs in about a minute on one
core. Checks failed on purpose are listed, with their reason, in ``deepqoe.estimators`` and the README.
"""

from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from deepqoe.estimators import DeepQoEClassifier, DeepQoERegressor, DeepQoERepresentation, expected_failed_checks

TINY = dict(hidden_layers=(16,), dropout=0.0, max_epochs=8, batch_size=32, learning_rate=0.02, patience=8)


@parametrize_with_checks([DeepQoEClassifier(**TINY), DeepQoERegressor(**TINY), DeepQoERepresentation(**TINY)],
                         expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_every_expected_failure_has_a_reason():
    for est in (DeepQoEClassifier(), DeepQoERegressor(), DeepQoERepresentation()):
        for name, reason in expected_failed_checks(est).items():
            assert name.startswith("check_") and len(reason) > 20
