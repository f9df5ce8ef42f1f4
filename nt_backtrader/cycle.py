"""`train` and `update`: the walk-forward's coordinated cycle run at the last bar, for trading tomorrow.

`train` is the walk-forward's first segment, cut as if its test window began on the bar after
the data's last. `update` is the next segment: the bars since the bundle was made are the test
window it traded, backtested with the account it carried, and their realized PnL goes to the
meta-learner and the tuner first; then the cycle (tuner, candidates, meta-learner, sizer, risk
net) trains on the data up to the new last bar. A bundle carries what its update needs in
`Bundle.cycle`: the config, its segment, the bars it has seen, the coordinator's state (tuner,
meta-learner, warm starts), the feedback pending, and the account. So a chain of updates at
the walk-forward's boundaries makes the walk-forward's bundles and decisions, bit for bit.

The deep-momentum core (timing.mode 'position') runs the same cycle with a PositionTrader: its
PositionBundle's `cycle` holds the trader's state (tuner, meta-learner, warm starts, the sizing and
risk nets' realized windows) and its pending feedback (the tuner's chosen candidate's nets among it).
"""
from __future__ import annotations

import dataclasses
import tomllib

import pandas as pd

from .bundle import Bundle
from .config import Config, from_dict, override, to_toml
from .errors import CheckpointError, ConfigError, DataError
from .position_bundle import PositionBundle
from .position_trader import PositionTrader
from .run_state import plain
from .splits import MIN_LAST_WINDOW, segment_at
from .traders import NeuralTrader
from .walkforward import calendar_of, trade_window, train_frames

POOLED = ""  # the coordinator of a pooled NeuralTrader
Trader = NeuralTrader | PositionTrader
AnyBundle = Bundle | PositionBundle


def first_bundle(universe: dict, config: Config, source: str = "") -> tuple[AnyBundle, dict]:
    """Segment 0 of the walk-forward, its test window starting after the last bar."""
    calendar = calendar_of(universe)
    wf = config.walkforward
    if len(calendar) < wf.train_bars + wf.purge_bars:
        raise DataError(f"training needs {wf.train_bars + wf.purge_bars} bars (walkforward.train_bars "
                        f"{wf.train_bars} + purge_bars {wf.purge_bars}), the data has {len(calendar)} from "
                        f"{calendar[0].date()}: give more history or lower walkforward.train_bars")
    trader = cycle_trader(config, source)
    return fit_at_end(trader, universe, calendar, 0, carry=None), trader.last_fit


def next_bundle(bundle: AnyBundle, universe: dict, changes: dict | None = None, source: str = "") \
        -> tuple[AnyBundle, dict]:
    """The bundle's next segment on `universe` (its history plus new bars): feedback, then a new fit.

    `changes`: config keys to replace in the bundle's config (the data source, threads, device)."""
    cycle = bundle.cycle
    config = bundle_config(bundle, changes)
    calendar = calendar_of(universe)
    seen = check_history(universe, calendar, cycle)
    trader = cycle_trader(config, source)
    learning = learner(trader)
    learning.load_state_dict(cycle["trader"])
    learning.load_pending(cycle["pending"], bundle)
    # the window the bundle traded: from the bar after its last one to the new last bar
    traded_window = segment_at(cycle["segment"], seen, len(calendar), config.walkforward)
    params = {"bundle": bundle, "cash_buffer": config.backtest.cash_buffer}
    result, windows = trade_window(trader, universe, config, traded_window, calendar, params, cycle["carry"])
    learned = trader.feedback(traded_window, result, windows)
    new = fit_at_end(trader, universe, calendar, cycle["segment"] + 1, carry=result.carry)
    realized = {"window_start": str(calendar[seen].date()), "window_end": str(calendar[-1].date()),
                "window_return": float((1 + result.returns).prod() - 1), "n_fills": int(len(result.fills)),
                "orders": result.orders, "fills": result.fills}
    return new, {**trader.last_fit, **realized, "feedback": learned}


def bundle_config(bundle: AnyBundle, changes: dict | None = None) -> Config:
    """The config the bundle was trained with, with `changes` (dotted keys)."""
    if not bundle.cycle:
        raise CheckpointError("this bundle carries no training state (it was not written by `train` or `update`): "
                              "train a new one with `nt-backtrader train`")
    return override(from_dict(Config, tomllib.loads(bundle.cycle["config"])), **(changes or {}))


