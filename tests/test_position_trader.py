"""The deep-momentum core's training side: PositionTrader's fit and feedback, and the PositionBundle it writes."""
from __future__ import annotations

import dataclasses
import types

import numpy as np
import pandas as pd
import pytest
import torch

from nt_backtrader import momentum
from nt_backtrader.config import Config, override
from nt_backtrader.errors import CheckpointError, ConfigError
from nt_backtrader.momentum import held_returns
from nt_backtrader.position_bundle import PositionBundle, PositionSpec
from nt_backtrader.position_trader import PositionTrader
from nt_backtrader.traders import NeuralTrader, make_trader
from nt_backtrader.walkforward import calendar_of, segments_for, train_frames

from conftest import with_noise_after

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: the trainers here run one thread


def fitted(universe, config, segment: int = 0, trader: PositionTrader | None = None):
    """(trader, bundle, segments, calendar) after fitting `segment` on its train window."""
    trader = trader or PositionTrader(config)
    calendar, segments = calendar_of(universe), segments_for(universe, config)
    seg = segments[segment]
    bundle = trader.fit(train_frames(universe, calendar[seg.train_end]), seg, calendar)["bundle"]
    return trader, bundle, segments, calendar


@pytest.fixture(scope="module")
def first(universe, config):
    return fitted(universe, config)


def targets(bundle: PositionBundle, frame: pd.DataFrame) -> np.ndarray:
    return bundle.target_weights(*(frame[c].to_numpy() for c in ("open", "high", "low", "close")))


def test_fit_returns_a_bundle_whose_targets_are_the_vol_scaled_blend_within_limits(universe, first):
    trader, bundle, _, _ = first
    assert trader.warmup_bars == bundle.warmup_bars == momentum.INPUT_BARS + 21 - 1 == 655
    assert bundle.book_scale == 0.5                       # two traded assets: the book averages them
    assert bundle.spec.buffer == pytest.approx(0.05)      # strategy.rebalance_band (0.1) of one asset's weight
    assert sum(bundle.weights) == pytest.approx(1.0) and len(bundle.net.nets) == 2  # meta.neural_members
    frame = universe["nasdaq"]
    w = targets(bundle, frame)
    assert np.isnan(w[:654]).all() and np.isfinite(w[654:]).all()
    assert np.nanmax(np.abs(w)) <= 0.1 and (np.abs(w) == 0.1).any() and (w < 0).any()  # sizing.max_fraction clips
    close = frame["close"].to_numpy()
    blend = np.asarray(bundle.weights) @ bundle.member_positions(close, "nasdaq")
    by_hand = np.clip(blend * momentum.vol_scale(close) * 0.5, -0.1, 0.1)
    np.testing.assert_allclose(w[654:], by_hand[654:], rtol=0, atol=1e-15)


def test_targets_do_not_depend_on_where_the_bars_start(universe, first):
    bundle, frame = first[1], universe["sp500"]
    np.testing.assert_array_equal(targets(bundle, frame)[800:], targets(bundle, frame.iloc[100:])[700:])


def test_long_only_targets_never_go_below_zero(universe, config):
    _, bundle, _, _ = fitted(universe, override(config, **{"strategy.allow_short": False}))
    w = targets(bundle, universe["sp500"])
    assert bundle.spec.long_only and np.nanmin(w) >= 0.0 and (w[654:] > 0).any()


def test_the_book_scale_counts_the_traded_assets_only(universe, config):
    _, bundle, _, _ = fitted(universe, override(config, **{"data.trade": ("SP500",)}))
    assert bundle.book_scale == 1.0 and bundle.spec.buffer == pytest.approx(0.1)


def test_the_bundle_round_trips_bit_for_bit(universe, first, tmp_path):
    bundle = first[1]
    loaded = PositionBundle.load(bundle.save(tmp_path / "core.pt"))
    assert (loaded.spec, loaded.weights, loaded.book_scale, loaded.meta) == \
        (bundle.spec, bundle.weights, bundle.book_scale, bundle.meta)
    for frame in universe.values():
        np.testing.assert_array_equal(targets(loaded, frame), targets(bundle, frame))


