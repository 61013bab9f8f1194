"""scikit-learn estimators around the DeepQoE network.

* :class:`DeepQoEClassifier`: softmax head, cross-entropy; ``predict``, ``predict_proba``.
* :class:`DeepQoERegressor`: linear head, MSE on a standardised target; ``predict``, ``predict_curve``.
* :class:`DeepQoERepresentation`: a transformer whose output is the learned representation (the last
  hidden layer), so any shallow learner can sit on it in a :class:`sklearn.pipeline.Pipeline`.

Inputs: with ``inputs`` (a list of :class:`deepqoe.config.InputConfig` dicts), ``X`` is a DataFrame and
each input reads its named column(s); extra columns are ignored. With ``inputs=None``, ``X`` is a numeric
array (or an all-numeric DataFrame) validated by scikit-learn, and every column is a standardised
continuous input.

Parameters: the training parameters are the fields of :class:`~deepqoe.config.ModelConfig` and
:class:`~deepqoe.config.TrainingConfig` (``seed`` is called ``random_state`` here), read from those
classes, so a new field there is a new estimator parameter with the same default.

Public API beyond scikit-learn's, used by persistence, explanations, export and the service:
``encode(X)`` (phase 1: the tensors the network reads), ``network_`` (the fitted
:class:`~deepqoe.model.DeepQoENet`), ``task`` and ``get_state()`` / ``from_state(state, weights)``.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d, validate_data

from deepqoe.config import InputConfig, ModelConfig, TrainingConfig, format_validation_error
from deepqoe.errors import DeepQoEError, DeepQoENote
from deepqoe.evaluation.protocols import validation_split_how
from deepqoe.features.tabular import MAX_ABS_VALUE, build_encoder
from deepqoe.model import BranchSpec, DeepQoENet
from deepqoe.train import FitResult, fit_network, seed_everything

# scikit-learn calls the seed ``random_state``; every other parameter has its config field's name.
_PARAMETER_NAME = {"seed": "random_state"}


def config_parameters() -> dict[str, Any]:
    """The estimators' network and training parameters with their defaults, read from the configs."""
    out = {}
    for cls in (ModelConfig, TrainingConfig):
        for name, field in cls.model_fields.items():
            default = field.get_default(call_default_factory=True)
            out[_PARAMETER_NAME.get(name, name)] = tuple(default) if isinstance(default, list) else default
    return out


def parameters_from_config(model: ModelConfig, training: TrainingConfig) -> dict[str, Any]:
    """Estimator parameters from a model and a training config (the inverse of ``training_config``)."""
    values = {**model.model_dump(), **training.model_dump()}
    return {_PARAMETER_NAME.get(k, k): tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _init_with(before: dict[str, Any], after: dict[str, Any]):
    """An ``__init__`` taking keyword parameters ``before`` + the config parameters + ``after``.

    scikit-learn reads an estimator's parameters from the signature of ``__init__``; here that signature
    is built from the configs, and ``__init__`` stores every argument unchanged (validated in ``fit``).
    """
    defaults = {**before, **config_parameters(), **after}

    def __init__(self, **params):
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected parameter(s): {', '.join(unknown)}")
        for name, default in defaults.items():
            setattr(self, name, params.get(name, default))

    kw = inspect.Parameter.KEYWORD_ONLY
    __init__.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(name, kw, default=default) for name, default in defaults.items()])
    return __init__


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mean: float
    std: float = Field(gt=0)
    # the range of the training targets (a model written before it was stored has neither): table predictions
    # of a model without a rating_scale are clipped to it (:meth:`deepqoe.predictor.Predictor.predict_rows`)
    min: float | None = Field(default=None, allow_inf_nan=False)
    max: float | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _range(self):
        if (self.min is None) != (self.max is None):
            raise ValueError("give both 'min' and 'max' (the range of the training targets) or neither")
        if self.min is not None and self.min > self.max:
            raise ValueError(f"'min' ({self.min:g}) is above 'max' ({self.max:g})")
        return self


class EstimatorState(BaseModel):
    """What :meth:`get_state` describes (besides the weights); validated by :meth:`from_state`."""

    model_config = ConfigDict(extra="allow")
    estimator: str
    task: Literal["classification", "regression"]
    params: dict[str, Any]
    inputs: list[InputConfig] = Field(min_length=1)
    encoders: list[dict[str, Any]]
    classes: list[Any] | None = None
    target: _Target | None = None
    n_features_in: int | None = None
    feature_names_in: list[str] | None = None


