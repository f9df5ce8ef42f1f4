"""The drop-in pieces in a user's own backtrader script: NeuralSizer, with_risk_brackets, the bundle cache."""
from __future__ import annotations

import dataclasses
import gc
import warnings
import weakref

import backtrader as bt
import pytest

from nt_backtrader import NeuralSizer, with_risk_brackets
from nt_backtrader import bundle as bundle_module
from nt_backtrader.bundle import get_bundle
from nt_backtrader.errors import ConfigError
from nt_backtrader.plugin import NeuralStrategy


@pytest.fixture(scope="module")
def prices(sp500):
    """2010-2011: a year of warm-up, then a year to trade on."""
    return sp500.loc["2010":"2011"]


def respec(bundle, **changes):
    return dataclasses.replace(bundle, spec=dataclasses.replace(bundle.spec, **changes))


@pytest.fixture(scope="module")
def wide_bundle(tiny_bundle):
    """Shorts allowed, fixed legs 20 ATRs away: no leg fills within the few bars a test trades."""
    return respec(tiny_bundle, allow_short=True, use_risk=False, fixed_stop_atr=20.0, fixed_take_atr=20.0)


class Recorder(bt.Strategy):
    """Keeps every order it sent; `plan` maps a bar (counted from the bundle's warm-up) to an action."""

    params = (("warmup", 0), ("plan", None))

    def __init__(self):
        self.sent, self.seen, self.first_order_at = [], [], {}

    def notify_order(self, order):
        if order.status == order.Submitted:
            self.sent.append(order)

    def alive_legs(self, exectype) -> list:
        """The broker's own orders (a notification carries a copy, frozen at its status)."""
        return [o for o in self.broker.orders if o.alive() and o.exectype == exectype]

    def next(self):
        self.seen.append((len(self.data), self.position.size, self.alive_legs(bt.Order.Stop),
                          self.alive_legs(bt.Order.Limit), self.data.close[0]))
        action = (self.p.plan or {}).get(len(self.data) - self.p.warmup)
        if action is not None:
            action(self)


def run(strategy, frames: dict, sizer: dict | None = None, **params):
    """The user's script: named PandasData feeds, the strategy, optionally NeuralSizer; returns
    (the strategy, the warnings raised during the run)."""
    cerebro = bt.Cerebro(stdstats=False)
    for name, frame in frames.items():
        cerebro.adddata(bt.feeds.PandasData(dataname=frame, openinterest=None), name=name)
    if sizer is not None:
        cerebro.addsizer(NeuralSizer, **sizer)
    cerebro.addstrategy(strategy, **params)
    cerebro.broker.setcash(1e6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (done,) = cerebro.run()
    return done, [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)]


class BuyFromTheFirstBar(Recorder):
    """Asks the sizer for an entry on every feed at every bar until one goes out."""

    def next(self):
        for data in self.datas:
            if data._name not in self.first_order_at and self.buy(data=data) is not None:
                self.first_order_at[data._name] = len(data)


def test_sizer_warns_once_per_feed_in_its_warm_up_naming_the_bars_it_still_needs(prices, tiny_bundle):
    warmup = tiny_bundle.warmup_bars
    frames = {"early": prices, "late": prices.iloc[20:]}  # next() starts at late's first bar, early's 21st
    strategy, caught = run(BuyFromTheFirstBar, frames, sizer={"bundle": tiny_bundle})
    told = [text for text in caught if text.startswith("NeuralSizer")]
    assert len(told) == 2, told
    early, late = sorted(told)
    assert "early has 21 bars" in early and f"needs {warmup - 21} more bars" in early
    assert "late has 1 bars" in late and f"needs {warmup - 1} more bars" in late
    assert strategy.first_order_at == {"early": warmup, "late": warmup}  # sized from the warm-up's last bar on


def short_then_cover(strategy):
    strategy.sell(size=10) if not strategy.position else strategy.close()


