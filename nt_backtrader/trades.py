"""Round trips from a list of fills: pure pandas, no backtrader.

A trade runs from flat to flat (a flip through zero closes one trade and opens the next),
like backtrader's own Trade; pnl accumulates over partial reductions. Computing trades
from fills, not from backtrader's Trade objects, keeps them right across walk-forward
segments, where a position is carried from one backtrader run into the next.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

FILL_COLUMNS = ["date", "asset", "size", "price", "commission"]
TRADE_COLUMNS = ["asset", "entry_date", "exit_date", "direction", "size", "entry_price", "exit_price",
                 "pnl", "pnlcomm", "bars_held"]


def round_trips(fills: pd.DataFrame, dates: pd.DatetimeIndex, opening: tuple | None = None,
                asset: str = "") -> pd.DataFrame:
    """Closed trades of one asset from its fills (date, signed size, price, commission) in time order.

    `dates` is the bar calendar; bars_held counts bars between entry and exit fills.
    `opening` = (date, size, price): a position already open before the first fill (carried
    into a walk-forward segment), so that its exit closes it instead of opening a new trade.
    """
    bar_of = {d: i for i, d in enumerate(dates)}
    rows = []
    size = avg = pnl = comm = 0.0
    peak = 0.0
    entry = None
    if opening is not None and opening[1]:
        entry, size, avg = pd.Timestamp(opening[0]), float(opening[1]), float(opening[2])
        peak = size
        bar_of.setdefault(entry, -1)
    for date, fsize, price, fcomm in fills[["date", "size", "price", "commission"]].itertuples(index=False):
        remaining, remaining_comm = fsize, fcomm
        if size != 0 and np.sign(fsize) != np.sign(size):
            closing = min(abs(fsize), abs(size))
            share = closing / abs(fsize)
            pnl += closing * (price - avg) * np.sign(size)
            comm += fcomm * share
            size += np.sign(fsize) * closing
            remaining = fsize - np.sign(fsize) * closing
            remaining_comm = fcomm * (1.0 - share)
            if size == 0 or abs(size) < 1e-12 * closing:
                rows.append((asset, entry, date, "long" if peak > 0 else "short", abs(peak), avg, price,
                             pnl, pnl - comm, bar_of[date] - bar_of[entry]))
                size = avg = pnl = comm = peak = 0.0
        if remaining != 0:
            if size == 0:
                entry, avg, peak = date, price, 0.0
            else:
                avg = (avg * size + price * remaining) / (size + remaining)
            size += remaining
            comm += remaining_comm
            peak = size if abs(size) > abs(peak) else peak
    return pd.DataFrame(rows, columns=TRADE_COLUMNS)


def round_trips_by_asset(fills: pd.DataFrame, dates: pd.DatetimeIndex, openings: dict | None = None) -> pd.DataFrame:
    """Closed trades of every asset (fills carry an `asset` column), ordered by exit date.

    `openings` maps an asset to the (date, size, price) of a position carried in.
    """
    openings = openings or {}
    names = list(dict.fromkeys([*openings, *fills["asset"]]))
    parts = [round_trips(fills[fills["asset"] == name], dates, openings.get(name), name) for name in names]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=TRADE_COLUMNS)
    return pd.concat(parts, ignore_index=True).sort_values(["exit_date", "asset"], kind="stable",
                                                           ignore_index=True)


def contributions(sizes: pd.DataFrame, closes: pd.DataFrame, fills: pd.DataFrame,
                  previous_value: pd.Series) -> pd.DataFrame:
    """Each asset's share of the daily return (date x asset); the row sums are the portfolio's return.

    An asset earns on what it held at the last close, plus, for what filled today, the move from
    the fill price to the close, less commission: exactly the change of the account's value.
    """
    traded = fills.assign(flow=fills["size"], cost=fills["size"] * fills["price"] + fills["commission"])
    by_day = traded.groupby(["date", "asset"])[["flow", "cost"]].sum()
    flow = by_day["flow"].unstack(fill_value=0.0).reindex(index=sizes.index, columns=sizes.columns, fill_value=0.0)
    cost = by_day["cost"].unstack(fill_value=0.0).reindex(index=sizes.index, columns=sizes.columns, fill_value=0.0)
    held = sizes - flow                                           # position at the last close
    pnl = held * closes.diff().fillna(0.0) + flow * closes.fillna(0.0) - cost
    return pnl.div(previous_value, axis=0)
