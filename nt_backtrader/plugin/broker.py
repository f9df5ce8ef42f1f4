"""The backtest's broker: backtrader's BackBroker, with each asset's own commission and slippage."""
from __future__ import annotations

from collections.abc import Mapping

import backtrader as bt

from .feeds import CommissionBps, configure_broker


class AssetCostBroker(bt.brokers.BackBroker):
    """BackBroker whose slippage may differ by asset: backtrader's own is one rate for the broker.

    `asset_slippage`: feed name -> fraction per side; other feeds slip at the broker's rate
    (set_slippage_perc). Commission needs no subclass: backtrader looks a CommInfo up by the feed's name.
    """

    params = (("asset_slippage", None),)

    def _try_exec(self, order):
        # BackBroker's one entry for every fill attempt of every order type: the rate is the order's asset's
        # for this attempt only
        rate = self.p.slip_perc
        self.p.slip_perc = (self.p.asset_slippage or {}).get(order.data._name, rate)
        try:
            super()._try_exec(order)
        finally:
            self.p.slip_perc = rate


def cost_broker(cash: float, commission_bps: float, slippage_bps: float,
                costs: Mapping[str, tuple[float, float]] | None = None) -> AssetCostBroker:
    """A broker with `cash`, charging `costs` (feed name -> (commission_bps, slippage_bps) per side, e.g.
    costs.asset_costs's) and the flat commission_bps and slippage_bps to every feed `costs` does not name."""
    costs = costs or {}
    broker = AssetCostBroker(asset_slippage={name: slippage / 1e4 for name, (_, slippage) in costs.items()})
    configure_broker(broker, cash, commission_bps, slippage_bps)
    for name, (commission, _) in costs.items():
        broker.addcommissioninfo(CommissionBps(commission=commission / 1e4), name=name)
    return broker
