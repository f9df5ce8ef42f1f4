"""How a sweep scales with the CPUs it is given: cells per minute at 1 and at 2 CPUs.

Runs the first --cells cells of a sweep file (default: the ablation grid, full default
walk-forwards, one torch thread per cell) on a fresh local Ray once per CPU count, each into a
fresh folder, and prints cells per minute (wall time, Ray's start included) and the ratio to the
first count. The cells' returns must be byte-identical at every count: a cell does not depend
on what ran beside it.

    python bench/sweep_scaling.py [--file bench/ablation.toml] [--cells 4] [--cpus 1 2] [--out DIR]
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from nt_backtrader.sweep import load_sweep, sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", default="bench/ablation.toml")
    parser.add_argument("--cells", type=int, default=4, help="the first N cells of the file")
    parser.add_argument("--cpus", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", help="folder for the runs (default: a temporary one)")
    args = parser.parse_args()

    spec = load_sweep(args.file)
    part = dataclasses.replace(spec, cells=spec.cells[:args.cells])
    root = Path(args.out or tempfile.mkdtemp(prefix="sweep-scaling-"))
    rates, outputs = {}, {}
    for cpus in args.cpus:
        out = root / f"cpus{cpus}"
        start = time.perf_counter()
        table = sweep(part, out, cpus=cpus, progress=False)
        minutes = (time.perf_counter() - start) / 60
        assert (table["status"] == "ok").all(), table[["name", "status", "error"]]
        rates[cpus] = len(part.cells) / minutes
        outputs[cpus] = [(out / "cells" / c.name / "returns.csv").read_bytes() for c in part.cells]
        print(f"{cpus} CPU(s): {len(part.cells)} cells in {minutes:.1f} min = {rates[cpus]:.2f} cells/min")
    first = args.cpus[0]
    for cpus in args.cpus[1:]:
        same = outputs[cpus] == outputs[first]
        print(f"scaling {first} -> {cpus} CPUs: {rates[cpus] / rates[first]:.2f}x cells/min "
              f"(ideal {cpus / first:.0f}x); returns byte-identical: {same}")
    print(f"cells of {args.file}: {', '.join(c.name for c in part.cells)}; runs under {root}")


if __name__ == "__main__":
    main()
