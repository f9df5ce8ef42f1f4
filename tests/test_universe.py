"""A universe of assets: no leak across assets, every feed traded on its own calendar, numbers by hand.

The seam tests hold three fixed bugs: flat feeds at a seam summed in another order (the equity's
last bit), an order decided on a window's last bar missing from the orders table, and purchases
refused for cash bar after bar once another feed had drifted above its weight.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from nt_backtrader import NeuralSizer, NeuralStrategy, PnLFeedback, with_risk_brackets
from nt_backtrader.config import Config, override
from nt_backtrader.data import load_ohlcv
from nt_backtrader.features import compute_features
from nt_backtrader.plugin import TargetStrategy, Tsmom, run_backtest
from nt_backtrader.report import benchmark_returns, write_report
from nt_backtrader.traders import arrays_of, make_trader
from nt_backtrader.training.samples import prepare
from nt_backtrader.training.trainer import portfolio_scale
from nt_backtrader.walkforward import walk_forward

from conftest import FUTURES, TINY, assert_same_up_to, yahoo_csv

VOL = 8  # the column of compute_features that the sizer reads as the asset's volatility


@pytest.fixture(scope="module")
def nasdaq() -> pd.DataFrame:
    return load_ohlcv(dataset="nasdaq")


@pytest.fixture(scope="module")
def pair(sp500, nasdaq) -> dict[str, pd.DataFrame]:
    """2004-2008 of both indices: a bull market and the crash, on the same calendar."""
    return {"sp500": sp500.loc["2004":"2008"], "nasdaq": nasdaq.loc["2004":"2008"]}


@pytest.fixture(scope="module")
def holey(sp500, nasdaq) -> dict[str, pd.DataFrame]:
    """nasdaq first (datas[0]), starting mid-2005 and missing every 7th bar; sp500 complete."""
    late = nasdaq.loc["2005-06-01":"2008-12-31"]
    return {"nasdaq": late.drop(late.index[3::7]), "sp500": sp500.loc["2004":"2008"]}


def classical_config(name: str, allow_short: bool = True) -> Config:
    return override(Config(), **{"strategy.name": name, "strategy.allow_short": allow_short,
                                 "walkforward.train_bars": 252, "walkforward.test_bars": 63})


@pytest.fixture(scope="module")
def holey_run(holey):
    config = classical_config("tsmom")
    return walk_forward(holey, config, progress=False), config


@pytest.fixture(scope="module")
def active_bundle(tiny_bundle):
    """The tiny bundle with a 0.5 threshold and no hysteresis, so that it trades often."""
    return dataclasses.replace(tiny_bundle, spec=dataclasses.replace(tiny_bundle.spec, enter=0.5, exit=0.5))


# --- 1. no leak across assets ------------------------------------------------------------------

@pytest.fixture(scope="module")
def pair_tsmom(pair):
    """The tsmom portfolio (shorts allowed) walked forward over both indices, quarterly test windows."""
    return walk_forward(pair, classical_config("tsmom"), progress=False)


@pytest.mark.parametrize("asset", ["sp500", "nasdaq"])
def test_changed_future_of_one_asset_leaves_every_asset_unchanged_up_to_t_classical(pair, pair_tsmom, asset):
    config, clean = classical_config("tsmom"), pair_tsmom
    cut = pd.Timestamp("2008-06-16")  # between an sp500 fill (06-13) and a nasdaq fill (06-18)
    assert any(pd.Timestamp(h["test_start"]) < cut < pd.Timestamp(h["test_end"]) for h in clean.history)
    assert {"sp500", "nasdaq"} <= set(clean.fills.loc[clean.fills["date"] <= cut, "asset"])
    for future in FUTURES.values():
        changed = walk_forward(pair | {asset: future(pair[asset], cut)}, config, progress=False)
        assert_same_up_to(clean, changed, cut)
        for table in ("weights", "contributions"):
            pd.testing.assert_frame_equal(getattr(clean, table).loc[:cut], getattr(changed, table).loc[:cut],
                                          check_exact=True)


@pytest.fixture(scope="module")
def neural_pair(sp500, nasdaq):
    """Two walk-forward segments of the tiny pooled networks on both indices (2004 to 2005-09)."""
    universe = {"sp500": sp500.loc["2004":"2005-09"], "nasdaq": nasdaq.loc["2004":"2005-09"]}
    # One torch thread: on a busy two-core machine two threads spin and the fits take ten times longer.
    active = {"timing.bands": [0.0], "timing.min_holds": [1], "timing.cooldowns": [5], "timing.bracket_widths": [1.0]}
    config = override(Config(), **TINY | active | {"train.threads": 1})  # a fixed rule that trades often
    return universe, config, walk_forward(universe, config, progress=False)


def test_changed_future_of_one_asset_leaves_every_asset_unchanged_up_to_t_neural(neural_pair):
    """Pooled training, per-asset scalers, the portfolio scale, signals, sizer and brackets of both feeds.

    T is a bar in the middle of the second test window with orders of both assets before it in
    that window: its fit (train window before T) and the first window's feedback must not move.
    """
    universe, config, clean = neural_pair
    assert len(clean.history) == 2
    window = clean.orders[clean.orders["date"] >= pd.Timestamp(clean.history[1]["test_start"])]
    cut = window["date"].iloc[len(window) // 2]
    assert {"sp500", "nasdaq"} <= set(window.loc[window["date"] <= cut, "asset"])
    assert {"Stop", "Limit"} & set(clean.fills["type"])  # brackets are part of what must not move
    for asset, future in (("nasdaq", "noise"), ("sp500", "halved"), ("nasdaq", "doubled")):
        changed = walk_forward(universe | {asset: FUTURES[future](universe[asset], cut)}, config, progress=False)
        assert_same_up_to(clean, changed, cut)
        pd.testing.assert_frame_equal(clean.weights.loc[:cut], changed.weights.loc[:cut], check_exact=True)
        assert json.dumps(clean.history[0], sort_keys=True) == json.dumps(changed.history[0], sort_keys=True)


# --- 2. a plain backtrader script with three feeds ----------------------------------------------

class ClockedOrders:
    """Keeps, for every buy or sell a strategy decides, the feed and the strategy's clock (not the
    feed's own last date, which is what an order is stamped with)."""

    def buy(self, data=None, size=None, **kwargs):
        self.decided.append((data._name, self.datetime.date(0)))
        return super().buy(data=data, size=size, **kwargs)

    def sell(self, data=None, size=None, **kwargs):
        self.decided.append((data._name, self.datetime.date(0)))
        return super().sell(data=data, size=size, **kwargs)


