"""Traders: what the walk-forward asks of a strategy each segment.

`fit(history, segment)` sees the bars before the end of the train window only (the segment
says where the train window and its validation tail start) and returns the strategy params
for the test window; `feedback(segment, result)` receives the realized test window afterwards.
Classical traders learn nothing; they are the baselines run through the same pipeline.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import pandas as pd

from .config import Config
from .diagnostics import neural_segment_metrics
from .errors import ConfigError
from .plugin import BuyHold, NeuralStrategy, SmaCross, Tsmom
from .runtime import configure
from .splits import Segment
from .training.trainer import NeuralTrainer

CLASSICAL = ("buy_hold", "sma_cross", "tsmom")


@dataclass
class ClassicalTrader:
    name: str
    strategy: type
    params: dict = field(default_factory=dict)
    warmup_bars: int = 1  # bars the indicators need before the first decision (>= 1 to carry state)

    def fit(self, history: pd.DataFrame, segment: Segment) -> dict:
        return dict(self.params)

    def feedback(self, segment: Segment, result) -> dict:
        return {}


def classical_trader(name: str, config: Config) -> ClassicalTrader:
    s, b = config.strategy, config.backtest
    common = {"cash_buffer": b.cash_buffer, "rebalance_band": s.rebalance_band}
    if name == "buy_hold":
        return ClassicalTrader(name, BuyHold, common, 1)
    if name == "sma_cross":
        params = {"fast": s.sma_fast, "slow": s.sma_slow, "allow_short": s.allow_short}
        return ClassicalTrader(name, SmaCross, common | params, max(s.sma_fast, s.sma_slow) + 1)
    if name == "tsmom":
        params = {"lookback": s.tsmom_lookback, "vol_target": s.vol_target, "vol_window": s.vol_window,
                  "max_leverage": s.max_leverage, "allow_short": s.allow_short}
        return ClassicalTrader(name, Tsmom, common | params, max(s.tsmom_lookback, s.vol_window) + 2)
    raise unknown_strategy(name)


def unknown_strategy(name: str) -> ConfigError:
    close = difflib.get_close_matches(name, STRATEGIES, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return ConfigError(f"unknown strategy '{name}': {hint}choose one of {', '.join(STRATEGIES)}")


class NeuralTrader:
    """Trains timing, sizing and risk networks on each train window; trades them in NeuralStrategy."""

    name = "neural"
    strategy = NeuralStrategy

    def __init__(self, config: Config, source: str = ""):
        self.config = config
        self.source = source
        self.trainer = NeuralTrainer(config, configure(config.train.device, config.train.threads))
        self.warmup_bars = self.trainer.spec.warmup_bars
        self.last_fit: dict = {}

    def fit(self, history: pd.DataFrame, segment: Segment) -> dict:
        arrays = {c: history[c].to_numpy() for c in ("open", "high", "low", "close", "volume")}
        meta = {"source": self.source, "train_start": str(history.index[segment.train_start].date()),
                "train_end": str(history.index[-1].date()), "segment": segment.index}
        bundle, self.last_fit = self.trainer.fit(arrays, segment.train_start, segment.val_start,
                                                 seed=self.config.seed * 1000 + segment.index, meta=meta)
        return {"bundle": bundle, "cash_buffer": self.config.backtest.cash_buffer}

    def feedback(self, segment: Segment, result) -> dict:
        return self.last_fit | neural_segment_metrics(result, self.config.timing.horizon)


STRATEGIES = ("neural",) + CLASSICAL


def make_trader(config: Config, name: str | None = None, source: str = ""):
    name = name or config.strategy.name
    if name in CLASSICAL:
        return classical_trader(name, config)
    if name == "neural":
        return NeuralTrader(config, source)
    raise unknown_strategy(name)
