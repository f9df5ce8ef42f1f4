"""The neural strategy in backtrader: no lookahead, bar-by-bar = batched, seams invisible, drop-in."""
from __future__ import annotations

import dataclasses
import json
import runpy
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from nt_backtrader import NeuralSizer, NeuralStrategy, with_risk_brackets
from nt_backtrader.config import override
from nt_backtrader.plugin import run_backtest
from nt_backtrader.plugin.sizer import SizingRecord
from nt_backtrader.splits import split
from nt_backtrader.traders import make_trader
from nt_backtrader.walkforward import walk_forward

from conftest import FUTURES, assert_same_up_to, yahoo_csv

EXAMPLES = Path(__file__).resolve().parents[1] / "strategies"


@pytest.fixture(scope="module")
def active_bundle(tiny_bundle):
    """The tiny bundle with a 0.5 threshold and no hysteresis, so that it trades often."""
    return dataclasses.replace(tiny_bundle, spec=dataclasses.replace(tiny_bundle.spec, enter=0.5, exit=0.5))


# What a segment's fit produced: it saw the train window only, so no change after T may touch it.
FIT_KEYS = ("lr", "batch_size", "dropout", "weight_decay", "candidates", "timing_epochs", "timing_val_loss",
            "timing_val_accuracy", "tuner_val_rewards", "weights", "val_sharpes", "sizing_trust", "risk_trust",
            "sizing_epochs", "risk_epochs", "risk_val_stop_atr", "risk_val_take_atr", "train_exposure")


class Recorder:
    """The config's trader, keeping what each test window's NeuralStrategy decided and its sizer logged."""

    def __init__(self, config):
        self.inner = make_trader(config)
        self.decisions, self.sizing = [], []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def feedback(self, segment, result, windows):
        self.decisions.append(result.strategy.decision_table())
        logged = result.strategy.getsizer().log
        # the run's record of its entries (what the trader learns from) is the sizer's log, value for value
        assert list(result.sizing.itertuples(index=False, name="SizingRecord")) == logged
        self.sizing.extend(logged)
        return self.inner.feedback(segment, result, windows)

    def decision_table(self) -> pd.DataFrame:
        return pd.concat(self.decisions, ignore_index=True)

    def sizing_table(self) -> pd.DataFrame:
        table = pd.DataFrame(self.sizing, columns=SizingRecord._fields)
        table["date"] = pd.to_datetime(table["date"])
        return table


def recorded_walk_forward(frame, config):
    recorder = Recorder(config)
    return walk_forward(frame, config, trader=recorder, progress=False), recorder


def up_to(table: pd.DataFrame, cut: pd.Timestamp) -> pd.DataFrame:
    return table[table["date"] <= cut].reset_index(drop=True)


def test_changed_future_after_t_changes_nothing_up_to_t_training_included(sp500_short, tiny_config):
    """Features, scaler, training data, networks, predictions, decisions and sizing of every segment up to T.

    Two cuts in a test window that enters most, with thresholds that trade often (the rest
    of the rule is chosen on each validation tail): the bar before its first bar (its fit, which
    saw bars before T only, must not change) and a bar inside it on which the strategy enters, with
    entries before it (a prediction or a size that read later bars would move it). A fit also reads
    the feedback of the windows before it, so it is compared only when those ended by T too.
    """
    config = override(tiny_config, **{"timing.bands": [0.0]})
    clean, clean_log = recorded_walk_forward(sp500_short, config)
    assert set(FIT_KEYS) <= set().union(*(h.keys() for h in clean.history))
    decisions, sizing = clean_log.decision_table(), clean_log.sizing_table()
    entries = decisions.loc[decisions["action"] == "enter", "date"]

    def entries_in(h):
        return entries[entries.between(pd.Timestamp(h["test_start"]), pd.Timestamp(h["test_end"]))]

    # of the windows that enter most, the latest: the more before T to compare, the less after it to recompute
    busiest = max(clean.history[:-1], key=lambda h: (len(entries_in(h)), h["segment"]))
    before_window = sp500_short.index[sp500_short.index.get_loc(pd.Timestamp(busiest["test_start"])) - 1]
    entry = entries_in(busiest).iloc[-1]
    assert len(entries_in(busiest)) >= 2  # the same nets entered before it too: those orders must not move
    # on that bar the strategy was flat and sent an entry, sized by the sizer
    opened = clean.orders[(clean.orders["date"] == entry) & (clean.orders["type"] == "Market")]
    assert len(opened) == 1 and opened["size"].iloc[0] > 0
    assert decisions.loc[decisions["date"] == entry, "side"].tolist() == [1]
    assert sizing["date"].eq(entry).sum() == 1
    for cut in (before_window, entry):
        for future in FUTURES.values():
            changed, changed_log = recorded_walk_forward(future(sp500_short, cut), config)
            assert_same_up_to(clean, changed, cut)
            pd.testing.assert_frame_equal(up_to(decisions, cut), up_to(changed_log.decision_table(), cut),
                                          check_exact=True)
            pd.testing.assert_frame_equal(up_to(sizing, cut), up_to(changed_log.sizing_table(), cut),
                                          check_exact=True)
            seen_until = pd.Timestamp.min  # a fit also reads the feedback of every window before it
            for mine, theirs in zip(clean.history, changed.history):
                if max(pd.Timestamp(mine["train_end"]), seen_until) > cut:
                    break
                seen_until = pd.Timestamp(mine["test_end"])
                keys = mine.keys() if pd.Timestamp(mine["test_end"]) <= cut else FIT_KEYS
                assert json.dumps({k: mine.get(k) for k in keys}) == json.dumps({k: theirs.get(k) for k in keys})


