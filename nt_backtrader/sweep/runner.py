"""Runs a sweep's cells as Ray tasks: the one module of nt_backtrader that imports ray.

By default it starts a local Ray inside the command (no dashboard, no set-up); with an address
it joins a running cluster. Each unfinished cell is one task; a task whose worker or node dies
is retried by Ray and continues from the cell's checkpoint. After every finished cell,
sweep.csv is rewritten atomically, so a killed driver loses only the cells in flight. A lock file
keeps a second sweep out of the folder while one runs.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..data import atomic_write_text
from ..errors import ConfigError
from ..runtime import usable_cores
from .cell import finished, read_record, record_of, run_cell
from .grid import Cell, Sweep
from .trials import record_trials

TABLE = "sweep.csv"
CELLS = "cells"
TASK_RETRIES = 3  # a cell whose worker process or node dies is run again (from its checkpoint)
LOCK = "sweep.lock"


@contextlib.contextmanager
def sweep_lock(out: Path):
    """Hold `out` for this sweep: a second sweep there would run the same cells again and take over the
    first's live ones. The lock file (created atomically, with this pid and host) is removed on the way
    out, also on an error or Ctrl-C, and so is `out` if the lock made it and nothing else was written (a
    sweep refused before any work leaves nothing behind); a lock left by a process that no longer runs on
    this host is taken over."""
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock = out / LOCK
    if not take_lock(lock):
        holder = read_lock(lock)
        if holder and holder["host"] == socket.gethostname() and not pid_runs(holder["pid"]):
            print(f"nt-backtrader: {out}: the sweep that held it (pid {holder['pid']}) no longer runs; taking over "
                  "its lock", file=sys.stderr)
            lock.unlink(missing_ok=True)  # two sweeps doing this at once on one stale lock could both win
        if not take_lock(lock):
            holder = read_lock(lock)
            who = f"pid {holder['pid']} on {holder['host']}" if holder else f"its lock {lock} names no process"
            raise ConfigError(f"--out {out} is in use by another sweep ({who}): wait for it to finish or give "
                              f"another --out; if that sweep no longer runs, delete {lock}")
    try:
        yield
    finally:
        if (read_lock(lock) or {}).get("pid") == os.getpid():
            lock.unlink(missing_ok=True)
        if made and not any(out.iterdir()):
            out.rmdir()


def take_lock(lock: Path) -> bool:
    """Create `lock` with our pid and host, atomically; False when it exists."""
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        json.dump({"pid": os.getpid(), "host": socket.gethostname()}, handle)
    return True


def read_lock(lock: Path) -> dict | None:
    """The lock's pid and host; None when it is gone or not (yet) written."""
    try:
        holder = json.loads(lock.read_text())
        return {"pid": int(holder["pid"]), "host": str(holder["host"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pid_runs(pid: int) -> bool:
    """Whether another process `pid` runs here; ours is a pid reused after a restart (a container's)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0 only asks whether it exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        pass
    return True


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


def cpus_of(cell: Cell, cpus_per_cell: int) -> int:
    """The CPUs a cell's task reserves: its torch threads, when its config fixes them."""
    return cell.config.train.threads or cpus_per_cell


def check_fits(todo: list[Cell], cpus_per_cell: int, largest_node: float, where: str) -> None:
    """A task that needs more CPUs than any node has would wait forever: refuse it before any work."""
    need = max(cpus_of(cell, cpus_per_cell) for cell in todo)
    if need > largest_node:
        raise ConfigError(f"a cell needs {need} CPUs (its train.threads or --cpus-per-cell) but {where} has "
                          f"{largest_node:g}: lower them or give more CPUs")


def run_sweep(sweep: Sweep, out: Path, cpus: int | None = None, address: str | None = None,
              cpus_per_cell: int = 1, progress: bool = True) -> pd.DataFrame:
    """Run every cell of `sweep` not already finished under `out`; returns the sweep table."""
    import ray

    cells_dir = out / CELLS
    records = {cell.name: finished(cell, cells_dir) for cell in sweep.cells}
    todo = [cell for cell in sweep.cells if records[cell.name] is None]
    changed = [cell.name for cell in todo if (read_record(cells_dir / cell.name) or {}).get("status") == "ok"]
    if changed:
        print(f"nt-backtrader: {len(changed)} finished cells have another config now (e.g. {changed[0]}): they run "
              "again", file=sys.stderr)
    started = False
    if todo:  # checked and connected before anything is written
        if not address:
            check_fits(todo, cpus_per_cell, cpus or usable_cores(), f"--cpus {cpus or usable_cores()}")
        started = start_ray(cpus, address)
    try:
        if todo and address:
            check_fits(todo, cpus_per_cell, max(n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]),
                       "the largest node of the cluster")
        cells_dir.mkdir(parents=True, exist_ok=True)
        table = write_table(out, sweep, records)
        if todo:
            table = run_cells(sweep, todo, records, out, cpus_per_cell, progress)
        record_trials(sweep, table)
    finally:
        if started:
            ray.shutdown()
    return table


def run_cells(sweep: Sweep, todo: list[Cell], records: dict, out: Path, cpus_per_cell: int,
              progress: bool) -> pd.DataFrame:
    import ray

    cells_dir = out / CELLS
    task = ray.remote(max_retries=TASK_RETRIES)(run_cell)
    pending = {task.options(num_cpus=cpus_of(cell, cpus_per_cell)).remote(cell, str(cells_dir), os.getcwd()): cell
               for cell in todo}
    done_before = len(sweep.cells) - len(todo)
    bar = tqdm(total=len(todo), unit="cell", disable=None if progress else True,
               desc="sweep" + (f" ({done_before} cells done before)" if done_before else ""))
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        cell = pending.pop(ready[0])
        try:
            record = ray.get(ready[0])
        except ray.exceptions.RayTaskError as exc:  # raised outside the cell's own guard: not retried
            record = record_of(cell, "failed", error=first_line(exc.cause if exc.cause else exc))
        except ray.exceptions.RayError as exc:  # its worker or node died on every one of the retries
            record = record_of(cell, "failed", error=f"after {TASK_RETRIES} retries: {first_line(exc)}")
        if record["status"] == "ok" and finished(cell, cells_dir) is None:
            record = record_of(cell, "failed", record["seconds"], error="the cell ran on a node whose files are "
                               "not visible here: give --out a folder every node shares")
        records[cell.name] = record
        table = write_table(out, sweep, records)
        bar.update(1)
        bar.set_postfix_str(f"{cell.name}: {record['status']}" + (f", Sharpe {record['sharpe']:.2f}"
                                                                   if record["status"] == "ok" else ""))
    bar.close()
    return table


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
