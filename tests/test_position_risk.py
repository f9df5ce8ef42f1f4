"""The core's risk net with numbers: the entries it learns from and their exact bracket outcomes, its
keep-or-twin gate, the bundle's brackets from it, the legs PositionStrategy places with them, and the
trader's record of entries."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from test_position_sizer import walk
from test_position_strategy import recorded
from test_position_trader import fitted, targets

from nt_backtrader.config import override
from nt_backtrader.data import load_ohlcv
from nt_backtrader.features import average_true_range
from nt_backtrader.networks.risk import RiskNet
from nt_backtrader.plugin import PositionStrategy, run_backtest
from nt_backtrader.position_bundle import PositionBundle
from nt_backtrader.position_trader import PositionTrader, realized
from nt_backtrader.training.position_risk import (
    NO_LEGS,
    NONE,
    STOP_GRID,
    TAKE_GRID,
    Entries,
    chosen_returns,
    entries_sharpe,
    entry_rows,
    fit_risk,
    grid,
)
from nt_backtrader.training.position_sizer import STATE_COLUMNS

from conftest import assert_records_equal, with_noise_after

VOL_RATIO = STATE_COLUMNS.index("vol_ratio")
STOPS, TAKES = grid()
TIGHT = int(np.flatnonzero((STOPS == 1.0) & (TAKES == NONE))[0])   # a stop 1 ATR away, no take-profit
OHLC = ("open", "high", "low", "close")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


# --- the entries ----------------------------------------------------------------------------------

def test_an_entry_is_a_row_where_the_side_becomes_long_or_short_within_start_and_end():
    #                  0       1    2    3    4     5    6     7     8    9    10      11    12
    weight = np.array([np.nan, 0.0, 0.3, 0.5, -0.2, 0.0, -0.1, -0.4, 0.2, 0.2, np.nan, -0.3, 0.0])
    # flat, long (2), longer, short (4), flat, short (6), shorter, long (8), long, no weight (flat), short (11), flat
    np.testing.assert_array_equal(entry_rows(weight, 0, 13), [2, 4, 6, 8, 11])
    np.testing.assert_array_equal(entry_rows(weight, 3, 11), [4, 6, 8])        # [start, end)
    np.testing.assert_array_equal(entry_rows(weight, 4, 8), [4, 6])
    np.testing.assert_array_equal(entry_rows(weight, 9, 11), [])
    np.testing.assert_array_equal(entry_rows(np.array([0.5, 0.5, -0.5]), 0, 3), [2])   # row 0 has no bar before


def bracket_by_hand(o, h, low, c, atr, row: int, side: int, stop_atr: float, take_atr: float, horizon: int) -> float:
    """One bracket, bar by bar: in at the next open, levels from the entry bar's close and ATR, the legs
    checked from the bar after the fill (the stop first), a gap through a level filled at the open, out at
    the close `horizon` bars after the fill."""
    entry = o[row + 1]
    stop, take = c[row] - side * stop_atr * atr[row], c[row] + side * take_atr * atr[row]
    for j in range(row + 2, row + 2 + horizon):
        if (low[j] <= stop) if side > 0 else (h[j] >= stop):
            return side * ((min if side > 0 else max)(o[j], stop) / entry - 1)
        if (h[j] >= take) if side > 0 else (low[j] <= take):
            return side * ((max if side > 0 else min)(o[j], take) / entry - 1)
    return side * (c[row + 1 + horizon] / entry - 1)


@pytest.fixture(scope="module")
def bundle(universe, config) -> PositionBundle:
    bundle = fitted(universe, config)[1]
    assert bundle.risk_net is None and bundle.spec.risk == "none"
    return bundle


def test_realized_entries_hold_each_cells_exact_outcome_less_a_round_trip(universe, bundle):
    horizon, start, costs = 10, 800, {"sp500": 0.001, "nasdaq": 0.002}
    windows = {name: frame.iloc[start - bundle.warmup_bars:] for name, frame in universe.items()}
    first_test = universe["sp500"].index[start]
    _, entries = realized(bundle, windows, first_test, costs, horizon)
    assert entries.outcomes.shape == (len(entries.day), len(STOPS)) == (len(entries.state), 16)
    offset = 0
    for name, frame in windows.items():
        o, h, low, c = (frame[k].to_numpy(dtype=float) for k in OHLC)
        unsized, state = bundle.unsized_weights(c, name)
        atr = average_true_range(h, low, c)
        side = np.sign(unsized)
        at = bundle.warmup_bars                               # the first test bar of this window
        last = len(frame) - 1
        # every change of side to long or short on a test bar whose path (row + horizon + 1) ends in the window
        rows = [r for r in range(at, last - horizon) if side[r] != 0 and side[r] != side[r - 1]]
        assert len(rows) >= 3 and max(rows) + horizon + 1 <= last
        mine = slice(offset, offset + len(rows))
        offset += len(rows)
        np.testing.assert_array_equal(entries.day[mine], frame.index[rows].to_numpy().astype("datetime64[D]")
                                      .astype(np.int64))
        np.testing.assert_array_equal(entries.state[mine], state[rows])
        by_hand = np.array([[bracket_by_hand(o, h, low, c, atr, r, int(side[r]), s, t, horizon)
                             for s, t in zip(STOPS, TAKES)] for r in rows])
        np.testing.assert_allclose(entries.outcomes[mine], by_hand - 2 * costs[name], rtol=1e-12, atol=1e-15)
        # without legs: held to the horizon's close
        hold = np.array([side[r] * (c[r + 1 + horizon] / o[r + 1] - 1) for r in rows]) - 2 * costs[name]
        np.testing.assert_allclose(entries.outcomes[mine, NO_LEGS], hold, rtol=0, atol=1e-15)
    assert offset == len(entries.day)
    assert (entries.day >= first_test.to_datetime64().astype("datetime64[D]").astype(np.int64)).all()
    # legs did fill on these paths: some cells' outcomes are not the hold's
    assert (entries.outcomes != entries.outcomes[:, [NO_LEGS]]).mean() > 0.2


def test_an_entries_state_round_trips_as_plain_tensors():
    entries = synthetic(3, True)
    back = Entries.from_state(entries.to_state())
    for key, value in vars(entries).items():
        assert getattr(back, key).dtype == value.dtype
        np.testing.assert_array_equal(getattr(back, key), value)


# --- fit_risk -------------------------------------------------------------------------------------

def synthetic(seed: int, signal: bool, days: int = 100, per_day: int = 2) -> Entries:
    """`days` x `per_day` entries. With `signal`: the tight stop (TIGHT) earns +1% when the state's
    vol_ratio is above 0 and -1% otherwise, no legs the other way round, every other cell -2% (plus
    noise); without it every cell is noise."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    state = rng.normal(size=(n, len(STATE_COLUMNS)))
    high = state[:, VOL_RATIO] > 0
    if signal:
        outcomes = np.full((n, len(STOPS)), -0.02) + rng.normal(0, 0.005, (n, len(STOPS)))
        outcomes[:, TIGHT] = np.where(high, 0.01, -0.01) + rng.normal(0, 0.005, n)
        outcomes[:, NO_LEGS] = np.where(high, -0.01, 0.01) + rng.normal(0, 0.005, n)
    else:
        outcomes = rng.normal(0, 0.02, (n, len(STOPS)))
    return Entries(state, outcomes, np.repeat(np.arange(days), per_day) + 1000 * seed)


