"""Per-segment diagnostics of the neural strategy, read after its test window is over.

These use the test window's realized prices, which is fine for a report made after the
fact; nothing here feeds back into a decision of that window.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def _tail(line, n: int) -> np.ndarray:
    return np.asarray(line.array[-n:] if n else [], dtype=float)


def direction_accuracy(p_long: np.ndarray, p_short: np.ndarray, close: np.ndarray, horizon: int) -> float:
    """Share of bars whose predicted direction matched the next `horizon` bars' move."""
    score = p_long - p_short if np.any(p_short > 0) else p_long - 0.5
    realized = np.sign(close[horizon:] - close[:-horizon])
    predicted = np.sign(score[:-horizon])
    usable = (predicted != 0) & np.isfinite(score[:-horizon])
    return float((predicted[usable] == realized[usable]).mean()) if usable.any() else float("nan")


def fixed_size_return(fills: pd.DataFrame, start_size: float, close: pd.Series) -> float:
    """The window's return had every position been held at 100% of equity, close to close."""
    sizes = fills.groupby("date")["size"].sum().reindex(close.index, fill_value=0.0).cumsum() + start_size
    held = np.sign(sizes.shift(1).fillna(np.sign(start_size)))
    return float((1.0 + held * close.pct_change().fillna(0.0)).prod() - 1.0)


def neural_segment_metrics(result, windows: dict[str, pd.DataFrame], horizon: int) -> dict:
    """Per segment: timing accuracy and fixed-size return (means over the assets), bracket hit
    rates and what the sizer did (over every entry). `windows` are the assets' backtest frames."""
    strategy = result.strategy
    first_test = result.returns.index[0]
    accuracy, fixed = [], []
    for data in strategy.datas:
        window = windows[data._name]
        close = window["close"].loc[window.index >= first_test]
        bars = len(close)
        if bars <= horizon:
            continue
        signal = strategy.signals[data]
        accuracy.append(direction_accuracy(_tail(signal.p_long, bars), _tail(signal.p_short, bars),
                                           close.to_numpy(), horizon))
        fills = result.fills[result.fills["asset"] == data._name]
        fixed.append(fixed_size_return(fills, strategy.carried(data).get("size", 0.0), close))
    info = strategy.diagnostics()
    exits = info["bracket_exits"]
    closed = exits["stop"] + exits["take"] + info["signal_exits"]
    sizing = np.array([(r.fraction, r.vol) for r in info["sizing"]]) if info["sizing"] else np.zeros((0, 2))
    return {
        "timing_accuracy": float(np.nanmean(accuracy)) if np.isfinite(accuracy).any() else float("nan"),
        "sized_return": float((1.0 + result.returns).prod() - 1.0),
        "fixed_size_return": float(np.mean(fixed)) if fixed else float("nan"),
        "stop_hit_rate": exits["stop"] / closed if closed else float("nan"),
        "take_hit_rate": exits["take"] / closed if closed else float("nan"),
        "n_entries": int(len(sizing)),
        "mean_fraction": float(sizing[:, 0].mean()) if len(sizing) else float("nan"),
        "mean_entry_vol": float(sizing[:, 1].mean()) if len(sizing) else float("nan"),
        "fraction_vol_corr": float(np.corrcoef(sizing.T)[0, 1]) if len(sizing) > 2 and sizing[:, 1].std() > 0
        and sizing[:, 0].std() > 0 else float("nan"),
    }
