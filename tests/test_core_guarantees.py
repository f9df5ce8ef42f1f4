"""Three guarantees of the deep-momentum core (timing.mode = "position"), each through the real walk-forward:

1. no leak across assets, training included: noise after a date T (in both assets, or in one) changes
   nothing decided up to T: no fitted target weight, order, fill, daily return, weight or history entry;
2. the walk-forward is one continuous run: with the bundle held fixed its seams are invisible against a
   single backtest, and a walk-forward resumed from its checkpoint ends exactly as the straight one;
3. `nt-backtrader run` killed with SIGKILL and resumed writes returns.csv and trades.csv byte for byte
   as the uninterrupted run.
"""
from __future__ import annotations

import filecmp
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from nt_backtrader import run_state
from nt_backtrader.cli import main
from nt_backtrader.config import Config, override, to_toml
from nt_backtrader.costs import asset_costs
from nt_backtrader.plugin import run_backtest
from nt_backtrader.position_trader import PositionTrader
from nt_backtrader.walkforward import calendar_of, segments_for, walk_forward

from conftest import CORE_TINY, assert_same_up_to, kill_after_segments, with_noise_after

# Bar 1000 of the two-asset calendar: inside segment 1's test window [968, 1031) (train 900 + purge 5,
# tests of 63), so segment 0 is decided, traded and learned from, and segment 1's nets are fitted, before T,
# while segment 1 trades on across T and segment 2 is fitted on bars after it.
CUT_BAR = 1000
# conftest's tiny core, rebalancing on a drift of 0.01 (a tenth of sizing.max_fraction, 0.1, times
# the book scale, 0.5) rather than 0.05: some 50 orders in the 195 test bars instead of 15, decisions to compare
CORE = CORE_TINY | {"strategy.rebalance_band": 0.02}

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def config() -> Config:
    return override(Config(), **CORE)


class Recorder(PositionTrader):
    """The real PositionTrader, keeping each segment's bundle and fit record (what was decided at the fit)."""

    def __init__(self, config: Config):
        super().__init__(config)
        self.bundles, self.fits = [], []

    def fit(self, train, segment, calendar):
        params = super().fit(train, segment, calendar)
        self.bundles.append(params["bundle"])
        self.fits.append(json.dumps(self.last_fit, sort_keys=True))
        return params


def recorded(universe, config):
    trader = Recorder(config)
    return walk_forward(universe, config, trader=trader, progress=False), trader


@pytest.fixture(scope="module")
def clean(universe, config):
    return recorded(universe, config)


def targets(bundle, frame: pd.DataFrame) -> np.ndarray:
    return bundle.target_weights(*(frame[c].to_numpy() for c in ("open", "high", "low", "close")), asset=None)


def up_to(frame: pd.DataFrame, cut: pd.Timestamp, column: str = "date") -> pd.DataFrame:
    return frame[frame[column] <= cut].reset_index(drop=True)


def assert_decided_alike_up_to(clean_run, changed_run, universe, changed_universe, cut: pd.Timestamp) -> None:
    """Everything the core decided by the close of `cut` is bit for bit the same in both runs."""
    (clean, clean_trader), (changed, changed_trader) = clean_run, changed_run
    assert_same_up_to(clean, changed, cut)   # daily returns, orders, fills up to T; returns after T differ
    for table in ("equity", "weights", "contributions"):  # positions held (weight = position / equity)
        mine, theirs = getattr(clean, table), getattr(changed, table)
        if isinstance(mine, pd.Series):
            pd.testing.assert_series_equal(mine.loc[:cut], theirs.loc[:cut], check_exact=True)
        else:
            pd.testing.assert_frame_equal(mine.loc[:cut], theirs.loc[:cut], check_exact=True)
    # round trips closed by T (an open one's exit may come after T)
    pd.testing.assert_frame_equal(up_to(clean.trades, cut, "exit_date"), up_to(changed.trades, cut, "exit_date"),
                                  check_exact=True)
    calendar = calendar_of(universe)
    fitted_before = [seg.index for seg in segments_for(universe, clean_trader.config)
                     if calendar[seg.train_end - 1] <= cut]
    assert fitted_before == [0, 1]
    for k in fitted_before:
        # the fit's record (hyperparameters, validation Sharpes, meta weights) and every target weight the
        # fitted bundle gives on each asset's bars up to T
        assert clean_trader.fits[k] == changed_trader.fits[k]
        for name in universe:
            upto = universe[name].index <= cut
            np.testing.assert_array_equal(targets(clean_trader.bundles[k], universe[name])[upto],
                                          targets(changed_trader.bundles[k], changed_universe[name])[upto])
    # segment 0 ended (and was learned from) before T: its whole history row, feedback included
    assert pd.Timestamp(clean.history[0]["test_end"]) <= cut < pd.Timestamp(clean.history[1]["test_end"])
    assert json.dumps(clean.history[0], sort_keys=True) == json.dumps(changed.history[0], sort_keys=True)
    # the fit after T saw the noise: its nets are others (so a leak would have had a way to show)
    assert clean_trader.fits[2] != changed_trader.fits[2]


