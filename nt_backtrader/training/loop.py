"""The one training loop every network uses: AdamW, gradient clipping, early stopping, NaN guard.

A non-finite loss or weight rolls the model back to its last good state, halves the
learning rate and is counted; a divergent setting (lr 0.1 where the net cannot take it)
costs epochs, never the run.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

MAX_ROLLBACKS = 4
MIN_BLOCK = 16  # shorter batches give a noisy Sharpe; they are skipped


@dataclass(frozen=True)
class Hyper:
    """What the tuner sets per segment."""

    lr: float = 1e-3
    batch_size: int = 256
    dropout: float = 0.1
    weight_decay: float = 1e-4


@dataclass
class FitResult:
    epochs: int = 0
    best_val: float = math.inf
    first_val: float = math.inf
    rollbacks: int = 0
    train_losses: list = field(default_factory=list)
    val_losses: list = field(default_factory=list)


def set_dropout(model: nn.Module, p: float) -> None:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = p
        elif isinstance(module, nn.MultiheadAttention):
            module.dropout = p


def blocks(n: int, size: int, rng: np.random.Generator, min_block: int = MIN_BLOCK) -> list[np.ndarray]:
    """Consecutive index blocks with a random phase, in random order; blocks under `min_block` are skipped."""
    offset = int(rng.integers(0, size)) if n > size else 0
    edges = [0] + list(range(offset or size, n, size)) + [n]
    out = [np.arange(a, b) for a, b in zip(edges, edges[1:]) if b - a >= min(min_block, n)]
    rng.shuffle(out)
    return out


def _finite(model: nn.Module) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())


def fit(model: nn.Module, n_fit: int, batch_loss: Callable[[nn.Module, np.ndarray], torch.Tensor],
        val_loss: Callable[[nn.Module], float], hyper: Hyper, epochs: int, patience: int,
        rng: np.random.Generator, grad_clip: float = 1.0, epoch_samples: int | None = None,
        min_block: int = MIN_BLOCK) -> FitResult:
    """Train `model` on index blocks of [0, n_fit); keep the weights with the best validation loss.
    Blocks of fewer than `min_block` indices are skipped (a batch's Sharpe needs enough steps).

    With `epoch_samples`, an epoch visits a random share of the blocks worth about that many
    rows, so that a pooled universe costs little more per epoch than one asset; each epoch
    draws its share afresh."""
    set_dropout(model, hyper.dropout)
    result = FitResult()
    lr = hyper.lr

    def optimizer():
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=hyper.weight_decay)

    opt = optimizer()
    model.eval()
    # The starting point is measured but not a candidate: a warm-started net has already seen
    # most of this validation tail in its last fit, so its score there flatters it.
    result.first_val = _safe(val_loss(model))
    best = None
    good = copy.deepcopy(model.state_dict())
    stale = 0
    for _ in range(epochs):
        model.train()
        losses = []
        chosen = blocks(n_fit, hyper.batch_size, rng, min_block)
        if epoch_samples and n_fit > epoch_samples:
            chosen = chosen[:max(1, math.ceil(epoch_samples / hyper.batch_size))]
        for idx in chosen:
            loss = batch_loss(model, idx)
            if torch.isfinite(loss):
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                opt.step()
            if not torch.isfinite(loss) or not _finite(model):
                result.rollbacks += 1
                model.load_state_dict(good)
                lr *= 0.5
                opt = optimizer()
                if result.rollbacks >= MAX_ROLLBACKS:
                    break
                continue
            losses.append(float(loss.detach()))
        result.epochs += 1
        model.eval()
        current = _safe(val_loss(model))
        result.train_losses.append(float(np.mean(losses)) if losses else math.nan)
        result.val_losses.append(current)
        if _finite(model):
            good = copy.deepcopy(model.state_dict())
        if current < result.best_val:
            result.best_val, best, stale = current, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
        if stale >= patience or result.rollbacks >= MAX_ROLLBACKS:
            break
    if best is not None:
        model.load_state_dict(best)
    else:  # no epoch ended with a finite validation loss: keep the last good weights
        model.load_state_dict(good)
        result.best_val = result.first_val
    model.eval()
    return result


def _safe(value: float) -> float:
    return float(value) if math.isfinite(float(value)) else math.inf
