"""RiskBrackets: the risk network's stop-loss and take-profit as native backtrader orders.

A mixin for any strategy, or `with_risk_brackets(TheirStrategy)` for one that cannot change, given
the bundle as bundle=... (as NeuralSizer is; risk_bundle=, the older name, still works and warns).

The legs always guard exactly the position held. An order that opens a position from flat goes
out as a bracket (the entry as the parent, a Stop and a Limit child, so the broker enforces the
levels); an order against the position first cancels the legs, so a strategy's own exit and a stop
can never both fill; after every fill that leaves a position (an add, a partial reduce, a reversal)
the legs go out again, one cancelling the other, for the whole position; flat, none are left.

The levels are set once per side, from the decision bar's close and ATR, in ATRs chosen by the risk
network, at the bar the order that opened that side was decided: an add or a partial reduce keeps
them, a reversal brings the new side's. A long-only bundle's risk net never learned short entries:
a short goes out without legs (said once per feed). A position opened before the risk net had
enough history has no levels and stays unguarded.
"""
from __future__ import annotations

import math
import warnings

import backtrader as bt

from ..bundle import bundle_for
from ..decisions import levels_from
from ..errors import ConfigError
from .feeds import asset_name
from .signal import check_feed, predict_current

OPENING_TYPES = (None, bt.Order.Market, bt.Order.Close, bt.Order.Limit)


