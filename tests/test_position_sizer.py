"""The core's sizing net with numbers: the book it is trained on, its multipliers, its gate, the bundle
that trades it and the trader's record of realized test windows it learns from."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from test_position_trader import feedback_of, fitted, targets

from nt_backtrader import momentum
from nt_backtrader.config import override
from nt_backtrader.networks.sizing import PositionSizingNet
from nt_backtrader.position_bundle import PositionBundle
from nt_backtrader.position_trader import PositionTrader
from nt_backtrader.training.position_sizer import (
    STATE_COLUMNS,
    Window,
    book_returns,
    fit_sizer,
    multipliers,
    window_sharpe,
)

from conftest import assert_records_equal, with_noise_after

VOL_RATIO = STATE_COLUMNS.index("vol_ratio")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


# --- the book the net is trained on ----------------------------------------------------------------

def hand_window() -> Window:
    """Two assets, three days each, stacked asset by asset."""
    return Window(state=np.zeros((6, len(STATE_COLUMNS))),
                  weight=np.array([0.5, 0.3, -0.2, 0.1, 0.1, 0.4]),
                  earned=np.array([0.01, -0.02, 0.03, 0.02, 0.01, -0.01]),
                  cost=np.array([0.001, 0.001, 0.001, 0.002, 0.002, 0.002]),
                  day=np.array([100, 101, 102, 100, 101, 102]),
                  first=np.array([True, False, False, True, False, False]))


def test_book_returns_are_the_sized_weights_earnings_less_the_cost_of_their_changes_within_an_asset():
    w = hand_window()
    m = torch.tensor([1.0, 2.0, 0.5, 1.5, 1.0, 0.0])
    # sized weights: A 0.5, 0.6, -0.1; B 0.15, 0.1, 0.0; no cost on an asset's first row (B's first row
    # follows A's last one in the stack: no change of weight there)
    day0 = 0.5 * 0.01 + 0.15 * 0.02
    day1 = (0.6 * -0.02 - 0.001 * 0.1) + (0.1 * 0.01 - 0.002 * 0.05)
    day2 = (-0.1 * 0.03 - 0.001 * 0.7) + (0.0 * -0.01 - 0.002 * 0.1)
    np.testing.assert_allclose(book_returns(m, w).numpy(), [day0, day1, day2], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(book_returns(m, w).numpy(), [0.008, -0.0112, -0.0039], rtol=1e-6, atol=1e-9)
    # the multiplier 1: the weights as recorded
    ones = [0.5 * 0.01 + 0.1 * 0.02, 0.3 * -0.02 - 0.001 * 0.2 + 0.1 * 0.01, -0.2 * 0.03 - 0.001 * 0.5 +
            0.4 * -0.01 - 0.002 * 0.3]
    np.testing.assert_allclose(book_returns(torch.ones(6), w).numpy(), ones, rtol=1e-6, atol=1e-9)


# --- multipliers ----------------------------------------------------------------------------------

def test_multipliers_are_one_without_a_net_on_a_row_without_a_state_and_from_an_untrained_net():
    state = np.random.default_rng(0).normal(size=(7, len(STATE_COLUMNS)))
    assert torch.equal(multipliers(None, state), torch.ones(7))
    torch.manual_seed(3)
    net = PositionSizingNet(len(STATE_COLUMNS), 8)            # its last layer starts at zero: 2 x sigmoid(0)
    assert torch.equal(multipliers(net, state), torch.ones(7))
    with torch.no_grad():
        torch.nn.init.normal_(net.body[-1].weight)
        net.body[-1].bias.fill_(0.5)
    state[2, 3], state[5, 0] = np.nan, np.inf
    m = multipliers(net, state)
    assert m[2] == 1.0 and m[5] == 1.0
    ok = [0, 1, 3, 4, 6]
    assert (m[ok] != 1.0).all() and ((m >= 0) & (m <= 2)).all()
    assert torch.equal(m[ok], multipliers(net, state[ok]))   # a bad row changes no other row's multiplier


# --- fit_sizer ------------------------------------------------------------------------------------

def synthetic(seed: int, signal: bool, days: int = 120, assets: int = 2) -> Window:
    """`assets` assets of `days` days, the same weight 0.5 everywhere; with `signal` the weight earns
    -1% a day when the state's vol_ratio is above 0 and +1% otherwise (plus noise), without it noise only."""
    rng = np.random.default_rng(seed)
    n = days * assets
    state = rng.normal(size=(n, len(STATE_COLUMNS)))
    state[:, 1] = np.abs(state[:, 0])
    noise = rng.normal(0, 0.005, n)
    earned = (np.where(state[:, VOL_RATIO] > 0, -0.01, 0.01) + noise) if signal else rng.normal(0, 0.01, n)
    first = np.zeros(n, dtype=bool)
    first[::days] = True
    return Window(state, np.full(n, 0.5), earned, np.full(n, 5e-4), np.tile(np.arange(days) + 1000 * seed, assets),
                  first)


