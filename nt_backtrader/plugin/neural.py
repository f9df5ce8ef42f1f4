"""NeuralStrategy: the timing network decides, the NeuralSizer sizes, the risk network brackets.

It trades every data feed of the cerebro, each on its own bars: per feed, entries and exits
follow the bundle's timing rule (thresholds with hysteresis) on that feed's NeuralSignal; an
entry goes out as a native bracket; after a stop or take-profit the strategy waits `cooldown`
bars before it enters that side of that feed again, so a stop is not undone on the next bar.
One account, one portfolio state: the sizer reads it to size each order.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..bundle import bundle_for
from ..decisions import AccountRecord, aged, levels_from, next_position, waited
from .base import SegmentStrategy
from .brackets import RiskBrackets
from .feeds import asset_name
from .signal import NeuralSignal
from .sizer import NeuralSizer


@dataclass
class FeedState:
    """The timing rule's state for one feed."""

    wanted: int = 0           # the rule's position after the feed's last bar
    age: int = 0              # bars the rule has wanted it
    blocked: int = 0          # a side a bracket just closed: no re-entry there for a while
    blocked_bars: int = 0     # bars left in that wait
    order: object = None      # our pending entry or exit


class NeuralStrategy(RiskBrackets, SegmentStrategy):
    params = (
        ("bundle", None),   # a Bundle, the path of one written by `nt-backtrader train`, or {feed name: either}
        ("sizer", True),    # install a NeuralSizer (a sizer given to cerebro.addsizer wins)
    )

    def __init__(self):
        self.bundles = {data: bundle_for(self.p.bundle, asset_name(data)) for data in self.datas}
        self.signals = {data: NeuralSignal(data, bundle=self.bundles[data]) for data in self.datas}
        if self.p.sizer:
            self.setsizer(NeuralSizer(bundle=self.p.bundle, cash_buffer=self.p.cash_buffer))
        self.account = AccountRecord()  # read by the sizer: drawdown, recent PnL
        self.feeds = {data: FeedState() for data in self.datas}
        self.signal_exits = 0

    def risk_bundle(self, data):
        return self.bundles[data]

    def bracket_levels(self, data, direction):
        suffix = "" if direction > 0 else "_short"
        now = self.signals[data].current
        return levels_from(data.close[0], now("atr"), now("stop_atr" + suffix), now("take_atr" + suffix), direction)

    def next(self):
        if self.warming_up():
            self.maybe_resume()
            return
        self.account.update(self.broker.getvalue())
        for data in self.datas:
            if self.has_bar(data):
                self.decide(data)

    def decide(self, data) -> None:
        state, signal = self.feeds[data], self.signals[data]
        wanted = next_position(state.wanted, state.age, signal.p_long[0], signal.p_short[0], self.bundles[data].spec)
        state.wanted, state.age = wanted, aged(state.wanted, state.age, wanted)
        state.blocked, state.blocked_bars = waited(state.blocked, state.blocked_bars, state.wanted)
        if state.order is not None:
            return
        size = self.getposition(data).size
        held = int(size > 0) - int(size < 0)
        if held and held != state.wanted:
            state.order = self.close(data=data)
        elif not held and state.wanted and state.wanted != state.blocked:
            state.order = self.buy(data=data) if state.wanted > 0 else self.sell(data=data)

    def on_bracket_exit(self, data, kind, direction):
        self.feeds[data].blocked, self.feeds[data].blocked_bars = direction, self.bundles[data].spec.cooldown

    def notify_order(self, order):
        super().notify_order(order)
        state = self.feeds.get(order.data)
        if state is not None and self.same_order(order, state.order) and not order.alive():
            if order.status == order.Completed and not self.getposition(order.data).size:
                self.signal_exits += 1
            state.order = None

    # --- walk-forward carry -----------------------------------------------------------------
    def start(self):
        super().start()
        carry = self.p.carry
        if carry:
            self.account = AccountRecord(carry["account"]["peak"], list(carry["account"]["recent"]))
            for data, state in self.feeds.items():
                held = self.carried(data)
                if held:
                    state.wanted, state.blocked, state.blocked_bars = held["wanted"], held["blocked"], held["blocked_bars"]
                    state.age = held["age"]

    def carry_out(self) -> dict:
        return super().carry_out() | {"account": self.account.to_dict()}

    def asset_carry(self, data) -> dict:
        state = self.feeds[data]
        order = state.order if state.order is not None and state.order.alive() else None
        entry = exit_ = None
        if order is not None and not self.getposition(data).size:
            book = self._bracket_book().get(data)
            entry = {"size": order.created.size, "levels": list(book["levels"]) if book else None}
        elif order is not None:
            exit_ = True
        levels = self.live_levels(data)
        return super().asset_carry(data) | {"wanted": state.wanted, "age": state.age, "blocked": state.blocked,
                                            "blocked_bars": state.blocked_bars, "entry": entry, "exit": exit_,
                                            "levels": list(levels) if levels else None}

    def resume(self, data, held: dict) -> None:
        if not held:
            return
        state = self.feeds[data]
        if held["levels"] and held["size"] and not held["exit"]:
            self.guard(data, held["size"], held["levels"])
        if held["exit"]:
            state.order = self.close(data=data)
        elif held["entry"]:
            size = held["entry"]["size"]
            levels = tuple(held["entry"]["levels"]) if held["entry"]["levels"] else None
            state.order = self._route(size > 0, data, abs(size), {}, levels=levels)

    def diagnostics(self) -> dict:
        self._bracket_book()  # makes the exit counters exist even when no bracket was sent
        sizer = self.getsizer()
        return {"bracket_exits": dict(self.bracket_exits), "signal_exits": self.signal_exits,
                "sizing": list(getattr(sizer, "log", []))}
