"""The command line: a full run writes every report file; bad input is one line and exit code 2."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from nt_backtrader.cli import main
from nt_backtrader.data import load_ohlcv
from nt_backtrader.metrics import psr, sharpe

from conftest import edit_field, yahoo_csv

# long or flat: a short's weight drifts with the price far more than a long's, and the turnover check
# below reads the weights' changes as the trades
SMALL = "[walkforward]\ntrain_bars = 252\ntest_bars = 126\n[strategy]\nallow_short = false\n"


def run_cli(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own exits
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_run_writes_tearsheet_returns_and_metrics(tmp_path, capsys):
    (tmp_path / "small.toml").write_text(SMALL)
    out = tmp_path / "report"
    code, stdout, _ = run_cli(["run", "--strategy", "sma_cross", "--start", "2010-01-01", "--end", "2013-12-31",
                               "--config", str(tmp_path / "small.toml"), "--out", str(out), "--quiet"], capsys)
    assert code == 0 and "tearsheet.html" in stdout and "tsmom" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["assets.csv", "baselines.csv", "checkpoint.pt", "comparison.csv",
                                                     "config.toml", "history.json", "metrics.json", "positions.csv",
                                                     "returns.csv", "tearsheet.html", "trades.csv", "weights.png"]
    metrics = json.loads((out / "metrics.json").read_text())
    returns = pd.read_csv(out / "returns.csv", index_col="date", parse_dates=True)
    assert list(returns.columns) == ["strategy", "benchmark"]
    # the summary is that of the daily returns written next to it
    daily, years = returns["strategy"], len(returns) / 252
    equity = pd.concat([pd.Series([1.0]), (1.0 + daily).cumprod()], ignore_index=True)
    assert metrics["sharpe"] == pytest.approx(daily.mean() / daily.std() * np.sqrt(252), rel=1e-12)
    assert metrics["cagr"] == pytest.approx(equity.iloc[-1] ** (1.0 / years) - 1.0, rel=1e-12)
    assert metrics["max_drawdown"] == pytest.approx((equity / equity.cummax() - 1.0).min(), rel=1e-12)
    assert metrics["psr"] == pytest.approx(psr(daily), rel=1e-12) and 0.5 < metrics["psr"] < 1.0  # a Sharpe > 0
    trades = pd.read_csv(out / "trades.csv")
    assert metrics["n_trades"] == len(trades) and len(trades) >= 3
    # the book traded per year: the weights' changes, summed (a weight drifts a little with the price while held)
    weights = pd.read_csv(out / "positions.csv", index_col="date")["sp500"]
    assert metrics["turnover"] == pytest.approx(weights.diff().fillna(weights).abs().sum() / years, rel=1e-2)
    assert metrics["n_days"] == len(returns) and metrics["end"] == str(returns.index[-1].date())
    n_bars = len(load_ohlcv(start="2010-01-01", end="2013-12-31"))
    assert len(returns) == n_bars - 252 - 5  # everything after the first train window and purge gap
    assert metrics["n_segments"] == -(-(n_bars - 257) // 126)
    assert metrics["start"] == str(returns.index[0].date()) and "<html" in (out / "tearsheet.html").read_text()[:2000]
    comparison = pd.read_csv(out / "comparison.csv", index_col="strategy")
    assert list(comparison.index) == ["sma_cross", "buy_hold", "long_only", "tsmom_ls", "macd"]  # the core's four
    assert (comparison["start"] == metrics["start"]).all() and (comparison["end"] == metrics["end"]).all()
    assert comparison.loc["sma_cross", "sharpe"] == pytest.approx(metrics["sharpe"])
    # the baselines' own daily returns, on the strategy's dates: their Sharpe is the comparison's
    baselines = pd.read_csv(out / "baselines.csv", index_col="date", parse_dates=True)
    assert list(baselines.columns) == ["buy_hold", "long_only", "tsmom_ls", "macd"]
    assert baselines.index.equals(returns.index)
    for name in baselines:
        assert sharpe(baselines[name]) == pytest.approx(comparison.loc[name, "sharpe"], rel=1e-12)


def test_benchmark_is_close_to_close_and_a_run_is_quiet_on_stderr(tmp_path):
    (tmp_path / "small.toml").write_text(SMALL)
    proc = subprocess.run([sys.executable, "-m", "nt_backtrader.cli", "run", "--strategy", "sma_cross", "--start",
                           "2010-01-01", "--end", "2011-12-31", "--config", "small.toml", "--out", "report", "--quiet"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""  # no library warnings or log lines on the console
    returns = pd.read_csv(tmp_path / "report" / "returns.csv", index_col="date", parse_dates=True)
    close = load_ohlcv(start="2010-01-01", end="2011-12-31")["close"]
    expected = (close / close.shift(1) - 1).loc[returns.index]
    assert len(returns) == 504 - 257 and expected.notna().all()
    np.testing.assert_allclose(returns["benchmark"], expected, rtol=1e-12)


def test_commission_bps_reaches_the_backtest(tmp_path, capsys):
    config = _write(tmp_path / "small.toml", SMALL)
    metrics = {}
    for bps in (0, 50):
        out = tmp_path / f"bps{bps}"
        code, _, _ = run_cli(["run", "--strategy", "sma_cross", "--start", "2010-01-01", "--end", "2011-12-31",
                              "--config", config, "--commission-bps", str(bps), "--out", str(out), "--quiet"], capsys)
        assert code == 0
        metrics[bps] = json.loads((out / "metrics.json").read_text())
    assert metrics[0]["commission_bps"] == 0 and metrics[50]["commission_bps"] == 50
    assert metrics[0]["n_trades"] >= 2  # trades to pay for
    assert metrics[50]["sharpe"] < metrics[0]["sharpe"] and metrics[50]["cagr"] < metrics[0]["cagr"]


def tiny_toml(path):
    from nt_backtrader.config import Config, override, to_toml

    from conftest import TINY

    path.write_text(to_toml(override(Config(), **TINY)))
    return str(path)


def test_neural_run_reports_next_to_the_baselines(tmp_path, capsys):
    out = tmp_path / "report"
    code, stdout, _ = run_cli(["run", "--start", "2006-01-01", "--end", "2009-12-31", "--config",
                               tiny_toml(tmp_path / "tiny.toml"), "--out", str(out), "--quiet"], capsys)
    assert code == 0
    table = pd.read_csv(out / "comparison.csv", index_col="strategy")
    assert list(table.index) == ["neural", "buy_hold", "sma_cross", "tsmom"]
    page = (out / "tearsheet.html").read_text()
    assert "Out of sample, same dates, same costs" in page and "<td>neural</td>" in page
    history = json.loads((out / "history.json").read_text())
    assert len(history) == json.loads((out / "metrics.json").read_text())["n_segments"]
    returns = pd.read_csv(out / "returns.csv", index_col="date", parse_dates=True)["strategy"]
    # the rows' test windows tile the report's dates, and each row's return is that of its window there
    windows = [returns[row["test_start"]:row["test_end"]] for row in history]
    assert pd.concat(windows).index.equals(returns.index)
    for row, window in zip(history, windows):
        assert len(window) == row["n_test"]
        assert row["oos_return"] == pytest.approx(np.prod(1.0 + window) - 1.0, rel=1e-9)
        assert 0.0 <= row["timing_accuracy"] <= 1.0
        stop, take = row["stop_hit_rate"], row["take_hit_rate"]  # shares of the exits; null when none closed
        assert (stop is None and take is None) or 0.0 <= min(stop, take) <= stop + take <= 1.0


def test_train_then_backtest_on_other_data(tmp_path, capsys):
    config = tiny_toml(tmp_path / "tiny.toml")
    bundle = tmp_path / "model.pt"
    code, stdout, _ = run_cli(["train", "--end", "2008-12-31", "--config", config, "--out", str(bundle)], capsys)
    assert code == 0 and bundle.is_file()
    out = tmp_path / "nasdaq"
    code, stdout, stderr = run_cli(["backtest", "--bundle", str(bundle), "--dataset", "nasdaq", "--start",
                                    "2009-01-01", "--end", "2011-12-31", "--out", str(out), "--quiet"], capsys)
    assert code == 0 and "in-sample" not in stderr
    # the same report files as `run`, less the walk-forward's resume checkpoint
    assert sorted(p.name for p in out.iterdir()) == ["assets.csv", "baselines.csv", "comparison.csv", "config.toml",
                                                     "history.json", "metrics.json", "positions.csv", "returns.csv",
                                                     "tearsheet.html", "trades.csv", "weights.png"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_days"] > 500
    comparison = pd.read_csv(out / "comparison.csv", index_col="strategy")
    assert list(comparison.index) == ["neural-bundle", "buy_hold", "sma_cross", "tsmom"]
    assert (comparison["start"] == metrics["start"]).all() and (comparison["end"] == metrics["end"]).all()
    assert "<td>buy_hold</td>" in (out / "tearsheet.html").read_text()
    _, _, stderr = run_cli(["backtest", "--bundle", str(bundle), "--start", "2007-01-01", "--end", "2010-12-31",
                            "--out", str(tmp_path / "again"), "--quiet"], capsys)
    assert "overlaps the bundle's training data" in stderr


DEFECT = 100  # the damaged data row is line 101 of the file, well inside it


def _csv(tmp, edit=lambda text: text, n_bars=400):
    """A Yahoo CSV of real bars, long enough for SMALL's walk-forward (383 bars) unless n_bars says otherwise."""
    path = tmp / "prices.csv"
    text = yahoo_csv(path, load_ohlcv(start="2004-01-01").iloc[:n_bars])
    path.write_text(edit(text))
    return ["--csv", str(path), "--config", _write(tmp / "small.toml", SMALL), "--strategy", "buy_hold"]


