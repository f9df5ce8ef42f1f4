"""PositionSizingNet: market and portfolio state -> fraction of equity in [0, max_fraction], confidence."""
from __future__ import annotations

import math

import torch
from torch import nn


class PositionSizingNet(nn.Module):
    """The fraction is a learned multiplier on the volatility-target fraction, then capped.

    Starting from volatility targeting (multiplier 1 at initialisation) gives the network a
    sound prior: it learns when to lean in or back off, not what a fraction is.
    Inputs: scaled market features, drawdown, exposure, recent PnL, timing confidence.
    """

    def __init__(self, n_inputs: int, hidden: int = 16, dropout: float = 0.0, vol_target: float = 0.15,
                 max_fraction: float = 1.0, max_multiplier: float = 2.0):
        super().__init__()
        self.vol_target, self.max_fraction, self.max_multiplier = vol_target, max_fraction, max_multiplier
        self.body = nn.Sequential(nn.Linear(n_inputs, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 2))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)
        # the multiplier starts at exactly 1 whatever max_multiplier is: sigmoid(logit(1 / max)) x max
        with torch.no_grad():
            self.body[-1].bias[0] = -math.log(max_multiplier - 1.0) if max_multiplier > 1.0 else 20.0

    def forward(self, x: torch.Tensor, vol: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, n_inputs), vol (B,) annualised -> fraction (B,), confidence (B,), multiplier (B,)."""
        z = self.body(x)                                       # (B, 2)
        multiplier = self.max_multiplier * torch.sigmoid(z[:, 0])
        fraction = torch.clamp(multiplier * self.vol_target / vol.clamp_min(1e-4), max=self.max_fraction)
        return fraction, torch.sigmoid(z[:, 1]), multiplier
