"""A live restart goes on as if the process had never stopped: wherever a crash cut the journal, the
restarted run's decisions, orders and fills (their numbers too: an order a restart sends again is
the journal's order going on, journaled once) are the uninterrupted run's; a rerun without new bars writes
nothing; the journal names the bundle behind each decision; history bars are not predicted on."""
from __future__ import annotations

import warnings

import pandas as pd
import pytest
from test_live import live_run

from nt_backtrader.bundle import Bundle
from nt_backtrader.checkpoint import digest
from nt_backtrader.data import load_ohlcv
from nt_backtrader.errors import DataError
from nt_backtrader.plugin import Decision, DecisionJournal
from nt_backtrader.plugin.journal import ORDER_FIELDS

APPROX = ["fraction", "equity"]  # on the cash a restart rebuilds from the journal's fills: equal to rounding


@pytest.fixture(scope="module")
def december_2018(sp500, tiny_bundle):
    """The bundle's warm-up, then 22 live bars: an entry on 2018-12-03, its stop on 12-17, the re-entry wait."""
    frame = sp500.loc[:"2018-12-31"].iloc[-(tiny_bundle.warmup_bars + 22):]
    return frame, frame.index[-22].date()


def rows(journal, *kinds):
    written = pd.read_csv(journal, parse_dates=["date"])
    return written[written["kind"].isin(kinds)].reset_index(drop=True)


def assert_same_journal(journal, expected):
    """The decisions, and the orders and fills (notifications, in the order written, order numbers too), of
    the journal `journal` are those of `expected`; the feeds' status rows are each process's own."""
    mine, theirs = rows(journal, "decision"), rows(expected, "decision")
    exact = [c for c in mine.columns if c not in APPROX]
    pd.testing.assert_frame_equal(mine[exact], theirs[exact], check_exact=True)
    pd.testing.assert_frame_equal(mine[APPROX], theirs[APPROX], check_exact=False, rtol=1e-12)
    mine, theirs = rows(journal, "order", "fill"), rows(expected, "order", "fill")
    same = ["kind", "date", "asset", "order", "status", "type", "price"]
    pd.testing.assert_frame_equal(mine[same], theirs[same], check_exact=True)
    pd.testing.assert_frame_equal(mine[["size", "commission"]], theirs[["size", "commission"]], rtol=1e-12)


def assert_fills_name_their_orders(journal):
    """Each fill's order number is that of one order journaled before it, of its asset and type."""
    written = rows(journal, "order", "fill")
    for at, fill in written[written["kind"] == "fill"].iterrows():
        before = written.iloc[:at]
        sent = before[(before["order"] == fill["order"]) & (before["status"] == "Submitted")]
        assert len(sent) == 1 and (sent[["asset", "type"]].iloc[0] == fill[["asset", "type"]]).all(), fill