def test_bar_by_bar_equals_batched_predictions(sp500, active_bundle):
    frame = sp500.loc["2009-01-01":"2011-12-31"]
    batched = run_backtest(frame, NeuralStrategy, {"bundle": active_bundle})
    stepwise = run_backtest(frame, NeuralStrategy, {"bundle": active_bundle}, runonce=False)
    assert len(batched.orders) >= 10
    pd.testing.assert_series_equal(batched.orders["date"], stepwise.orders["date"])
    np.testing.assert_allclose(batched.orders["size"], stepwise.orders["size"], rtol=1e-6)
    np.testing.assert_allclose(batched.returns, stepwise.returns, atol=1e-9)


def test_segments_with_carried_state_equal_one_continuous_run(sp500, active_bundle):
    """Position, bracket legs, pending orders and the sizer's account record cross the seams."""
    frame = sp500.loc["2009-01-01":"2013-12-31"]
    warmup = active_bundle.warmup_bars
    start = frame.index[warmup]
    one = run_backtest(frame, NeuralStrategy, {"bundle": active_bundle}, trade_from=start.date())
    cuts = [warmup, 400, 530, 700, 901, len(frame)]
    carry, parts = None, []
    for a, b in zip(cuts, cuts[1:]):
        part = run_backtest(frame.iloc[a - warmup:b], NeuralStrategy, {"bundle": active_bundle},
                            trade_from=frame.index[a].date(), carry=carry)
        carry, parts = part.carry, parts + [part]
    assert any(p.carry["assets"]["data"]["levels"] for p in parts[:-1])  # some seam was crossed with live brackets
    pd.testing.assert_series_equal(pd.concat([p.returns for p in parts]), one.returns, check_exact=True)
    pd.testing.assert_frame_equal(pd.concat([p.fills for p in parts], ignore_index=True), one.fills,
                                  check_exact=True)
    assert {"Stop", "Limit"} <= set(one.fills["type"])  # brackets did close positions


def share(part: int, whole: int) -> float:
    return part / whole if whole else float("nan")


