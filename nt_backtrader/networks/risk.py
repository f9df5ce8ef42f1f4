"""RiskNet: features at an entry -> stop-loss and take-profit distances in ATR units, bounded."""
from __future__ import annotations

import torch
from torch import nn

STOP_GRID = (0.75, 1.0, 1.5, 2.0, 3.0, 4.0)   # stop distance, ATRs below (long) the decision close
TAKE_GRID = (1.0, 1.5, 2.0, 3.0, 4.5, 6.0)    # take-profit distance, ATRs above it


class RiskNet(nn.Module):
    """A distribution over a grid of (stop, take) pairs; the levels are its most likely cell.

    A grid keeps the distances bounded and lets training use the exact outcome of every
    bracket on the real price path, which is not differentiable in the distances.
    """

    def __init__(self, n_inputs: int, hidden: int = 16, dropout: float = 0.0,
                 stop_grid: tuple = STOP_GRID, take_grid: tuple = TAKE_GRID):
        super().__init__()
        self.register_buffer("stops", torch.tensor(stop_grid, dtype=torch.float32).repeat_interleave(len(take_grid)))
        self.register_buffer("takes", torch.tensor(take_grid, dtype=torch.float32).repeat(len(stop_grid)))
        self.body = nn.Sequential(nn.Linear(n_inputs, hidden), nn.GELU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, len(stop_grid) * len(take_grid)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # (B, n_stops * n_takes) logits over the grid

    def levels(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cell = self.forward(x).argmax(dim=-1)
        return self.stops[cell], self.takes[cell]
