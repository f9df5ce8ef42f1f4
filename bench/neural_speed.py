"""Speed of the neural strategy: backtest throughput against sma_cross, and training time per segment.

Both backtests run over the same bars (2011-2018 of the embedded S&P 500, with the same
warm-up) in this one process, best of --repeat; the ratio is what to read.

    python bench/neural_speed.py [--repeat 5] [--segments 4]
"""
from __future__ import annotations

import argparse
import time

from stopwatch import best_of  # bench/stopwatch.py: python puts the script's folder on the path

from nt_backtrader.config import Config
from nt_backtrader.data import load_ohlcv
from nt_backtrader.plugin import NeuralStrategy, SmaCross, run_backtest
from nt_backtrader.runtime import configure
from nt_backtrader.splits import split
from nt_backtrader.training.coordinator import Coordinator



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--segments", type=int, default=4, help="walk-forward segments to time the training of")
    args = parser.parse_args()

    frame = load_ohlcv(dataset="sp500")
    config = Config()
    coordinator = Coordinator(config, configure(config.train.device, config.train.threads))
    segments = split(len(frame), config.walkforward)
    timings = []
    for seg in segments[-args.segments - 1:]:  # the first fit starts cold (first_epochs), the rest warm
        history = frame.iloc[:seg.train_end]
        arrays = {c: history[c].to_numpy() for c in ("open", "high", "low", "close", "volume")}
        start = time.perf_counter()
        bundle, _ = coordinator.fit(arrays, seg.train_start, seg.val_start, seg.index)
        timings.append(time.perf_counter() - start)
    cold, timings = timings[0], timings[1:]

    first = frame.index.get_loc(frame.loc["2011-01-01":].index[0])
    window = frame.iloc[first - bundle.warmup_bars:]
    bars = len(window) - bundle.warmup_bars
    trade_from = frame.index[first].date()
    neural = best_of(args.repeat, lambda: run_backtest(window, NeuralStrategy, {"bundle": bundle},
                                                       trade_from=trade_from))
    sma = best_of(args.repeat, lambda: run_backtest(window, SmaCross, trade_from=trade_from))
    ohlcv = [window[c].to_numpy(float) for c in ("open", "high", "low", "close", "volume")]
    predict = best_of(args.repeat, lambda: bundle.predict(*ohlcv))  # the networks' share of the backtest
    print(f"training per segment (default config, the longest train windows): cold start {cold:.1f} s; "
          f"warm starts " + ", ".join(f"{t:.1f}" for t in timings) + f" s, mean {sum(timings) / len(timings):.1f} s")
    print(f"backtest of {bars} bars (+{bundle.warmup_bars} warm-up), best of {args.repeat}:")
    print(f"  sma_cross       {bars / sma:10,.0f} bars/s  ({sma:.3f} s)")
    print(f"  NeuralStrategy  {bars / neural:10,.0f} bars/s  ({neural:.3f} s)")
    print(f"  sma_cross / NeuralStrategy throughput ratio: {neural / sma:.2f} (goal <= 1.5)")
    print(f"  of NeuralStrategy's time: batched network prediction {predict:.3f} s ({predict / neural:.0%}); "
          f"the rest is backtrader: its bracket legs, sizer calls and order bookkeeping")


if __name__ == "__main__":
    main()
