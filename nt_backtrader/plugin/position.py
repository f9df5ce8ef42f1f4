"""PositionStrategy: every feed rebalanced to the deep-momentum core's volatility-scaled target weight.

Per feed a PositionTarget indicator asks the bundle (a PositionBundle) for the signed target weight
(position value / equity) decided on each bar's close and, unless its spec trades without brackets,
the stop-loss and take-profit distances in ATRs. On each bar the strategy:
- holds a feed flat on the side a stop or take-profit leg just closed, for the spec's `cooldown`
  bars counted from the bar the leg filled on (the re-entry wait of NeuralStrategy: decisions.waited);
- scales the book's targets (each feed's latest) down together when their sum of |weights| exceeds
  max_gross (the smallest of the feeds' bundles' when they differ);
- sends a feed to its target (a market order, filled at the next open) only when the target is further
  than the spec's `buffer` from the weight held: small changes are not worth their costs;
- sells before it buys, purchases cut to the cash there is (TargetStrategy, whose rebalance_band and
  asset_weight this strategy replaces by the buffer and the bundle's weights).

Stop and take-profit legs (native Stop and Limit orders, one cancelling the other) guard the whole
position held, at the close of the bar its side was entered on -/+ the distances x that bar's 14-bar
ATR (RiskBrackets' levels: kept through adds and reductions, new on a reversal). Every rebalancing
order cancels the legs held and sends those of the position it makes (see `rebalance`). Legs that a
fill leaves unfit (a refused order) are sent again at the end of that bar's next(), never from the
notification: backtrader's broker cannot cancel an order before the next bar has accepted it, so legs
sent there would survive that bar's rebalance and close the position a second time.

    cerebro.addstrategy(PositionStrategy, bundle="position.pt")
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping

import backtrader as bt
import numpy as np

from ..decisions import levels_from, waited
from ..errors import CheckpointError
from ..features import ATR_WINDOW, average_true_range
from ..position_bundle import PositionBundle
from .base import SegmentStrategy, TargetStrategy
from .brackets import RiskBrackets, levels_for_side
from .feeds import asset_name
from .signal import _ohlcv, check_feed


def position_bundle_for(bundle, asset: str, loaded: dict):
    """The position bundle of feed `asset`: `bundle` itself, the PositionBundle at its path, or the asset's
    own from a {feed name: either} mapping; `loaded` (path -> bundle) reads each file once per run."""
    if isinstance(bundle, Mapping):
        if asset not in bundle:
            raise CheckpointError(f"no position bundle for feed '{asset}': the bundles given are for "
                                  f"{', '.join(bundle)}; name the feeds after them or pass one bundle")
        bundle = bundle[asset]
    if bundle is None:
        raise CheckpointError("no bundle given: pass bundle='position.pt' (a PositionBundle's file) or the bundle")
    if not isinstance(bundle, (str, os.PathLike)):
        return bundle  # a PositionBundle, or anything with its attributes
    path = os.path.realpath(bundle)
    if path not in loaded:
        loaded[path] = PositionBundle.load(path)
    return loaded[path]


def decision_lines(bundle, open_, high, low, close, asset: str) -> tuple[np.ndarray, ...]:
    """(n,) each: target weight, stop and take-profit distances in ATRs (NaN without brackets), 14-bar ATR."""
    weight, stop, take = bundle.decisions(open_, high, low, close, asset=asset)
    return weight, stop, take, average_true_range(high, low, close)


class PositionTarget(bt.Indicator):
    """The bundle's decision on each bar of one feed: the target weight, the bracket distances, the ATR.

    With runonce (backtrader's default) the whole feed is computed in one batched pass in `once`; bar by
    bar, `next` computes the current bar from the trailing bars the bundle and the ATR need. Either way
    each value comes from its bar and the ones before only, and not from where the feed starts. A live
    feed's history (backfill, sent before it reports LIVE) is never traded on: its lines stay NaN.
    """

    lines = ("weight", "stop_atr", "take_atr", "atr")
    params = (("bundle", None), ("allow_timeframe", False))  # True: trade bars of another timeframe anyway

    def __init__(self):
        check_feed(self.p.bundle, self.data, self.p.allow_timeframe)
        self.addminperiod(self.p.bundle.warmup_bars)
        self.bars = max(self.p.bundle.warmup_bars, ATR_WINDOW + 1)  # trailing bars one value needs, ATR included
        self._values = None  # the batched lines, once computed

    def _lines(self):
        return self.lines.weight, self.lines.stop_atr, self.lines.take_atr, self.lines.atr

    def _decide(self, arrays) -> tuple[np.ndarray, ...]:
        open_, high, low, close, _ = arrays
        return decision_lines(self.p.bundle, open_, high, low, close, asset_name(self.data))

    def once(self, start, end):
        # backtrader calls once() twice (the first full bar, then the rest): compute the buffer once
        if self._values is None:
            self._values = self._decide(_ohlcv(self.data, end=self.buflen()))
        for line, values in zip(self._lines(), self._values):
            line.array[start:end] = type(line.array)(line.array.typecode, values[start:end])

    def next(self):
        if SegmentStrategy.backfill(self.data):
            return
        values = self._decide(_ohlcv(self.data, size=min(len(self.data), self.bars)))
        for line, value in zip(self._lines(), values):
            line[0] = value[-1]


class PositionStrategy(RiskBrackets, TargetStrategy):
    """Each feed held at its PositionBundle's target weight, past a buffer, with stop and take-profit legs.

    bundle: a PositionBundle, the path of one, or {feed name: either}; trade_from, carry, cash_buffer as
    SegmentStrategy's; allow_timeframe: trade feeds of other bars than the bundle's anyway.
    """

    def __init__(self):
        super().__init__()
        loaded = {}
        self.bundles = {data: position_bundle_for(self.p.bundle, asset_name(data), loaded) for data in self.datas}
        self.targets = {data: PositionTarget(data, bundle=self.bundles[data], allow_timeframe=self.p.allow_timeframe)
                        for data in self.datas}
        self.max_gross = min(bundle.spec.max_gross for bundle in self.bundles.values())
        self.book = {}  # data -> its latest target after the re-entry wait, before the gross limit
        self.waits = {data: (0, 0) for data in self.datas}  # data -> (side a leg closed, bars left to wait)
        self._scale = 1.0     # this bar's gross limit on every target
        self._value = 0.0     # this bar's account value
        self._refit = set()   # feeds whose legs may no longer fit their position: fitted at the end of next()
        self._resumed = []    # (order ref, send, args) of what a previous run had out, sent in that order

    # --- the decision ----------------------------------------------------------------------------
    def next(self):
        if not self.warming_up():
            for data in self.datas:
                if self.ready(data):
                    self.book[data] = self.waited_target(data)
            gross = sum(abs(weight) for weight in self.book.values() if weight == weight)
            self._scale = self.max_gross / gross if gross > self.max_gross else 1.0
            self._value = self.broker.getvalue()
        super().next()
        for data in self.datas:
            if data in self._refit and self.orders[data] is None:  # a rebalance on its way brings its own legs
                self._refit.discard(data)
                super().fit_legs(data)

    def waited_target(self, data) -> float:
        """The feed's target on this bar within its spec's limits, 0 on a side a leg closed while the wait lasts."""
        spec = self.bundles[data].spec
        weight = float(np.clip(self.targets[data].weight[0], 0.0 if spec.long_only else -spec.max_weight,
                               spec.max_weight))
        if weight != weight:
            return weight
        side = (weight > 0) - (weight < 0)
        self.waits[data] = waited(*self.waits[data], side)
        return 0.0 if side and side == self.waits[data][0] else weight

    def target(self, data) -> float:
        return self.book.get(data, math.nan) * self._scale

    def weight_of(self, data) -> float:
        return 1.0  # the bundle's weights are shares of the whole book already

    def moved(self, data, target: float) -> bool:
        return abs(target - self.held_weight(data)) > self.bundles[data].spec.buffer

    def account_value(self) -> float:
        return self._value  # read once per bar in next(), for every feed

    # --- orders and their legs -------------------------------------------------------------------
    def buy(self, data=None, size=None, **kwargs):
        """TargetStrategy's orders (a feed and a size) go through `rebalance`; any other as RiskBrackets routes it."""
        return self.rebalance(data, size) if not kwargs else super().buy(data, size, **kwargs)

    def sell(self, data=None, size=None, **kwargs):
        return self.rebalance(data, -size) if not kwargs else super().sell(data, size, **kwargs)

    def rebalance(self, data, delta: float):
        """A market order of `delta` (TargetStrategy's, sent or resumed) with the legs of the position it makes.

        The legs held are cancelled. On the same side the new legs go out after the order, at that side's
        levels: the broker fills the order at the open first, so they guard the new size from its fill on.
        A new side's legs go out as the order's bracket children at levels decided now (the broker starts
        them on the bar after the fill): were the order refused, none would be left to open a position.
        """
        held = self.getposition(data).size
        after = held + delta  # the position once filled, as the broker will sum it
        side, was = (after > 0) - (after < 0), (held > 0) - (held < 0)
        kept = self.held_levels(data)
        self.cancel_brackets(data)
        send = bt.Strategy.buy if delta > 0 else bt.Strategy.sell
        levels = (kept if side == was else self.entry_levels(data, side)) if side else None
        if side and side != was and (levels is None or not all(math.isfinite(level) for level in levels)):
            # a new side with one leg or none (a risk net's cell): no bracket, which takes two children, and no
            # levels of an earlier side left to guard it; fit_legs sends a single leg at the end of the fill
            # bar's next(), first checked on the bar after the fill, as a bracket's child is
            order = send(self, data=data, size=abs(delta))
            self._bracket_book()[data] = {"parent": None, "stop": None, "take": None, "levels": levels,
                                          "reversal": kept}
            return order
        if levels is None:
            return send(self, data=data, size=abs(delta))
        if side == was:
            order = send(self, data=data, size=abs(delta))
            self._send_legs(data, after, levels)
            return order
        order = send(self, data=data, size=abs(delta), transmit=False)
        self._send_legs(data, after, levels, order)
        self._bracket_book()[data]["reversal"] = kept  # the legs the position gets back if the order is refused
        return order

    def held_levels(self, data) -> tuple[float, float] | None:
        """(stop, take-profit) prices of the side held, set when that side was entered; None when flat or unguarded."""
        book, held = self._bracket_book().get(data), self.getposition(data).size
        if not held or book is None:
            return None
        return levels_for_side(book, (held > 0) - (held < 0))

    def entry_levels(self, data, direction: int) -> tuple[float, float] | None:
        """(stop, take-profit) prices of a side opened on this bar; None without brackets or history. An
        infinite level: that leg is left out (a risk net's cell with one leg)."""
        target = self.targets[data]
        levels = levels_from(data.close[0], target.atr[0], target.stop_atr[0], target.take_atr[0], direction)
        return levels if any(math.isfinite(level) for level in levels) and not any(map(math.isnan, levels)) \
            else None

    def fit_legs(self, data) -> None:
        self._refit.add(data)  # at the end of next(), after this bar's rebalancing (see the module's docstring)

    def on_bracket_exit(self, data, kind: str, direction: int) -> None:
        self.waits[data] = (direction, self.bundles[data].spec.cooldown)

    # --- walk-forward carry ----------------------------------------------------------------------
    def start(self):
        super().start()
        for data in self.datas:
            held = self.carried(data)
            if held:
                self.waits[data] = (held["blocked"], held["blocked_bars"])
                if held["target"] is not None:
                    self.book[data] = held["target"]

    def asset_carry(self, data) -> dict:
        order, book = self.orders[data], self._bracket_book().get(data)
        pending = order is not None and order.alive()
        levels = self.held_levels(data)
        # legs sent with a pending order come back with it; a leg left out leaves the other
        stop = next((leg for leg in (book["stop"], book["take"]) if leg is not None), None) \
            if book and not pending else None
        target = self.book.get(data)
        blocked, blocked_bars = self.waits[data]
        return super().asset_carry(data) | {
            "target": target if target is not None and target == target else None,
            "blocked": blocked, "blocked_bars": blocked_bars,
            "order_ref": order.ref if pending else None,
            "levels": list(levels) if levels else None,
            "legs_ref": stop.ref if stop is not None and stop.alive() else None}

    def resume(self, data, held: dict) -> None:
        """The held side's levels back in place; what was out on this feed queued for maybe_resume."""
        if held.get("levels") and held["size"]:
            levels = tuple(held["levels"])
            self._bracket_book()[data] = {"parent": None, "stop": None, "take": None, "levels": levels}
            if held["legs_ref"] is not None:
                self._resumed.append((held["legs_ref"], self.guard, (data, held["size"], levels)))
        if held.get("order_ref") is not None:
            self._resumed.append((held["order_ref"], super().resume, (data, held)))

    def maybe_resume(self) -> None:
        # The broker checks the cash of orders and fills them in the order they were sent, across feeds.
        super().maybe_resume()
        for _, send, args in sorted(self._resumed, key=lambda item: item[0]):
            send(*args)
        self._resumed.clear()
