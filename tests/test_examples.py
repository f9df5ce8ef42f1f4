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


def test_live_example_journals_a_replay_and_goes_on_after_a_restart(tmp_path, sp500, tiny_bundle, capsys):
    from conftest import yahoo_csv

    frame = sp500.loc["2010-01-01":"2011-03-31"]  # the bundle's warm-up, then 50 bars
    csv, bundle, journal = tmp_path / "sp500.csv", tmp_path / "model.pt", tmp_path / "journal.csv"
    tiny_bundle.save(bundle)
    main = load_example("neural_live.py")["main"]
    common = ["--bundle", str(bundle), "--journal", str(journal), "--replay", str(csv)]
    yahoo_csv(csv, frame.iloc[:-10])
    first = main(common)  # the last 21 bars of the file are live
    assert len(first.decisions) == 21 and "21 live bars decided" in capsys.readouterr().out
    yahoo_csv(csv, frame)  # ten more bars have arrived; the restarted script decides those only
    second = main(common + ["--live-from", str(frame.index[-30].date())])
    assert [d.date for d in second.decisions] == [d.date() for d in frame.index[-10:]]
    written = pd.read_csv(journal, parse_dates=["date"])
    decisions = written[written["kind"] == "decision"]
    assert list(decisions["date"]) == list(frame.index[-31:]) and not decisions["date"].duplicated().any()
