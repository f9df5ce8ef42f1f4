"""Trading tomorrow, timed: `nt-backtrader signal` (goal: under 5 s), `train` and one yearly `update`.

Each command runs as a user runs it, in a fresh process (imports included), on the embedded
S&P 500: `train` up to 2017-12-29, `update` with the 251 bars of 2018, `signal` on the updated
bundle; signal is run --repeat times and its median kept.

    python bench/trading_tomorrow.py [--quick] [--repeat 3] [--dir reports/tomorrow]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

SIGNAL_GOAL_S = 5.0


def timed(args: list[str], command: tuple = ("-m", "nt_backtrader.cli")) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *command, *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="train with --quick")
    parser.add_argument("--repeat", type=int, default=3, help="signal runs; the median is kept")
    parser.add_argument("--dir", default="reports/tomorrow", help="folder of the two bundles")
    args = parser.parse_args()
    folder = Path(args.dir)
    first, second = folder / "model-2017.pt", folder / "model-2018.pt"
    quick = ["--quick"] if args.quick else []
    train = timed(["train", "--end", "2017-12-29", "--out", str(first), *quick])
    update = timed(["update", "--bundle", str(first), "--out", str(second)])
    signals, imports = [], []
    for _ in range(args.repeat):  # interleaved: the machine's speed drifts
        signals.append(timed(["signal", "--bundle", str(second)]))
        imports.append(timed([], ("-c", "import torch, pandas, backtrader")))
    signal, bare = statistics.median(signals), statistics.median(imports)
    print(f"train (1999-2017{', --quick' if args.quick else ''}): {train:.1f} s")
    print(f"update (+ 2018, feedback and one cycle): {update:.1f} s")
    print(f"signal: {signal:.2f} s, median of {args.repeat} (goal under {SIGNAL_GOAL_S:.0f} s: "
          f"{signal / SIGNAL_GOAL_S:.2f} of it); a bare `import torch, pandas, backtrader` takes {bare:.2f} s "
          f"of it ({bare / signal:.0%}), nt_backtrader's own part {signal - bare:.2f} s")


if __name__ == "__main__":
    main()
