"""The data shipped inside the package: the 28-market panel's files and its class map (see panel/NOTICE).

Read through importlib.resources, so an installed package finds its files wherever it lives.
"""
from __future__ import annotations

import csv
import functools
from importlib import resources
from importlib.resources.abc import Traversable

PANEL = "panel"
# A panel run ends here unless data.end says otherwise: GDX's last bar, the earliest last bar of the 28,
# so no asset stops before the run does. 16 more end by 2018-04 (SPY), the FX pairs in 2018-12, gold in
# 2019-02; six run on to 2021-03, when an equal-weight book of what is left is mostly AAPL.
PANEL_END = "2018-03-01"


def panel_folder() -> Traversable:
    return resources.files(__name__) / PANEL


def panel_file(ticker: str) -> Traversable:
    """The gzip CSV of one panel ticker (Date,Open,High,Low,Close,AdjClose,Volume)."""
    return panel_folder() / f"{ticker}.csv.gz"


@functools.cache
def panel_table() -> tuple[dict[str, str], ...]:
    """classes.csv's rows in its order: ticker, class, source (repository), licence."""
    with (panel_folder() / "classes.csv").open(encoding="utf-8", newline="") as handle:
        return tuple(csv.DictReader(handle))


def panel_classes() -> dict[str, str]:
    """Ticker -> asset class of the 28 panel assets, in the panel's order (by class)."""
    return {row["ticker"]: row["class"] for row in panel_table()}
