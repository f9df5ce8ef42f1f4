"""Every knob of a run, as frozen dataclasses; TOML in and out; unknown keys fail with a hint.

One TOML file is one reproducible experiment: `nt-backtrader run --config exp.toml`.
Each report folder gets the `config.toml` that produced it.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import numbers
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from .errors import ConfigError
from .training.samples import MIN_VALIDATION_SAMPLES, label_reach

TRADING_DAYS = 252
# The names a config may use; the modules that implement them import these lists from here.
DATASETS = ("sp500", "nasdaq", "panel")               # sp500, nasdaq: arch's files; panel: 28 markets shipped
                                                      # in nt_backtrader/datasets/panel (see its NOTICE)
CLASSICAL_STRATEGIES = ("buy_hold", "sma_cross", "tsmom")   # every run is compared with these
# The deep-momentum literature's volatility-scaled baselines (momentum.py): runnable by name, not yet
# in every run's comparison (adding them there would change each run's report)
VOL_SCALED_STRATEGIES = ("long_only", "tsmom_ls", "macd")
STRATEGIES = ("neural",) + CLASSICAL_STRATEGIES + VOL_SCALED_STRATEGIES
CLASSICAL_MEMBERS = ("tsmom", "sma")                  # classical timing signals the ensemble may hold
# String knobs with a fixed set of values.
CHOICES = {"data.dataset": DATASETS, "strategy.name": STRATEGIES, "meta.classical_members": CLASSICAL_MEMBERS,
           "walkforward.window": ("expanding", "rolling"), "timing.loss": ("direction", "sharpe", "both"),
           "train.device": ("auto", "cpu", "cuda"), "tuner.mode": ("network", "fixed", "random", "optuna"),
           "risk.limits": ("learned", "fixed"), "timing.mode": ("direction", "meta_label", "position"),
           "timing.risk_mode": ("none", "atr", "net")}


class Typed:
    """A config dataclass whose fields take their annotated types when it is made, however it is made
    (a TOML file, override(), code): coerce_fields."""

    def __post_init__(self):
        coerce_fields(self)


@dataclass(frozen=True)
class DataConfig(Typed):
    """The universe: every file if any are named, else every ticker, else every embedded dataset."""
    dataset: tuple[str, ...] = ("sp500",)   # embedded data: sp500 | nasdaq | panel (28 assets named by ticker,
                                            # ending at 2018-03-01 unless `end` is given)
    csv: tuple[str, ...] = ()               # CSV files, one asset each, instead of the embedded data
    csv_dir: str | None = None              # every *.csv in this folder too, sorted by name
    tickers: tuple[str, ...] = ()           # yfinance symbols instead (cached under cache_dir)
    trade: tuple[str, ...] = ()             # the assets traded (and compared with the baselines), case
                                            # aside; the others are trained on only. Empty: all are traded
    columns: dict[str, str] = field(default_factory=dict)  # our name -> the CSVs' column name
    start: str | None = None                # first date kept, YYYY-MM-DD
    end: str | None = None                  # last date kept, YYYY-MM-DD
    cache_dir: str = "data_feeds/cache"


@dataclass(frozen=True)
class WalkForwardConfig(Typed):
    train_bars: int = 5 * TRADING_DAYS   # first train window; rolling windows keep this length. 5 years: the
                                         # core's first fit part holds its inputs' 635-bar warm-up and a sequence
    test_bars: int = TRADING_DAYS        # one test window; the last one may be shorter
    val_fraction: float = 0.2            # validation tail of the train window, in (0, 0.5): early stopping,
                                         # the rule's choice; long enough for every network (validate)
    purge_bars: int = 5                  # gap between train and test, >= timing.horizon; labels need no
                                         # gap: each is cut at the train window's end (label_reach)
    window: str = "expanding"            # expanding | rolling
    warmup_bars: int = 0                 # bars fed before a test window, on which nothing trades;
                                         # the strategy's own need is used when that is larger

    def __post_init__(self):
        super().__post_init__()
        check_walkforward(self)

    def validation_bars(self, train_window: int) -> int:
        """The validation tail of a train window of `train_window` bars."""
        return int(round(self.val_fraction * train_window))


def check_walkforward(config: WalkForwardConfig) -> None:
    """The splitter's own values; validate checks them against the networks' labels."""
    if config.train_bars < 20 or config.test_bars < 1:
        raise ConfigError("walkforward.train_bars must be >= 20 and walkforward.test_bars >= 1")
    if config.purge_bars < 0 or config.warmup_bars < 0:
        raise ConfigError("walkforward.purge_bars and walkforward.warmup_bars must be >= 0")
    if not 0.0 < config.val_fraction < 0.5:
        raise ConfigError(f"config key 'walkforward.val_fraction' is {config.val_fraction}: it must be above 0 and "
                          "below 0.5, since every network is early-stopped on the validation tail and the rule "
                          "chosen there; the default is 0.2")


@dataclass(frozen=True)
class BacktestConfig(Typed):
    cash: float = 100_000.0
    commission_bps: float = 1.0          # per side, on traded value
    slippage_bps: float = 1.0            # per side, fills moved against us
    cash_buffer: float = 0.01            # equity kept back so an all-in order survives a gap up
    # Costs of some assets: asset name or asset class -> [commission_bps, slippage_bps], per side, e.g.
    # costs = { currency = [0.5, 0.5], UNG = [2, 5] }. An asset's own entry wins over its class's; assets
    # named by neither pay commission_bps and slippage_bps. Classes: the panel's (datasets/panel/classes.csv).
    costs: dict[str, tuple[float, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class StrategyConfig(Typed):
    name: str = "neural"                 # neural | buy_hold | sma_cross | tsmom | long_only | tsmom_ls | macd
    sma_fast: int = 1                    # 1 = the price itself: the 200-day timing rule
    sma_slow: int = 200
    allow_short: bool = True             # the core and the classical strategies may go short (the literature's
                                         # long/short momentum); false: long or flat
    tsmom_lookback: int = TRADING_DAYS   # 12-month momentum
    vol_target: float = 0.15             # annualised volatility target of tsmom
    vol_window: int = 60                 # bars of the realised-volatility estimate
    max_leverage: float = 1.0            # cap on |exposure| for volatility targeting
    rebalance_band: float = 0.1          # rebalance only when exposure drifts this far from target


@dataclass(frozen=True)
class TimingConfig(Typed):
    mode: str = "position"               # position: the deep-momentum core, a vol-scaled position in [-1, 1]
                                         # every bar; the older discrete modes: direction (the net predicts the
                                         # side) and meta_label (the net decides whether to take tsmom's trade)
                                         # (long-only unless strategy.allow_short; its vol target, span, cap and
                                         # rebalance band are strategy.*'s, as its baselines'; limits sizing.*)
    length: int = 63                     # position mode: bars the position net reads (its sequence length)
    embed: int = 0                       # position mode: size of a learned vector per asset (0: none)
    burn_in: int = 1                     # position mode: leading steps of each training sequence read as
                                         # context only (>= 1: every counted step pays its change of weight)
    cooldown: int = 5                    # position mode: bars after a stop or take-profit fill before that
                                         # side of that feed is held again
    risk_mode: str = "none"              # position mode: none (the literature's: the daily rebalance is the
                                         # exit) | atr (brackets at risk.fixed_stop_atr and fixed_take_atr)
                                         # | net (the risk net's, from realized test windows; risk.hidden,
                                         # risk.horizon)
    window: int = 32                     # bars the timing net reads, ending at the decision bar
    hidden: int = 16                     # the panel's ablation and sweeps ran 16
    heads: int = 4
    layers: int = 1                      # Transformer encoder layers after the LSTM
    dropout: float = 0.1
    seeds: int = 1                       # networks per neural member, from different seeds, averaged
    horizon: int = 5                     # label horizon (bars) of the direction loss
    loss: str = "both"                   # direction | sharpe | both (the Sharpe loss pays the backtest's costs);
                                         # position mode: direction (cross-entropy on the next return's sign,
                                         # the ablation's twin) or, for sharpe and both, the net Sharpe loss
    # The turnover-aware part of the rule: every combination of these is replayed on the validation
    # tail, costs on, and the one with the best Sharpe is traded (one value each: fixed by hand).
    bands: tuple[float, ...] = (0.15, 0.05)  # no-trade band: enter at p >= 0.5 + band, leave below 0.5 - band
    min_holds: tuple[int, ...] = (21, 5)  # bars a position is kept before the timing signal may close it
    cooldowns: tuple[int, ...] = (21, 5)  # bars after a stop or take-profit before re-entering that side
    bracket_widths: tuple[float, ...] = (4.0, 2.0, 1.0)  # the risk net's stop and take distances times this


@dataclass(frozen=True)
class TrainConfig(Typed):
    lr: float = 1e-3
    batch_size: int = 256
    weight_decay: float = 1e-4
    max_epochs: int = 12                 # per segment; warm starts need fewer than the first fit
    first_epochs: int = 30               # the first segment starts from scratch
    patience: int = 3                    # epochs without a better validation loss before stopping
    max_samples: int = 2000              # most recent train samples per asset and segment; with several
                                         # assets, also the rows an epoch visits (a random share of the pool)
    grad_clip: float = 1.0
    device: str = "auto"                 # auto | cpu | cuda
    threads: int = 1                     # torch CPU threads; 0 = one per core. Nets this small gain nothing
                                         # from a second thread, and lose 3-10x when a sweep shares the cores
    pooled: bool = True                  # one set of networks for every asset; false: a set per asset


@dataclass(frozen=True)
class SizingConfig(Typed):
    enabled: bool = False                # the sizing net (position mode: a multiplier learned from realized test
                                         # windows; lost 0.05 Sharpe to its twin on the panel); False: the
                                         # classical twin, a volatility-target fraction (multiplier 1)
    hidden: int = 16
    vol_target: float = 0.15             # annualised; the fraction the multiplier scales
    max_fraction: float = 1.0            # limit: the largest weight of one asset
    max_gross: float = 1.0               # limit: gross exposure of the whole book
    portfolio: bool = True               # scale fractions so the book meets vol_target; false: each asset alone
    max_multiplier: float = 2.0
    anchor: float = 5.0                  # keeps the mean multiplier near 1 (the vol target)


@dataclass(frozen=True)
class RiskConfig(Typed):
    enabled: bool = True                 # False: the classical twin, fixed ATR brackets
    hidden: int = 16
    horizon: int = 21                    # bars a bracket may stay open in its training outcomes
    fixed_stop_atr: float = 2.0
    fixed_take_atr: float = 3.0
    drawdown_brake: float = 0.0          # limit: beyond this drawdown of the book new entries are halved (0: off)
    limits: str = "fixed"                # fixed: sizing.max_fraction, sizing.max_gross, risk.drawdown_brake;
                                         # learned: max weight, gross and brake chosen on the validation tail


@dataclass(frozen=True)
class TunerConfig(Typed):
    mode: str = "network"                # network | fixed (config hyperparameters) | random (search)
                                         # | optuna (TPE, the same bounds and budget)
    population: int = 3                  # timing candidates trained per segment, in every mode
    lr_min: float = 1e-4
    lr_max: float = 1e-2
    batch_min: int = 64
    batch_max: int = 512
    dropout_max: float = 0.4
    weight_decay_min: float = 1e-6
    weight_decay_max: float = 1e-2
    step_lr: float = 0.02                # the tuner network's own learning rate
    exploration: float = 0.5             # initial std of its proposals, in pre-squash units


@dataclass(frozen=True)
class MetaConfig(Typed):
    enabled: bool = True                 # False: equal ensemble weights, trust 0.5 in each twin
    neural_members: int = 2              # best timing candidates (by validation) in the ensemble
    classical_members: tuple[str, ...] = ("tsmom", "sma")
    hidden: int = 16
    steps: int = 30                      # optimiser steps on the replay of realized PnL per segment
    step_lr: float = 0.01
    memory: float = 0.5                  # weight of older segments in a member's realized record
    prior: float = 1.0                   # pull toward equal weights and trust 0.5: a few trades are weak evidence


@dataclass(frozen=True)
class Config(Typed):
    seed: int = 0                        # every random draw (initial weights, dropout, batches, the tuner) follows it
    data: DataConfig = field(default_factory=DataConfig)
    walkforward: WalkForwardConfig = field(default_factory=WalkForwardConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    timing: TimingConfig = field(default_factory=TimingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sizing: SizingConfig = field(default_factory=SizingConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    tuner: TunerConfig = field(default_factory=TunerConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)

    def __post_init__(self):
        super().__post_init__()
        validate(self)


def validate(config: Config) -> None:
    """Values outside a knob's fixed set, and split settings no network can train with, fail here."""
    for key, allowed in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        for item in value if isinstance(value, tuple) else (value,):
            if item not in allowed:
                hint = _did_you_mean(str(item), list(allowed))
                raise ConfigError(f"config key '{key}' is {item!r}: {hint}choose one of {', '.join(allowed)}")
    if config.sizing.max_fraction > config.sizing.max_gross:
        raise ConfigError(f"sizing.max_fraction ({config.sizing.max_fraction}) is above sizing.max_gross "
                          f"({config.sizing.max_gross}): one asset could never reach it; raise sizing.max_gross too")
    for name, pair in config.backtest.costs.items():  # a tuple of floats by now (coerce_fields)
        if len(pair) != 2 or min(pair) < 0:
            shown = "[" + ", ".join(f"{v:g}" for v in pair) + "]"
            raise ConfigError(f"config key 'backtest.costs.{name}' is {shown}: give two costs in basis points "
                              "per side, [commission_bps, slippage_bps], each 0 or more")
    t = config.timing
    for key, values, low, high in (("bands", t.bands, 0.0, 0.5), ("min_holds", t.min_holds, 1, None),
                                   ("cooldowns", t.cooldowns, 0, None), ("bracket_widths", t.bracket_widths, 0.1, None),
                                   ("seeds", (t.seeds,), 1, None), ("length", (t.length,), 2, None),
                                   ("embed", (t.embed,), 0, None), ("cooldown", (t.cooldown,), 0, None),
                                   ("burn_in", (t.burn_in,), 1, t.length)):
        bad = [v for v in values if v < low or (high is not None and v >= high)]
        if bad:
            limit = f"in [{low}, {high})" if high is not None else f">= {low}"
            raise ConfigError(f"config key 'timing.{key}' has {bad[0]!r}: each value must be {limit}")
    if t.mode == "position" and (config.risk.drawdown_brake > 0 or config.risk.limits != "fixed"):
        key = "risk.drawdown_brake" if config.risk.drawdown_brake > 0 else "risk.limits"
        raise ConfigError(f"config key '{key}' is not applied by timing.mode 'position', whose limits are "
                          "sizing.max_fraction and sizing.max_gross: leave it at its default (0, 'fixed')")
    if config.tuner.population > 8 or t.seeds > 8:  # each has 8 seeds of its own per segment (coordinator.SEED_LINES)
        raise ConfigError(f"tuner.population ({config.tuner.population}) and timing.seeds ({t.seeds}) must each be "
                          "at most 8")
    check_splits(config)


