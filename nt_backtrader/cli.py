"""`nt-backtrader`: the command line. Bad input ends in one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import Config, load_config, override
from .data import EMBEDDED, source_name
from .errors import ConfigError, UserError

EXIT_USER_ERROR = 2


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


def add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data (default: the embedded S&P 500, 1999-2018)")
    source = group.add_mutually_exclusive_group()
    source.add_argument("--dataset", choices=sorted(EMBEDDED), help="embedded daily OHLCV from the arch package")
    source.add_argument("--csv", metavar="PATH", help="a CSV file: Yahoo's format (Date,Open,High,Low,Close,"
                        "Adj Close,Volume) or any columns named with --columns")
    source.add_argument("--ticker", metavar="SYMBOL", help="download with yfinance once, then read the cache "
                        "under data_feeds/cache/")
    group.add_argument("--columns", metavar="MAP", help="column mapping for --csv, e.g. date=Datum,close=Schluss")
    group.add_argument("--start", metavar="YYYY-MM-DD", help="first date used")
    group.add_argument("--end", metavar="YYYY-MM-DD", help="last date used")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML file with any config keys (see README); "
                        "command-line options override it")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--commission-bps", type=float, help="commission per side in basis points (default 1)")
    parser.add_argument("--slippage-bps", type=float, help="slippage per side in basis points (default 1)")
    parser.add_argument("--cash", type=float, help="starting cash (default 100000)")
    parser.add_argument("--out", metavar="DIR", help="report folder (default reports/<data>-<strategy>/)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="nt-backtrader", description=(
        "Walk-forward backtests of neural and classical strategies in backtrader, "
        "reported as QuantStats tear-sheets of the out-of-sample returns."))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="walk-forward backtest -> tear-sheet, returns.csv, metrics.json",
                              description="Walk-forward: for each segment fit on the train window, trade "
                              "the next test window in backtrader (costs on), stitch the test windows, report.")
    run.add_argument("--strategy", help="buy_hold | sma_cross | tsmom (default sma_cross)")
    add_data_options(run)
    add_run_options(run)
    run.set_defaults(func=cmd_run)
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    config = load_config(args.config) if args.config else Config()
    changes = {}
    if args.dataset or args.csv or args.ticker:
        changes.update({"data.dataset": args.dataset or config.data.dataset, "data.csv": args.csv,
                        "data.ticker": args.ticker})
    if args.columns:
        changes["data.columns"] = parse_columns(args.columns)
    for option, key in (("start", "data.start"), ("end", "data.end"), ("seed", "seed"),
                        ("commission_bps", "backtest.commission_bps"), ("slippage_bps", "backtest.slippage_bps"),
                        ("cash", "backtest.cash"), ("strategy", "strategy.name")):
        value = getattr(args, option, None)
        if value is not None:
            changes[key] = value
    return override(config, **changes)


def cmd_run(args: argparse.Namespace) -> int:
    from .data import load_ohlcv
    from .report import TEARSHEET, write_report
    from .traders import make_trader
    from .walkforward import walk_forward

    config = config_from_args(args)
    trader = make_trader(config)  # an unknown strategy fails before any work
    frame = load_ohlcv(config.data)
    source = source_name(config.data)
    out = Path(args.out) if args.out else Path("reports") / f"{source}-{trader.name}"
    result = walk_forward(frame, config, trader=trader, progress=not args.quiet)
    write_report(result, frame, config, out, source)
    print_summary(result.summary(), out / TEARSHEET)
    return 0


def print_summary(summary: dict, tearsheet: Path) -> None:
    print(f"out of sample {summary['start']} .. {summary['end']} ({summary['n_segments']} segments): "
          f"Sharpe {summary['sharpe']:.2f}, CAGR {summary['cagr']:.1%}, max drawdown {summary['max_drawdown']:.1%}, "
          f"PSR {summary['psr']:.2f}, turnover {summary['turnover']:.1f}/yr, {summary['n_trades']} trades")
    print(f"tear-sheet: {tearsheet}")


def main(argv: list[str] | None = None) -> int:
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