def test_fewer_than_two_windows_or_too_few_entries_train_no_risk_net():
    for windows in ([], [synthetic(0, True)]):
        net, info = fit_risk(windows, seed=1, hidden=8)
        assert net is None and info == {"risk_windows": len(windows), "risk_kept": False}
    few = synthetic(1, True, days=7)                                # 14 entries to train on: fewer than 16
    net, info = fit_risk([few, synthetic(2, True)], seed=1, hidden=8)
    assert net is None and info == {"risk_windows": 2, "risk_kept": False}


def test_a_risk_net_learns_the_tight_stop_where_it_pays_and_no_legs_elsewhere_and_is_kept():
    windows = [synthetic(seed, True) for seed in range(4)]
    net, info = fit_risk(windows, seed=1, hidden=8)
    assert net is not None and not net.training and info["risk_kept"] and info["risk_windows"] == 4
    gate = windows[-1].split()[1]                              # the newest window's second half
    assert info["risk_twin_sharpe"] == entries_sharpe(None, gate)
    assert info["risk_check_sharpe"] == entries_sharpe(net, gate)   # the net kept is the one gated
    assert info["risk_check_sharpe"] > info["risk_twin_sharpe"] + 1.0
    np.testing.assert_array_equal(chosen_returns(None, gate), gate.outcomes[:, NO_LEGS])
    unseen = synthetic(9, True)
    with torch.no_grad():
        cells = net(torch.as_tensor(unseen.state, dtype=torch.float32)).argmax(dim=-1).numpy()
    high = unseen.state[:, VOL_RATIO] > 0
    assert (cells[high] == TIGHT).mean() > 0.9 and (cells[~high] == NO_LEGS).mean() > 0.9
    np.testing.assert_array_equal(chosen_returns(net, unseen), unseen.outcomes[np.arange(len(cells)), cells])
    again, info_again = fit_risk(windows, seed=1, hidden=8)
    assert info_again == info
    for (key, value), (key_again, value_again) in zip(net.state_dict().items(), again.state_dict().items()):
        assert key == key_again and torch.equal(value, value_again)
    other, _ = fit_risk(windows, seed=2, hidden=8)
    assert not torch.equal(other.body[0].weight, net.body[0].weight)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_on_noise_a_risk_net_is_kept_only_if_it_beats_no_legs_on_the_newest_windows_second_half(seed):
    windows = [synthetic(10 * seed + k, False) for k in range(3)]
    net, info = fit_risk(windows, seed=seed, hidden=8)
    gate = windows[-1].split()[1]
    assert info["risk_twin_sharpe"] == entries_sharpe(None, gate)
    assert info["risk_kept"] == (net is not None) == (info["risk_check_sharpe"] > info["risk_twin_sharpe"])
    if net is not None:
        assert info["risk_check_sharpe"] == entries_sharpe(net, gate)


