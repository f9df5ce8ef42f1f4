"""Speed of the neural strategy on a universe: backtest throughput per asset-bar against the
sma_cross portfolio, training time per segment, and one whole default walk-forward.

The universe: the two embedded indices, plus, for --assets above 2, further assets made of
the same real bars on calendars of their own (each missing a different random 5% of the days),
so that backtrader synchronises feeds that differ. Backtests run over the same bars
(2011-2018, with the same warm-up) in this one process, best of --repeat; the ratio is what
to read (these machines are noisy).

    python bench/neural_speed.py [--assets 1] [--repeat 5] [--segments 4] [--walk-forward]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from stopwatch import best_of  # bench/stopwatch.py: python puts the script's folder on the path

from nt_backtrader.config import Config
from nt_backtrader.data import load_ohlcv
from nt_backtrader.plugin import NeuralStrategy, SmaCross, run_backtest
from nt_backtrader.runtime import configure
from nt_backtrader.traders import NeuralTrader
from nt_backtrader.walkforward import calendar_of, segments_for, test_frames, train_frames, walk_forward


def universe(n_assets: int) -> dict:
    indices = {name: load_ohlcv(dataset=name) for name in ("sp500", "nasdaq")}
    out = dict(list(indices.items())[:n_assets])
    rng = np.random.default_rng(0)
    for k in range(2, n_assets):
        frame = list(indices.values())[k % 2]
        keep = rng.random(len(frame)) > 0.05
        out[f"{list(indices)[k % 2]}_{k}"] = frame[keep]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=1, help="assets in the universe (default 1: sp500)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--segments", type=int, default=4, help="walk-forward segments to time the training of")
    parser.add_argument("--walk-forward", action="store_true", help="also time one whole default walk-forward")
    args = parser.parse_args()

    assets = universe(args.assets)
    config = Config()
    configure(config.train.device, config.train.threads)
    calendar = calendar_of(assets)
    segments = segments_for(assets, config)
    trader = NeuralTrader(config)
    timings = []
    for seg in segments[-args.segments - 1:]:  # the first fit starts cold (first_epochs), the rest warm
        start = time.perf_counter()
        params = trader.fit(train_frames(assets, calendar[seg.train_end]), seg, calendar)
        timings.append(time.perf_counter() - start)
    cold, timings = timings[0], timings[1:]

    bundle = params["bundle"]
    first = calendar[calendar.searchsorted(np.datetime64("2011-01-01"))]
    windows = test_frames(assets, first, calendar[-1], bundle.warmup_bars, len(calendar))
    asset_bars = sum(int((w.index >= first).sum()) for w in windows.values())
    neural = best_of(args.repeat, lambda: run_backtest(windows, NeuralStrategy, {"bundle": bundle},
                                                       trade_from=first.date()))
    sma = best_of(args.repeat, lambda: run_backtest(windows, SmaCross, trade_from=first.date()))
    ohlcv = [[w[c].to_numpy(float) for c in ("open", "high", "low", "close", "volume")] for w in windows.values()]
    predict = best_of(args.repeat, lambda: [bundle.predict(*columns) for columns in ohlcv])
    print(f"universe: {', '.join(assets)}")
    print(f"training per segment (default config, the longest train windows): cold start {cold:.1f} s; "
          f"warm starts " + ", ".join(f"{t:.1f}" for t in timings) + f" s, mean {sum(timings) / len(timings):.1f} s")
    print(f"backtest of {asset_bars} asset-bars (+{bundle.warmup_bars} warm-up bars per asset), best of {args.repeat}:")
    print(f"  sma_cross portfolio  {asset_bars / sma:10,.0f} asset-bars/s  ({sma:.3f} s)")
    print(f"  NeuralStrategy       {asset_bars / neural:10,.0f} asset-bars/s  ({neural:.3f} s)")
    print(f"  NeuralStrategy / sma_cross time per asset-bar: {neural / sma:.2f} (goal <= 1.5)")
    print(f"  of NeuralStrategy's time: batched network prediction {predict:.3f} s ({predict / neural:.0%}); "
          f"the rest is backtrader: its bracket legs, sizer calls and order bookkeeping")
    if args.walk_forward:
        start = time.perf_counter()
        result = walk_forward(assets, config, progress=False)
        print(f"default walk-forward of {len(assets)} assets ({len(result.history)} segments): "
              f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
