"""PnLFeedback: records what a run did, for the walk-forward and the learners; never trains.

Per bar the account value and each feed's position and close; per order the decision (when,
which feed, how much) and the fill; per entry the sizer sized, its record (NeuralSizer's
SizingRecord: the fraction traded, the network's and its twin's). get_analysis() gives daily
returns of the trading bars, fills, orders, round trips (per feed), each feed's weight in the
book, its contribution to the daily return, and the sizing records.
"""
from __future__ import annotations

import backtrader as bt
import numpy as np
import pandas as pd

from ..trades import FILL_COLUMNS, contributions, round_trips_by_asset
from .feeds import asset_name
from .sizer import SizingRecord

ORDER_COLUMNS = ["date", "asset", "size", "type", "price"]
FILL_TABLE = FILL_COLUMNS + ["type"]  # the order type that filled: Market, Stop, Limit


class PnLFeedback(bt.Analyzer):
    params = (
        ("trade_from", None),  # datetime.date: returns and orders start here
        ("openings", None),    # {feed name: (date, size, price)} of positions carried in, for the round trips
    )

    def start(self):
        self.dates, self.values, self.sizes, self.closes, self.fills, self.orders = [], [], [], [], [], []
        self._filled = {}  # order ref -> (size, cost, commission) already recorded
        self._recorded = set()  # refs of the orders in self.orders

    def next(self):
        strategy = self.strategy
        self.dates.append(strategy.datetime[0])  # the run's clock: feeds may lack a bar today
        self.values.append(strategy.broker.getvalue())
        self.sizes.append([strategy.getposition(d).size for d in strategy.datas])
        self.closes.append([d.close[0] if len(d) else np.nan for d in strategy.datas])

    def notify_order(self, order):
        if order.status == order.Submitted:
            self._record_order(order)
        elif order.executed.size:
            self._record_fill(order)

    def _record_order(self, order):
        created = bt.num2date(order.created.dt).date()
        if order.ref not in self._recorded and (self.p.trade_from is None or created >= self.p.trade_from):
            self._recorded.add(order.ref)
            self.orders.append((created, asset_name(order.data), order.created.size, order.getordername(),
                                order.created.price))

    def _record_fill(self, order):
        """Record what was executed since this order's last notification (partial fills add up)."""
        ex = order.executed
        size, cost, comm = self._filled.get(order.ref, (0.0, 0.0, 0.0))
        if ex.size == size:
            return
        self._filled[order.ref] = (ex.size, ex.size * ex.price, ex.comm)
        new_size = ex.size - size
        price = (ex.size * ex.price - cost) / new_size  # the average price of what filled since the last notice
        self.fills.append((bt.num2date(ex.dt).date(), asset_name(order.data), new_size, price, ex.comm - comm,
                           order.getordername()))

    def stop(self):
        # backtrader notifies an order on the bar after its decision: those of the last bar would be lost
        for order in self.strategy.broker.orders:
            self._record_order(order)
        # Computed once here: backtrader itself calls get_analysis() again when the run ends.
        self.rets = self._analyse()

    def get_analysis(self) -> dict:
        return self.rets

    def _analyse(self) -> dict:
        # datetime64[ns], as the fills and orders tables and a checkpoint's restored returns: pandas 3 makes an
        # index of dates datetime64[s], so a resumed walk-forward's index (ns) would differ from a straight one's
        dates = pd.DatetimeIndex([bt.num2date(d).date() for d in self.dates], name="date").as_unit("ns")
        names = [asset_name(d) for d in self.strategy.datas]
        values = pd.Series(self.values, index=dates, dtype=float)
        # The first trading bar's return is measured from the bar before it (the last warm-up
        # bar), or from the starting cash when there is none.
        previous = values.shift(1).fillna(self.strategy.broker.startingcash)
        trading = dates >= pd.Timestamp(self.p.trade_from) if self.p.trade_from else np.ones(len(dates), bool)
        # the entries the strategy's sizer sized (a strategy without a NeuralSizer has none)
        sizing = pd.DataFrame(getattr(self.strategy.getsizer(), "log", []), columns=list(SizingRecord._fields))
        returns = (values / previous - 1.0)[trading]
        fills = pd.DataFrame(self.fills, columns=FILL_TABLE).astype(
            {"date": "datetime64[ns]", "asset": str, "size": float, "price": float, "commission": float, "type": str})
        orders = pd.DataFrame(self.orders, columns=ORDER_COLUMNS).astype(
            {"date": "datetime64[ns]", "asset": str, "size": float, "type": str, "price": float})
        sizes = pd.DataFrame(np.asarray(self.sizes, dtype=float).reshape(-1, len(names)), index=dates, columns=names)
        closes = pd.DataFrame(np.asarray(self.closes, dtype=float).reshape(-1, len(names)), index=dates,
                              columns=names)
        weights = (sizes * closes.fillna(0.0)).div(values, axis=0)
        return {"returns": returns.rename("returns"), "equity": values[trading].rename("equity"),
                "fills": fills, "orders": orders, "weights": weights[trading],
                "contributions": contributions(sizes, closes, fills, previous)[trading],
                "trades": round_trips_by_asset(fills, dates, self.p.openings or {}), "sizing": sizing}
