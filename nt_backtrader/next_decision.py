"""`nt-backtrader signal`: what a bundle decides on the last bar, for the next session.

The decision is NeuralStrategy's, taken in a backtest of the bundle: the timing rule has a
state (hysteresis, the least holding period, the wait after a bracket) and the sizer reads the
account, so the last `history` bars before it are replayed with the bundle (from flat, after
its warm-up), and the last bar's decision per asset is read from the strategy. A backtest over
the same bars, or over more bars after them, takes the same decision on that bar (a test holds it).
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from . import timeframe
from .bundle import Bundle
from .config import Config
from .costs import asset_costs
from .data import require_bars, traded
from .features import compute_features
from .plugin import NeuralStrategy, run_backtest

HISTORY = 504  # bars replayed before the last one: two years, many times the longest holding period
SIDES = {1: "long", 0: "flat", -1: "short"}
STALE_BUSINESS_DAYS = 3  # older data than this is named in a warning


def replay_frames(universe: dict, bundle, history: int) -> dict[str, pd.DataFrame]:
    """Each asset's last `history` bars (0: all) after its warm-up bars."""
    frames = {}
    for name, frame in universe.items():
        require_bars(frame, bundle.warmup_bars + 1, f"a decision on {name} with this bundle (its warm-up of "
                     f"{bundle.warmup_bars} bars and one more)")
        frames[name] = frame.iloc[-(bundle.warmup_bars + history):] if history else frame
    return frames


def replay(bundle, universe: dict, config: Config, history: int, allow_timeframe: bool, strategy: type):
    """(each traded asset's replayed frame, the backtest of `strategy` with `bundle` over them): the run
    whose last bar's decisions are the signal's, for a Bundle (NeuralStrategy) or a PositionBundle."""
    traded_universe = traded(universe, config.data)
    if not allow_timeframe:  # the strategies refuse it too, but bars of another timeframe first fail the count
        for name, frame in traded_universe.items():
            timeframe.check(bundle.timeframe, timeframe.of_index(frame.index), name)
    frames = replay_frames(traded_universe, bundle, history)
    # from the first asset's first decidable bar: each asset is decided from its own (no view before)
    start = min(frame.index[bundle.warmup_bars] for frame in frames.values())
    costs = config.backtest
    return frames, run_backtest(frames, strategy, {"bundle": bundle, "cash_buffer": costs.cash_buffer,
                                                   "allow_timeframe": allow_timeframe},
                                cash=costs.cash, commission_bps=costs.commission_bps,
                                slippage_bps=costs.slippage_bps, trade_from=start.date(),
                                costs=asset_costs(config, universe))


def next_decisions(bundle: Bundle, universe: dict, config: Config, history: int = HISTORY,
                   allow_timeframe: bool = False) -> pd.DataFrame:
    """One row per traded asset: the decision on its last bar, with every ensemble member's vote."""
    frames, result = replay(bundle, universe, config, history, allow_timeframe, NeuralStrategy)
    decisions = result.strategy.decision_table()
    rows = []
    for name, frame in frames.items():
        mine = decisions[decisions["asset"] == name]
        row = mine.iloc[-1].to_dict()  # every asset has its last bar after the start
        rows.append(row | {"votes": votes(bundle, frame, name)})
    return pd.DataFrame(rows)


def votes(bundle: Bundle, frame: pd.DataFrame, asset: str) -> dict[str, dict]:
    """Each ensemble member's p(long), p(short) on the frame's last bar, and its weight."""
    arrays = [frame[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close", "volume")]
    scaled = bundle.scaler_for(asset).transform(compute_features(*arrays))
    p_long, p_short = bundle.member_probabilities(scaled, arrays[3], np.array([len(frame) - 1]))
    return {name: {"p_long": float(pl[-1]), "p_short": float(ps[-1]), "weight": float(w)}
            for name, pl, ps, w in zip(bundle.ensemble.members.names, p_long, p_short, bundle.ensemble.weights)}


def stale(table: pd.DataFrame, today: dt.date) -> list[str]:
    """'asset (last bar)' for every decision resting on a bar older than a few business days."""
    return [f"{row.asset} ({row.date.date()})" for row in table.itertuples()
            if np.busday_count(row.date.date(), today) > STALE_BUSINESS_DAYS]


def as_json(table: pd.DataFrame) -> list[dict]:
    return [{"asset": row["asset"], "date": str(row["date"].date()), "action": row["action"],
             "side": SIDES[int(row["side"])], "fraction": row["fraction"], "stop": nan_to_none(row["stop"]),
             "take": nan_to_none(row["take"]), "confidence": nan_to_none(row["confidence"]),
             "p_long": nan_to_none(row["p_long"]), "p_short": nan_to_none(row["p_short"]), "close": row["close"],
             "votes": {name: {k: nan_to_none(v) for k, v in vote.items()} for name, vote in row["votes"].items()}}
            for row in table.to_dict("records")]


def nan_to_none(value: float):
    return None if value != value else float(value)


def table_lines(widths: dict[str, int], rows) -> list[str]:
    """A console table: the column names, then a line per row of cells (strings), each column as wide as
    `widths` says, the first (the asset) left-aligned, the others right-aligned. Shared by both signals."""
    def line(cells) -> str:
        (first, *rest), (width, *others) = cells, widths.values()
        return f"{first:<{width}}" + "".join(f"{cell:>{w}}" for cell, w in zip(rest, others))
    return [line(widths), *(line(cells) for cells in rows)]


def as_text(table: pd.DataFrame) -> str:
    """The console table: one line per asset, then the members' votes."""
    widths = {"asset": 12, "bar": 12, "action": 9, "side": 7, "fraction": 10, "stop": 11, "take": 11, "confidence": 12}
    lines = table_lines(widths, ((row.asset, str(row.date.date()), row.action, SIDES[int(row.side)],
                                  f"{row.fraction:.1%}", *(f"{v:.2f}" if v == v else "-" for v in (row.stop, row.take)),
                                  f"{row.confidence:.2f}") for row in table.itertuples()))
    for row in table.itertuples():
        ballots = ", ".join(f"{name} {v['p_long']:.2f}/{v['p_short']:.2f} (weight {v['weight']:.2f})"
                            for name, v in row.votes.items())
        lines.append(f"{row.asset} votes p(long)/p(short): {ballots}; ensemble {row.p_long:.2f}/{row.p_short:.2f}")
    return "\n".join(lines)
