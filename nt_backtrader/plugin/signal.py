"""NeuralSignal: the bundle's network outputs on any standard backtrader feed (one per feed).

Features are scaled with the statistics of the asset the feed is named after, when the bundle
was trained on it, and with the pooled statistics of its training universe otherwise.

With runonce (backtrader's default) the whole feed is predicted in one batched pass in `once`;
each bar's outputs still come from that bar and the ones before it only (the features and
windows are causal, and the leak tests hold it). Without runonce, `next` predicts bar by bar
from the trailing window, except on a live feed's history (its backfill, sent before it reports
LIVE), where nothing is traded: those bars cost what a backtest's do. Only the two probabilities
the strategy reads every bar are lines; the rest (ATR, bracket distances, volatility,
confidence, features) is read at the bar an order is sent, from `current()`.
"""
from __future__ import annotations

import backtrader as bt
import numpy as np

from .. import timeframe
from ..bundle import Bundle, Signals, get_bundle
from .base import SegmentStrategy
from .feeds import asset_name, feed_timeframe


def _ohlcv(data, end: int | None = None, size: int | None = None) -> list[np.ndarray]:
    lines = (data.open, data.high, data.low, data.close, data.volume)
    if size is not None:
        return [np.asarray(line.get(size=size), dtype=float) for line in lines]
    return [np.asarray(line.array[:end], dtype=float) for line in lines]


def check_feed(bundle: Bundle, data, allow: bool) -> None:
    """The timeframe guard: a feed of other bars than the bundle's is refused unless `allow`."""
    if not allow:
        timeframe.check(bundle.timeframe, feed_timeframe(data), asset_name(data))


def predict_current(bundle: Bundle, data) -> Signals | None:
    """The bundle's outputs for the data's current bar from its trailing lines; None if too short."""
    size = bundle.warmup_bars
    if len(data) < size:
        return None
    return bundle.predict(*_ohlcv(data, size=size), rows=np.array([size - 1]), asset=asset_name(data))


class NeuralSignal(bt.Indicator):
    lines = ("p_long", "p_short")
    params = (("bundle", None), ("allow_timeframe", False))  # True: trade bars of another timeframe anyway

    def __init__(self):
        self.bundle: Bundle = get_bundle(self.p.bundle)
        check_feed(self.bundle, self.data, self.p.allow_timeframe)
        self.addminperiod(self.bundle.warmup_bars)
        self._signals: Signals | None = None  # every bar (runonce) or the current one (bar by bar)
        self._batched = False

    def once(self, start, end):
        # backtrader calls once() twice (the first full bar, then the rest): predict the buffer once
        if not self._batched:
            self._signals = self.bundle.predict(*_ohlcv(self.data, end=self.buflen()), asset=asset_name(self.data))
            self._batched = True
        for line, values in ((self.lines.p_long, self._signals.p_long), (self.lines.p_short, self._signals.p_short)):
            line.array[start:end] = type(line.array)(line.array.typecode, values[start:end])

    def next(self):
        if SegmentStrategy.backfill(self.data):  # a live feed's history is never traded on: its lines stay NaN
            self._signals = None
            return
        self._signals = predict_current(self.bundle, self.data)
        self.lines.p_long[0], self.lines.p_short[0] = self._signals.p_long[-1], self._signals.p_short[-1]

    def current(self, name: str):
        """Any output of the current bar: atr, vol, confidence, stop_atr, take_atr(_short), scaled; NaN
        before the first prediction (bar by bar, while the warm-up lasts)."""
        if self._signals is None:
            return float("nan")
        index = len(self.data) - 1 if self._batched else -1
        return getattr(self._signals, name)[index]