def check_splits(config: Config) -> None:
    """Label horizons of a bar or more, a validation tail that holds MIN_VALIDATION_SAMPLES rows of
    every network past its label reach in the smallest train window (train_bars, the first
    segment's and every rolling one's), and a purge gap of at least timing.horizon."""
    wf = config.walkforward
    for key, horizon in (("timing.horizon", config.timing.horizon), ("risk.horizon", config.risk.horizon)):
        if horizon < 1:
            raise ConfigError(f"config key '{key}' is {horizon}: a label horizon is 1 bar or more")
    # a switched-off sizing or risk net trains on nothing: its reach sizes nothing
    off = {"sizing": not config.sizing.enabled, "risk": not config.risk.enabled}
    network, reach = max(((name, bars) for name, bars in label_reach(config).items() if not off.get(name)),
                         key=lambda item: item[1])
    tail, need = wf.validation_bars(wf.train_bars), MIN_VALIDATION_SAMPLES + reach
    if tail < need:
        horizon = "risk.horizon" if network == "risk" else "timing.horizon"
        raise ConfigError(f"walkforward.val_fraction ({wf.val_fraction}) of walkforward.train_bars ({wf.train_bars}) "
                          f"is a validation tail of {tail} bars; it needs {need}: {MIN_VALIDATION_SAMPLES} validation "
                          f"rows of the {network} net plus the {reach} bars its labels reach ahead; raise "
                          f"walkforward.val_fraction or walkforward.train_bars, or lower {horizon}")
    # Every label is cut at the train window's end already (label_reach); the gap is kept as a second
    # guard, so that a label that ever read past that end could still not read the test window.
    if wf.purge_bars < config.timing.horizon:
        raise ConfigError(f"walkforward.purge_bars ({wf.purge_bars}) must be >= timing.horizon "
                          f"({config.timing.horizon}): a test window starts a label horizon or more after its train "
                          "window; raise walkforward.purge_bars or lower timing.horizon")


