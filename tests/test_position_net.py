"""The position net, its net-of-cost Sharpe loss, the pooled trainer and the top-M seed ensemble."""
from __future__ import annotations

import dataclasses
import math
import statistics

import numpy as np
import pytest
import torch
from torch import nn

from nt_backtrader.errors import ConfigError, DataError
from nt_backtrader.networks.position import PositionNet
from nt_backtrader.training.loop import FitResult, Hyper
from nt_backtrader.training.losses import net_sharpe_loss, position_direction_loss
from nt_backtrader.training.position_trainer import (
    AssetSeries,
    PositionFit,
    ensemble,
    fit_ensemble,
    fit_position_net,
    positions,
    sequences,
    validation_sharpe,
)

LOOKBACKS = (5, 20)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def synthetic(seed: int, n: int = 1000, persistent: bool = True, fit_end: int = 600, val_end: int = 800,
              cost: float = 1e-4, first_day: str = "2000-01-03") -> AssetSeries:
    """Daily returns with a trend whose sign follows an AR(1) drift (or pure noise); inputs are
    the trailing mean returns over LOOKBACKS bars in units of their standard error."""
    rng = np.random.default_rng(seed)
    drift = np.zeros(n)
    for t in range(1, n):
        drift[t] = 0.99 * drift[t - 1] + rng.normal()
    returns = 0.01 * rng.normal(size=n) + (0.004 * np.sign(drift) if persistent else 0.0)
    inputs = np.full((n, len(LOOKBACKS)), np.nan)
    for j, k in enumerate(LOOKBACKS):
        inputs[k - 1:, j] = np.convolve(returns, np.ones(k), "valid") / (0.01 * math.sqrt(k))
    next_returns = np.append(returns[1:], np.nan)
    dates = np.datetime64(first_day) + np.arange(n)
    return AssetSeries(f"a{seed}", inputs, next_returns, np.ones(n), cost, dates, fit_end, val_end)


class Constant(nn.Module):
    """A net whose position is `value` at every step: its returns can be written out by hand."""

    def __init__(self, value: float):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(value))

    def forward(self, x, asset=None):
        return self.value.expand(x.shape[0], x.shape[1])

    def last_step(self, x, asset=None):
        return self.value.expand(x.shape[0])


def test_step_k_never_sees_later_steps():
    torch.manual_seed(0)
    net = PositionNet(3, hidden=8, heads=2, dropout=0.0).eval()
    x = torch.randn(2, 12, 3)
    later = x.clone()
    later[:, 6:] = 10 * torch.randn(2, 6, 3)
    out, changed = net(x), net(later)
    assert out.shape == (2, 12)
    assert torch.equal(out[:, :6], changed[:, :6])
    assert not torch.allclose(out[:, 6:], changed[:, 6:])
    assert out.abs().max() < 1
    # a decision computes the last step alone: the same number as the last of every step
    torch.testing.assert_close(net.last_step(x), out[:, -1], rtol=0, atol=1e-6)


def test_long_only_is_in_0_1_and_the_embedding_needs_the_asset():
    torch.manual_seed(0)
    net = PositionNet(3, hidden=8, heads=2, n_assets=3, embed=2, long_only=True).eval()
    out = net(torch.randn(4, 5, 3), torch.tensor([0, 1, 2, 0]))
    assert ((out > 0) & (out < 1)).all()
    with pytest.raises(ValueError, match="asset"):
        net(torch.randn(4, 5, 3))
    with pytest.raises(ConfigError, match="multiple of heads"):
        PositionNet(3, hidden=6, heads=4)


def test_a_position_depends_on_its_window_only():
    torch.manual_seed(0)
    net = PositionNet(2, hidden=8, heads=2)
    inputs = synthetic(0, n=300).inputs
    length, t = 21, 200
    rows = np.arange(150, t + 1)
    clean = positions(net, inputs, rows, length)
    noisy = inputs.copy()
    noisy[t + 1:] = 50 * np.random.default_rng(1).normal(size=noisy[t + 1:].shape)
    np.testing.assert_array_equal(positions(net, noisy, rows, length), clean)
    cut = 150 - length + 1                                   # the earliest row any window here reads
    np.testing.assert_array_equal(positions(net, inputs[cut:], rows - cut, length), clean)
    np.testing.assert_array_equal(positions(net, inputs, [t], length), clean[-1:])   # as `signal` asks it
    assert net.training                                      # the caller's mode is left as it was


