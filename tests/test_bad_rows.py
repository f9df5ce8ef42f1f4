"""Bad rows and names the loader used to take without a word: each is now repaired with one warning
or refused with one line that names the file and what to do (issue #17, point 7)."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

from nt_backtrader.cli import main
from nt_backtrader.data import load_csv, load_ohlcv, load_universe
from nt_backtrader.errors import ConfigError, DataError

from conftest import yahoo_csv

PANEL_SPY = Path("/work/shared/data/panel/SPY.csv")
RANGE_WARNING = "had the open or close outside the high-low range"


def range_warnings(record) -> list[str]:
    return [str(w.message) for w in record if RANGE_WARNING in str(w.message)]


def test_an_open_or_close_outside_the_range_widens_it_with_one_warning_per_asset(tmp_path, sp500_short):
    bars = sp500_short.iloc[:10].copy()
    bars.iloc[2, bars.columns.get_loc("open")] = bars["low"].iloc[2] - 1.0   # opens below its low
    bars.iloc[5, bars.columns.get_loc("close")] = bars["high"].iloc[5] + 2.0  # closes above its high
    bars.iloc[7, bars.columns.get_loc("open")] = bars["high"].iloc[7] + 0.5   # opens above its high
    yahoo_csv(tmp_path / "spy.csv", bars)
    yahoo_csv(tmp_path / "qqq.csv", bars)
    with pytest.warns(UserWarning) as record:
        universe = load_universe(csv=[str(tmp_path / "spy.csv"), str(tmp_path / "qqq.csv")])
    assert range_warnings(record) == [
        f"{tmp_path / name}.csv: 3 bars had the open or close outside the high-low range (first "
        f"{bars.index[2].date()}); widened the range to include them" for name in ("spy", "qqq")]
    frame = universe["spy"]
    expected = bars.copy()
    expected.loc[bars.index[2], "low"] = bars["open"].iloc[2]
    expected.loc[bars.index[5], "high"] = bars["close"].iloc[5]
    expected.loc[bars.index[7], "high"] = bars["open"].iloc[7]
    pd.testing.assert_frame_equal(frame, expected, check_freq=False, check_names=False, rtol=1e-12)
    assert ((frame["low"] <= frame[["open", "close"]].min(axis=1)) &
            (frame[["open", "close"]].max(axis=1) <= frame["high"])).all()


@pytest.mark.skipif(not PANEL_SPY.is_file(), reason="the shared panel is not on this machine")
def test_the_panel_spy_file_loads_with_its_two_bars_widened():
    with pytest.warns(UserWarning) as record:
        frame = load_universe(csv=str(PANEL_SPY))["SPY"]
    assert range_warnings(record) == [f"{PANEL_SPY}: 2 bars had the open or close outside the high-low range "
                                      "(first 2015-03-05); widened the range to include them"]
    for day in ("2015-03-05", "2015-03-30"):  # the open (adjusted like the rest) is now the bar's low
        assert frame.loc[day, "low"] == frame.loc[day, "open"] < frame.loc[day, "close"] < frame.loc[day, "high"]
    raw = pd.read_csv(PANEL_SPY, index_col="Date")
    assert raw.loc["2015-03-05", "Open"] < raw.loc["2015-03-05", "Low"]  # 209.42 below 209.85 in the file


def test_a_csv_with_a_header_and_no_rows_names_the_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n")
    with pytest.raises(DataError) as info:
        load_ohlcv(csv=str(path))
    assert str(info.value) == f"{path}: a header and no rows; add the asset's bars, or leave it out of the data"


def test_csv_names_that_differ_only_in_case_are_one_asset(tmp_path, sp500_short):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    yahoo_csv(tmp_path / "a" / "spy.csv", sp500_short.iloc[:5])
    (tmp_path / "b" / "SPY.csv").write_text("not even a CSV\x00")  # refused before anything is read
    with pytest.raises(DataError) as info:
        load_universe(csv=[str(tmp_path / "a" / "spy.csv"), str(tmp_path / "b" / "SPY.csv")])
    assert str(info.value).startswith(f"'spy' and 'SPY' are one asset name (case does not count) "
                                      f"({tmp_path / 'a' / 'spy.csv'} and {tmp_path / 'b' / 'SPY.csv'}): rename")


def test_csv_dir_names_that_differ_only_in_case_are_one_asset(tmp_path, sp500_short):
    folder = tmp_path / "universe"
    folder.mkdir()
    yahoo_csv(folder / "X.CSV", sp500_short.iloc[:5])
    yahoo_csv(folder / "x.csv", sp500_short.iloc[:5])
    if len(list(folder.iterdir())) < 2:
        pytest.skip("a case-insensitive file system keeps one file")
    with pytest.raises(DataError, match=r"'X' and 'x' are one asset name \(case does not count\)"):
        load_universe(csv_dir=str(folder))


def test_day_first_dates_are_read_day_first_for_every_row(tmp_path, sp500_short):
    bars = sp500_short.loc["2004-01-02":"2004-01-20"]  # 01/02 .. 09/01 prove nothing; 13/01 on proves day-first
    path = tmp_path / "uk.csv"
    yahoo_csv(path, bars)
    text = path.read_text()
    for day in bars.index:
        text = text.replace(day.strftime("%Y-%m-%d"), day.strftime("%d/%m/%Y"))
    path.write_text(text)
    assert list(load_csv(path).index) == list(bars.index)


def test_dotted_dates_are_day_first_and_unprovable_slashes_are_refused(tmp_path, sp500_short):
    bars = sp500_short.iloc[:5]  # 2004-01-02 .. 2004-01-08: no day above 12
    path = tmp_path / "de.csv"
    for style in ("%d.%m.%Y", "%d/%m/%Y"):
        yahoo_csv(path, bars)
        text = path.read_text()
        for day in bars.index:
            text = text.replace(day.strftime("%Y-%m-%d"), day.strftime(style))
        path.write_text(text)
        if style == "%d.%m.%Y":
            assert list(load_csv(path).index) == list(bars.index)  # not five months apart
        else:
            with pytest.raises(DataError) as info:
                load_csv(path)
            assert str(info.value) == (f"{path}: dates like '02/01/2004' could be day-first or month-first and no "
                                       "day above 12 tells which; write them year first, as 2009-01-13")


def test_a_column_of_both_orders_is_refused_naming_both_rows(tmp_path, sp500_short):
    path = tmp_path / "both.csv"
    yahoo_csv(path, sp500_short.loc["2004-01-12":"2004-01-16"])
    text = path.read_text().replace("2004-01-13", "13/01/2004").replace("2004-01-14", "01/14/2004")
    path.write_text(text)
    with pytest.raises(DataError) as info:
        load_csv(path)
    assert str(info.value) == (f"{path} row 3: '13/01/2004' is day-first but {path} row 4: '01/14/2004' is "
                               "month-first; write every date year first, as 2009-01-13")


def test_a_semicolon_separated_file_is_named_as_such(tmp_path):
    path = tmp_path / "eu.csv"
    path.write_text("Date;Open;High;Low;Close\n2009-01-02;1,5;2,0;1,0;1,8\n")
    for columns in (None, {"date": "Datum"}):
        with pytest.raises(DataError) as info:
            load_csv(path, columns)
        assert str(info.value).startswith(f"{path}: the file is separated by ';' (its header is "
                                          "'Date;Open;High;Low;Close'), not by ','")
        assert "--columns" not in str(info.value) and "mapping" not in str(info.value)


def test_update_on_data_ending_before_the_bundles_last_bar_says_so():
    from nt_backtrader.cycle import check_history

    calendar = pd.bdate_range("2020-01-01", periods=40)
    cycle = {"bars": 30, "first_date": str(calendar[0].date()), "last_date": str(calendar[29].date()),
             "assets": ["spy"]}
    short = calendar[:25]
    with pytest.raises(DataError) as info:
        check_history({"spy": pd.DataFrame(index=short)}, short, cycle)
    assert str(info.value).startswith(f"the data ends on {short[-1].date()}, before the bundle's last bar "
                                      f"({calendar[29].date()})")
    assert "source and start date" not in str(info.value)


def finished_pid() -> int:
    """The pid of a process that has ended: a crashed sweep's."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(out: Path, pid: int, host: str | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    lock = out / "sweep.lock"
    lock.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname()}))
    return lock


