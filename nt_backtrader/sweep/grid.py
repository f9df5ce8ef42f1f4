"""A sweep file -> its cells: every combination of the grid (and of the named variants), each one
complete run config with a readable name and a hash. Everything is checked before any work starts.

    [base]                          # any run config, as `run --config` takes it
    train = { max_epochs = 6 }
    [grid]                          # dotted config keys -> lists; every combination is a cell
    seed = [0, 1, 2]
    "data.dataset" = ["sp500", "nasdaq"]
    [variants.tuner_fixed]          # optional: named sets of changes, crossed with the grid
    "tuner.mode" = "fixed"
    [sweep]                         # optional
    earlier_trials = 6              # configurations tried on this data before: the deflated Sharpe counts them
    trials = "trials.csv"           # the record of every configuration tried (next to the sweep file): the
                                    # finished cells are added to it and the deflated Sharpe counts every row
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config, from_dict, read_toml, to_toml
from ..errors import ConfigError

TABLES = ("base", "grid", "variants", "sweep")
SWEEP_KEYS = ("earlier_trials", "trials")
# Config sections that fix what a cell is measured on (its data, dates and costs): cells that agree
# on them are compared with each other and with the same baselines. Other grid keys make variants.
SETTINGS = ("data", "walkforward", "backtest")
MAX_NAME = 120  # characters of a cell's folder name; longer names are cut and end with the hash


@dataclass(frozen=True)
class Cell:
    name: str                  # folder name under DIR/cells/, made of the grid values
    values: dict               # grid key -> value, plus "variant" when the file names variants
    config: Config
    hash: str                  # of the complete config: a finished cell with the same hash is not run again

    @property
    def seed(self) -> int:
        return self.config.seed


@dataclass(frozen=True)
class Sweep:
    path: Path
    cells: list[Cell]
    earlier_trials: int = 0
    trials: Path | None = None                         # the trials file, if the sweep keeps one
    variant_keys: list = field(default_factory=list)   # grid keys that make a variant (not seed, not SETTINGS)


def config_hash(config: Config) -> str:
    return hashlib.sha256(to_toml(config).encode()).hexdigest()[:16]


def value_text(value) -> str:
    """A grid value as a name: lists joined by '+', booleans as TOML writes them."""
    if isinstance(value, (list, tuple)):
        return "+".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def cell_name(values: dict, config_hash: str) -> str:
    """'variant=full__seed=0__data.dataset=sp500': readable, one folder per cell, safe on any file system."""
    text = "__".join(f"{key}={value_text(value)}" for key, value in values.items())
    name = re.sub(r"[^A-Za-z0-9._+=-]", "_", text) or "base"
    return name if len(name) <= MAX_NAME else f"{name[:MAX_NAME - 18]}__{config_hash}"


def set_dotted(table: dict, dotted: str, value) -> None:
    """table['a']['b'] = value for 'a.b', making the inner tables as needed."""
    *heads, last = dotted.split(".")
    for head in heads:
        inner = table.setdefault(head, {})
        if not isinstance(inner, dict):
            raise ConfigError(f"config key '{head}' is a value, so '{dotted}' cannot be set")
        table = inner
    table[last] = value


def load_sweep(path: str | Path, threads: int = 1) -> Sweep:
    """Read and check a sweep file. A cell that does not set `train.threads` gets `threads` (the CPUs
    each cell is given), so that its config.toml reruns it exactly with `nt-backtrader run`."""
    path = Path(path)
    raw = read_toml(path, "sweep file")
    for key in raw:
        if key not in TABLES:
            raise ConfigError(f"sweep file {path}: unknown table [{key}]: use {', '.join(f'[{t}]' for t in TABLES)}")
        if not isinstance(raw[key], dict):
            raise ConfigError(f"sweep file {path}: '{key}' must be a table [{key}]")
    for key in raw.get("sweep", {}):
        if key not in SWEEP_KEYS:
            raise ConfigError(f"sweep file {path}: unknown key '{key}' in [sweep]: known {', '.join(SWEEP_KEYS)}")
    earlier = raw.get("sweep", {}).get("earlier_trials", 0)
    if not isinstance(earlier, int) or isinstance(earlier, bool) or earlier < 0:
        raise ConfigError(f"sweep file {path}: [sweep] earlier_trials must be a whole number >= 0")
    trials = raw.get("sweep", {}).get("trials")
    if trials is not None and (not isinstance(trials, str) or not trials.endswith(".csv")):
        raise ConfigError(f"sweep file {path}: [sweep] trials must name a .csv file, e.g. trials = \"trials.csv\"")
    grid = raw.get("grid", {})
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep file {path}: grid key '{key}' must be a non-empty list, e.g. {key} = [0, 1]")
    variants = raw.get("variants", {})
    for name, changes in variants.items():
        if not isinstance(changes, dict):
            raise ConfigError(f"sweep file {path}: variant '{name}' must be a table [variants.{name}]")

    cells = []
    # grid values outermost, variants innermost: a sweep cut short has every variant of its first seeds
    for combo in itertools.product(*grid.values()):
        for variant in (list(variants) or [None]):
            point = dict(zip(grid, combo))
            values = ({"variant": variant} if variant is not None else {}) | point
            table = copy.deepcopy(raw.get("base", {}))
            changes = {**(variants.get(variant, {})), **point}
            try:
                for key, value in changes.items():
                    set_dotted(table, key, value)
                if "threads" not in table.get("train", {}):
                    set_dotted(table, "train.threads", threads)
                config = from_dict(Config, table)
            except ConfigError as exc:
                where = f"variant '{variant}'" if variant is not None else "grid"
                raise ConfigError(f"sweep file {path} ({where}): {exc}") from None
            digest = config_hash(config)
            cells.append(Cell(cell_name(values, digest), values, config, digest))
    seen = set()
    for cell in cells:
        if cell.name in seen:
            raise ConfigError(f"sweep file {path}: two cells would share the folder '{cell.name}': give each grid "
                              "value once, and values that differ in letters, digits or ._+=-")
        seen.add(cell.name)
    variant_keys = [k for k in grid if k != "seed" and k.split(".")[0] not in SETTINGS]
    return Sweep(path, cells, earlier, path.parent / trials if trials else None, variant_keys)
