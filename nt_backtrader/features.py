"""Causal features from OHLCV arrays, and a scaler fitted on the train window only.

Every feature at bar t is a function of bars t-LOOKBACK+1 .. t and nothing else: each
rolling statistic is computed window by window (no running sums), so a value does not
depend on where the array starts. The same code serves training (a DataFrame's columns),
the walk-forward backtest and a drop-in on somebody's backtrader feed (its line arrays).
Pure numpy: no pandas, no backtrader.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

RETURN_HORIZONS = (1, 5, 21, 63, 126)
TREND_PAIRS = ((8, 24), (16, 48), (32, 96))
VOL_LONG, VOL_SHORT, ATR_WINDOW, VOLUME_WINDOW, HIGH_WINDOW = 63, 21, 14, 63, 126
FEATURE_NAMES = (
    [f"ret_{h}d" for h in RETURN_HORIZONS]
    + [f"trend_{fast}_{slow}" for fast, slow in TREND_PAIRS]
    + ["vol_21d", "vol_ratio", "atr_pct", "volume_z", "close_location", "gap", "from_high"]
)
N_FEATURES = len(FEATURE_NAMES)
# The columns read outside the networks, by name: the volatility the sizer's twin and the labels'
# band scale with, and the trend the meta-learner's regime reads.
VOL_21D, RET_63D = FEATURE_NAMES.index("vol_21d"), FEATURE_NAMES.index("ret_63d")
# Bars of history a feature needs at bar t, t included: the longest return plus its volatility.
LOOKBACK = max(RETURN_HORIZONS) + 1
ANNUAL = np.sqrt(252.0)
# What a bundle records of the features it was trained on; a bundle whose record differs is refused.
FEATURE_SPEC = {"names": list(FEATURE_NAMES), "trend_pairs": [list(p) for p in TREND_PAIRS],
                "windows": {"vol_long": VOL_LONG, "vol_short": VOL_SHORT, "atr": ATR_WINDOW,
                            "volume": VOLUME_WINDOW, "high": HIGH_WINDOW}}


def _rolling(x: np.ndarray, window: int, fn) -> np.ndarray:
    """fn over each trailing window (axis=1); NaN where the window is not full."""
    out = np.full(len(x), np.nan)
    if len(x) >= window:
        out[window - 1:] = fn(sliding_window_view(x, window), axis=1)
    return out


def _lag(x: np.ndarray, k: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if k < len(x):
        out[k:] = x[:len(x) - k]
    return out


def daily_vol(close: np.ndarray, window: int) -> np.ndarray:
    """Standard deviation of daily log returns over the trailing window (not annualised)."""
    logret = np.diff(np.log(close), prepend=np.nan)
    return _rolling(logret, window, lambda w, axis: np.std(w, axis=axis, ddof=1))


def average_true_range(high, low, close, window: int = ATR_WINDOW) -> np.ndarray:
    prev = _lag(close, 1)
    true_range = np.nanmax(np.stack([high - low, np.abs(high - prev), np.abs(low - prev)]), axis=0)
    true_range[0] = np.nan  # no previous close: not a full true range
    return _rolling(true_range, window, np.mean)


def compute_features(open_, high, low, close, volume) -> np.ndarray:
    """(n, N_FEATURES) float64; rows before LOOKBACK - 1 hold NaN."""
    open_, high, low, close, volume = (np.asarray(a, dtype=float) for a in (open_, high, low, close, volume))
    logc = np.log(close)
    vol = daily_vol(close, VOL_LONG)
    columns = [(logc - _lag(logc, h)) / (vol * np.sqrt(h)) for h in RETURN_HORIZONS]
    for short, long in TREND_PAIRS:  # MACD-style: fast minus slow average, in units of price volatility
        fast, slow = _rolling(close, short, np.mean), _rolling(close, long, np.mean)
        columns.append((fast - slow) / (close * vol * np.sqrt(long)))
    vol_short = daily_vol(close, VOL_SHORT)
    columns.append(vol_short * ANNUAL)
    columns.append(np.log(vol_short / vol))
    columns.append(average_true_range(high, low, close) / close)
    logv = np.log1p(np.maximum(volume, 0.0))
    mean_v = _rolling(logv, VOLUME_WINDOW, np.mean)
    std_v = _rolling(logv, VOLUME_WINDOW, lambda w, axis: np.std(w, axis=axis, ddof=1))
    columns.append(np.where(std_v > 0, (logv - mean_v) / np.where(std_v > 0, std_v, 1.0), 0.0))  # 0 if no volume
    span = high - low
    columns.append(np.where(span > 0, (close - low) / np.where(span > 0, span, 1.0) - 0.5, 0.0))
    columns.append(np.log(open_ / _lag(close, 1)) / vol)
    columns.append(np.log(close / _rolling(high, HIGH_WINDOW, np.max)) / vol)
    features = np.stack(columns, axis=1)
    features[:LOOKBACK - 1] = np.nan
    return features


@dataclass(frozen=True)
class Scaler:
    """Standardisation with statistics of the train window only; clipped to keep outliers sane."""

    mean: np.ndarray
    std: np.ndarray
    clip: float = 5.0

    @classmethod
    def fit(cls, features: np.ndarray) -> "Scaler":
        rows = features[np.isfinite(features).all(axis=1)]
        std = rows.std(axis=0)
        return cls(rows.mean(axis=0), np.where(std > 1e-12, std, 1.0))

    def transform(self, features: np.ndarray) -> np.ndarray:
        return np.clip((features - self.mean) / self.std, -self.clip, self.clip)


def windows(scaled: np.ndarray, length: int, rows: np.ndarray) -> np.ndarray:
    """(len(rows), length, F) windows ending at each row (inclusive); rows must be >= length - 1."""
    view = sliding_window_view(scaled, length, axis=0)  # (n - length + 1, F, length)
    return np.ascontiguousarray(view[rows - length + 1].transpose(0, 2, 1))
