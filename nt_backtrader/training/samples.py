"""Training samples of one segment: per asset its features, its train-window scaler, and which
rows may be used; pooled training concatenates the assets' rows.

A row is a decision bar. Its label reaches `reach` bars ahead; a row is used only if that
reach stays inside the data handed over (which ends at the train window's end), and a fit
row only if it stays before the validation tail: no label ever looks into the purge gap,
the validation tail (for fit rows) or the test window. `labelled_rows` is that rule, for every
label of the package (the core's position nets and the realized brackets fed back included).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..features import Scaler, compute_features
from .brackets import bracket_reach

if TYPE_CHECKING:
    from ..config import Config

OHLCV = ("open", "high", "low", "close", "volume")
MIN_SAMPLES = 50                            # fewest fit rows a network is trained on
MIN_VALIDATION_SAMPLES = MIN_SAMPLES // 2   # fewest validation rows it is early-stopped on


def label_reach(config: Config) -> dict[str, int]:
    """Per network, how many bars after its decision row its label reads: the one measure by which
    its rows are cut (SegmentSamples.rows) and the validation tail is sized (config.validate).

    timing: the close `timing.horizon` bars ahead (direction and meta-labels) and the open-to-open
    return two bars ahead (the Sharpe loss); sizing: a position filled at the next open and held
    `timing.horizon` bars; risk: a bracket entered at the next open and closed at the latest by
    the close `risk.horizon` bars after that, bar r + risk.horizon + 1, plus a bar of margin.
    Every label is cut at the train window's end, the risk net's bracket outcomes included: a row
    is used only if its label ends inside the data handed over, which ends there, so no label
    reads the purge gap or the test window, whatever walkforward.purge_bars is. The rule's choice
    and the learned limits replay the validation tail itself, close to close, the last bar's
    return set to 0 (NeuralTrainer.fit_limits).
    """
    horizon = config.timing.horizon
    return {"timing": max(horizon, open_reach(1)), "sizing": open_reach(horizon),
            "risk": bracket_reach(config.risk.horizon) + 1}


def labelled_rows(start: int, end: int, reach: int) -> np.ndarray:
    """Rows from `start` on whose label, reading `reach` bars ahead, ends before `end`: row + reach < end.
    The one rule by which a label is cut, at the validation tail or at the end of the data."""
    return np.arange(start, max(start, end - reach))


def open_reach(horizon: int) -> int:
    """Bars after its decision row `next_open_return` reads: filled at the next open, held `horizon` bars."""
    return horizon + 1


@dataclass
class SegmentSamples:
    name: str               # the asset
    arrays: dict            # open, high, low, close, volume up to the end of the train window
    features: np.ndarray    # (n, F) raw causal features
    scaled: np.ndarray      # (n, F) scaled with train-window statistics
    scaler: Scaler
    first_row: int          # the first row with a full window of features
    train_start: int
    val_start: int

    @property
    def n(self) -> int:
        return len(self.features)

    def rows(self, reach: int, max_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(fit rows, validation rows) whose labels reach `reach` bars ahead."""
        start = max(self.first_row, self.train_start)
        fit = labelled_rows(start, self.val_start, reach)
        val = labelled_rows(max(start, self.val_start), self.n, reach)
        if max_samples:
            fit = fit[-max_samples:]
        return fit, val


@dataclass(frozen=True)
class AssetWindow:
    """One asset's bars up to the end of a train window, and where its train window and validation tail start."""

    arrays: dict            # open, high, low, close, volume and dates, as numpy arrays
    train_start: int
    val_start: int


def prepare(name: str, arrays: dict, train_start: int, val_start: int, window: int) -> SegmentSamples:
    features = compute_features(*(arrays[k] for k in OHLCV))
    valid = np.isfinite(features).all(axis=1)
    first_valid = int(np.argmax(valid)) if valid.any() else len(features)
    train = features[train_start:]
    scaler = Scaler.fit(train[np.isfinite(train).all(axis=1)])
    return SegmentSamples(name, arrays, features, scaler.transform(features), scaler, first_valid + window - 1,
                          train_start, val_start)


def pooled_scaler(pool: list[SegmentSamples]) -> Scaler:
    """One scaler over every asset's train window: for a feed the bundle has no scaler of its own."""
    if len(pool) == 1:
        return pool[0].scaler
    rows = np.concatenate([s.features[s.train_start:] for s in pool])
    return Scaler.fit(rows[np.isfinite(rows).all(axis=1)])


def forward_return(price: np.ndarray, rows: np.ndarray, horizon: int) -> np.ndarray:
    return price[rows + horizon] / price[rows] - 1.0


def next_open_return(open_: np.ndarray, rows: np.ndarray, horizon: int = 1) -> np.ndarray:
    """What a decision at row r's close earns: filled at the next open, held `horizon` bars (reads
    open_reach(horizon) bars ahead)."""
    return open_[rows + open_reach(horizon)] / open_[rows + 1] - 1.0