def test_no_position_without_a_full_finite_window():
    torch.manual_seed(0)
    net = PositionNet(2, hidden=4, heads=2)
    inputs = synthetic(0, n=120).inputs                      # rows 0-18 have no 20-bar mean
    inputs[60, 0] = np.nan
    out = positions(net, inputs, np.arange(120), length=10)
    assert np.isnan(out[:28]).all() and np.isfinite(out[28:60]).all()      # first full window: rows 19-28
    assert np.isnan(out[60:70]).all() and np.isfinite(out[70:]).all()     # windows holding row 60


def test_the_loss_is_the_hand_computed_net_sharpe():
    position = torch.tensor([[0.5, 1.0, -0.5, 0.0], [1.0, 1.0, 1.0, 0.5]])
    vol_scale = torch.tensor([[2.0, 2.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0]])
    next_returns = torch.tensor([[0.01, -0.02, 0.01, 0.03], [0.02, 0.01, -0.01, 0.0]])
    cost = torch.tensor([0.001, 0.002])
    mask = torch.tensor([[True, True, True, True], [False, True, True, True]])
    # weights w = [1, 2, -1, 0] and [1, 1, 1, 0.5]; changes [0, 1, 3, 1] and [0, 0, 0, 0.5]
    # net = w r - cost |dw|: [0.01, -0.04-0.001, -0.01-0.003, 0-0.001], [(0.02), 0.01, -0.01, 0-0.001]
    net = [0.01, -0.041, -0.013, -0.001, 0.01, -0.01, -0.001]
    expected = -statistics.mean(net) / statistics.stdev(net) * math.sqrt(252)   # = 5.9413...
    loss = net_sharpe_loss(position, next_returns, vol_scale, cost, mask)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(5.9413, abs=1e-4)


def test_the_cross_entropy_twin_reads_the_position_as_the_chance_of_a_rise():
    position = torch.tensor([[0.0, 0.8, -0.5, 0.3]])
    returns = torch.tensor([[0.01, 0.02, 0.01, -0.03]])
    mask = torch.tensor([[True, True, True, False]])
    # p(up) = 0.5, 0.9, 0.25 against rises 1, 1, 1; the masked step is not read
    expected = -(math.log(0.5) + math.log(0.9) + math.log(0.25)) / 3
    assert float(position_direction_loss(position, returns, mask)) == pytest.approx(expected, rel=1e-6)
    # long-only: the sigmoid position is p(up) itself
    assert float(position_direction_loss(torch.tensor([[0.9]]), torch.tensor([[-0.01]]), torch.tensor([[True]]),
                                         long_only=True)) == pytest.approx(-math.log(0.1), rel=1e-5)
    pool = [synthetic(seed, n=300, fit_end=200, val_end=260) for seed in range(2)]
    options = dict(length=21, hidden=4, heads=2, epochs=2, patience=2)
    sharpe_fit, ce_fit = (fit_position_net(pool, Hyper(batch_size=4), seed=3, loss=loss, **options)
                          for loss in ("sharpe", "direction"))
    assert all(math.isfinite(v) for v in sharpe_fit.result.train_losses + ce_fit.result.train_losses)   # it trained
    assert sharpe_fit.result.val_losses != ce_fit.result.val_losses      # another loss: other nets after each epoch


def test_sequences_cover_each_usable_fit_row_once_and_never_a_label_past_fit_end():
    series = synthetic(0, n=100, fit_end=50, val_end=80)      # inputs NaN in rows 0-18
    data = sequences([series], length=10)
    # usable fit rows 19..48 (30 rows: the label of row 49 is the first validation return); with a
    # burn-in of 1, sequences at 19, 28, 37 and the last aligned to the end, 39-48; row 19 is context only
    assert data.x.shape == (4, 10, 2) and not data.mask[:, 0].any()
    counted = np.concatenate([np.arange(s, s + 10)[m] for s, m in zip((19, 28, 37, 39), data.mask.numpy())])
    np.testing.assert_array_equal(counted, np.arange(20, 49))       # every row but the first, once
    np.testing.assert_array_equal(data.next_returns[data.mask].numpy(), series.next_returns[20:49].astype(np.float32))
    wide = sequences([series], length=10, burn_in=4)                # stride 6: at 19, 25, 31, 37 and 39
    assert wide.x.shape[0] == 5 and wide.mask.sum(dim=1).tolist() == [6, 6, 6, 6, 2]
    with pytest.raises(ValueError, match="burn_in"):
        sequences([series], length=10, burn_in=10)
    series.inputs[25] = np.nan                                 # runs 19-24 (too short) and 26-48 (23 rows)
    data = sequences([series, synthetic(1, n=100, fit_end=50, val_end=80)], length=10)
    # run 26-48: sequences at 26, 35 and the last aligned to the end, 39-48, counting 45-48 only
    assert data.x.shape[0] == 7 and data.asset.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert data.mask[2].tolist() == [False] * 6 + [True] * 4
    assert int(data.mask[:3].sum()) == 22
    with pytest.raises(DataError, match="a0"):
        sequences([synthetic(0, n=100, fit_end=25, val_end=80)], length=10)
    with pytest.raises(DataError, match="validation tail"):
        fit_position_net([synthetic(0, n=100, fit_end=99, val_end=100)], Hyper(), seed=0, length=10)


