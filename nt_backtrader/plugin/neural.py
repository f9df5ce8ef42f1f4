"""NeuralStrategy: the timing network decides, the NeuralSizer sizes, the risk network brackets.

Entries and exits follow the bundle's timing rule (thresholds with hysteresis); an entry goes
out as a native bracket; after a stop or take-profit the strategy waits `cooldown` bars
before it enters that side again, so a stop is not undone on the next bar.
"""
from __future__ import annotations

from ..decisions import AccountRecord, next_position
from .base import SegmentStrategy
from .brackets import RiskBrackets, levels_from
from .signal import NeuralSignal
from .sizer import NeuralSizer


class NeuralStrategy(RiskBrackets, SegmentStrategy):
    params = (
        ("bundle", None),   # a Bundle, or the path of one written by `nt-backtrader train`
        ("sizer", True),    # install a NeuralSizer (a sizer given to cerebro.addsizer wins)
    )

    def __init__(self):
        self.signal = NeuralSignal(self.data, bundle=self.p.bundle)
        self.bundle = self.signal.bundle
        if self.p.sizer:
            self.setsizer(NeuralSizer(bundle=self.bundle, cash_buffer=self.p.cash_buffer))
        self.account = AccountRecord()  # read by the sizer: drawdown, recent PnL
        self.wanted = 0                 # the timing rule's position after the last bar
        self.blocked = 0                # a side a bracket just closed: no re-entry there for a while
        self.blocked_bars = 0           # bars left in that wait
        self.order = None               # our pending entry or exit
        self.signal_exits = 0

    def risk_bundle(self):
        return self.bundle

    def bracket_levels(self, data, direction):
        suffix = "" if direction > 0 else "_short"
        now = self.signal.current
        return levels_from(data.close[0], now("atr"), now("stop_atr" + suffix), now("take_atr" + suffix), direction)

    def next(self):
        if self.warming_up():
            self._maybe_resume()
            return
        self.account.update(self.broker.getvalue())
        self.wanted = next_position(self.wanted, self.signal.p_long[0], self.signal.p_short[0], self.bundle.spec)
        if self.blocked:
            self.blocked_bars -= 1
            if self.blocked_bars <= 0 or self.wanted != self.blocked:
                self.blocked = 0
        if self.order is not None:
            return
        held = int(self.position.size > 0) - int(self.position.size < 0)
        if held and held != self.wanted:
            self.order = self.close()
        elif not held and self.wanted and self.wanted != self.blocked:
            self.order = self.buy() if self.wanted > 0 else self.sell()

    def on_bracket_exit(self, data, kind, direction):
        self.blocked, self.blocked_bars = direction, self.bundle.spec.cooldown

    def notify_order(self, order):
        super().notify_order(order)
        if self.same_order(order, self.order) and not order.alive():
            if order.status == order.Completed and not self.position:
                self.signal_exits += 1
            self.order = None

    # --- walk-forward carry -----------------------------------------------------------------
    def start(self):
        super().start()
        carry = self.p.carry
        if carry:
            self.wanted, self.blocked, self.blocked_bars = carry["wanted"], carry["blocked"], carry["blocked_bars"]
            self.account = AccountRecord(carry["account"]["peak"], list(carry["account"]["recent"]))

    def carry_out(self) -> dict:
        order = self.order if self.order is not None and self.order.alive() else None
        entry = exit_ = None
        if order is not None and not self.position:
            book = self._bracket_book().get(self.data)
            entry = {"size": order.created.size, "levels": list(book["levels"]) if book else None}
        elif order is not None:
            exit_ = True
        levels = self.live_levels(self.data)
        return super().carry_out() | {"wanted": self.wanted, "blocked": self.blocked, "blocked_bars": self.blocked_bars,
                                      "account": self.account.to_dict(), "entry": entry, "exit": exit_,
                                      "levels": list(levels) if levels else None}

    def resume(self, carry: dict) -> None:
        if carry["levels"] and carry["size"] and not carry["exit"]:
            self.guard(self.data, carry["size"], carry["levels"])
        if carry["exit"]:
            self.order = self.close()
        elif carry["entry"]:
            size = carry["entry"]["size"]
            levels = tuple(carry["entry"]["levels"]) if carry["entry"]["levels"] else None
            self.order = self._route(size > 0, self.data, abs(size), {}, levels=levels)

    def diagnostics(self) -> dict:
        self._bracket_book()  # makes the exit counters exist even when no bracket was sent
        sizer = self.getsizer()
        return {"bracket_exits": dict(self.bracket_exits), "signal_exits": self.signal_exits,
                "sizing": list(getattr(sizer, "log", []))}
