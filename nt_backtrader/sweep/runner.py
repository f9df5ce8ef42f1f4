"""Runs a sweep's cells as Ray tasks: the one module of nt_backtrader that imports ray.

By default it starts a local Ray inside the command (no dashboard, no set-up); with an address
it joins a running cluster. Each unfinished cell is one task; a task whose worker or node dies
is retried by Ray and continues from the cell's checkpoint. After every finished cell,
sweep.csv is rewritten atomically, so a killed driver loses only the cells in flight.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..data import atomic_write_text
from ..errors import ConfigError
from ..runtime import usable_cores
from .cell import finished, record_of, run_cell
from .grid import Sweep

TABLE = "sweep.csv"
CELLS = "cells"
TASK_RETRIES = 3  # a cell whose worker process or node dies is run again (from its checkpoint)


def write_table(out: Path, sweep: Sweep, records: dict[str, dict | None]) -> pd.DataFrame:
    rows = [records[cell.name] or record_of(cell, "pending") for cell in sweep.cells]
    table = pd.DataFrame(rows)
    atomic_write_text(out / TABLE, table.to_csv(index=False))
    return table


def start_ray(cpus: int | None, address: str | None) -> bool:
    """Join the cluster at `address`, or start a local Ray with `cpus` CPUs; True when we started it."""
    import ray

    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if address:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"--address {address}: no Ray cluster reached ({str(exc).splitlines()[0]}); start one "
                              "with `ray start --head`, or leave --address out for a local Ray") from None
        return False
    ray.init(num_cpus=cpus or usable_cores(), **quiet)
    return True


def run_sweep(sweep: Sweep, out: Path, cpus: int | None = None, address: str | None = None,
              cpus_per_cell: int = 1, progress: bool = True) -> pd.DataFrame:
    """Run every cell of `sweep` not already finished under `out`; returns the sweep table."""
    import ray

    out = out.resolve()
    cells_dir = out / CELLS
    cells_dir.mkdir(parents=True, exist_ok=True)
    records = {cell.name: finished(cell, cells_dir) for cell in sweep.cells}
    todo = [cell for cell in sweep.cells if records[cell.name] is None]
    table = write_table(out, sweep, records)
    if not todo:
        return table
    started = start_ray(cpus, address)
    try:
        task = ray.remote(num_cpus=cpus_per_cell, max_retries=TASK_RETRIES)(run_cell)
        pending = {task.remote(cell, str(cells_dir), os.getcwd()): cell for cell in todo}
        done_before = len(sweep.cells) - len(todo)
        bar = tqdm(total=len(todo), unit="cell", disable=None if progress else True,
                   desc="sweep" + (f" ({done_before} cells done before)" if done_before else ""))
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(ready[0])
            try:
                record = ray.get(ready[0])
            except ray.exceptions.RayError as exc:  # the worker died TASK_RETRIES + 1 times
                record = record_of(cell, "failed", error=f"{type(exc).__name__} after {TASK_RETRIES} retries: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''}")
            if record["status"] == "ok" and finished(cell, cells_dir) is None:
                record = record_of(cell, "failed", record["seconds"], error="the cell ran on a node whose files are "
                                   "not visible here: give --out a folder every node shares")
            records[cell.name] = record
            table = write_table(out, sweep, records)
            bar.update(1)
            bar.set_postfix_str(f"{cell.name}: {record['status']}" + (f", Sharpe {record['sharpe']:.2f}"
                                                                       if record["status"] == "ok" else ""))
        bar.close()
    finally:
        if started:
            ray.shutdown()
    return table
