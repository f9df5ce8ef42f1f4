"""The runnable examples in strategies/ work on standard backtrader feeds."""
from __future__ import annotations

import runpy
from pathlib import Path

import pandas as pd

from nt_backtrader import metrics

EXAMPLES = Path(__file__).resolve().parents[1] / "strategies"


def load_example(name: str):
    return runpy.run_path(str(EXAMPLES / name))


def test_sma_example_on_a_yahoo_csv_feed(tmp_path, sp500, capsys):
    frame = sp500.loc["2005":"2009"]
    csv = tmp_path / "spx.csv"
    pd.DataFrame({"Date": frame.index.strftime("%Y-%m-%d"), "Open": frame["open"], "High": frame["high"],
                  "Low": frame["low"], "Close": frame["close"], "Adj Close": frame["close"],
                  "Volume": frame["volume"]}).to_csv(csv, index=False)
    report = load_example("sma_timing_with_feedback.py")["main"](["--csv", str(csv)])
    returns = report["returns"]
    assert returns.index[0] == frame.index[0] and len(returns) == len(frame)
    # 2008: the rule was out of the market for most of the crash.
    assert metrics.max_drawdown(returns) > metrics.max_drawdown(frame["close"].pct_change().dropna()) / 2
    assert len(report["trades"]) >= 5
    assert "Sharpe" in capsys.readouterr().out