def test_a_tampered_bundle_is_refused(first, tmp_path):
    path = first[1].save(tmp_path / "core.pt")
    payload = torch.load(path, weights_only=True)
    payload["weights"] = [1.0, 0.0, 0.0]  # an edit that leaves the digest as it was
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match="SHA-256"):
        PositionBundle.load(tmp_path / "edited.pt")
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="damaged"):
        PositionBundle.load(tmp_path / "cut.pt")


def test_noise_after_the_train_window_changes_nothing_up_to_its_end(universe, config, first):
    _, bundle, segments, calendar = first
    end = calendar[segments[0].train_end - 1]
    noisy = {name: with_noise_after(frame, end) for name, frame in universe.items()}
    _, other, _, _ = fitted(noisy, config)
    for name in universe:
        clean, changed = targets(bundle, universe[name]), targets(other, noisy[name])
        upto = universe[name].index <= end
        np.testing.assert_array_equal(changed[upto], clean[upto])
        assert not np.array_equal(changed[~upto], clean[~upto])


def feedback_of(trader: PositionTrader, universe, seg, calendar) -> dict:
    """feedback as the walk-forward gives it, without a backtest: each asset's window is its warm-up
    bars and the test window; the result only tells where the test window starts."""
    test = calendar[seg.test_start:seg.test_end]
    windows = {name: frame.loc[:test[-1]].iloc[-(len(test) + trader.warmup_bars):]
               for name, frame in universe.items()}
    return trader.feedback(seg, types.SimpleNamespace(returns=pd.Series(0.0, index=test)), windows)


def test_feedback_credits_every_member_and_the_tuners_candidate(universe, config):
    trader, _, segments, calendar = fitted(universe, config)
    info = feedback_of(trader, universe, segments[0], calendar)
    assert set(info["member_oos_sharpes"]) == {"neural", "tsmom", "macd"}
    assert all(np.isfinite(v) for v in info["member_oos_sharpes"].values())
    assert np.isfinite(info["candidate_oos_sharpe"]) and np.isfinite(info["meta_loss"])
    assert trader.meta.record["tsmom"][0] == info["member_oos_sharpes"]["tsmom"]
    assert trader.tuner.last["realized_sharpe"] == info["candidate_oos_sharpe"]


def test_a_weight_earns_from_the_next_open_to_the_open_after():
    np.testing.assert_allclose(held_returns(np.array([100.0, 101.0, 102.0, 100.0, 100.0])),
                               [102 / 101 - 1, 100 / 102 - 1, 0.0, np.nan, np.nan])


def test_a_state_dict_round_trip_gives_the_same_next_fit(universe, config, tmp_path):
    trader, _, segments, calendar = fitted(universe, config)
    feedback_of(trader, universe, segments[0], calendar)
    torch.save(trader.state_dict(), tmp_path / "state.pt")
    resumed = PositionTrader(config)
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert sorted(resumed.warm) == [0, 1]  # one seed line per seed of the one candidate
    _, going_on, _, _ = fitted(universe, config, 1, trader)
    _, restarted, _, _ = fitted(universe, config, 1, resumed)
    _, afresh, _, _ = fitted(universe, config, 1)
    assert going_on.weights == restarted.weights != afresh.weights  # the meta-learner learned from segment 0
    for frame in universe.values():
        np.testing.assert_array_equal(targets(restarted, frame), targets(going_on, frame))
        assert not np.array_equal(targets(afresh, frame)[654:], targets(going_on, frame)[654:])  # warm starts


