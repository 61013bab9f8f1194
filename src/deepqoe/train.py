"""The fit loop: mini-batches as tensors, Adam/AdamW/SGD, early stopping on a validation split that
restores the best weights, exact repeatability for a seed on CPU, an optional progress bar.
``training.device`` (:mod:`deepqoe.devices`) runs it on a GPU: the data are moved there once, the
mini-batch order is still drawn on the CPU from the seed, and the network comes back to the device it
was given on (the CPU) when training ends.

Batches are slices of whole-dataset tensors indexed by a permutation (no per-sample Python objects, no
DataLoader): on small tabular networks the Python overhead of a per-sample Dataset dominates the cost.

Training that diverges (a loss or a weight that is NaN or infinite) stops with a DeepQoEError naming
``training.learning_rate``: it never returns a network that would predict NaN.
"""

from __future__ import annotations

import copy
import math
import random
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from deepqoe.config import TrainingConfig
from deepqoe.devices import resolve_device
from deepqoe.errors import DeepQoEError, DeepQoENote


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


@dataclass
class FitResult:
    best_epoch: int = 0
    epochs_run: int = 0
    best_val_loss: float = math.inf
    history: list[dict] = field(default_factory=list)


def _better(key: tuple, best: tuple, tol: float = 1e-9) -> bool:
    """Lexicographic 'strictly better' (smaller) with a tolerance per element."""
    for a, b in zip(key, best):
        if a < b - tol:
            return True
        if a > b + tol:
            return False
    return False


def _diverged(what: str, epoch: int, t: TrainingConfig) -> DeepQoEError:
    return DeepQoEError(f"training diverged: {what} became NaN or infinite in epoch {epoch} (optimizer {t.optimizer}, "
                        f"learning rate {t.learning_rate:g}); lower the learning rate",
                        field="training.learning_rate")


def make_optimizer(params, name: str, lr: float, momentum: float, weight_decay: float):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def _loss_fn(task: str):
    return nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()


@torch.no_grad()
def evaluate_loss(net: nn.Module, inputs: list[torch.Tensor], y: torch.Tensor, task: str,
                  batch_size: int = 8192) -> tuple[float, float]:
    """Mean loss and a quality score (accuracy, or negative MSE) on a data set, in eval mode."""
    net.eval()
    loss_fn = _loss_fn(task)
    total, correct, n = 0.0, 0, len(y)
    for s in range(0, n, batch_size):
        out = net([x[s:s + batch_size] for x in inputs])
        yy = y[s:s + batch_size]
        total += float(loss_fn(out, yy)) * len(yy)
        if task == "classification":
            correct += int((out.argmax(1) == yy).sum())
        else:
            pass
    loss = total / max(n, 1)
    return loss, (correct / max(n, 1) if task == "classification" else -loss)


def fit_network(net: nn.Module, train_inputs: list[torch.Tensor], y_train: torch.Tensor,
                val_inputs: list[torch.Tensor] | None, y_val: torch.Tensor | None, *, task: str,
                training: TrainingConfig, trainable=None, stop_at: float | None = None) -> FitResult:
    """Train ``net`` in place with the recipe ``training``. With a validation set, stop after
    ``training.patience`` epochs without a better validation loss (``early_stopping="loss"``) or score
    (``"score"``: accuracy, or -MSE) and restore the best weights. ``stop_at`` (a validation score) ends
    training as soon as it is reached (used by the time-to-accuracy benchmark). ``precision="bf16"`` runs
    the training forward pass under bfloat16 autocast (the weights, the loss, the optimiser and the
    validation pass stay fp32). ``trainable``: the parameters to train (default: all)."""
    threads = torch.get_num_threads()
    # One intra-op thread unless asked otherwise: on these small networks more threads cost more than they
    # give, and on a busy machine they stall badly (measured: 2 threads 5-10x slower than 1, bench/).
    torch.set_num_threads(training.n_threads)
    device = resolve_device(training.device)  # no GPU for "cuda": one clear error before any work
    home = next((p.device for p in net.parameters()), torch.device("cpu"))
    if device != home:
        net.to(device)
        train_inputs, y_train = [x.to(device) for x in train_inputs], y_train.to(device)
        if val_inputs is not None and y_val is not None:
            val_inputs, y_val = [x.to(device) for x in val_inputs], y_val.to(device)
    try:
        return _fit(net, train_inputs, y_train, val_inputs, y_val, task, training, trainable, stop_at)
    finally:
        torch.set_num_threads(threads)
        if device != home:
            net.to(home)