# Checks of sklearn.utils.estimator_checks that these estimators fail on purpose, with the reason
# (passed to parametrize_with_checks(expected_failed_checks=...) in tests/test_sklearn_conformance.py).
_EXPECTED_FAILED_CHECKS = {
    "check_methods_subset_invariance":
        "the network computes in float32: a batch of another size may round the last bit differently "
        "(differences of about 1e-7, the check allows 1e-7 absolute)",
}


def expected_failed_checks(estimator) -> dict[str, str]:
    """The scikit-learn checks ``estimator`` fails on purpose, each with its reason."""
    return dict(_EXPECTED_FAILED_CHECKS)


def _range_state(r) -> dict:
    """model.json's ``target.min`` / ``target.max``: the training targets' range (nothing when unknown)."""
    return {} if r is None else {"min": float(r[0]), "max": float(r[1])}


def _with_input_tags(tags, inputs):
    """scikit-learn tags of every DeepQoE estimator: y is required; configured inputs take a DataFrame with
    text and categorical columns."""
    tags.target_tags.required = True
    tags.input_tags.string = inputs is not None
    tags.input_tags.categorical = inputs is not None
    return tags


class _DeepQoENetworkEstimator(TransformerMixin, BaseEstimator):
    """Phase 1 (encoders), phases 2-3 (the network) and the fit loop, shared by the two estimators."""

    task: ClassVar[str] = "regression"

    __init__ = _init_with({"inputs": None},
                          {"classes": None, "init_from": None, "freeze_representation": False})

    # ---- parameters, validated in one place -------------------------------------------------------
    def model_config(self) -> ModelConfig:
        return self._config(ModelConfig)

    def training_config(self) -> TrainingConfig:
        return self._config(TrainingConfig)

    def _config(self, cls):
        values = {name: getattr(self, _PARAMETER_NAME.get(name, name)) for name in cls.model_fields}
        if "seed" in values:
            values["seed"] = int(values["seed"] or 0)
        if "hidden_layers" in values and isinstance(values["hidden_layers"], tuple):
            values["hidden_layers"] = list(values["hidden_layers"])
        try:
            return cls(**values)
        except ValidationError as e:
            err = format_validation_error(e, cls, None)
            field = _PARAMETER_NAME.get(err.field or "", err.field)
            raise DeepQoEError(f"invalid estimator parameter: {err.message}", field=field) from None

    def _input_configs(self, frame: pd.DataFrame) -> list[InputConfig]:
        if self.inputs is None:  # array mode: every column is a standardised continuous input
            raw = [{"column": str(c), "modality": "continuous", "normalisation": "standard"} for c in frame.columns]
        else:
            raw = self.inputs
        try:
            inputs = [i if isinstance(i, InputConfig) else InputConfig.model_validate(i) for i in raw]
        except ValidationError as e:
            raise format_validation_error(e, InputConfig, None) from None
        except TypeError as e:
            raise DeepQoEError(f"invalid estimator parameter: {e}", field="inputs") from None
        for i in inputs:
            if i.modality == "vector" and not i.columns:
                raise DeepQoEError("a vector input given to an estimator needs 'columns' (join the feature "
                                   "file first, e.g. with deepqoe.datasets.load_dataset)", field=i.key)
        active = [i for i in inputs if i.projection != 0]
        if not active:
            raise DeepQoEError("every input has projection 0: nothing is left for the model")
        return active

    # ---- input validation -------------------------------------------------------------------------
    def _table(self, X, y=None, *, fit: bool):
        """X as the DataFrame the encoders read (and y validated, when given)."""
        if self.inputs is None:
            kw = dict(reset=fit, dtype=[np.float64, np.float32], ensure_min_samples=2 if fit else 1)
            try:
                if fit:
                    X, y = validate_data(self, X, y, y_numeric=self.task == "regression", **kw)
                else:
                    X = validate_data(self, X, **kw)
            except ValueError as e:
                if "convert" in str(e) and "string" in str(e):
                    raise DeepQoEError(f"without 'inputs' every column of X must be a number ({e}); describe "
                                       "text and categorical columns with inputs=[...]") from None
                raise
            names = getattr(self, "feature_names_in_", None)
            names = [str(c) for c in names] if names is not None else [f"x{j}" for j in range(X.shape[1])]
            X = pd.DataFrame(X, columns=names)
        else:
            if not isinstance(X, pd.DataFrame):
                raise DeepQoEError("X must be a DataFrame holding the columns named in 'inputs' (give "
                                   "inputs=None to fit a numeric array)")
            if fit:
                if y is None:
                    raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
                y = column_or_1d(y, warn=True)
                check_consistent_length(X, y)
                if len(X) < 2:
                    raise DeepQoEError("need at least 2 rows to train (got 1 sample)")
        if fit and self.task == "classification":
            check_classification_targets(y)
        return (X, y) if fit else X

    # ---- phase 1: encoders ------------------------------------------------------------------------
    def encode(self, X) -> list[torch.Tensor]:
        """Phase 1: the tensors the network reads, one per input (X validated as in ``predict``)."""
        check_is_fitted(self, "network_")
        return self._encode_table(self._table(X, fit=False))

    def _encode_table(self, frame: pd.DataFrame) -> list[torch.Tensor]:
        return [torch.from_numpy(np.ascontiguousarray(enc.transform(frame))) for enc in self.encoders_]

    def _new_network(self, inputs: list[InputConfig], model_cfg: ModelConfig) -> DeepQoENet:
        specs = []
        for cfg, enc in zip(inputs, self.encoders_):
            d = enc.describe()
            specs.append(BranchSpec(name=cfg.key, kind=d["kind"], dim=d.get("dim", d.get("channels", 0)),
                                    cardinality=d.get("cardinality", 0), embedding_dim=d.get("embedding_dim", 0),
                                    length=d.get("length", 0), encoder=d.get("encoder", "conv"),
                                    projection=cfg.projection, role=d.get("role", "feature"),
                                    unknown_dropout=d.get("unknown_dropout", 0.0)))
        n_out = len(self.classes_) if self.task == "classification" else 1
        return DeepQoENet(specs, model_cfg.hidden_layers, model_cfg.dropout, n_out)

    # ---- targets ----------------------------------------------------------------------------------
    def _encode_target(self, y) -> torch.Tensor:
        if self.task == "classification":
            index = {c: i for i, c in enumerate(self.classes_.tolist())}
            codes = np.empty(len(y), dtype=np.int64)
            for r, v in enumerate(np.asarray(y).tolist()):
                if v not in index:
                    raise DeepQoEError(f"target value {v!r} is not one of the classes {self.classes_.tolist()}",
                                       column="target", row=r + 1)
                codes[r] = index[v]
            return torch.from_numpy(codes)
        try:
            yy = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise DeepQoEError("the target of a regression must be numbers", column="target") from None
        bad = ~np.isfinite(yy) | (np.abs(np.nan_to_num(yy)) > MAX_ABS_VALUE)
        if bad.any():
            raise DeepQoEError(f"NaN, infinite or too large (above {MAX_ABS_VALUE:g}) target value", column="target",
                               row=int(np.flatnonzero(bad)[0]) + 1)
        return torch.from_numpy(((yy - self.y_mean_) / self.y_std_).astype(np.float32)[:, None])

    # ---- fit --------------------------------------------------------------------------------------
    def fit(self, X, y, groups=None):
        frame, y = self._table(X, y, fit=True)
        inputs = self._input_configs(frame)
        model_cfg, train_cfg = self.model_config(), self.training_config()
        if self.init_from is not None and not isinstance(self.init_from, _DeepQoENetworkEstimator):
            raise DeepQoEError("init_from takes a fitted DeepQoE estimator; load a model directory first "
                               "with deepqoe.persistence.load_model", field="init_from")
        self.input_configs_ = inputs
        y = np.asarray(y)
        if self.task == "classification":
            self.classes_ = np.asarray(self.classes) if self.classes is not None else np.unique(y)
        else:
            yy = np.asarray(y, dtype=np.float64)
            self.y_mean_ = float(np.nanmean(yy))
            self.y_std_ = float(np.nanstd(yy)) or 1.0
            # the training targets' range (Predictor.predict_rows keeps table scores inside it)
            self.y_range_ = (float(np.nanmin(yy)), float(np.nanmax(yy))) if np.isfinite(yy).any() else None
        seed_everything(train_cfg.seed)
        self.encoders_ = [build_encoder(c).fit(frame) for c in inputs]
        if self.inputs is not None:  # (in array mode validate_data has set them)
            self.feature_names_in_ = np.asarray(sorted({c for e in self.encoders_ for c in e.columns}), dtype=object)
            self.n_features_in_ = len(self.feature_names_in_)
        tensors = self._encode_table(frame)
        target = self._encode_target(y)
        self.__dict__.pop("_device_network", None)  # a copy of the previous fit's network on a GPU
        fit_idx, val_idx, how = validation_split_how(len(frame), train_cfg.validation_fraction, train_cfg.seed,
                                                     groups)
        if groups is not None and how.startswith("random rows"):  # group-disjoint asked for, not possible
            reason = how.split(": ", 1)[1] if ": " in how else "the groups could not be split"
            warnings.warn(f"early stopping: the {len(val_idx)} validation row(s) (training.validation_fraction "
                          f"{train_cfg.validation_fraction:g}) are random rows, not group-disjoint: {reason}",
                          DeepQoENote, stacklevel=2)
        self.network_ = self._new_network(inputs, model_cfg)
        trainable = None
        if self.init_from is not None:
            self._warm_start(self.init_from)
            report = self.warm_start_report_
            if not self.warm_started_:  # before any training
                raise DeepQoEError(f"no weight of the pretrained model fits this network: {report['reason']}",
                                   field="init_from")
            if self.freeze_representation and not report["representation"]:
                raise DeepQoEError("freeze_representation keeps the pretrained representation, but it does not "
                                   f"transfer to this network: {report['reason']}", field="freeze_representation")
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
            task=self.task, training=train_cfg, trainable=trainable)
        for p in self.network_.parameters():
            p.requires_grad_(True)
        return self

    def _warm_start(self, source: _DeepQoENetworkEstimator) -> None:
        """Copy the weights of a fitted estimator that mean the same here (:func:`transfer_weights`): input
        branches matched by column and modality, the fully connected layers when the fused inputs match,
        the head when the classes do. ``warm_started_``: the tensors copied; ``warm_start_report_``: what
        was copied and why the rest was not."""
        updates, report = transfer_weights(source, self)
        mine = self.network_.state_dict()
        mine.update(updates)
        self.network_.load_state_dict(mine)
        self.warm_started_ = sorted(updates)
        self.warm_start_report_ = report

    # ---- outputs ----------------------------------------------------------------------------------
    def _network_on(self, device: torch.device):
        """``network_`` on ``device``: itself on the CPU, else a copy kept until its weights change (so that
        ``network_`` itself always stays on the CPU for export, explanations and saving)."""
        if device.type == "cpu":
            return self.network_
        version = (str(device), id(self.network_), tuple(t._version for t in self.network_.state_dict().values()))
        cached = getattr(self, "_device_network", None)
        if cached is None or cached[0] != version:
            import copy

            cached = (version, copy.deepcopy(self.network_).to(device).eval())
            self._device_network = cached
        return cached[1]

    @torch.no_grad()
    def _forward(self, X, what: str = "output", batch_size: int = 8192) -> np.ndarray:
        from deepqoe.devices import resolve_device

        tensors = self.encode(X)
        self.network_.eval()
        device = resolve_device(getattr(self, "device", "cpu"))
        net = self._network_on(device)
        n = len(tensors[0])
        outs = []
        for s in range(0, n, batch_size):
            part = [t[s:s + batch_size].to(device) for t in tensors]
            outs.append(net.representation(part) if what == "representation" else net(part))
        return torch.cat(outs).cpu().numpy() if outs else np.zeros((0, 1), np.float32)

    def transform(self, X) -> np.ndarray:
        """The learned representation: the last hidden layer (n, hidden_layers[-1]), as float64."""
        return self._forward(X, "representation").astype(np.float64)

    # ---- state (for persistence) ------------------------------------------------------------------
    def get_state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """A JSON-ready description of the fitted estimator, and its network's weights."""
        check_is_fitted(self, "network_")
        params = {k: v for k, v in self.get_params(deep=False).items() if k != "init_from"}
        params["hidden_layers"] = list(params["hidden_layers"])
        if params.get("classes") is not None:
            params["classes"] = np.asarray(params["classes"]).tolist()
        classification = self.task == "classification"
        names = getattr(self, "feature_names_in_", None)
        state = {
            "estimator": type(self).__name__,
            "task": self.task,
            "params": params,
            "inputs": [c.model_dump() for c in self.input_configs_],
            "encoders": [e.state() for e in self.encoders_],
            "classes": self.classes_.tolist() if classification else None,
            "target": None if classification else {"mean": self.y_mean_, "std": self.y_std_,
                                                   **_range_state(getattr(self, "y_range_", None))},
            "representation_dim": self.network_.representation_dim,
            "training": {"best_epoch": self.fit_result_.best_epoch, "epochs_run": self.fit_result_.epochs_run}
            if hasattr(self, "fit_result_") else None,
            "n_features_in": int(self.n_features_in_),
            "feature_names_in": [str(c) for c in names] if names is not None else None,
        }
        weights = {k: v.detach().cpu().contiguous().clone() for k, v in self.network_.state_dict().items()}
        return state, weights

    @classmethod
    def from_state(cls, state: dict, weights: dict[str, torch.Tensor]):
        """The fitted estimator that :meth:`get_state` described. Every problem is a DeepQoEError naming
        the field of ``state`` (or ``field="weights"`` for the weights)."""
        if not isinstance(state, dict):
            raise DeepQoEError("the model description must be a JSON object")
        try:
            s = EstimatorState.model_validate(state)
        except ValidationError as e:
            raise format_validation_error(e, EstimatorState, None) from None
        if s.estimator != cls.__name__ or s.task != cls.task:
            raise DeepQoEError(f"a {s.task} model cannot be loaded as {cls.__name__}", field="task")
        try:
            # loaded on the CPU whatever it was trained on (params.device records that); move it with
            # est.set_params(device=...) or load_predictor(model, device=...)
            est = cls(**{**s.params, "device": "cpu"})
        except TypeError as e:
            raise DeepQoEError(str(e), field="params") from None
        try:
            model_cfg = est.model_config()
        except DeepQoEError as e:
            raise DeepQoEError(e.message, field=f"params.{e.field}") from None
        if len(s.encoders) != len(s.inputs):
            raise DeepQoEError(f"{len(s.encoders)} encoder states for {len(s.inputs)} inputs", field="encoders")
        est.input_configs_ = s.inputs
        est.encoders_ = []
        for j, (cfg, enc_state) in enumerate(zip(s.inputs, s.encoders)):
            try:
                est.encoders_.append(build_encoder(cfg).load_state(enc_state))
            except DeepQoEError:
                raise
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
                raise DeepQoEError(f"encoder state does not fit its input ({type(e).__name__}: {e})",
                                   field=f"encoders.{j}") from None
        if s.feature_names_in is not None:
            est.feature_names_in_ = np.asarray(s.feature_names_in, dtype=object)
        elif est.inputs is not None:  # written before n_features_in was stored
            est.feature_names_in_ = np.asarray(sorted({c for e in est.encoders_ for c in e.columns}), dtype=object)
        est.n_features_in_ = s.n_features_in if s.n_features_in is not None else len(est.feature_names_in_)
        if cls.task == "classification":
            if not s.classes:
                raise DeepQoEError("a classifier needs its list of classes", field="classes")
            est.classes_ = np.asarray(s.classes)
        else:
            if s.target is None:
                raise DeepQoEError("a regressor needs its target scaling {mean, std}", field="target")
            est.y_mean_, est.y_std_ = s.target.mean, s.target.std
            # None for a model written before the range was stored: its scores are not clipped
            est.y_range_ = None if s.target.min is None else (s.target.min, s.target.max)
        try:
            est.network_ = est._new_network(s.inputs, model_cfg)
        except (RuntimeError, ValueError, TypeError) as e:
            raise DeepQoEError(f"the described network cannot be built ({e})", field="inputs") from None
        est._load_weights(weights)
        return est

    def _load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        expected = self.network_.state_dict()
        missing = sorted(set(expected) - set(weights))
        unexpected = sorted(set(weights) - set(expected))
        if missing or unexpected:
            raise DeepQoEError(f"weights do not match the model description (missing {missing[:3]}, "
                               f"unexpected {unexpected[:3]})", field="weights")
        for k, v in weights.items():
            want = expected[k]
            if v.shape != want.shape or v.dtype != want.dtype:
                raise DeepQoEError(f"tensor {k} is {v.dtype} {tuple(v.shape)}, the model needs "
                                   f"{want.dtype} {tuple(want.shape)}", field="weights")
            if v.is_floating_point() and not torch.isfinite(v).all():
                raise DeepQoEError(f"tensor {k} holds NaN or infinite values", field="weights")
        self.network_.load_state_dict(weights)
        self.network_.eval()

    def __sklearn_tags__(self):
        return _with_input_tags(super().__sklearn_tags__(), self.inputs)