# --- 1. no leak across assets, training included ---------------------------------------------------------

def test_noise_in_both_assets_after_t_changes_nothing_decided_up_to_t(universe, config, clean):
    cut = calendar_of(universe)[CUT_BAR]
    noisy = {name: with_noise_after(frame, cut, seed=k + 1) for k, (name, frame) in enumerate(universe.items())}
    changed = recorded(noisy, config)
    assert len(clean[0].history) == 3 and (clean[0].orders["date"] <= cut).sum() >= 30  # decisions to compare
    assert_decided_alike_up_to(clean, changed, universe, noisy, cut)
    for name in universe:  # both assets' own trading differs after T
        mine, theirs = (run[0].orders for run in (clean, changed))
        assert not mine[(mine["asset"] == name) & (mine["date"] > cut)].reset_index(drop=True).equals(
            theirs[(theirs["asset"] == name) & (theirs["date"] > cut)].reset_index(drop=True))


def test_noise_in_one_asset_after_t_changes_nothing_of_the_other_up_to_t(universe, config, clean):
    cut = calendar_of(universe)[CUT_BAR]
    noisy = universe | {"sp500": with_noise_after(universe["sp500"], cut)}
    changed = recorded(noisy, config)
    assert_decided_alike_up_to(clean, changed, universe, noisy, cut)
    # nasdaq's own bars are the same throughout, yet its targets from the fit after T differ: the joint
    # training does carry one asset's bars into the other's decisions, only never backwards in time
    nasdaq = universe["nasdaq"]
    after = nasdaq.index > cut
    assert not np.array_equal(targets(clean[1].bundles[2], nasdaq)[after],
                              targets(changed[1].bundles[2], nasdaq)[after])
    mine, theirs = clean[0].orders, changed[0].orders
    nasdaq_before = [up_to(orders[orders["asset"] == "nasdaq"], cut) for orders in (mine, theirs)]
    assert len(nasdaq_before[0]) >= 10
    pd.testing.assert_frame_equal(*nasdaq_before, check_exact=True)


# --- 2. the walk-forward is one continuous run -----------------------------------------------------------

class Frozen(PositionTrader):
    """The real trader's first fit, then that same bundle for every segment: the walk-forward's seams are the
    only difference left from one backtest over all test windows."""

    params = None

    def fit(self, train, segment, calendar):
        self.params = self.params or super().fit(train, segment, calendar)
        return self.params

    def feedback(self, segment, result, windows):
        return {}


def test_with_one_bundle_the_walk_forward_equals_one_continuous_backtest(universe, config):
    # monthly test windows: nine segments, eight seams crossed with positions (and orders) carried
    config = override(config, **{"walkforward.test_bars": 21})
    trader = Frozen(config)
    wf = walk_forward(universe, config, trader=trader, progress=False)
    assert len(wf.history) == 9
    start = wf.returns.index[0]
    frames = {name: frame.iloc[frame.index.searchsorted(start) - trader.warmup_bars:]
              for name, frame in universe.items()}
    costs = config.backtest
    one = run_backtest(frames, trader.strategy, trader.params, cash=costs.cash, commission_bps=costs.commission_bps,
                       slippage_bps=costs.slippage_bps, trade_from=start.date(), costs=asset_costs(config, universe))
    pd.testing.assert_series_equal(wf.returns, one.returns, check_exact=True, check_freq=False)
    pd.testing.assert_frame_equal(wf.orders, one.orders, check_exact=True)
    pd.testing.assert_frame_equal(wf.fills, one.fills, check_exact=True)
    pd.testing.assert_frame_equal(wf.weights, one.weights, check_exact=True, check_freq=False)
    # both assets trade, and in most test windows: the seams were crossed trading
    assert wf.fills.groupby("asset").size().min() >= 5
    windows = pd.DatetimeIndex([h["test_start"] for h in wf.history])
    assert len(set(windows.searchsorted(wf.fills["date"], side="right"))) >= 6
    held = [wf.weights[wf.weights.index < seam].iloc[-1].abs().sum() for seam in windows[1:]]
    assert min(held) > 0  # every seam crossed with a position carried over it


