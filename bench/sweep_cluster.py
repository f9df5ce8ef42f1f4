"""A sweep outlives a dead node: a local 2-node Ray cluster on this machine (ray.cluster_utils.Cluster),
one worker node killed while it runs cells. The sweep must complete with every cell present, and
every cell's returns byte-identical to the same sweep run on a plain local Ray without a failure.

The cells are small neural walk-forwards (tiny nets, 2009-2013, half-year test windows, one seed
each), so the whole check takes a few minutes on 2 cores.

    python bench/sweep_cluster.py [--cells 6] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

SWEEP = """[base]
data = {{ start = "2009-01-01", end = "2013-12-31" }}
walkforward = {{ train_bars = 252, test_bars = 126 }}
timing = {{ hidden = 8, heads = 2, window = 16 }}
train = {{ first_epochs = 3, max_epochs = 1, max_samples = 400 }}
sizing = {{ hidden = 8 }}
risk = {{ hidden = 8 }}
tuner = {{ population = 2 }}
meta = {{ steps = 5 }}

[grid]
seed = {seeds}
"""


def running(out: Path) -> list[str]:
    """Cells that have passed a walk-forward segment and are still running."""
    names = []
    for record in (out / "cells").glob("*/cell.json"):
        try:
            status = json.loads(record.read_text())["status"]
        except (json.JSONDecodeError, KeyError):
            continue
        if status == "running" and (record.parent / "checkpoint.pt").is_file():
            names.append(record.parent.name)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=6)
    parser.add_argument("--out", help="folder for both sweeps (default: a temporary one)")
    args = parser.parse_args()

    import ray
    from ray.cluster_utils import Cluster

    from nt_backtrader.sweep import load_sweep, sweep

    root = Path(args.out or tempfile.mkdtemp(prefix="sweep-cluster-"))
    root.mkdir(parents=True, exist_ok=True)
    path = root / "sweep.toml"
    path.write_text(SWEEP.format(seeds=list(range(args.cells))))
    spec = load_sweep(path)

    start = time.perf_counter()
    reference = sweep(spec, root / "local", cpus=2, progress=False)
    print(f"reference on a local Ray (2 CPUs): {len(reference)} cells in {time.perf_counter() - start:.0f} s")

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    killed = {}

    def kill_worker_mid_cell():
        while not killed:
            cells = running(root / "cluster")
            if len(cells) >= 2:  # the head runs one cell at a time: one of these is on the worker node
                time.sleep(1.0)
                cluster.remove_node(worker, allow_graceful=False)
                killed.update(at=time.perf_counter() - start, running=cells)
            time.sleep(0.2)

    start = time.perf_counter()
    killer = threading.Thread(target=kill_worker_mid_cell, daemon=True)
    killer.start()
    table = sweep(spec, root / "cluster", address=cluster.address, progress=False)
    seconds = time.perf_counter() - start
    ray.shutdown()
    cluster.shutdown()

    cells_dir = root / "cluster" / "cells"
    retried = [c.name for c in spec.cells if (cells_dir / c.name / "log.txt").read_text().count("--- cell") > 1]
    same = [(cells_dir / c.name / "returns.csv").read_bytes() == (root / "local" / "cells" / c.name /
                                                                   "returns.csv").read_bytes() for c in spec.cells]
    print(f"2-node cluster (head 1 CPU + worker 2 CPUs): worker node killed at {killed.get('at', float('nan')):.0f} s "
          f"while {killed.get('running')} ran; sweep done in {seconds:.0f} s")
    print(f"cells ok: {int((table['status'] == 'ok').sum())} of {len(spec.cells)}; cells run again by Ray after "
          f"the kill: {retried}; returns byte-identical to the local sweep: {sum(same)} of {len(same)}")
    print(f"folders: {root}")


if __name__ == "__main__":
    main()