class DeepQoERegressor(RegressorMixin, _DeepQoENetworkEstimator):
    """DeepQoE with a linear head trained with MSE (the target is standardised internally)."""

    task: ClassVar[str] = "regression"

    def predict(self, X) -> np.ndarray:
        return self._forward(X)[:, 0].astype(np.float64) * self.y_std_ + self.y_mean_

    @torch.no_grad()
    def predict_curve(self, X, column: str | None = None) -> np.ndarray:
        """Per-second QoE: the score of each session's first t seconds, for t = 1..length of the sequence
        input (NaN past a session's end). Shape (n, length)."""
        check_is_fitted(self, "network_")
        seq = [i for i, e in enumerate(self.encoders_) if e.kind == "sequence"
               and (column is None or self.input_configs_[i].column == column)]
        if not seq:
            raise DeepQoEError("this model has no sequence input, so it has no per-second curve")
        k = seq[0]
        tensors = self.encode(X)
        self.network_.eval()
        lengths = tensors[k][:, -1].sum(1).long().numpy()
        n, L = tensors[k].shape[0], tensors[k].shape[2]
        curve = np.full((n, L), np.nan)
        chunk = max(1, 8192 // L)  # sessions per pass: bounds the (sessions x steps) rows in memory
        from deepqoe.devices import resolve_device

        device = resolve_device(getattr(self, "device", "cpu"))
        net = self._network_on(device)
        for s in range(0, n, chunk):
            out = net.forward_prefixes([t[s:s + chunk].to(device) for t in tensors], k)[:, :, 0].cpu().numpy()
            curve[s:s + chunk] = out * self.y_std_ + self.y_mean_
        curve[np.arange(L)[None, :] >= lengths[:, None]] = np.nan  # past a session's end
        return curve


class DeepQoEClassifier(ClassifierMixin, _DeepQoENetworkEstimator):
    """DeepQoE with a softmax head trained with cross-entropy."""

    task: ClassVar[str] = "classification"

    def predict_proba(self, X) -> np.ndarray:
        logits = torch.from_numpy(self._forward(X))
        return torch.softmax(logits, 1).numpy().astype(np.float64)

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(1)]


