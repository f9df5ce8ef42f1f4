"""Runs a sweep's cells as Ray tasks: the one module of nt_backtrader that imports ray.

By default it starts a local Ray inside the command (no dashboard, no set-up); with an address
it joins a running cluster. Each unfinished cell is one task; a task whose worker or node dies
is retried by Ray and continues from the cell's checkpoint. After every finished cell,
sweep.csv is rewritten atomically, so a killed driver loses only the cells in flight. A flock on
a lock file keeps a second sweep out of the folder while one runs.
"""
from __future__ import annotations

import contextlib
import fcntl
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
    first's live ones. The hold is an exclusive flock on `out`/sweep.lock, kept on an open descriptor for
    the sweep's lifetime: the kernel releases it when the process dies however it dies, so a lock file a
    crashed sweep left behind is simply taken, with no stale-lock takeover (whose check-then-remove let two
    sweeps win at once). The file names our pid and host for the message a second sweep gets. On the way
    out, also on an error or Ctrl-C, the file is removed while still locked, and so is `out` if the lock
    made it and nothing else was written (a sweep refused before any work leaves nothing behind)."""
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock = out / LOCK
    fd = take_lock(lock)
    if fd is None:
        holder = read_lock(lock)
        who = f"pid {holder['pid']} on {holder['host']}" if holder else f"which has not yet named itself in {lock}"
        raise ConfigError(f"--out {out} is in use by another sweep ({who}): wait for it to finish or give "
                          "another --out")
    try:
        yield
    finally:
        try:
            if same_file(fd, lock):  # unlinked while still locked: no one can lock this inode by its path again
                lock.unlink(missing_ok=True)
        finally:
            os.close(fd)  # releases the flock
        if made and not any(out.iterdir()):
            out.rmdir()


def take_lock(lock: Path) -> int | None:
    """An open descriptor holding an exclusive flock on `lock`, with our pid and host written in it; None
    when another process holds it. A descriptor opened on a file its holder then removed may lock that
    orphan, so the lock counts only while the path still names the inode locked; else open it again."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by the processes we start
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        if same_file(fd, lock):
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode(), 0)
    except BaseException:
        lock.unlink(missing_ok=True)
        os.close(fd)
        raise
    return fd


def same_file(fd: int, path: Path) -> bool:
    """Whether `path` still names the file open at `fd`."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def read_lock(lock: Path) -> dict | None:
    """The lock's pid and host; None when it is gone or not (yet) written."""
    try:
        holder = json.loads(lock.read_text())
        return {"pid": int(holder["pid"]), "host": str(holder["host"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
