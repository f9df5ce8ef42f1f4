"""Report files of a run: QuantStats tear-sheet, returns.csv, baselines.csv (the baselines' returns on
the same dates), metrics.json, history.json, trades.csv, positions.csv (date x asset weights),
assets.csv (each asset's contribution) and weights.png.

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
from .data import as_universe
from .momentum import VOL_TARGET

TEARSHEET = "tearsheet.html"
WEIGHTS_FIGURE = "weights.png"


def benchmark_returns(universe, dates: pd.DatetimeIndex) -> pd.Series:
    """Buy-and-hold of the same assets on the same dates, close-to-close, no costs: with several,
    an equal weight in each asset that has a bar that day (rebalanced daily)."""
    closes = as_universe(universe).values()
    daily = pd.concat([frame["close"].pct_change() for frame in closes], axis=1, sort=True)
    return daily.reindex(dates).mean(axis=1).rename("benchmark")


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
    # QuantStats regresses the strategy on the benchmark, which fails on a strategy that never traded
    # (every return 0): that one's tear-sheet is drawn without the benchmark
    flat = not returns.std() > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qs.reports.html(returns.rename("Strategy"), benchmark=None if flat else benchmark.rename("Buy & hold"),
                        output=str(path), title=title, periods_per_year=metrics.PERIODS, match_dates=False)
    import matplotlib.pyplot as plt
    plt.close("all")


def report_metrics(result, universe, config: Config, source: str, extra: dict | None = None) -> dict:
    bench = benchmark_returns(universe, result.returns.index)
    per_asset = result.per_asset().to_dict(orient="index") if not result.contributions.empty else {}
    return {"strategy": result.strategy, "source": source, "assets": per_asset, **result.summary(),
            "commission_bps": config.backtest.commission_bps, "slippage_bps": config.backtest.slippage_bps,
            "seed": config.seed,
            "benchmark": {"name": "equal-weight buy_hold close-to-close, no costs", "sharpe": metrics.sharpe(bench),
                          "cagr": metrics.cagr(bench), "max_drawdown": metrics.max_drawdown(bench)},
            **(extra or {})}


def at_vol_target(returns: pd.Series, vol_target: float) -> dict:
    """CAGR and max drawdown of the returns rescaled to `vol_target` realized volatility, ex post
    (metrics.rescaled_to_vol): Sharpe is the same at any scale, these two are not."""
    rescaled = metrics.rescaled_to_vol(returns, vol_target)
    return {"cagr_at_vol_target": metrics.cagr(rescaled), "max_drawdown_at_vol_target": metrics.max_drawdown(rescaled)}


def comparison_frame(comparison: dict[str, dict]) -> pd.DataFrame:
    columns = ["sharpe", "cagr", "max_drawdown", "volatility", "psr", "turnover", "n_trades", "start", "end",
               "cagr_at_vol_target", "max_drawdown_at_vol_target"]
    table = pd.DataFrame(comparison).T[columns]
    table.index.name = "strategy"
    return table


def baselines_frame(baselines: dict) -> pd.DataFrame:
    """Date x baseline: each baseline's daily out-of-sample returns (what the sweep's SPA test reads)."""
    table = pd.DataFrame({name: b.returns for name, b in baselines.items()})
    table.index.name = "date"
    return table


def draw_weights(weights: pd.DataFrame, path: Path, source: str) -> None:
    """Each asset's weight (position value / equity) over time, stacked; short weights below zero."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 4))
    long, short = weights.clip(lower=0.0), weights.clip(upper=0.0)
    ax.stackplot(long.index, long.T.to_numpy(), labels=list(weights.columns), alpha=0.8)
    if (short < 0).any().any():
        ax.stackplot(short.index, short.T.to_numpy(), alpha=0.8)
    ax.plot(weights.index, weights.abs().sum(axis=1), color="black", lw=0.6, label="gross")
    ax.set_title(f"weights over time, out of sample ({source})")
    ax.set_ylabel("position / equity")
    ax.legend(loc="upper left", fontsize=8, ncol=min(6, len(weights.columns) + 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def html_table(title: str, headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<h3>{title}</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def summary_html(comparison: dict[str, dict] | None, figures: list[str], per_asset: pd.DataFrame | None = None,
                 vol_target: float = VOL_TARGET) -> str:
    """The block put at the top of the tear-sheet: strategies side by side (also each rescaled, ex post, to
    `vol_target` realized volatility), each asset's part, then our figures."""
    parts = ['<div id="nt_backtrader_summary">']
    if comparison:
        at = f"@{vol_target:.0%} vol"
        parts.append(html_table("Out of sample, same dates, same costs",
                                ["strategy", "Sharpe", "CAGR", "max drawdown", "turnover / yr", "trades",
                                 f"CAGR {at}", f"max drawdown {at}"],
                                [[name, f"{s['sharpe']:.2f}", f"{s['cagr']:.1%}", f"{s['max_drawdown']:.1%}",
                                  f"{s['turnover']:.1f}x", s["n_trades"], f"{s['cagr_at_vol_target']:.1%}",
                                  f"{s['max_drawdown_at_vol_target']:.1%}"] for name, s in comparison.items()]))
    if per_asset is not None:
        parts.append(html_table("Per asset: contribution to the portfolio",
                                ["asset", "summed daily return", "Sharpe of its part", "trades", "mean |weight|"],
                                [[name, f"{r['return']:.1%}", f"{r['sharpe']:.2f}", int(r["n_trades"]),
                                  f"{r['mean_weight']:.1%}"] for name, r in per_asset.iterrows()]))
    for name in figures:
        parts.append(f'<h3>{html.escape(name)}</h3><a href="{name}"><img src="{name}" alt="{name}"></a>')
    parts.append("<hr></div>")
    return "\n".join(parts)


def inject_summary(path: Path, block: str) -> None:
    page = path.read_text()
    page = page.replace('<body onload="save()">', "<body>", 1)  # save() only exists in download mode
    page = page.replace('<div id="left">', block + '\n        <div id="left">', 1)
    path.write_text(page)


def write_report(result, universe, config: Config, out_dir: str | Path, source: str,
                 extra: dict | None = None, figures: dict | None = None, tearsheet: bool = True,
                 baselines: dict | None = None) -> Path:
    """Write every report file of `result` into `out_dir`; returns the folder.

    `extra` adds keys to metrics.json; `figures` maps PNG file names to callables that draw
    them; `baselines` maps strategy names to their results (WalkForwardResult) on the same dates.
    The comparison also shows each one's CAGR and drawdown at strategy.vol_target realized volatility.
    """
    vol_target = config.strategy.vol_target
    comparison = {name: r.summary() | at_vol_target(r.returns, vol_target)
                  for name, r in ({result.strategy: result} | baselines).items()} if baselines else None
    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out, prefix=".staging-"))
    done = False
    try:
        bench = benchmark_returns(universe, result.returns.index)
        table = pd.DataFrame({"strategy": result.returns, "benchmark": bench})
        table.index.name = "date"
        (stage / "returns.csv").write_text(table.to_csv())
        (stage / "trades.csv").write_text(result.trades.to_csv(index=False))
        extra = (extra or {}) | ({"comparison": comparison} if comparison else {})
        (stage / "metrics.json").write_text(dump_json(report_metrics(result, universe, config, source, extra)))
        if not result.weights.empty:
            (stage / "positions.csv").write_text(result.weights.to_csv())
            (stage / "assets.csv").write_text(result.per_asset().to_csv())
            figures = {WEIGHTS_FIGURE: lambda path: draw_weights(result.weights, path, source)} | (figures or {})
        if comparison:
            (stage / "comparison.csv").write_text(comparison_frame(comparison).to_csv())
            (stage / "baselines.csv").write_text(baselines_frame(baselines).to_csv())
        (stage / "history.json").write_text(dump_json(result.history))
        (stage / "config.toml").write_text(to_toml(config))
        for name, draw in (figures or {}).items():
            draw(stage / name)
        if tearsheet:
            write_tearsheet(result.returns, bench, stage / TEARSHEET,
                            f"nt_backtrader {result.strategy} on {source} (walk-forward, out of sample)")
            per_asset = result.per_asset() if not result.weights.empty else None
            inject_summary(stage / TEARSHEET, summary_html(comparison, list(figures or {}), per_asset, vol_target))
        for item in sorted(stage.iterdir()):
            os.replace(item, out / item.name)
        done = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and not done:
            shutil.rmtree(out, ignore_errors=True)
    return out
