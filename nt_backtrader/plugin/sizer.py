"""NeuralSizer: the position-sizing network as a bt.Sizer, for any strategy and any standard feed.

    cerebro.addsizer(NeuralSizer, bundle="model.pt")

An order against an open position closes it (as backtrader's PercentSizer does); an order
that opens one gets fraction x equity, the fraction coming from the sizing network fed with
the bar's features (of the order's own feed), the account's drawdown, gross exposure and
recent PnL, and the timing net's confidence; the bundle's portfolio scale makes the whole
book, not each feed alone, meet the volatility target. Limits then apply: the largest weight
per feed, the gross exposure of the book, and a drawdown brake. `retint=True` rounds sizes
down to whole shares, as backtrader's sizers do. Until a feed has the bundle's warm-up of bars
(the history its features need) its orders get size 0, which backtrader sends as no order; a
warning says so once per feed. The account's history comes from the strategy's own record where it keeps one
(NeuralStrategy), else from backtrader's Broker observer (on by default), else from what
the sizer has seen at its own calls.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import backtrader as bt

from ..bundle import bundle_for
from ..decisions import AccountRecord, state_vector
from .feeds import asset_name
from .signal import NeuralSignal, check_feed, predict_current


class SizingRecord(NamedTuple):
    asset: str            # the feed's name
    date: object          # the decision bar
    direction: int        # +1 buy, -1 sell
    fraction: float       # traded fraction of equity
    network: float        # the sizing net's own fraction
    twin: float           # the volatility-target fraction
    confidence: float
    vol: float


class NeuralSizer(bt.Sizer):
    params = (
        ("bundle", None),         # a Bundle, the path of one, or {feed name: either}
        ("cash_buffer", 0.01),    # equity kept back so an order survives a gap up
        ("retint", False),        # whole shares only (rounded down)
        ("allow_timeframe", False),  # True: size feeds of other bars than the bundle's anyway
    )

    def __init__(self):
        self.own_record = AccountRecord()
        self._bundles = {}       # feed -> its bundle, resolved at its first order
        self._warned = set()      # feeds told that they are still in the warm-up
        self.log = []             # one SizingRecord per opening order
        self._signal = None

    def _signal_for(self, data, bundle) -> NeuralSignal | None:
        """The strategy's signal on this data and bundle, else a private one computed on demand."""
        signal = getattr(self.strategy, "signals", {}).get(data)
        if isinstance(signal, NeuralSignal) and signal.bundle is bundle:
            return signal
        return None

    def _account(self) -> AccountRecord:
        record = getattr(self.strategy, "account", None)
        if isinstance(record, AccountRecord) and record.recent:
            return record
        for observer in self.strategy.observers:
            if isinstance(observer, bt.observers.Broker) and len(observer):
                built = AccountRecord()
                for value in observer.lines.value.get(size=len(observer)):
                    built.update(value)
                return built
        self.own_record.update(self.broker.getvalue())
        return self.own_record

    def _getsizing(self, comminfo, cash, data, isbuy):
        position = self.broker.getposition(data)
        if position.size and (position.size > 0) != isbuy:
            return abs(position.size)  # an order against the position closes it
        if data not in self._bundles:
            self._bundles[data] = bundle_for(self.p.bundle, asset_name(data))
            check_feed(self._bundles[data], data, self.p.allow_timeframe)
        bundle = self._bundles[data]
        if len(data) < bundle.warmup_bars:
            self.warn_warming_up(data, bundle.warmup_bars)
            return 0
        signal = self._signal_for(data, bundle)
        if signal is not None:
            scaled, confidence, vol = signal.current("scaled"), signal.current("confidence"), signal.current("vol")
        else:
            outputs = predict_current(bundle, data)
            scaled, confidence, vol = outputs.scaled[-1], outputs.confidence[-1], outputs.vol[-1]
        if not (vol == vol and confidence == confidence):  # NaN: a price missing from the feed's history
            return 0
        value = self.broker.getvalue()
        gross = self.gross_exposure(value)
        account = self._account()
        drawdown, _, recent = account.state(gross)
        sizing = bundle.size(scaled, state_vector(drawdown, gross, recent, confidence), vol)
        fraction = bundle.limit(sizing.fraction, gross, drawdown)
        self.log.append(SizingRecord(asset_name(data), data.datetime.date(0), 1 if isbuy else -1, fraction,
                                     sizing.network, sizing.twin, sizing.confidence, float(vol)))
        size = fraction * value * (1.0 - self.p.cash_buffer) / data.close[0]
        return int(size) if self.p.retint else float(size)

    def warn_warming_up(self, data, warmup: int) -> None:
        """Once per feed: its orders get no size until the bundle's features have their history."""
        if data in self._warned:
            return
        self._warned.add(data)
        name = asset_name(data)
        warnings.warn(f"NeuralSizer: {name} has {len(data)} bars, fewer than the bundle's warm-up of {warmup}: "
                      f"it needs {warmup - len(data)} more bars before its orders get a size (until then 0: "
                      "no order); start the feed earlier to trade from its first bars",
                      stacklevel=2)  # _getsizing, the order that got no size

    def gross_exposure(self, value: float) -> float:
        """Sum of |position value| over every feed, per unit of equity, counting the entries already
        sent and not yet filled (on this bar or before), so that entries decided together share the limit."""
        if value <= 0:
            return 0.0
        held = sum(abs(self.broker.getposition(d).size) * d.close[0] for d in self.strategy.datas if len(d))
        pending = sum(abs(order.created.size) * order.data.close[0] for order in self.broker.orders
                      if order.alive() and order.exectype == bt.Order.Market and opens(order, self.broker))
        return (held + pending) / value


def opens(order, broker) -> bool:
    """A market order that opens or adds to its feed's position (not one that reduces it)."""
    held = broker.getposition(order.data).size
    return held == 0 or (held > 0) == (order.created.size > 0)