def test_walk_forward_history_reports_the_networks(sp500_short, tiny_config):
    """Each row's numbers recomputed from what its segment left: dates, returns, entries, exits, accuracy."""
    result, recorder = recorded_walk_forward(sp500_short, tiny_config)
    dates, train, horizon = sp500_short.index, tiny_config.train, tiny_config.timing.horizon
    day = lambda i: str(dates[i].date())  # noqa: E731
    assert [(h["train_start"], h["train_end"], h["test_start"], h["test_end"]) for h in result.history] == [
        (day(s.train_start), day(s.train_end - 1), day(s.test_start), day(s.test_end - 1))
        for s in split(len(dates), tiny_config.walkforward)]
    # an exit is a fill that leaves its asset flat: a stop (Stop), a take-profit (Limit) or the signal (Market)
    fills = result.fills.assign(after=result.fills.groupby("asset")["size"].cumsum())
    exits = fills[np.isclose(fills["after"], 0.0, rtol=0.0, atol=1e-9)]
    for row, decided in zip(result.history, recorder.decisions):
        start, end = pd.Timestamp(row["test_start"]), pd.Timestamp(row["test_end"])
        assert row["sized_return"] == pytest.approx(np.prod(1.0 + result.returns[start:end]) - 1.0, rel=1e-12)
        assert 1 <= row["timing_epochs"] <= (train.first_epochs if row["segment"] == 0 else train.max_epochs)
        assert 0.0 <= row["timing_val_accuracy"] <= 1.0
        # long only, so the side taken is p_long against 0.5; right when the close `horizon` bars on agrees
        assert (decided["p_short"] == 0.0).all()
        close = sp500_short["close"].loc[decided["date"]].to_numpy()
        side = np.sign(decided["p_long"].to_numpy()[:-horizon] - 0.5)
        assert row["timing_accuracy"] == pytest.approx(np.mean(side == np.sign(close[horizon:] - close[:-horizon])))
        entered = decided[decided["action"] == "enter"]
        assert row["n_entries"] == len(entered)
        # what the entries ordered is the sizer's fraction less the cash buffer
        assert row["mean_fraction"] * (1.0 - tiny_config.backtest.cash_buffer) == pytest.approx(
            entered["fraction"].mean(), rel=1e-9, nan_ok=True)
        types = exits.loc[exits["date"].between(start, end), "type"]
        assert row["stop_hit_rate"] == pytest.approx(share((types == "Stop").sum(), len(types)), nan_ok=True)
        assert row["take_hit_rate"] == pytest.approx(share((types == "Limit").sum(), len(types)), nan_ok=True)
    assert sum(h["n_entries"] for h in result.history) >= 5 and exits["type"].nunique() >= 2  # not all NaN


def test_sma_example_gets_the_neural_sizer_and_brackets(tmp_path, sp500, active_bundle, capsys):
    bundle = str(active_bundle.save(tmp_path / "model.pt"))
    csv = str(tmp_path / "spx.csv")
    yahoo_csv(tmp_path / "spx.csv", sp500.loc["2010":"2014"])
    strategy = runpy.run_path(str(EXAMPLES / "sma_with_neural_sizer.py"))["main"](["--bundle", bundle, "--csv", csv])
    sizer = strategy.getsizer()
    fractions = [record.fraction for record in sizer.log]
    assert isinstance(sizer, NeuralSizer) and len(fractions) >= 5 and len(set(fractions)) > 1
    assert all(0 < f <= active_bundle.spec.max_fraction for f in fractions)
    assert strategy.bracket_exits["stop"] + strategy.bracket_exits["take"] >= 1
    assert "Sharpe" in capsys.readouterr().out


def test_neural_example_runs_from_a_saved_bundle_on_a_generic_csv(tmp_path, sp500, active_bundle):
    bundle = str(active_bundle.save(tmp_path / "model.pt"))
    frame = sp500.loc["2010":"2012"]
    csv = tmp_path / "prices.csv"
    frame.reset_index().rename(columns=str.title).to_csv(csv, index=False, date_format="%Y-%m-%d")
    strategy, report = runpy.run_path(str(EXAMPLES / "neural_from_bundle.py"))["main"](
        ["--bundle", bundle, "--csv", str(csv)])
    direct = run_backtest(frame, NeuralStrategy, {"bundle": active_bundle}, commission_bps=1.0, slippage_bps=0.0)
    assert len(report["orders"]) >= 5
    np.testing.assert_array_equal(report["orders"]["date"], direct.orders["date"])  # same decisions, any feed


class LongOnlySma(bt.Strategy):
    """A third-party strategy: enters and exits on crossovers, knows nothing of brackets."""

    def __init__(self):
        self.cross = bt.ind.CrossOver(bt.ind.SMA(period=10), bt.ind.SMA(period=30))
        self.sizes, self.own_exits = [], 0

    def next(self):
        self.sizes.append(self.position.size)
        if not self.position and self.cross > 0:
            self.buy(size=10)
        elif self.position and self.cross < 0:
            self.own_exits += 1  # while the legs are live: they must go first
            self.close()


def test_brackets_never_turn_a_long_only_strategy_short(sp500, active_bundle):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=sp500.loc["2007":"2012"], openinterest=None))
    cerebro.addstrategy(with_risk_brackets(LongOnlySma), risk_bundle=active_bundle)
    cerebro.broker.setcash(1e6)
    (strategy,) = cerebro.run()
    exits = strategy.bracket_exits
    assert exits["stop"] >= 1 and exits["take"] >= 1 and strategy.own_exits >= 5
    assert min(strategy.sizes) == 0 and max(strategy.sizes) == 10