class RecordingNeural(ClockedOrders, NeuralStrategy):
    """NeuralStrategy that also keeps every order it sent (bracket legs included): feed, date, size, type."""

    def __init__(self):
        super().__init__()
        self.sent, self.decided = [], []

    def notify_order(self, order):
        if order.status == order.Submitted:
            self.sent.append((order.data._name, bt.num2date(order.created.dt).date(), order.created.size,
                              order.getordername()))
        super().notify_order(order)


@pytest.fixture(scope="module")
def three_feeds(sp500, nasdaq, tmp_path_factory) -> dict[str, tuple[pd.DataFrame, str]]:
    """sp500, nasdaq and sp500 without every 5th bar (its own calendar), 2010-2012, as Yahoo CSV files."""
    folder = tmp_path_factory.mktemp("yahoo")
    frames = {"sp500": sp500.loc["2010":"2012"], "nasdaq": nasdaq.loc["2010":"2012"]}
    frames["sp500_gaps"] = frames["sp500"].drop(frames["sp500"].index[4::5])
    out = {}
    for name, frame in frames.items():
        yahoo_csv(folder / f"{name}.csv", frame)
        out[name] = (frame, str(folder / f"{name}.csv"))
    return out


def run_script(feeds: dict, strategy, cerebro_sizer: dict | None = None, **params):
    """The plain script: one Yahoo CSV feed per file, the strategy, optionally cerebro.addsizer(NeuralSizer, ...)."""
    cerebro = bt.Cerebro(stdstats=False)
    for name, (_, path) in feeds.items():
        cerebro.adddata(bt.feeds.YahooFinanceCSVData(dataname=path, adjclose=True), name=name)
    if cerebro_sizer is not None:
        cerebro.addsizer(NeuralSizer, **cerebro_sizer)
    cerebro.addstrategy(strategy, **params)
    cerebro.broker.setcash(1_000_000)
    cerebro.broker.setcommission(commission=0.0001)
    (done,) = cerebro.run()
    return done