def test_a_long_only_bundle_sends_short_entries_without_legs_and_says_so_once(prices, tiny_bundle):
    warmup = tiny_bundle.warmup_bars
    plan = {bar: short_then_cover for bar in range(0, 40, 5)}  # four shorts, each covered 5 bars later
    assert not tiny_bundle.spec.allow_short
    strategy, caught = run(with_risk_brackets(Recorder), {"spx": prices}, bundle=tiny_bundle, warmup=warmup, plan=plan)
    shorts = [o for o in strategy.sent if o.issell() and o.exectype == bt.Order.Market]
    assert len(shorts) == 4 and all(o.size == -10 for o in shorts)
    assert [o for o in strategy.sent if o.exectype != bt.Order.Market] == []
    told = [text for text in caught if "long-only" in text]
    assert len(told) == 1 and told[0].startswith("spx:"), caught
    # the same script with a bundle that learned shorts: each short gets its two legs
    allowed, caught = run(with_risk_brackets(Recorder), {"spx": prices}, bundle=respec(tiny_bundle, allow_short=True),
                          warmup=warmup, plan=plan)
    assert len([o for o in allowed.sent if o.exectype == bt.Order.Stop and o.isbuy()]) == 4
    assert not [text for text in caught if "long-only" in text]


def test_legs_guard_exactly_the_position_after_an_add_a_partial_reduce_and_a_reversal(prices, wide_bundle):
    warmup = wide_bundle.warmup_bars
    plan = {0: lambda s: s.buy(size=10), 3: lambda s: s.buy(size=5), 6: lambda s: s.sell(size=8),
            9: lambda s: s.sell(size=17), 12: lambda s: s.close()}
    strategy, _ = run(with_risk_brackets(Recorder), {"spx": prices}, bundle=wide_bundle, warmup=warmup, plan=plan)
    seen = {bar - warmup: (held, stops, takes, close) for bar, held, stops, takes, close in strategy.seen}
    assert [seen[bar][0] for bar in (1, 4, 7, 10, 13)] == [10, 15, 7, -10, 0]  # each order filled on the next bar
    for bar, (held, stops, takes, _) in seen.items():  # at every bar: legs for exactly what is held
        assert sum(-o.size for o in stops) == held == sum(-o.size for o in takes), bar
        assert len(stops) == len(takes) == (1 if held else 0), bar
    (entry_stop,), (entry_take,) = seen[1][1], seen[1][2]
    for bar in (4, 7):  # an add and a partial reduce keep the entry's levels
        assert (seen[bar][1][0].price, seen[bar][2][0].price) == (entry_stop.price, entry_take.price)
    (short_stop,), (short_take,) = seen[10][1], seen[10][2]
    decided_at = seen[9][3]  # the reversal's levels: its decision bar's close, 20 ATRs each way
    assert short_stop.isbuy() and short_stop.price > 1.05 * decided_at and short_take.price < 0.95 * decided_at
    assert short_stop.price - decided_at == pytest.approx(decided_at - short_take.price)


def test_bundle_is_the_brackets_parameter_and_risk_bundle_still_works_with_a_warning(prices, wide_bundle):
    warmup = wide_bundle.warmup_bars
    plan = {0: lambda s: s.buy(size=10), 5: lambda s: s.close()}
    runs = {name: run(with_risk_brackets(Recorder), {"spx": prices}, warmup=warmup, plan=plan, **{name: wide_bundle})
            for name in ("bundle", "risk_bundle")}
    orders = {name: [(o.ordtype, o.exectype, o.size, o.price) for o in strategy.sent]
              for name, (strategy, _) in runs.items()}
    assert len(orders["bundle"]) == 4 and orders["risk_bundle"] == orders["bundle"]  # entry, two legs, exit
    assert runs["bundle"][1] == []
    (told,) = runs["risk_bundle"][1]
    assert "risk_bundle= is deprecated" in told and "bundle=" in told


def test_the_bundle_cache_keeps_only_the_last_files_used(tmp_path, tiny_bundle):
    bound = bundle_module.BUNDLE_CACHE_SIZE
    paths = [tiny_bundle.save(tmp_path / f"model_{i}.pt") for i in range(bound + 1)]
    loaded = [weakref.ref(get_bundle(path)) for path in paths]
    gc.collect()
    assert [ref() is not None for ref in loaded] == [False] + [True] * bound  # the first one used went
    assert get_bundle(paths[-1]) is loaded[-1]()  # the last ones are not loaded again


def test_both_bundle_names_are_refused_before_the_first_bar_and_neural_strategy_refuses_the_old_one(prices,
                                                                                                    wide_bundle):
    never = {}  # a strategy that never orders still hears of both names, before any bar
    with pytest.raises(ConfigError, match="both bundle= and risk_bundle="):
        run(with_risk_brackets(Recorder), {"spx": prices}, warmup=wide_bundle.warmup_bars, plan=never,
            bundle=wide_bundle, risk_bundle=wide_bundle)
    with pytest.raises(ConfigError, match="NeuralStrategy takes its bundle as bundle="):
        run(NeuralStrategy, {"spx": prices}, risk_bundle=wide_bundle)
