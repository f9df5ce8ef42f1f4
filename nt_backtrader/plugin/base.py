"""The bases of our strategies: walk-forward plumbing, and trading toward a target exposure.

SegmentStrategy adds two things to bt.Strategy that walk-forward needs and plain scripts ignore:
- `trade_from`: bars before this date are warm-up: indicators run, no order is placed;
- `carry`: the state a previous segment ended with (cash, position, orders still pending),
  so that a walk-forward of K backtrader runs equals one continuous run.
"""
from __future__ import annotations

import datetime as dt

import backtrader as bt


class SegmentStrategy(bt.Strategy):
    params = (
        ("trade_from", None),     # datetime.date; None: trade from the first bar
        ("carry", None),          # dict from a previous run's carry_out(), or None
        ("cash_buffer", 0.01),    # equity kept back so that an all-in order survives a gap up
    )

    def start(self):
        # Compared as backtrader's float date numbers: a date object per bar costs more than the rest of next().
        trade_from = self.p.trade_from
        self._trade_from = bt.date2num(dt.datetime.combine(trade_from, dt.time())) if trade_from else None
        carry = self.p.carry
        if carry:
            # The carried position is in place from the first bar, so the equity on the last
            # warm-up bar (the previous run's last bar) equals the previous run's final equity.
            position = bt.Position(carry["size"], carry["price"])
            position.datetime = dt.datetime.fromisoformat(carry["date"])  # read by short-interest code
            self.broker.positions[self.data] = position

    def warming_up(self) -> bool:
        return self._trade_from is not None and self.data.datetime[0] < self._trade_from

    def carry_out(self) -> dict:
        """Plain numbers that let the next segment's run continue where this one stopped."""
        return {"date": self.data.datetime.date(0).isoformat(), "cash": self.broker.getcash(),
                "size": self.position.size, "price": self.position.price}

    def resume(self, carry: dict) -> None:
        """Re-send what the previous run left pending; called on the bar that run ended."""

    def prenext(self):
        self._maybe_resume()

    def _maybe_resume(self):
        carry = self.p.carry
        if carry and self.data.datetime.date(0) == dt.date.fromisoformat(carry["date"]):
            self.resume(carry)

    @staticmethod
    def same_order(order, mine) -> bool:
        """Notifications carry clones of our orders: compare references."""
        return mine is not None and order.ref == mine.ref


class TargetStrategy(SegmentStrategy):
    """Trades toward a target exposure (position value / equity) decided on each close."""

    params = (("rebalance_band", 0.0),)  # re-trade only when the target moves further than this

    def __init__(self):
        self.last_target = None   # exposure last ordered; None forces the next order
        self.order = None         # at most one pending order of our own

    def target(self) -> float | None:
        """Wanted exposure decided on this bar's close; None = no view."""
        raise NotImplementedError

    def start(self):
        super().start()
        if self.p.carry:
            self.last_target = self.p.carry["last_target"]

    def carry_out(self) -> dict:
        pending = [self.order.executed.remsize] if self.order is not None and self.order.alive() else []
        return super().carry_out() | {"last_target": self.last_target, "pending": pending}

    def resume(self, carry: dict) -> None:
        for size in carry["pending"]:
            self.order = self.buy(size=size) if size > 0 else self.sell(size=-size)

    def next(self):
        if self.warming_up():
            self._maybe_resume()
            return
        target = self.target()
        if target is None or self.order is not None:
            return
        if self.last_target is not None and abs(target - self.last_target) <= self.p.rebalance_band:
            return
        self.order_exposure(target)

    def order_exposure(self, target: float) -> None:
        """Order the size that makes position value = target x equity at this close."""
        value = self.broker.getvalue()
        price = self.data.close[0]
        delta = target * value * (1.0 - self.p.cash_buffer) / price - self.position.size
        if abs(delta) * price > 1e-9 * value:
            self.order = self.buy(size=delta) if delta > 0 else self.sell(size=-delta)
        self.last_target = target

    def notify_order(self, order):
        if order.alive():
            return
        if self.same_order(order, self.order):
            self.order = None
        if order.status in (order.Margin, order.Rejected):
            self.last_target = None  # not filled: decide again on the next bar
