"""PnLFeedback: records what a run did, for the walk-forward and the learners; never trains.

Per bar the account value; per order the decision (when and how much) and the fill.
get_analysis() gives daily returns of the trading bars, fills, orders and round trips.
"""
from __future__ import annotations

import backtrader as bt
import pandas as pd

from ..trades import FILL_COLUMNS, round_trips

ORDER_COLUMNS = ["date", "size", "type", "price"]
FILL_TABLE = FILL_COLUMNS + ["type"]  # the order type that filled: Market, Stop, Limit


class PnLFeedback(bt.Analyzer):
    params = (
        ("trade_from", None),  # datetime.date: returns and orders start here
        ("opening", None),     # (date, size, price) of a position carried in, for the round trips
    )

    def start(self):
        self.dates, self.values, self.fills, self.orders = [], [], [], []
        self._filled = {}  # order ref -> (size, cost, commission) already recorded

    def next(self):
        self.dates.append(self.data.datetime[0])  # backtrader's float date; converted once at the end
        self.values.append(self.strategy.broker.getvalue())

    def notify_order(self, order):
        if order.status == order.Submitted:
            created = bt.num2date(order.created.dt).date()
            if self.p.trade_from is None or created >= self.p.trade_from:
                self.orders.append((created, order.created.size, order.getordername(), order.created.price))
        elif order.executed.size:
            self._record_fill(order)

    def _record_fill(self, order):
        """Record what was executed since this order's last notification (partial fills add up)."""
        ex = order.executed
        size, cost, comm = self._filled.get(order.ref, (0.0, 0.0, 0.0))
        if ex.size == size:
            return
        self._filled[order.ref] = (ex.size, ex.size * ex.price, ex.comm)
        new_size = ex.size - size
        self.fills.append((bt.num2date(ex.dt).date(), new_size, (ex.size * ex.price - cost) / new_size,
                           ex.comm - comm, order.getordername()))

    def stop(self):
        # Computed once here: backtrader itself calls get_analysis() again when the run ends.
        self.rets = self._analyse()

    def get_analysis(self) -> dict:
        return self.rets

    def _analyse(self) -> dict:
        dates = pd.DatetimeIndex([bt.num2date(d).date() for d in self.dates], name="date")
        values = pd.Series(self.values, index=dates, dtype=float)
        # The first trading bar's return is measured from the bar before it (the last warm-up
        # bar), or from the starting cash when there is none.
        previous = values.shift(1).fillna(self.strategy.broker.startingcash)
        trading = dates >= pd.Timestamp(self.p.trade_from) if self.p.trade_from else slice(None)
        returns = (values / previous - 1.0)[trading]
        fills = pd.DataFrame(self.fills, columns=FILL_TABLE).astype(
            {"date": "datetime64[ns]", "size": float, "price": float, "commission": float, "type": str})
        orders = pd.DataFrame(self.orders, columns=ORDER_COLUMNS).astype(
            {"date": "datetime64[ns]", "size": float, "type": str, "price": float})
        return {"returns": returns.rename("returns"), "equity": values[trading].rename("equity"),
                "fills": fills, "orders": orders, "trades": round_trips(fills, dates, self.p.opening)}
