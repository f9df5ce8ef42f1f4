"""The sweep tests' files and helpers: two test modules use them, so that pytest-xdist (--dist loadfile)
runs the two sweeps on local Ray, the slowest tests, on different workers."""
from __future__ import annotations

from nt_backtrader.cli import main


def sweep_file(tmp_path, body: str, name: str = "sweep.toml"):
    path = tmp_path / name
    path.write_text(body)
    return path


# The base of the test sweeps: conftest's TINY nets (the discrete mode) on three years of the S&P 500, two
# one-year test windows.
BASE = """[base]
data = { start = "2009-01-01", end = "2011-12-31" }
walkforward = { train_bars = 252, test_bars = 252 }
timing = { mode = "direction", hidden = 8, heads = 2, window = 16 }
strategy = { allow_short = false }
train = { first_epochs = 3, max_epochs = 1, max_samples = 400 }
sizing = { enabled = true, hidden = 8 }
risk = { hidden = 8 }
tuner = { population = 2 }
meta = { steps = 5 }
"""

SMALL_SWEEP = BASE + """
[grid]
seed = [0, 1]

[sweep]
trials = "trials.csv"

[variants.neural]
[variants.optuna]
"tuner.mode" = "optuna"
[variants.tsmom]
"strategy.name" = "tsmom"
[variants.too_short]
"data.start" = "2011-06-01"
"""


def run_cli(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err
