"""HyperparameterTunerNet: performance metrics -> a Gaussian policy over the next hyperparameters."""
from __future__ import annotations

import math

import torch
from torch import nn

N_TUNER_INPUTS = 10  # val improvement, val loss, val Sharpe, realized Sharpe, val accuracy, 4 settings, volatility
N_ACTIONS = 4        # learning rate, batch size, dropout, weight decay (each squashed into its bounds)


class HyperparameterTunerNet(nn.Module):
    """Mean from a small MLP of the state; a learned, state-free spread. A zero-initialised
    output layer starts it at the middle of every bound (lr 1e-3, batch 256 with the
    default bounds), so an untrained tuner proposes the textbook settings."""

    def __init__(self, hidden: int = 16, exploration: float = 0.5):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(N_TUNER_INPUTS, hidden), nn.Tanh(), nn.Linear(hidden, N_ACTIONS))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)
        self.log_std = nn.Parameter(torch.full((N_ACTIONS,), math.log(exploration)))

    def forward(self, state: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.body(state), self.log_std.exp().clamp(0.05, 2.0))