def _fit(net, train_inputs, y_train, val_inputs, y_val, task: str, training: TrainingConfig, trainable,
         stop_at) -> FitResult:
    t = training
    bf16 = t.precision == "bf16"
    batch_size, max_epochs, monitor = t.batch_size, t.max_epochs, t.early_stopping
    gen = seed_everything(t.seed)
    params = [p for p in (trainable if trainable is not None else net.parameters()) if p.requires_grad]
    opt = make_optimizer(params, t.optimizer, t.learning_rate, t.momentum, t.weight_decay)
    loss_fn = _loss_fn(task)
    n = len(y_train)
    has_val = val_inputs is not None and y_val is not None and len(y_val) > 0
    result = FitResult()
    best_state = None
    bar = None
    if t.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_epochs, desc="training", unit="epoch", leave=False)
    since_best = 0
    best_key = None
    # On small data an epoch is a handful of steps and the validation loss is noisy: give early stopping
    # at least ~300 optimiser steps of patience, whatever the epoch count says.
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    patience = max(t.patience, math.ceil(300 / steps_per_epoch))
    try:
        for epoch in range(1, max_epochs + 1):
            net.train()
            perm = torch.randperm(n, generator=gen).to(y_train.device)  # drawn on the CPU: same order anywhere
            running = 0.0
            for s in range(0, n, batch_size):
                idx = perm[s:s + batch_size]
                if len(idx) < 2 and n > 1:  # a 1-row batch breaks nothing here, but adds noise; skip it
                    continue
                batch = [x.index_select(0, idx) for x in train_inputs]
                with torch.autocast(y_train.device.type, dtype=torch.bfloat16, enabled=bf16):
                    out = net(batch)
                loss = loss_fn(out.float(), y_train.index_select(0, idx))
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise _diverged("the training loss", epoch, t)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                running += value * len(idx)
            record = {"epoch": epoch, "train_loss": running / n}
            result.epochs_run = epoch
            if has_val:
                val_loss, val_score = evaluate_loss(net, val_inputs, y_val, task)
                if not math.isfinite(val_loss):
                    raise _diverged("the validation loss", epoch, t)
                record.update(val_loss=val_loss, val_score=val_score)
                # "loss": lowest validation loss; "score": best accuracy (or -MSE), ties broken by loss
                key = (val_loss,) if monitor == "loss" else (-val_score, val_loss)
                if best_key is None or _better(key, best_key):
                    best_key = key
                    result.best_val_loss, result.best_epoch, since_best = val_loss, epoch, 0
                    best_state = copy.deepcopy(net.state_dict())
                else:
                    since_best += 1
            result.history.append(record)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k != "epoch"})
            if has_val and stop_at is not None and record["val_score"] >= stop_at:
                best_state = None  # keep the weights that reached the target
                break
            if has_val and since_best >= patience:
                break
    finally:
        if bar is not None:
            bar.close()
    if best_state is not None:
        net.load_state_dict(best_state)
    if not all(bool(torch.isfinite(p).all()) for p in net.state_dict().values() if p.is_floating_point()):
        raise _diverged("a weight", result.epochs_run, t)
    if not has_val:
        result.best_epoch = result.epochs_run
    elif result.best_epoch == 1 and result.epochs_run > 1:
        warnings.warn("early stopping kept the weights of the first epoch: the validation loss never improved on "
                      "it, so the network learned little (more rows, fewer or smaller inputs, or a lower "
                      "training.learning_rate may help)", DeepQoENote, stacklevel=2)
    net.eval()
    return result
