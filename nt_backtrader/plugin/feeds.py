"""Backtrader feeds and broker settings from our frames and config."""
from __future__ import annotations

import backtrader as bt
import pandas as pd

from .. import timeframe


class FrameFeed(bt.feed.DataBase):
    """PandasData's job for our validated frames, read from numpy arrays.

    PandasData indexes the DataFrame cell by cell; over a walk-forward that was the largest
    cost of a run. Same plain OHLCV lines: anything that works on a standard feed works here.
    """

    params = (("frame", None),)

    def start(self):
        super().start()
        frame = self.p.frame
        self._dates = [bt.date2num(d) for d in frame.index.to_pydatetime()]
        self._values = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype=float).tolist()
        self._next = 0

    def _load(self):
        if self._next >= len(self._dates):
            return False
        lines = self.lines
        lines.datetime[0] = self._dates[self._next]
        lines.open[0], lines.high[0], lines.low[0], lines.close[0], lines.volume[0] = self._values[self._next]
        lines.openinterest[0] = 0.0
        self._next += 1
        return True


def asset_name(data) -> str:
    """The name a feed's results are kept under: the name given to cerebro.adddata, else data0, data1, ...
    (backtrader leaves unnamed feeds with an empty name, which would merge their trades)."""
    return data._name or f"data{data._id - 1}"


def frame_feed(frame: pd.DataFrame, name: str = "data") -> FrameFeed:
    """A feed of a validated frame, with the timeframe of its dates (daily, weekly, ...)."""
    return FrameFeed(frame=frame, name=name, **timeframe_params(frame))


def timeframe_params(frame: pd.DataFrame) -> dict:
    """A feed's timeframe and compression params for the dates of `frame`."""
    kind, compression = timeframe.of_index(frame.index)
    return {"timeframe": getattr(bt.TimeFrame, kind), "compression": compression}


def feed_timeframe(data) -> tuple[str, int]:
    """A backtrader feed's bars as (bt.TimeFrame name, compression), e.g. ("Minutes", 5)."""
    return bt.TimeFrame.Names[data._timeframe], int(data._compression)


class CommissionBps(bt.CommInfoBase):
    """Stock-like commission charged in basis points of traded value."""

    params = (("stocklike", True), ("commtype", bt.CommInfoBase.COMM_PERC), ("percabs", True))


def configure_broker(broker: bt.brokers.BackBroker, cash: float, commission_bps: float,
                     slippage_bps: float) -> None:
    broker.setcash(cash)
    broker.addcommissioninfo(CommissionBps(commission=commission_bps / 1e4))
    # Market orders fill at the next open, so the open must slip too (slip_open).
    broker.set_slippage_perc(slippage_bps / 1e4, slip_open=True, slip_limit=True, slip_match=True,
                             slip_out=False)
