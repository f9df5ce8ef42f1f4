"""Trading tomorrow: `signal` is the backtest's decision, `update` chains into the walk-forward, a live
feed decides as a backtest does, the journal survives a restart, and a bundle refuses bars it was not
trained on."""
from __future__ import annotations

import json

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
import torch
from test_cli import run_cli, tiny_toml

from nt_backtrader.bundle import Bundle
from nt_backtrader.config import Config, override
from nt_backtrader.cycle import first_bundle, next_bundle
from nt_backtrader.data import load_ohlcv, load_universe
from nt_backtrader.errors import DataError
from nt_backtrader.next_decision import next_decisions
from nt_backtrader.plugin import DecisionJournal, NeuralSizer, NeuralStrategy, PnLFeedback, live_replay, run_backtest
from nt_backtrader.plugin.feeds import FrameFeed, configure_broker
from nt_backtrader.splits import split
from nt_backtrader.traders import NeuralTrader
from nt_backtrader.walkforward import walk_forward

from conftest import TINY, yahoo_csv

DECIDED = ["date", "asset", "action", "side", "fraction", "stop", "take", "wanted", "age", "blocked", "p_long"]
RULE_STATE = ["date", "asset", "wanted", "age", "blocked", "blocked_bars", "p_long", "p_short"]


def live_run(frames, bundle, live_from, journal=None, stall=1):
    """NeuralStrategy in a plain cerebro on live-like feeds, as a user's live script would set it up.
    `frames`: one frame (named sp500) or name -> frame; `stall`: empty polls before each bar, per feed."""
    cerebro = bt.Cerebro(stdstats=False)
    frames = frames if isinstance(frames, dict) else {"sp500": frames}
    stalls = stall if isinstance(stall, tuple) else (stall,) * len(frames)
    for (name, frame), wait in zip(frames.items(), stalls):
        cerebro.adddata(live_replay(frame, name, live_from=live_from, stall=wait))
    configure_broker(cerebro.broker, 100_000.0, 1.0, 1.0)
    cerebro.addstrategy(NeuralStrategy, bundle=bundle, journal=journal)
    cerebro.addanalyzer(PnLFeedback, _name="pnl")
    (strategy,) = cerebro.run()
    return strategy


def test_signal_is_the_backtests_decision_on_that_bar(sp500, tiny_bundle):
    frame = sp500.loc["2010-01-01":"2012-12-31"]
    warmup = tiny_bundle.warmup_bars
    backtest = run_backtest(frame, NeuralStrategy, {"bundle": tiny_bundle}, trade_from=frame.index[warmup].date())
    decisions = backtest.strategy.decision_table().set_index("date")
    later = decisions.index > frame.index[warmup + 120]
    entries = decisions.index[later & (decisions["action"] == "enter")]
    holds = decisions.index[later & (decisions["action"] == "hold")]
    assert len(entries) >= 2 and len(holds)
    checked = 0
    for day in [*entries[:2], holds[0]]:
        # the signal knows the data up to that bar only, and replays it from the backtest's first bar
        known = frame.loc[:day]
        table = next_decisions(tiny_bundle, {"sp500": known}, Config(), history=len(known) - warmup)
        assert len(table) == 1 and table["date"].iloc[0] == day
        mine, theirs = table.iloc[0], decisions.loc[day]
        for column in DECIDED[2:]:
            assert mine[column] == theirs[column] or (mine[column] != mine[column] and theirs[column] != theirs[column])
        if mine["action"] == "enter":  # the order the backtest sent on that bar: that size, those levels
            orders = backtest.orders[backtest.orders["date"] == day].set_index("type")
            assert orders.loc["Stop", "price"] == pytest.approx(mine["stop"])
            assert orders.loc["Limit", "price"] == pytest.approx(mine["take"])
            assert mine["side"] == np.sign(orders.loc["Market", "size"]) and mine["fraction"] > 0.05
        assert set(mine["votes"]) == set(tiny_bundle.ensemble.members.names)
        checked += 1
    assert checked == 3


