"""Phases 2 and 3 of DeepQoE in one file: per-input encoders f_i and projections g_i, fusion, fully
connected layers to the representation, and the prediction head.

    input i --f_i--> encoded --g_i--> projected_i ─┐
                                                   ├─ concat ─ [Linear, ReLU, Dropout] x N ─> representation ─ head
    input j --f_j--> encoded --g_j--> projected_j ─┘

f_i by kind of input (what phase 1 hands over, see deepqoe.features.tabular):
  * "dense" (text vectors, normalised numbers, pre-computed video features): identity,
  * "index" (categorical codes): a learned embedding (code 0 = unknown),
  * "sequence" (per-second series): a small temporal encoder (1-D convolutions or a GRU) pooled over
    the valid steps; it also yields a per-step score, the per-second QoE curve.
g_i: Linear + ReLU to ``projection`` units (``None`` = identity). The head: Linear to the number of
classes (softmax + cross-entropy) or to one score (MSE).

The defaults reproduce the paper's small-dataset network: genre GloVe 50 -> 5, resolution embedding 8,
bitrate and age dense, gender embedding 1, FC 512 and 256, dropout 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class BranchSpec:
    """One input of the network, as described by its fitted phase-1 encoder."""

    name: str
    kind: str  # "dense" | "index" | "sequence"
    dim: int = 0  # dense: width; sequence: channels
    cardinality: int = 0  # index: number of codes
    embedding_dim: int = 0  # index
    length: int = 0  # sequence
    encoder: str = "conv"  # sequence: "conv" | "gru"
    projection: int | None = 8  # width of g_i; None = identity
    role: str = "feature"  # index: "viewer" = an offset of the output instead of a part of the fusion
    unknown_dropout: float = 0.0  # index: while training, a code becomes 0 (unknown) with this probability


class Dropout(nn.Module):
    """Inverted dropout whose keep-mask comes from random *bytes* (``p`` rounded to a multiple of 1/256).

    One 64-bit draw gives eight mask entries, which makes it an order of magnitude faster on CPU than
    ``nn.Dropout`` (whose Bernoulli sampling was ~40 % of a training step of the paper's network).
    Identity in eval mode, so saved, loaded and exported networks are unaffected."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p
        self.threshold = int(round(p * 256))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        n = x.numel()
        draws = torch.randint(-(2**63), 2**63 - 1, ((n + 7) // 8,), dtype=torch.int64, device=x.device)
        keep = draws.view(torch.uint8)[:n].view_as(x) >= self.threshold
        return x * keep.to(x.dtype).mul_(256.0 / (256 - self.threshold))


class SequenceEncoder(nn.Module):
    """Per-second series (batch, channels incl. mask, steps) -> pooled vector and per-step features."""

    def __init__(self, channels: int, width: int = 32, kind: str = "conv"):
        super().__init__()
        self.kind = kind
        if kind == "gru":
            self.rnn = nn.GRU(channels - 1, width, batch_first=True)
        else:
            self.conv = nn.Sequential(
                nn.Conv1d(channels - 1, width, 5, padding=4), nn.ReLU(),  # causal: pad left, cut right
                nn.Conv1d(width, width, 5, padding=4, dilation=1), nn.ReLU())
        self.out_dim = 2 * width

    def steps(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step features (batch, steps, width); each step sees only the past (causal)."""
        values = x[:, :-1]
        if self.kind == "gru":
            return self.rnn(values.transpose(1, 2))[0]
        h = values
        for layer in self.conv:
            h = layer(h)
            if isinstance(layer, nn.Conv1d):
                h = h[..., : values.shape[-1]]
        return h.transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.steps(x)
        mask = x[:, -1].unsqueeze(-1)
        n = mask.sum(1).clamp_min(1.0)
        mean = (h * mask).sum(1) / n
        worst = (h * mask - (1 - mask) * 1e4).max(1).values
        return torch.cat([mean, worst], 1)

    def prefixes(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` of every prefix at once: (batch, steps, out_dim), where [:, t] is what ``forward``
        gives on the series cut after step t. Exact because ``steps`` is causal: a step's features do not
        change when later steps are cut, so the pooled mean and max become a running mean and max."""
        h = self.steps(x)
        mask = x[:, -1].unsqueeze(-1)
        mean = torch.cumsum(h * mask, 1) / torch.cumsum(mask, 1).clamp_min(1.0)
        worst = torch.cummax(h * mask - (1 - mask) * 1e4, 1).values
        return torch.cat([mean, worst], 2)


class InputBranch(nn.Module):
    """f_i followed by g_i for one input. A viewer input (``role="viewer"``) is an embedding followed by a
    linear map to the ``n_outputs`` of the head (embeddings initialised to zero): an offset of the output
    per viewer."""

    def __init__(self, spec: BranchSpec, n_outputs: int = 1):
        super().__init__()
        self.spec = spec
        if spec.role == "viewer":
            self.encode = nn.Embedding(spec.cardinality, spec.embedding_dim)
            self.project = nn.Linear(spec.embedding_dim, n_outputs)
            nn.init.zeros_(self.encode.weight)  # every viewer starts as the population (offset 0)
            nn.init.zeros_(self.project.bias)
            self.out_dim = n_outputs
            return
        if spec.kind == "index":
            self.encode = nn.Embedding(spec.cardinality, spec.embedding_dim)
            width = spec.embedding_dim
        elif spec.kind == "sequence":
            self.encode = SequenceEncoder(spec.dim, kind=spec.encoder)
            width = self.encode.out_dim
        else:
            self.encode = nn.Identity()
            width = spec.dim
        self.project = nn.Identity() if spec.projection is None else nn.Sequential(
            nn.Linear(width, spec.projection), nn.ReLU())
        self.out_dim = width if spec.projection is None else spec.projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.spec.unknown_dropout
        if self.training and p > 0 and self.spec.kind == "index":  # teach the unknown bucket the population
            x = x.masked_fill(torch.rand(x.shape, device=x.device) < p, 0)
        return self.project(self.encode(x))


class DeepQoENet(nn.Module):
    """The DeepQoE network: branches -> concat -> FC layers (representation) -> head (+ the viewer's
    offset, when an input has ``role="viewer"``; the representation does not depend on the viewer)."""

    def __init__(self, branches: list[BranchSpec], hidden_layers=(512, 256), dropout: float = 0.5,
                 n_outputs: int = 1):
        super().__init__()
        self.branches = nn.ModuleList(InputBranch(s, n_outputs) for s in branches)
        self.viewer_index = next((i for i, s in enumerate(branches) if s.role == "viewer"), None)
        layers, width = [], sum(b.out_dim for i, b in enumerate(self.branches) if i != self.viewer_index)
        for h in hidden_layers:
            layers += [nn.Linear(width, h), nn.ReLU(), Dropout(dropout)]
            width = h
        self.fc = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_outputs)
        self.representation_dim = width

    def fuse(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([b(x) for i, (b, x) in enumerate(zip(self.branches, inputs)) if i != self.viewer_index], 1)

    def representation(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return self.fc(self.fuse(inputs))

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        out = self.head(self.representation(inputs))
        if self.viewer_index is not None:
            out = out + self.branches[self.viewer_index](inputs[self.viewer_index])
        return out

    def forward_prefixes(self, inputs: list[torch.Tensor], k: int) -> torch.Tensor:
        """The output for every prefix of the sequence input ``k`` (the per-second curve): (batch, steps,
        n_outputs), [:, t] being ``forward`` with that series cut after step t. One pass over the series
        instead of one network run per step."""
        seq = self.branches[k]
        pooled = seq.project(seq.encode.prefixes(inputs[k]))  # (batch, steps, width)
        steps = pooled.shape[1]
        parts = [pooled if i == k else b(x).unsqueeze(1).expand(-1, steps, -1)
                 for i, (b, x) in enumerate(zip(self.branches, inputs)) if i != self.viewer_index]
        out = self.head(self.fc(torch.cat(parts, 2)))
        if self.viewer_index is not None:
            out = out + self.branches[self.viewer_index](inputs[self.viewer_index]).unsqueeze(1)
        return out
