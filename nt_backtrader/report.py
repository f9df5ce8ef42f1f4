"""Report files of a run: QuantStats tear-sheet, returns.csv, metrics.json, history.json, trades.csv.

All files are written to a hidden staging folder first and moved into place only when every
one of them is complete, so a failed run never leaves half a report behind.
"""
from __future__ import annotations

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


def write_report(result, frame: pd.DataFrame, config: Config, out_dir: str | Path, source: str,
                 extra: dict | None = None, figures: dict | None = None, tearsheet: bool = True) -> Path:
    """Write every report file of `result` into `out_dir`; returns the folder.

    `extra` adds keys to metrics.json; `figures` maps file names to callables that write them.
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
        (stage / "metrics.json").write_text(dump_json(report_metrics(result, frame, config, source, extra)))
        (stage / "history.json").write_text(dump_json(result.history))
        (stage / "config.toml").write_text(to_toml(config))
        for name, draw in (figures or {}).items():
            draw(stage / name)
        if tearsheet:
            write_tearsheet(result.returns, bench, stage / TEARSHEET,
                            f"nt_backtrader {result.strategy} on {source} (walk-forward, out of sample)")
        for item in sorted(stage.iterdir()):
            os.replace(item, out / item.name)
        done = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and not done:
            shutil.rmtree(out, ignore_errors=True)
    return out