def test_neural_strategy_trades_three_yahoo_feeds_each_sized_from_its_own_bars(three_feeds, active_bundle):
    strategy = run_script(three_feeds, RecordingNeural, bundle=active_bundle)
    sent = pd.DataFrame(strategy.sent, columns=["asset", "date", "size", "type"])
    assert set(sent["asset"]) == set(three_feeds)
    decided = pd.DataFrame(strategy.decided, columns=["asset", "date"])
    for name, (frame, _) in three_feeds.items():
        assert set(decided.loc[decided["asset"] == name, "date"]) <= set(frame.index.date)  # its own bars only
    log = pd.DataFrame(strategy.getsizer().log)
    assert log.groupby("asset").size().min() >= 2, "every feed had entries sized"
    # The vol the sizer read is that feed's own 21-day volatility at the decision bar (the Yahoo
    # feed rounds prices to cents), never another feed's: on the same date the feeds' vols differ.
    vols = {name: pd.Series(compute_features(*(frame[c].round(2).to_numpy() for c in
                                               ("open", "high", "low", "close", "volume")))[:, VOL], frame.index)
            for name, (frame, _) in three_feeds.items()}
    for record in log.itertuples():
        day = pd.Timestamp(record.date)
        assert record.vol == pytest.approx(vols[record.asset][day], rel=1e-6)
        others = [v[day] for name, v in vols.items() if name != record.asset and day in v.index]
        assert all(abs(other - record.vol) > 1e-6 for other in others)
        assert record.twin == pytest.approx(active_bundle.spec.twin_fraction(record.vol)
                                            * active_bundle.entry_sizer.portfolio_scale, rel=1e-9)
    per_feed = log.groupby("asset")
    assert per_feed["fraction"].nunique().min() >= 2 and per_feed["vol"].mean().nunique() == 3


def test_retint_sizer_sends_whole_shares_on_every_feed(three_feeds, active_bundle):
    strategy = run_script(three_feeds, RecordingNeural, {"bundle": active_bundle, "retint": True},
                          bundle=active_bundle, sizer=False)
    sent = pd.DataFrame(strategy.sent, columns=["asset", "date", "size", "type"])
    assert isinstance(strategy.getsizer(), NeuralSizer) and strategy.getsizer().p.retint
    assert set(sent["asset"]) == set(three_feeds) and len(sent) >= 10
    assert (sent["size"] != 0).all() and all(float(size).is_integer() for size in sent["size"])


# --- 3. risk brackets on the feed that entered ----------------------------------------------------

class TwoFeedSma(bt.Strategy):
    """A third-party strategy on every feed: 10 units long while SMA10 > SMA30, knows nothing of brackets."""

    def __init__(self):
        self.cross = {d: bt.ind.CrossOver(bt.ind.SMA(d, period=10), bt.ind.SMA(d, period=30)) for d in self.datas}
        self.sent = []

    def next(self):
        for d in self.datas:
            if not self.getposition(d).size and self.cross[d][0] > 0:
                self.buy(data=d, size=10)
            elif self.getposition(d).size and self.cross[d][0] < 0:
                self.close(data=d)

    def notify_order(self, order):
        if order.status == order.Submitted:
            self.sent.append(order)


