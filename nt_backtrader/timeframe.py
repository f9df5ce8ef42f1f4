"""The bar timeframe a bundle was trained on, and the guard that refuses feeds of another one.

Features, label horizons, bracket distances and holding periods are all counted in bars: a
bundle trained on daily bars and given 5-minute bars (or a weekly resample) would trade them
without a word, with every horizon wrong. A timeframe is backtrader's pair (name, compression),
e.g. ("Days", 1); the name is one of bt.TimeFrame.Names, so a feed's own pair compares directly.
"""
from __future__ import annotations

import pandas as pd

from .errors import DataError

DAILY = ("Days", 1)
# the largest median gap between bars, in days, of each timeframe a validated frame can have
# (one row per date: intraday data cannot get through load_ohlcv)
_GAPS = ((4.0, "Days"), (10.0, "Weeks"), (45.0, "Months"))


def of_index(index: pd.DatetimeIndex) -> tuple[str, int]:
    """The timeframe of a frame's dates, from the median gap between bars (weekends and holidays
    make daily bars 1-4 days apart)."""
    if len(index) < 2:
        return DAILY
    gap = float(pd.Series(index).diff().dropna().median() / pd.Timedelta(days=1))
    return next(((name, 1) for most, name in _GAPS if gap <= most), ("Years", 1))


def check(trained, given, feed: str) -> None:
    """One line naming both timeframes when a feed's bars are not the bundle's."""
    trained, given = (str(trained[0]), int(trained[1])), (str(given[0]), int(given[1]))
    if trained != given:
        raise DataError(f"feed '{feed}' has {given[1]} x {given[0]} bars, the bundle was trained on "
                        f"{trained[1]} x {trained[0]} bars: its features, horizons and brackets count those; give "
                        f"it {trained[1]} x {trained[0]} bars, or pass allow_timeframe=True (--allow-timeframe on the "
                        "command line) if you know what you do")
