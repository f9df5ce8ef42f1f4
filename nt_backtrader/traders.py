"""Traders: what the walk-forward asks of a strategy each segment.

`fit(train, segment, calendar)` sees every asset's bars before the end of the train window
only (a name -> DataFrame mapping; the segment's positions in the walk-forward's calendar say
where the train window and its validation tail start) and returns the strategy params for the
test window; `feedback(segment, result, windows)` receives the realized test window of every
asset afterwards; `state_dict()` is what a checkpoint keeps of the trader.
Classical traders learn nothing; they are the baselines run through the same pipeline.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import metrics, momentum, timeframe
from .config import CLASSICAL_STRATEGIES, STRATEGIES, VOL_SCALED_STRATEGIES, Config
from .decisions import warmup_bars
from .diagnostics import neural_segment_metrics
from .errors import ConfigError
from .plugin import BuyHold, NeuralStrategy, SmaCross, Tsmom
from .plugin.classical import VolScaled
from .position_trader import PositionTrader, core_book_scale
from .runtime import configure
from .splits import Segment
from .training.coordinator import AssetFeedback, Coordinator, Feedback
from .training.samples import OHLCV, AssetWindow
from .training.trainer import MIN_SAMPLES, book_scale, decision_spec


@dataclass
class ClassicalTrader:
    name: str
    strategy: type
    params: dict = field(default_factory=dict)
    warmup_bars: int = 1  # bars the indicators need before the first decision (>= 1 to carry state)
    book: Callable[[dict[str, pd.DataFrame]], float] | None = None  # each feed's share of the book, from the
                                                                    # train window (None: 1 / the feeds)

    def fit(self, train: dict[str, pd.DataFrame], segment: Segment, calendar: pd.DatetimeIndex) -> dict:
        return dict(self.params) | ({"asset_weight": self.book(train)} if self.book is not None else {})

    def feedback(self, segment: Segment, result, windows: dict[str, pd.DataFrame]) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def classical_trader(name: str, config: Config) -> ClassicalTrader:
    s, b = config.strategy, config.backtest
    common = {"cash_buffer": b.cash_buffer, "rebalance_band": s.rebalance_band}
    if name == "buy_hold":
        return ClassicalTrader(name, BuyHold, common, 1)
    if name == "sma_cross":
        params = {"fast": s.sma_fast, "slow": s.sma_slow, "allow_short": s.allow_short, "vol_window": s.vol_window}
        return ClassicalTrader(name, SmaCross, common | params, max(s.sma_fast, s.sma_slow) + 1)
    if name == "tsmom":
        params = {"lookback": s.tsmom_lookback, "vol_target": s.vol_target, "vol_window": s.vol_window,
                  "max_leverage": s.max_leverage, "allow_short": s.allow_short}
        return ClassicalTrader(name, Tsmom, common | params, max(s.tsmom_lookback, s.vol_window) + 2)
    if name in VOL_SCALED_STRATEGIES:
        # long_only, tsmom_ls (Moskowitz, Ooi and Pedersen's long/short rule), macd (Baz et al.): positions in
        # [-1, 1] x vol_target / the EWMA ex-ante volatility of span vol_window; long or flat unless allow_short,
        # as the neural side
        kind = {"long_only": "long_only", "tsmom_ls": "tsmom", "macd": "macd"}[name]
        params = {"kind": kind, "lookback": s.tsmom_lookback, "vol_target": s.vol_target, "vol_span": s.vol_window,
                  "max_leverage": s.max_leverage, "allow_short": s.allow_short}
        # the core's book: the same share per asset on the same segment (issue #18's review)
        return ClassicalTrader(name, VolScaled, common | params,
                               momentum.ready_bars(kind, s.tsmom_lookback, s.vol_window) + 1,
                               book=lambda train: core_book_scale(train, config))
    raise unknown_strategy(name)


def unknown_strategy(name: str) -> ConfigError:
    """For a name given in code; a config's strategy.name is checked, with a hint, when the Config is built."""
    return ConfigError(f"unknown strategy '{name}': choose one of {', '.join(STRATEGIES)}")