def test_signal_decides_every_asset_of_a_universe_on_its_own_last_bar(sp500, tiny_bundle):
    universe = {"sp500": sp500.loc["2010-01-01":"2012-12-31"],
                "ended": load_ohlcv(dataset="nasdaq").loc["2009-01-01":"2012-06-29"]}  # its data stopped earlier
    table = next_decisions(tiny_bundle, universe, Config()).set_index("asset")
    assert list(table.index) == ["sp500", "ended"]
    assert [table.loc[name, "date"] for name in universe] == [frame.index[-1] for frame in universe.values()]
    assert table["p_long"].notna().all()


def test_live_feed_decides_as_the_backtest(sp500, tiny_bundle):
    frame = sp500.loc["2010-01-01":"2011-12-31"]
    live_from = frame.index[tiny_bundle.warmup_bars + 10].date()
    live = live_run(frame, tiny_bundle, live_from, stall=2)  # two empty polls before every bar
    backtest = run_backtest({"sp500": frame}, NeuralStrategy, {"bundle": tiny_bundle}, trade_from=live_from,
                            runonce=False)
    mine, theirs = live.decision_table(), backtest.strategy.decision_table()
    assert mine["date"].iloc[0].date() == live_from and len(mine) == len(theirs) > 200
    pd.testing.assert_frame_equal(mine, theirs, check_exact=True)
    fills = live.analyzers.pnl.get_analysis()["fills"]
    assert len(fills) >= 4
    pd.testing.assert_frame_equal(fills, backtest.fills, check_exact=True)


def test_live_feeds_whose_bars_arrive_apart_are_each_decided_once_a_bar(sp500, tiny_bundle):
    nasdaq = load_ohlcv(dataset="nasdaq")
    frames = {"sp500": sp500.loc["2010-01-01":"2011-06-30"], "nasdaq": nasdaq.loc["2010-01-01":"2011-06-30"]}
    live_from = frames["sp500"].index[tiny_bundle.warmup_bars + 5].date()
    live = live_run(frames, tiny_bundle, live_from, stall=(0, 2))  # nasdaq's bar comes two polls later
    backtest = run_backtest(frames, NeuralStrategy, {"bundle": tiny_bundle}, trade_from=live_from, runonce=False)
    mine = live.decision_table().sort_values(["date", "asset"]).reset_index(drop=True)
    theirs = backtest.strategy.decision_table().sort_values(["date", "asset"]).reset_index(drop=True)
    assert not mine.duplicated(["date", "asset"]).any()
    assert len(mine) == 2 * len(frames["sp500"].loc[pd.Timestamp(live_from):])
    columns = RULE_STATE + ["action", "side"]
    pd.testing.assert_frame_equal(mine[columns], theirs[columns], check_exact=True)
    assert (mine["action"] == "enter").sum() >= 2


def test_a_restart_goes_on_from_the_journal_and_writes_nothing_twice(tmp_path, sp500, tiny_bundle):
    frame = sp500.loc["2010-01-01":"2011-12-31"]
    live_from = frame.index[tiny_bundle.warmup_bars].date()
    whole = live_run(frame, tiny_bundle, live_from, journal=tmp_path / "whole.csv")
    journal = tmp_path / "restarted.csv"
    cut = tiny_bundle.warmup_bars + 200
    first = live_run(frame.iloc[:cut], tiny_bundle, live_from, journal=journal)  # the process dies after bar `cut`
    with open(journal, "a") as handle:
        handle.write("decision,2011-0")  # ... in the middle of an append
    states, account = DecisionJournal(journal).restart()  # the cut-off row is dropped
    assert states["sp500"]["date"] == frame.index[cut - 1].date()
    assert (account.peak, account.recent) == (first.account.peak, first.account.recent)  # the sizer's account
    # restarted: the feed sends its history again, up to the bar it stopped at, then goes live
    restarted = live_run(frame, tiny_bundle, frame.index[cut].date(), journal=journal)
    written = pd.read_csv(journal, parse_dates=["date"])
    decisions = written[written["kind"] == "decision"].reset_index(drop=True)
    assert not decisions.duplicated(["date", "asset"]).any()
    expected = pd.read_csv(tmp_path / "whole.csv", parse_dates=["date"])
    expected = expected[expected["kind"] == "decision"].reset_index(drop=True)
    pd.testing.assert_frame_equal(decisions[RULE_STATE], expected[RULE_STATE], check_dtype=False)
    assert restarted.decisions[0].date == frame.index[cut].date()
    assert restarted.feeds[restarted.datas[0]].wanted == whole.feeds[whole.datas[0]].wanted
    assert {"order", "fill"} <= set(written["kind"])  # the orders and fills are journaled too
    states = written.loc[written["kind"] == "status", "status"].tolist()  # and the feed's states, run by run
    assert states == ["DELAYED", "LIVE"] * 2


