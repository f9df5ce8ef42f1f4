"""Network contracts and the shared training loop, with tiny nets and seeded generators."""
from __future__ import annotations

import numpy as np
import torch

from nt_backtrader.networks import PositionSizingNet, RiskNet, TimingNet
from nt_backtrader.networks.risk import STOP_GRID, TAKE_GRID
from nt_backtrader.networks.timing import confidence, long_short_probabilities
from nt_backtrader.training.loop import Hyper, fit


def test_timing_net_outputs_probabilities_per_decision_bar():
    torch.manual_seed(0)
    net = TimingNet(n_features=5, window=12, hidden=8, heads=2, n_classes=3).eval()
    logits = net(torch.randn(4, 12, 5))
    p_long, p_short = long_short_probabilities(logits)
    assert logits.shape == (4, 3) and ((p_long + p_short) <= 1).all()
    assert ((confidence(logits) >= 0) & (confidence(logits) <= 1)).all()
    assert confidence(torch.tensor([[0.0, 0.0]])) == 0.0 and confidence(torch.tensor([[-50.0, 50.0]])) > 0.99


def test_timing_net_reads_only_its_window():
    """The output for a window is the same whatever else is in the batch (no cross-sample leak)."""
    torch.manual_seed(0)
    net = TimingNet(n_features=5, window=12, hidden=8, heads=2).eval()
    x = torch.randn(6, 12, 5)
    together = net(x)
    alone = torch.cat([net(x[i:i + 1]) for i in range(6)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


def test_sizing_net_starts_at_the_volatility_target_and_stays_in_bounds():
    net = PositionSizingNet(n_inputs=6, hidden=8, vol_target=0.15, max_fraction=1.0, max_multiplier=2.0)
    vol = torch.tensor([0.30, 0.15, 0.05])
    fraction, conf, multiplier = net(torch.zeros(3, 6), vol)
    torch.testing.assert_close(fraction, torch.tensor([0.5, 1.0, 1.0]))  # 0.15/0.30, then capped at 1
    torch.testing.assert_close(multiplier, torch.ones(3))
    with torch.no_grad():
        net.body[-1].bias.fill_(50.0)
    fraction, conf, multiplier = net(torch.randn(3, 6), vol)
    assert (fraction <= 1.0).all() and (multiplier <= 2.0).all() and (conf <= 1.0).all()


def test_risk_levels_come_from_the_bounded_grid():
    torch.manual_seed(0)
    net = RiskNet(n_inputs=4, hidden=8)
    stop, take = net.levels(torch.randn(50, 4) * 10)
    assert set(stop.tolist()) <= set(STOP_GRID) and set(take.tolist()) <= set(TAKE_GRID)


def test_loop_learns_and_early_stopping_keeps_the_best_weights():
    torch.manual_seed(0)
    x = torch.randn(400, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    net = torch.nn.Linear(3, 1)

    def loss(model, idx):
        return ((model(x[idx]).squeeze(-1) - y[idx]) ** 2).mean()

    validation = torch.no_grad()(lambda m: float(loss(m, np.arange(300, 400))))
    result = fit(net, 300, loss, validation, Hyper(lr=0.05, batch_size=32), epochs=40, patience=3,
                 rng=np.random.default_rng(0))
    assert result.best_val < 0.01 * result.first_val and result.rollbacks == 0
    assert result.best_val == min(result.val_losses)


def test_a_divergent_learning_rate_is_survived_and_counted():
    torch.manual_seed(0)
    x = torch.randn(200, 3)
    net = torch.nn.Linear(3, 1)

    def exploding(model, idx):
        return torch.exp(model(x[idx]) ** 2).mean()  # finite at the start; lr 1e3 overflows it to inf

    @torch.no_grad()
    def val(model):
        return float(torch.exp(model(x) ** 2).mean())

    result = fit(net, 200, exploding, val, Hyper(lr=1e3, batch_size=32), epochs=5, patience=5,
                 rng=np.random.default_rng(0))
    assert result.rollbacks >= 1 and result.epochs >= 1
    assert all(torch.isfinite(v).all() for v in net.state_dict().values())
    assert np.isfinite(result.best_val) and result.best_val == val(net)  # the weights kept are the ones scored


def test_last_step_layer_equals_a_full_encoder_layer_at_the_last_step():
    from nt_backtrader.networks.timing import LastStepEncoderLayer

    torch.manual_seed(0)
    full = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True,
                                            norm_first=True).eval()
    last = LastStepEncoderLayer(8, 2, dropout=0.0).eval()
    last.norm1.load_state_dict(full.norm1.state_dict())
    last.norm2.load_state_dict(full.norm2.state_dict())
    last.attention.load_state_dict(full.self_attn.state_dict())
    last.feedforward[0].load_state_dict(full.linear1.state_dict())
    last.feedforward[3].load_state_dict(full.linear2.state_dict())
    h = torch.randn(5, 12, 8)
    torch.testing.assert_close(last(h), full(h)[:, -1], rtol=1e-5, atol=1e-5)
    # In training, attention dropout falls on the same weights in the same order: equal under one seed.
    full.self_attn.dropout = last.attention.dropout = 0.3
    full.train(), last.train()
    torch.manual_seed(1)
    expected = full.self_attn(full.norm1(h)[:, -1:], full.norm1(h), full.norm1(h), need_weights=False)[0][:, 0]
    torch.manual_seed(1)
    torch.testing.assert_close(last.attend_last(last.norm1(h)), expected, rtol=1e-5, atol=1e-5)
