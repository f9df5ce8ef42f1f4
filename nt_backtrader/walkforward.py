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
from .config import CLASSICAL_STRATEGIES, VOL_SCALED_STRATEGIES, Config, override
from .costs import asset_costs
from .data import as_universe, require_bars, traded
from .errors import CheckpointError, DataError
from .plugin import run_backtest
from .plugin.analyzer import FILL_TABLE, ORDER_COLUMNS
from .splits import Segment, bars_needed, split
from .traders import make_trader
from .trades import round_trips_by_asset


@dataclass
class WalkForwardResult:
    returns: pd.Series          # stitched daily out-of-sample returns of the portfolio
    equity: pd.Series           # account value at each out-of-sample close
    fills: pd.DataFrame
    orders: pd.DataFrame
    trades: pd.DataFrame        # round trips over the stitched fills, with their asset
    history: list[dict] = field(default_factory=list)  # one row per segment
    strategy: str = ""
    weights: pd.DataFrame = field(default_factory=pd.DataFrame)        # date x asset: position / equity
    contributions: pd.DataFrame = field(default_factory=pd.DataFrame)  # date x asset: part of each day's return

    def summary(self) -> dict:
        return metrics.summary(self.returns, self.fills, self.equity, len(self.trades)) | {
            "n_segments": len(self.history)}

    def per_asset(self) -> pd.DataFrame:
        """Each asset's contribution: summed daily return, its Sharpe, trades, mean absolute weight."""
        rows = {}
        for name in self.contributions.columns:
            part = self.contributions[name]
            rows[name] = {"return": float(part.sum()), "sharpe": metrics.sharpe(part),
                          "n_trades": int((self.trades["asset"] == name).sum()),
                          "mean_weight": float(self.weights[name].abs().mean())}
        table = pd.DataFrame(rows).T
        table.index.name = "asset"
        return table


def calendar_of(universe: dict[str, pd.DataFrame]) -> pd.DatetimeIndex:
    """Every date on which at least one asset has a bar: the walk-forward's clock."""
    dates = next(iter(universe.values())).index
    for frame in list(universe.values())[1:]:
        dates = dates.union(frame.index)
    return pd.DatetimeIndex(dates, name="date")


def segments_for(universe, config: Config) -> list[Segment]:
    calendar = calendar_of(as_universe(universe))
    require_bars(pd.DataFrame(index=calendar), bars_needed(config.walkforward),
                 f"the walk-forward (train_bars {config.walkforward.train_bars} + purge_bars "
                 f"{config.walkforward.purge_bars} + test_bars {config.walkforward.test_bars})")
    return split(len(calendar), config.walkforward)