def test_the_vol_scaled_baselines_trade_the_cores_book(universe, config):
    calendar, segments = calendar_of(universe), segments_for(universe, config)
    seg = segments[0]
    train = train_frames(universe, calendar[seg.train_end])
    for name in ("long_only", "tsmom_ls", "macd"):
        trader = make_trader(override(config, **{"strategy.name": name}))
        assert trader.fit(train, seg, calendar)["asset_weight"] == 0.5                 # as the bundle's book_scale
        late = {k: v.iloc[-600:] if k == "nasdaq" else v for k, v in train.items()}   # nasdaq: no 655-bar warm-up
        assert trader.fit(late, seg, calendar)["asset_weight"] == 1.0
    assert "asset_weight" not in make_trader(override(config, **{"strategy.name": "tsmom"})).fit(
        train, seg, calendar)                                                         # the classical three: 1 / feeds


def test_brackets_are_the_fixed_atr_levels_or_none(universe, first):
    bundle, frame = first[1], universe["sp500"]
    assert bundle.spec.risk == "none" and Config().timing.risk_mode == "none"   # the literature's default
    atr = PositionBundle(dataclasses.replace(bundle.spec, risk="atr"), bundle.net)
    stop, take = atr.bracket_atr(*(frame[c].to_numpy() for c in ("open", "high", "low", "close")))
    assert np.isnan(stop[:654]).all() and (stop[654:] == 2.0).all() and (take[654:] == 3.0).all()
    none = PositionBundle(PositionSpec(risk="none"), bundle.net)
    assert np.isnan(none.bracket_atr(*(frame[c].to_numpy() for c in ("open", "high", "low", "close")))[0]).all()
    net = PositionBundle(PositionSpec(risk="net"), bundle.net)      # the risk net's mode before it is kept: no legs
    assert np.isnan(net.bracket_atr(*(frame[c].to_numpy() for c in ("open", "high", "low", "close")))[0]).all()
    with pytest.raises(ConfigError, match="position risk mode 'trail' is unknown"):
        PositionSpec(risk="trail")
    with pytest.raises(ConfigError, match="timing.risk_mode"):
        override(Config(), **{"timing.risk_mode": "trail"})
    for key, value in (("risk.drawdown_brake", 0.2), ("risk.limits", "learned")):   # not silently ignored
        with pytest.raises(ConfigError, match=f"'{key}' is not applied by timing.mode 'position'"):
            override(Config(), **{"timing.mode": "position", key: value})


def test_the_position_mode_is_the_default_and_makes_a_position_trader(config):
    assert Config().timing.mode == "position" and isinstance(make_trader(Config()), PositionTrader)
    assert isinstance(make_trader(override(Config(), **{"timing.mode": "direction"})), NeuralTrader)
    assert isinstance(make_trader(config), PositionTrader)


def test_a_train_window_too_short_for_one_sequence_is_refused_in_one_line(config):
    # 900 bars, a fifth of them the validation tail: 720 before it; 635 of input history + 100 needed
    with pytest.raises(ConfigError, match=r"leaves 720 bars .* needs 735 .* to 920 or more"):
        PositionTrader(override(config, **{"timing.length": 100}))


def test_a_net_with_asset_embeddings_trades_the_assets_it_was_trained_on_only(universe, config):
    _, bundle, _, _ = fitted(universe, override(config, **{"timing.embed": 2}))
    assert bundle.assets == ("sp500", "nasdaq")
    frame = universe["sp500"]
    w = bundle.target_weights(*(frame[c].to_numpy() for c in ("open", "high", "low", "close")), asset="sp500")
    assert np.isfinite(w[654:]).all()
    with pytest.raises(ConfigError, match="feed 'gold' is none of them"):
        bundle.target_weights(*(frame[c].to_numpy() for c in ("open", "high", "low", "close")), asset="gold")


def test_one_walk_forward_runs_the_core_end_to_end(universe, config):
    pytest.importorskip("nt_backtrader.plugin.position")
    from nt_backtrader.walkforward import walk_forward
    result = walk_forward(universe, config, progress=False)
    assert len(result.history) == 3 and result.returns.notna().all() and np.isfinite(result.returns).all()
    assert result.returns.index[0] == calendar_of(universe)[905] and (result.returns != 0).any()