def _damage(column, value):
    return lambda text: edit_field(text, DEFECT, column, value)


def _previous_date(text):
    return edit_field(text, DEFECT, "Date", text.splitlines()[DEFECT - 1].split(",")[0])


def _write(path, text):
    path.write_text(text)
    return str(path)


# case -> (arguments after `run`, a piece of the one-line message that only this defect produces)
BAD_INPUTS = {
    "missing csv": (lambda tmp: ["--csv", str(tmp / "missing.csv")], "missing.csv: no such file"),
    "missing column": (lambda tmp: _csv(tmp, lambda t: t.replace("Close,Adj", "Last,Adj")),
                       "missing column(s) ['close']"),
    "bad date": (lambda tmp: _csv(tmp, _damage("Date", "2004-13-45")), "row 101: '2004-13-45' is not a date"),
    "unsorted dates": (lambda tmp: _csv(tmp, _damage("Date", "2003-06-02")),
                       "row 101: date 2003-06-02 comes after 2004-05-24; sort the file by date"),
    "duplicate dates": (lambda tmp: _csv(tmp, _previous_date), "row 101: duplicate date 2004-05-24"),
    "nan row": (lambda tmp: _csv(tmp, _damage("Close", "")), "row 101: close is missing or not a number"),
    "non-positive price": (lambda tmp: _csv(tmp, _damage("Open", "0")),
                           "row 101: open is 0.0, prices must be positive"),
    "high below low": (lambda tmp: _csv(tmp, _damage("High", "1")), "row 101: high 1.0 is below low"),
    "too few bars in a csv": (lambda tmp: _csv(tmp, n_bars=300), "300 bars (2004-01-02 to 2005-03-11) are too few: "
                              "the walk-forward (train_bars 252 + purge_bars 5 + test_bars 126) needs at least 383"),
    "too little data": (lambda tmp: ["--start", "2017-01-01"], "502 bars (2017-01-03 to 2018-12-31) are too few: "
                        "the walk-forward (train_bars 1260 + purge_bars 5 + test_bars 252) needs at least 1517"),
    "bad toml": (lambda tmp: ["--config", _write(tmp / "c.toml", "[backtest\n")], "is not valid TOML"),
    "config is a folder": (lambda tmp: ["--config", str(tmp)], "is a folder: give a TOML file"),
    "unknown config key": (lambda tmp: ["--config", _write(tmp / "c.toml", "[backtest]\ncomission_bps = 1\n")],
                           "unknown config key 'backtest.comission_bps': did you mean 'commission_bps'?"),
    "bad config value": (lambda tmp: ["--config", _write(tmp / "c.toml", "[timing]\nloss = 'sharp'\n")],
                         "config key 'timing.loss' is 'sharp': did you mean 'sharpe'?"),
    "unknown strategy": (lambda tmp: ["--strategy", "sma_crosss"], "did you mean 'sma_cross'?"),
    "bad columns": (lambda tmp: ["--columns", "date"], "--columns takes ours=theirs pairs"),
    "not a number": (lambda tmp: ["--commission-bps", "lots"], "invalid float value: 'lots'"),
    "two sources": (lambda tmp: ["--dataset", "sp500", "--csv", "x.csv"], "not allowed with argument"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_no_report(tmp_path, capsys, case):
    argv, message = BAD_INPUTS[case]
    out = tmp_path / "report"
    code, stdout, stderr = run_cli(["run", *argv(tmp_path), "--out", str(out), "--quiet"], capsys)
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1 and "error:" in stderr and "Traceback" not in stderr
    assert message in stderr
    assert not out.exists()


@pytest.mark.parametrize("command", [["run"], ["backtest", "--bundle", "model.pt"]])
def test_out_on_an_existing_file_fails_before_any_work(tmp_path, capsys, monkeypatch, command):
    import nt_backtrader.data

    def no_work(*args, **kwargs):
        raise AssertionError("data was loaded before --out was checked")

    monkeypatch.setattr(nt_backtrader.data, "load_ohlcv", no_work)
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    for out, message in ((taken, "is a file: give a folder"), (taken / "report", "notes.txt is a file, not a folder")):
        code, _, stderr = run_cli([*command, "--out", str(out), "--quiet"], capsys)
        assert code == 2 and len(stderr.splitlines()) == 1 and message in stderr
    assert taken.read_text() == "mine"


def test_train_out_on_a_folder_fails_before_training(tmp_path, capsys):
    code, _, stderr = run_cli(["train", "--out", str(tmp_path)], capsys)
    assert code == 2 and f"--out {tmp_path} is a folder: give a file name" in stderr
    assert list(tmp_path.iterdir()) == []


def test_ticker_offline_without_cache_is_one_line(tmp_path, capsys, caplog, monkeypatch):
    import logging
    import warnings

    import yfinance

    def offline(*args, **kwargs):  # what yfinance does without a network: noise, then an empty frame
        warnings.warn("The inplace keyword in DataFrame.rename is deprecated", FutureWarning, stacklevel=2)
        logging.getLogger("yfinance").error("1 Failed download: ['SPY']: ConnectionError")
        print("[*********************100%***********************]  1 of 1 completed")
        print("1 Failed download:", file=sys.stderr)
        return pd.DataFrame()

    monkeypatch.setattr(yfinance, "download", offline)
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, stdout, stderr = run_cli(["run", "--ticker", "SPY", "--quiet"], capsys)
    assert code == 2 and stdout == "" and len(stderr.splitlines()) == 1
    assert stderr.startswith("nt-backtrader: error: could not download 'SPY'") and "use --csv FILE" in stderr
    assert caught == [] and not [r for r in caplog.records if r.name.startswith("yfinance")]
    assert not (tmp_path / "reports").exists() and not (tmp_path / "data_feeds").exists()


def test_real_process_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nt_backtrader.cli", "run", "--csv", str(tmp_path / "none.csv")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr and "none.csv" in proc.stderr
