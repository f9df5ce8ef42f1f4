"""One backtrader run of one strategy over one universe: the unit the walk-forward repeats."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import backtrader as bt
import pandas as pd

from ..data import as_universe
from .analyzer import PnLFeedback
from .broker import cost_broker
from .feeds import frame_feed


@dataclass
class BacktestResult:
    returns: pd.Series      # daily returns of the trading bars
    equity: pd.Series       # account value at each trading bar's close
    fills: pd.DataFrame     # date, asset, size (signed), price, commission, type
    orders: pd.DataFrame    # date decided, asset, size (signed), type, price
    trades: pd.DataFrame    # round trips closed in this run (a carried-in position included)
    weights: pd.DataFrame   # date x asset: position value / equity at each trading bar's close
    contributions: pd.DataFrame  # date x asset: each asset's part of the daily return
    sizing: pd.DataFrame    # one row per entry a NeuralSizer sized (plugin.sizer.SizingRecord's fields)
    carry: dict             # state for the next segment's run (SegmentStrategy.carry_out)
    strategy: bt.Strategy   # the finished strategy, for diagnostics


def run_backtest(frames, strategy: type[bt.Strategy], params: dict | None = None, *,
                 cash: float = 100_000.0, commission_bps: float = 1.0, slippage_bps: float = 1.0,
                 trade_from: dt.date | None = None, carry: dict | None = None, runonce: bool = True,
                 costs: Mapping[str, tuple[float, float]] | None = None) -> BacktestResult:
    """Run `strategy` over one feed per asset of `frames` (a DataFrame or a name -> DataFrame mapping);
    bars before `trade_from` are warm-up; `carry` resumes a run. `costs`: asset name -> (commission_bps,
    slippage_bps) per side (costs.asset_costs); assets it does not name pay commission_bps and slippage_bps.

    runonce=False makes backtrader (and NeuralSignal) work bar by bar instead of in batches.
    """
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    for name, frame in as_universe(frames).items():
        cerebro.adddata(frame_feed(frame, name))
    cerebro.setbroker(cost_broker(carry["cash"] if carry else cash, commission_bps, slippage_bps, costs))
    cerebro.addstrategy(strategy, trade_from=trade_from, carry=carry, **(params or {}))
    openings = {name: (carry["date"], held["size"], held["price"])
                for name, held in (carry or {}).get("assets", {}).items() if held["size"]}
    cerebro.addanalyzer(PnLFeedback, _name="pnl", trade_from=trade_from, openings=openings)
    (strat,) = cerebro.run(maxcpus=1)
    report = strat.analyzers.pnl.get_analysis()
    carry_out = getattr(strat, "carry_out", None)
    return BacktestResult(report["returns"], report["equity"], report["fills"], report["orders"], report["trades"],
                          report["weights"], report["contributions"], report["sizing"],
                          carry_out() if carry_out else {}, strat)
