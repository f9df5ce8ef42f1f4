"""The core's risk net (timing.risk_mode = "net"): the stop-loss and take-profit distances, in ATRs,
of a side the core enters, learned from the walk-forward's own realized test windows only.

As the sizing net (position_sizer.py), it reads the state the bundle computes when it trades, and
learns from what the bundle did out of sample: each entry of a side (the target weight's sign
changing to +1 or -1) in an earlier test window, with the exact return of every bracket of the grid
on the real path after it (training/brackets.py: filled at the next open, legs checked from the bar
after, the stop first when a bar touches both, out at the close `horizon` bars on). The grid has a
cell without legs (NONE: distances no bar reaches), the literature's exit by rebalancing alone.
PositionStrategy keeps a side's levels until the side changes, so the entry's outcome is the
bracket's; the horizon stands in for the rebalance that would close the side first.

Trained on every window but the newest (RiskNet's grid, bracket_loss: minus the Sharpe of the entries'
returns under the softmax choice of cells), early-stopped on the newest window's first half, kept only
if the entries of its second half return a better Sharpe under its cells than without legs; otherwise
the bundle trades without legs (the twin).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..networks.risk import RiskNet
from .gated import fit_gated
from .losses import bracket_loss, sharpe
from .position_sizer import STATE_COLUMNS

NONE = 1e3                              # ATRs: a distance no bar reaches, the cell without legs
STOP_GRID = (1.0, 2.0, 3.0, NONE)
TAKE_GRID = (1.5, 3.0, 4.5, NONE)
STEPS = 200


def grid() -> tuple[np.ndarray, np.ndarray]:
    """(stops, takes) of every cell, in RiskNet's order (stop-major)."""
    return np.repeat(STOP_GRID, len(TAKE_GRID)), np.tile(TAKE_GRID, len(STOP_GRID))


NO_LEGS = int(np.flatnonzero((grid()[0] == NONE) & (grid()[1] == NONE))[0])


@dataclass
class Entries:
    """The entries of sides in one realized test window, stacked over assets."""

    state: np.ndarray     # (n, len(STATE_COLUMNS)) the sizing state on the entry bar
    outcomes: np.ndarray  # (n, cells) the trade's return net of a round trip's cost under each cell
    day: np.ndarray       # (n,) int, days since 1970

    def split(self) -> tuple["Entries", "Entries"]:
        days = np.unique(self.day)
        later = self.day >= days[len(days) // 2] if len(days) else np.zeros(0, dtype=bool)
        return tuple(Entries(self.state[k], self.outcomes[k], self.day[k]) for k in (~later, later))

    def to_state(self) -> dict:
        return {k: torch.as_tensor(v) for k, v in vars(self).items()}

    @classmethod
    def from_state(cls, state: dict) -> "Entries":
        return cls(**{k: v.numpy() for k, v in state.items()})


def entry_rows(weight: np.ndarray, start: int, end: int) -> np.ndarray:
    """Rows in [start, end) where the weight's side becomes +1 or -1 (from flat or the other side)."""
    side = np.sign(np.nan_to_num(weight))
    rows = np.arange(max(start, 1), end)
    return rows[(side[rows] != 0) & (side[rows] != side[rows - 1])]


def chosen_returns(net: RiskNet | None, entries: Entries) -> np.ndarray:
    """(n,) each entry's return under the net's cell (the cell without legs without a net)."""
    if net is None:
        cells = np.full(len(entries.day), NO_LEGS)
    else:
        with torch.no_grad():
            cells = net(torch.as_tensor(entries.state, dtype=torch.float32)).argmax(dim=-1).numpy()
    return entries.outcomes[np.arange(len(cells)), cells]


def entries_sharpe(net: RiskNet | None, entries: Entries) -> float:
    returns = chosen_returns(net, entries)
    return float(sharpe(torch.as_tensor(returns))) if len(returns) > 1 else math.nan


def fit_risk(windows: list[Entries], seed: int, hidden: int) -> tuple[RiskNet | None, dict]:
    """A risk net trained on every window's entries but the newest's, early-stopped on the newest's
    first half; None (no legs) with fewer than two windows, too few entries, or when it does not beat
    trading without legs on the newest's second half."""
    info = {"risk_windows": len(windows), "risk_kept": False}
    if len(windows) < 2:
        return None, info
    check, gate = windows[-1].split()
    x = torch.as_tensor(np.concatenate([w.state for w in windows[:-1]]), dtype=torch.float32)
    y = torch.as_tensor(np.concatenate([w.outcomes for w in windows[:-1]]), dtype=torch.float32)
    if len(x) < 16 or len(check.day) < 2 or len(gate.day) < 2:
        return None, info
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = RiskNet(len(STATE_COLUMNS), hidden, stop_grid=STOP_GRID, take_grid=TAKE_GRID)
    return fit_gated(net, lambda model: bracket_loss(model(x), y), entries_sharpe, check, gate, "risk", info,
                     steps=STEPS)