def test_a_restart_after_any_cut_decides_as_the_run_that_never_stopped(tmp_path, december_2018, tiny_bundle):
    frame, live_from = december_2018
    whole = tmp_path / "whole.csv"
    live_run(frame, tiny_bundle, live_from, journal=whole, stall=0)
    assert_fills_name_their_orders(whole)
    decided = rows(whole, "decision").set_index("date")
    stop = rows(whole, "fill").query("type == 'Stop'")["date"]
    # the setting of the report: a stop fills on a bar, and the rule then waits rather than re-enter
    assert list(stop) == [pd.Timestamp("2018-12-17")] and decided.loc[stop.iloc[0], "action"] == "wait"
    assert (decided["action"] == "enter").sum() == 1 and (decided["action"] == "wait").sum() == 10
    lines = whole.read_text().splitlines(keepends=True)
    journal, after_stop = tmp_path / "cut.csv", 0
    # k: a crash in the middle of row k leaves the rows before it, as a crash right after row k - 1 does;
    # first the cut of the report: right after the stop's fill, its bar's decision cut off
    for k in sorted(range(1, len(lines) + 1), key=lambda k: ",Completed,Stop," not in lines[k - 1]):
        done = "".join(lines[:k])
        journal.write_text(done + (lines[k][:len(lines[k]) // 2] if k < len(lines) else ""))
        DecisionJournal(journal)  # opening it drops the cut row
        assert journal.read_text() == done
        after_stop += ",Completed,Stop," in lines[k - 1]
        live_run(frame, tiny_bundle, live_from, journal=journal, stall=0)  # the restarted process
        try:
            assert_same_journal(journal, whole)
            assert_fills_name_their_orders(journal)
        except AssertionError as exc:
            raise AssertionError(f"restart after row {k - 1} of {len(lines) - 1}: {exc}") from None
    assert len(lines) > 30 and after_stop == 1


@pytest.fixture(scope="module")
def late_2011(sp500, tiny_bundle, tmp_path_factory):
    """sp500 and nasdaq, 90 live bars to 2011-12-30 (nasdaq's bars a poll later), and the journal of the run
    that never stopped: an entry on each, a signal exit on each, sp500's entry again."""
    universe = {"sp500": sp500, "nasdaq": load_ohlcv(dataset="nasdaq")}
    frames = {name: frame.loc[:"2011-12-31"].iloc[-(tiny_bundle.warmup_bars + 90):] for name, frame in universe.items()}
    live_from = frames["sp500"].index[-90].date()
    whole = tmp_path_factory.mktemp("late_2011") / "whole.csv"
    live_run(frames, tiny_bundle, live_from, journal=whole, stall=(0, 1))  # nasdaq's bars come a poll later
    assert_fills_name_their_orders(whole)
    return frames, live_from, whole


def test_a_restart_between_two_feeds_decisions_of_a_bar_counts_its_account_value_once(tmp_path, late_2011,
                                                                                      tiny_bundle):
    frames, live_from, whole = late_2011
    journal = tmp_path / "cut.csv"
    lines = whole.read_text().splitlines(keepends=True)
    entry = max(k for k, line in enumerate(lines) if line.startswith("decision,") and ",sp500,enter," in line)
    cut = max(k for k in range(entry) if lines[k].startswith("decision,") and ",sp500," in lines[k])
    assert lines[cut + 1].startswith("decision,2011-12-22,nasdaq,flat,")
    # the crash cuts nasdaq's decision on the bar before sp500's last entry, which the sizer sizes on the
    # account record (drawdown, PnL over the last 21 bars): the restart must not count that bar's value twice
    journal.write_text("".join(lines[:cut + 1]) + lines[cut + 1][:40])
    live_run(frames, tiny_bundle, live_from, journal=journal, stall=(0, 1))
    assert_same_journal(journal, whole)
    assert_fills_name_their_orders(journal)


def test_a_restart_around_a_signal_exit_journals_its_legs_cancelled_once(tmp_path, late_2011, tiny_bundle):
    frames, live_from, whole = late_2011
    journal = tmp_path / "cut.csv"
    lines = whole.read_text().splitlines(keepends=True)
    exits = [k for k, line in enumerate(lines) if line.startswith("decision,") and ",exit," in line]
    assert [lines[k].split(",")[2] for k in exits] == ["nasdaq", "sp500"]
    # a crash after the exit's decision (its legs cancelled, the exit sent), or among the rows of the next bar
    # (the legs' Canceled, the exit's Submitted, Accepted and fill), or after the other feed's decision
    cuts = [k for e in exits for k in range(e, e + 8)]
    assert all(any(",Canceled,Stop," in lines[k] for k in range(e, e + 8)) for e in exits)
    for k in cuts:
        journal.write_text("".join(lines[:k + 1]) + lines[k + 1][:len(lines[k + 1]) // 2])
        live_run(frames, tiny_bundle, live_from, journal=journal, stall=(0, 1))
        try:
            assert_same_journal(journal, whole)
            assert_fills_name_their_orders(journal)
        except AssertionError as exc:
            raise AssertionError(f"restart after row {k} of {len(lines) - 1}: {exc}") from None


def test_a_rerun_without_new_bars_appends_nothing(tmp_path, december_2018, tiny_bundle):
    frame, live_from = december_2018
    journal = tmp_path / "journal.csv"
    first = live_run(frame, tiny_bundle, live_from, journal=journal)
    written = journal.read_bytes()
    again = live_run(frame, tiny_bundle, live_from, journal=journal)
    assert len(first.decisions) == 22 and again.decisions == [] and journal.read_bytes() == written


def test_the_journal_names_its_bundle_and_warns_once_when_another_goes_on(tmp_path, december_2018, tiny_bundle):
    frame, live_from = december_2018
    journal = tmp_path / "journal.csv"
    live_run(frame.iloc[:-5], tiny_bundle, live_from, journal=journal)
    mine = tiny_bundle.to_payload()["sha256"]
    assert set(rows(journal, "decision")["bundle"]) == {mine}
    payload = tiny_bundle.to_payload()
    payload["meta"] = payload["meta"] | {"note": "retrained"}
    payload["sha256"] = digest(payload)
    other = Bundle.from_payload(payload)  # the same nets, another bundle file
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        live_run(frame, other, live_from, journal=journal)
    named = [str(w.message) for w in caught if "bundle" in str(w.message)]
    assert len(named) == 1 and mine[:12] in named[0] and payload["sha256"][:12] in named[0]
    assert list(rows(journal, "decision")["bundle"]) == [mine] * 17 + [payload["sha256"]] * 5


def test_a_journal_without_the_bundle_column_is_refused_in_one_line(tmp_path, december_2018, tiny_bundle):
    frame, live_from = december_2018
    journal = tmp_path / "old.csv"
    former = ("kind", *Decision._fields, *ORDER_FIELDS)  # the columns before the bundle's
    journal.write_text(",".join(former) + "\n" + "decision,2018-11-29,sp500,flat,0,0.0,,,0,1,0,0,0.5,0.0,0.0,"
                       "2737.8,100000.0,,,,,,\n")
    with pytest.raises(DataError, match=r"old.csv was written by an older nt_backtrader \(no bundle column\); "
                                        r"move it away to start a new journal$"):
        live_run(frame, tiny_bundle, live_from, journal=journal)


def test_history_bars_of_a_live_feed_are_not_predicted(monkeypatch, sp500, december_2018, tiny_bundle):
    _, live_from = december_2018
    frame = sp500.loc["2015-01-01":"2018-12-31"]  # four years of history before the same 22 live bars
    calls = []
    predict = Bundle.predict

    def counted(self, *args, **kwargs):
        calls.append(args)
        return predict(self, *args, **kwargs)

    monkeypatch.setattr(Bundle, "predict", counted)
    live = live_run(frame, tiny_bundle, live_from, stall=0)
    assert len(frame) > 1000 and len(live.decisions) == 22 and len(calls) == 22  # one prediction per live bar
