"""Classical baselines through the walk-forward pipeline, with the cost sweep of evaluation.md.

    python bench/baselines.py [--datasets sp500 nasdaq] [--bps 0 1 3 5]

Prints out-of-sample Sharpe / max drawdown / annual turnover per strategy and cost level
(commission = slippage = the given bps per side), all on the same stitched test dates.
"""
from __future__ import annotations

import argparse

from nt_backtrader.config import CLASSICAL_STRATEGIES, Config, override
from nt_backtrader.data import load_ohlcv
from nt_backtrader.walkforward import walk_forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["sp500", "nasdaq"])
    parser.add_argument("--bps", nargs="+", type=float, default=[0, 1, 3, 5])
    args = parser.parse_args()
    print("| data | strategy | " + " | ".join(f"{b:g} bp: Sharpe / max DD / turnover" for b in args.bps) + " |")
    print("|---|---|" + "---|" * len(args.bps))
    for dataset in args.datasets:
        frame = load_ohlcv(dataset=dataset)
        for name in CLASSICAL_STRATEGIES:
            cells = []
            for bps in args.bps:
                config = override(Config(), **{"strategy.name": name, "backtest.commission_bps": bps,
                                               "backtest.slippage_bps": bps})
                s = walk_forward(frame, config, progress=False).summary()
                cells.append(f"{s['sharpe']:.2f} / {s['max_drawdown']:.0%} / {s['turnover']:.1f}")
            print(f"| {dataset} {s['start'][:4]}-{s['end'][:4]} | {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