def train_frames(universe: dict, end: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Every asset's bars before `end` (the end of the train window); assets with none are left out."""
    out = {name: frame.loc[frame.index < end] for name, frame in universe.items()}
    return {name: frame for name, frame in out.items() if len(frame)}


def test_frames(universe: dict, start: pd.Timestamp, last: pd.Timestamp, warmup: int,
                calendar_bars: int) -> dict[str, pd.DataFrame]:
    """Every asset's bars from `start` to `last` (inclusive), preceded by `warmup` of its own bars.

    An asset joins the first test window before which it has those warm-up bars (or as many as
    the calendar has, `calendar_bars`: an asset that starts with the calendar is always in), so
    it trades from that window's first bar on; until then it is left out. An asset whose data
    has ended stays in with its last bars, as in one continuous backtrader run: a position still
    held is valued at its last close, never dropped.
    """
    out = {}
    for name, frame in universe.items():
        first, stop = frame.index.searchsorted(start), frame.index.searchsorted(last, side="right")
        if stop > 0 and first >= min(warmup, calendar_bars):
            out[name] = frame.iloc[first - min(warmup, first):stop]
    return out


def walk_forward(universe, config: Config, trader=None, progress: bool = True,
                 checkpoint: str | Path | None = None, resume: bool = False) -> WalkForwardResult:
    """Run `trader` (default: the config's strategy) over every segment of `universe`: one
    DataFrame, or a mapping asset name -> DataFrame, each on its own calendar.

    With `checkpoint`, the state after every segment is saved there (atomically); with
    `resume`, the run continues from that file and ends exactly as an uninterrupted one.
    """
    universe = as_universe(universe)
    calendar = calendar_of(universe)
    trader = trader or make_trader(config)
    if not traded(universe, config.data):
        raise DataError(f"data.trade ({', '.join(config.data.trade)}) names no asset of the universe "
                        f"({', '.join(universe)}): name assets the data holds, or leave data.trade empty")
    segments = segments_for(universe, config)
    state = {"done": 0, "carry": None, "returns": pd.Series(dtype=float, name="returns"),
             "equity": pd.Series(dtype=float, name="equity"),
             "tables": {"fills": empty_table(FILL_TABLE), "orders": empty_table(ORDER_COLUMNS),
                        "weights": pd.DataFrame(), "contributions": pd.DataFrame()}, "history": []}
    if resume:
        if checkpoint is None or not Path(checkpoint).is_file():
            raise CheckpointError(f"no checkpoint at {checkpoint} to resume from: run without --resume")
        state = run_state.load(Path(checkpoint), config, len(segments),
                               {"fills": FILL_TABLE, "orders": ORDER_COLUMNS}, universe)
        trader.load_state_dict(state["trader"])
    returns, equity, tables, history = [state["returns"]], [state["equity"]], state["tables"], state["history"]
    carry = state["carry"]
    # disable=None: a bar on a terminal, silence in logs and pipes
    bar = tqdm(segments, desc=f"walk-forward {trader.name}", unit="segment", disable=None if progress else True,
               leave=False, initial=state["done"])
    for seg in segments[state["done"]:]:
        # nothing at or after the end of the train window
        params = trader.fit(train_frames(universe, calendar[seg.train_end]), seg, calendar)
        result, windows = trade_window(trader, universe, config, seg, calendar, params, carry)
        carry = result.carry
        returns.append(result.returns)
        equity.append(result.equity)
        tables = {name: concat(tables[name], getattr(result, name)) for name in ("fills", "orders")} | {
            name: stack(tables[name], getattr(result, name)) for name in ("weights", "contributions")}
        learned = trader.feedback(seg, result, windows)
        history.append(seg.describe(calendar) | segment_metrics(result) | learned)
        if checkpoint is not None:
            run_state.save(Path(checkpoint), config, seg.index + 1, len(segments), carry, stitch(returns),
                           stitch(equity), tables, history, trader.state_dict(),
                           run_state.data_used(universe, calendar[seg.test_end - 1]))
        bar.update(1)
        bar.set_postfix(test_end=history[-1]["test_end"], equity=f"{result.equity.iloc[-1]:,.0f}")
    bar.close()
    stitched = stitch(returns).rename("returns")
    return WalkForwardResult(returns=stitched, equity=stitch(equity).rename("equity"), fills=tables["fills"],
                             orders=tables["orders"],
                             trades=round_trips_by_asset(tables["fills"], calendar),
                             history=history, strategy=trader.name, weights=tables["weights"],
                             contributions=tables["contributions"])


def warmup_bars(trader, config: Config) -> int:
    """Bars before a test window that each backtest runs on without trading (at least one, to carry state):
    what `trader` (a trader or a bundle) needs, or walkforward.warmup_bars where that is more. The backtest
    of a bundle (`nt-backtrader backtest`) feeds the same."""
    return max(config.walkforward.warmup_bars, trader.warmup_bars, 1)


def trade_window(trader, universe: dict, config: Config, seg: Segment, calendar: pd.DatetimeIndex, params: dict,
                 carry: dict | None):
    """One backtrader run of the segment's test window with the fitted `params`, continuing the account
    `carry` left; returns the run's result and the frames it ran on."""
    test_start, test_end = calendar[seg.test_start], calendar[seg.test_end - 1]
    windows = test_frames(traded(universe, config.data), test_start, test_end, warmup_bars(trader, config),
                          seg.test_start)
    costs = config.backtest
    result = run_backtest(windows, trader.strategy, params, cash=costs.cash, commission_bps=costs.commission_bps,
                          slippage_bps=costs.slippage_bps, trade_from=test_start.date(), carry=carry,
                          costs=asset_costs(config, universe))
    return result, windows


def stack(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Date x asset tables one under the other; an asset absent from a window holds 0 there."""
    return new.copy() if old.empty else pd.concat([old, new]).fillna(0.0)


def stitch(parts: list[pd.Series]) -> pd.Series:
    return pd.concat([p for p in parts if len(p)])


def empty_table(columns: list[str]) -> pd.DataFrame:
    def dtype(column: str):
        return "datetime64[ns]" if column == "date" else (str if column in ("type", "asset") else float)

    return pd.DataFrame({c: pd.Series(dtype=dtype(c)) for c in columns})


def concat(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    return new.reset_index(drop=True) if old.empty else pd.concat([old, new], ignore_index=True)


def baseline_names(config: Config) -> tuple[str, ...]:
    """The baselines a run is compared with: for the deep-momentum core the literature's four (equal-weight
    buy-and-hold, and long-only, TSMOM and MACD each scaled to the same volatility target, long/short when
    the core may short); for the discrete timing modes the classical three."""
    return ("buy_hold",) + VOL_SCALED_STRATEGIES if config.timing.mode == "position" else CLASSICAL_STRATEGIES


def compare_baselines(frame: pd.DataFrame, config: Config, skip: str = "") -> dict[str, WalkForwardResult]:
    """Classical baselines through the same walk-forward: the same test dates, the same costs."""
    return {name: walk_forward(frame, override(config, **{"strategy.name": name}), progress=False)
            for name in baseline_names(config) if name != skip}


def segment_metrics(result) -> dict:
    r = result.returns
    return {"oos_return": float((1 + r).prod() - 1), "oos_sharpe": metrics.sharpe(r),
            "n_fills": int(len(result.fills)), "end_equity": float(result.equity.iloc[-1]),
            "asset_returns": {name: float(part.sum()) for name, part in result.contributions.items()}}
