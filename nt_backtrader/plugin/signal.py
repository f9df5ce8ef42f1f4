"""NeuralSignal: the bundle's network outputs as backtrader lines, from any standard feed.

With runonce (backtrader's default) the whole feed is predicted in one batched pass in
`once`; each bar's outputs still come from that bar and the ones before it only (the
features and windows are causal, and the leak tests hold it). Without runonce, `next`
predicts bar by bar from the trailing window.
"""
from __future__ import annotations

import backtrader as bt
import numpy as np

from ..bundle import Bundle, get_bundle

OUTPUTS = ("p_long", "p_short", "confidence", "stop_atr", "take_atr", "stop_atr_short", "take_atr_short",
           "atr", "vol")


def _ohlcv(data, end: int | None = None, size: int | None = None) -> list[np.ndarray]:
    lines = (data.open, data.high, data.low, data.close, data.volume)
    if size is not None:
        return [np.asarray(line.get(size=size), dtype=float) for line in lines]
    return [np.asarray(line.array[:end], dtype=float) for line in lines]


def predict_current(bundle: Bundle, data):
    """The bundle's outputs for the data's current bar from its trailing lines; None if too short."""
    size = bundle.spec.warmup_bars
    if len(data) < size:
        return None
    return bundle.predict(*_ohlcv(data, size=size), rows=np.array([size - 1]))


class NeuralSignal(bt.Indicator):
    lines = OUTPUTS
    params = (("bundle", None),)

    def __init__(self):
        self.bundle: Bundle = get_bundle(self.p.bundle)
        self.addminperiod(self.bundle.spec.warmup_bars)
        self._scaled = None      # (n, F) scaled features of every bar (runonce)
        self._scaled_now = None  # the current bar's row (bar by bar)

    def once(self, start, end):
        signals = self.bundle.predict(*_ohlcv(self.data, end=end))
        for name in OUTPUTS:
            target = getattr(self.lines, name).array
            values = getattr(signals, name)
            for i in range(start, end):
                target[i] = values[i]
        self._scaled = signals.scaled

    def next(self):
        signals = predict_current(self.bundle, self.data)
        for name in OUTPUTS:
            getattr(self.lines, name)[0] = getattr(signals, name)[-1]
        self._scaled_now = signals.scaled[-1]

    def scaled_features(self) -> np.ndarray:
        """Scaled features of the current bar, for the sizer."""
        if self._scaled is not None:
            return self._scaled[len(self.data) - 1]
        return self._scaled_now
