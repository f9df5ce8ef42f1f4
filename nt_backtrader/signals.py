"""Classical timing signals as ensemble members: the same (p_long, p_short) shape as the networks.

Pure numpy, causal: bar t reads bars up to t. A classical member is certain: its
probability is 1 for the side it takes and 0 otherwise.
"""
from __future__ import annotations

import numpy as np

from .config import CLASSICAL_MEMBERS
from .features import _rolling

TSMOM_LOOKBACK = 252
SMA_WINDOW = 200
CLASSICAL_LOOKBACK = TSMOM_LOOKBACK + 1  # bars a classical member needs, the decision bar included


def classical_signal(name: str, close: np.ndarray, allow_short: bool) -> tuple[np.ndarray, np.ndarray]:
    """(p_long, p_short) of 'tsmom' (sign of the 12-month return) or 'sma' (price vs its 200-day mean)."""
    close = np.asarray(close, dtype=float)
    if name == "tsmom":
        past = np.full(len(close), np.nan)
        past[TSMOM_LOOKBACK:] = close[:-TSMOM_LOOKBACK]
        score = close / past - 1.0
    elif name == "sma":
        score = close / _rolling(close, SMA_WINDOW, np.mean) - 1.0
    else:
        raise ValueError(f"unknown classical member {name!r}; known: {', '.join(CLASSICAL_MEMBERS)}")
    p_long = np.where(np.isnan(score), np.nan, (score > 0).astype(float))
    p_short = np.where(np.isnan(score), np.nan, (score < 0).astype(float) if allow_short else 0.0)
    return p_long, p_short


def primary_side(close: np.ndarray, allow_short: bool) -> np.ndarray:
    """The side meta-labeling asks the timing nets about: tsmom's +1 long, -1 short, 0 none (also
    before its lookback is complete)."""
    p_long, p_short = classical_signal("tsmom", close, allow_short)
    return np.nan_to_num(p_long - p_short, nan=0.0)
