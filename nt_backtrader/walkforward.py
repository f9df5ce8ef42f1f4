"""The walk-forward orchestrator: fit -> backtest -> feedback, segment by segment.

Each segment's trader sees its train window only; its test window is one backtrader run
that starts with warm-up bars (no orders) and the state the previous run ended with, so the
stitched out-of-sample returns are those of one account trading continuously.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from tqdm.auto import tqdm

from . import metrics
from .config import Config, override
from .data import require_bars
from .plugin import run_backtest
from .splits import Segment, bars_needed, split
from .trades import round_trips
from .traders import make_trader


@dataclass
class WalkForwardResult:
    returns: pd.Series          # stitched daily out-of-sample returns
    equity: pd.Series           # account value at each out-of-sample close
    fills: pd.DataFrame
    orders: pd.DataFrame
    trades: pd.DataFrame        # round trips over the stitched fills
    history: list[dict] = field(default_factory=list)  # one row per segment
    strategy: str = ""

    def summary(self) -> dict:
        return metrics.summary(self.returns, self.fills, self.equity, len(self.trades)) | {
            "n_segments": len(self.history)}


def segments_for(frame: pd.DataFrame, config: Config) -> list[Segment]:
    require_bars(frame, bars_needed(config.walkforward),
                 f"the walk-forward (train_bars {config.walkforward.train_bars} + purge_bars "
                 f"{config.walkforward.purge_bars} + test_bars {config.walkforward.test_bars})")
    return split(len(frame), config.walkforward)


def walk_forward(frame: pd.DataFrame, config: Config, trader=None, progress: bool = True) -> WalkForwardResult:
    """Run `trader` (default: the config's strategy) over every segment of `frame`."""
    trader = trader or make_trader(config)
    segments = segments_for(frame, config)
    warmup = max(config.walkforward.warmup_bars, trader.warmup_bars, 1)
    costs = config.backtest
    carry = None
    parts, history = [], []
    # disable=None: a bar on a terminal, silence in logs and pipes
    bar = tqdm(segments, desc=f"walk-forward {trader.name}", unit="segment", disable=None if progress else True,
               leave=False)
    for seg in bar:
        params = trader.fit(frame.iloc[:seg.train_end], seg)  # nothing at or after train_end
        window = frame.iloc[max(0, seg.test_start - warmup):seg.test_end]
        result = run_backtest(window, trader.strategy, params, cash=costs.cash,
                              commission_bps=costs.commission_bps, slippage_bps=costs.slippage_bps,
                              trade_from=frame.index[seg.test_start].date(), carry=carry)
        carry = result.carry
        parts.append(result)
        learned = trader.feedback(seg, result)
        history.append(seg.describe(frame.index) | segment_metrics(result) | learned)
        bar.set_postfix(test_end=history[-1]["test_end"], equity=f"{result.equity.iloc[-1]:,.0f}")
    returns = pd.concat([p.returns for p in parts])
    fills = pd.concat([p.fills for p in parts], ignore_index=True)
    return WalkForwardResult(
        returns=returns, equity=pd.concat([p.equity for p in parts]), fills=fills,
        orders=pd.concat([p.orders for p in parts], ignore_index=True),
        trades=round_trips(fills, returns.index), history=history, strategy=trader.name)


def compare_baselines(frame: pd.DataFrame, config: Config, skip: str = "") -> dict[str, dict]:
    """Classical baselines through the same walk-forward: the same test dates, the same costs."""
    from .traders import CLASSICAL

    out = {}
    for name in CLASSICAL:
        if name != skip:
            out[name] = walk_forward(frame, override(config, **{"strategy.name": name}), progress=False).summary()
    return out


def segment_metrics(result) -> dict:
    r = result.returns
    return {"oos_return": float((1 + r).prod() - 1), "oos_sharpe": metrics.sharpe(r),
            "n_fills": int(len(result.fills)), "end_equity": float(result.equity.iloc[-1])}
