"""Bracket outcomes used to train the risk net: by hand, and exactly as backtrader fills them."""
from __future__ import annotations

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from nt_backtrader.features import average_true_range
from nt_backtrader.training.brackets import bracket_returns

STOPS, TAKES = np.array([1.0]), np.array([1.5])  # one cell: stop 1 ATR, take 1.5 ATR


def outcome(opens, highs, lows, closes, direction=1):
    # Bar 0 decides at close 100 with ATR 2: long stop at 98, take at 103 (short: 102 / 97).
    # Bar 1 is the entry bar: filled at its open 100.5; the legs act from bar 2 on.
    o, h, low, c = (np.array([100.0, 100.5] + list(v)) for v in (opens, highs, lows, closes))
    h[1], low[1] = 110.0, 90.0  # the entry bar touches both levels: not yet active, no exit
    return bracket_returns(o, h, low, c, np.array([2.0] * len(o)), np.array([0]), STOPS, TAKES, len(opens),
                           direction)[0, 0]


def test_bracket_outcomes_by_hand():
    assert outcome([101, 102], [101.5, 103.5], [100, 101], [101, 103]) == \
        pytest.approx(103 / 100.5 - 1)  # take-profit on the second active bar
    assert outcome([100, 99], [100.5, 99.5], [99, 97.5], [99.5, 98]) == pytest.approx(98 / 100.5 - 1)  # stop
    assert outcome([100], [104], [97], [101]) == pytest.approx(98 / 100.5 - 1)  # both on one bar: the stop
    assert outcome([96], [97], [95], [96]) == pytest.approx(96 / 100.5 - 1)  # a gap through the stop: the open
    assert outcome([101, 101], [102, 102], [100, 100], [101, 101.5]) == \
        pytest.approx(101.5 / 100.5 - 1)  # neither: the close after `horizon` bars
    assert outcome([101], [101.5], [96.5], [97], direction=-1) == pytest.approx(1 - 97 / 100.5)  # a short's take


class OneBracket(bt.Strategy):
    params = (("row", 0), ("stop", 0.0), ("take", 0.0))

    def __init__(self):
        self.exit_price = None

    def next(self):
        if len(self) - 1 == self.p.row:
            self.buy_bracket(size=1, exectype=bt.Order.Market, stopprice=self.p.stop, limitprice=self.p.take)

    def notify_order(self, order):
        if order.status == order.Completed and order.issell():
            self.exit_price = order.executed.price


def test_outcomes_match_backtrader_fills(sp500):
    frame = sp500.loc["2008-06-01":"2009-06-30"]
    o, h, low, c = (frame[k].to_numpy() for k in ("open", "high", "low", "close"))
    atr = average_true_range(h, low, c)
    stops, takes = np.array([0.75, 1.5, 3.0]), np.array([1.0, 2.0, 4.5])
    rows = np.arange(30, 200, 17)
    expected = bracket_returns(o, h, low, c, atr, rows, stops, takes, horizon=40)
    checked = 0
    for i, row in enumerate(rows):
        for k in range(len(stops)):
            cerebro = bt.Cerebro(stdstats=False)
            cerebro.adddata(bt.feeds.PandasData(dataname=frame, openinterest=None))
            cerebro.addstrategy(OneBracket, row=int(row), stop=c[row] - stops[k] * atr[row],
                                take=c[row] + takes[k] * atr[row])
            (strategy,) = cerebro.run()
            if strategy.exit_price is None:
                continue
            exit_bar = frame.index.get_loc(pd.Timestamp(bt.num2date(strategy._orders[-1].executed.dt)))
            if exit_bar - row > 41:
                continue  # a time exit in training; this backtest has no horizon
            assert expected[i, k] == pytest.approx(strategy.exit_price / o[row + 1] - 1, abs=1e-12)
            checked += 1
    assert checked >= 15
