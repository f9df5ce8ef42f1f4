"""RiskBrackets: the risk network's stop-loss and take-profit as native backtrader orders.

A mixin for any strategy, or `with_risk_brackets(TheirStrategy)` for one that cannot change:
every order that opens a position from flat goes out as a bracket (the entry as the parent,
a Stop and a Limit child, so the broker enforces the levels), and every order that reduces a
position first cancels its legs, so a strategy's own exit and a stop can never both fill.
Levels are set from the decision bar's close and ATR, in ATRs chosen by the risk network.
"""
from __future__ import annotations

import backtrader as bt

from ..bundle import bundle_for
from ..decisions import levels_from
from .feeds import asset_name
from .signal import check_feed, predict_current

OPENING_TYPES = (None, bt.Order.Market, bt.Order.Close, bt.Order.Limit)


class RiskBrackets(bt.Strategy):
    params = (("risk_bundle", None),      # a Bundle, the path of one, or {feed name: either}
              ("allow_timeframe", False))  # True: bracket feeds of other bars than the bundle's anyway

    def _bracket_book(self) -> dict:
        """data -> {"parent", "stop", "take", "levels"} of the bracket guarding that data's position."""
        if not hasattr(self, "_brackets"):
            self._brackets = {}
            self.bracket_exits = {"stop": 0, "take": 0}
        return self._brackets

    def risk_bundle(self, data):
        bundle = bundle_for(self.p.risk_bundle, asset_name(data))
        checked = self.__dict__.setdefault("_checked_feeds", set())
        if data not in checked:
            check_feed(bundle, data, self.p.allow_timeframe)
            checked.add(data)
        return bundle

    def bracket_levels(self, data, direction: int) -> tuple[float, float] | None:
        """(stop price, take price) for an entry decided on this bar; None without enough history."""
        signals = predict_current(self.risk_bundle(data), data)
        if signals is None:
            return None
        suffix = "" if direction > 0 else "_short"
        return levels_from(data.close[0], signals.atr[-1], getattr(signals, "stop_atr" + suffix)[-1],
                           getattr(signals, "take_atr" + suffix)[-1], direction)

    def on_bracket_exit(self, data, kind: str, direction: int) -> None:
        """Called when a stop ('stop') or take-profit ('take') leg closed a position."""

    # --- order routing ----------------------------------------------------------------------
    def buy(self, data=None, size=None, **kwargs):
        return self._route(True, data, size, kwargs)

    def sell(self, data=None, size=None, **kwargs):
        return self._route(False, data, size, kwargs)

    def _route(self, isbuy: bool, data, size, kwargs: dict, levels=None):
        data = data if data is not None else self.datas[0]
        send = super().buy if isbuy else super().sell
        held = self.getposition(data).size
        if held and (held > 0) != isbuy:
            self.cancel_brackets(data)
        opening = (not held and kwargs.get("parent") is None and kwargs.get("oco") is None
                   and kwargs.get("transmit", True) and kwargs.get("exectype") in OPENING_TYPES)
        direction = 1 if isbuy else -1
        levels = levels if levels is not None else (self.bracket_levels(data, direction) if opening else None)
        if not opening or levels is None or levels != levels:
            return send(data=data, size=size, **kwargs)
        parent = send(data=data, size=size, **{**kwargs, "transmit": False})
        if parent is None:
            return None  # the sizer said 0
        leg = super().sell if isbuy else super().buy
        stop = leg(data=data, size=abs(parent.size), exectype=bt.Order.Stop, price=levels[0], parent=parent,
                   transmit=False)
        take = leg(data=data, size=abs(parent.size), exectype=bt.Order.Limit, price=levels[1], parent=parent,
                   transmit=True)
        self._bracket_book()[data] = {"parent": parent, "stop": stop, "take": take, "levels": levels}
        return parent

    def cancel_brackets(self, data) -> None:
        book = self._bracket_book().pop(data, None)
        if book:
            for leg in (book["stop"], book["take"]):
                if leg.alive():
                    self.cancel(leg)

    def guard(self, data, size: float, levels) -> None:
        """Put stop and take-profit legs (one cancels the other) around an existing position."""
        leg = super().sell if size > 0 else super().buy
        stop = leg(data=data, size=abs(size), exectype=bt.Order.Stop, price=levels[0])
        take = leg(data=data, size=abs(size), exectype=bt.Order.Limit, price=levels[1], oco=stop)
        self._bracket_book()[data] = {"parent": None, "stop": stop, "take": take, "levels": tuple(levels)}

    def live_levels(self, data) -> tuple[float, float] | None:
        """Levels of the legs guarding the current position, if they are alive."""
        book = self._bracket_book().get(data)
        if book and book["stop"].alive() and self.getposition(data).size:
            return tuple(book["levels"])
        return None

    def notify_order(self, order):
        book = self._bracket_book().get(order.data)
        if book and order.status == order.Completed:
            for kind in ("stop", "take"):
                if order.ref == book[kind].ref:
                    del self._brackets[order.data]
                    self.bracket_exits[kind] += 1
                    self.on_bracket_exit(order.data, kind, -1 if order.isbuy() else 1)
        elif book and book["parent"] is not None and order.ref == book["parent"].ref and not order.alive() \
                and order.status != order.Completed:
            del self._brackets[order.data]  # the entry failed; the broker cancels its legs
        super().notify_order(order)


def with_risk_brackets(strategy: type[bt.Strategy]) -> type[bt.Strategy]:
    """`strategy` with neural brackets on its entries; give the bundle as risk_bundle=..."""
    return type(f"{strategy.__name__}WithRiskBrackets", (RiskBrackets, strategy), {})
