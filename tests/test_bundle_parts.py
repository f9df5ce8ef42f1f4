"""The bundle from finished parts (#19.3): one rule for how far a label reaches, one warm-up for a config
and its bundle, and a bundle made once from what the cycle decided."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nt_backtrader.config import Config, override
from nt_backtrader.decisions import warmup_bars
from nt_backtrader.features import LOOKBACK
from nt_backtrader.signals import CLASSICAL_LOOKBACK
from nt_backtrader.traders import arrays_of
from nt_backtrader.training.brackets import bracket_reach, bracket_returns
from nt_backtrader.training.coordinator import Coordinator
from nt_backtrader.training.samples import AssetWindow, label_reach, labelled_rows

from conftest import TINY


def test_a_label_is_cut_where_its_reach_leaves_the_data():
    assert labelled_rows(3, 10, 2).tolist() == [3, 4, 5, 6, 7]  # 7 + 2 < 10; 8 + 2 is not
    assert labelled_rows(8, 10, 2).tolist() == []
    config = override(Config(), **{"timing.horizon": 5, "risk.horizon": 10})
    # timing: the close 5 bars on; sizing: filled at the next open, held 5 bars; risk: a bracket's path to
    # bar 1 + 10, and a bar of margin
    assert label_reach(config) == {"timing": 5, "sizing": 6, "risk": 12}
    # a bracket of row r reads bar r + bracket_reach(horizon) and no further: on 6 bars, row 1 with a
    # horizon of 3 reads bar 5, the last one (a bar past it would fail to index)
    price = np.linspace(100.0, 105.0, 6)
    assert bracket_reach(3) == 4 and labelled_rows(1, 6, bracket_reach(3)).tolist() == [1]
    out = bracket_returns(price, price + 1, price - 1, price, np.full(6, 10.0), np.array([1]), np.array([2.0]),
                          np.array([3.0]), 3)
    assert out[0, 0] == price[5] / price[2] - 1.0  # no level touched: out at bar 5's close


def test_a_config_and_its_bundle_need_the_same_warm_up(tiny_bundle, tiny_config):
    spec, members = tiny_bundle.spec, tiny_config.meta.classical_members
    assert spec.feature_bars == LOOKBACK + 16 - 1 == 142                   # the features and a 16-bar window
    assert warmup_bars(spec, ()) == 142                                    # neural members only
    assert tiny_bundle.warmup_bars == warmup_bars(spec, members) == CLASSICAL_LOOKBACK == 253  # and tsmom's


def test_the_bundle_is_made_once_from_what_the_cycle_decided(sp500):
    history = sp500.loc["2004":"2006"]
    coordinator = Coordinator(override(Config(), **TINY))
    bundle, info = coordinator.fit({"sp500": AssetWindow(arrays_of(history), 0, int(len(history) * 0.8))}, 0,
                                   timeframe=("Weeks", 1), portfolio_scale=0.5)
    assert bundle.timeframe == ("Weeks", 1) and bundle.entry_sizer.portfolio_scale == 0.5
    assert dict(zip(bundle.ensemble.members.names, bundle.ensemble.weights)) == info["weights"]
    assert abs(sum(bundle.ensemble.weights) - 1.0) < 1e-6
    assert (bundle.entry_sizer.trust, bundle.bracket_levels.trust) == (info["sizing_trust"], info["risk_trust"])
    assert bundle.spec.min_hold == info["rule_min_hold"] and bundle.spec.bracket_width == info["rule_bracket_width"]
    assert coordinator.pending.bundle is bundle and coordinator.pending.members == list(bundle.ensemble.members.names)


def test_the_parts_blend_their_net_with_its_twin_by_trust(tiny_bundle, sp500):
    spec = dataclasses.replace(tiny_bundle.spec, use_risk=True, use_sizing=True, bracket_width=2.0,
                               fixed_stop_atr=2.0, fixed_take_atr=3.0, max_fraction=1.0)
    frame = sp500.loc["2010"]
    scaled = tiny_bundle.predict(*(frame[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))).scaled
    rows = scaled[-3:]
    assert np.isfinite(rows).all()                                          # a year: past the features' lookback
    brackets = dataclasses.replace(tiny_bundle.bracket_levels, trust=0.25)
    net_stop, net_take = (t.numpy() for t in brackets.net_levels(rows, -1.0))
    stop, take = brackets.distances(rows, -1.0, spec)
    np.testing.assert_allclose(stop, 2.0 * (0.25 * net_stop + 0.75 * 2.0), rtol=1e-12)
    np.testing.assert_allclose(take, 2.0 * (0.25 * net_take + 0.75 * 3.0), rtol=1e-12)
    sizer = dataclasses.replace(tiny_bundle.entry_sizer, trust=0.25, portfolio_scale=0.5, limits=())
    sizing = sizer.size(rows[-1], np.zeros(4), 0.2, spec)
    assert sizing.twin == 0.5 * spec.twin_fraction(0.2)
    assert sizing.fraction == pytest.approx(0.25 * sizing.network + 0.75 * sizing.twin, rel=1e-12)
    assert sizing.network != sizing.twin                                  # the blend is seen, not a tie
    spec = dataclasses.replace(spec, max_fraction=0.3, max_gross=1.0, drawdown_brake=0.1)
    # capped at the weight 0.3, then at the gross left (1.0 - 0.8), then halved beyond a 10 % drawdown
    assert [sizer.limit(0.5, 0.0, 0.0, spec), sizer.limit(0.5, 0.8, 0.0, spec),
            sizer.limit(0.5, 0.8, -0.2, spec)] == pytest.approx([0.3, 0.2, 0.1], abs=1e-12)
