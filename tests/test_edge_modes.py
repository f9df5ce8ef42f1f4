"""Seed ensembles, meta-labeling and pooled training for one traded asset."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nt_backtrader.bundle import Bundle
from nt_backtrader.config import Config, DataConfig, override
from nt_backtrader.data import load_universe
from nt_backtrader.errors import DataError
from nt_backtrader.networks import TimingNet
from nt_backtrader.networks.timing import SeedAverage
from nt_backtrader.signals import primary_side
from nt_backtrader.traders import arrays_of
from nt_backtrader.training.coordinator import Coordinator
from nt_backtrader.training.samples import AssetWindow
from nt_backtrader.walkforward import compare_baselines, walk_forward

from conftest import TINY

OHLCV = ("open", "high", "low", "close", "volume")


def fit_bundle(frame, **changes) -> Bundle:
    coordinator = Coordinator(override(Config(), **{**TINY, **changes}))
    bundle, _ = coordinator.fit({"sp500": AssetWindow(arrays_of(frame), 0, int(len(frame) * 0.8))}, segment=0)
    return bundle


def test_a_seed_average_is_the_mean_of_its_nets_probabilities():
    torch.manual_seed(0)
    nets = [TimingNet(n_features=5, window=8, hidden=8, heads=2).eval() for _ in range(3)]  # no dropout
    x = torch.randn(16, 8, 5)
    with torch.no_grad():
        expected = torch.stack([torch.softmax(net(x), -1) for net in nets]).mean(0)
        np.testing.assert_allclose(torch.softmax(SeedAverage(nets)(x), -1), expected, rtol=1e-5)


def test_a_member_of_k_seeds_is_trained_saved_and_loaded_whole(sp500, tmp_path):
    history = sp500.loc["2004":"2009"]
    bundle = fit_bundle(history, **{"timing.seeds": 3})
    member = bundle.ensemble.members.nets[0]
    assert isinstance(member, SeedAverage) and len(member.nets) == 3
    weights = [torch.cat([p.flatten() for p in net.parameters()]) for net in member.nets]
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])  # three seeds
    assert all(isinstance(net, TimingNet) for net in bundle.ensemble.members.nets[1:])  # the others: single nets
    loaded = Bundle.load(bundle.save(tmp_path / "k.pt"))
    test = sp500.loc["2010":"2011"]
    mine, theirs = (b.predict(*(test[k].to_numpy() for k in OHLCV)) for b in (bundle, loaded))
    np.testing.assert_array_equal(mine.p_long, theirs.p_long)
    assert np.isfinite(mine.p_long).sum() > 200


def test_meta_labeling_only_ever_takes_the_side_tsmom_takes(sp500):
    history = sp500.loc["2003":"2009"]
    bundle = fit_bundle(history, **{"timing.mode": "meta_label", "meta.classical_members": ()})
    test = sp500.loc["2009":"2012"]
    close = test["close"].to_numpy()
    signals = bundle.predict(*(test[k].to_numpy() for k in OHLCV))
    side = primary_side(close, allow_short=False)
    decided = np.isfinite(signals.p_long)
    assert decided.sum() > 400 and (side[decided] == 0).sum() > 20 and (side[decided] > 0).sum() > 300
    assert np.all(signals.p_long[decided & (side == 0)] == 0.0)     # tsmom flat: nothing to take
    taken = signals.p_long[decided & (side > 0)]
    assert taken.min() > 0.0 and taken.std() > 0.001                # p(take): the net's own, varying call
    assert np.all(signals.p_short[decided] == 0.0)


def test_one_asset_traded_after_training_on_the_panel(sp500):
    nasdaq = load_universe(dataset="nasdaq")["nasdaq"]
    panel = {"sp500": sp500.loc["2004":"2007"], "nasdaq": nasdaq.loc["2004":"2007"]}
    config = override(Config(), **TINY, **{"data.dataset": ("sp500", "nasdaq"), "data.trade": ("sp500",)})
    result = walk_forward(panel, config, progress=False)
    assert all(h["trained_on"] == ["sp500", "nasdaq"] for h in result.history)  # learned from both
    assert set(result.weights.columns) == {"sp500"} and set(result.trades["asset"]) == {"sp500"}  # traded one
    assert len(result.trades) >= 3
    baselines = compare_baselines(panel, config, skip="neural")
    assert all(set(b.weights.columns) == {"sp500"} for b in baselines.values())
    alone = compare_baselines({"sp500": panel["sp500"]}, override(config, **{"data.trade": ()}), skip="neural")
    for name, b in baselines.items():  # the same dates, so the same baselines as the asset trained alone
        assert b.returns.equals(alone[name].returns), name


def test_trading_an_asset_the_data_does_not_hold_is_refused():
    with pytest.raises(DataError, match="data.trade names 'spx'.*sp500, nasdaq"):
        load_universe(DataConfig(dataset=("sp500", "nasdaq"), trade=("spx",)))


def test_a_meta_labeling_walk_forward_through_a_bear_market_enters_only_with_tsmom(sp500):
    """2000-2003: validation tails where tsmom holds no side at all (nothing to score), then entries."""
    frame = sp500.loc["1999":"2004-06"]
    config = override(Config(), **{**TINY, "timing.mode": "meta_label"})
    result = walk_forward(frame, config, progress=False)
    assert any(np.isnan(h["timing_val_accuracy"]) for h in result.history)  # a tail with no side to take
    side = dict(zip(frame.index, primary_side(frame["close"].to_numpy(), allow_short=False)))
    entries = result.orders[(result.orders["size"] > 0) & (result.orders["type"] == "Market")]
    assert len(entries) >= 3 and all(side[date] > 0 for date in entries["date"])
