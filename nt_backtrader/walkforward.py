"""The walk-forward orchestrator: fit -> backtest -> feedback, segment by segment.

Each segment's trader sees its train window only; its test window is one backtrader run
that starts with warm-up bars (no orders) and the state the previous run ended with, so the
stitched out-of-sample returns are those of one account trading continuously.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from . import metrics, run_state
from .config import CLASSICAL_STRATEGIES, Config, override
from .data import require_bars
from .errors import CheckpointError
from .plugin import run_backtest
from .plugin.analyzer import FILL_TABLE, ORDER_COLUMNS
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


def walk_forward(frame: pd.DataFrame, config: Config, trader=None, progress: bool = True,
                 checkpoint: str | Path | None = None, resume: bool = False) -> WalkForwardResult:
    """Run `trader` (default: the config's strategy) over every segment of `frame`.

    With `checkpoint`, the state after every segment is saved there (atomically); with
    `resume`, the run continues from that file and ends exactly as an uninterrupted one.
    """
    trader = trader or make_trader(config)
    segments = segments_for(frame, config)
    warmup = max(config.walkforward.warmup_bars, trader.warmup_bars, 1)
    costs = config.backtest
    state = {"done": 0, "carry": None, "returns": pd.Series(dtype=float, name="returns"),
             "equity": pd.Series(dtype=float, name="equity"),
             "tables": {"fills": empty_table(FILL_TABLE), "orders": empty_table(ORDER_COLUMNS)}, "history": []}
    if resume:
        if checkpoint is None or not Path(checkpoint).is_file():
            raise CheckpointError(f"no checkpoint at {checkpoint} to resume from: run without --resume")
        state = run_state.load(Path(checkpoint), config, len(segments),
                               {"fills": FILL_TABLE, "orders": ORDER_COLUMNS})
        trader.load_state_dict(state["trader"])
    returns, equity, tables, history = [state["returns"]], [state["equity"]], state["tables"], state["history"]
    carry = state["carry"]
    # disable=None: a bar on a terminal, silence in logs and pipes
    bar = tqdm(segments, desc=f"walk-forward {trader.name}", unit="segment", disable=None if progress else True,
               leave=False, initial=state["done"])
    for seg in segments[state["done"]:]:
        params = trader.fit(frame.iloc[:seg.train_end], seg)  # nothing at or after train_end
        window = frame.iloc[max(0, seg.test_start - warmup):seg.test_end]
        result = run_backtest(window, trader.strategy, params, cash=costs.cash,
                              commission_bps=costs.commission_bps, slippage_bps=costs.slippage_bps,
                              trade_from=frame.index[seg.test_start].date(), carry=carry)
        carry = result.carry
        returns.append(result.returns)
        equity.append(result.equity)
        tables = {"fills": concat(tables["fills"], result.fills), "orders": concat(tables["orders"], result.orders)}
        learned = trader.feedback(seg, result, window)
        history.append(seg.describe(frame.index) | segment_metrics(result) | learned)
        if checkpoint is not None:
            run_state.save(Path(checkpoint), config, seg.index + 1, len(segments), carry, stitch(returns),
                           stitch(equity), tables, history, trader.state_dict())
        bar.update(1)
        bar.set_postfix(test_end=history[-1]["test_end"], equity=f"{result.equity.iloc[-1]:,.0f}")
    bar.close()
    stitched = stitch(returns).rename("returns")
    return WalkForwardResult(returns=stitched, equity=stitch(equity).rename("equity"), fills=tables["fills"],
                             orders=tables["orders"], trades=round_trips(tables["fills"], stitched.index),
                             history=history, strategy=trader.name)


def stitch(parts: list[pd.Series]) -> pd.Series:
    return pd.concat([p for p in parts if len(p)])


def empty_table(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c == "date" else (object if c == "type" else float))
                         for c in columns})


def concat(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    return new.reset_index(drop=True) if old.empty else pd.concat([old, new], ignore_index=True)


def compare_baselines(frame: pd.DataFrame, config: Config, skip: str = "") -> dict[str, dict]:
    """Classical baselines through the same walk-forward: the same test dates, the same costs."""
    out = {}
    for name in CLASSICAL_STRATEGIES:
        if name != skip:
            out[name] = walk_forward(frame, override(config, **{"strategy.name": name}), progress=False).summary()
    return out


def segment_metrics(result) -> dict:
    r = result.returns
    return {"oos_return": float((1 + r).prod() - 1), "oos_sharpe": metrics.sharpe(r),
            "n_fills": int(len(result.fills)), "end_equity": float(result.equity.iloc[-1])}
