"""The bases of our strategies: walk-forward plumbing, and trading each feed toward a target exposure.

Every strategy here trades every data feed of the cerebro (one feed is the special case).
Feeds keep their own calendars: a feed is decided on only at the bars it has, and one that has
not started yet is left alone; nothing is forward-filled.

SegmentStrategy adds two things to bt.Strategy that walk-forward needs and plain scripts ignore:
- `trade_from`: bars before this date are warm-up: indicators run, no order is placed;
- `carry`: the state a previous segment ended with (cash, and per feed the position and orders
  still pending), so that a walk-forward of K backtrader runs equals one continuous run.
"""
from __future__ import annotations

import datetime as dt

import backtrader as bt

from .feeds import asset_name


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
        self._resume_at = bt.date2num(dt.datetime.fromisoformat(carry["date"])) if carry else None
        for data in (self.datas if carry else []):
            # The carried positions are in place from the first bar, so the equity on the last warm-up
            # bar (the previous run's last bar) equals the previous run's final equity. Flat feeds get
            # theirs too, in feed order: the broker sums position values in the order it holds them,
            # and the same order as a continuous run gives the same value to the last bit.
            held = self.carried(data)
            position = bt.Position(held.get("size", 0.0), held.get("price", 0.0))
            position.datetime = dt.datetime.fromisoformat(carry["date"])  # read by short-interest code
            self.broker.positions[data] = position

    def carried(self, data) -> dict:
        """What the previous segment's run left for this feed (empty when nothing)."""
        return (self.p.carry or {}).get("assets", {}).get(asset_name(data), {})

    def warming_up(self) -> bool:
        return self._trade_from is not None and self.datetime[0] < self._trade_from

    def has_bar(self, data) -> bool:
        """The feed has a bar at the current time (feeds on other calendars are skipped, never filled)."""
        return len(data) > 0 and data.datetime[0] == self.datetime[0]

    def ready(self, data) -> bool:
        """The feed has a bar now that may be traded on."""
        return self.has_bar(data) and not self.backfill(data)

    @staticmethod
    def backfill(data) -> bool:
        """The bar is a live feed's history (sent before it reports LIVE): warm-up, never traded on."""
        return data.islive() and data._laststatus != data.LIVE

    def carry_out(self) -> dict:
        """Plain numbers that let the next segment's run continue where this one stopped."""
        return {"date": self.datetime.date(0).isoformat(), "cash": self.broker.getcash(),
                "assets": {asset_name(data): self.asset_carry(data) for data in self.datas}}

    def asset_carry(self, data) -> dict:
        position = self.getposition(data)
        return {"size": position.size, "price": position.price}

    def resume(self, data, held: dict) -> None:
        """Re-send what the previous run left pending on this feed; called on the bar that run ended."""

    def prenext(self):
        # Feeds join at their own start: one that is still warming up must not hold the others back.
        self.next()

    def maybe_resume(self) -> None:
        if self._resume_at is not None and self.datetime[0] == self._resume_at:
            self._resume_at = None
            for data in self.datas:
                self.resume(data, self.carried(data))

    @staticmethod
    def same_order(order, mine) -> bool:
        """Notifications carry clones of our orders: compare references."""
        return mine is not None and order.ref == mine.ref


class TargetStrategy(SegmentStrategy):
    """Trades each feed toward a target exposure (position value / equity) decided on its close.

    With several feeds each one's target is scaled by `asset_weight` (default 1 / number of
    feeds): an equal split of the capital, as the portfolio baselines of the literature do.
    """

    params = (
        ("rebalance_band", 0.0),  # re-trade only when the target moves further than this
        ("asset_weight", None),   # scale of each feed's target; None: 1 / number of feeds
    )

    def __init__(self):
        self.last_target = {data: None for data in self.datas}  # exposure last ordered; None forces an order
        self.orders = {data: None for data in self.datas}       # at most one pending order of our own per feed

    @property
    def weight(self) -> float:
        return self.p.asset_weight if self.p.asset_weight is not None else 1.0 / len(self.datas)

    def weight_of(self, data) -> float:
        """This feed's part of the capital now (an equal split unless a strategy says otherwise)."""
        return self.weight

    def target(self, data) -> float | None:
        """Wanted exposure of one feed decided on this bar's close, before the asset weight; None = no view."""
        raise NotImplementedError

    def start(self):
        super().start()
        for data in self.datas:
            self.last_target[data] = self.carried(data).get("last_target")

    def asset_carry(self, data) -> dict:
        order = self.orders[data]
        pending = [order.executed.remsize] if order is not None and order.alive() else []
        return super().asset_carry(data) | {"last_target": self.last_target[data], "pending": pending}

    def resume(self, data, held: dict) -> None:
        for size in held.get("pending", []):
            self.orders[data] = self.buy(data=data, size=size) if size > 0 else self.sell(data=data, size=-size)

    def next(self):
        if self.warming_up():
            self.maybe_resume()
            return
        wanted = []
        for data in self.datas:
            if not self.ready(data) or self.orders[data] is not None:
                continue
            target = self.target(data)
            if target is None or target != target:  # no view, or indicators still warming up (NaN)
                continue
            target *= self.weight_of(data)
            if not self.moved(data, target):
                continue
            wanted.append((data, target, self.exposure_delta(data, target)))
        # Sales first: the broker checks each order against the cash as it is submitted, and their
        # proceeds pay for the purchases. A purchase is cut to the cash there is, less half the cash
        # buffer for a gap to the next open, rather than refused bar after bar: with several feeds one
        # may have drifted above its weight (inside the band), leaving less cash than another's target
        # needs; with one, a flip from short to long pays the cost of both legs (at 50 bp a side, the
        # whole buffer), which the target's size leaves out.
        cash = self.broker.getcash()
        for data, target, delta in sorted(wanted, key=lambda order: order[2] > 0):
            price = data.close[0]
            if delta > 0:
                rate = self.broker.getcommissioninfo(data).getcommission(1.0, price) / price
                affordable = max(0.0, cash) * (1.0 - self.p.cash_buffer / 2) / (price * (1.0 + rate))
                delta = min(delta, affordable)
            self.send(data, delta, target)
            cash -= delta * price

    def moved(self, data, target: float) -> bool:
        """The target is far enough from the exposure last ordered to trade (None last: always)."""
        last = self.last_target[data]
        return last is None or abs(target - last) > self.p.rebalance_band * self.weight

    def held_weight(self, data) -> float:
        """The position's value / equity, in the targets' units (net of the cash buffer kept back)."""
        return self.getposition(data).size * data.close[0] / (self.account_value() * (1.0 - self.p.cash_buffer))

    def account_value(self) -> float:
        """The account's value at this close (a strategy with many feeds may read it once per bar)."""
        return self.broker.getvalue()

    def exposure_delta(self, data, target: float) -> float:
        """The size that makes this feed's position value = target x equity at this close."""
        return target * self.broker.getvalue() * (1.0 - self.p.cash_buffer) / data.close[0] - \
            self.getposition(data).size

    def send(self, data, delta: float, target: float) -> None:
        if abs(delta) * data.close[0] > 1e-9 * self.broker.getvalue():
            self.orders[data] = self.buy(data=data, size=delta) if delta > 0 else self.sell(data=data, size=-delta)
        self.last_target[data] = target

    def notify_order(self, order):
        if order.alive():
            return
        if self.same_order(order, self.orders.get(order.data)):
            self.orders[order.data] = None
        if order.status in (order.Margin, order.Rejected):
            self.last_target[order.data] = None  # not filled: decide again on the next bar
