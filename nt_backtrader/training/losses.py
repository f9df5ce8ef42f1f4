"""Losses and rewards of the networks: direction, Sharpe (plain and net of costs), sizing utility, bracket Sharpe."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..networks.timing import long_short_probabilities


def sharpe(returns: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Annualised Sharpe of daily returns; differentiable."""
    return returns.mean() / (returns.std() + eps) * math.sqrt(252.0)


def direction_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels)


def sharpe_loss(logits: torch.Tensor, next_returns: torch.Tensor, turnover_cost: float,
                side: torch.Tensor | None = None) -> torch.Tensor:
    """Minus the Sharpe of holding p(long) - p(short), less a cost on each change of position.

    With `side` (meta-labeling) the position is side x p(take). Rows of a batch are
    consecutive bars, so position changes within it are real turnover.
    """
    p_long, p_short = long_short_probabilities(logits)
    position = p_long - p_short if side is None or logits.shape[-1] == 3 else side * p_long  # (B,)
    turnover = torch.abs(torch.diff(position, prepend=position[:1]))
    return -sharpe(position * next_returns - turnover_cost * turnover)


def net_sharpe_loss(position: torch.Tensor, next_returns: torch.Tensor, vol_scale: torch.Tensor,
                    cost: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Minus the annualised Sharpe, pooled over every step where `mask` is True in every sequence,
    of the volatility-scaled position's next-day return net of costs (the deep-momentum loss):

        w = position x vol_scale,   net_t = w_t x r_{t+1} - cost x |w_t - w_{t-1}|

    position, next_returns, vol_scale, mask: (B, L); cost: (B,) per-side fraction of the traded
    value, as the backtest charges commission and slippage. The change is taken inside each
    sequence, across its context steps (mask False) too, which are real bars; the first step of a
    sequence has no previous weight in the batch, so it pays no change. Every step must be
    finite, context steps included.
    """
    weight = position * vol_scale                                                   # (B, L)
    change = torch.abs(torch.diff(weight, dim=1, prepend=weight[:, :1]))           # (B, L), 0 at step 0
    net = weight * next_returns - cost[:, None] * change                            # (B, L)
    return -sharpe(net[mask])


def position_direction_loss(position: torch.Tensor, next_returns: torch.Tensor, mask: torch.Tensor,
                            long_only: bool = False) -> torch.Tensor:
    """The cross-entropy twin of net_sharpe_loss (the ablation's; DMN's classification loss): the
    position read as P(the next return is up), (position + 1) / 2 for a tanh net, the position
    itself for a long-only (sigmoid) one, scored against the sign of the next return."""
    p_up = position if long_only else (position + 1.0) / 2.0
    return F.binary_cross_entropy(p_up[mask].clamp(1e-6, 1 - 1e-6), (next_returns[mask] > 0).float())


def sizing_loss(fraction: torch.Tensor, confidence: torch.Tensor, multiplier: torch.Tensor,
                returns: torch.Tensor, anchor: float) -> torch.Tensor:
    """Minus the Sharpe of sized returns, an anchor holding the mean multiplier near 1 (the
    volatility target; Sharpe alone cannot pin a scale), and the confidence as P(sized > 0)."""
    sized = fraction * returns
    calibration = F.binary_cross_entropy(confidence, (sized > 0).float())
    return -sharpe(sized) + anchor * (multiplier.mean() - 1.0) ** 2 + 0.1 * calibration


def bracket_loss(logits: torch.Tensor, outcomes: torch.Tensor) -> torch.Tensor:
    """Minus the Sharpe of trade returns when each entry picks its (stop, take) cell by softmax.

    outcomes: (B, cells) exact return of each bracket on the entry's real future path.
    """
    weights = torch.softmax(logits, dim=-1)
    first = (weights * outcomes).sum(-1)                      # (B,) expected return
    second = (weights * outcomes**2).sum(-1)                  # (B,) its second moment
    mean = first.mean()
    return -mean / torch.sqrt((second.mean() - mean**2).clamp_min(1e-10))