def flocked(lock: Path) -> bool:
    """Whether some open file description holds a flock on `lock` (a second one of ours conflicts with it)."""
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@contextlib.contextmanager
def live_sweep(out: Path, pid: int, host: str | None = None):
    """A running sweep's lock: its file naming `pid`, held by a flock on a descriptor of its own."""
    lock = write_lock(out, pid, host)
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        yield lock
    finally:
        os.close(fd)


def test_the_sweep_lock_holds_a_flock_and_is_removed_with_the_folder_it_made(tmp_path, capsys):
    from nt_backtrader.sweep.runner import sweep_lock

    out = tmp_path / "sweep"
    with sweep_lock(out):  # an empty folder: taken, with our pid and host
        lock = out / "sweep.lock"
        assert json.loads(lock.read_text()) == {"pid": os.getpid(), "host": socket.gethostname()}
        assert flocked(lock)  # held for the sweep's lifetime
    assert not out.exists()  # made for the lock alone: nothing is left behind
    assert capsys.readouterr().err == ""


def test_the_sweep_lock_refuses_a_live_holder_with_one_line_naming_its_pid(tmp_path):
    from nt_backtrader.sweep.runner import sweep_lock

    out = tmp_path / "sweep"
    # the flock decides, not the pid: ours (reused in a restarted container) or one on another host
    for holder in ({"pid": os.getpid()}, {"pid": finished_pid(), "host": "another-host"}):
        with live_sweep(out, **holder) as lock:
            with pytest.raises(ConfigError) as info:
                with sweep_lock(out):
                    raise AssertionError("a second sweep took a held lock")
            message = str(info.value)
            assert message.startswith(f"--out {out} is in use by another sweep (pid {holder['pid']} on "
                                      f"{holder.get('host', socket.gethostname())}): ")
            assert len(message.splitlines()) == 1
            assert json.loads(lock.read_text())["pid"] == holder["pid"]  # the holder keeps its lock
            assert flocked(lock)