def _did_you_mean(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    return f"did you mean '{close[0]}'? " if close else ""


def _check_keys(cls, keys) -> None:
    """Keys that are no field of `cls` fail, with the closest field or the list of them."""
    names = [f.name for f in dataclasses.fields(cls)]
    for key in keys:
        if key not in names:
            hint = _did_you_mean(key, names).strip() or f"known keys: {', '.join(sorted(names))}"
            raise ConfigError(f"unknown config key '{_prefix(cls)}{key}': {hint}")


@functools.cache
def _field_types(cls) -> dict:
    """Field name -> its annotation, evaluated (the annotations are strings: `from __future__ import annotations`)."""
    return typing.get_type_hints(cls)


@functools.cache
def _prefix(cls) -> str:
    """'timing.' for TimingConfig: how error messages name its keys; '' at the top level."""
    sections = {typ: name for name, typ in _field_types(Config).items() if dataclasses.is_dataclass(typ)}
    return f"{sections[cls]}." if cls in sections else ""


def coerce_fields(obj) -> None:
    """Every field of the frozen dataclass `obj` as its annotated type (coerce)."""
    prefix = _prefix(type(obj))
    for name, typ in _field_types(type(obj)).items():
        object.__setattr__(obj, name, coerce(getattr(obj, name), typ, prefix + name))


def coerce(value, typ, key: str):
    """`value` as the type `typ`, or a one-line ConfigError naming the config key. Besides exact types:
    an integer where a float is wanted, a path where a string is, one item where a list is
    (`dataset = "nasdaq"`), a list where a tuple is, a table where a config section is."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):  # `str | None`: None, or the other type
        return None if value is None else coerce(value, next(a for a in args if a is not type(None)), key)
    if origin is tuple:  # None: none (`csv=None`), as an empty list
        items = [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]
        kind = {str: "strings", float: "numbers", int: "whole numbers"}[args[0]]
        if not items and args[0] is not str:
            raise ConfigError(f"config key '{key}' must list one or more {kind}")
        try:
            return tuple(coerce(item, args[0], key) for item in items)
        except ConfigError:
            raise ConfigError(f"config key '{key}' must be a list of {kind}, got {items!r}") from None
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a table, e.g. {key.split('.')[-1]} = {{ ... }}")
        return {name: coerce(item, args[1], f"{key}.{name}") for name, item in value.items()}
    if dataclasses.is_dataclass(typ):
        if isinstance(value, dict):
            return from_dict(typ, value)
        if not isinstance(value, typ):
            raise ConfigError(f"config key '{key}' must be a table [{key}]")
        return value
    if typ is str and isinstance(value, os.PathLike):
        return os.fspath(value)
    # bool is an int to Python, but true is no bar count: it passes only where a bool is wanted
    wanted = {int: numbers.Integral, float: numbers.Real}.get(typ, typ)
    if isinstance(value, bool) != (typ is bool) or not isinstance(value, wanted):
        raise ConfigError(f"config key '{key}' must be {typ.__name__}, got {value!r}")
    return typ(value)


def from_dict(cls, values: dict):
    """Dataclass `cls` from nested dicts, e.g. a TOML file's tables; unknown keys raise ConfigError with
    a suggestion, values are coerced to the fields' types (coerce)."""
    _check_keys(cls, values)
    return cls(**values)


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def read_toml(path: str | Path, what: str = "config file") -> dict:
    """A TOML file's tables; a missing, foldered or invalid file is one ConfigError naming it."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} not found: give an existing TOML file") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a folder: give a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML ({exc})") from None


def load_config(path: str | Path) -> Config:
    return from_dict(Config, read_toml(path))


def override(config, **changes):
    """Return `config` with dotted keys replaced, e.g. override(c, **{"backtest.cash": 1e6}); the values
    are coerced as a TOML file's are."""
    nested: dict = {}
    for dotted, value in changes.items():
        head, _, rest = dotted.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            nested[head] = value
    _check_keys(type(config), nested)
    kwargs = {}
    for key, value in nested.items():
        current = getattr(config, key)
        is_section = isinstance(value, dict) and dataclasses.is_dataclass(current)
        kwargs[key] = override(current, **value) if is_section else value
    return dataclasses.replace(config, **kwargs)


def _without_none(table: dict) -> dict:
    return {key: _without_none(value) if isinstance(value, dict) else value
            for key, value in table.items() if value is not None}


def to_toml(config: Config) -> str:
    """TOML text that load_config reads back to an equal Config. TOML has no None: an unset value is left
    out, and reads back as its default, None."""
    return tomli_w.dumps(_without_none(to_dict(config)))