def test_brackets_go_out_on_the_feed_that_entered(sp500, nasdaq, active_bundle):
    cerebro = bt.Cerebro(stdstats=False)
    for name, frame in (("sp500", sp500), ("nasdaq", nasdaq)):
        cerebro.adddata(bt.feeds.PandasData(dataname=frame.loc["2010":"2012"], openinterest=None), name=name)
    cerebro.addstrategy(with_risk_brackets(TwoFeedSma), risk_bundle=active_bundle)
    cerebro.broker.setcash(1e6)
    (strategy,) = cerebro.run()
    entries = [o for o in strategy.sent if o.isbuy() and o.parent is None and o.exectype == bt.Order.Market]
    legs = [o for o in strategy.sent if o.parent is not None]
    assert {o.data._name for o in entries} == {"sp500", "nasdaq"}
    bracketed = 0
    for entry in entries:
        mine = [leg for leg in legs if leg.parent.ref == entry.ref]
        if not mine:
            continue  # decided before the risk net had enough history: a plain entry
        bracketed += 1
        stop, = [leg for leg in mine if leg.exectype == bt.Order.Stop]
        take, = [leg for leg in mine if leg.exectype == bt.Order.Limit]
        assert stop.data is entry.data and take.data is entry.data
        assert stop.issell() and take.issell() and abs(stop.size) == abs(take.size) == entry.size == 10
        frame = {"sp500": sp500, "nasdaq": nasdaq}[entry.data._name]
        close = frame.loc[bt.num2date(entry.created.dt), "close"]  # the decision bar's close of this feed
        assert 0.8 * close < stop.price < close < take.price < 1.25 * close
    assert bracketed >= 4 and {o.data._name for o in legs} == {"sp500", "nasdaq"}
    assert strategy.bracket_exits["stop"] + strategy.bracket_exits["take"] >= 1


# --- 4. the walk-forward of a portfolio equals one continuous run ---------------------------------

@pytest.mark.parametrize("name, allow_short, nasdaq_from", [
    ("tsmom", True, "2004"),
    ("sma_cross", True, "2004"),
    ("sma_cross", False, "2004"),  # flat feeds at a seam: the broker's positions keep the continuous run's order
])
def test_walk_forward_of_a_portfolio_equals_one_continuous_run(pair, name, allow_short, nasdaq_from):
    """Carried cash, per-asset positions and pending orders make the seams invisible; each asset of the
    continuous run starts with the warm-up bars the first window gives it (or its own first bar).

    Assets that start together: an asset that starts later joins the walk-forward at the first window
    start after its warm-up (tested below), which a continuous run, having no windows, cannot mirror."""
    universe = pair | {"nasdaq": pair["nasdaq"].loc[nasdaq_from:]}
    config = classical_config(name, allow_short)
    wf = walk_forward(universe, config, progress=False)
    trader = make_trader(config)
    start = wf.returns.index[0]
    frames = {asset: frame.iloc[max(0, frame.index.searchsorted(start) - trader.warmup_bars):]
              for asset, frame in universe.items()}
    one = run_backtest(frames, trader.strategy, trader.params, trade_from=start.date())
    assert len(wf.history) >= 15 and wf.fills.groupby("asset").size().min() >= 10
    pd.testing.assert_series_equal(wf.returns, one.returns, check_exact=True, check_freq=False)
    pd.testing.assert_frame_equal(wf.fills, one.fills, check_exact=True)


def test_walk_forward_orders_equal_those_of_one_continuous_run(pair, pair_tsmom):
    wf, trader = pair_tsmom, make_trader(classical_config("tsmom"))
    start = wf.returns.index[0]
    frames = {a: f.iloc[f.index.searchsorted(start) - trader.warmup_bars:] for a, f in pair.items()}
    one = run_backtest(frames, trader.strategy, trader.params, trade_from=start.date())
    pd.testing.assert_frame_equal(wf.fills, one.fills, check_exact=True)  # the same trading ...
    pd.testing.assert_frame_equal(wf.orders, one.orders, check_exact=True)  # ... so the same decisions


def test_a_feed_whose_rule_is_long_is_held_from_the_next_bar(sp500, nasdaq):
    universe = {"sp500": sp500.loc["2004":"2010"], "nasdaq": nasdaq.loc["2004":"2010"]}
    trader = make_trader(classical_config("sma_cross", allow_short=False))
    result = run_backtest(universe, trader.strategy, trader.params)
    for name, frame in universe.items():
        long = frame["close"] > frame["close"].rolling(200).mean()
        wanted = long & long.shift(1, fill_value=False)  # long at two closes: the first order has filled
        held = result.weights[name].shift(-1)[wanted].dropna()  # decided on the close, filled at the next open
        assert len(held) > 900
        assert (held > 0).all(), f"{name}: flat on {(held <= 0).sum()} bars after its rule was long"


# --- 5. each asset on its own calendar ------------------------------------------------------------

