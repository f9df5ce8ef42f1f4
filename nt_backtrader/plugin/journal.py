"""The decision journal: every decision, order and fill of NeuralStrategy as CSV rows on disk.

Live, a decision is worth keeping the moment it is taken: each bar's rows (the orders and fills
notified on that bar, then its decision) are appended with one write to a file opened for
appending, then fsync'd, so a crash loses at most the bar that was being decided. A crash may
still cut that write anywhere: the cut row is dropped, and the rows before it stand. A restarted
strategy reads its rule's state (wanted side, age, re-entry wait) back from the journal's last
decision per asset, plus the stops and take-profits journaled after it (a bracket that filled on
the bar whose decision was cut starts its re-entry wait, as it did in the run that crashed), and
goes on from the bar after it, writing nothing twice. On backtrader's simulated broker (a dry
run) the account is rebuilt from the journal too: cash, positions, their brackets, our orders
still out. Each decision names the bundle (its SHA-256) that made it.

Orders are named by the journal's own number (its `order` column), not by backtrader's reference,
which starts again at 1 in every process: 1, 2, ... in the order each is first journaled, going on
from the journal's largest after a restart, so that one number is one order in the whole file and a
fill names the order it filled. An order a restarted dry run sends again (a bracket leg, an entry or
exit still out) is the journal's order going on: it keeps the journal's number, the notifications
the journal has already (Submitted, Accepted) are not written again, and the ones it has not (its
Completed, Canceled, Expired) are written under that number. An order the journal has out that the
restart does not send again (the other leg of a bracket that filled on the bar whose decision was
cut, the legs our exit still out had cancelled) is written Canceled, where the run that crashed had
its cancellation.
"""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import NamedTuple

import backtrader as bt
import pandas as pd

from ..data import atomic_write_text
from ..decisions import RECENT_PNL_BARS, AccountRecord
from ..errors import DataError


class Decision(NamedTuple):
    """One feed's decision on one bar's close (what NeuralStrategy did, and why)."""

    date: object          # the bar decided on
    asset: str
    # enter | exit | hold | flat | wait (re-entry wait after a bracket) | pending (an order of ours is out)
    action: str
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


