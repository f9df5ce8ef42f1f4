"""Classical strategies: the baselines every neural result is compared with, on the same dates."""
from __future__ import annotations

import math

import backtrader as bt

from .base import TargetStrategy


class BuyHold(TargetStrategy):
    """Fully invested from the first bar it may trade, never rebalanced."""

    def target(self):
        return 1.0 if self.last_target is None else None


class SmaCross(TargetStrategy):
    """Long when the fast average is above the slow one, else flat (or short).

    fast=1 compares the price itself with the slow average: the 200-day timing rule.
    """

    params = (("fast", 1), ("slow", 200), ("allow_short", False))

    def __init__(self):
        super().__init__()
        close = self.data.close
        self.fast = close if self.p.fast <= 1 else bt.ind.SMA(close, period=self.p.fast)
        self.slow = bt.ind.SMA(close, period=self.p.slow)

    def target(self):
        if self.fast[0] > self.slow[0]:
            return 1.0
        return -1.0 if self.p.allow_short else 0.0


class Tsmom(TargetStrategy):
    """Time-series momentum: the sign of the 12-month return, scaled to a volatility target.

    Exposure = sign(momentum) x vol_target / realised volatility, capped at max_leverage.
    """

    params = (("lookback", 252), ("vol_target", 0.15), ("vol_window", 60), ("max_leverage", 1.0),
              ("allow_short", True))

    def __init__(self):
        super().__init__()
        self.momentum = bt.ind.PctChange(self.data.close, period=self.p.lookback)
        daily = bt.ind.PctChange(self.data.close, period=1)
        self.vol = bt.ind.StdDev(daily, period=self.p.vol_window) * math.sqrt(252)

    def target(self):
        if self.vol[0] <= 0:
            return None
        size = min(self.p.max_leverage, self.p.vol_target / self.vol[0])
        if self.momentum[0] > 0:
            return size
        return -size if self.p.allow_short else 0.0
