"""PositionStrategy in backtrader: targets past a buffer, the gross limit, long-only, the legs and their wait,
no lookahead, walk-forward seams, runonce against bar by bar; with a fake bundle whose rule is checked by hand."""
from __future__ import annotations

from dataclasses import replace

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from nt_backtrader import momentum
from nt_backtrader.data import load_ohlcv
from nt_backtrader.errors import CheckpointError
from nt_backtrader.features import average_true_range
from nt_backtrader.networks.position import PositionEnsemble, PositionNet
from nt_backtrader.plugin import PositionStrategy, run_backtest
from nt_backtrader.plugin.feeds import asset_name
from nt_backtrader.position_bundle import PositionBundle, PositionSpec

from conftest import FUTURES, assert_same_up_to

MEAN_BARS = 20
CASH_BUFFER = 0.01  # SegmentStrategy's default: targets are met net of it


def above_mean(close: np.ndarray) -> np.ndarray:
    """+1 where the close is above its 20-bar mean, else -1 (NaN before 20 bars)."""
    out = np.full(len(close), np.nan)
    if len(close) >= MEAN_BARS:
        tail = close[MEAN_BARS - 1:]
        out[MEAN_BARS - 1:] = np.where(tail > sliding_window_view(close, MEAN_BARS).mean(axis=1), 1.0, -1.0)
    return out


class FakeBundle:
    """The PositionBundle interface with a rule to check by hand: size x above_mean(close), or a constant
    size; brackets at the spec's fixed ATRs. Unlike a PositionBundle it applies none of the spec's limits."""

    timeframe = ("Days", 1)
    meta: dict = {}
    warmup_bars = MEAN_BARS

    def __init__(self, spec: PositionSpec, size: float = 0.5, constant: bool = False):
        self.spec, self.size, self.constant = spec, size, constant

    def target_weights(self, open_, high, low, close, asset=None):
        rule = above_mean(close)
        return self.size * (np.where(np.isnan(rule), np.nan, 1.0) if self.constant else rule)

    def bracket_atr(self, open_, high, low, close, asset=None):
        ready = ~np.isnan(above_mean(close)) & (self.spec.risk != "none")
        return np.where(ready, self.spec.fixed_stop_atr, np.nan), np.where(ready, self.spec.fixed_take_atr, np.nan)

    def decisions(self, open_, high, low, close, asset=None):
        return (self.target_weights(open_, high, low, close), *self.bracket_atr(open_, high, low, close))


SPEC = PositionSpec(risk="none")  # max_gross 1.0: two feeds at 0.5 fit


@pytest.fixture(scope="module")
def pair(sp500_short) -> dict[str, pd.DataFrame]:
    """Two indices on one calendar, 2004-2009."""
    nasdaq = load_ohlcv(dataset="nasdaq").loc[sp500_short.index[0]:sp500_short.index[-1]]
    return {"sp500": sp500_short, "nasdaq": nasdaq}


class Recorded(PositionStrategy):
    """PositionStrategy keeping, at the end of each trading bar, per feed: the position, the close, the account
    value, the target, the order on its way (signed size, 0 if none) and the sizes of the live legs."""

    def start(self):
        super().start()
        self.log = []

    def next(self):
        super().next()
        if self.warming_up():
            return
        live = [o for o in list(self.broker.pending) + list(self.broker.submitted) if o.alive()]
        for data in self.datas:
            order = self.orders[data]
            legs = sorted(o.size for o in live if o.data is data and o.exectype in (bt.Order.Stop, bt.Order.Limit))
            self.log.append({"date": pd.Timestamp(self.datetime.date(0)), "asset": asset_name(data),
                             "held": self.getposition(data).size, "close": data.close[0],
                             "value": self.broker.getvalue(), "target": self.target(data),
                             "order": order.size if order is not None and order.alive() else 0.0, "legs": legs})


def recorded(frames, bundle, **kwargs) -> tuple:
    """The run and its log from the first bar with a target on."""
    result = run_backtest(frames, Recorded, {"bundle": bundle}, **kwargs)
    log = pd.DataFrame(result.strategy.log)
    return result, log[log["target"].notna()].reset_index(drop=True)


