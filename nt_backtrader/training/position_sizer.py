"""The core's sizing net: a multiplier on each feed's target weight, learned from the realized test
windows of earlier segments only.

Its state on bar t (sizing_state) is what the bundle computes when it trades: the blended position
of the members and four of momentum.py's inputs, all from bars <= t. What it learns from is the
record of the walk-forward's own past test windows (the analyzer's feedback): per traded asset and
day, that state, the weight the bundle targeted before any multiplier and the open-to-open return
that weight earned. No row of the window being traded, nor of the train window's in-sample fits,
reaches it: the positions it sees are out of sample, as the ones it will scale.

The net (PositionSizingNet's multiplier, 1 at initialisation, in [0, max_multiplier]) is trained on
all but the newest recorded window, for minus the Sharpe of the book's daily net return plus an
anchor holding the mean multiplier near 1, early-stopped on the first half of the newest window, and
kept only if it beats the multiplier of 1 on its second half (a half its stopping step was not chosen
on); otherwise the bundle trades without it (the twin). The loss ignores the max_weight clip, which
a book-scaled weight rarely reaches.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import momentum
from ..networks.sizing import PositionSizingNet
from .gated import fit_gated
from .losses import sharpe

STATE_INPUTS = ("ret_21d", "ret_252d", "macd_16_48", "vol_ratio")   # of momentum.INPUTS, beside the position
STATE_COLUMNS = ("position", "abs_position") + STATE_INPUTS
COLUMNS = [momentum.INPUTS.index(name) for name in STATE_INPUTS]


def sizing_state(blended: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """(n, len(STATE_COLUMNS)) the sizing net's state on each bar: the members' blended position, its
    size, and momentum.py's inputs named in STATE_INPUTS (already causal and winsorised)."""
    return np.column_stack([blended, np.abs(blended), inputs[:, COLUMNS]])


@dataclass
class Window:
    """One realized test window of the traded assets, rows stacked asset by asset in date order."""

    state: np.ndarray    # (n, len(STATE_COLUMNS))
    weight: np.ndarray   # (n,) the target weight before the multiplier (book scale included)
    earned: np.ndarray   # (n,) what that weight earned: the next open to the open after
    cost: np.ndarray     # (n,) per-side cost of the asset
    day: np.ndarray      # (n,) int, the row's date as days since 1970 (assets share a day)
    first: np.ndarray    # (n,) bool, the asset's first row in the window: no previous weight to change from

    def split(self) -> tuple["Window", "Window"]:
        """The window's first and second half by date: each asset's first row in a half pays no change."""
        days = np.unique(self.day)
        later = self.day >= days[len(days) // 2]
        out = []
        for keep in (~later, later):
            previous_kept = np.concatenate([[False], keep[:-1]])
            first = self.first | ~previous_kept
            out.append(Window(*(v[keep] for v in (self.state, self.weight, self.earned, self.cost, self.day)),
                              first[keep]))
        return out[0], out[1]

    def to_state(self) -> dict:
        return {k: torch.as_tensor(v) for k, v in vars(self).items()}

    @classmethod
    def from_state(cls, state: dict) -> "Window":
        return cls(**{k: v.numpy() for k, v in state.items()})


def book_returns(multiplier: torch.Tensor, w: Window) -> torch.Tensor:
    """(days,) the book's net return each day of the window with these multipliers (n,)."""
    weight = multiplier * torch.as_tensor(w.weight, dtype=torch.float32)
    change = torch.abs(weight - torch.cat([weight[:1], weight[:-1]]))
    change = torch.where(torch.as_tensor(w.first), torch.zeros_like(change), change)
    earned, cost = (torch.as_tensor(values, dtype=torch.float32) for values in (w.earned, w.cost))
    net = weight * earned - cost * change
    days, index = np.unique(w.day, return_inverse=True)
    return torch.zeros(len(days)).index_add(0, torch.as_tensor(index), net)


def window_sharpe(net: PositionSizingNet | None, w: Window) -> float:
    with torch.no_grad():
        return float(sharpe(book_returns(multipliers(net, w.state), w)))


def multipliers(net: PositionSizingNet | None, state: np.ndarray) -> torch.Tensor:
    """(n,) the net's multiplier per row (1 without a net, and on a row whose state is not finite)."""
    x = torch.as_tensor(state, dtype=torch.float32)
    finite = torch.isfinite(x).all(dim=1)
    if net is None:
        return torch.ones(len(x))
    out = net(torch.nan_to_num(x), torch.ones(len(x)))[2]
    return torch.where(finite, out, torch.ones_like(out))


def fit_sizer(windows: list[Window], seed: int, hidden: int, max_multiplier: float,
              anchor: float) -> tuple[PositionSizingNet | None, dict]:
    """A sizing net trained on every window but the newest, early-stopped on the newest's first half;
    None (the multiplier 1) when fewer than two windows are recorded or it does not beat 1 on the
    newest's second half."""
    info = {"sizer_windows": len(windows), "sizer_kept": False}
    if len(windows) < 2:
        return None, info
    train, (check, gate) = windows[:-1], windows[-1].split()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = PositionSizingNet(len(STATE_COLUMNS), hidden, max_multiplier=max_multiplier)

    def loss(model) -> torch.Tensor:
        returns, means = [], []
        for w in train:
            m = multipliers(model, w.state)
            returns.append(book_returns(m, w))
            means.append(m.mean())
        return -sharpe(torch.cat(returns)) + anchor * (torch.stack(means).mean() - 1.0) ** 2

    return fit_gated(net, loss, window_sharpe, check, gate, "sizer", info)