def test_the_validation_portfolio_is_the_mean_of_the_assets_trading_each_date():
    n, cost = 30, 0.01
    first = AssetSeries("a", np.zeros((n, 1)), 0.001 * np.arange(n), np.ones(n), cost,
                        np.datetime64("2000-01-01") + np.arange(n), fit_end=20, val_end=30)
    second = dataclasses.replace(first, name="b", next_returns=-0.002 * np.arange(n),
                                 dates=first.dates + 2, vol_scale=np.ones(n))
    first.vol_scale[24] = 2.0                      # weight 1 -> 2 -> 1: a change of 1 paid at rows 24 and 25
    # tail rows 20-28 (the label of row 29 is read at val_end); held at 1 from row 19, so no other change
    a = {20 + k: 0.001 * (20 + k) for k in range(9)}
    a[24], a[25] = 2 * 0.024 - cost, 0.025 - cost
    b = {22 + k: -0.002 * (20 + k) for k in range(9)}                 # dates shifted by 2 days
    days = range(20, 31)
    portfolio = [np.mean([x[d] for x in (a, b) if d in x]) for d in days]
    expected = statistics.mean(portfolio) / statistics.stdev(portfolio) * math.sqrt(252)
    got = validation_sharpe(Constant(1.0), [first, second], length=3)
    assert got == pytest.approx(expected, rel=1e-6)   # sharpe() adds 1e-8 to the std


def test_the_validation_sharpe_reads_nothing_at_or_after_val_end():
    torch.manual_seed(0)
    net = PositionNet(2, hidden=8, heads=2)
    pool = [synthetic(0, n=300, fit_end=200, val_end=260),
            synthetic(1, n=300, fit_end=190, val_end=250, first_day="2000-01-13")]
    clean = validation_sharpe(net, pool, length=21)
    for series in pool:
        series.inputs[series.val_end:] = 9.0
        series.next_returns[series.val_end - 1:] = 9.0        # the last tail row's label is r at val_end
        series.vol_scale[series.val_end:] = 9.0
    assert validation_sharpe(net, pool, length=21) == clean
    assert math.isfinite(clean)


@pytest.mark.parametrize("persistent", [True, False])
def test_it_learns_a_persistent_trend_and_no_edge_from_noise(persistent):
    pool = [synthetic(seed, persistent=persistent) for seed in range(3)]
    test = [dataclasses.replace(s, fit_end=s.val_end, val_end=len(s.dates)) for s in pool]   # unseen tail
    options = dict(length=21, hidden=8, heads=2, epochs=12, patience=4)
    hyper = Hyper(lr=1e-2, batch_size=16, dropout=0.0)
    trained = fit_position_net(pool, hyper, seed=0, **options)
    untrained = fit_position_net(pool, hyper, seed=0, **{**options, "epochs": 0}).net
    out_of_sample, baseline = (validation_sharpe(net, test, length=21) for net in (trained.net, untrained))
    # measured: trend val 8.7, unseen 8.7, untrained 4.5; noise val 2.4 (the best of its epochs), unseen -0.3
    if persistent:   # a perfect sign: 0.4 x sqrt(252) = 6.3 per asset, about sqrt(3) x that pooled
        assert trained.val_sharpe > 2.0 and out_of_sample > 2.0
        assert out_of_sample > baseline + 1.0
    else:            # 200 days: a Sharpe's standard error is about sqrt(252 / 200) = 1.1
        assert abs(out_of_sample) < 2.2