def test_a_chain_of_updates_is_the_walk_forward(tmp_path, sp500):
    config = override(Config(), **TINY)
    frame = sp500.loc["2004-01-01":].iloc[:635]  # three full test windows
    fitted = []

    class Recording(NeuralTrader):
        def fit(self, *args, **kwargs):
            params = super().fit(*args, **kwargs)
            fitted.append(params["bundle"])
            return params

    walk = walk_forward({"sp500": frame}, config, trader=Recording(config, "sp500"), progress=False)
    segments = split(len(frame), config.walkforward)
    assert len(segments) == 3
    bundle, _ = first_bundle({"sp500": frame.iloc[:segments[0].test_start]}, config, "sp500")
    chain, windows = [bundle], []
    for end in [s.test_start for s in segments[1:]] + [len(frame)]:
        bundle.save(tmp_path / "model.pt")  # every step goes through the file: it carries all the state
        bundle, info = next_bundle(Bundle.load(tmp_path / "model.pt"), {"sp500": frame.iloc[:end]}, source="sp500")
        chain.append(bundle)
        windows.append(info)
    # train + 3 updates against the walk-forward's 3 fits (the last update's bundle trades no window here)
    assert len(fitted) == len(segments) == len(chain) - 1 == len(windows)
    for mine, theirs in zip(chain, fitted):
        a, b = mine.to_payload(), theirs.to_payload()
        for kind in ("sizing", "risk"):
            assert a["state"][kind].keys() == b["state"][kind].keys() and a["state"][kind]
            assert all(torch.equal(a["state"][kind][k], b["state"][kind][k]) for k in a["state"][kind])
        assert len(a["state"]["timing"]) == len(b["state"]["timing"]) > 0
        assert all(torch.equal(x[k], y[k]) for x, y in zip(a["state"]["timing"], b["state"]["timing"]) for k in x)
        assert (mine.ensemble.weights, mine.spec) == (theirs.ensemble.weights, theirs.spec)
        trusts = [(bundle.entry_sizer.trust, bundle.bracket_levels.trust) for bundle in (mine, theirs)]
        assert trusts[0] == trusts[1]
    for info, seg in zip(windows, walk.history):
        assert (info["window_start"], info["window_end"]) == (seg["test_start"], seg["test_end"])
        in_window = walk.fills[(walk.fills["date"] >= seg["test_start"]) & (walk.fills["date"] <= seg["test_end"])]
        pd.testing.assert_frame_equal(info["fills"], in_window.reset_index(drop=True), check_exact=True)
        assert info["window_return"] == pytest.approx(seg["oos_return"], abs=1e-12)
    assert len(walk.fills) >= 2


def test_train_update_signal_from_the_command_line(tmp_path, capsys):
    config = tiny_toml(tmp_path / "tiny.toml")
    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    code, stdout, _ = run_cli(["train", "--start", "2004-01-01", "--end", "2005-12-31", "--config", config,
                               "--out", str(first)], capsys)
    assert code == 0 and "bundle:" in stdout
    code, stdout, _ = run_cli(["update", "--bundle", str(first), "--start", "2004-01-01", "--end", "2006-06-30",
                               "--out", str(second)], capsys)
    assert code == 0 and "traded 2006-01-03 .. 2006-06-30" in stdout and "trained segment 1" in stdout
    assert Bundle.load(second).meta["train_end"] < "2006-06-30"  # the purge gap, as in the walk-forward
    code, stdout, stderr = run_cli(["signal", "--bundle", str(second), "--start", "2004-01-01", "--end",
                                    "2006-06-30", "--json"], capsys)
    assert code == 0 and "sp500 (2006-06-30)" in stderr  # old data is named in a warning
    (row,) = json.loads(stdout)
    assert row["date"] == "2006-06-30" and row["side"] in ("long", "flat", "short")
    assert set(row["votes"]) == set(Bundle.load(second).ensemble.members.names)
    code, _, stderr = run_cli(["update", "--bundle", str(second), "--start", "2004-01-01", "--end", "2006-06-30",
                               "--out", str(tmp_path / "third.pt")], capsys)
    assert code == 2 and "no new bars since the bundle's last one (2006-06-30)" in stderr
    code, _, stderr = run_cli(["update", "--bundle", str(second), "--start", "2004-01-01", "--end", "2006-07-14",
                               "--out", str(tmp_path / "third.pt")], capsys)
    assert code == 2 and "9 new bars since the bundle's last one (2006-06-30)" in stderr and "at least 21" in stderr
    code, _, stderr = run_cli(["update", "--bundle", str(second), "--dataset", "nasdaq", "--start", "2004-01-01",
                               "--out", str(tmp_path / "third.pt")], capsys)
    assert code == 2 and "the bundle was trained on sp500" in stderr
    assert not (tmp_path / "third.pt").exists()


