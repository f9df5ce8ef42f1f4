"""A plain backtrader script that borrows two pieces: the SMA timing rule and PnLFeedback.

    python strategies/sma_timing_with_feedback.py                 # embedded S&P 500
    python strategies/sma_timing_with_feedback.py --csv SPY.csv   # a Yahoo-format CSV

Nothing here knows about walk-forward: the analyzer records values, fills and round trips
of any run, and our strategies work on any standard feed.
"""
import argparse

import backtrader as bt

from nt_backtrader import PnLFeedback, SmaCross, load_ohlcv, metrics


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", help="Yahoo-format CSV (Date,Open,High,Low,Close,Adj Close,Volume)")
    args = parser.parse_args(argv)

    cerebro = bt.Cerebro(stdstats=False)
    if args.csv:
        cerebro.adddata(bt.feeds.YahooFinanceCSVData(dataname=args.csv, adjclose=True))
    else:
        cerebro.adddata(bt.feeds.PandasData(dataname=load_ohlcv(dataset="sp500"), openinterest=None))
    cerebro.addstrategy(SmaCross, slow=200)
    cerebro.addanalyzer(PnLFeedback, _name="pnl")
    cerebro.broker.setcash(100_000)
    cerebro.broker.setcommission(commission=0.0001)
    (strategy,) = cerebro.run()

    report = strategy.analyzers.pnl.get_analysis()
    returns = report["returns"]
    print(f"{returns.index[0].date()} .. {returns.index[-1].date()}: Sharpe {metrics.sharpe(returns):.2f}, "
          f"max drawdown {metrics.max_drawdown(returns):.1%}, {len(report['trades'])} round trips")
    return report


if __name__ == "__main__":
    main()
