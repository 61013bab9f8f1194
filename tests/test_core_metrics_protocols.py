"""Evaluation: metrics and protocols."""

import numpy as np
import pytest
from scipy import stats

from deepqoe.errors import DeepQoEError
from deepqoe.evaluation.metrics import classification_metrics, regression_metrics
from deepqoe.evaluation.protocols import make_splits, validation_split
from deepqoe.evaluation.statistics import logistic_4_fit, paired_test, summarise


def test_regression_metrics_against_scipy():
    rng = np.random.default_rng(0)
    y = rng.normal(size=50)
    p = y + rng.normal(scale=0.5, size=50)
    m = regression_metrics(y, p, logistic=True)
    assert m["plcc"] == pytest.approx(stats.pearsonr(y, p)[0])
    assert m["srocc"] == pytest.approx(stats.spearmanr(y, p)[0])
    assert m["krocc"] == pytest.approx(stats.kendalltau(y, p)[0])
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((y - p) ** 2)))
    assert m["plcc_logistic"] >= m["plcc"] - 0.05
    assert regression_metrics(y, -y)["srocc"] == pytest.approx(-1)
    assert regression_metrics(y, np.zeros(50))["plcc"] == 0.0  # constant prediction: no correlation


def test_classification_metrics():
    m = classification_metrics([1, 1, 2, 3], [1, 2, 2, 3], labels=[1, 2, 3])
    assert m["accuracy"] == 0.75
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    # F1: class1 2/3, class2 2/3, class3 1
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_logistic_mapping_is_monotone_and_fits():
    x = np.linspace(-3, 3, 40)
    mos = 1 + 4 / (1 + np.exp(-2 * x))
    out = logistic_4_fit(x, mos)
    assert np.max(np.abs(out - mos)) < 1e-3


def test_protocols_cover_and_are_disjoint():
    for proto in ("holdout", "repeated", "kfold"):
        splits = make_splits(proto, 100, n_splits=5, test_size=0.1, seed=1)
        for s in splits:
            assert not set(s.train) & set(s.test) and len(s.train) + len(s.test) == 100
    folds = make_splits("kfold", 100, n_splits=5)
    assert sorted(np.concatenate([s.test for s in folds]).tolist()) == list(range(100))
    assert len(make_splits("repeated", 100, n_splits=10, test_size=0.1)) == 10


def test_group_protocols_are_group_disjoint():
    groups = np.repeat(list("abcde"), 10)
    logo = make_splits("group", 50, groups=groups)
    assert len(logo) == 5
    for s in logo:
        assert len(set(groups[s.test])) == 1 and not set(groups[s.train]) & set(groups[s.test])
    for s in make_splits("group-kfold", 50, groups=groups, n_splits=3):
        assert not set(groups[s.train]) & set(groups[s.test])
    with pytest.raises(DeepQoEError, match="group column"):
        make_splits("group", 50)
    tr, va = validation_split(50, 0.2, 0, groups=groups)
    assert not set(groups[tr]) & set(groups[va])


def test_summary_and_paired_test():
    s = summarise([{"acc": 0.5}, {"acc": 0.7}])
    assert s["acc"]["mean"] == pytest.approx(0.6) and s["acc"]["values"] == [0.5, 0.7]
    assert s["acc"]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    t = paired_test([0.9, 0.8, 0.85, 0.95], [0.5, 0.4, 0.45, 0.5])
    assert t["t_pvalue"] < 0.01 and t["mean_difference"] > 0
    t = paired_test([0.9, 0.8, np.nan, 0.7, 0.6], [0.85, 0.8, 0.1, 0.75, 0.5])  # the NaN pair is dropped
    assert t["n"] == 4 and t["a_better_fraction"] == 0.5 and t["ties_fraction"] == 0.25
    assert t["median_difference"] == pytest.approx(0.025) and 0 <= t["wilcoxon_pvalue"] <= 1


def test_videval_protocol_is_the_authors_train_test_split():
    import math

    from sklearn.model_selection import train_test_split

    splits = make_splits("videval", 1200, n_splits=3)
    for i, s in enumerate(splits, start=1):
        tr, te = train_test_split(np.arange(1200), test_size=0.2, random_state=math.ceil(8.8 * i))
        assert s.test.tolist() == list(te) and s.train.tolist() == list(tr)