class DeepQoERepresentation(TransformerMixin, BaseEstimator):
    """Learn a DeepQoE network on (X, y) and output its representation: a transformer for Pipelines.

    ``Pipeline([("deepqoe", DeepQoERepresentation(task="classification", inputs=...)), ("svm", SVC())])``
    fits the network on the training split only (inside ``fit``), so the representation of the test
    split never sees its labels.
    """

    __init__ = _init_with({"task": "classification", "inputs": None}, {"classes": None})

    def fit(self, X, y=None, groups=None):
        if self.task not in ("classification", "regression"):
            raise DeepQoEError(f"task must be 'classification' or 'regression', not {self.task!r}", field="task")
        params = {k: v for k, v in self.get_params(deep=False).items() if k != "task"}
        self.estimator_ = (DeepQoERegressor if self.task == "regression" else DeepQoEClassifier)(**params)
        self.estimator_.fit(X, y, groups=groups)
        self.n_features_in_ = self.estimator_.n_features_in_
        if hasattr(self.estimator_, "feature_names_in_"):
            self.feature_names_in_ = self.estimator_.feature_names_in_
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return self.estimator_.transform(X)

    def __sklearn_tags__(self):
        return _with_input_tags(super().__sklearn_tags__(), self.inputs)


def estimator_for_task(task: str, **params) -> _DeepQoENetworkEstimator:
    return (DeepQoEClassifier if task == "classification" else DeepQoERegressor)(**params)