def test_an_asset_with_holes_that_starts_later_trades_only_on_its_own_dates(holey, holey_run):
    result, config = holey_run
    own = holey["nasdaq"]
    for name, frame in holey.items():
        for table in (result.orders, result.fills):
            dates = table.loc[table["asset"] == name, "date"]
            assert len(dates) and dates.isin(frame.index).all(), name
    warmup = make_trader(config).warmup_bars
    starts = pd.DatetimeIndex([h["test_start"] for h in result.history])
    join = starts[own.index.searchsorted(starts) >= warmup][0]
    first_order = result.orders.loc[result.orders["asset"] == "nasdaq", "date"].min()
    assert first_order == own.index[own.index.searchsorted(join)]  # on its first own bar of that window
    assert own.index.get_loc(first_order) >= warmup
    assert (result.orders.loc[result.orders["asset"] == "sp500", "date"] < join).any()
    first_fill = result.fills.loc[result.fills["asset"] == "nasdaq", "date"].min()
    assert (result.weights.loc[result.weights.index < first_fill, "nasdaq"] == 0.0).all()
    assert (result.weights.loc[result.weights.index >= first_fill, "nasdaq"] != 0.0).mean() > 0.9


class EveryThirdBar(ClockedOrders, TargetStrategy):
    """Wants 0.9 on every third bar of the run's clock, else 0.5: a call on a date a feed lacks would
    often find a new target there, and order."""

    def __init__(self):
        super().__init__()
        self.decided = []

    def target(self, data):
        return 0.9 if len(self) % 3 == 0 else 0.5


def test_a_feed_is_decided_on_only_at_its_own_bars(holey):
    result = run_backtest(holey, EveryThirdBar, trade_from=dt.date(2005, 1, 3))
    decided = pd.DataFrame(result.strategy.decided, columns=["asset", "date"]).astype({"date": "datetime64[ns]"})
    for name, frame in holey.items():
        dates = decided.loc[decided["asset"] == name, "date"]
        assert len(dates) > 300 and dates.isin(frame.index).all(), name
    assert len(decided) == len(result.orders)


def test_an_asset_is_valued_at_its_last_own_close_and_earns_nothing_on_dates_it_lacks(holey, holey_run):
    result, _ = holey_run
    own = holey["nasdaq"]
    fills = result.fills[result.fills["asset"] == "nasdaq"]
    position = fills.groupby("date")["size"].sum().cumsum().reindex(result.weights.index).ffill().fillna(0.0)
    held = position.abs() > 1e-9
    implied_close = result.weights["nasdaq"][held] * result.equity[held] / position[held]
    last_own_close = own["close"].reindex(implied_close.index, method="ffill")
    np.testing.assert_allclose(implied_close, last_own_close, rtol=1e-12)
    lacking = ~result.weights.index.isin(own.index) & (result.weights.index > own.index[0])
    assert lacking.sum() >= 30 and (held & lacking).sum() >= 20
    assert (result.contributions.loc[lacking, "nasdaq"] == 0.0).all()


# --- 6. numbers by hand ---------------------------------------------------------------------------

def test_contributions_add_up_to_the_daily_return(holey_run, neural_pair):
    for result in (holey_run[0], neural_pair[2]):
        assert list(result.contributions.columns) == list(result.weights.columns)
        pd.testing.assert_index_equal(result.contributions.index, result.returns.index)
        np.testing.assert_allclose(result.contributions.sum(axis=1), result.returns, rtol=0, atol=1e-12)


def test_per_asset_trades_match_the_trades_file(holey, holey_run, tmp_path):
    result, config = holey_run
    out = write_report(result, holey, config, tmp_path / "report", "holey", tearsheet=False)
    trades = pd.read_csv(out / "trades.csv")
    assets = pd.read_csv(out / "assets.csv", index_col="asset")
    counts = trades["asset"].value_counts().reindex(assets.index, fill_value=0)
    assert (counts > 0).all()
    assert (assets["n_trades"] == counts).all() and (result.per_asset()["n_trades"] == counts).all()
    assert assets["return"].sum() == pytest.approx(result.returns.sum(), abs=1e-12)