def filled_weights(log: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """For each order sent (but the last bar's): the weight its fill made, measured as the target was (at the
    decision's close and account value, net of the cash buffer), and that target."""
    after = log.groupby("asset")["held"].shift(-1)  # filled at the next open
    sent = log[(log["order"] != 0) & after.notna()]
    return after[sent.index] * sent["close"] / (sent["value"] * (1 - CASH_BUFFER)), sent["target"]


def test_each_order_meets_its_target_and_small_changes_wait_for_the_buffer(sp500_short):
    close = sp500_short["close"].to_numpy()
    sides = above_mean(close)[MEAN_BARS - 1:]
    for buffer, expected in ((0.0, len(sides)), (0.2, 1 + int((np.diff(sides) != 0).sum()))):
        result, log = recorded(sp500_short, FakeBundle(replace(SPEC, buffer=buffer)))
        # buffer 0: every bar drifts off its target and is traded back (1,492 orders); 0.2: only the rule's
        # flips, 0.5 to -0.5 and back (180)
        assert len(result.orders) == expected
        assert (log["target"].abs() == 0.5).all()
        np.testing.assert_allclose(*filled_weights(log), rtol=1e-9)
        kept = log[log["order"] == 0]
        held_weight = kept["held"] * kept["close"] / (kept["value"] * (1 - CASH_BUFFER))
        assert (abs(kept["target"] - held_weight) <= buffer + 1e-12).all()


def test_the_gross_limit_scales_the_whole_book_down_together(pair):
    frames = {name: frame.iloc[:600] for name, frame in pair.items()}
    for size, each in ((0.8, 0.5), (0.45, 0.45)):
        result, log = recorded(frames, FakeBundle(SPEC, size=size, constant=True))
        assert (log["target"] == each).all()  # 0.8 + 0.8 > 1.0: both scaled by 1.0 / 1.6; 0.45 + 0.45 fits
        made, _ = filled_weights(log)
        assert len(made) == 2 * (600 - MEAN_BARS)  # buffer 0: every bar but the last, two feeds
        np.testing.assert_allclose(made, each, rtol=1e-9)
        held = result.weights.iloc[MEAN_BARS:]  # at each close, a day's move away from the last order
        assert held.mean().to_numpy() == pytest.approx([each * (1 - CASH_BUFFER)] * 2, abs=0.003)


def test_a_long_only_spec_never_shorts_whatever_the_bundle_says(pair):
    spec = replace(SPEC, long_only=True, risk="atr", fixed_stop_atr=1.0, buffer=0.05)
    result, log = recorded(pair, FakeBundle(spec))  # the fake says -0.5 below the mean
    assert (log["held"] >= 0).all() and (log["target"] >= 0).all()
    assert (result.weights >= 0).all().all()
    assert (log["target"] == 0).mean() > 0.2 and (log["held"] > 0).mean() > 0.3  # flat below the mean, long above
    assert (result.fills["type"] == "Stop").sum() >= 5


def test_the_legs_always_close_the_position_held_and_never_more(pair):
    spec = replace(SPEC, risk="atr", fixed_stop_atr=1.0, fixed_take_atr=3.0, buffer=0.05, cooldown=3)
    result, log = recorded(pair, FakeBundle(spec))
    # at every close, the legs (a Stop and a Limit, one cancelling the other) close exactly the position held
    # once the order on its way has filled; none when flat
    after = log["held"] + log["order"]
    assert all(legs == ([-size, -size] if size else []) for legs, size in zip(log["legs"], after))
    assert (log["legs"].str.len() == 2).mean() > 0.9
    fills = result.fills
    legs = fills[fills["type"].isin(["Stop", "Limit"])]
    assert (legs["type"] == "Stop").sum() >= 20 and (legs["type"] == "Limit").sum() >= 5
    # a leg closes the whole position, never more: flat at that close
    closed = log.set_index(["date", "asset"]).loc[list(zip(legs["date"], legs["asset"])), "held"]
    assert (closed == 0).all()
    # the first entry's levels: its close -/+ 1 and 3 ATRs of that bar
    frame = pair["sp500"]
    first = result.orders[(result.orders["asset"] == "sp500")].iloc[:3]
    row = frame.index.get_loc(first["date"].iloc[0])
    atr = average_true_range(*(frame[c].to_numpy() for c in ("high", "low", "close")))[row]
    close = frame["close"].iloc[row]
    side = np.sign(first["size"].iloc[0])
    assert list(first["type"]) == ["Market", "Stop", "Limit"]
    assert list(first["price"].iloc[1:]) == pytest.approx([close - side * atr, close + side * 3 * atr], rel=1e-12)


def test_after_a_stop_the_side_comes_back_cooldown_bars_later(sp500_short):
    """A constant long target and a stop at 0.5 ATR: each stop fill at bar i is followed by the re-entry's fill
    at bar i + cooldown (flat at the closes of i .. i + cooldown - 1); a cooldown of 0 re-enters at once (i + 1)."""
    index = sp500_short.index
    for cooldown, later in ((3, 3), (0, 1)):
        spec = replace(SPEC, risk="atr", fixed_stop_atr=0.5, fixed_take_atr=100.0, buffer=0.05, cooldown=cooldown)
        result, log = recorded(sp500_short, FakeBundle(spec, constant=True))
        fills = result.fills
        stops = index.get_indexer(fills.loc[fills["type"] == "Stop", "date"])
        entries = index.get_indexer(fills["date"])
        assert len(stops) >= 10  # the stop stays where the side was entered: hit soon after an entry, or not
        held = log.set_index("date")["held"]
        for stop in stops[stops + later < len(index)]:
            assert entries[entries > stop].min() == stop + later
            assert (held[index[stop:stop + later]] == 0).all()


def test_a_changed_future_changes_no_order_or_fill_up_to_t(pair):
    """Prices halved, or doubled, after T: the rule's bar after T is short in one, long in the other, so a
    one-bar peek would show in one of them."""
    spec = replace(SPEC, risk="atr", fixed_stop_atr=1.0, buffer=0.05, cooldown=3)
    clean = run_backtest(pair, PositionStrategy, {"bundle": FakeBundle(spec)})
    cut = pd.Timestamp("2008-10-10")  # the crash: stops, flips and cooldowns on both sides of T
    for future in (FUTURES["halved"], FUTURES["doubled"]):
        changed = {name: future(frame, cut) for name, frame in pair.items()}
        assert_same_up_to(clean, run_backtest(changed, PositionStrategy, {"bundle": FakeBundle(spec)}), cut)


def test_segments_with_carried_state_equal_one_continuous_run(pair):
    """Positions, orders on their way, legs, waits and the book's targets cross the seams."""
    spec = replace(SPEC, risk="atr", fixed_stop_atr=1.0, fixed_take_atr=2.0, buffer=0.02, cooldown=4, max_gross=0.8)
    bundle, warmup = FakeBundle(spec), 25
    index = pair["sp500"].index
    one = run_backtest(pair, PositionStrategy, {"bundle": bundle}, trade_from=index[warmup].date())
    # 286, 403 and 512 come after bars on which sp500 bought while nasdaq sold: resumed orders go out in the
    # order they were sent (sales first), or the cash is summed in another order
    cuts = [warmup, 211, 286, 403, 512, 700, 901, 1032, 1200, len(index)]
    carry, parts = None, []
    for a, b in zip(cuts, cuts[1:]):
        frames = {name: frame.iloc[a - warmup:b] for name, frame in pair.items()}
        part = run_backtest(frames, PositionStrategy, {"bundle": bundle}, trade_from=index[a].date(), carry=carry)
        carry, parts = part.carry, parts + [part]
    seams = [asset for part in parts[:-1] for asset in part.carry["assets"].values()]
    assert any(s["legs_ref"] for s in seams) and any(s["order_ref"] for s in seams)
    pd.testing.assert_series_equal(pd.concat([p.returns for p in parts]), one.returns, check_exact=True)
    pd.testing.assert_frame_equal(pd.concat([p.fills for p in parts], ignore_index=True), one.fills,
                                  check_exact=True)
    assert {"Stop", "Limit"} <= set(one.fills["type"])


class Streamed(bt.Cerebro):
    """Cerebro loading each bar as it goes (preload off, which turns runonce off too)."""

    params = (("preload", False),)


@pytest.mark.parametrize("cerebro", ["runonce", "preload"])
def test_bar_by_bar_gives_the_batched_orders_and_fills(pair, monkeypatch, cerebro):
    spec = replace(SPEC, risk="atr", fixed_stop_atr=1.0, buffer=0.05, cooldown=3)
    frames = {name: frame.iloc[:500] for name, frame in pair.items()}
    batched = run_backtest(frames, PositionStrategy, {"bundle": FakeBundle(spec)})
    if cerebro == "preload":
        monkeypatch.setattr(bt, "Cerebro", Streamed)
    stepwise = run_backtest(frames, PositionStrategy, {"bundle": FakeBundle(spec)}, runonce=False)
    assert len(batched.fills) > 50
    pd.testing.assert_frame_equal(batched.orders, stepwise.orders, check_exact=True)
    pd.testing.assert_frame_equal(batched.fills, stepwise.fills, check_exact=True)


def test_a_saved_position_bundle_trades_by_path_and_a_missing_feed_is_named(tmp_path, pair):
    torch.manual_seed(0)
    net = PositionNet(len(momentum.INPUTS), hidden=4, heads=2, dropout=0.0)
    bundle = PositionBundle(PositionSpec(length=5, buffer=0.05), PositionEnsemble([net], [0.0], [0]), book_scale=0.5)
    path = bundle.save(tmp_path / "position.pt")
    by_path = run_backtest(pair, PositionStrategy, {"bundle": {"sp500": str(path), "nasdaq": path}})
    given = run_backtest(pair, PositionStrategy, {"bundle": bundle})
    assert len(given.fills) > 10
    pd.testing.assert_frame_equal(by_path.fills, given.fills, check_exact=True)
    with pytest.raises(CheckpointError, match="no position bundle for feed 'nasdaq'"):
        run_backtest(pair, PositionStrategy, {"bundle": {"sp500": bundle}})
