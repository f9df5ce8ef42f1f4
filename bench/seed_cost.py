"""What a seed ensemble costs: training time per walk-forward segment with timing.seeds = K.

The same segments of the default S&P 500 walk-forward are trained with K = 1, 2, 3 ... nets in
the first neural member, each K in a fresh trader (warm starts chain as in a run), interleaved
over --repeat rounds in this one process; the ratio to K = 1 is what to read (these machines
are noisy). One torch thread, as a sweep cell has.

    python bench/seed_cost.py [--seeds 1,2,3] [--segments 3] [--repeat 2]
"""
from __future__ import annotations

import argparse
import time

from nt_backtrader.config import Config, override
from nt_backtrader.data import load_ohlcv
from nt_backtrader.runtime import configure
from nt_backtrader.traders import NeuralTrader
from nt_backtrader.walkforward import calendar_of, segments_for, train_frames


def train_segments(config: Config, universe: dict, count: int) -> float:
    """Seconds to train the first `count` segments (the first one starts cold, as a run does)."""
    calendar = calendar_of(universe)
    trader = NeuralTrader(config)
    start = time.perf_counter()
    for seg in segments_for(universe, config)[:count]:
        trader.fit(train_frames(universe, calendar[seg.train_end]), seg, calendar)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3", help="values of timing.seeds to time (default 1,2,3)")
    parser.add_argument("--segments", type=int, default=3, help="walk-forward segments trained per K")
    parser.add_argument("--repeat", type=int, default=2, help="rounds over every K; the best is kept")
    args = parser.parse_args()
    ks = [int(k) for k in args.seeds.split(",")]
    universe = {"sp500": load_ohlcv(dataset="sp500")}
    configure("cpu", 1)
    best = {k: float("inf") for k in ks}
    for _ in range(args.repeat):
        for k in ks:  # interleaved, so that a slow spell of the machine hits every K alike
            config = override(Config(), **{"timing.seeds": k, "train.threads": 1})
            best[k] = min(best[k], train_segments(config, universe, args.segments))
    print(f"training of the first {args.segments} segments of the default sp500 walk-forward, one thread, "
          f"best of {args.repeat}:")
    for k in ks:
        print(f"  timing.seeds = {k}: {best[k]:6.1f} s   x{best[k] / best[ks[0]]:.2f} of seeds = {ks[0]}")


if __name__ == "__main__":
    main()
