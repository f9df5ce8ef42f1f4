"""Round trips from a list of fills: pure pandas, no backtrader.

A trade runs from flat to flat (a flip through zero closes one trade and opens the next),
like backtrader's own Trade; pnl accumulates over partial reductions. Computing trades
from fills, not from backtrader's Trade objects, keeps them right across walk-forward
segments, where a position is carried from one backtrader run into the next.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

FILL_COLUMNS = ["date", "size", "price", "commission"]
TRADE_COLUMNS = ["entry_date", "exit_date", "direction", "size", "entry_price", "exit_price",
                 "pnl", "pnlcomm", "bars_held"]


def round_trips(fills: pd.DataFrame, dates: pd.DatetimeIndex, opening: tuple | None = None) -> pd.DataFrame:
    """Closed trades from fills (date, signed size, price, commission) in time order.

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
    for date, fsize, price, fcomm in fills[FILL_COLUMNS].itertuples(index=False):
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
                rows.append((entry, date, "long" if peak > 0 else "short", abs(peak), avg, price,
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
