"""`nt-backtrader`: the command line. Bad input ends in one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import difflib
import sys
import warnings
from pathlib import Path

from .config import CHOICES, CLASSICAL_STRATEGIES, DATASETS, Config, load_config, override
from .costs import asset_costs
from .data import asset_names, universe_name
from .errors import ConfigError, UserError
from .job import print_comparison

EXIT_USER_ERROR = 2
# --quick: the same pipeline with smaller nets and fewer epochs, for a first look in under a minute.
QUICK = {"timing.hidden": 8, "train.first_epochs": 6, "train.max_epochs": 2, "train.max_samples": 1000,
         "tuner.population": 2}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump), still exit code 2."""

    def error(self, message):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def parse_columns(text: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        ours, sep, theirs = item.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise ConfigError(f"--columns takes ours=theirs pairs like date=Datum,close=Schluss; got {item!r}")
        pairs[ours.strip().lower()] = theirs.strip()
    return pairs


def name_list(text: str) -> list[str]:
    """'SPY, TLT,GLD' -> ['SPY', 'TLT', 'GLD'] for --dataset and --tickers."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected one or more names separated by commas, got {text!r}")
    return names


def dataset_list(text: str) -> list[str]:
    names = name_list(text)
    for name in names:
        if name not in DATASETS:
            close = difflib.get_close_matches(name, DATASETS, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise argparse.ArgumentTypeError(f"unknown dataset '{name}': {hint}choose from {', '.join(DATASETS)}, "
                                             "or give --csv FILE")
    return names


def add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data", "Default: the embedded S&P 500, 1999-2018. Several assets make a "
                                      "universe: give files (--csv, --csv-dir), tickers or datasets, not a mix. "
                                      "--dataset panel: 28 markets (equity, bond and commodity ETFs, currencies, "
                                      "gold, US stocks), 1993-2018; its NOTICE in nt_backtrader/datasets/panel/ "
                                      "names the sources, licences and each asset's class.")
    source = group.add_mutually_exclusive_group()
    source.add_argument("--dataset", type=dataset_list, action="extend", metavar="NAMES",
                        help=f"embedded daily OHLCV: {', '.join(DATASETS)} (sp500 and nasdaq from the arch package; "
                        "panel: 28 assets named by ticker, ending at 2018-03-01 unless --end is given), several "
                        "separated by commas")
    source.add_argument("--csv", action="append", metavar="PATH", help="a CSV file, one asset named after the file; "
                        "repeat for more. Yahoo's format (Date,Open,High,Low,Close,Adj Close,Volume) or any "
                        "columns named with --columns")
    group.add_argument("--csv-dir", metavar="DIR", help="every *.csv file in DIR, sorted by name, one asset each "
                       "(after any --csv files)")
    source.add_argument("--tickers", "--ticker", type=name_list, action="extend", metavar="SYMBOLS",
                        help="yfinance symbols separated by commas, e.g. SPY,TLT,GLD: downloaded once, then read "
                        "from the cache under data_feeds/cache/")
    group.add_argument("--columns", metavar="MAP", help="column mapping for the CSV files, "
                       "e.g. date=Datum,close=Schluss")
    group.add_argument("--trade", type=name_list, metavar="NAMES", help="trade only these assets of the universe "
                       "(comma-separated, case aside); the networks still learn from every asset, e.g. --dataset "
                       "sp500,nasdaq --trade sp500, or --dataset panel --trade SPY,TLT")
    group.add_argument("--start", metavar="YYYY-MM-DD", help="first date used")
    group.add_argument("--end", metavar="YYYY-MM-DD", help="last date used")


def add_refresh_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--refresh", action="store_true", help="download the tickers' bars again (a cached "
                        "ticker is otherwise read from data_feeds/cache/, without the bars that came since)")


def bundle_command(commands, name: str, func, help: str, description: str,
                   allow_timeframe: str = "") -> argparse.ArgumentParser:
    """A subcommand that reads a bundle and data: --bundle, the data options, and (with the help text
    `allow_timeframe`) --allow-timeframe."""
    parser = commands.add_parser(name, help=help, description=description)
    parser.add_argument("--bundle", required=True, metavar="FILE", help="a bundle written by `train` or `update`")
    add_data_options(parser)
    if allow_timeframe:
        parser.add_argument("--allow-timeframe", action="store_true", help=f"{allow_timeframe} bars of another "
                            "timeframe than the bundle was trained on (its horizons then mean other spans of time)")
    parser.set_defaults(func=func)
    return parser


def add_common_options(parser: argparse.ArgumentParser, out_help: str) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML file with any config keys (see docs/config.md); "
                        "command-line options override it")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--commission-bps", type=float, help="commission per side in basis points (default 1)")
    parser.add_argument("--slippage-bps", type=float, help="slippage per side in basis points (default 1)")
    parser.add_argument("--cash", type=float, help="starting cash (default 100000)")
    parser.add_argument("--device", choices=CHOICES["train.device"], help="where the networks train (default auto)")
    parser.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default 1; 0: one per core); "
                        "results are bit-identical only at the same thread count")
    parser.add_argument("--quick", action="store_true", help="smaller networks, fewer epochs: a first look "
                        "in under a minute")
    parser.add_argument("--out", metavar="PATH", help=out_help)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="nt-backtrader", description=(
        "Neural trading networks in backtrader: walk-forward backtests on daily OHLCV, "
        "reported as QuantStats tear-sheets of the out-of-sample returns."))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="walk-forward backtest -> tear-sheet, returns.csv, metrics.json",
                              description="Walk-forward: for each segment train on the train window, trade "
                              "the next test window in backtrader (costs on), stitch the test windows, report "
                              "them next to baselines on the same dates (the core's: buy_hold and the "
                              "vol-scaled long_only, tsmom_ls and macd; the discrete modes': buy_hold, "
                              "sma_cross, tsmom). Try --dataset panel: 28 markets, where the core was "
                              "designed. Several assets "
                              "(--dataset sp500,nasdaq, --csv a.csv --csv b.csv, --csv-dir DIR, --tickers A,B) "
                              "are traded as one portfolio: one account, one feed per asset, networks trained "
                              "on every asset's bars, baselines combined over the same assets.")
    run.add_argument("--strategy", help="neural (default) | buy_hold | sma_cross | tsmom | long_only | tsmom_ls | macd")
    run.add_argument("--resume", action="store_true", help="continue the run whose checkpoint.pt is in --out "
                     "(written after every segment); it ends exactly as an uninterrupted run")
    add_data_options(run)
    add_common_options(run, "report folder (default reports/<data>-<strategy>/)")
    run.set_defaults(func=cmd_run)

    train = commands.add_parser("train", help="train the networks up to the last bar -> a bundle file",
                                description="The walk-forward's coordinated cycle (tuner, timing candidates, "
                                "meta-learner, sizer, risk net; for timing.mode position the deep-momentum core's "
                                "position nets) on the data up to its last bar, cut as the walk-forward cuts a "
                                "segment (train window, validation tail, purge gap), saved as a bundle that "
                                "`signal`, `backtest`, `update` and your own backtrader scripts load.")
    add_data_options(train)
    add_common_options(train, "bundle file (default reports/<data>-neural/bundle.pt)")
    train.set_defaults(func=cmd_train)

    update = bundle_command(commands, "update", cmd_update,
                            help="the walk-forward's next step on new bars -> a new bundle",
                            description="Feed the realized PnL of the bars since the bundle was made back to "
                                        "its meta-learner and tuner (the bundle is backtested on them with the account "
                                        "it carried; a position bundle's sizing and risk nets learn from them too), "
                                        "then run the coordinated cycle on the data up to the last bar. "
                                        "The data must repeat the bundle's history and add bars; by default it is read "
                                        "from the bundle's own source. A chain of updates at the walk-forward's "
                                        "boundaries gives the walk-forward's bundles.")
    update.add_argument("--out", required=True, metavar="FILE", help="the new bundle's file")
    update.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: the bundle's)")
    update.add_argument("--device", choices=CHOICES["train.device"], help="where the networks train")
    add_refresh_option(update)

    signal = bundle_command(commands, "signal", cmd_signal, allow_timeframe="decide on",
                            help="the bundle's decision for the next session, from the last bar",
                            description="Per traded asset: the target side and fraction of equity, the stop "
                                        "and take-profit prices, the confidence, each ensemble member's vote and the "
                                        "bar it rests on. It is NeuralStrategy's decision on the last bar of a "
                                        "backtest of the bundle over the last --history bars. A position bundle "
                                        "(timing.mode position) gives PositionStrategy's target weight, the weight "
                                        "held, whether the next open trades, and each member's position. Without "
                                        "data options, the data the bundle was trained on (its source, up to the "
                                        "latest bar).")
    signal.add_argument("--history", type=int, default=None, metavar="BARS", help="bars replayed before the "
                        "last one to set the rule's state and the account (default 504; 0: all)")
    signal.add_argument("--json", action="store_true", help="print JSON for programs instead of a table")
    signal.add_argument("--commission-bps", type=float, help="commission of the replay (default: the bundle's)")
    signal.add_argument("--slippage-bps", type=float, help="slippage of the replay (default: the bundle's)")
    add_refresh_option(signal)

    backtest = bundle_command(commands, "backtest", cmd_backtest, allow_timeframe="trade",
                              help="trade a saved bundle on any data -> the same report files",
                              description="Run NeuralStrategy (PositionStrategy for a position bundle) with a "
                                          "frozen bundle over a data source, without retraining, next to the "
                                          "baselines `run` reports for its mode. Dates the bundle was trained on are "
                                          "in-sample: a warning says so when they overlap.")
    add_common_options(backtest, "report folder (default reports/<data>-bundle/)")

    sweep = commands.add_parser("sweep", help="many walk-forward runs (seeds x data x variants x costs) on Ray "
                                "-> sweep.csv, summary.md, summary.html", description=(
                                    "Every cell of SWEEP.toml's grid is one `run` (a Ray task) writing the report "
                                    "files of `run` under OUT/cells/<cell>/. The summary gives per data and variant "
                                    "the Sharpe over seeds, the deflated Sharpe ratio counting every cell as a "
                                    "trial, and Hansen's SPA test against each baseline. Run it again with the "
                                    "same --out to finish an interrupted sweep: finished cells are skipped."),
                                epilog="SWEEP.toml: a [base] table (any run config), a [grid] table of dotted "
                                "keys -> lists (seed = [0, 1, 2], \"data.dataset\" = [\"sp500\", \"nasdaq\"]), "
                                "optional [variants.NAME] tables of changes crossed with the grid. "
                                "See bench/ablation.toml. Exit code 1 when a cell failed (its error is in "
                                "sweep.csv and its log.txt), 2 for a bad sweep file.")
    sweep.add_argument("file", metavar="SWEEP.toml", help="the sweep file")
    sweep.add_argument("--out", metavar="DIR", help="sweep folder (default reports/sweep-<file name>/)")
    sweep.add_argument("--cpus", type=int, metavar="N", help="CPUs of the local Ray (default: every core)")
    sweep.add_argument("--cpus-per-cell", type=int, default=1, metavar="N",
                       help="CPUs (and torch threads) per cell, unless the file sets train.threads (default 1)")
    sweep.add_argument("--address", metavar="HOST:PORT", help="join a running Ray cluster ('auto': the one "
                       "started on this machine with `ray start`) instead of starting a local Ray")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.set_defaults(func=cmd_sweep)
    return parser


def data_source(args: argparse.Namespace) -> dict:
    """The command line's source as config changes; it replaces the config file's source fields entirely."""
    if args.csv_dir and (args.dataset or args.tickers):
        other = "--dataset" if args.dataset else "--tickers"
        raise ConfigError(f"--csv-dir and {other} are different sources: give files (--csv, --csv-dir), tickers "
                          "or datasets, not a mix")
    if not (args.dataset or args.csv or args.csv_dir or args.tickers):
        return {}
    return {"data.dataset": tuple(args.dataset or ()), "data.csv": tuple(args.csv or ()),
            "data.csv_dir": args.csv_dir, "data.tickers": tuple(args.tickers or ())}


def data_changes(args: argparse.Namespace) -> dict:
    """The data options as dotted config changes."""
    changes = data_source(args)
    if args.columns:
        changes["data.columns"] = parse_columns(args.columns)
    if args.trade:
        changes["data.trade"] = tuple(args.trade)
    for option, key in (("start", "data.start"), ("end", "data.end")):
        if getattr(args, option) is not None:
            changes[key] = getattr(args, option)
    return changes


def bundle_changes(args: argparse.Namespace, options: tuple) -> dict:
    """Changes to a bundle's own config: the data options, and `options` ((attribute, dotted key) pairs)
    where given; the bundle's end date is dropped, since it would hide the bars that came after it."""
    changes = {"data.end": None} | data_changes(args)
    for option, key in options:
        if getattr(args, option) is not None:
            changes[key] = getattr(args, option)
    return changes


def config_from_args(args: argparse.Namespace) -> Config:
    config = load_config(args.config) if getattr(args, "config", None) else Config()
    changes = dict(QUICK) if getattr(args, "quick", False) else {}
    changes.update(data_changes(args))
    for option, key in (("seed", "seed"),
                        ("commission_bps", "backtest.commission_bps"), ("slippage_bps", "backtest.slippage_bps"),
                        ("cash", "backtest.cash"), ("strategy", "strategy.name"), ("device", "train.device"),
                        ("threads", "train.threads")):
        value = getattr(args, option, None)
        if value is not None:
            changes[key] = value
    config = override(config, **changes)
    if config.backtest.costs:  # a misspelt asset or class fails now, not after the first segment's training
        asset_costs(config, asset_names(config.data))
    return config


def cmd_run(args: argparse.Namespace) -> int:
    from .job import run_and_report

    config = config_from_args(args)
    out = output_path(args, Path("reports") / f"{universe_name(config.data)}-{config.strategy.name}")
    table = run_and_report(config, out, progress=not args.quiet, resume=args.resume)
    print_comparison(table, out)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .cycle import first_bundle, fit_summary
    from .data import load_universe

    config = config_from_args(args)
    source = universe_name(config.data)
    out = output_path(args, Path("reports") / f"{source}-neural" / "bundle.pt", folder=False)
    # One cycle without realized feedback: the tuner's first proposals, the meta-learner's prior weights.
    bundle, info = first_bundle(load_universe(config.data), config, source)
    bundle.save(out)
    print(f"trained on {source} {bundle.meta['train_start']} .. {bundle.meta['train_end']}: "
          f"{fit_summary(bundle, info)}")
    print(f"bundle: {out} (next: `nt-backtrader signal --bundle {out}`)")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    from .bundle_file import is_position, load_bundle
    from .cycle import bundle_config, fit_summary, next_bundle
    from .data import load_universe

    out = output_path(args, Path(args.out), folder=False)
    bundle = load_bundle(args.bundle)
    changes = bundle_changes(args, (("threads", "train.threads"), ("device", "train.device")))
    config = bundle_config(bundle, changes)
    source = universe_name(config.data)
    new, info = next_bundle(bundle, load_universe(config.data, refresh=args.refresh), changes, source)
    new.save(out)
    print(f"traded {info['window_start']} .. {info['window_end']}: return {info['window_return']:+.2%}, "
          f"{info['n_fills']} fills, fed back to the meta-learner and the tuner"
          f"{' (and the sizing and risk nets)' if is_position(new) else ''}")
    print(f"trained segment {new.cycle['segment']} on {source} {new.meta['train_start']} .. {new.meta['train_end']}: "
          f"{fit_summary(new, info)}")
    print(f"bundle: {out}")
    return 0


def cmd_signal(args: argparse.Namespace) -> int:
    import datetime as dt
    import json

    from . import next_decision, position_signal
    from .bundle_file import is_position, load_bundle
    from .cycle import bundle_config
    from .data import load_universe

    if args.history is not None and args.history < 0:
        raise ConfigError("--history must be 0 (all bars) or more")
    bundle = load_bundle(args.bundle)
    # the same three functions for either kind of bundle: its decisions, as JSON, as a table
    decide = position_signal if is_position(bundle) else next_decision
    changes = bundle_changes(args, (("commission_bps", "backtest.commission_bps"),
                                    ("slippage_bps", "backtest.slippage_bps")))
    # the bundle's own source, costs and traded assets, unless the command line says otherwise
    config = bundle_config(bundle, changes) if bundle.cycle else override(Config(), **changes)
    table = decide.next_decisions(bundle, load_universe(config.data, refresh=args.refresh), config,
                                  next_decision.HISTORY if args.history is None else args.history,
                                  args.allow_timeframe)
    old = next_decision.stale(table, dt.date.today())
    if old:
        print(f"nt-backtrader: warning: the data is old: the last bar of {', '.join(old)} is not recent; these "
              "decisions are for the session after that bar, not tomorrow's", file=sys.stderr)
    print(json.dumps(decide.as_json(table), indent=2) if args.json else decide.as_text(table))
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    import pandas as pd

    from .bundle_file import load_bundle
    from .data import load_universe, require_bars, traded
    from .report import write_report
    from .traders import classical_trader
    from .walkforward import calendar_of, warmup_bars

    config = config_from_args(args)
    source = universe_name(config.data)
    out = output_path(args, Path("reports") / f"{source}-bundle")
    bundle = load_bundle(args.bundle)
    # every bar up to --end: the warm-up of a backtest from --start comes from the bars before it
    universe = traded(load_universe(config.data, start=None), config.data)
    warmup = warmup_bars(bundle, config)
    first = first_traded_bar(calendar_of(universe), config.data.start, warmup)
    for name, frame in warmed_up(universe, first, warmup).items():
        require_bars(frame, warmup + 21, f"a backtest of {name} with this bundle (its warm-up plus a month)")
        before = int(frame.index.searchsorted(first))
        if before < warmup:  # an asset whose data starts later than the others' trades once it has its own
            print(f"nt-backtrader: note: {name} starts trading on {frame.index[warmup].date()}, not on "
                  f"{first.date()}: the bundle's warm-up needs {warmup} bars and {name} has {before} before it",
                  file=sys.stderr)
    trained = bundle.meta
    overlap = set(universe) & set(trained.get("assets", [trained.get("source")]))
    if overlap and first <= pd.Timestamp(trained.get("train_end", "1900-01-01")):
        print(f"nt-backtrader: warning: {', '.join(sorted(overlap))} from {first.date()} overlaps the bundle's "
              f"training data ({trained['train_start']} .. {trained['train_end']}): those returns are in-sample",
              file=sys.stderr)
    strategy, params, config, names = bundle_trading(bundle, config, args.allow_timeframe)
    result = backtest_from(universe, first, warmup, config, "neural-bundle", strategy, params)
    baselines = {}
    for name in names:
        trader = classical_trader(name, config)
        # the vol-scaled baselines hold the core's share of the book per asset, as in its walk-forward
        share = {"asset_weight": bundle.book_scale} if trader.book is not None else {}
        baselines[name] = backtest_from(universe, first, warmup_bars(trader, config), config, name, trader.strategy,
                                        trader.params | share)
    write_report(result, universe, config, out, source, baselines=baselines,
                 extra={"bundle": str(args.bundle), "bundle_meta": trained})
    print_comparison({result.strategy: result.summary()} | {n: b.summary() for n, b in baselines.items()}, out)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import load_sweep, sweep
    from .sweep.summary import SUMMARY_HTML, SUMMARY_MD

    for option in ("cpus", "cpus_per_cell"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            raise ConfigError(f"--{option.replace('_', '-')} must be at least 1")
    if args.cpus and args.address:
        raise ConfigError("--cpus sizes a local Ray; a cluster joined with --address has the CPUs its nodes have")
    spec = load_sweep(args.file, threads=args.cpus_per_cell)  # every cell checked before any work
    out = output_path(args, Path("reports") / f"sweep-{Path(args.file).stem}").resolve()
    table = sweep(spec, out, cpus=args.cpus, address=args.address, cpus_per_cell=args.cpus_per_cell,
                  progress=not args.quiet)
    print((out / SUMMARY_MD).read_text().split("![")[0].rstrip())
    print(f"\nsweep: {out}/sweep.csv, {out}/{SUMMARY_MD}, {out}/{SUMMARY_HTML}")
    failed = int((table["status"] != "ok").sum())
    return 1 if failed else 0


def first_traded_bar(calendar, start: str | None, warmup: int):
    """The first bar on or after `start` (no start: the first bar) with `warmup` bars of the calendar before
    it; where the data has too few bars before `start`, a note says when trading starts instead."""
    from .data import slice_dates

    at = len(calendar) - len(slice_dates(calendar.to_series(), start, None, source="the data"))
    first = calendar[min(max(at, warmup), len(calendar) - 1)]  # too few bars: require_bars says so
    if start and at < warmup < len(calendar):
        print(f"nt-backtrader: note: trading starts on {first.date()}, not at --start {start}: the bundle's "
              f"warm-up needs {warmup} bars and the data has {at} before it", file=sys.stderr)
    return first


def warmed_up(universe: dict, first, warmup: int) -> dict:
    """Each asset's bars from `first` on, after up to `warmup` of its own bars before it."""
    return {name: frame.iloc[max(frame.index.searchsorted(first) - warmup, 0):] for name, frame in universe.items()}


def bundle_trading(bundle, config: Config, allow_timeframe: bool) -> tuple[type, dict, Config, tuple[str, ...]]:
    """(the strategy that trades `bundle`, its params, the config its baselines and report read, the baselines'
    names): a Bundle in NeuralStrategy next to the classical three, long-only where it is; a PositionBundle in
    PositionStrategy next to the baselines the core's `run` reports (walkforward.baseline_names), trading its
    book: its vol target, span, leverage cap, tsmom lookback, side and rebalance band."""
    from .bundle_file import is_position
    from .plugin import NeuralStrategy, PositionStrategy
    from .walkforward import baseline_names

    params = {"bundle": bundle, "cash_buffer": config.backtest.cash_buffer, "allow_timeframe": allow_timeframe}
    if not is_position(bundle):  # the classical baselines take the side the bundle may take
        config = override(config, **{"strategy.allow_short": bundle.spec.allow_short})
        return NeuralStrategy, params, config, CLASSICAL_STRATEGIES
    spec = bundle.spec
    config = override(config, **{"timing.mode": "position", "strategy.allow_short": not spec.long_only,
                                 "strategy.vol_target": spec.vol_target, "strategy.vol_window": spec.vol_span,
                                 "strategy.max_leverage": spec.max_leverage,
                                 "strategy.tsmom_lookback": spec.tsmom_lookback,
                                 "strategy.rebalance_band": spec.buffer / bundle.book_scale})
    return PositionStrategy, params, config, baseline_names(config)


def backtest_from(universe, first, warmup: int, config: Config, name: str, strategy: type, params: dict):
    """One run trading from `first` on, after up to `warmup` bars of each asset (its indicators' need), as a
    WalkForwardResult so it reports like a walk-forward."""
    from .plugin import run_backtest
    from .walkforward import WalkForwardResult

    costs = config.backtest
    run = run_backtest(warmed_up(universe, first, warmup), strategy, params, cash=costs.cash,
                       commission_bps=costs.commission_bps, slippage_bps=costs.slippage_bps, trade_from=first.date(),
                       costs=asset_costs(config, asset_names(config.data)))
    return WalkForwardResult(run.returns, run.equity, run.fills, run.orders, run.trades, history=[], strategy=name,
                             weights=run.weights, contributions=run.contributions)


def output_path(args: argparse.Namespace, default: Path, folder: bool = True) -> Path:
    """--out (or the default), checked before any work starts rather than when the first file is written."""
    out = Path(args.out) if args.out else default
    if not folder and out.is_dir():
        raise ConfigError(f"--out {out} is a folder: give a file name for the bundle, e.g. {out / 'bundle.pt'}")
    existing = next(p for p in (out, *out.parents) if p.exists())
    if existing != out and not existing.is_dir():
        raise ConfigError(f"--out {out}: {existing} is a file, not a folder; choose another path")
    if folder and not existing.is_dir():
        raise ConfigError(f"--out {out} is a file: give a folder for the report")
    return out


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as the command line says everything: one line, no source file."""
    return f"nt-backtrader: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = one_line_warning
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"nt-backtrader: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("nt-backtrader: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