def scale_of(frames: dict[str, pd.DataFrame]) -> float:
    """The portfolio scale of these train windows, from the arrays the trainer hands it (dates included)."""
    pool = [prepare(name, arrays_of(frame), 0, int(0.8 * len(frame)), 16) for name, frame in frames.items()]
    return portfolio_scale([samples.arrays for samples in pool])


def random_walk(seed: int, dates: pd.DatetimeIndex) -> pd.DataFrame:
    close = 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.01, len(dates))))
    return pd.DataFrame({"open": close, "high": close * 1.005, "low": close * 0.995, "close": close,
                         "volume": 1e6}, index=dates)


def test_portfolio_scale_by_hand(sp500):
    """1 / (N sqrt(w'Cw)), w = 1/N: 1/2 for one asset twice, 1/sqrt(2 (1 + rho)) for two, never above 1/sqrt(N)."""
    frame = sp500.loc["2005":"2008"]
    assert scale_of({"a": frame}) == 1.0
    assert scale_of({"a": frame, "b": frame}) == pytest.approx(0.5, abs=1e-12)
    a, b = random_walk(1, frame.index), random_walk(2, frame.index)
    rho = np.corrcoef(*(np.diff(np.log(x["close"].to_numpy()[-756:])) for x in (a, b)))[0, 1]
    assert abs(rho) < 0.1
    scale = scale_of({"a": a, "b": b})
    assert scale == pytest.approx(1 / np.sqrt(2 * (1 + rho)), abs=1e-12)
    assert scale == pytest.approx(1 / np.sqrt(2), abs=0.05)
    mirror = frame.assign(**{c: 1e6 / frame[c] for c in ("open", "close")}, high=1e6 / frame["low"],
                          low=1e6 / frame["high"])
    assert scale_of({"a": frame, "b": mirror}) == pytest.approx(1 / np.sqrt(2), abs=1e-12)


def test_tsmom_on_two_copies_holds_half_the_single_asset_position(sp500):
    frame = sp500.loc["2004":"2008"]
    params = {"allow_short": True, "rebalance_band": 0.1}
    alone = run_backtest(frame, Tsmom, params)
    twice = run_backtest({"a": frame, "b": frame}, Tsmom, params)
    assert len(alone.fills) >= 10
    pd.testing.assert_series_equal(twice.weights["a"], twice.weights["b"], check_names=False)
    np.testing.assert_allclose(2 * twice.weights["a"], alone.weights["data"], rtol=1e-9, atol=1e-12)
    for name in ("a", "b"):
        mine = twice.fills[twice.fills["asset"] == name].reset_index(drop=True)
        assert list(mine["date"]) == list(alone.fills["date"])
        np.testing.assert_allclose(2 * mine["size"], alone.fills["size"], rtol=1e-9)
    np.testing.assert_allclose(twice.returns, alone.returns, rtol=0, atol=1e-12)


# --- 7. the equal-weight benchmark ----------------------------------------------------------------

def test_benchmark_is_the_mean_of_the_assets_close_to_close_returns_each_date(holey):
    """Each asset's move from its own previous close (across its holes); on a date an asset lacks, the other alone."""
    dates = holey["sp500"].index[300:]
    bench = benchmark_returns(holey, dates)
    n_assets = []
    for day in dates:
        moves = [frame["close"].iloc[i] / frame["close"].iloc[i - 1] - 1 for frame in holey.values()
                 if day in frame.index and (i := frame.index.get_loc(day)) > 0]
        n_assets.append(len(moves))
        assert bench[day] == pytest.approx(sum(moves) / len(moves), rel=1e-12, abs=1e-15), day
    assert n_assets.count(1) >= 100 and n_assets.count(2) >= 500


# --- 8. limits, unnamed feeds, training per asset ----------------------------------------------

