"""An ordinary SMA-crossover backtrader script, given the neural sizer and risk brackets.

    nt-backtrader train --config strategies/discrete.toml --end 2010-12-31 --out model.pt
    python strategies/sma_with_neural_sizer.py --bundle model.pt --csv SPY.csv

The strategy class below is plain backtrader and stays unmodified; three lines marked
`# nt_backtrader` bring in the position-sizing network (NeuralSizer) and the risk network's
stop-loss / take-profit brackets (with_risk_brackets). Without --csv it reads the embedded
S&P 500 through a standard PandasData feed.
"""
import argparse

import backtrader as bt

from nt_backtrader import NeuralSizer, load_ohlcv, metrics, with_risk_brackets  # nt_backtrader


class SmaCrossover(bt.Strategy):
    """Long while the 20-day average is above the 50-day one (the backtrader docs' example)."""

    params = (("fast", 20), ("slow", 50))

    def __init__(self):
        self.crossover = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow))

    def next(self):
        if not self.position and self.crossover > 0:
            self.buy()
        elif self.position and self.crossover < 0:
            self.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, help="a bundle written by `nt-backtrader train`")
    parser.add_argument("--csv", help="Yahoo-format CSV (Date,Open,High,Low,Close,Adj Close,Volume)")
    parser.add_argument("--start", default="2011-01-01", help="first date (after the bundle's training data)")
    args = parser.parse_args(argv)

    cerebro = bt.Cerebro()
    if args.csv:
        cerebro.adddata(bt.feeds.YahooFinanceCSVData(dataname=args.csv, adjclose=True))
    else:
        cerebro.adddata(bt.feeds.PandasData(dataname=load_ohlcv(start=args.start), openinterest=None))
    cerebro.addsizer(NeuralSizer, bundle=args.bundle)                                # nt_backtrader
    cerebro.addstrategy(with_risk_brackets(SmaCrossover), bundle=args.bundle)         # nt_backtrader
    cerebro.addanalyzer(bt.analyzers.TimeReturn, _name="returns")
    cerebro.broker.setcash(100_000)
    cerebro.broker.setcommission(commission=0.0001)
    (strategy,) = cerebro.run()

    returns = strategy.analyzers.returns.get_analysis()
    daily = list(returns.values())
    print(f"SMA crossover with neural sizing and brackets: Sharpe {metrics.sharpe(daily):.2f}, "
          f"max drawdown {metrics.max_drawdown(daily):.1%}, stops hit {strategy.bracket_exits['stop']}, "
          f"take-profits hit {strategy.bracket_exits['take']}")
    return strategy


if __name__ == "__main__":
    main()
