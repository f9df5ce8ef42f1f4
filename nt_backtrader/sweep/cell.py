"""One sweep cell: a plain `run` into DIR/cells/<name>/, with its log and a cell.json record.

cell.json is written first with status "running" and the config's hash, and last, atomically,
with the outcome. A cell found "ok" with the same hash is finished; one found "running" was cut
off (its worker or the driver died) and continues from its walk-forward checkpoint.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import traceback
from pathlib import Path

from ..data import atomic_write_text
from ..errors import CheckpointError, UserError
from .grid import Cell

RECORD = "cell.json"
LOG = "log.txt"
SUMMARY_KEYS = ("sharpe", "cagr", "max_drawdown", "turnover", "n_trades")


def read_record(folder: Path) -> dict | None:
    try:
        return json.loads((folder / RECORD).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def finished(cell: Cell, cells_dir: Path) -> dict | None:
    """The record of a cell already run to the end with this very config, else None."""
    record = read_record(cells_dir / cell.name)
    return record if record and record.get("status") == "ok" and record.get("hash") == cell.hash else None


def record_of(cell: Cell, status: str, seconds: float = float("nan"), error: str = "",
              summary: dict | None = None) -> dict:
    summary = summary or {}
    return {"name": cell.name, **cell.values, **{k: summary.get(k, float("nan")) for k in SUMMARY_KEYS},
            "seconds": seconds, "status": status, "error": error, "hash": cell.hash}


def write_record(folder: Path, record: dict) -> None:
    atomic_write_text(folder / RECORD, json.dumps(record, indent=2, default=str))


def relative_paths(cell: Cell) -> list[str]:
    data = cell.config.data
    paths = [*data.csv, *([data.csv_dir] if data.csv_dir else []), *([data.cache_dir] if data.tickers else [])]
    return [p for p in paths if not Path(p).is_absolute()]


def run_cell(cell: Cell, cells_dir: str | Path, cwd: str | None = None) -> dict:
    """Run `cell` and return its record; never raises for the cell's own failures (they are recorded)."""
    from ..job import CHECKPOINT, print_comparison, run_and_report

    if cwd and Path(cwd).is_dir():  # relative data paths mean the same files as on the driver
        os.chdir(cwd)
    elif cwd and relative_paths(cell):
        return record_of(cell, "failed", error=f"relative data paths ({', '.join(relative_paths(cell))}) and no "
                         f"folder {cwd} on this node: give absolute paths, or run from a folder every node shares")
    folder = Path(cells_dir) / cell.name
    earlier = read_record(folder)
    if earlier is None or earlier.get("hash") != cell.hash:
        shutil.rmtree(folder, ignore_errors=True)  # another config's files: nothing to keep
    folder.mkdir(parents=True, exist_ok=True)
    write_record(folder, record_of(cell, "running"))
    start = time.perf_counter()
    # line-buffered: a worker killed mid-cell leaves its log up to the last line
    with open(folder / LOG, "a", buffering=1) as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        print(f"--- cell {cell.name} (config hash {cell.hash}), {time.strftime('%Y-%m-%d %H:%M:%S')}")
        try:
            resume = (folder / CHECKPOINT).is_file()
            if resume:
                print(f"continuing from {CHECKPOINT}, left by an attempt that was cut off")
            try:
                table = run_and_report(cell.config, folder, progress=False, resume=resume)
            except CheckpointError as exc:  # a checkpoint cut off mid-write or from older code: start over
                print(f"checkpoint not usable ({exc}); starting the cell again")
                (folder / CHECKPOINT).unlink(missing_ok=True)
                table = run_and_report(cell.config, folder, progress=False)
            print_comparison(table, folder)
            record = record_of(cell, "ok", time.perf_counter() - start, summary=next(iter(table.values())))
        except UserError as exc:
            print(f"error: {exc}")
            record = record_of(cell, "failed", time.perf_counter() - start, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - one failed cell must not stop the sweep; the log has the trace
            traceback.print_exc()
            record = record_of(cell, "failed", time.perf_counter() - start,
                               error=f"{type(exc).__name__}: {exc}".splitlines()[0])
    write_record(folder, record)
    return record

