"""Classical strategies: the baselines every neural result is compared with, on the same dates."""
from __future__ import annotations

import math

import backtrader as bt
import numpy as np

from .. import momentum
from ..errors import ConfigError
from .base import TargetStrategy


class BuyHold(TargetStrategy):
    """Fully invested from the first bar it may trade; with several feeds, an equal weight each,
    rebalanced on the first bar of every month (one feed is never rebalanced)."""

    def __init__(self):
        super().__init__()
        self.month = None

    def next(self):
        month = self.datetime.date(0).month
        if len(self.datas) > 1 and self.month is not None and month != self.month and not self.warming_up():
            for data in self.datas:  # a new month: every feed back to its equal weight
                self.last_target[data] = None
        self.month = month
        super().next()

    def target(self, data):
        return 1.0 if self.last_target[data] is None else None


class SmaCross(TargetStrategy):
    """Long when the fast average is above the slow one, else flat (or short).

    fast=1 compares the price itself with the slow average: the 200-day timing rule. With
    several feeds the capital is split at equal risk: each feed's weight is proportional to
    1 / its realised volatility, over the feeds that have one (one feed: the whole capital).
    """

    params = (("fast", 1), ("slow", 200), ("allow_short", False), ("vol_window", 60))

    def __init__(self):
        super().__init__()
        self.fast = {d: d.close if self.p.fast <= 1 else bt.ind.SMA(d.close, period=self.p.fast) for d in self.datas}
        self.slow = {d: bt.ind.SMA(d.close, period=self.p.slow) for d in self.datas}
        self.vol = {d: bt.ind.StdDev(bt.ind.PctChange(d.close, period=1), period=self.p.vol_window)
                    for d in self.datas} if len(self.datas) > 1 else {}

    def weight_of(self, data) -> float:
        if not self.vol:
            return super().weight_of(data)
        inverse = {d: 1.0 / vol for d, vol in ((d, self.vol[d][0]) for d in self.datas if len(d)) if vol > 0}
        if data not in inverse:
            return super().weight_of(data)
        # the feeds that have a volatility share their part of the capital at equal risk
        return inverse[data] / sum(inverse.values()) * len(inverse) * super().weight_of(data)

    def target(self, data):
        fast, slow = self.fast[data][0], self.slow[data][0]
        if slow != slow:  # still warming up
            return None
        if fast > slow:
            return 1.0
        return -1.0 if self.p.allow_short else 0.0


class Tsmom(TargetStrategy):
    """Time-series momentum: the sign of the 12-month return, scaled to a volatility target.

    Exposure = sign(momentum) x vol_target / realised volatility, capped at max_leverage; with
    several feeds, averaged over them (the tsmom portfolio of Moskowitz, Ooi and Pedersen 2012).
    """

    params = (("lookback", 252), ("vol_target", 0.15), ("vol_window", 60), ("max_leverage", 1.0),
              ("allow_short", True))

    def __init__(self):
        super().__init__()
        self.momentum = {d: bt.ind.PctChange(d.close, period=self.p.lookback) for d in self.datas}
        self.vol = {d: bt.ind.StdDev(bt.ind.PctChange(d.close, period=1), period=self.p.vol_window) * math.sqrt(252)
                    for d in self.datas}

    def target(self, data):
        vol, momentum = self.vol[data][0], self.momentum[data][0]
        if not vol > 0 or momentum != momentum:  # NaN while warming up
            return None
        size = min(self.p.max_leverage, self.p.vol_target / vol)
        if momentum > 0:
            return size
        return -size if self.p.allow_short else 0.0


class VolScaledPosition(bt.Indicator):
    """A classical position of momentum.py times its volatility scale: one asset's weight before the
    asset weight, per bar, from the feed's closes.

    With runonce (backtrader's default) `once` computes the bars it is given from the closes up to
    them in one numpy pass; each value still uses its own bar and the ones before only (momentum.py's
    functions are causal). Bar by bar, `next` computes the current value from the trailing closes it
    needs: the same value, since none depends on where the closes start.
    """

    lines = ("weight",)
    params = (("kind", "tsmom"), ("lookback", momentum.TSMOM_LOOKBACK), ("vol_target", momentum.VOL_TARGET),
              ("vol_span", momentum.VOL_SPAN), ("max_leverage", momentum.MAX_LEVERAGE))

    def __init__(self):
        if self.p.kind not in momentum.CLASSICAL_POSITIONS:
            raise ConfigError(f"VolScaled kind '{self.p.kind}' is unknown: choose one of "
                              f"{', '.join(momentum.CLASSICAL_POSITIONS)}")
        self.bars = momentum.ready_bars(self.p.kind, self.p.lookback, self.p.vol_span)
        self.addminperiod(self.bars)

    def weights(self, close: np.ndarray) -> np.ndarray:
        """(n,) position x vol scale of each close's bar."""
        kind = self.p.kind
        position = momentum.tsmom(close, self.p.lookback) if kind == "tsmom" else \
            momentum.CLASSICAL_POSITIONS[kind](close)
        return position * momentum.vol_scale(close, self.p.vol_target, self.p.vol_span, self.p.max_leverage)

    def once(self, start, end):
        values = self.weights(np.asarray(self.data.close.array[:end], dtype=float))
        line = self.lines.weight.array
        line[start:end] = type(line)(line.typecode, values[start:end])

    def next(self):
        self.lines.weight[0] = self.weights(np.asarray(self.data.close.get(size=self.bars), dtype=float))[-1]


class VolScaled(TargetStrategy):
    """The literature's volatility-scaled baselines: each feed's target = position x vol_target /
    its ex-ante volatility (capped at max_leverage), the position one of momentum.CLASSICAL_POSITIONS:
    long_only, tsmom (Moskowitz, Ooi and Pedersen 2012), macd (Baz et al. 2015).

    With several feeds each target is scaled by 1 / the number of feeds (the tsmom portfolio: an
    equal risk budget per asset) or asset_weight. allow_short=False clips the positions at 0 (long
    or flat). A feed is re-traded when its target is further than rebalance_band x its share from the
    weight it holds (drift included), as PositionStrategy trades the core.

        cerebro.addstrategy(VolScaled, kind="macd")
    """

    params = (("kind", "tsmom"), ("lookback", momentum.TSMOM_LOOKBACK), ("vol_target", momentum.VOL_TARGET),
              ("vol_span", momentum.VOL_SPAN), ("max_leverage", momentum.MAX_LEVERAGE), ("allow_short", True))

    def __init__(self):
        super().__init__()
        self.scaled = {d: VolScaledPosition(d, kind=self.p.kind, lookback=self.p.lookback,
                                            vol_target=self.p.vol_target, vol_span=self.p.vol_span,
                                            max_leverage=self.p.max_leverage) for d in self.datas}

    def target(self, data):
        weight = self.scaled[data][0]
        if weight != weight:  # NaN while warming up
            return None
        return weight if self.p.allow_short else max(0.0, weight)

    def moved(self, data, target: float) -> bool:
        return abs(target - self.held_weight(data)) > self.p.rebalance_band * self.weight