def test_refresh_downloads_a_cached_ticker_again(tmp_path, sp500, monkeypatch):
    from nt_backtrader import data

    def fake_download(symbol, cache):  # what yfinance would write, with the bars that came since
        yahoo_csv(cache, sp500.loc[:"2018-12-31"] if downloads else sp500.loc[:"2018-06-29"])
        downloads.append(symbol)

    downloads = []
    monkeypatch.setattr(data, "_download", fake_download)
    first = load_universe(tickers=("SPX",), cache_dir=str(tmp_path))["SPX"]
    cached = load_universe(tickers=("SPX",), cache_dir=str(tmp_path))["SPX"]
    refreshed = load_universe(tickers=("SPX",), cache_dir=str(tmp_path), refresh=True)["SPX"]
    assert downloads == ["SPX", "SPX"] and first.index[-1] == cached.index[-1] == pd.Timestamp("2018-06-29")
    assert refreshed.index[-1] == pd.Timestamp("2018-12-31")


class BuyOnce(bt.Strategy):
    def next(self):
        if len(self) == 60:
            self.buy()


def weekly(frame: pd.DataFrame) -> pd.DataFrame:
    rule = frame.resample("W-FRI")
    return pd.DataFrame({"open": rule["open"].first(), "high": rule["high"].max(), "low": rule["low"].min(),
                         "close": rule["close"].last(), "volume": rule["volume"].sum()}).dropna()


def test_a_bundle_refuses_bars_of_another_timeframe(tmp_path, sp500, tiny_bundle, capsys):
    frame = sp500.loc["2010-01-01":"2012-12-31"]
    with pytest.raises(DataError, match=r"'sp500' has 1 x Weeks bars, the bundle was trained on 1 x Days bars"):
        run_backtest({"sp500": weekly(frame)}, NeuralStrategy, {"bundle": tiny_bundle})
    # in a user's script: a backtrader resample, 5-minute bars, and the sizer alone in their strategy
    feeds = {"5 x Minutes": lambda c: c.adddata(FrameFeed(frame=frame, timeframe=bt.TimeFrame.Minutes, compression=5)),
             "1 x Weeks": lambda c: c.resampledata(FrameFeed(frame=frame), timeframe=bt.TimeFrame.Weeks)}
    for given, add in feeds.items():
        for strategy, kwargs, sizer in ((NeuralStrategy, {"bundle": tiny_bundle}, False), (BuyOnce, {}, True)):
            cerebro = bt.Cerebro(stdstats=False)
            add(cerebro)
            cerebro.addstrategy(strategy, **kwargs)
            if sizer:
                cerebro.addsizer(NeuralSizer, bundle=tiny_bundle)
            with pytest.raises(DataError, match=f"has {given} bars, the bundle was trained on 1 x Days bars"):
                cerebro.run()
    allowed = run_backtest({"sp500": weekly(frame)}, NeuralStrategy, {"bundle": tiny_bundle, "allow_timeframe": True})
    assert len(allowed.returns) > 100
    path = tmp_path / "weekly.csv"
    yahoo = weekly(frame).rename_axis("Date").rename(columns=str.title)
    yahoo.assign(**{"Adj Close": lambda f: f["Close"]}).to_csv(path)
    tiny_bundle.save(tmp_path / "model.pt")
    code, _, stderr = run_cli(["signal", "--bundle", str(tmp_path / "model.pt"), "--csv", str(path)], capsys)
    assert code == 2 and "1 x Weeks" in stderr and "--allow-timeframe" in stderr and "Traceback" not in stderr