def test_same_seed_same_weights_and_the_callers_random_stream_untouched():
    pool = [synthetic(seed, n=300, fit_end=200, val_end=260) for seed in range(2)]
    options = dict(length=21, hidden=4, heads=2, epochs=2, patience=2)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = fit_position_net(pool, Hyper(batch_size=4), seed=7, **options)
    assert torch.equal(torch.rand(1), before)
    second = fit_position_net(pool, Hyper(batch_size=4), seed=7, **options)
    other = fit_position_net(pool, Hyper(batch_size=4), seed=8, **options)
    state, again, different = first.net.state_dict(), second.net.state_dict(), other.net.state_dict()
    assert all(torch.equal(state[k], again[k]) for k in state)
    assert not all(torch.equal(state[k], different[k]) for k in state)
    assert first.val_sharpe == second.val_sharpe
    assert len(first.result.train_losses) == 2 and all(math.isfinite(v) for v in first.result.train_losses)


def test_training_reads_nothing_at_or_after_val_end():
    pool = [synthetic(seed, n=300, fit_end=200, val_end=260) for seed in range(2)]
    options = dict(length=21, hidden=4, heads=2, epochs=2, patience=2)
    clean = fit_position_net(pool, Hyper(batch_size=4), seed=3, **options)
    for series in pool:
        series.inputs[series.val_end:] = np.random.default_rng(0).normal(size=(40, 2))
        series.next_returns[series.val_end - 1:] = 0.5
        series.vol_scale[series.val_end:] = 7.0
    changed = fit_position_net(pool, Hyper(batch_size=4), seed=3, **options)
    state, again = clean.net.state_dict(), changed.net.state_dict()
    assert all(torch.equal(state[k], again[k]) for k in state)
    assert changed.result.val_losses == clean.result.val_losses


def test_the_stop_half_stops_each_net_and_the_rank_half_scores_it():
    pool = [synthetic(seed, n=300, fit_end=200, val_end=260) for seed in range(2)]
    options = dict(length=21, hidden=4, heads=2, epochs=3, patience=3)
    clean = fit_position_net(pool, Hyper(batch_size=4), seed=3, **options)
    assert pool[0].part("stop") == (200, 230) and pool[0].part("rank") == (230, 260)
    assert clean.val_sharpe == validation_sharpe(clean.net, pool, 21, "rank")
    assert -clean.result.best_val == pytest.approx(validation_sharpe(clean.net, pool, 21, "stop"))
    for series in pool:   # row 229's label is the first one the stop half does not read
        series.next_returns[series.stop_end - 1:] *= -1.0
    changed = fit_position_net(pool, Hyper(batch_size=4), seed=3, **options)
    state, again = clean.net.state_dict(), changed.net.state_dict()
    assert all(torch.equal(state[k], again[k]) for k in state)        # the same epochs kept
    assert changed.result.val_losses == clean.result.val_losses
    assert changed.val_sharpe != clean.val_sharpe                       # ranked on other returns


def test_top_m_keeps_the_best_validation_sharpes_and_averages_their_positions():
    values, sharpes = [0.1, 0.5, 0.9, 0.25, -0.15], [0.5, 1.2, math.nan, 1.2, 0.9]
    fits = [PositionFit(Constant(v), s, FitResult(), seed, Hyper()) for seed, (v, s) in enumerate(zip(values, sharpes))]
    chosen = ensemble(fits, top_m=3)
    assert chosen.seeds == [1, 3, 4] and chosen.val_sharpes == [1.2, 1.2, 0.9]   # a tie keeps seed order
    out = positions(chosen, np.zeros((30, 2)), np.arange(9, 30), length=10)
    np.testing.assert_allclose(out, (0.5 + 0.25 - 0.15) / 3, rtol=1e-6)
    assert ensemble(fits, top_m=9).seeds == [1, 3, 4, 0, 2]                       # NaN last


def test_fit_ensemble_trains_every_draw_with_every_seed_and_averages_the_top_m():
    pool = [synthetic(seed, n=300, fit_end=200, val_end=260) for seed in range(2)]
    hypers = [Hyper(lr=1e-3, batch_size=4), Hyper(lr=3e-3, batch_size=4)]
    chosen, fits = fit_ensemble(pool, hypers, seeds=[0, 1], top_m=2, length=21, hidden=4, heads=2, epochs=1,
                                patience=1)
    assert [(f.hyper.lr, f.seed) for f in fits] == [(1e-3, 0), (1e-3, 1), (3e-3, 0), (3e-3, 1)]
    assert chosen.val_sharpes == sorted((f.val_sharpe for f in fits), reverse=True)[:2]
    inputs, rows = pool[0].inputs, np.arange(100, 120)
    members = [positions(net, inputs, rows, 21) for net in chosen.nets]
    np.testing.assert_allclose(positions(chosen, inputs, rows, 21), np.mean(members, axis=0), atol=1e-6)
