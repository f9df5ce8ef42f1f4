"""Exact outcomes of bracket orders on the real future path, as backtrader would fill them.

Entry at the next bar's open; stop and take-profit levels set from the decision bar's close
and ATR. Backtrader activates a bracket's legs when the entry fills and first checks them on
the bar after, so the path starts there; the stop fills first when a bar touches both (it
is checked first), a gap through a level fills at that bar's open, and a trade still open
after `horizon` bars leaves at that bar's close. A row's outcome reads bars up to row + horizon + 1.
"""
from __future__ import annotations

import numpy as np


def bracket_reach(horizon: int) -> int:
    """Bars after its decision row a bracket's outcome reads: entered at the next open, its path the
    `horizon` bars after that."""
    return horizon + 1


def bracket_returns(open_, high, low, close, atr, rows: np.ndarray, stops: np.ndarray, takes: np.ndarray,
                    horizon: int, direction: int = 1, cost: float = 0.0) -> np.ndarray:
    """(len(rows), len(stops)) trade return of each (stop, take) cell, distances in ATRs; direction +1 long,
    -1 short."""
    path = rows[:, None] + 2 + np.arange(horizon)[None, :]          # (N, H) bar indices after the entry bar
    o, h, lo = open_[path], high[path], low[path]                   # (N, H): the path's opens, highs, lows
    ref = close[rows][:, None] * np.ones((1, len(stops)))           # (N, K)
    atr_r = atr[rows][:, None]
    stop_level = ref - direction * stops[None, :] * atr_r           # (N, K)
    take_level = ref + direction * takes[None, :] * atr_r
    if direction > 0:
        stop_hit = lo[:, None, :] <= stop_level[:, :, None]         # (N, K, H)
        take_hit = h[:, None, :] >= take_level[:, :, None]
    else:
        stop_hit = h[:, None, :] >= stop_level[:, :, None]
        take_hit = lo[:, None, :] <= take_level[:, :, None]
    first_stop = np.where(stop_hit.any(-1), stop_hit.argmax(-1), horizon)   # (N, K)
    first_take = np.where(take_hit.any(-1), take_hit.argmax(-1), horizon)
    n_idx = np.arange(len(rows))[:, None]
    open_at_stop = o[n_idx, np.minimum(first_stop, horizon - 1)]
    open_at_take = o[n_idx, np.minimum(first_take, horizon - 1)]
    # A level the open already jumped past fills at the open (worse for a stop, better for a take).
    pick = np.minimum if direction > 0 else np.maximum
    stop_fill = pick(open_at_stop, stop_level)
    take_fill = (np.maximum if direction > 0 else np.minimum)(open_at_take, take_level)
    time_exit = close[path[:, -1]][:, None]
    stopped = (first_stop <= first_take) & (first_stop < horizon)
    taken = ~stopped & (first_take < horizon)
    exit_price = np.where(stopped, stop_fill, np.where(taken, take_fill, time_exit))
    entry = open_[rows + 1][:, None]
    return direction * (exit_price / entry - 1.0) - cost
