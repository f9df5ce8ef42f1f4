"""The full neural strategy from a saved bundle, in a plain backtrader script.

    nt-backtrader train --end 2010-12-31 --out model.pt   # the core; --config strategies/discrete.toml: discrete
    python strategies/neural_from_bundle.py --bundle model.pt --csv SPY.csv
    python strategies/neural_from_bundle.py --bundle model.pt --csv SPY.csv --csv TLT.csv --csv GLD.csv

NeuralStrategy asks the timing network for entries and exits, its NeuralSizer for the size
and the risk network for the bracket, all computed from each feed's own OHLCV lines; with
several feeds it trades each of them, as one portfolio on one account. A bundle of the
deep-momentum core (trained with timing.mode = "position") is traded by PositionStrategy:
each feed rebalanced to the bundle's volatility-scaled target weight.
"""
import argparse
from pathlib import Path

import backtrader as bt

from nt_backtrader import NeuralStrategy, PnLFeedback, load_ohlcv, metrics
from nt_backtrader.bundle_file import is_position, load_bundle
from nt_backtrader.plugin import PositionStrategy


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, help="a bundle written by `nt-backtrader train`")
    parser.add_argument("--csv", action="append", help="generic CSV with Date,Open,High,Low,Close,Volume columns; "
                        "repeat for a portfolio (each feed is named after its file)")
    parser.add_argument("--start", default="2011-01-01", help="first date (after the bundle's training data)")
    args = parser.parse_args(argv)

    cerebro = bt.Cerebro(stdstats=False)
    for csv in args.csv or []:
        cerebro.adddata(bt.feeds.GenericCSVData(dataname=csv, dtformat="%Y-%m-%d", datetime=0, open=1,
                                                high=2, low=3, close=4, volume=5, openinterest=-1),
                        name=Path(csv).stem)
    if not args.csv:
        cerebro.adddata(bt.feeds.PandasData(dataname=load_ohlcv(start=args.start), openinterest=None))
    bundle = load_bundle(args.bundle)  # a Bundle or a PositionBundle, as the file says
    cerebro.addstrategy(PositionStrategy if is_position(bundle) else NeuralStrategy, bundle=bundle)
    cerebro.addanalyzer(PnLFeedback, _name="pnl")
    cerebro.broker.setcash(100_000)
    cerebro.broker.setcommission(commission=0.0001)
    (strategy,) = cerebro.run()

    report = strategy.analyzers.pnl.get_analysis()
    returns = report["returns"]
    print(f"{type(strategy).__name__} {returns.index[0].date()} .. {returns.index[-1].date()}: "
          f"Sharpe {metrics.sharpe(returns):.2f}, max drawdown {metrics.max_drawdown(returns):.1%}, "
          f"{len(report['trades'])} round trips, exits {bracket_exits(strategy)}")
    return strategy, report


def bracket_exits(strategy) -> dict:
    """Stop and take-profit exits: NeuralStrategy's diagnostics, or the count of PositionStrategy's legs
    (which exists once a leg was sent)."""
    if isinstance(strategy, NeuralStrategy):
        return strategy.diagnostics()["bracket_exits"]
    return dict(getattr(strategy, "bracket_exits", {"stop": 0, "take": 0}))


if __name__ == "__main__":
    main()
