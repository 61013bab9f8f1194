"""scikit-learn estimators around the DeepQoE network.

* :class:`DeepQoEClassifier`: softmax head, cross-entropy; ``predict``, ``predict_proba``.
* :class:`DeepQoERegressor`: linear head, MSE on a standardised target; ``predict``.
* :class:`DeepQoERepresentation`: a transformer whose output is the learned representation (the last
  hidden layer), so any shallow learner can sit on it in a :class:`sklearn.pipeline.Pipeline`.

All three take a DataFrame ``X`` whose columns are named by ``inputs`` (a list of
:class:`deepqoe.config.InputConfig` dicts); parameters are validated in one place (``_settings``, which
builds the typed configs of :mod:`deepqoe.config`). They compose with ``clone``, ``cross_val_score``,
``GridSearchCV`` and ``Pipeline``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from pydantic import ValidationError
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin

from deepqoe.config import InputConfig, ModelConfig, TrainingConfig, format_validation_error
from deepqoe.errors import DeepQoEError
from deepqoe.evaluation.protocols import validation_split
from deepqoe.features.tabular import build_encoder
from deepqoe.model import BranchSpec, DeepQoENet
from deepqoe.train import FitResult, fit_network, seed_everything


def as_frame(X) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    arr = np.asarray(X)
    if arr.ndim == 1:
        arr = arr[:, None]
    return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])


def infer_inputs(X: pd.DataFrame) -> list[dict]:
    """Default inputs when none are given: numbers are continuous, anything else categorical."""
    out = []
    for c in X.columns:
        s = X[c]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            out.append({"column": str(c), "modality": "continuous", "normalisation": "standard"})
        else:
            out.append({"column": str(c), "modality": "categorical", "projection": None})
    return out


def _store_params(est, params: dict) -> None:
    """scikit-learn convention: __init__ stores its arguments unchanged (validated later, in fit)."""
    for k, v in params.items():
        if k not in ("self", "__class__"):
            setattr(est, k, v)


class _DeepQoEBase(BaseEstimator):
    _task = "regression"

    def __init__(self, inputs=None, hidden_layers=(512, 256), dropout=0.5, optimizer="adam",
                 learning_rate=1e-3, momentum=0.9, weight_decay=0.0, batch_size=64, max_epochs=200,
                 patience=20, validation_fraction=0.1, early_stopping="loss", precision="fp32", n_threads=1,
                 random_state=0, progress=False, classes=None, init_from=None, freeze_representation=False):
        _store_params(self, locals())

    # ---- parameters, validated in one place -------------------------------------------------------
    def _settings(self, X: pd.DataFrame | None = None):
        raw_inputs = self.inputs if self.inputs is not None else infer_inputs(X)
        try:
            inputs = [i if isinstance(i, InputConfig) else InputConfig.model_validate(i) for i in raw_inputs]
            model = ModelConfig(hidden_layers=list(self.hidden_layers), dropout=self.dropout)
            training = TrainingConfig(
                optimizer=self.optimizer, learning_rate=self.learning_rate, momentum=self.momentum,
                weight_decay=self.weight_decay, batch_size=self.batch_size, max_epochs=self.max_epochs,
                patience=self.patience, validation_fraction=self.validation_fraction,
                early_stopping=self.early_stopping, precision=self.precision, n_threads=self.n_threads,
                seed=int(self.random_state or 0),
                progress=bool(self.progress))
        except ValidationError as e:
            raise format_validation_error(e, InputConfig, None) from None
        except TypeError as e:
            raise DeepQoEError(f"invalid estimator parameter: {e}") from None
        for i in inputs:
            if i.modality == "vector" and not i.columns:
                raise DeepQoEError("a vector input given to an estimator needs 'columns' (join the feature "
                                   "file first, e.g. with deepqoe.datasets.load_dataset)", field=i.key)
        active = [i for i in inputs if i.projection != 0]
        if not active:
            raise DeepQoEError("every input has projection 0: nothing is left for the model")
        return active, model, training

    # ---- phase 1: encoders ------------------------------------------------------------------------
    def _encode(self, X: pd.DataFrame) -> list[torch.Tensor]:
        out = []
        for enc in self.encoders_:
            a = enc.transform(X)
            out.append(torch.from_numpy(np.ascontiguousarray(a)))
        return out

    def _branch_specs(self, inputs) -> list[BranchSpec]:
        specs = []
        for cfg, enc in zip(inputs, self.encoders_):
            d = enc.describe()
            specs.append(BranchSpec(name=cfg.key, kind=d["kind"], dim=d.get("dim", d.get("channels", 0)),
                                    cardinality=d.get("cardinality", 0), embedding_dim=d.get("embedding_dim", 0),
                                    length=d.get("length", 0), encoder=d.get("encoder", "conv"),
                                    projection=cfg.projection))
        return specs

    def _build_network(self, inputs, model_cfg) -> DeepQoENet:
        n_out = len(self.classes_) if self._task == "classification" else 1
        return DeepQoENet(self._branch_specs(inputs), model_cfg.hidden_layers, model_cfg.dropout, n_out)

    # ---- targets ----------------------------------------------------------------------------------
    def _encode_target(self, y) -> torch.Tensor:
        if self._task == "classification":
            index = {c: i for i, c in enumerate(self.classes_.tolist())}
            codes = np.empty(len(y), dtype=np.int64)
            for r, v in enumerate(np.asarray(y).tolist()):
                if v not in index:
                    raise DeepQoEError(f"target value {v!r} is not one of the classes {self.classes_.tolist()}",
                                       column="target", row=r + 1)
                codes[r] = index[v]
            return torch.from_numpy(codes)
        yy = np.asarray(y, dtype=np.float64)
        if not np.isfinite(yy).all():
            raise DeepQoEError("NaN or infinite target value", column="target",
                               row=int(np.flatnonzero(~np.isfinite(yy))[0]) + 1)
        return torch.from_numpy(((yy - self.y_mean_) / self.y_std_).astype(np.float32)[:, None])

    # ---- fit --------------------------------------------------------------------------------------
    def fit(self, X, y, groups=None):
        X = as_frame(X)
        if len(X) != len(y):
            raise DeepQoEError(f"X has {len(X)} rows but y has {len(y)}")
        if len(X) < 2:
            raise DeepQoEError("need at least 2 rows to train")
        inputs, model_cfg, train_cfg = self._settings(X)
        self.input_configs_ = inputs
        y = np.asarray(y)
        if self._task == "classification":
            self.classes_ = np.asarray(self.classes) if self.classes is not None else np.unique(y)
        else:
            yy = np.asarray(y, dtype=np.float64)
            self.y_mean_ = float(np.nanmean(yy))
            self.y_std_ = float(np.nanstd(yy)) or 1.0
        seed_everything(train_cfg.seed)
        self.encoders_ = [build_encoder(c).fit(X) for c in inputs]
        self.feature_names_in_ = np.asarray(sorted({col for e in self.encoders_ for col in e.columns}), dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        tensors = self._encode(X)
        target = self._encode_target(y)
        fit_idx, val_idx = validation_split(len(X), train_cfg.validation_fraction, train_cfg.seed, groups)
        self.network_ = self._build_network(inputs, model_cfg)
        trainable = None
        if self.init_from is not None:
            self._warm_start(self.init_from)
            if self.freeze_representation:
                for p in self.network_.parameters():
                    p.requires_grad_(False)
                for p in self.network_.head.parameters():
                    p.requires_grad_(True)
                trainable = list(self.network_.head.parameters())
        pick = lambda ts, idx: [t.index_select(0, torch.from_numpy(idx)) for t in ts]  # noqa: E731
        tr_y = target.index_select(0, torch.from_numpy(fit_idx))
        va_y = target.index_select(0, torch.from_numpy(val_idx)) if len(val_idx) else None
        self.fit_result_: FitResult = fit_network(
            self.network_, pick(tensors, fit_idx), tr_y, pick(tensors, val_idx) if len(val_idx) else None, va_y,
            task=self._task, optimizer=train_cfg.optimizer, learning_rate=train_cfg.learning_rate,
            momentum=train_cfg.momentum, weight_decay=train_cfg.weight_decay, batch_size=train_cfg.batch_size,
            max_epochs=train_cfg.max_epochs, patience=train_cfg.patience, seed=train_cfg.seed,
            progress=train_cfg.progress, trainable=trainable, monitor=train_cfg.early_stopping,
            precision=train_cfg.precision, n_threads=train_cfg.n_threads)
        for p in self.network_.parameters():
            p.requires_grad_(True)
        return self

    def _warm_start(self, source) -> None:
        """Copy every weight whose name and shape match from a fitted estimator or a model directory."""
        if not isinstance(source, _DeepQoEBase):
            from deepqoe.persistence import load_model

            source = load_model(source)
        theirs = source.network_.state_dict()
        mine = self.network_.state_dict()
        copied = {k: v for k, v in theirs.items() if k in mine and mine[k].shape == v.shape}
        mine.update(copied)
        self.network_.load_state_dict(mine)
        self.warm_started_ = sorted(copied)

    # ---- outputs ----------------------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "network_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")

    @torch.no_grad()
    def _forward(self, X, what: str = "output", batch_size: int = 8192) -> np.ndarray:
        self._check_fitted()
        X = as_frame(X)
        tensors = self._encode(X)
        self.network_.eval()
        outs = []
        for s in range(0, len(X), batch_size):
            part = [t[s:s + batch_size] for t in tensors]
            outs.append(self.network_.representation(part) if what == "representation" else self.network_(part))
        return torch.cat(outs).numpy() if outs else np.zeros((0, 1), np.float32)

    def transform(self, X) -> np.ndarray:
        """The learned representation: the last hidden layer (n, hidden_layers[-1])."""
        return self._forward(X, "representation")


class DeepQoERegressor(RegressorMixin, _DeepQoEBase):
    """DeepQoE with a linear head trained with MSE (the target is standardised internally)."""

    _task = "regression"

    def predict(self, X) -> np.ndarray:
        return self._forward(X)[:, 0].astype(np.float64) * self.y_std_ + self.y_mean_

    @torch.no_grad()
    def predict_curve(self, X, column: str | None = None) -> np.ndarray:
        """Per-second QoE: the score of each session's first t seconds, for t = 1..length of the sequence
        input (NaN past a session's end). Shape (n, length)."""
        self._check_fitted()
        seq = [i for i, e in enumerate(self.encoders_) if e.kind == "sequence"
               and (column is None or self.input_configs_[i].column == column)]
        if not seq:
            raise DeepQoEError("this model has no sequence input, so it has no per-second curve")
        k = seq[0]
        X = as_frame(X)
        tensors = self._encode(X)
        self.network_.eval()
        lengths = tensors[k][:, -1].sum(1).long().numpy()
        n, L = tensors[k].shape[0], tensors[k].shape[2]
        curve = np.full((n, L), np.nan)
        chunk = max(1, 8192 // L)  # sessions per pass: bounds the (sessions x steps) rows in memory
        for s in range(0, n, chunk):
            out = self.network_.forward_prefixes([t[s:s + chunk] for t in tensors], k)[:, :, 0].numpy()
            curve[s:s + chunk] = out * self.y_std_ + self.y_mean_
        curve[np.arange(L)[None, :] >= lengths[:, None]] = np.nan  # past a session's end
        return curve


class DeepQoEClassifier(ClassifierMixin, _DeepQoEBase):
    """DeepQoE with a softmax head trained with cross-entropy."""

    _task = "classification"

    def predict_proba(self, X) -> np.ndarray:
        logits = torch.from_numpy(self._forward(X))
        return torch.softmax(logits, 1).numpy().astype(np.float64)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]


class DeepQoERepresentation(TransformerMixin, BaseEstimator):
    """Learn a DeepQoE network on (X, y) and output its representation: a transformer for Pipelines.

    ``Pipeline([("deepqoe", DeepQoERepresentation(task="classification", inputs=...)), ("svm", SVC())])``
    fits the network on the training split only (inside ``fit``), so the representation of the test
    split never sees its labels.
    """

    def __init__(self, task="classification", inputs=None, hidden_layers=(512, 256), dropout=0.5,
                 optimizer="adam", learning_rate=1e-3, momentum=0.9, weight_decay=0.0, batch_size=64,
                 max_epochs=200, patience=20, validation_fraction=0.1, early_stopping="loss", precision="fp32",
                 n_threads=1, random_state=0, progress=False, classes=None):
        _store_params(self, locals())

    def fit(self, X, y, groups=None):
        if self.task not in ("classification", "regression"):
            raise DeepQoEError(f"task must be 'classification' or 'regression', not {self.task!r}")
        params = {k: v for k, v in self.get_params().items() if k != "task"}
        if self.task == "regression":
            params.pop("classes")
            self.estimator_ = DeepQoERegressor(**params)
        else:
            self.estimator_ = DeepQoEClassifier(**params)
        self.estimator_.fit(X, y, groups=groups)
        self.n_features_in_ = self.estimator_.n_features_in_
        return self

    def transform(self, X) -> np.ndarray:
        if not hasattr(self, "estimator_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("DeepQoERepresentation is not fitted yet; call fit first")
        return self.estimator_.transform(X)


def estimator_for_task(task: str, **params) -> _DeepQoEBase:
    if task == "classification":
        return DeepQoEClassifier(**params)
    params.pop("classes", None)
    return DeepQoERegressor(**params)


def estimator_from_config(cfg, inputs: list[dict] | None = None, **overrides) -> _DeepQoEBase:
    """The DeepQoE estimator an :class:`~deepqoe.config.ExperimentConfig` describes."""
    ds, m, t = cfg.dataset, cfg.model, cfg.training
    params = dict(inputs=inputs if inputs is not None else [i.model_dump() for i in ds.active_inputs],
                  hidden_layers=tuple(m.hidden_layers), dropout=m.dropout, optimizer=t.optimizer,
                  learning_rate=t.learning_rate, momentum=t.momentum, weight_decay=t.weight_decay,
                  batch_size=t.batch_size, max_epochs=t.max_epochs, patience=t.patience,
                  validation_fraction=t.validation_fraction, early_stopping=t.early_stopping, precision=t.precision,
                  n_threads=t.n_threads, random_state=t.seed, progress=t.progress,
                  classes=list(ds.classes) if ds.task == "classification" else None)
    params.update(overrides)
    return estimator_for_task(ds.task, **params)
