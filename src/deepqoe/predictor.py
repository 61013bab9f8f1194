"""The one path from input to score: rows or sessions -> scores on the model's scale, curves, explanations.

    from deepqoe.predictor import load_predictor

    p = load_predictor("streaming")                        # a model directory or a shipped name
    rows, failures = p.predict_sessions(sessions)          # [{"id", "score", "scale", "curve", "curve_step_s"}]
    rows = load_predictor("upec-qoe-lab").predict_rows(df)  # [{"score", "expected_rating", "probabilities"}]

A regression model with ``intervals.json`` in its directory (:mod:`deepqoe.conformal`) adds
``"interval": {"level", "low", "high"}`` to each row (on the scale asked for, clipped to a session model's
scale): by default at the level ``deepqoe predict`` and the service give (:meth:`Predictor.interval_default`,
:data:`deepqoe.conformal.DEFAULT_LEVEL` when calibrated on enough scores), at ``interval=0.8`` when asked, none
with ``interval=None``. A session model trained on several datasets predicts, when asked
(``calibration="p1203-open"``, ``deepqoe predict --calibration``, the service's ``"calibration"``), as that
dataset's viewers used the scale, with that dataset's own intervals (``intervals.json``'s ``by_calibration``).

A session model with a rating-distribution head (``distribution.json``, :mod:`deepqoe.distribution`) adds
``"distribution": {"head", "sos", "p_gob", "p_pow", "quantiles"}`` to each session row, on the scale asked for; a
regression table model trained with ``dataset.individual`` adds it to each row, on its ``rating_scale``.

A regression table model's scores and interval ends never leave its ``rating_scale``, or, without one, the
range of its training targets (``model.json``'s ``target.min`` / ``target.max``; one
:class:`~deepqoe.errors.DeepQoENote` says how many rows were clipped to it; a model written before the range
was stored is not clipped): an input far outside the training data does not extrapolate without bound.

A table model whose vector input joins a feature file (``deepqoe extract``) stores that file's path; the rows of
new videos are read with their own feature file through :func:`with_feature_files` (a copy of ``meta`` for
:func:`deepqoe.workflow.read_prediction_input`; ``deepqoe predict --features [INPUT=]FILE``).

``deepqoe predict``, the service (``POST /predict``), the demo and the behaviour checks all call this
class; nothing else turns sessions into scores. Session scores and curves are always finite and inside
the scale: the model's output is put on the common 1-5 scale, clipped to [1, 5], then converted to the
scale asked for. A session whose input cannot be built is returned as a failure (a
:class:`~deepqoe.errors.DeepQoEError` naming it) and the batch goes on.

Two kinds of session model are served:

* a model object with ``predict_sessions(sessions)`` (scores on the common scale, bounded),
  ``predict_curves(sessions)`` (per wall-clock second) and, optionally, ``explain_sessions(sessions)``;
  one with ``predict_scores_curves`` (:class:`deepqoe.sessions.qoe_model.SessionQoEModel`) gives scores,
  curves and the representation from one pass instead, and one with ``calibrations_`` (the names) and
  ``calibration_index(name)`` (their one check) also takes ``calibration=``;
* a :class:`~deepqoe.estimators.DeepQoERegressor` whose ``model.json`` has a ``session_model`` entry: its
  input table is built by the frame builder that entry names (a key of
  :data:`deepqoe.sessions.frame.FRAME_BUILDERS`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from deepqoe.errors import DeepQoEError

COMMON_SCALE = "1-5"


def _round(v: float, digits: int = 6) -> float:
    return round(float(v), digits)


def _name_session(e: DeepQoEError, sid: str) -> DeepQoEError:
    if f"'{sid}'" in e.message:
        return e
    return DeepQoEError(f"session '{sid}': {e.message}", file=e.file, field=e.field, column=e.column, row=e.row)


def _per_session(fn: Callable[[list], list], sessions: list) -> tuple[list | None, list, list[DeepQoEError]]:
    """``fn(sessions)`` (a list, one item per session); when the batch fails with a DeepQoEError, session by
    session so that one bad session is named and the others go on: (items, good sessions, failures)."""
    try:
        return fn(sessions), list(sessions), []
    except DeepQoEError as e:
        if len(sessions) == 1:
            return None, [], [_name_session(e, sessions[0].id)]
    ok, bad, parts = [], [], []
    for s in sessions:
        try:
            parts.append(fn([s]))
            ok.append(s)
        except DeepQoEError as e:
            bad.append(_name_session(e, s.id))
    return [x for p in parts for x in p], ok, bad


class Predictor:
    """A loaded model and the one way to get its scores (see the module's documentation)."""

    def __init__(self, model: Any, model_dir: str | Path | None = None):
        from deepqoe.sessions.frame import frame_builder, is_session_model

        self.model = model
        self.meta: dict = dict(getattr(model, "meta_", None) or {})
        d = model_dir if model_dir is not None else getattr(model, "model_dir_", None)
        self.model_dir = Path(d) if d else None
        self.name: str = str(self.meta.get("name") or (self.model_dir.name if self.model_dir else "model"))
        self.task: str = str(self.meta.get("task") or "regression")
        self.is_session: bool = hasattr(model, "predict_sessions") or is_session_model(self.meta)
        info = self.meta.get("session_model")
        info = info if isinstance(info, dict) else {}
        self._model_json = str(self.model_dir / "model.json") if self.model_dir else "model.json"
        self.scale: str | None = None
        self._model_scale = None
        self._frame = None
        if self.is_session:
            from deepqoe.sessions.scales import parse_scale

            try:
                self._model_scale = parse_scale(info.get("scale", COMMON_SCALE))
            except DeepQoEError as e:
                raise DeepQoEError(f"model.json: {e.message}", file=self._model_json,
                                   field="session_model.scale") from None
            self.scale = self._model_scale.name
            if not hasattr(model, "predict_sessions"):
                self._frame = frame_builder(self.meta, file=self._model_json)
        from deepqoe.conformal import load_intervals

        # split-conformal prediction intervals (intervals.json; regression models only)
        self.intervals: dict | None = load_intervals(self.model_dir) if self.task == "regression" else None
        from deepqoe.distribution import load_heads

        # rating-distribution head (distribution.json; session models and regression table models with
        # dataset.individual): (heads by dataset, the one served)
        self.distribution = load_heads(self.model_dir) if (self.is_session or self.task == "regression") \
            and self.model_dir else None
        self._rating_head_chosen = False  # True once select_rating_head named one: --calibration then keeps it

    def select_rating_head(self, name: str | None) -> None:
        """Serve the rating-distribution head fitted on dataset ``name`` (``deepqoe predict --rating-head``;
        a model stores one per dataset with individual ratings, e.g. Waterloo SQoE-IV's 0-100 slider and
        P.1203's ACR 1-5, and serves its default). None keeps the default."""
        if name is None:
            return
        name = self.check_rating_head(name)
        self.distribution = (self.distribution[0], name)
        self._rating_head_chosen = True

    def check_rating_head(self, name: str | None) -> str | None:
        """``name`` (None: none asked for) checked against the model's rating-distribution heads: a
        DeepQoEError naming them otherwise."""
        if name is None:
            return None
        if self.distribution is None:
            raise DeepQoEError("this model has no rating-distribution head (no distribution.json in its directory)",
                               file=None if self.model_dir is None else str(self.model_dir), field="rating_head")
        heads, _ = self.distribution
        if name not in heads:
            raise DeepQoEError(f"unknown rating head '{name}': this model has {', '.join(sorted(heads))}",
                               field="rating_head")
        return name

    def rating_head_for(self, calibration: str | None = None, rating_head: str | None = None) -> str | None:
        """The rating-distribution head that serves scores of ``calibration``: ``rating_head`` when given
        (checked), else the one chosen with :meth:`select_rating_head`; else that dataset's own head where the
        model stores one (``--calibration p1203-open`` gives P.1203's viewers' spread with P.1203's use of
        the scale); else the default. None for a model without heads."""
        if rating_head is not None:
            return self.check_rating_head(rating_head)
        if self.distribution is None:
            return None
        heads, served = self.distribution
        return calibration if calibration in heads and not self._rating_head_chosen else served

    @property
    def calibrations(self) -> list[str]:
        """The training datasets whose use of the scale a session model can predict with (``calibration``
        of :meth:`predict_sessions`; ``deepqoe predict --calibration``); [] for other models."""
        return [str(c) for c in getattr(self.model, "calibrations_", None) or []] if self.is_session else []

    def check_calibration(self, name: str | None) -> str | None:
        """``name`` (None: the average calibration) checked against the model: a DeepQoEError naming the
        model's calibrations otherwise (with a "did you mean" for a name close to one of them)."""
        if name is None:
            return None
        if not self.calibrations:
            raise DeepQoEError("this model has no per-dataset calibrations (only a session model trained on "
                               "named datasets has them); drop the calibration", field="calibration",
                               file=None if self.model_dir is None else str(self.model_dir))
        self.model.calibration_index(name)  # the model's own check of the name (with its "did you mean")
        return name

    def intervals_for(self, calibration: str | None = None) -> dict | None:
        """The ``intervals.json`` object that serves scores of ``calibration`` (None: the pooled one; a
        dataset: its own, from ``by_calibration``, or None where the model stores none for it)."""
        from deepqoe.conformal import for_calibration

        return for_calibration(self.intervals, calibration)

    def interval_default(self, calibration: str | None = None) -> float | None:
        """The interval level given when none is asked for: 0.9 when the model has intervals (for
        ``calibration``) calibrated on enough scores for it (at least 9), else None (an explicit
        ``--interval`` still says why not)."""
        from deepqoe.conformal import DEFAULT_LEVEL, min_calibration

        cal = self.intervals_for(calibration)
        if cal is None or int(cal["n_calibration"]) < min_calibration(DEFAULT_LEVEL):
            return None
        return DEFAULT_LEVEL

    def no_interval_reason(self, calibration: str | None = None) -> str | None:
        """Why a model with ``intervals.json`` gives no interval by default for ``calibration`` (None: it
        gives one, or has none at all)."""
        from deepqoe.conformal import DEFAULT_LEVEL, calibration_sizes, min_calibration

        if self.intervals is None or self.interval_default(calibration) is not None:
            return None
        cal = self.intervals_for(calibration)
        if cal is None:
            own = calibration_sizes(self.intervals)
            return (f"this model has no prediction intervals of its own for '{calibration}' (its intervals.json "
                    + (f"has them for {', '.join(own)} only" if own else "is pooled over its training datasets "
                       "only") + ")")
        return (f"this model's intervals are calibrated on {int(cal['n_calibration'])} scores, fewer than the "
                f"{min_calibration(DEFAULT_LEVEL)} a {DEFAULT_LEVEL:g} interval needs")

    @property
    def default_interval(self) -> float | None:
        """:meth:`interval_default` of the average calibration."""
        return self.interval_default(None)

    def check_interval(self, level: float | None, calibration: str | None = None) -> float | None:
        """``level`` (None: no interval) checked against the model's calibration (of ``calibration``'s
        intervals): a DeepQoEError for a model without intervals or a level its calibration cannot support."""
        from deepqoe.conformal import check_level, half_width, no_intervals_error

        if level is None:
            return None
        level = check_level(level)
        cal = self.intervals_for(calibration)
        if cal is None:
            if self.intervals is not None:  # pooled intervals, and maybe other datasets' own
                raise DeepQoEError(self.no_interval_reason(calibration) + "; drop the calibration for the pooled "
                                   "interval, or ask for no interval (--interval none; the service: "
                                   "\"interval\": null)",
                                   file=None if self.model_dir is None else str(self.model_dir), field="interval")
            raise no_intervals_error(self.model_dir, self.why_no_intervals())
        half_width(cal, level)
        return level

    def why_no_intervals(self) -> str | None:
        """Why this model has no ``intervals.json``, as its model.json records how it was trained
        (:func:`deepqoe.workflow.train_sessions_config` writes ``metrics.evaluation_skipped``; a table model's task
        and training rows say the rest); None when the record does not say."""
        meta = self.meta if isinstance(self.meta, dict) else {}
        metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
        calibrate = "whose out-of-fold predictions calibrate a session model's intervals"
        if self.is_session:
            skipped = metrics.get("evaluation_skipped")
            if skipped == "--full":
                return (f"it was trained with --full, which skips the content-disjoint k-fold {calibrate}; train "
                        "it again without --full for intervals")
            if skipped == "evaluation.protocol: none":
                return (f"its config's evaluation: {{protocol: none}} skipped the content-disjoint k-fold "
                        f"{calibrate}; train it again with evaluation: {{protocol: group-kfold}} (the default) for "
                        "intervals")
            if "evaluation" in metrics and metrics["evaluation"] is None:
                return (f"it was trained without the content-disjoint k-fold {calibrate} (--full, or a config's "
                        "evaluation: {protocol: none})")
            return None
        if self.task == "classification":
            return "it is a classifier (prediction intervals are for regression scores)"
        if self.task == "regression" and isinstance(metrics.get("n_train"), int) and "intervals" not in metrics:
            n = metrics["n_train"]
            return (f"it was trained on {n} rows, fewer than the 10 a calibration part is held out of" if n < 10
                    else "it was trained with evaluation.calibration_fraction 0, so no rows were held out to "
                         "calibrate them")
        return None

    def _interval(self, scores: np.ndarray, level: float, calibration: str | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        from deepqoe.conformal import interval_bounds

        return interval_bounds(self.intervals_for(calibration), scores, level)

    @classmethod
    def load(cls, model: str | Path, device: str | None = None) -> "Predictor":
        """A model directory or the name of a shipped model; ``device`` (``cpu``, ``cuda``, ``auto``; default
        cpu) is where a DeepQoE network predicts (a session model always runs on the CPU: it is tiny)."""
        from deepqoe.persistence import load_model, resolve_model_dir

        d = resolve_model_dir(model)
        return cls(place_model(load_model(d), device), d)

    # ------------------------------------------------------------------ sessions
    def require_sessions(self) -> None:
        if not self.is_session:
            raise DeepQoEError("this model was not trained on streaming sessions (its model.json has no "
                               "'session_model' entry); give it a table (CSV / Parquet) instead",
                               file=str(self.model_dir) if self.model_dir else None)

    def _to_common(self, values: np.ndarray) -> np.ndarray:
        from deepqoe.sessions.scales import to_common

        return np.clip(to_common(np.asarray(values, float), self._model_scale), 1.0, 5.0)

    def _scores_curves_explain(self, sessions: list, curve: bool, explain: bool, representation: bool = False,
                               calibration: str | None = None
                               ) -> tuple[np.ndarray, list | None, list | None, list | None, np.ndarray | None]:
        """(scores, curves, curve steps in s, explanations, representations when asked and the model gives
        them in the same pass) on the model's own scale, for good sessions (``calibration``: checked by
        :meth:`check_calibration`, so only a model with calibrations gets one)."""
        m = self.model
        if hasattr(m, "predict_sessions"):
            reps = None
            cal = {} if calibration is None else {"calibration": calibration}  # only a model with calibrations_
            if hasattr(m, "predict_scores_curves"):  # scores, curves and representation in one pass
                scores, curves, reps = m.predict_scores_curves(sessions, curves=curve, representation=representation,
                                                               **cal)
            else:
                scores = m.predict_sessions(sessions)
                curves = m.predict_curves(sessions) if curve and hasattr(m, "predict_curves") else None
            scores = np.asarray(scores, float).reshape(-1)
            steps = None
            if curves is not None:
                curves = [np.asarray(c, float).reshape(-1) for c in curves]
                steps = ([float(t[-1]) / len(t) if len(t) else None for t in m.curve_times(sessions)]
                         if hasattr(m, "curve_times") else [1.0] * len(sessions))
            ex = self._session_explanations(sessions, scores, calibration) if explain else None
            return scores, curves, steps, ex, reps
        X = self._frame(sessions).reset_index(drop=True)
        scores = np.asarray(m.predict(X), float).reshape(-1)
        curves = steps = None
        if curve and any(getattr(e, "kind", None) == "sequence" for e in getattr(m, "encoders_", [])):
            c = m.predict_curve(X)
            curves = [row[np.isfinite(row)] for row in c]
            steps = [max(_wall_seconds(s), len(cv)) / len(cv) if len(cv) else None
                     for s, cv in zip(sessions, curves)]
        ex = None
        if explain:
            from deepqoe.explain import explain_records

            ex = explain_records(m, X)
        return scores, curves, steps, ex, None

    def _session_explanations(self, sessions: list, scores: np.ndarray, calibration: str | None = None
                              ) -> list | None:
        """A session model's ``explain_sessions`` ({part: contribution}) in the shape of explain_records."""
        if not hasattr(self.model, "explain_sessions"):
            return None
        ex = self.model.explain_sessions(sessions, **({} if calibration is None else {"calibration": calibration}))
        return [e if "contributions" in e else {"method": "parts", "output": "score", "value": float(v),
                                                "contributions": dict(e)}
                for e, v in zip(ex, scores)]

    def _explanation_on(self, ex: dict | None, target) -> dict | None:
        """A session's explanation on the scale asked for, as its score: ``value`` and ``baseline`` (scores)
        through the common scale, each contribution (a difference) times the scales' slopes; adds ``scale``."""
        if ex is None:
            return None
        from deepqoe.sessions.scales import from_common, points_per_common_point

        own = self._model_scale
        k = points_per_common_point(target) / points_per_common_point(own)
        out = dict(ex)
        for key in ("value", "baseline"):
            if isinstance(out.get(key), (int, float)):
                out[key] = float(from_common(self._to_common(out[key]), target))
        if isinstance(out.get("contributions"), dict):
            out["contributions"] = {g: round(float(v) * k, 6) for g, v in out["contributions"].items()}
        out["scale"] = target.name
        return out

    def predict_sessions(self, sessions: Sequence, *, scale: str | None = None, curve: bool = True,
                         explain: bool = False, interval: float | bool | None = True,
                         calibration: str | None = None, rating_head: str | None = None
                         ) -> tuple[list[dict], list[DeepQoEError]]:
        """Score sessions: ``(rows, failures)``; rows in input order (failed sessions left out) as
        ``{"id", "score", "scale", "curve", "curve_step_s"}`` (+ ``"explanation"`` when asked, + ``"interval":
        {"level", "low", "high"}`` on the asked scale: by default (``interval=True``) at the level ``deepqoe
        predict`` and the service give (:meth:`interval_default` of ``calibration``), at ``interval`` when it is
        a level, none with ``interval=None`` (or False)).

        ``calibration``: the name of a training dataset (:attr:`calibrations`): scores and curves as that
        dataset's viewers used the scale (its learned score calibration, instead of the average of them),
        and intervals from that dataset's own out-of-fold residuals (``intervals.json``'s
        ``by_calibration``: the coverage promise of that dataset, not the pool's), and that dataset's own
        rating-distribution head where the model has one and none was chosen (:meth:`rating_head_for`); rows
        gain ``"calibration"``. ``rating_head``: the rating-distribution head to serve (a dataset the model
        has one of), instead of that choice."""
        from deepqoe.sessions.scales import from_common, parse_scale

        self.require_sessions()
        target = parse_scale(scale or COMMON_SCALE)  # a bad scale fails before any work
        calibration = self.check_calibration(calibration)
        interval = self._interval_level(interval, calibration)
        head = self.rating_head_for(calibration, rating_head)
        sessions, unread = _as_sessions(sessions)
        if not sessions:
            return [], unread

        want_rep = self._distribution_wants_features(head)

        def run(batch: list):
            scores, curves, steps, ex, reps = self._scores_curves_explain(batch, curve, explain, want_rep,
                                                                          calibration)
            if len(scores) != len(batch):
                raise DeepQoEError(f"the model gave {len(scores)} scores for {len(batch)} sessions")
            if not np.isfinite(scores).all():
                k = int(np.flatnonzero(~np.isfinite(scores))[0])
                raise DeepQoEError(f"session '{batch[k].id}': the model gives no finite score (are its weights "
                                   "damaged?)", file=self._model_json)
            return [(s, scores[k], None if curves is None else curves[k], None if steps is None else steps[k],
                     None if ex is None else ex[k], None if reps is None else reps[k]) for k, s in enumerate(batch)]

        results, _, failures = _per_session(run, sessions)
        failures = unread + list(failures)
        rows = []
        for s, score, cv, step, ex, _rep in results or []:
            common = self._to_common(score)
            row: dict[str, Any] = {"id": s.id, "score": _round(from_common(common, target)),
                                   "scale": target.name, "curve": None, "curve_step_s": None}
            if calibration is not None:
                row["calibration"] = calibration
            if interval is not None:  # on the common scale (the calibration's), clipped to 1-5, converted
                low, high = self._interval(common, interval, calibration)
                row["interval"] = {"level": interval, "low": _round(from_common(low, target)),
                                   "high": _round(from_common(high, target))}
            if cv is not None:
                cv = cv[np.isfinite(cv)]
                row["curve"] = [round(float(v), 4) for v in from_common(self._to_common(cv), target)]
                row["curve_step_s"] = None if step is None or not len(cv) else round(float(step), 4)
            if explain:
                row["explanation"] = self._explanation_on(ex, target)
            rows.append(row)
        if results:
            reps = [r[5] for r in results]
            self._add_distribution(rows, self._to_common(np.array([r[1] for r in results])), target,
                                   [r[0] for r in results],
                                   np.stack(reps) if want_rep and all(r is not None for r in reps) else None,
                                   head)
        return rows, failures

    def _rating_bounds(self) -> tuple[float, float] | None:
        """(lo, hi) of a regression table model's ``dataset.rating_scale`` (its target is a mean rating on
        it), else None."""
        scale = (self.meta.get("dataset") or {}).get("rating_scale")
        if not scale or self.task != "regression":
            return None
        from deepqoe.sessions.scales import parse_scale

        sc = parse_scale(scale)
        return (float(sc.lo), float(sc.hi)) if sc.kind == "range" else None

    def _target_range(self) -> tuple[float, float] | None:
        """(lo, hi) of a regression table model's training targets (``model.json``'s ``target.min`` /
        ``target.max``), or None: a classifier, a session model, or a model written before the range was
        stored (its scores are not clipped)."""
        if self.task != "regression" or self.is_session:
            return None
        r = getattr(self.model, "y_range_", None)
        return None if r is None else (float(r[0]), float(r[1]))

    def score_clip(self) -> tuple[tuple[float, float], str, str] | None:
        """Where a regression table model's scores (and interval ends) are clipped: ``((lo, hi), what the
        bounds are, why)``: its ``dataset.rating_scale``, else the range of its training targets; None for a
        classifier, a session model, or a model with neither (:meth:`predict_rows`, and the ONNX export's
        ``score`` output)."""
        if self.is_session:
            return None
        bounds = self._rating_bounds()
        if bounds is not None:  # a mean rating on its rating_scale: never outside it, however far X goes
            return bounds, "the dataset's rating_scale", "a mean rating cannot leave its scale"
        trained = self._target_range()
        if trained is not None:  # no scale: never outside the training targets (no wild extrapolation)
            return trained, "the range of the training targets", ("inputs far from the training data; the model "
                                                                  "does not extrapolate past the scores it was "
                                                                  "trained on")
        return None

    def _distribution_wants_features(self, name: str | None) -> bool:
        """True when the rating-distribution head ``name`` reads the model's representation."""
        return name is not None and self.distribution[0][name].feature_mean_ is not None

    def _add_distribution(self, rows: list[dict], common: np.ndarray, target=None, sessions: list | None = None,
                          feats: np.ndarray | None = None, name: str | None = None) -> None:
        """``row["distribution"] = {"head", "sos", "p_gob", "p_pow", "quantiles"}`` from the head ``name``
        (:meth:`rating_head_for`; None: the served one; nothing for a model without heads), for scores
        ``common`` on the common 1-5 scale, on ``target`` (None: the head's own rating scale); a head with
        features takes them from ``feats`` (the session model's representation, when already computed) or
        ``sessions``."""
        from deepqoe.distribution import distribution_fields

        name = name or self.rating_head_for()
        if name is None:
            return
        head = self.distribution[0][name]
        if head.feature_mean_ is None:
            feats = None
        else:
            if feats is None:
                feats = (self.model.transform_sessions(sessions)
                         if sessions is not None and hasattr(self.model, "transform_sessions") else None)
            if feats is None or np.shape(feats)[1] != len(head.feature_mean_):
                raise DeepQoEError("the rating-distribution head does not match this model's representation",
                                   file=str(self.model_dir / "distribution.json"))
        for row, d in zip(rows, distribution_fields(head, common, feats, head.scale_.name if target is None
                                                    else target)):
            row["distribution"] = {"head": name, **d}

    # ------------------------------------------------------------------ rows
    def _note_unseen_categories(self, X: pd.DataFrame) -> None:
        """The notes on inputs the model reads as it read nothing like them in training, one per input (said
        by the CLI, Python and the service alike): a categorical input with values the training data did not
        have (they take the unknown category's learned embedding), a text input whose text has no word the
        embedding knows (the zero vector: no information), a continuous input far outside its training range
        (:meth:`~deepqoe.features.tabular.ContinuousEncoder.far_outside`: the prediction extrapolates; one note
        per column of it), a vector input with values far outside theirs (one note for the input, however many
        of its columns: :meth:`_far_vector_note`); how many rows, and a few of the values."""
        import warnings

        from deepqoe.errors import DeepQoENote
        from deepqoe.features.tabular import show_value

        n = len(X)
        for enc in getattr(self.model, "encoders_", None) or []:
            if hasattr(enc, "unseen_values"):
                k, values = enc.unseen_values(X)
                if k:
                    warnings.warn(f"{k} of {n} row(s) have a value of '{enc.cfg.column}' not seen in training (e.g. "
                                  f"{', '.join(values)}): it is read as the unknown category", DeepQoENote,
                                  stacklevel=3)
            elif hasattr(enc, "unknown_texts"):
                k, texts = enc.unknown_texts(X)
                if k:
                    warnings.warn(f"{k} of {n} row(s) have a text of '{enc.cfg.column}' with no word the "
                                  f"'{enc.cfg.embedding}' embedding knows (e.g. {', '.join(map(show_value, texts))}): "
                                  "it is read as the zero vector, which carries no information", DeepQoENote,
                                  stacklevel=3)
            elif hasattr(enc, "far_outside"):
                far = enc.far_outside(X)
                if far and getattr(enc.cfg, "modality", None) == "vector":  # one note for all its columns
                    warnings.warn(self._far_vector_note(enc, X, far), DeepQoENote, stacklevel=3)
                    continue
                for column, k, values, lo, hi in far:  # a continuous input: one note per column
                    warnings.warn(f"{k} of {n} row(s) have a value of '{column}' far outside its training range "
                                  f"[{lo:g}, {hi:g}] (beyond it by more than its width, or of the other sign; e.g. "
                                  f"{', '.join(f'{v:g}' for v in values)}): the model was not trained on such "
                                  "values, its prediction for them is an extrapolation", DeepQoENote, stacklevel=3)

    def _far_vector_note(self, enc, X: pd.DataFrame, far: list) -> str:
        """The one note on a vector input (pre-computed features: hundreds of columns) whose values are far
        outside their training range (``far``: :meth:`~deepqoe.features.tabular.ContinuousEncoder.far_outside`'s
        columns): how many of its rows and columns, the worst three columns by name (the most rows, then the
        farthest), and how many training rows the ranges come from (a few rows give narrow ranges)."""
        n = len(X)
        key = str(getattr(enc.cfg, "name", None) or enc.cfg.column)
        prefix = f"{key}__"  # a feature file's columns are joined as <input>__<column>

        def short(c: str) -> str:
            return c[len(prefix):] if c.startswith(prefix) else c

        def widths_beyond(item) -> float:
            _c, _k, values, lo, hi = item
            width = hi - lo if hi - lo > 1e-12 else max(1.0, abs(lo))
            return max((max(lo - v, v - hi) for v in values), default=0.0) / width

        worst = sorted(far, key=lambda t: (-t[1], -widths_beyond(t)))[:3]
        shown = "; ".join(f"'{short(c)}' in {k} row(s), e.g. {values[0]:g} (range [{lo:g}, {hi:g}])"
                          for c, k, values, lo, hi in worst)
        rows = f"{enc.far_rows(X)} of {n}"
        n_cols = len(getattr(enc, "columns", None) or []) or len(far)
        metrics = self.meta.get("metrics") if isinstance(self.meta.get("metrics"), dict) else {}
        n_train = metrics.get("n_train")
        seen = f"; the ranges are those of its {n_train} training rows" if isinstance(n_train, int) else ""
        return (f"{rows} row(s) have values of the vector input '{key}' far outside its training range in "
                f"{len(far)} of its {n_cols} column(s) (beyond it by more than its width, or of the other sign; "
                f"most: {shown}): the model was not trained on such values, its prediction for them is an "
                f"extrapolation{seen}")

    def _interval_level(self, interval: float | bool | None, calibration: str | None = None) -> float | None:
        """The level of a predict call's ``interval``: True (the default) -> :meth:`interval_default` (0.9 when
        the model has intervals calibrated on enough scores, as ``deepqoe predict`` and the service give by
        default; else none); None or False -> none; a level -> that level, checked (:meth:`check_interval`)."""
        if interval is True:
            return self.interval_default(calibration)
        if interval is None or interval is False:
            return None
        return self.check_interval(interval, calibration)

    def predict_rows(self, df: pd.DataFrame, *, explain: bool = False, ids: Sequence | None = None,
                     interval: float | bool | None = True) -> list[dict]:
        """Predict a table model's rows: ``[{"score", ...}]`` in row order (``"id"`` when ``ids`` gives one).

        Classifiers add ``expected_rating`` (when the classes are numbers) and ``probabilities``; a regression
        model with intervals adds ``"interval": {"level", "low", "high"}``: by default (``interval=True``) at the
        level ``deepqoe predict`` and the service give (:meth:`interval_default`: 0.9 when its intervals are
        calibrated on enough scores), at ``interval`` when it is a level, none with ``interval=None`` (or
        False). Notes (:class:`~deepqoe.errors.DeepQoENote`) say which inputs the model reads as nothing it was
        trained on (:meth:`_note_unseen_categories`) and which scores were clipped."""
        if self.is_session:
            raise DeepQoEError("this is a streaming-session model: give it sessions, not table rows")
        interval = self._interval_level(interval)
        est = self.model
        X = df.reset_index(drop=True)
        rows: list[dict] = [{} if ids is None or ids[i] is None else {"id": ids[i]} for i in range(len(X))]
        was_clipped = np.zeros(len(X), bool)
        if self.task == "classification":
            proba = np.asarray(est.predict_proba(X), float)
            _check_finite(proba, "probabilities")
            classes = np.asarray(est.classes_).tolist()
            best = proba.argmax(1)
            try:
                expected = proba @ np.asarray([float(c) for c in classes])
            except (TypeError, ValueError):
                expected = None
            for i, r in enumerate(rows):
                r["score"] = classes[int(best[i])]
                if expected is not None:
                    r["expected_rating"] = _round(expected[i])
                r["probabilities"] = {str(c): _round(proba[i, j]) for j, c in enumerate(classes)}
        else:
            y = np.asarray(est.predict(X), float).reshape(-1)
            _check_finite(y, "score")
            unclipped = y.copy()
            clip = self.score_clip()
            if clip is not None:
                y = _clip_scores(y, *clip)
            was_clipped = y != unclipped
            for i, r in enumerate(rows):
                r["score"] = _round(y[i])
            if interval is not None:
                low, high = self._interval(y, interval)
                if clip is not None:  # (a rating_scale's intervals.json holds its bounds already: the same clip)
                    low, high = np.clip(low, *clip[0]), np.clip(high, *clip[0])
                for i, r in enumerate(rows):
                    r["interval"] = {"level": interval, "low": _round(low[i]), "high": _round(high[i])}
            if self.distribution is not None and len(y):  # y is on the head's own (the ratings') scale
                heads, served = self.distribution
                self._add_distribution(rows, heads[served].scale_.to_common(y), name=served)
        from deepqoe.viewers import viewer_labels

        for r, v in zip(rows, viewer_labels(est, X) or []):  # a viewer-aware model: whose prediction it is
            r["viewer"] = v  # "unknown": no or an unseen viewer id, the population prediction
        if explain:
            from deepqoe.explain import explain_records

            for i, (r, e) in enumerate(zip(rows, explain_records(est, X))):
                if was_clipped[i]:
                    # the contributions explain the network's own prediction, which the score was clipped from
                    e = dict(e, clipped_to=r["score"])
                r["explanation"] = e
        self._note_unseen_categories(X)
        return rows


# ---- the flat (CSV / Parquet) form of a row's nested fields: one definition for every table output
def interval_columns(out: pd.DataFrame, rows: list[dict]) -> None:
    """Flatten rows' ``interval`` into the columns interval_low, interval_high, interval_level."""
    if rows and "interval" in rows[0]:
        for k in ("low", "high", "level"):
            out[f"interval_{k}"] = [r["interval"][k] for r in rows]


def distribution_columns(out: pd.DataFrame, rows: list[dict]) -> None:
    """Flatten rows' ``distribution`` (a rating-distribution head, :mod:`deepqoe.distribution`) into the
    columns sos, p_gob, p_pow, the rating quantiles q10, q50, q90 and rating_head (the head's dataset)."""
    if rows and "distribution" in rows[0]:
        for k in ("sos", "p_gob", "p_pow"):
            out[k] = [r["distribution"][k] for r in rows]
        from deepqoe.distribution import QUANTILES, qname

        for q in QUANTILES:
            out[qname(q)] = [r["distribution"]["quantiles"][f"{q:g}"] for r in rows]
        out["rating_head"] = [r["distribution"]["head"] for r in rows]


def explanation_columns(out: pd.DataFrame, rows: list[dict]) -> None:
    """Flatten rows' ``explanation`` (``explain=True``) into the columns explanation_method, explanation_output,
    explanation_baseline (where the method has one) and ``contrib_<input or part>``, one per contribution."""
    if not rows or "explanation" not in rows[0]:
        return
    ex = [r["explanation"] for r in rows]
    r6 = lambda v: None if v is None else round(float(v), 6)  # noqa: E731  as the scores are written
    out["explanation_method"] = [e["method"] for e in ex]
    out["explanation_output"] = [e["output"] for e in ex]
    if "baseline" in ex[0]:
        out["explanation_baseline"] = [r6(e.get("baseline")) for e in ex]
    for name in ex[0]["contributions"]:
        out[f"contrib_{name}"] = [r6(e["contributions"].get(name)) for e in ex]


def prediction_table(predictor, rows: list[dict], ids: list | None, first_row: int = 1) -> pd.DataFrame:
    """A table model's predictions (``Predictor.predict_rows``) as the output table of ``deepqoe predict``
    (and of each partition of a batch, :mod:`deepqoe.batch_scoring`): row (numbered from ``first_row``),
    id, score, interval columns, sos / p_gob / p_pow (a rating-distribution head), viewer, expected_rating
    and prob_<class> for classifiers, and the explanation's columns when asked for."""
    out = pd.DataFrame({"row": np.arange(first_row, first_row + len(rows))})
    if ids is not None:
        out["id"] = ids
    out["score"] = [r["score"] for r in rows]
    interval_columns(out, rows)
    distribution_columns(out, rows)  # sos, p_gob, p_pow, rating_head
    if rows and "viewer" in rows[0]:  # a viewer-aware model
        out["viewer"] = [r["viewer"] for r in rows]
    if predictor.task == "classification" and rows:
        if "expected_rating" in rows[0]:
            out["expected_rating"] = [r["expected_rating"] for r in rows]
        for c in rows[0]["probabilities"]:
            out[f"prob_{c}"] = [r["probabilities"][c] for r in rows]
    explanation_columns(out, rows)  # --explain
    return out


# ---- the feature files of a table model's vector inputs (deepqoe predict --features) ----------------------
def feature_file_inputs(meta: dict) -> dict[str, dict]:
    """A table model's vector inputs that join a feature file (``file:``, e.g. made by ``deepqoe extract``), by
    their key (the input's ``name``, else its ``column``, as model.json's ``dataset.inputs`` gives them), in
    the config's order; {} for a model with none (inputs switched off with ``projection: 0`` read no file)."""
    ds = meta.get("dataset") if isinstance(meta, dict) and isinstance(meta.get("dataset"), dict) else {}
    out: dict[str, dict] = {}
    for inp in ds.get("inputs") or []:
        if isinstance(inp, dict) and inp.get("modality") == "vector" and inp.get("file") \
                and inp.get("projection") != 0:
            out[str(inp.get("name") or inp.get("column"))] = inp
    return out


def resolve_feature_files(meta: dict, features: dict) -> dict[str, str]:
    """``features`` ({input: feature file}; the input None: the model's one vector input with a feature file)
    checked against a table model's ``meta``: ``{input key: absolute path}``. An input may be named by its key
    (``name``, else ``column``) or by its column where only one such input reads that column.

    A DeepQoEError with ``field="features"`` (``deepqoe predict``'s usage error) for a model with no vector
    input read from a feature file, an input it does not have (naming those it has), an input given twice
    and a file given without its input where the model has several; one naming the file (a data error) for a
    file that is not there, a ``.mat`` for an input trained on a table or the other way round (a ``.mat`` is
    read in the table's row order, a table joined by id), or a path that the model's reader would not read
    as written (a ``$NAME`` in it is read as an environment variable)."""
    from deepqoe.config import resolve_path

    known = feature_file_inputs(meta)
    if not known:
        raise DeepQoEError("this model has no vector input read from a feature file (its model.json's "
                           "dataset.inputs has no vector input with 'file'), so there is no feature file to "
                           "replace", field="features")
    names = ", ".join(f"'{k}'" for k in known)
    out: dict[str, str] = {}
    for key, file in features.items():
        if key is None:
            if len(known) > 1:
                raise DeepQoEError(f"this model has {len(known)} vector inputs read from feature files ({names}): "
                                   "say which file is whose, INPUT=FILE", field="features")
            name = next(iter(known))
        elif str(key) in known:
            name = str(key)
        else:
            by_column = [k for k, inp in known.items() if str(inp.get("column")) == str(key)]
            if len(by_column) != 1:
                why = f"the column '{key}' is read by {len(by_column)} of them, name one" if by_column else \
                    "no vector input read from a feature file is called so"
                raise DeepQoEError(f"unknown input '{key}' ({why}): this model's vector inputs read from feature "
                                   f"files are {names}", field="features")
            name = by_column[0]
        if name in out:
            raise DeepQoEError(f"input '{name}' is given two feature files; give one", field="features")
        path = Path(file).expanduser().absolute()
        if not path.exists():
            raise DeepQoEError("feature file not found", file=str(path))
        if path.is_dir():
            raise DeepQoEError("is a folder; give the feature file (CSV / Parquet with an id column, as deepqoe "
                               "extract writes it)", file=str(path))
        trained_mat = str(known[name]["file"]).lower().endswith(".mat")
        if trained_mat != (path.suffix.lower() == ".mat"):
            raise DeepQoEError(f"input '{name}' was trained on " + (
                "a .mat feature file (read in the table's row order): give a .mat" if trained_mat else
                "a feature table joined by id (CSV / Parquet): give one, not a .mat"), file=str(path))
        try:
            same = resolve_path(str(path), None) == path
        except DeepQoEError:
            same = False
        if not same:
            raise DeepQoEError("the path holds '$', which the model's reader takes for an environment variable; "
                               "give the file by a path without '$' (rename it, or link to it)", file=str(path))
        out[name] = str(path)
    return out


def with_feature_files(meta: dict, features: dict) -> dict:
    """A copy of a table model's ``meta`` (``Predictor.meta``) whose vector inputs read the feature files
    ``features`` gives ({input: file}, checked by :func:`resolve_feature_files`) instead of their own
    ``file:``, for :func:`deepqoe.workflow.read_prediction_input` and
    :func:`~deepqoe.workflow.prediction_frame`: the features of new videos, extracted to a file of their own,
    without overwriting the training features (``deepqoe predict --features``). The path is made absolute:
    the model's reader resolves a relative ``file`` against ``dataset.base_dir``, the training config's folder,
    not the folder the prediction runs in. ``meta`` itself is not changed.

        p = load_predictor("model")
        X, ids = read_prediction_input(with_feature_files(p.meta, {None: "new_features.parquet"}), "new.csv")
        rows = p.predict_rows(X, ids=ids)
    """
    files = resolve_feature_files(meta, features)
    out = dict(meta)
    ds = dict(meta["dataset"])
    inputs = []
    known = feature_file_inputs(meta)
    for inp in ds.get("inputs") or []:
        key = str(inp.get("name") or inp.get("column")) if isinstance(inp, dict) else None
        if key in files and known.get(key) is inp:
            inp = dict(inp, file=files[key])
        inputs.append(inp)
    ds["inputs"] = inputs
    out["dataset"] = ds
    return out


def _as_sessions(items) -> tuple[list, list[DeepQoEError]]:
    """Sessions, and session dicts (the session JSON format) read as sessions: (sessions, failures), a bad dict
    or another type a failure of its own item. Read for prediction: a dict's unusable ``mos`` is left out, with
    one note for them all (:class:`~deepqoe.sessions.session.IgnoredMos`)."""
    from deepqoe.sessions import Session
    from deepqoe.sessions.session import IgnoredMos

    out, failures, ignored = [], [], IgnoredMos()
    for k, s in enumerate(items):
        if isinstance(s, Session):
            out.append(s)
        elif isinstance(s, dict):
            try:
                out.append(Session.from_dict(s, index=k, ignore_mos=ignored))
            except DeepQoEError as e:
                failures.append(e)
        else:
            failures.append(DeepQoEError(f"must be a Session or a session dict (the session JSON format), not "
                                         f"{type(s).__name__}", field=f"sessions[{k}]"))
    ignored.note()
    return out, failures


def _clip_scores(y: np.ndarray, bounds: tuple[float, float], what: str, why: str) -> np.ndarray:
    """``y`` clipped to ``bounds`` (``what`` they are); one DeepQoENote when any score was outside them."""
    lo, hi = bounds
    outside = int(((y < lo) | (y > hi)).sum())
    if outside:
        import warnings

        from deepqoe.errors import DeepQoENote

        warnings.warn(f"{outside} of {len(y)} row(s) were predicted outside {what} and were clipped to "
                      f"[{lo:g}, {hi:g}] ({why})", DeepQoENote, stacklevel=3)
    return np.clip(y, lo, hi)


def _check_finite(a: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(a).reshape(len(a), -1).all(1)
    if bad.any():
        raise DeepQoEError(f"the model gives no finite {what} for this row (an input value far outside the "
                           "training data, or damaged weights)", row=int(np.flatnonzero(bad)[0]) + 1)


def _wall_seconds(s) -> int:
    """Steps of the per-second series (media seconds + whole stall seconds), as per_second_series counts."""
    T = int(np.ceil(float(s.media_duration) - 1e-9))
    if len(s.stall_duration):
        T += int(np.maximum(np.rint(s.stall_duration).astype(np.int64), 1).sum())
    return T


def place_model(model: Any, device: str | None) -> Any:
    """``model`` set to predict on ``device`` (None: as loaded, the CPU). A GPU that is asked for but absent
    is a DeepQoEError now, not at the first prediction. Models without a ``device`` parameter (the session
    model) stay on the CPU."""
    if device is None:
        return model
    from deepqoe.devices import check_device_name, resolve_device

    name = check_device_name(device)
    resolve_device(name)
    if hasattr(model, "set_params") and hasattr(model, "device"):  # a DeepQoE estimator
        model.set_params(device=name)
    return model


def load_predictor(model: str | Path, device: str | None = None) -> Predictor:
    """:meth:`Predictor.load`: a model directory or the name of a shipped model, predicting on ``device``."""
    return Predictor.load(model, device=device)
