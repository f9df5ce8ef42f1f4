"""The decision journal: every decision, order and fill of NeuralStrategy as CSV rows on disk.

Live, a decision is worth keeping the moment it is taken: each bar's rows are appended with one
write to a file opened for appending, then fsync'd, so a crash loses at most the bar that was
being decided (and never leaves half a row: a single append of a few hundred bytes is not
interleaved or split on a local file system). A restarted strategy reads its rule's state
(wanted side, age, re-entry wait) back from the journal's last decision per asset and goes on
from the bar after it, writing nothing twice.
"""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from ..data import atomic_write_text
from ..decisions import RECENT_PNL_BARS, AccountRecord
from ..errors import DataError


class Decision(NamedTuple):
    """One feed's decision on one bar's close (what NeuralStrategy did, and why)."""

    date: object          # the bar decided on
    asset: str
    action: str           # enter | exit | hold | flat | wait (re-entry wait after a bracket) | pending (an order of ours is out)
    side: int             # the position after the next open: -1, 0, +1
    fraction: float       # |position value| / equity after the next open (entries: what was ordered)
    stop: float           # the stop-loss price guarding that position (NaN: none)
    take: float           # its take-profit price
    wanted: int           # the timing rule's side, before the re-entry wait
    age: int              # bars the rule has wanted it
    blocked: int          # the side in a re-entry wait (0: none)
    blocked_bars: int     # bars left in that wait
    p_long: float         # the ensemble's probabilities on this bar
    p_short: float
    confidence: float
    close: float
    equity: float         # the account's value at this close


ORDER_FIELDS = ("order", "status", "type", "size", "price", "commission")
COLUMNS = ("kind", *Decision._fields, *ORDER_FIELDS)
STATE_FIELDS = ("wanted", "age", "blocked", "blocked_bars")


def decision_table(decisions: list[Decision]) -> pd.DataFrame:
    table = pd.DataFrame(decisions, columns=Decision._fields)
    table["date"] = pd.to_datetime(table["date"])
    return table


class DecisionJournal:
    """An append-only CSV of decisions (kind 'decision'), orders and fills ('order', 'fill') and live feeds'
    state changes ('status')."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.pending: list[dict] = []
        if not self.path.exists():
            atomic_write_text(self.path, ",".join(COLUMNS) + "\n")
        else:
            self._drop_partial_row()

    def _drop_partial_row(self) -> None:
        """A crash in the middle of an append (power loss) can leave a row without its end: it is cut off,
        so that the next append starts on a line of its own."""
        text = self.path.read_bytes()
        if text and not text.endswith(b"\n"):
            with open(self.path, "r+b") as handle:
                handle.truncate(text.rfind(b"\n") + 1)

    def add_decision(self, decision: Decision) -> None:
        self.pending.append({"kind": "decision", **decision._asdict()})

    def add_event(self, kind: str, date, asset: str, **fields) -> None:
        """An order or fill notification ('order', 'fill'), or a feed's state change ('status')."""
        self.pending.append({"kind": kind, "date": date, "asset": asset, **fields})

    def flush(self) -> None:
        """Append what was added since the last flush: one write, then fsync."""
        if not self.pending:
            return
        text = io.StringIO()
        writer = csv.DictWriter(text, COLUMNS, lineterminator="\n")
        writer.writerows({k: _cell(v) for k, v in row.items()} for row in self.pending)
        data = text.getvalue().encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)
        self.pending = []

    def read(self) -> pd.DataFrame:
        try:
            table = pd.read_csv(self.path, parse_dates=["date"], dtype={"kind": str, "asset": str, "action": str})
        except (ValueError, pd.errors.ParserError) as exc:
            raise DataError(f"{self.path} is not a decision journal ({exc}); move it away to start a new one") \
                from None
        if list(table.columns) != list(COLUMNS):
            raise DataError(f"{self.path} has other columns than a decision journal; move it away to start a new one")
        return table

    def restart(self) -> tuple[dict[str, dict], AccountRecord | None]:
        """What a restarted strategy goes on from: per asset the date of its last journaled decision and the
        rule's state after it, and the account record (peak and recent values) as the journal saw it."""
        decisions = self.read()
        decisions = decisions[decisions["kind"] == "decision"]
        if decisions.empty:
            return {}, None
        last = decisions.groupby("asset", sort=False).tail(1)
        if last[["date", *STATE_FIELDS]].isna().any(axis=None):
            raise DataError(f"{self.path}: a decision row lacks its date or rule state; repair the journal or move "
                            "it away to start a new one")
        states = {row.asset: {"date": row.date.date(), **{k: int(getattr(row, k)) for k in STATE_FIELDS}}
                  for row in last.itertuples()}
        values = decisions.groupby("date", sort=True)["equity"].first().dropna()
        account = AccountRecord(float(values.max()), [float(v) for v in values.iloc[-RECENT_PNL_BARS - 1:]])
        return states, account


def _cell(value):
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value