def test_a_lock_file_nobody_holds_is_taken_silently_and_released_on_an_exception(tmp_path, capsys):
    from nt_backtrader.sweep.runner import sweep_lock

    out = tmp_path / "sweep"
    for error in (KeyboardInterrupt, ValueError):
        lock = write_lock(out, finished_pid())  # a crashed sweep's: its flock went with its process
        with pytest.raises(error):
            with sweep_lock(out):
                assert json.loads(lock.read_text())["pid"] == os.getpid()
                assert flocked(lock)
                raise error
        assert not lock.exists()
    assert capsys.readouterr().err == ""
    with sweep_lock(out):  # released: the next sweep takes it
        pass


def test_a_lock_on_a_removed_lock_file_does_not_count(tmp_path, monkeypatch):
    import nt_backtrader.sweep.runner as runner

    out = tmp_path / "sweep"
    with runner.sweep_lock(out):
        lock = out / "sweep.lock"
        late = os.open(lock, os.O_RDWR)  # a second sweep opened the file before the first removed it
    fcntl.flock(late, fcntl.LOCK_EX | fcntl.LOCK_NB)  # it may then lock the orphan...
    try:
        with runner.sweep_lock(out):  # ...which keeps no one out
            assert flocked(out / "sweep.lock")
    finally:
        os.close(late)

    calls = []

    def flock(fd, op):  # between our open and flock, the holder removes the file and another makes it anew
        if not calls:
            os.unlink(out / "sweep.lock")
            write_lock(out, finished_pid())
        calls.append(fd)
        return fcntl.flock(fd, op)

    monkeypatch.setattr(runner, "fcntl", types.SimpleNamespace(flock=flock, LOCK_EX=fcntl.LOCK_EX,
                                                                LOCK_NB=fcntl.LOCK_NB))
    with runner.sweep_lock(out):
        assert len(calls) == 2  # the orphan's lock was let go and the file at the path locked instead
        assert json.loads((out / "sweep.lock").read_text())["pid"] == os.getpid()
        assert flocked(out / "sweep.lock")
    assert not (out / "sweep.lock").exists()


def test_a_second_sweep_command_on_a_locked_out_exits_2_without_running(tmp_path, capsys, monkeypatch):
    import nt_backtrader.sweep.runner as runner

    def must_not_run(*args, **kwargs):
        raise AssertionError("the second sweep ran its cells")

    monkeypatch.setattr(runner, "run_sweep", must_not_run)
    (tmp_path / "sweep.toml").write_text("[grid]\nseed = [0, 1]\n")
    out = tmp_path / "out"
    with live_sweep(out, os.getppid()):
        code = main(["sweep", str(tmp_path / "sweep.toml"), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"nt-backtrader: error: --out {out} is in use by another sweep (pid {os.getppid()} on ")