def test_entries_split_into_halves_by_date():
    entries = synthetic(4, False, days=9, per_day=3)
    first, second = entries.split()
    assert len(first.day) == 12 and len(second.day) == 15      # days 0-3 and 4-8 (the median day on)
    assert first.day.max() < second.day.min() == 4004
    np.testing.assert_array_equal(np.concatenate([first.outcomes, second.outcomes]), entries.outcomes)


# --- the bundle -----------------------------------------------------------------------------------

def long_frames() -> dict[str, pd.DataFrame]:
    """2004-2012: a warm-up, then six years of sides and their entries."""
    return {name: load_ohlcv(dataset=name).loc["2004":"2012"] for name in ("sp500", "nasdaq")}


@pytest.fixture(scope="module")
def risk_bundle(bundle) -> PositionBundle:
    """The fitted bundle trading brackets from a seeded random risk net whose cell without legs wins on
    about a third of the bars."""
    torch.manual_seed(0)
    net = RiskNet(len(STATE_COLUMNS), 8, stop_grid=STOP_GRID, take_grid=TAKE_GRID)
    states = np.concatenate([bundle.unsized_weights(frame["close"].to_numpy(), name)[1]
                             for name, frame in long_frames().items()])
    states = torch.as_tensor(states[np.isfinite(states).all(axis=1)], dtype=torch.float32)
    with torch.no_grad():
        torch.nn.init.normal_(net.body[-1].weight, std=3.0)
        logits = net(states)
        others = torch.cat([logits[:, :NO_LEGS], logits[:, NO_LEGS + 1:]], dim=1).max(dim=1).values
        net.body[-1].bias[NO_LEGS] += float(torch.quantile(others - logits[:, NO_LEGS], 1 / 3))
    return dataclasses.replace(bundle, spec=dataclasses.replace(bundle.spec, risk="net"), risk_net=net)