class Killed(Exception):
    """The walk-forward stopped right after writing a checkpoint, as a killed process would."""


@pytest.mark.parametrize("segments", [1, 2])
def test_a_walk_forward_resumed_from_its_checkpoint_ends_as_the_straight_one(universe, config, clean, tmp_path,
                                                                             monkeypatch, segments):
    """run_and_report's (so `nt-backtrader run --resume`'s) path: walk_forward(checkpoint=...) stopped after
    `segments`, then walk_forward(resume=True) with a new trader that has only the checkpoint's state."""
    checkpoint, real_save = tmp_path / "checkpoint.pt", run_state.save

    def save_then_stop(path, config_, done, *rest):
        real_save(path, config_, done, *rest)
        if done == segments:
            raise Killed

    monkeypatch.setattr(run_state, "save", save_then_stop)
    with pytest.raises(Killed):
        walk_forward(universe, config, trader=PositionTrader(config), progress=False, checkpoint=checkpoint)
    monkeypatch.undo()
    assert torch.load(checkpoint, weights_only=True)["segments_done"] == segments
    resumed = walk_forward(universe, config, trader=PositionTrader(config), progress=False, checkpoint=checkpoint,
                           resume=True)
    straight = clean[0]
    pd.testing.assert_series_equal(resumed.returns, straight.returns, check_exact=True)
    pd.testing.assert_series_equal(resumed.equity, straight.equity, check_exact=True)
    for table in ("orders", "fills", "trades", "weights", "contributions"):
        pd.testing.assert_frame_equal(getattr(resumed, table), getattr(straight, table), check_exact=True)
    assert json.dumps(resumed.history, sort_keys=True) == json.dumps(straight.history, sort_keys=True)
    assert len(straight.trades) >= 5 and len(resumed.history) == 3


# --- 3. a run killed with SIGKILL resumes bit for bit ----------------------------------------------------

def core_args(tmp_path, out) -> list[str]:
    """The core on the S&P 500 from 2004 to July 2008: 1,153 bars, four segments (the last of 59 bars)."""
    toml = tmp_path / "core.toml"
    toml.write_text(to_toml(override(Config(), **{k: v for k, v in CORE.items() if k != "sizing.max_fraction"})))
    return ["run", "--dataset", "sp500", "--config", str(toml), "--start", "2004-01-01", "--end", "2008-07-31",
            "--out", str(out), "--quiet"]


def test_a_core_run_killed_after_two_segments_resumes_to_the_same_bytes(sp500, tmp_path, capsys):
    killed = tmp_path / "killed"
    args = core_args(tmp_path, killed)
    proc = subprocess.Popen([sys.executable, "-m", "nt_backtrader.cli", *args], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = killed / "checkpoint.pt"
    kill_after_segments(proc, checkpoint, 2)
    state = torch.load(checkpoint, weights_only=True)
    assert state["n_segments"] == 4 and 2 <= state["segments_done"] < 4 and not (killed / "returns.csv").exists()

    assert main([*args, "--resume"]) == 0
    straight = tmp_path / "straight"
    assert main(core_args(tmp_path, straight)) == 0
    capsys.readouterr()
    for name in ("returns.csv", "trades.csv"):
        assert filecmp.cmp(killed / name, straight / name, shallow=False), name
    assert (killed / "history.json").read_text() == (straight / "history.json").read_text()
    trades = pd.read_csv(straight / "trades.csv")
    assert len(trades) >= 3  # the core traded: the bytes compared hold decisions, not an empty table
    returns = pd.read_csv(straight / "returns.csv", index_col="date")
    bars = len(sp500.loc["2004-01-01":"2008-07-31"])
    assert len(returns) == bars - 905 == 248 and (returns["strategy"] != 0).sum() > 100
