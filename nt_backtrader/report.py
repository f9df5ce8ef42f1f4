"""Report files of a run: QuantStats tear-sheet, returns.csv, metrics.json, history.json, trades.csv.

All files are written to a hidden staging folder first and moved into place only when every
one of them is complete, so a failed run never leaves half a report behind.
"""
from __future__ import annotations

import html
import json
import logging
import math
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import pandas as pd

from . import metrics
from .config import Config, to_toml

TEARSHEET = "tearsheet.html"


def benchmark_returns(frame: pd.DataFrame, dates: pd.DatetimeIndex) -> pd.Series:
    """Buy-and-hold of the same asset on the same dates: close-to-close, no costs."""
    return frame["close"].pct_change().reindex(dates).rename("benchmark")


def _clean(value):
    """JSON has no NaN or infinity; write null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def dump_json(value) -> str:
    return json.dumps(_clean(value), indent=2, default=str)


def write_tearsheet(returns: pd.Series, benchmark: pd.Series, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    # QuantStats asks for fonts this machine may lack and warns about tick labels: not the user's problem.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    import quantstats as qs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qs.reports.html(returns.rename("Strategy"), benchmark=benchmark.rename("Buy & hold"), output=str(path),
                        title=title, periods_per_year=metrics.PERIODS, match_dates=False)
    import matplotlib.pyplot as plt
    plt.close("all")


def report_metrics(result, frame: pd.DataFrame, config: Config, source: str, extra: dict | None = None) -> dict:
    bench = benchmark_returns(frame, result.returns.index)
    return {"strategy": result.strategy, "source": source, **result.summary(),
            "commission_bps": config.backtest.commission_bps, "slippage_bps": config.backtest.slippage_bps,
            "seed": config.seed,
            "benchmark": {"name": "buy_hold close-to-close, no costs", "sharpe": metrics.sharpe(bench),
                          "cagr": metrics.cagr(bench), "max_drawdown": metrics.max_drawdown(bench)},
            **(extra or {})}


def comparison_frame(comparison: dict[str, dict]) -> pd.DataFrame:
    columns = ["sharpe", "cagr", "max_drawdown", "volatility", "psr", "turnover", "n_trades", "start", "end"]
    table = pd.DataFrame(comparison).T[columns]
    table.index.name = "strategy"
    return table


def summary_html(comparison: dict[str, dict] | None, figures: list[str]) -> str:
    """The block put at the top of the tear-sheet: strategies side by side, then our figures."""
    parts = ['<div id="nt_backtrader_summary">']
    if comparison:
        rows = "".join(f"<tr><td>{name}</td><td>{s['sharpe']:.2f}</td><td>{s['cagr']:.1%}</td>"
                       f"<td>{s['max_drawdown']:.1%}</td><td>{s['turnover']:.1f}x</td><td>{s['n_trades']}</td></tr>"
                       for name, s in comparison.items())
        parts.append("<h3>Out of sample, same dates, same costs</h3><table><thead><tr><th>strategy</th>"
                     "<th>Sharpe</th><th>CAGR</th><th>max drawdown</th><th>turnover / yr</th><th>trades</th></tr>"
                     f"</thead><tbody>{rows}</tbody></table>")
    for name in figures:
        parts.append(f'<h3>{html.escape(name)}</h3><a href="{name}"><img src="{name}" alt="{name}"></a>')
    parts.append("<hr></div>")
    return "\n".join(parts)


def inject_summary(path: Path, block: str) -> None:
    page = path.read_text()
    page = page.replace('<body onload="save()">', "<body>", 1)  # save() only exists in download mode
    page = page.replace('<div id="left">', block + '\n        <div id="left">', 1)
    path.write_text(page)


def write_report(result, frame: pd.DataFrame, config: Config, out_dir: str | Path, source: str,
                 extra: dict | None = None, figures: dict | None = None, tearsheet: bool = True,
                 comparison: dict[str, dict] | None = None) -> Path:
    """Write every report file of `result` into `out_dir`; returns the folder.

    `extra` adds keys to metrics.json; `figures` maps PNG file names to callables that draw
    them; `comparison` maps strategy names to their summaries on the same dates.
    """
    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out, prefix=".staging-"))
    done = False
    try:
        bench = benchmark_returns(frame, result.returns.index)
        table = pd.DataFrame({"strategy": result.returns, "benchmark": bench})
        table.index.name = "date"
        (stage / "returns.csv").write_text(table.to_csv())
        (stage / "trades.csv").write_text(result.trades.to_csv(index=False))
        extra = (extra or {}) | ({"comparison": comparison} if comparison else {})
        (stage / "metrics.json").write_text(dump_json(report_metrics(result, frame, config, source, extra)))
        if comparison:
            (stage / "comparison.csv").write_text(comparison_frame(comparison).to_csv())
        (stage / "history.json").write_text(dump_json(result.history))
        (stage / "config.toml").write_text(to_toml(config))
        for name, draw in (figures or {}).items():
            draw(stage / name)
        if tearsheet:
            write_tearsheet(result.returns, bench, stage / TEARSHEET,
                            f"nt_backtrader {result.strategy} on {source} (walk-forward, out of sample)")
            inject_summary(stage / TEARSHEET, summary_html(comparison, list(figures or {})))
        for item in sorted(stage.iterdir()):
            os.replace(item, out / item.name)
        done = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and not done:
            shutil.rmtree(out, ignore_errors=True)
    return out