def test_replayed_book_enters_within_the_limits_by_hand():
    """Two assets turn long on day 0 with fractions 0.8 and 0.7; day 1 earns 10% and 0%; then flat."""
    from nt_backtrader.training.limits import choose_limits, replay_book

    dates = pd.bdate_range("2020-01-01", periods=3)
    positions = pd.DataFrame({"a": [1, 1, 0], "b": [1, 1, 0]}, index=dates)
    fractions = pd.DataFrame({"a": [0.8, 0.8, 0.8], "b": [0.7, 0.7, 0.7]}, index=dates)
    returns = pd.DataFrame({"a": [0.1, 0.0, 0.0], "b": [0.0, 0.0, 0.0]}, index=dates)
    cells = np.array([[1.0, 1.0, 0.0], [0.5, 1.0, 0.0], [1.0, 0.6, 0.0]])
    book = replay_book(positions, fractions, returns, cells, cost=0.0)
    # a gets 0.8 and b what is left of gross 1 (0.2); a capped at 0.5 (b 0.5); gross 0.6 leaves a 0.6, b nothing
    np.testing.assert_allclose(book[:, 0], [0.08, 0.05, 0.06])
    np.testing.assert_allclose(book[:, 1:], 0.0)
    with_cost = replay_book(positions, fractions, returns, cells, cost=0.001)
    np.testing.assert_allclose(with_cost[:, 0], [0.08 - 0.001, 0.05 - 0.001, 0.06 - 0.0006])  # gross traded
    np.testing.assert_allclose(with_cost[:, 2], [-0.001, -0.001, -0.0006])  # the exits
    # every cell earns the same on the validation tail (day 1 on): the fixed limits win the tie
    chosen, info = choose_limits(positions, fractions, returns, dates[1], (1.0, 1.0, 0.0), 0.0)
    assert chosen == (1.0, 1.0, 0.0) and info["limits_val_sharpe"] == info["limits_fixed_val_sharpe"]


class BuyEveryFeedOnce(bt.Strategy):
    """Buys each feed on the same bar, sized by the cerebro's sizer."""

    def next(self):
        if len(self) == 500:  # every feed past the bundle's warm-up
            for data in self.datas:
                self.buy(data=data)


def test_entries_decided_on_one_bar_share_the_gross_limit(three_feeds, active_bundle):
    capped = dataclasses.replace(active_bundle, entry_sizer=dataclasses.replace(active_bundle.entry_sizer,
                                                                                limits=(1.0, 0.6, 0.0)))
    strategy = run_script(three_feeds, BuyEveryFeedOnce, cerebro_sizer={"bundle": capped})
    fractions = [record.fraction for record in strategy.getsizer().log]
    assert len(fractions) == 3 and fractions[0] > 0
    # each entry sees the ones before it as pending orders, each worth its fraction less the 1% cash buffer
    assert sum(fractions) <= 0.6 / (1 - 0.01) + 1e-9
    free = run_script(three_feeds, BuyEveryFeedOnce, cerebro_sizer={"bundle": active_bundle})
    assert sum(r.fraction for r in free.getsizer().log) > 0.7  # without the limit the three add up further


def test_unnamed_feeds_keep_their_trades_apart(sp500, nasdaq):
    class TwoTrades(bt.Strategy):
        def next(self):
            if len(self) == 5:
                self.buy(data=self.datas[0], size=10)
                self.buy(data=self.datas[1], size=5)
            elif len(self) == 10:
                self.close(data=self.datas[0])

    cerebro = bt.Cerebro(stdstats=False)
    for frame in (sp500.loc["2010-01":"2010-02"], nasdaq.loc["2010-01":"2010-02"]):
        cerebro.adddata(bt.feeds.PandasData(dataname=frame, openinterest=None))  # no name given
    cerebro.addstrategy(TwoTrades)
    cerebro.broker.setcash(1_000_000)
    cerebro.addanalyzer(PnLFeedback, _name="pnl")
    (done,) = cerebro.run()
    report = done.analyzers.pnl.get_analysis()
    assert list(report["weights"].columns) == ["data0", "data1"]
    assert list(report["trades"]["asset"]) == ["data0"] and report["trades"]["size"].iloc[0] == 10
    np.testing.assert_allclose(report["contributions"].sum(axis=1), report["returns"], atol=1e-12)


def test_training_per_asset_gives_each_feed_its_own_networks(neural_pair):
    universe, config, pooled = neural_pair
    per_asset = walk_forward(universe, override(config, **{"train.pooled": False}), progress=False)
    fits = per_asset.history[-1]["asset_fits"]
    assert set(fits) == set(universe) and set(per_asset.fills["asset"]) == set(universe)
    assert not per_asset.returns.equals(pooled.returns)
