"""LiveReplay: recorded bars sent one at a time through backtrader's live-feed protocol.

A live feed says `islive()`, so cerebro runs bar by bar (no preload, no runonce); it sends its
history first with the status DELAYED, then reports LIVE; between bars it may have nothing
yet (`_load` returns None and cerebro polls again). This feed does all of that with the bars
of a validated frame: a dry run of a live setup, and what the tests use to show that
NeuralStrategy decides on a live feed exactly as in a backtest. A real feed from a broker's
store (IB, Oanda) takes its place unchanged; see the README.
"""
from __future__ import annotations

import datetime as dt

import backtrader as bt
import pandas as pd

from .feeds import FrameFeed, timeframe_params


class LiveReplay(FrameFeed):
    params = (
        ("live_from", None),  # datetime.date of the first live bar; bars before it are the feed's history
        ("stall", 0),         # polls that find no new bar before each bar arrives
    )

    def islive(self):
        return True

    def start(self):
        super().start()
        live_from = self.p.live_from
        self._live_from = bt.date2num(dt.datetime.combine(live_from, dt.time())) if live_from else None
        self._waited = 0  # (a feed starts CONNECTED: backtrader sets that state itself, without a notification)

    def _load(self):
        if self._next < len(self._dates) and self._waited < self.p.stall:
            self._waited += 1
            return None  # nothing has arrived yet: cerebro asks again
        self._waited = 0
        if self._next < len(self._dates):
            live = self._live_from is None or self._dates[self._next] >= self._live_from
            self.put_notification(self.LIVE if live else self.DELAYED)
        return super()._load()


def live_replay(frame: pd.DataFrame, name: str = "data", live_from: dt.date | None = None,
                stall: int = 0) -> LiveReplay:
    """A live-like feed of `frame`'s bars: history before `live_from`, live from it on."""
    return LiveReplay(frame=frame, name=name, live_from=live_from, stall=stall, **timeframe_params(frame))