ORDER_FIELDS = ("order", "status", "type", "size", "price", "commission")  # order: the journal's number of it
COLUMNS = ("kind", *Decision._fields, "bundle", *ORDER_FIELDS)  # bundle: the SHA-256 of the one that decided
FORMER_COLUMNS = ("kind", *Decision._fields, *ORDER_FIELDS)     # journals written before they named it
STATE_FIELDS = ("wanted", "age", "blocked", "blocked_bars")
LEGS = {"Stop": "stop", "Limit": "take"}  # NeuralStrategy's own orders are Market: these are its brackets
DONE = ("Completed", "Canceled", "Margin", "Rejected", "Expired")  # an order that is no longer out


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
        self.numbers: dict[int, int] = {}         # backtrader's order reference -> the journal's number
        self.written: dict[int, set[str]] = {}    # number -> statuses journaled already, of an order sent again
        self._last_number: int | None = None      # the largest number given (read from the file at first need)
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

    def add_decision(self, decision: Decision, bundle: str) -> None:
        """`bundle`: the digest of the bundle that made the decision."""
        self.pending.append({"kind": "decision", **decision._asdict(), "bundle": bundle})

    def add_event(self, kind: str, date, asset: str, **fields) -> None:
        """An order or fill notification ('order', 'fill'), or a feed's state change ('status')."""
        self.pending.append({"kind": kind, "date": date, "asset": asset, **fields})

    def order_number(self, ref: int) -> int:
        """The journal's number of backtrader's order `ref`: the next one after the journal's largest the
        first time the order is journaled."""
        if ref not in self.numbers:
            if self._last_number is None:
                numbers = self.read()["order"]
                self._last_number = int(numbers.max()) if numbers.notna().any() else 0
            self._last_number += 1
            self.numbers[ref] = self._last_number
        return self.numbers[ref]

    def adopt(self, ref: int, number: int, statuses) -> None:
        """Backtrader's order `ref`, sent again by a restart, is the journal's order `number`, whose
        `statuses` are journaled already."""
        self.numbers[ref] = number
        self.written[number] = set(statuses)

    def has(self, number: int, status: str) -> bool:
        """The journal has this notification of an order sent again by a restart already."""
        return status in self.written.get(number, ())

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
        """Every row, in the order written."""
        try:
            table = pd.read_csv(self.path, parse_dates=["date"],  # pandas >= 3 reads floats back bit for bit
                                dtype={c: str for c in ("kind", "asset", "action", "bundle", "status", "type")})
        except (ValueError, pd.errors.ParserError) as exc:
            raise DataError(f"{self.path} is not a decision journal ({exc}); move it away to start a new one") \
                from None
        if tuple(table.columns) == FORMER_COLUMNS:
            raise DataError(f"{self.path} was written by an older nt_backtrader (no bundle column); move it away "
                            "to start a new journal")
        if tuple(table.columns) != COLUMNS:
            raise DataError(f"{self.path} has other columns than a decision journal; move it away to start a new one")
        return table

    def restart(self) -> tuple[dict[str, dict], AccountRecord | None]:
        """What a restarted strategy goes on from: per asset the date of its last journaled decision, the
        rule's state after it, the bundle that made it, and the brackets that filled after it ('bracket_exits':
        (kind, direction of the position closed)); and the account record (peak and recent values) as the
        journal saw it."""
        table = self.read()
        decisions = table[table["kind"] == "decision"]
        if decisions.empty:
            return {}, None
        last = decisions.groupby("asset", sort=False).tail(1)
        if last[["date", "bundle", *STATE_FIELDS]].isna().any(axis=None):
            raise DataError(f"{self.path}: a decision row lacks its date, rule state or bundle; repair the journal "
                            "or move it away to start a new one")
        states = {}
        for row in last.itertuples():
            after = _rows_after(table, row)
            legs = after[(after["kind"] == "fill") & after["type"].isin(list(LEGS))]
            states[row.asset] = {"date": row.date.date(), **{k: int(getattr(row, k)) for k in STATE_FIELDS},
                                 "bundle": row.bundle,
                                 "bracket_exits": [(LEGS[leg.type], -_sign(leg.size)) for leg in legs.itertuples()]}
        values = decisions.groupby("date", sort=True)["equity"].first().dropna()
        account = AccountRecord(float(values.max()), [float(v) for v in values.iloc[-RECENT_PNL_BARS - 1:]])
        return states, account

    def book(self) -> tuple[float, dict[str, dict]]:
        """A simulated account as the journal left it: the cash (the first decision's equity, before any
        order, less what every fill cost), and per asset what NeuralStrategy.asset_carry would carry (the
        position, the bracket levels guarding it, our entry or exit still out) plus 'resume_on', the bar on
        which the run that wrote it had those orders out (its last decision, or a later entry fill whose
        bracket legs became active on the bar after it), and 'orders': the journal's orders of that asset still
        out ({'order': its number, 'type', 'size', 'price', 'statuses': those journaled}, first journaled first),
        which the orders a restart sends again continue."""
        table = self.read()
        decisions = table[table["kind"] == "decision"]
        fills = table[table["kind"] == "fill"]
        spent = float((fills["size"] * fills["price"] + fills["commission"]).sum())
        last = decisions.groupby("asset", sort=False).tail(1)
        return float(decisions["equity"].iloc[0]) - spent, {row.asset: _held(table, row) for row in last.itertuples()}


def _cell(value):
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value


def _sign(value: float) -> int:
    return int(value > 0) - int(value < 0)


def _rows_after(table: pd.DataFrame, row) -> pd.DataFrame:
    """The asset's rows written after its decision `row` (an itertuples row of `table`)."""
    after = table.iloc[row.Index + 1:]
    return after[after["asset"] == row.asset]


def _held(table: pd.DataFrame, last) -> dict:
    """One asset's part of book(): `last` is its last decision."""
    rows = table[table["asset"] == last.asset]
    fills = rows[rows["kind"] == "fill"]
    position = bt.Position()
    for fill in fills.itertuples():  # backtrader's own arithmetic: the size and price its broker had
        position.update(fill.size, fill.price)
    after = _rows_after(table, last)
    ours_done = ((after["type"] == "Market") & after["status"].isin(DONE)).any()
    out = last.action in ("enter", "exit", "pending") and not ours_done
    levels = [last.stop, last.take] if last.stop == last.stop else None
    entry = {"size": last.side * last.fraction * last.equity / last.close, "levels": levels} \
        if out and not position.size else None
    filled_after = fills.loc[fills.index > last.Index, "date"]
    return {"size": position.size, "price": position.price, "levels": levels if position.size else None,
            "entry": entry, "exit": out and bool(position.size),
            "resume_on": (filled_after.iloc[-1] if len(filled_after) else last.date).date(),
            "orders": _still_out(rows)}


def _still_out(rows: pd.DataFrame) -> list[dict]:
    """One asset's orders whose notifications in the journal (`rows`) end before one of DONE."""
    notified = rows[rows["kind"].isin(["order", "fill"]) & rows["order"].notna()]
    out = []
    for number, notes in notified.groupby("order", sort=False):
        if not notes["status"].isin(DONE).any():
            first = notes.iloc[0]
            out.append({"order": int(number), "type": first["type"], "size": float(first["size"]),
                        "price": float(first["price"]), "statuses": list(notes["status"])})
    return out
