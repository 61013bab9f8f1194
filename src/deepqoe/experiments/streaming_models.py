"""The models of the streaming sections beyond the shallow learners (:mod:`deepqoe.shallow`): ours (the
DeepQoE fusion model, a seed ensemble of ``DeepQoERegressor`` with grouped inputs), the original DeepQoE
streaming MLP, and the one rule that combines models (z-scored outputs, averaged or weighted).

Every model has ``fit(X: DataFrame, y, groups=None)`` / ``predict(X)``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


class SmallMLP:
    """The original DeepQoE streaming network (a small MLP on the 5 VideoATLAS features)."""

    def __init__(self, columns, hidden=(32, 16), dropout=0.2, epochs=300, lr=1e-3, seed=0):
        self.columns, self.hidden, self.dropout, self.epochs, self.lr, self.seed = (
            list(columns), hidden, dropout, epochs, lr, seed)

    def fit(self, X, y, groups=None):
        import torch

        torch.manual_seed(self.seed)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny data: threads only add overhead
        try:
            return self._fit(torch, X, y)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, torch, X, y):
        X = np.nan_to_num(X[self.columns].to_numpy(float))
        self.mu_, self.sd_ = X.mean(0), X.std(0) + 1e-9
        self.ym_, self.ys_ = float(np.mean(y)), float(np.std(y) + 1e-9)
        xt = torch.tensor((X - self.mu_) / self.sd_, dtype=torch.float32)
        yt = torch.tensor((np.asarray(y, float) - self.ym_) / self.ys_, dtype=torch.float32)[:, None]
        layers, d = [], xt.shape[1]
        for h in self.hidden:
            layers += [torch.nn.Linear(d, h), torch.nn.ReLU(), torch.nn.Dropout(self.dropout)]
            d = h
        layers.append(torch.nn.Linear(d, 1))
        self.net_ = torch.nn.Sequential(*layers)
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr, weight_decay=1e-4)
        self.net_.train()
        for _ in range(self.epochs):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(self.net_(xt), yt)
            loss.backward()
            opt.step()
        return self

    def predict(self, X):
        import torch

        self.net_.eval()
        x = np.nan_to_num(X[self.columns].to_numpy(float))
        with torch.no_grad():
            p = self.net_(torch.tensor((x - self.mu_) / self.sd_, dtype=torch.float32)).numpy()[:, 0]
        return p * self.ys_ + self.ym_


def _pred_stats(p) -> tuple[float, float]:
    """Mean and std (never 0) of a member's training-set predictions: what its outputs are z-scored with."""
    p = np.asarray(p, float)
    return float(p.mean()), float(p.std() + 1e-9)


def _z_combine(preds: list, stats: list, y_mean: float, y_std: float, weights=None) -> np.ndarray:
    """Members' predictions z-scored with their own training statistics, averaged (or weighted), mapped back
    to the training target's mean and std. The one combination rule of Ensemble, Blend, BlendOf and
    DeepQoEFusion."""
    z = [(np.asarray(p, float) - a) / b for p, (a, b) in zip(preds, stats)]
    mix = np.mean(z, axis=0) if weights is None else sum(w * zi for w, zi in zip(weights, z))
    return y_mean + y_std * mix


class Ensemble:
    """Average (or ``weights``-weighted sum) of member predictions, each z-scored with its own training-set
    prediction statistics."""

    def __init__(self, members: list, weights: list | None = None):
        self.members, self.weights = members, weights

    def fit(self, X, y, groups=None):
        self.stats_ = []
        for m in self.members:
            m.fit(X, y, groups=groups)
            self.stats_.append(_pred_stats(m.predict(X)))
        self.ym_, self.ys_ = float(np.mean(y)), float(np.std(y))
        return self

    def predict(self, X):
        return _z_combine([m.predict(X) for m in self.members], self.stats_, self.ym_, self.ys_, self.weights)


class DeepQoEFusion:
    """Ours: a seed ensemble of ``DeepQoERegressor(inputs=...)``; members averaged on z-scored outputs
    (each with its own training-set prediction statistics), mapped back to the training MOS. ``frame``
    builds the model's table from ``X`` (None: ``X`` itself)."""

    def __init__(self, inputs: list[dict], frame: Callable | None = None, seeds: int = 3, **recipe):
        self.inputs, self.frame, self.seeds, self.recipe = inputs, frame, seeds, recipe

    def _X(self, X):
        X = self.frame(X) if self.frame is not None else X.copy()
        for i in self.inputs:
            if i["column"] not in X.columns:
                X[i["column"]] = 0.0  # grouped inputs read ``columns``; the key column is a placeholder
        return X.reset_index(drop=True)

    def fit(self, X, y, groups=None):
        from deepqoe.estimators import DeepQoERegressor

        X = self._X(X)
        y = np.asarray(y, float)
        self.members_, self.stats_ = [], []
        for s in range(self.seeds):
            m = DeepQoERegressor(inputs=self.inputs, random_state=s, **self.recipe).fit(X, y)
            self.members_.append(m)
            self.stats_.append(_pred_stats(m.predict(X)))
        self.ym_, self.ys_ = float(y.mean()), float(y.std())
        return self

    def predict(self, X):
        X = self._X(X)
        return _z_combine([m.predict(X) for m in self.members_], self.stats_, self.ym_, self.ys_)


class Blend(Ensemble):
    """Honest blend: ``w`` x the z-scored output of a DeepQoE model + (1 - ``w``) x that of a
    monotone-constrained LightGBM (each z-scored with its own training-set prediction statistics)."""

    def __init__(self, a, b, w: float = 0.5):
        super().__init__([a, b], [w, 1 - w])
        self.a, self.b, self.w = a, b, w


class BlendOf:
    """A method entry meaning ``Blend(methods[a], methods[b])``, computed from the two members already
    fitted on the same fold (identical to fitting the Blend, at half the cost)."""

    def __init__(self, a: str, b: str, w: float = 0.5):
        self.a, self.b, self.w = a, b, w


def blend_preds(pa_tr, pb_tr, pa, pb, ytr, w=0.5):
    """What :class:`Blend` predicts, from its two members' predictions already at hand."""
    return _z_combine([pa, pb], [_pred_stats(pa_tr), _pred_stats(pb_tr)], float(np.mean(ytr)),
                      float(np.std(ytr)), [w, 1 - w])