class RiskBrackets(bt.Strategy):
    params = (("bundle", None),           # a Bundle, the path of one, or {feed name: either}
              ("risk_bundle", None),      # the older name of bundle=: still read, with a FutureWarning
              ("allow_timeframe", False))  # True: bracket feeds of other bars than the bundle's anyway

    def _bracket_book(self) -> dict:
        """data -> {"parent", "stop", "take", "levels"} of the legs guarding that data's position;
        "reversal": the levels of the side that an order on its way will open."""
        if not hasattr(self, "_brackets"):
            self._brackets = {}
            self.bracket_exits = {"stop": 0, "take": 0}
        return self._brackets

    def start(self):
        super().start()
        self.given_bundle()  # both names, or the old one, said before the first bar, not at the first order

    def given_bundle(self):
        """The bundle= parameter, or what the older risk_bundle= holds (with a warning, once)."""
        if self.p.risk_bundle is None:
            return self.p.bundle
        if self.p.bundle is not None:
            raise ConfigError("both bundle= and risk_bundle= given to the risk brackets: pass bundle= only")
        if not self.__dict__.get("_warned_alias"):
            self._warned_alias = True
            # FutureWarning, not DeprecationWarning: Python hides the latter in a user's script
            warnings.warn("risk_bundle= is deprecated: give the risk brackets the bundle as bundle=..., "
                          "the name NeuralSizer uses", FutureWarning, stacklevel=2)  # start(), the first to ask
        return self.p.risk_bundle

    def risk_bundle(self, data):
        """The bundle of `data`, resolved and checked against the feed's bars at its first use."""
        bundles = self.__dict__.setdefault("_risk_bundles", {})
        if data not in bundles:
            bundles[data] = bundle_for(self.given_bundle(), asset_name(data))
            check_feed(bundles[data], data, self.p.allow_timeframe)
        return bundles[data]

    def bracket_levels(self, data, direction: int) -> tuple[float, float] | None:
        """(stop price, take price) for an entry decided on this bar; None without enough history."""
        signals = predict_current(self.risk_bundle(data), data)
        if signals is None:
            return None
        suffix = "" if direction > 0 else "_short"
        return levels_from(data.close[0], signals.atr[-1], getattr(signals, "stop_atr" + suffix)[-1],
                           getattr(signals, "take_atr" + suffix)[-1], direction)

    def entry_levels(self, data, direction: int) -> tuple[float, float] | None:
        """The levels of a side opened on this bar, or None: a long-only bundle has none for a short
        (its risk net never learned short entries), and none come before the history is long enough."""
        if direction < 0 and not self.risk_bundle(data).spec.allow_short:
            warned = self.__dict__.setdefault("_warned_long_only", set())
            if data not in warned:
                warned.add(data)
                name = asset_name(data)
                # stacklevel 1: the warning is about the bundle and the feed, not about which of the strategies'
                # calls asked; one place lets Python's default filter say it once per process, not per segment
                warnings.warn(f"{name}: the bundle is long-only, its risk net has no levels for a short entry: "
                              f"short entries on {name} go out without stop-loss and take-profit legs", stacklevel=1)
            return None
        levels = self.bracket_levels(data, direction)
        return levels if levels is not None and all(math.isfinite(level) for level in levels) else None

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
        direction = 1 if isbuy else -1
        against = bool(held) and (held > 0) != isbuy
        if against:
            self.cancel_brackets(data)
        plain = (kwargs.get("parent") is None and kwargs.get("oco") is None and kwargs.get("transmit", True)
                 and kwargs.get("exectype") in OPENING_TYPES)
        if held or not plain:  # not an entry from flat
            order = send(data=data, size=size, **kwargs)
            if against and plain and order is not None and abs(order.size) > abs(held):
                self.expect_reversal(data, direction)
            return order
        levels = levels if levels is not None else self.entry_levels(data, direction)
        if levels is None:
            return send(data=data, size=size, **kwargs)
        parent = send(data=data, size=size, **{**kwargs, "transmit": False})
        if parent is None:
            return None  # the sizer said 0
        self._send_legs(data, parent.size, levels, parent)
        return parent

    def expect_reversal(self, data, direction: int) -> None:
        """An order on its way turns the position to `direction`: the levels of that side, decided now."""
        book = self._bracket_book().setdefault(data, {"parent": None, "stop": None, "take": None, "levels": None})
        book["reversal"] = self.entry_levels(data, direction)

    def _send_legs(self, data, position: float, levels, parent=None) -> None:
        """A Stop and a Limit that close `position` at the levels: the children of `parent` (a bracket,
        sent with it) or, around a position held, each other's one-cancels-other. An infinite level (a
        level no bar reaches) sends no leg: the other guards the position alone, never as a bracket's
        child (backtrader's brackets need both)."""
        leg = super().sell if position > 0 else super().buy
        size = abs(position)
        stop = leg(data=data, size=size, exectype=bt.Order.Stop, price=levels[0], parent=parent,
                   transmit=parent is None) if math.isfinite(levels[0]) else None
        take = leg(data=data, size=size, exectype=bt.Order.Limit, price=levels[1], parent=parent,
                   oco=stop if parent is None else None) if math.isfinite(levels[1]) else None
        for order, kind in ((stop, "stop"), (take, "take")):
            if order is not None:
                order.addinfo(leg=kind)
        self._bracket_book()[data] = {"parent": parent, "stop": stop, "take": take, "levels": tuple(levels)}

    def cancel_brackets(self, data) -> None:
        """Cancel the legs guarding `data`'s position; their levels stay for what the position becomes."""
        book = self._bracket_book().get(data)
        for leg in (book["stop"], book["take"]) if book else ():
            if leg is not None and leg.alive():
                self.cancel(leg)

    def guard(self, data, size: float, levels) -> None:
        """Put stop and take-profit legs (one cancels the other) around an existing position."""
        self._send_legs(data, size, levels)

    def fit_legs(self, data) -> None:
        """After a fill: unless the legs guard exactly the position held, cancel them and send legs for the
        whole position at its side's levels; flat (or without levels for that side), none."""
        book = self._bracket_book().get(data)
        if book is None or (book["parent"] is not None and book["parent"].alive()):
            return  # never guarded, or a bracket whose entry is still on its way
        held = self.getposition(data).size
        legs = [leg for leg, level in zip((book["stop"], book["take"]), book["levels"] or (0.0, 0.0))
                if math.isfinite(level)]                             # a leg at an infinite level is never sent
        if held and all(leg is not None and leg.alive() and leg.size == -held for leg in legs):
            return
        self.cancel_brackets(data)
        levels = levels_for_side(book, (held > 0) - (held < 0))
        if held and levels is not None:
            self.guard(data, held, levels)
        else:
            del self._brackets[data]

    def live_levels(self, data) -> tuple[float, float] | None:
        """Levels of the legs guarding the current position, if they are alive."""
        book = self._bracket_book().get(data)
        if book and book["stop"] is not None and book["stop"].alive() and self.getposition(data).size:
            return tuple(book["levels"])
        return None

    def notify_order(self, order):
        self._bracket_book()
        kind = order.info.get("leg")
        executed = order.status in (order.Partial, order.Completed)
        if kind and order.status == order.Completed:
            self.bracket_exits[kind] += 1
            self.on_bracket_exit(order.data, kind, -1 if order.isbuy() else 1)
        # a leg cancelled here must not bring legs back while the exit that cancelled it is on its way
        if executed or (not kind and not order.alive()):
            self.fit_legs(order.data)
        super().notify_order(order)


def side_of(levels) -> int:
    """+1 for the levels of a long position (stop below take), -1 for a short's, 0 for none."""
    if levels is None:
        return 0
    return 1 if levels[0] < levels[1] else -1


def levels_for_side(book: dict, side: int):
    """The levels of a bracket book (its own, else the reversal's it keeps) for a position on `side`; None
    when neither is on that side."""
    return next((levels for levels in (book["levels"], book.get("reversal")) if side_of(levels) == side), None)


def with_risk_brackets(strategy: type[bt.Strategy]) -> type[bt.Strategy]:
    """`strategy` with neural brackets on its entries; give the bundle as bundle=..."""
    return type(f"{strategy.__name__}WithRiskBrackets", (RiskBrackets, strategy), {})