def cycle_trader(config: Config, source: str) -> Trader:
    """The config's neural trader: a PositionTrader for the core, a pooled NeuralTrader otherwise."""
    if config.strategy.name != "neural":
        config = override(config, **{"strategy.name": "neural"})
    if config.timing.mode == "position":
        return PositionTrader(config, source)
    if not config.train.pooled:
        raise ConfigError("train.pooled = false trains a bundle per asset, for walk-forward runs; `train` and "
                          "`update` make one pooled bundle: leave train.pooled = true")
    return NeuralTrader(config, source)


def learner(trader: Trader):
    """What learns across segments, with its state and pending feedback: a NeuralTrader's pooled
    coordinator, or the PositionTrader itself."""
    return trader if isinstance(trader, PositionTrader) else trader.coordinator(POOLED)


def fit_at_end(trader: Trader, universe: dict, calendar: pd.DatetimeIndex, index: int,
               carry: dict | None) -> AnyBundle:
    """Segment `index` fitted with its test window starting on the bar after the last; the bundle
    records what the next update continues from."""
    config = trader.config
    n = len(calendar)
    segment = segment_at(index, n, n, config.walkforward)
    train = train_frames(universe, calendar[segment.train_end]) if segment.train_end < n else dict(universe)
    bundle = trader.fit(train, segment, calendar)["bundle"]
    learning = learner(trader)
    # the fitted bundle with what the next update continues from: known only once the fit is done
    return dataclasses.replace(bundle, cycle=plain({
        "config": to_toml(config), "segment": index, "bars": n, "assets": sorted(universe),
        "first_date": str(calendar[0].date()), "last_date": str(calendar[-1].date()),
        "trader": learning.state_dict(), "pending": learning.pending_state(), "carry": carry}))


def fit_summary(bundle: AnyBundle, info: dict) -> str:
    """The fit in words for the console: the discrete timing's validation accuracy, or the core's
    validation net Sharpe (the tuner's chosen candidate, its seeds' mean, net of costs) and member weights;
    with the epochs that candidate trained."""
    if not isinstance(bundle, PositionBundle):
        return f"timing validation accuracy {info['timing_val_accuracy']:.3f} after {info['timing_epochs']} epochs"
    chosen = min(info["candidates"], key=lambda candidate: candidate["val_loss"])  # the first best, as fit's
    weights = ", ".join(f"{name} {weight:.2f}" for name, weight in info["weights"].items())
    return (f"validation net Sharpe {-chosen['val_loss']:.2f} after {chosen['epochs']} epochs; "
            f"member weights {weights}")


def check_history(universe: dict, calendar: pd.DatetimeIndex, cycle: dict) -> int:
    """The bars the bundle has seen, after checking that the data repeats them and adds enough."""
    seen, first, last = cycle["bars"], pd.Timestamp(cycle["first_date"]), pd.Timestamp(cycle["last_date"])
    if sorted(universe) != cycle["assets"]:
        raise DataError(f"the data holds {', '.join(sorted(universe))}, the bundle was trained on "
                        f"{', '.join(cycle['assets'])}: update it on the same assets")
    if calendar[-1] < last:
        raise DataError(f"the data ends on {calendar[-1].date()}, before the bundle's last bar ({last.date()}): "
                        "an update needs the bundle's history and new bars after it; give data that runs past "
                        f"{last.date()} (the latest file, --refresh for tickers, no earlier --end)")
    if calendar[0] != first or len(calendar) < seen or calendar[seen - 1] != last:
        raise DataError(f"the data ({calendar[0].date()} .. {calendar[-1].date()}, {len(calendar)} bars) does not "
                        f"repeat the history the bundle was trained on ({first.date()} .. {last.date()}, {seen} "
                        "bars): give the same source and start date, with the new bars appended")
    if len(calendar) == seen:
        raise DataError(f"no new bars since the bundle's last one ({last.date()}): nothing to update; fetch the "
                        "latest data first (--refresh for tickers)")
    if len(calendar) - seen < MIN_LAST_WINDOW:
        raise DataError(f"{len(calendar) - seen} new bars since the bundle's last one ({last.date()}): an update "
                        f"learns from the window it traded and needs at least {MIN_LAST_WINDOW} bars, the "
                        "walk-forward's shortest test window; update monthly or less often")
    return seen