def estimator_from_config(cfg, inputs: list[dict] | None = None, **overrides) -> _DeepQoENetworkEstimator:
    """The DeepQoE estimator an :class:`~deepqoe.config.ExperimentConfig` describes."""
    ds = cfg.dataset
    params = {"inputs": inputs if inputs is not None else [i.model_dump() for i in ds.active_inputs],
              **parameters_from_config(cfg.model, cfg.training),
              "classes": list(ds.classes) if ds.task == "classification" else None}
    params.update(overrides)
    return estimator_for_task(ds.task, **params)


# ---- fine-tuning: which weights of a fitted network mean the same in a new one ----------------------------
def _branch_identity(cfg: InputConfig, encoder) -> tuple:
    """What an input branch reads: the same identity in two networks means the same input (column(s),
    modality and role; the text embedding; the sequence encoder)."""
    return (cfg.column, cfg.modality, cfg.role, tuple(encoder.columns),
            cfg.embedding if cfg.modality == "text" else None,
            cfg.sequence_encoder if cfg.modality == "sequence" else None)


def _describe_input(cfg: InputConfig) -> str:
    return f"'{cfg.column}' ({cfg.modality}{', viewer' if cfg.role == 'viewer' else ''})"


def _output_rows(source, target) -> tuple[list[int] | None, str | None]:
    """The rows of the source's head (and viewer offsets) for each output of the target: the same classes
    (in any order) for a classifier, the one score for a regressor; ``(None, reason)`` otherwise."""
    if source.task != target.task:
        return None, f"the pretrained model is a {source.task} model, this one a {target.task} model"
    if target.task != "classification":
        return [0], None
    theirs, ours = np.asarray(source.classes_).tolist(), np.asarray(target.classes_).tolist()
    index = {c: k for k, c in enumerate(theirs)}
    if len(theirs) != len(ours) or len(index) != len(theirs) or any(c not in index for c in ours):
        return None, f"the classes differ (pretrained {theirs}, here {ours})"
    return [index[c] for c in ours], None