class NeuralTrader:
    """Trains the networks on each train window (the Coordinator's cycle); trades them in NeuralStrategy.

    Pooled (the default): one cycle on every asset's rows, one bundle for the universe. Per asset
    (`train.pooled = false`, the ablation twin): one coordinator and one bundle per asset, each
    learning from its own asset only; the strategy then gets a bundle per feed.
    """

    name = "neural"
    strategy = NeuralStrategy

    def __init__(self, config: Config, source: str = ""):
        self.config = config
        self.source = source
        self.device = configure(config.train.device, config.train.threads)
        self.coordinators: dict[str, Coordinator] = {}  # "" (pooled) or asset name -> its cycle
        self.spec = decision_spec(config)
        # an asset trades once it has these bars before a test window: the bundle's warm-up, and enough
        # before the train window's end (a purge gap earlier) to be trained on, whatever the members
        self.warmup_bars = max(warmup_bars(self.spec, config.meta.classical_members),
                               self.spec.feature_bars + MIN_SAMPLES + config.walkforward.purge_bars)
        self.last_fit: dict = {}

    def coordinator(self, key: str) -> Coordinator:
        if key not in self.coordinators:
            self.coordinators[key] = Coordinator(self.config, self.device)
        return self.coordinators[key]

    def fit(self, train: dict[str, pd.DataFrame], segment: Segment, calendar: pd.DatetimeIndex) -> dict:
        first, val = calendar[segment.train_start], calendar[segment.val_start]
        windows = {name: AssetWindow(arrays_of(frame), int(frame.index.searchsorted(first)),
                                     int(frame.index.searchsorted(val))) for name, frame in train.items()}
        # an asset without MIN_SAMPLES rows of full features is not trained on yet (nor traded: see warmup_bars)
        assets = {name: w for name, w in windows.items()
                  if len(w.arrays["close"]) >= self.spec.feature_bars + MIN_SAMPLES} or windows
        meta = {"source": self.source, "assets": list(assets), "train_start": str(first.date()),
                "train_end": str(max(frame.index[-1] for frame in train.values()).date()), "segment": segment.index}
        bars = timeframe.of_index(calendar[:segment.train_end])
        if self.config.train.pooled:
            bundle, fit_info = self.coordinator("").fit(assets, segment.index, meta, bars)
            self.last_fit = fit_info | {"trained_on": list(assets)}
            return {"bundle": bundle, "cash_buffer": self.config.backtest.cash_buffer}
        # trained alone, traded together: every asset's bundle at the same book-level target
        scale = book_scale(self.config, [window.arrays for window in assets.values()])
        bundles, fits = {}, {}
        for name, window in assets.items():
            bundles[name], fits[name] = self.coordinator(name).fit({name: window}, segment.index, meta, bars, scale)
        self.last_fit = next(iter(fits.values())) | {"asset_fits": fits}
        return {"bundle": bundles, "cash_buffer": self.config.backtest.cash_buffer}

    def feedback(self, segment: Segment, result, windows: dict[str, pd.DataFrame]) -> dict:
        first_test = result.returns.index[0]
        assets = {name: AssetFeedback(arrays_of(window), int(window.index.searchsorted(first_test)),
                                      entries_of(result, window, name))
                  for name, window in windows.items()}
        diagnostics = neural_segment_metrics(result, windows, self.config.timing.horizon)
        if self.config.train.pooled:
            return self.last_fit | self.coordinator("").feedback(Feedback(assets, metrics.sharpe(result.returns))) \
                | diagnostics
        learned = {}
        for name, coordinator in self.coordinators.items():
            if coordinator.pending is not None and name in assets:  # each learns from its own asset's part
                learned[name] = coordinator.feedback(Feedback({name: assets[name]},
                                                              metrics.sharpe(result.contributions[name])))
        return self.last_fit | {"asset_feedback": learned} | diagnostics

    def state_dict(self) -> dict:
        return {name: coordinator.state_dict() for name, coordinator in self.coordinators.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, values in state.items():
            self.coordinator(name).load_state_dict(values)


def arrays_of(frame: pd.DataFrame) -> dict:
    """The OHLCV columns and the dates of a frame as numpy arrays: what training reads."""
    return {c: frame[c].to_numpy() for c in OHLCV} | {"dates": frame.index.to_numpy()}


def entries_of(result, window: pd.DataFrame, asset: str) -> np.ndarray:
    """(n, 5) per opening order of one asset in the window: decision bar, direction, network fraction,
    twin fraction, and the trade's return per unit invested (to its exit, or marked at the last close).
    All from the run's record: its sizing records, round trips and the position it ended with."""
    trades = result.trades[result.trades["asset"] == asset]
    exits = {row.entry_date: row.exit_price / row.entry_price - 1.0 for row in trades.itertuples()}
    log = list(result.sizing[result.sizing["asset"] == asset].itertuples(index=False))
    rows = []
    for i, record in enumerate(log):
        bar = window.index.get_loc(pd.Timestamp(record.date))
        if bar + 1 >= len(window):
            continue  # decided on the last bar: filled in the next window
        entry_date = window.index[bar + 1]
        if entry_date in exits:
            change = exits[entry_date]
        elif i == len(log) - 1 and result.carry["assets"][asset]["size"]:
            change = window["close"].iloc[-1] / window["open"].iloc[bar + 1] - 1.0
        else:
            change = float("nan")  # not filled (margin) or closed by a later window: no outcome here
        rows.append((bar, record.direction, record.network, record.twin, record.direction * change))
    return np.asarray(rows, dtype=float).reshape(-1, 5)


def make_trader(config: Config, name: str | None = None, source: str = ""):
    name = name or config.strategy.name
    if name in CLASSICAL_STRATEGIES + VOL_SCALED_STRATEGIES:
        return classical_trader(name, config)
    if name == "neural":
        return PositionTrader(config, source) if config.timing.mode == "position" else NeuralTrader(config, source)
    raise unknown_strategy(name)
