"""The command line: a full run writes every report file; bad input is one line and exit code 2."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from nt_backtrader.cli import main
from nt_backtrader.data import load_ohlcv

SMALL = "[walkforward]\ntrain_bars = 252\ntest_bars = 126\n"


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
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "comparison.csv", "config.toml", "history.json",
                                                     "metrics.json", "returns.csv", "tearsheet.html", "trades.csv"]
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("sharpe", "cagr", "max_drawdown", "psr", "turnover", "n_trades", "n_segments", "start", "end"):
        assert key in metrics
    returns = pd.read_csv(out / "returns.csv", index_col="date", parse_dates=True)
    assert list(returns.columns) == ["strategy", "benchmark"]
    n_bars = len(load_ohlcv(start="2010-01-01", end="2013-12-31"))
    assert len(returns) == n_bars - 252 - 5  # everything after the first train window and purge gap
    assert metrics["n_segments"] == -(-(n_bars - 257) // 126)
    assert metrics["start"] == str(returns.index[0].date()) and "<html" in (out / "tearsheet.html").read_text()[:2000]
    comparison = pd.read_csv(out / "comparison.csv", index_col="strategy")
    assert list(comparison.index) == ["sma_cross", "buy_hold", "tsmom"]
    assert (comparison["start"] == metrics["start"]).all() and (comparison["end"] == metrics["end"]).all()
    assert comparison.loc["sma_cross", "sharpe"] == pytest.approx(metrics["sharpe"])


def tiny_toml(path):
    from conftest import TINY
    from nt_backtrader.config import Config, override, to_toml

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
    assert all("timing_accuracy" in row and "stop_hit_rate" in row for row in history)


def test_train_then_backtest_on_other_data(tmp_path, capsys):
    config = tiny_toml(tmp_path / "tiny.toml")
    bundle = tmp_path / "model.pt"
    code, stdout, _ = run_cli(["train", "--end", "2008-12-31", "--config", config, "--out", str(bundle)], capsys)
    assert code == 0 and bundle.is_file()
    out = tmp_path / "nasdaq"
    code, stdout, stderr = run_cli(["backtest", "--bundle", str(bundle), "--dataset", "nasdaq", "--start",
                                    "2009-01-01", "--end", "2011-12-31", "--out", str(out), "--quiet"], capsys)
    assert code == 0 and "in-sample" not in stderr
    assert (out / "tearsheet.html").is_file() and json.loads((out / "metrics.json").read_text())["n_days"] > 500
    _, _, stderr = run_cli(["backtest", "--bundle", str(bundle), "--start", "2007-01-01", "--end", "2010-12-31",
                            "--out", str(tmp_path / "again"), "--quiet"], capsys)
    assert "overlaps the bundle's training data" in stderr


GOOD_ROW = "2020-01-02,1,2,0.5,1.5,1.5,10"


def _bad_csv(tmp_path, second_row="2020-01-03,1,2,0.5,,1.5,10", header="Date,Open,High,Low,Close,Adj Close,Volume"):
    path = tmp_path / "bad.csv"
    path.write_text(f"{header}\n{GOOD_ROW}\n{second_row}\n")
    return str(path)


BAD_INPUTS = {
    "missing csv": lambda tmp: ["--csv", str(tmp / "missing.csv")],
    "nan row": lambda tmp: ["--csv", _bad_csv(tmp)],
    "missing column": lambda tmp: ["--csv", _bad_csv(tmp, header="Date,Open,High,Low,Last,Adj Close,Volume")],
    "bad date": lambda tmp: ["--csv", _bad_csv(tmp, "2020-13-45,1,2,0.5,1.5,1.5,10")],
    "unsorted dates": lambda tmp: ["--csv", _bad_csv(tmp, "2019-12-31,1,2,0.5,1.5,1.5,10")],
    "duplicate dates": lambda tmp: ["--csv", _bad_csv(tmp, GOOD_ROW)],
    "non-positive price": lambda tmp: ["--csv", _bad_csv(tmp, "2020-01-03,0,2,0.5,1.5,1.5,10")],
    "high below low": lambda tmp: ["--csv", _bad_csv(tmp, "2020-01-03,1,0.4,0.5,1.5,1.5,10")],
    "too few bars in a csv": lambda tmp: ["--csv", _bad_csv(tmp, "2020-01-03,1,2,0.5,1.5,1.5,10")],
    "bad toml": lambda tmp: ["--config", _write(tmp / "c.toml", "[backtest\n")],
    "unknown strategy": lambda tmp: ["--strategy", "sma_crosss"],
    "too little data": lambda tmp: ["--start", "2017-01-01"],
    "unknown config key": lambda tmp: ["--config", _write(tmp / "c.toml", "[backtest]\ncomission_bps = 1\n")],
    "bad columns": lambda tmp: ["--csv", _bad_csv(tmp), "--columns", "date"],
    "not a number": lambda tmp: ["--commission-bps", "lots"],
    "two sources": lambda tmp: ["--dataset", "sp500", "--csv", "x.csv"],
}


def _write(path, text):
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_no_report(tmp_path, capsys, case):
    out = tmp_path / "report"
    code, stdout, stderr = run_cli(["run", *BAD_INPUTS[case](tmp_path), "--out", str(out), "--quiet"], capsys)
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1 and "error:" in stderr and "Traceback" not in stderr
    assert not out.exists()


def test_expected_messages(tmp_path, capsys):
    _, _, stderr = run_cli(["run", "--strategy", "sma_crosss", "--quiet"], capsys)
    assert "did you mean 'sma_cross'?" in stderr
    _, _, stderr = run_cli(["run", "--start", "2017-01-01", "--quiet"], capsys)
    assert "502 bars (2017-01-03 to 2018-12-31) are too few" in stderr and "needs at least 1013" in stderr


def test_ticker_offline_without_cache(tmp_path, capsys, monkeypatch):
    import yfinance

    monkeypatch.setattr(yfinance, "download", lambda *a, **k: pd.DataFrame())
    monkeypatch.chdir(tmp_path)
    code, _, stderr = run_cli(["run", "--ticker", "SPY", "--quiet"], capsys)
    assert code == 2 and "use --csv FILE or the embedded data" in stderr
    assert not (tmp_path / "reports").exists()


def test_real_process_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nt_backtrader.cli", "run", "--csv", str(tmp_path / "none.csv")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr and "none.csv" in proc.stderr
