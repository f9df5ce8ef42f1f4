"""The record of every configuration tried on the full data: one CSV row per finished cell.

A sweep file that names `[sweep] trials = "trials.csv"` (relative to the sweep file) adds its
finished cells there, once per config hash, so the file grows with every experiment of the
project; the deflated Sharpe ratio of a sweep counts every row of it (and the sweep's own
cells not yet in it) as a trial, and takes the spread of luck from all of their Sharpe ratios.
"""
from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import atomic_write_text, universe_name
from ..errors import ConfigError
from .grid import Sweep

COLUMNS = ["hash", "recorded", "sweep", "name", "data", "seed", "sharpe", "turnover", "n_trades"]


def read_trials(path: Path | None) -> pd.DataFrame:
    if path is None or not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    try:
        table = pd.read_csv(path, dtype={"hash": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ConfigError(f"trials file {path} is not a CSV ({exc}): restore it from git") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ConfigError(f"trials file {path} has no column '{missing[0]}': restore it from git")
    return table[COLUMNS]


def record_trials(sweep: Sweep, table: pd.DataFrame) -> pd.DataFrame:
    """Add the sweep's finished cells that are not in its trials file yet (atomically); returns the file's rows."""
    trials = read_trials(sweep.trials)
    if sweep.trials is None:
        return trials
    known = set(trials["hash"])
    today = datetime.date.today().isoformat()
    by_name = {cell.name: cell for cell in sweep.cells}
    new = [{"hash": row.hash, "recorded": today, "sweep": sweep.path.name, "name": row.name,
            "data": universe_name(by_name[row.name].config.data), "seed": by_name[row.name].seed,
            "sharpe": row.sharpe, "turnover": row.turnover, "n_trades": row.n_trades}
           for row in table.itertuples() if row.status == "ok" and row.hash not in known]
    if new:
        trials = pd.concat([trials, pd.DataFrame(new, columns=COLUMNS)], ignore_index=True)
        trials = trials.astype({"seed": int, "n_trades": int})  # counts stay whole numbers in the file
        atomic_write_text(sweep.trials, trials.to_csv(index=False))
    return trials


def trial_count(sweep: Sweep, trials: pd.DataFrame) -> int:
    """Trials the deflated Sharpe counts: the file's rows and the sweep's cells (each config once), plus
    the runs looked at before any record was kept."""
    return len(set(trials["hash"]) | {cell.hash for cell in sweep.cells}) + sweep.earlier_trials


def daily_sharpes(trials: pd.DataFrame) -> np.ndarray:
    """The recorded trials' annualised Sharpe ratios as daily ones (the deflated Sharpe's unit)."""
    return trials["sharpe"].to_numpy(dtype=float) / np.sqrt(252.0)
