"""Portfolio limits learned within bounds: the largest weight per asset, the gross exposure of the
book and a drawdown brake, chosen per segment on the validation tail of the train window.

The book is replayed as the NeuralSizer builds it: each asset's ensemble position (the timing
rule at unit size) is entered at its volatility-target fraction (times the portfolio scale),
capped by the largest weight and by what is left of the gross limit, halved while the book's
drawdown is beyond the brake, and held at that fraction until the rule leaves. Every cell of a
small bounded grid is replayed over the whole train window; the cell with the best Sharpe on
the validation tail wins, and the fixed limits of the config (the classical twin) win ties.
Nothing after the train window is read.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

MAX_WEIGHTS = (0.5, 1.0)
MAX_GROSS = (0.6, 0.8, 1.0)
BRAKES = (0.0, 0.1, 0.2)  # 0: no brake


def limit_grid(fixed: tuple[float, float, float]) -> np.ndarray:
    """(cells, 3) candidate (max weight, max gross, brake), never looser than the configured weight and
    gross caps; the fixed limits first."""
    capped = dict.fromkeys((min(w, fixed[0]), min(g, fixed[1]), b)
                           for w, g, b in itertools.product(MAX_WEIGHTS, MAX_GROSS, BRAKES))
    cells = [tuple(fixed)] + [c for c in capped if c != tuple(fixed)]
    return np.asarray(cells, dtype=float)


def replay_book(positions: pd.DataFrame, fractions: pd.DataFrame, returns: pd.DataFrame, cells: np.ndarray,
                cost: float) -> np.ndarray:
    """(cells, days) daily returns of the book under each cell of limits.

    positions, fractions, returns: date x asset; the position and fraction decided at a date's
    close, and the return from that close to the next one (0 where an asset has no bar).
    """
    pos, frac, ret = (t.to_numpy(dtype=float) for t in (positions, fractions, returns))
    n_cells, (n_days, n_assets) = len(cells), pos.shape
    max_weight, max_gross, brake = (cells[:, k][:, None] for k in range(3))
    held = np.zeros((n_cells, n_assets))            # signed weight of each asset in each cell's book
    equity, peak = np.ones(n_cells), np.ones(n_cells)
    out = np.zeros((n_cells, n_days))
    for t in range(n_days):                            # decide at t's close, then earn t's close to the next
        drawdown = equity / peak - 1.0
        wanted = np.sign(pos[t])[None, :]
        exits = (held != 0) & (np.sign(held) != wanted)
        traded = np.abs(held * exits).sum(1)
        held = np.where(exits, 0.0, held)
        entries = (held == 0) & (wanted != 0)
        for a in np.flatnonzero(entries.any(0)):       # one asset at a time: each entry sees the gross so far
            room = np.maximum(0.0, max_gross[:, 0] - np.abs(held).sum(1))
            size = np.minimum(np.minimum(frac[t, a], max_weight[:, 0]), room)
            size = np.where((brake[:, 0] > 0) & (drawdown < -brake[:, 0]), 0.5 * size, size)
            new = np.where(entries[:, a], wanted[0, a] * size, held[:, a])
            traded += np.abs(new - held[:, a])
            held[:, a] = new
        out[:, t] = (held * ret[t]).sum(1) - cost * traded
        equity *= 1.0 + out[:, t]
        peak = np.maximum(peak, equity)
    return out


def choose_limits(positions: pd.DataFrame, fractions: pd.DataFrame, returns: pd.DataFrame, val_start,
                  fixed: tuple[float, float, float], cost: float) -> tuple[tuple[float, float, float], dict]:
    """The cell with the best validation-tail Sharpe (the fixed limits unless one is strictly better)."""
    cells = limit_grid(fixed)
    daily = replay_book(positions, fractions, returns, cells, cost)
    tail = daily[:, np.asarray(positions.index >= val_start)]
    sd = tail.std(axis=1, ddof=1) if tail.shape[1] > 1 else np.zeros(len(cells))
    sharpe = np.where(sd > 0, tail.mean(axis=1) / np.where(sd > 0, sd, 1.0) * math.sqrt(252), 0.0)
    best = int(np.argmax(sharpe))  # argmax keeps the first of equals: the fixed limits
    chosen = tuple(float(v) for v in cells[best])
    return chosen, {"limits_max_weight": chosen[0], "limits_max_gross": chosen[1], "limits_brake": chosen[2],
                    "limits_val_sharpe": float(sharpe[best]), "limits_fixed_val_sharpe": float(sharpe[0])}
