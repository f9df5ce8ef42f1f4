"""backtrader per segment: costs by hand, warm-up, carried state, and buy-and-hold against pandas."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nt_backtrader import metrics
from nt_backtrader.config import Config, override
from nt_backtrader.plugin import BuyHold, SmaCross, Tsmom, run_backtest
from nt_backtrader.traders import make_trader
from nt_backtrader.trades import round_trips
from nt_backtrader.walkforward import walk_forward


def bars(closes, opens=None) -> pd.DataFrame:
    closes = np.asarray(closes, dtype=float)
    opens = closes if opens is None else np.asarray(opens, dtype=float)
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, closes) + 1, "low": np.minimum(opens, closes) - 1,
                         "close": closes, "volume": 1e6}, index=pd.bdate_range("2020-01-01", periods=len(closes)))


def test_commission_and_slippage_by_hand():
    frame = bars([100, 102, 104, 103, 105], opens=[100, 100, 103, 104, 104])
    result = run_backtest(frame, BuyHold, {"cash_buffer": 0.01}, cash=10_000, commission_bps=10, slippage_bps=10)
    # Decided on bar 0's close (100): 9900 / 100 = 99 units; filled at bar 1's open 100 slipped 10 bp up.
    fill = result.fills.iloc[0]
    assert fill["size"] == pytest.approx(99) and fill["price"] == pytest.approx(100.1)
    assert fill["commission"] == pytest.approx(99 * 100.1 * 0.001)
    cash = 10_000 - 99 * 100.1 - 99 * 100.1 * 0.001
    assert result.equity.iloc[1] == pytest.approx(cash + 99 * 102)
    assert result.returns.iloc[0] == 0.0  # flat on the bar it decided
    assert result.returns.iloc[1] == pytest.approx((cash + 99 * 102) / 10_000 - 1)
    assert result.returns.iloc[4] == pytest.approx((cash + 99 * 105) / (cash + 99 * 103) - 1)


def test_warmup_bars_feed_indicators_but_never_trade(sp500):
    frame = sp500.loc["2006-01-01":"2008-12-31"]
    first = pd.Timestamp("2007-06-01")
    result = run_backtest(frame, SmaCross, trade_from=first.date())
    assert result.returns.index[0] == first and len(result.orders) > 0
    assert (result.orders["date"] >= first).all() and (result.fills["date"] > first).all()
    # Warm-up gave the SMA200 its history, so it traded on the first day; without warm-up it cannot.
    assert result.orders["date"].iloc[0] == first
    alone = run_backtest(frame.loc[first:], SmaCross)
    assert (alone.orders["date"] >= frame.loc[first:].index[199]).all()


@pytest.mark.parametrize("name", ["buy_hold", "sma_cross", "tsmom"])
def test_walk_forward_of_many_runs_equals_one_continuous_run(sp500_short, small_config, name):
    """Carried cash, position and pending orders make the segment seams invisible."""
    config = override(small_config, **{"strategy.name": name, "strategy.allow_short": name == "tsmom"})
    wf = walk_forward(sp500_short, config, progress=False)
    assert len(wf.history) >= 18
    trader = make_trader(config)
    start = wf.returns.index[0]
    warm = sp500_short.index.get_loc(start) - trader.warmup_bars
    one = run_backtest(sp500_short.iloc[max(0, warm):], trader.strategy, trader.params, trade_from=start.date())
    pd.testing.assert_series_equal(wf.returns, one.returns, check_exact=True, check_freq=False)
    pd.testing.assert_frame_equal(wf.fills, one.fills, check_exact=True)
    assert len(one.fills) > (0 if name == "buy_hold" else 10)


def test_buy_hold_matches_an_independent_pandas_computation(sp500):
    result = walk_forward(sp500, override(Config(), **{"strategy.name": "buy_hold"}), progress=False)
    assert result.returns.index[0].year == 2004 and len(result.returns) >= 14 * 252  # after 5 years of training
    close = sp500["close"]
    reference = (close / close.shift(1) - 1).loc[result.returns.index]

    def sharpe(r):
        return r.mean() / r.std() * np.sqrt(252)

    def max_dd(r):
        wealth = pd.concat([pd.Series([1.0]), (1 + r).cumprod()], ignore_index=True)
        return (wealth / wealth.cummax() - 1).min()

    assert abs(sharpe(result.returns) - sharpe(reference)) < 0.01
    assert abs(max_dd(result.returns) - max_dd(reference)) < 0.01
    assert metrics.sharpe(result.returns) == pytest.approx(sharpe(result.returns), abs=1e-12)
    assert metrics.max_drawdown(result.returns) == pytest.approx(max_dd(result.returns), abs=1e-12)


def test_round_trips_by_hand():
    d = pd.bdate_range("2020-01-01", periods=8)
    fills = pd.DataFrame({"date": [d[0], d[2], d[3], d[4], d[6]], "size": [10.0, 10.0, -20.0, -5.0, 10.0],
                          "price": [100.0, 110.0, 120.0, 120.0, 100.0], "commission": [1.0, 1.0, 2.0, 0.5, 1.0]})
    trades = round_trips(fills, d)
    assert len(trades) == 2  # the last fill flips short -> long: a new long stays open
    long, short = trades.iloc[0], trades.iloc[1]
    assert (long["direction"], long["entry_price"], long["pnl"], long["pnlcomm"], long["bars_held"]) == \
        ("long", 105.0, 300.0, 296.0, 3)
    assert (short["direction"], short["pnl"], short["pnlcomm"], short["bars_held"]) == ("short", 100.0, 99.0, 2)


def test_a_position_carried_in_is_closed_not_reversed():
    d = pd.bdate_range("2020-01-01", periods=5)
    fills = pd.DataFrame({"date": [d[1], d[3]], "size": [-10.0, 4.0], "price": [110.0, 100.0],
                          "commission": [1.0, 0.5]})
    trades = round_trips(fills, d, opening=(d[0], 10.0, 100.0))
    assert list(trades["direction"]) == ["long"] and trades["pnl"].iloc[0] == 100.0  # the 4 bought stay open
    assert round_trips(fills, d).empty  # without the opening: a phantom short, still open


def test_tsmom_targets_volatility(sp500):
    result = run_backtest(sp500.loc["2003":"2006"], Tsmom, {"vol_target": 0.10, "max_leverage": 5.0,
                                                          "rebalance_band": 0.0, "cash_buffer": 0.0})
    realised = result.returns.iloc[300:].std() * np.sqrt(252)
    assert 0.07 < realised < 0.13  # the 2004-2006 market ran at about 10% vol