def test_fewer_than_two_windows_train_no_sizer():
    for windows in ([], [synthetic(0, True)]):
        net, info = fit_sizer(windows, seed=1, hidden=8, max_multiplier=2.0, anchor=5.0)
        assert net is None and info == {"sizer_windows": len(windows), "sizer_kept": False}


def test_a_sizer_learns_to_cut_the_rows_that_lose_and_is_kept():
    windows = [synthetic(seed, True) for seed in range(4)]
    net, info = fit_sizer(windows, seed=1, hidden=8, max_multiplier=2.0, anchor=5.0)
    assert net is not None and not net.training and info["sizer_kept"] and info["sizer_windows"] == 4
    assert info["sizer_check_sharpe"] > info["sizer_twin_sharpe"] + 3.0
    gate = windows[-1].split()[1]                              # the newest window's second half
    assert info["sizer_twin_sharpe"] == window_sharpe(None, gate)
    assert info["sizer_check_sharpe"] == window_sharpe(net, gate)   # the net kept is the one gated
    unseen = synthetic(9, True)
    with torch.no_grad():
        m = multipliers(net, unseen.state).numpy()
    high = unseen.state[:, VOL_RATIO] > 0
    assert m[high].mean() < 0.5 < 1.5 < m[~high].mean()
    assert 0.6 < m.mean() < 1.4                                # the anchor holds the mean near 1
    again, info_again = fit_sizer(windows, seed=1, hidden=8, max_multiplier=2.0, anchor=5.0)
    assert info_again == info
    for (key, value), (key_again, value_again) in zip(net.state_dict().items(), again.state_dict().items()):
        assert key == key_again and torch.equal(value, value_again)
    other, _ = fit_sizer(windows, seed=2, hidden=8, max_multiplier=2.0, anchor=5.0)
    assert not torch.equal(other.body[0].weight, net.body[0].weight)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_on_noise_a_sizer_is_kept_only_if_it_beats_the_multiplier_one_on_the_newest_window(seed):
    windows = [synthetic(10 * seed + k, False) for k in range(3)]
    net, info = fit_sizer(windows, seed=seed, hidden=8, max_multiplier=2.0, anchor=5.0)
    gate = windows[-1].split()[1]          # gated on a half its early stop did not read
    assert info["sizer_twin_sharpe"] == window_sharpe(None, gate)
    assert info["sizer_kept"] == (net is not None) == (info["sizer_check_sharpe"] > info["sizer_twin_sharpe"])
    if net is not None:
        assert info["sizer_check_sharpe"] == window_sharpe(net, gate)


