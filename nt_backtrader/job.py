"""The main job, as one function: a walk-forward on the config's data, its classical baselines on
the same dates and costs, and the report files. `nt-backtrader run` and every sweep cell call it,
so a cell's files are a run's files, byte for byte.
"""
from __future__ import annotations

from pathlib import Path

from .config import Config
from .data import traded, universe_name

CHECKPOINT = "checkpoint.pt"
LEARNING_FIGURE = "learning_progress.png"


def run_and_report(config: Config, out: Path, progress: bool = True, resume: bool = False) -> dict[str, dict]:
    """Write the report of the config's walk-forward into `out`; returns {strategy: summary}, the
    strategy first, then its baselines."""
    from .data import load_universe
    from .progress_figure import draw_learning_progress
    from .report import write_report
    from .traders import make_trader
    from .walkforward import compare_baselines, walk_forward

    source = universe_name(config.data)
    trader = make_trader(config, source=source)
    universe = load_universe(config.data)
    result = walk_forward(universe, config, trader=trader, progress=progress, checkpoint=out / CHECKPOINT,
                          resume=resume)
    figures = {}
    if trader.name == "neural":
        title = f"nt_backtrader neural on {source}: learning progress (seed {config.seed})"
        figures[LEARNING_FIGURE] = lambda path: draw_learning_progress(result.history, path, title)
    baselines = compare_baselines(universe, config, skip=trader.name)
    write_report(result, traded(universe, config.data), config, out, source, baselines=baselines, figures=figures)
    return {result.strategy: result.summary()} | {name: b.summary() for name, b in baselines.items()}


def print_comparison(table: dict, out: Path) -> None:
    """The console table: the strategy (first) next to its baselines."""
    summary = next(iter(table.values()))
    segments = f", {summary['n_segments']} walk-forward segments" if summary["n_segments"] else ""
    print(f"out of sample {summary['start']} .. {summary['end']} ({summary['n_days']} days{segments}), costs on:")
    print(f"  {'strategy':<14}{'Sharpe':>8}{'CAGR':>8}{'max DD':>9}{'turnover':>10}{'trades':>8}")
    for name, s in table.items():
        print(f"  {name:<14}{s['sharpe']:>8.2f}{s['cagr']:>8.1%}{s['max_drawdown']:>9.1%}"
              f"{s['turnover']:>9.1f}x{s['n_trades']:>8d}")
    print(f"report: {out}/tearsheet.html")
