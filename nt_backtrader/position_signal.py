"""`nt-backtrader signal` for a PositionBundle: each traded asset's target weight for the next session.

The target is PositionStrategy's, taken in a backtest of the bundle as next_decision.py takes the
discrete one: the book's gross limit reads every feed's target and the wait after a stop or take-profit
leg reads the fills before, so the last `history` bars are replayed (from flat, after the warm-up) and
each asset's target on its last bar is read from the strategy (RecordedTargets). That target, decided
on the bar's close from bars <= it only, is the weight the next open trades to when it is further than
the spec's buffer from the weight held. A backtest over the same bars, or over more bars after them,
decides the same target on that bar (a test holds it).
"""
from __future__ import annotations

import math

import pandas as pd

from .config import Config
from .next_decision import HISTORY, nan_to_none, replay, table_lines
from .plugin.feeds import asset_name
from .plugin.position import PositionStrategy
from .position_bundle import MEMBERS, PositionBundle


class RecordedTargets(PositionStrategy):
    """PositionStrategy recording, on every bar a feed trades on, the target it decided, the weight the
    feed held at that close and whether the target moved past the buffer (an order at the next open)."""

    def __init__(self):
        super().__init__()
        self.decided: list[dict] = []

    def next(self):
        super().next()
        if self.warming_up():
            return
        for data in self.datas:
            if self.ready(data):
                target = self.target(data)
                self.decided.append({"date": pd.Timestamp(data.datetime.date(0)), "asset": asset_name(data),
                                     "target": target, "held": self.held_weight(data),
                                     "rebalance": target == target and self.moved(data, target)})

    def decision_table(self) -> pd.DataFrame:
        return pd.DataFrame(self.decided, columns=["date", "asset", "target", "held", "rebalance"])


def next_decisions(bundle: PositionBundle, universe: dict, config: Config, history: int = HISTORY,
                   allow_timeframe: bool = False) -> pd.DataFrame:
    """One row per traded asset: the target weight decided on its last bar, the weight held then, and each
    member's position on that bar with its weight in the blend."""
    frames, result = replay(bundle, universe, config, history, allow_timeframe, RecordedTargets)
    decided = result.strategy.decision_table()
    rows = []
    for name, frame in frames.items():
        row = decided[decided["asset"] == name].iloc[-1].to_dict()  # every asset has its last bar after the start
        close = frame["close"].to_numpy(dtype=float)
        positions = bundle.member_positions(close, name, rows=[len(close) - 1])[:, 0]
        rows.append(row | {"close": float(close[-1]),
                           "members": {member: {"position": float(position), "weight": float(weight)}
                                       for member, position, weight in zip(MEMBERS, positions, bundle.weights)}})
    return pd.DataFrame(rows)


def as_json(table: pd.DataFrame) -> list[dict]:
    return [{"asset": row["asset"], "date": str(row["date"].date()), "target": nan_to_none(row["target"]),
             "held": nan_to_none(row["held"]), "rebalance": bool(row["rebalance"]), "close": row["close"],
             "members": {name: {k: nan_to_none(v) for k, v in member.items()}
                         for name, member in row["members"].items()}}
            for row in table.to_dict("records")]


def as_text(table: pd.DataFrame) -> str:
    """The console table: one line per asset, then the members' positions and weights."""
    weight = lambda value: "-" if math.isnan(value) else f"{value:+.1%}"  # noqa: E731
    widths = {"asset": 12, "bar": 12, "target": 9, "held": 9, "trade": 7}
    lines = table_lines(widths, ((row.asset, str(row.date.date()), weight(row.target), weight(row.held),
                                  "yes" if row.rebalance else "no") for row in table.itertuples()))
    for row in table.itertuples():
        members = ", ".join(f"{name} {m['position']:+.2f} (weight {m['weight']:.2f})"
                            for name, m in row.members.items())
        lines.append(f"{row.asset} positions: {members}")
    return "\n".join(lines)
