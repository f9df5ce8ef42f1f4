"""Throughput of the walk-forward pipeline against a bare backtrader run of the same strategy.

Both run the 200-day SMA timing rule over the same out-of-sample bars of the embedded
S&P 500, in this one process, best of --repeat; the ratio is what to read (machines are noisy).

    python bench/throughput.py [--repeat 5] [--dataset sp500]
"""
from __future__ import annotations

import argparse

import backtrader as bt
from stopwatch import best_of  # bench/stopwatch.py: python puts the script's folder on the path

from nt_backtrader.config import Config, override
from nt_backtrader.data import load_ohlcv
from nt_backtrader.walkforward import segments_for, walk_forward


class BareSmaTiming(bt.Strategy):
    """What a backtrader user writes by hand: long above the 200-day SMA, flat below."""

    def __init__(self):
        self.sma = bt.ind.SMA(self.data.close, period=200)

    def next(self):
        self.order_target_percent(target=0.99 if self.data.close[0] > self.sma[0] else 0.0)



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dataset", default="sp500")
    args = parser.parse_args()

    frame = load_ohlcv(dataset=args.dataset)
    config = override(Config(), **{"strategy.name": "sma_cross"})
    segments = segments_for(frame, config)
    first = segments[0].test_start
    oos_bars = len(frame) - first
    bare_frame = frame.iloc[first - 201:]  # the same warm-up the pipeline gives SMA200

    def bare():
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(bt.feeds.PandasData(dataname=bare_frame, openinterest=None))
        cerebro.addstrategy(BareSmaTiming)
        cerebro.broker.setcommission(commission=0.0001)
        cerebro.run()

    pipeline = best_of(args.repeat, lambda: walk_forward(frame, config, progress=False))
    plain = best_of(args.repeat, bare)
    print(f"{args.dataset}: {oos_bars} out-of-sample bars, {len(segments)} segments, best of {args.repeat}")
    print(f"  bare backtrader       {oos_bars / plain:10,.0f} bars/s  ({plain:.3f} s)")
    print(f"  walk-forward pipeline {oos_bars / pipeline:10,.0f} bars/s  ({pipeline:.3f} s)")
    print(f"  pipeline / bare throughput ratio: {plain / pipeline:.2f}")


if __name__ == "__main__":
    main()