def transfer_weights(source, target) -> tuple[dict[str, torch.Tensor], dict]:
    """The weights of the fitted estimator ``source`` that carry over to ``target``'s new network, by
    meaning rather than by position: ``({tensor name in target: value}, report)``.

    * An input branch takes the weights of the source's branch that reads the same input (same column,
      modality and role; same text embedding or sequence encoder) when their shapes agree; a categorical
      embedding row by row by category value (categories the source never saw keep their initial
      rows; the report counts them).
    * The first fully connected layer (or the head when there is none) only when the fused inputs are the
      same inputs, every branch transferred, possibly in another order (its columns are then reordered);
      each later layer only when every earlier one transferred and the shapes agree.
    * The head (and a viewer's output offsets) only when the classes are the same (possibly in another
      order: its rows are reordered); a regressor's one score always matches.

    ``report``: ``inputs`` (per target input: the tensors copied, or why none), ``layers`` (fully
    connected layers copied), ``head`` (bool), ``representation`` (True when the whole representation,
    branches and fully connected layers, transferred) and ``reason`` (why something did not transfer,
    or None)."""
    theirs, mine = source.network_.state_dict(), target.network_.state_dict()
    snet, tnet = source.network_, target.network_
    rows, rows_reason = _output_rows(source, target)
    by_identity: dict[tuple, int] = {}
    for j, (c, e) in enumerate(zip(source.input_configs_, source.encoders_)):
        by_identity.setdefault(_branch_identity(c, e), j)
    updates: dict[str, torch.Tensor] = {}
    inputs, match, complete = [], {}, {}
    for i, (c, e) in enumerate(zip(target.input_configs_, target.encoders_)):
        j = by_identity.get(_branch_identity(c, e))
        entry: dict = {"input": c.key}
        if j is None:
            entry["reason"] = f"the pretrained model has no input {_describe_input(c)}"
            inputs.append(entry)
            continue
        match[i] = j
        entry["from"] = source.input_configs_[j].key
        pre_t, pre_s = f"branches.{i}.", f"branches.{j}."
        copied, missing = [], []
        for name, ours in mine.items():
            if not name.startswith(pre_t):
                continue
            value = theirs.get(pre_s + name[len(pre_t):])
            if value is None:
                missing.append(name)
                continue
            if e.kind == "index" and name == pre_t + "encode.weight":  # an embedding: row by category value
                if value.shape[1:] != ours.shape[1:]:
                    missing.append(name)
                    continue
                theirs_index = {v: r + 1 for r, v in enumerate(source.encoders_[j].vocabulary)}
                new, known = ours.clone(), 0
                new[0] = value[0]
                for r, v in enumerate(e.vocabulary, start=1):
                    if v in theirs_index:
                        new[r] = value[theirs_index[v]]
                        known += 1
                entry["categories_known"] = f"{known} of {len(e.vocabulary)}"
                if not known:
                    missing.append(name)
                    continue
                value = new
            elif c.role == "viewer" and name.startswith(pre_t + "project."):  # per-output offsets
                if rows is None:
                    missing.append(name)
                    continue
                value = value[rows]
            if value.shape != ours.shape:
                missing.append(name)
                continue
            updates[name] = value.detach().clone()
            copied.append(name)
        entry["tensors"] = copied
        if missing:
            why = ["different sizes"]
            if entry.get("categories_known", "").startswith("0 "):
                why.append("no category in common")
            if rows_reason and c.role == "viewer":
                why.append(rows_reason)
            entry["reason"] = f"{', '.join(missing)} not copied ({'; '.join(why)})"
        complete[i] = not missing and bool(copied)
        inputs.append(entry)

    # the fused inputs: the same inputs (any order), each transferred, else nothing past the branches
    t_fused = [i for i in range(len(tnet.branches)) if i != tnet.viewer_index]
    s_fused = [j for j in range(len(snet.branches)) if j != snet.viewer_index]
    reason = None
    unmatched = [target.input_configs_[i] for i in t_fused if i not in match]
    extra = sorted(set(s_fused) - {match[i] for i in t_fused if i in match})
    if unmatched:
        reason = ("no input of the pretrained model reads " + ", ".join(_describe_input(c) for c in unmatched)
                  + " (inputs are matched by column and modality; the pretrained model's: "
                  + ", ".join(_describe_input(c) for c in source.input_configs_) + ")")
    elif extra or len(t_fused) != len(s_fused):
        reason = ("the pretrained model also reads " + ", ".join(_describe_input(source.input_configs_[j])
                                                                  for j in extra)
                  + ", which this config does not, so its fully connected layers do not fit")
    else:
        bad = [target.input_configs_[i] for i in t_fused if not complete[i]
               or tnet.branches[i].out_dim != snet.branches[match[i]].out_dim]
        if bad:
            reason = ("the weights of input(s) " + ", ".join(_describe_input(c) for c in bad)
                      + " do not fit (different sizes), so the fully connected layers do not")
    cols = None
    if reason is None:
        offsets, at = {}, 0
        for j in s_fused:
            offsets[j] = at
            at += snet.branches[j].out_dim
        cols = torch.cat([torch.arange(offsets[match[i]], offsets[match[i]] + tnet.branches[i].out_dim)
                          for i in t_fused]) if t_fused else torch.arange(0)

    def linear_names(net) -> list[str]:
        return [f"fc.{k}" for k, m in net.fc.named_children() if isinstance(m, torch.nn.Linear)] + ["head"]

    t_chain, s_chain = linear_names(tnet), linear_names(snet)
    layers, head = [], False
    for pos, layer in enumerate(t_chain):
        if reason is not None:
            break
        s_layer = s_chain[pos] if pos < len(s_chain) else None
        if s_layer is None or (layer == "head") != (s_layer == "head"):
            reason = "the pretrained model has a different number of fully connected layers"
            break
        w, b = theirs[f"{s_layer}.weight"], theirs[f"{s_layer}.bias"]
        if pos == 0 and w.shape[1] == len(cols):
            w = w[:, cols]
        if layer == "head":
            if rows is None:
                reason = f"the head does not transfer: {rows_reason}"
                break
            w, b = w[rows], b[rows]
        if w.shape != mine[f"{layer}.weight"].shape or b.shape != mine[f"{layer}.bias"].shape:
            reason = (f"layer {layer} is {tuple(mine[layer + '.weight'].shape)} here but "
                      f"{tuple(theirs[s_layer + '.weight'].shape)} in the pretrained model")
            break
        updates[f"{layer}.weight"], updates[f"{layer}.bias"] = w.detach().clone(), b.detach().clone()
        if layer == "head":
            head = True
        else:
            layers.append(layer)
    representation = (cols is not None and len(layers) == len(t_chain) - 1)
    if reason is None and not head:
        reason = rows_reason
    return updates, {"inputs": inputs, "layers": layers, "head": head, "representation": representation,
                     "reason": reason}