def test_a_window_splits_into_halves_by_date_each_assets_first_row_paying_no_change():
    window = synthetic(3, False)
    first, second = window.split()
    days = np.unique(window.day)
    assert len(first.day) + len(second.day) == len(window.day)
    assert first.day.max() < second.day.min() == days[len(days) // 2]
    for half in (first, second):
        assert half.first.sum() == window.first.sum()                  # one first row per asset in each half
        starts = np.flatnonzero(half.first)
        assert (np.diff(half.day)[np.setdiff1d(np.arange(len(half.day) - 1), starts - 1)] > 0).all()


def test_a_newest_window_that_the_multiplier_one_trades_best_refuses_the_sizer():
    # every row earns the same: the book of the multiplier 1 is flat and any varying multiplier worse
    check = synthetic(5, False)
    check = dataclasses.replace(check, earned=np.full(len(check.earned), 0.01), cost=np.zeros(len(check.cost)))
    net, info = fit_sizer([synthetic(k, True) for k in range(3)] + [check], seed=1, hidden=8, max_multiplier=2.0,
                          anchor=5.0)
    assert net is None and not info["sizer_kept"] and info["sizer_check_sharpe"] <= info["sizer_twin_sharpe"]


# --- the bundle -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundle(universe, config) -> PositionBundle:
    bundle = fitted(universe, config)[1]
    assert bundle.sizer is None                  # the first segment has no realized windows to learn from
    return bundle


def sizer(seed: int = 4) -> PositionSizingNet:
    torch.manual_seed(seed)
    net = PositionSizingNet(len(STATE_COLUMNS), 8)
    with torch.no_grad():
        torch.nn.init.normal_(net.body[-1].weight, std=0.5)
    return net


def test_a_bundle_without_a_sizer_targets_what_it_did_before_it_had_one(universe, bundle):
    for name, frame in universe.items():
        close = frame["close"].to_numpy()
        spec = bundle.spec
        blended = np.asarray(bundle.weights) @ bundle.member_positions(close, name)
        scale = momentum.vol_scale(close, spec.vol_target, spec.vol_span, spec.max_leverage)
        old = np.clip(blended * scale * 1.0 * bundle.book_scale, -spec.max_weight, spec.max_weight)
        old[:spec.warmup_bars - 1] = np.nan
        np.testing.assert_array_equal(targets(bundle, frame), old)


def test_a_bundle_with_a_sizer_targets_the_clipped_product_of_the_unsized_weight_and_the_multiplier(
        universe, bundle):
    sized = dataclasses.replace(bundle, sizer=sizer())
    assert not sized.sizer.training
    for name, frame in universe.items():
        unsized, state = bundle.unsized_weights(frame["close"].to_numpy(), name)
        with torch.no_grad():
            m = multipliers(sized.sizer, state).double().numpy()
        live = np.isfinite(state).all(axis=1)
        assert (m[live] != 1.0).mean() > 0.99 and (m[~live] == 1.0).all()
        by_hand = np.clip(unsized * m, -0.1, 0.1)
        by_hand[:bundle.warmup_bars - 1] = np.nan
        w = targets(sized, frame)
        np.testing.assert_array_equal(w, by_hand)
        assert not np.array_equal(w[654:], targets(bundle, frame)[654:])


def test_the_bundle_round_trips_its_sizer_bit_for_bit_and_none_as_none(universe, bundle, tmp_path):
    sized = dataclasses.replace(bundle, sizer=sizer())
    loaded = PositionBundle.load(sized.save(tmp_path / "sized.pt"))
    assert loaded.sizer is not None and not loaded.sizer.training
    assert float(loaded.sizer.max_multiplier) == 2.0
    for (key, value), (key_loaded, value_loaded) in zip(sized.sizer.state_dict().items(),
                                                        loaded.sizer.state_dict().items()):
        assert key == key_loaded and torch.equal(value, value_loaded)
    plain = PositionBundle.load(bundle.save(tmp_path / "plain.pt"))
    assert plain.sizer is None and torch.load(tmp_path / "plain.pt", weights_only=True)["sizer"] == {}
    for frame in universe.values():
        np.testing.assert_array_equal(targets(loaded, frame), targets(sized, frame))
        np.testing.assert_array_equal(targets(plain, frame), targets(bundle, frame))


# --- the trader's record of realized windows ------------------------------------------------------

def walk(universe, config, segments: int = 3):
    """fit and feedback on the first `segments` segments: (trader, bundles, segments, calendar, infos)."""
    trader, bundles, infos = PositionTrader(config), [], []
    for k in range(segments):
        trader, bundle, segs, calendar = fitted(universe, config, k, trader)
        bundles.append(bundle)
        infos.append(dict(trader.last_fit))
        feedback_of(trader, universe, segs[k], calendar)
    return trader, bundles, segs, calendar, infos


@pytest.fixture(scope="module")
def walked(universe, config):
    return walk(universe, override(config, **{"sizing.enabled": True, "sizing.hidden": 8}))


def test_the_trader_records_one_window_per_feedback_of_test_dates_only(universe, walked):
    trader, bundles, segs, calendar, infos = walked
    assert len(trader.realized) == 3
    assert [info["sizer_windows"] for info in infos] == [0, 1, 2]
    assert bundles[0].sizer is None and bundles[1].sizer is None          # fewer than two windows: none
    assert (bundles[2].sizer is not None) == infos[2]["sizer_kept"]
    for seg, bundle, window in zip(segs, bundles, trader.realized):
        test = calendar[seg.test_start:seg.test_end]
        days = window.day.astype("datetime64[D]")
        assert days.min() == test[0] and days.max() < test[-1]       # the last rows' holds end after the window
        assert set(days) <= set(test.to_numpy().astype("datetime64[D]"))
        assert window.first.sum() == 2 and len(window.day) == 2 * (len(test) - 2)   # two days' holds unrealized
        cut = int(np.flatnonzero(window.first)[1])
        for name, rows in (("sp500", slice(0, cut)), ("nasdaq", slice(cut, None))):
            frame = universe[name].loc[:test[-1]].iloc[-(len(test) + trader.warmup_bars):]
            at = frame.index.get_indexer(pd.DatetimeIndex(days[rows]))
            assert (np.diff(at) == 1).all()
            unsized, state = bundle.unsized_weights(frame["close"].to_numpy(), name)
            np.testing.assert_array_equal(window.weight[rows], unsized[at])
            np.testing.assert_array_equal(window.state[rows], state[at])
            np.testing.assert_array_equal(window.earned[rows], momentum.held_returns(frame["open"].to_numpy())[at])
        assert np.isin(window.cost, list(trader.costs(["sp500", "nasdaq"]).values())).all()


def test_the_realized_windows_survive_a_state_dict_round_trip(config, walked, tmp_path):
    trader = walked[0]
    torch.save(trader.state_dict(), tmp_path / "state.pt")
    resumed = PositionTrader(config)
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert_records_equal(trader.realized, resumed.realized, 3)


def test_no_sizer_is_trained_when_sizing_is_off(universe, config):
    trader, bundles, _, _, infos = walk(universe, override(config, **{"sizing.enabled": False}))
    assert len(trader.realized) == 3
    assert all(bundle.sizer is None for bundle in bundles)
    assert not any(key.startswith("sizer") for info in infos for key in info)


def test_noise_after_the_test_window_changes_nothing_in_its_realized_window(universe, config, walked):
    trader, _, segs, calendar, _ = walked
    end = calendar[segs[1].test_end - 1]
    noisy = {name: with_noise_after(frame, end) for name, frame in universe.items()}
    assert all(not noisy[name].loc[noisy[name].index > end].equals(frame.loc[frame.index > end])
               for name, frame in universe.items())
    other = walk(noisy, override(config, **{"sizing.enabled": True, "sizing.hidden": 8}), segments=2)[0]
    for mine, theirs in zip(trader.realized[:2], other.realized):
        for key, value in vars(mine).items():
            np.testing.assert_array_equal(getattr(theirs, key), value)


@pytest.mark.parametrize("max_multiplier", [1.5, 2.0, 3.0])
def test_an_untrained_sizing_net_starts_at_a_multiplier_of_one_whatever_its_cap(max_multiplier):
    net = PositionSizingNet(len(STATE_COLUMNS), 8, max_multiplier=max_multiplier)
    m = multipliers(net, np.random.default_rng(0).normal(size=(5, len(STATE_COLUMNS)))).detach().numpy()
    np.testing.assert_allclose(m, 1.0, rtol=1e-6)