def cells_of(bundle: PositionBundle, frame: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(n,) the risk net's cell on each bar, (n,) whether its state is finite."""
    state = bundle.unsized_weights(frame["close"].to_numpy(), name)[1]
    with torch.no_grad():
        cell = bundle.risk_net(torch.as_tensor(np.nan_to_num(state), dtype=torch.float32)).argmax(dim=-1).numpy()
    return cell, np.isfinite(state).all(axis=1)


def test_the_risk_nets_brackets_are_its_cells_distances_and_none_for_the_cell_without_legs(risk_bundle):
    warmup = risk_bundle.warmup_bars
    for name, frame in long_frames().items():
        arrays = [frame[c].to_numpy() for c in OHLC]
        cell, finite = cells_of(risk_bundle, frame, name)
        atr = average_true_range(*arrays[1:])
        legs = finite & np.isfinite(atr) & (np.arange(len(frame)) >= warmup - 1) & (cell != NO_LEGS)
        # a distance of NONE in a cell with the other leg: that leg alone (inf: no level is ever reached)
        stop = np.where(legs, np.where(STOPS[cell] == NONE, np.inf, STOPS[cell]), np.nan)
        take = np.where(legs, np.where(TAKES[cell] == NONE, np.inf, TAKES[cell]), np.nan)
        got = risk_bundle.bracket_atr(*arrays)
        np.testing.assert_array_equal(got[0], stop)
        np.testing.assert_array_equal(got[1], take)
        live = cell[warmup - 1:]
        both = (STOPS[live] < NONE) & (TAKES[live] < NONE)
        assert both.any() and (live == NO_LEGS).any() and (~both & (live != NO_LEGS)).any()   # every kind of cell
        assert np.isnan(got[0][:warmup - 1]).all()
        decided = risk_bundle.decisions(*arrays, asset=name)
        np.testing.assert_array_equal(decided[0], risk_bundle.target_weights(*arrays, asset=name))
        np.testing.assert_array_equal(decided[1], got[0])
        np.testing.assert_array_equal(decided[2], got[1])
        np.testing.assert_array_equal(decided[0], targets(dataclasses.replace(risk_bundle, risk_net=None), frame))
    twin = dataclasses.replace(risk_bundle, risk_net=None)              # 'net' without a net: no legs
    assert all(np.isnan(side).all() for side in twin.bracket_atr(*(long_frames()["sp500"][c].to_numpy()
                                                                  for c in OHLC)))


def test_the_bundle_round_trips_its_risk_net_bit_for_bit_and_none_as_none(risk_bundle, bundle, tmp_path):
    loaded = PositionBundle.load(risk_bundle.save(tmp_path / "risk.pt"))
    assert loaded.spec.risk == "net" and loaded.risk_net is not None and not loaded.risk_net.training
    for (key, value), (key_loaded, value_loaded) in zip(risk_bundle.risk_net.state_dict().items(),
                                                        loaded.risk_net.state_dict().items()):
        assert key == key_loaded and torch.equal(value, value_loaded)
    plain = PositionBundle.load(bundle.save(tmp_path / "plain.pt"))
    assert plain.risk_net is None and torch.load(tmp_path / "plain.pt", weights_only=True)["risk_net"] == {}
    for name, frame in long_frames().items():
        arrays = [frame[c].to_numpy() for c in OHLC]
        for mine, theirs in zip(risk_bundle.decisions(*arrays, asset=name), loaded.decisions(*arrays, asset=name)):
            np.testing.assert_array_equal(theirs, mine)


def test_a_risk_net_bundles_legs_sit_at_the_entry_bars_close_and_its_cells_distances(risk_bundle):
    frame = long_frames()["sp500"]
    result, log = recorded({"sp500": frame}, risk_bundle)
    arrays = [frame[c].to_numpy() for c in OHLC]
    stop_atr, take_atr = risk_bundle.bracket_atr(*arrays, asset="sp500")
    atr = average_true_range(*arrays[1:])
    close = arrays[3]
    orders = result.orders
    after = np.sign(log["held"] + log["order"]).to_numpy()                # the side once the order has filled
    legs_on = lambda day: orders[(orders["date"] == day) & orders["type"].isin(["Stop", "Limit"])]  # noqa: E731
    entries = np.flatnonzero((after != 0) & (after != np.sign(log["held"])))   # a side opened on that bar
    kinds = set()
    for i in entries[:-1]:
        date, direction = log["date"][i], after[i]
        row = frame.index.get_loc(date)
        kept = after[i + 1] == direction          # the side still held on the bar after (its fill bar)
        if np.isnan(stop_atr[row]):                                    # the cell without legs
            assert legs_on(date).empty and (not kept or legs_on(frame.index[row + 1]).empty)
            kinds.add("none")
            continue
        expected = {"Stop": close[row] - direction * stop_atr[row] * atr[row],
                    "Limit": close[row] + direction * take_atr[row] * atr[row]}
        sent = {kind for kind, level in expected.items() if np.isfinite(level)}
        if len(sent) == 2:                 # the entry's bracket: its two legs go out with it
            legs = legs_on(date)
        else:                              # one leg: once the entry has filled, unless that bar leaves the side
            assert legs_on(date).empty
            if not kept:
                continue
            legs = legs_on(frame.index[row + 1])
        assert sorted(legs["type"]) == sorted(sent)
        for kind, price in zip(legs["type"], legs["price"]):
            assert price == pytest.approx(expected[kind], rel=1e-12)
        kinds.add("both" if len(sent) == 2 else "one")
    assert kinds == {"none", "one", "both"} and len(entries) >= 10
    assert {"Stop", "Limit"} <= set(result.fills["type"])


def test_a_risk_net_bundles_segments_with_carried_legs_equal_one_continuous_run(risk_bundle):
    """One leg or two, and the side entered without legs, cross the walk-forward's seams."""
    frames, warmup = long_frames(), risk_bundle.warmup_bars
    index = frames["sp500"].index
    one = run_backtest(frames, PositionStrategy, {"bundle": risk_bundle}, trade_from=index[warmup].date())
    cuts = [warmup, *range(800, len(index), 150), len(index)]
    carry, parts = None, []
    for a, b in zip(cuts, cuts[1:]):
        window = {name: frame.iloc[a - warmup:b] for name, frame in frames.items()}
        part = run_backtest(window, PositionStrategy, {"bundle": risk_bundle}, trade_from=index[a].date(),
                            carry=carry)
        carry, parts = part.carry, parts + [part]
    seams = [asset for part in parts[:-1] for asset in part.carry["assets"].values()]
    assert any(s["legs_ref"] and np.isinf(s["levels"]).any() for s in seams)      # a single leg carried
    pd.testing.assert_series_equal(pd.concat([p.returns for p in parts]), one.returns, check_exact=True)
    pd.testing.assert_frame_equal(pd.concat([p.fills for p in parts], ignore_index=True), one.fills,
                                  check_exact=True)
    assert {"Stop", "Limit"} <= set(one.fills["type"])


# --- the trader -----------------------------------------------------------------------------------

NET = {"timing.risk_mode": "net", "risk.hidden": 8, "risk.horizon": 5, "sizing.enabled": False}


@pytest.fixture(scope="module")
def walked(universe, config):
    return walk(universe, override(config, **NET))


def test_the_trader_records_the_entries_of_each_test_window_it_is_told_about(universe, config, walked):
    trader, bundles, segs, calendar, infos = walked
    assert len(trader.entries) == len(trader.realized) == 3
    assert [info["risk_windows"] for info in infos] == [0, 1, 2]
    assert all(bundle.spec.risk == "net" for bundle in bundles)
    assert bundles[0].risk_net is None and bundles[1].risk_net is None        # fewer than two windows: none
    assert (bundles[2].risk_net is not None) == infos[2]["risk_kept"]
    horizon = override(config, **NET).risk.horizon
    for seg, bundle, entries in zip(segs, bundles, trader.entries):
        test = calendar[seg.test_start:seg.test_end]
        windows = {name: frame.loc[:test[-1]].iloc[-(len(test) + trader.warmup_bars):]
                   for name, frame in universe.items()}
        again = realized(bundle, windows, test[0], trader.costs(list(windows)), horizon)[1]
        for key, value in vars(again).items():
            np.testing.assert_array_equal(getattr(entries, key), value)
        days = entries.day.astype("datetime64[D]")
        assert set(days) <= set(test[:len(test) - horizon - 1].to_numpy().astype("datetime64[D]"))
    assert sum(len(entries.day) for entries in trader.entries) >= 5


def test_the_recorded_entries_survive_a_state_dict_round_trip(config, walked, tmp_path):
    trader = walked[0]
    torch.save(trader.state_dict(), tmp_path / "state.pt")
    resumed = PositionTrader(override(config, **NET))
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert_records_equal(trader.entries, resumed.entries, 3)


def test_noise_after_the_test_window_changes_no_recorded_entry(universe, config, walked):
    trader, _, segs, calendar, _ = walked
    end = calendar[segs[1].test_end - 1]
    noisy = {name: with_noise_after(frame, end) for name, frame in universe.items()}
    other = walk(noisy, override(config, **NET), segments=2)[0]
    for mine, theirs in zip(trader.entries[:2], other.entries):
        for key, value in vars(mine).items():
            np.testing.assert_array_equal(getattr(theirs, key), value)


def test_fit_trains_the_risk_net_on_the_recorded_entries_in_net_mode_only(universe, config):
    net_config = override(config, **NET)
    trader = PositionTrader(net_config)
    trader.entries = [synthetic(seed, True) for seed in range(4)]
    bundle = fitted(universe, net_config, 0, trader)[1]
    expected, info = fit_risk(trader.entries, seed=net_config.seed * 1000 + 0, hidden=8)
    assert bundle.risk_net is not None and info["risk_kept"]
    assert {k: v for k, v in trader.last_fit.items() if k.startswith("risk")} == info
    for (key, value), (key_expected, value_expected) in zip(bundle.risk_net.state_dict().items(),
                                                            expected.state_dict().items()):
        assert key == key_expected and torch.equal(value, value_expected)
    atr = PositionTrader(override(config, **{"timing.risk_mode": "atr"}))
    atr.entries = trader.entries
    assert fitted(universe, atr.config, 0, atr)[1].risk_net is None
    assert not any(key.startswith("risk") for key in atr.last_fit)
