"""A sweep killed with SIGKILL mid-cell continues from that cell's checkpoint (a file of its own so that
pytest-xdist runs it beside test_sweep.py's small sweep, the other Ray test)."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd

from conftest import kill_after_segments
from sweep_cases import BASE, run_cli, sweep_file


def test_a_killed_sweep_continues_where_it_stopped(tmp_path, capsys):
    """kill -9 of the driver mid-cell: the next invocation continues that cell from its checkpoint and
    ends with the bytes of an uninterrupted run."""
    body = BASE.replace("test_bars = 252", "test_bars = 126") + "\n[grid]\nseed = [3]\n"
    path = sweep_file(tmp_path, body)
    out = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-m", "nt_backtrader.cli", "sweep", str(path), "--out", str(out),
                             "--cpus", "1", "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = out / "cells" / "seed=3" / "checkpoint.pt"
    done = kill_after_segments(proc, checkpoint, 1)
    assert done >= 1 and json.loads((checkpoint.parent / "cell.json").read_text())["status"] == "running"

    assert run_cli(["sweep", str(path), "--out", str(out), "--cpus", "1", "--quiet"], capsys)[0] == 0
    assert "continuing from checkpoint.pt" in (checkpoint.parent / "log.txt").read_text()
    assert run_cli(["run", "--config", str(checkpoint.parent / "config.toml"), "--out", str(tmp_path / "run"),
                    "--quiet"], capsys)[0] == 0
    assert (tmp_path / "run" / "returns.csv").read_bytes() == (checkpoint.parent / "returns.csv").read_bytes()
    assert pd.read_csv(out / "sweep.csv")["status"].tolist() == ["ok"]
