"""Sweeps: many walk-forward runs (seeds x data x variants x costs) as Ray tasks, and the statistics
that tell skill from luck. A layer above the walk-forward: each cell is a plain `run`.

    grid.py     the sweep file -> checked cells (no ray)
    cell.py     one cell: `run` into its folder, with a log and a record (no ray)
    runner.py   the cells as Ray tasks, one sweep per folder (a lock): the only module that imports ray
    summary.py  sweep.csv -> summary.md / .html / .json and the figure (no ray)
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .grid import Sweep, load_sweep


def sweep(spec: Sweep | str | Path, out: str | Path, cpus: int | None = None, address: str | None = None,
          cpus_per_cell: int = 1, progress: bool = True) -> pd.DataFrame:
    """Run a sweep (or the sweep file at `spec`) into `out`, keeping finished cells, and summarise it;
    returns the sweep table (sweep.csv)."""
    from .runner import run_sweep, sweep_lock
    from .summary import write_summary

    spec = spec if isinstance(spec, Sweep) else load_sweep(spec, threads=cpus_per_cell)
    out = Path(out).resolve()
    with sweep_lock(out):  # one sweep per folder: a second would run every cell again
        table = run_sweep(spec, out, cpus=cpus, address=address, cpus_per_cell=cpus_per_cell, progress=progress)
        write_summary(spec, table, out)
    return table


__all__ = ["Sweep", "load_sweep", "sweep"]
