"""The full neural strategy from a saved bundle, in a plain backtrader script.

    nt-backtrader train --end 2010-12-31 --out model.pt
    python strategies/neural_from_bundle.py --bundle model.pt --csv SPY.csv
    python strategies/neural_from_bundle.py --bundle model.pt --csv SPY.csv --csv TLT.csv --csv GLD.csv

NeuralStrategy asks the timing network for entries and exits, its NeuralSizer for the size
and the risk network for the bracket, all computed from each feed's own OHLCV lines; with
several feeds it trades each of them, as one portfolio on one account.
"""
import argparse
from pathlib import Path

import backtrader as bt

from nt_backtrader import NeuralStrategy, PnLFeedback, load_ohlcv, metrics


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
    cerebro.addstrategy(NeuralStrategy, bundle=args.bundle)
    cerebro.addanalyzer(PnLFeedback, _name="pnl")
    cerebro.broker.setcash(100_000)
    cerebro.broker.setcommission(commission=0.0001)
    (strategy,) = cerebro.run()

    report = strategy.analyzers.pnl.get_analysis()
    returns = report["returns"]
    print(f"NeuralStrategy {returns.index[0].date()} .. {returns.index[-1].date()}: "
          f"Sharpe {metrics.sharpe(returns):.2f}, max drawdown {metrics.max_drawdown(returns):.1%}, "
          f"{len(report['trades'])} round trips, exits {strategy.diagnostics()['bracket_exits']}")
    return strategy, report


if __name__ == "__main__":
    main()
