"""Networks that improve each other: tuner, meta-learner, the coordinated loop, checkpoint and resume."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from nt_backtrader.cli import main
from nt_backtrader.config import Config, MetaConfig, TrainConfig, TunerConfig, override, to_toml
from nt_backtrader.networks.tuner import N_TUNER_INPUTS
from nt_backtrader.training.meta import Meta
from nt_backtrader.training.tuner import Tuner
from nt_backtrader.walkforward import walk_forward

from conftest import TINY, kill_after_segments


@pytest.fixture(scope="module")
def slice_2004_2008(sp500):
    return sp500.loc["2004":"2008"]


def test_same_seed_twice_gives_bit_identical_returns(slice_2004_2008):
    config = override(Config(), **TINY)
    first = walk_forward(slice_2004_2008, config, progress=False)
    torch.randn(1000)  # whatever else the process did in between must not matter
    second = walk_forward(slice_2004_2008, config, progress=False)
    pd.testing.assert_series_equal(first.returns, second.returns, check_exact=True)
    assert [h["lr"] for h in first.history] == [h["lr"] for h in second.history]
    other = walk_forward(slice_2004_2008, override(config, seed=1), progress=False)
    assert [h["lr"] for h in other.history] != [h["lr"] for h in first.history]


def test_a_divergent_learning_rate_completes_with_the_rollbacks_counted(slice_2004_2008):
    config = override(Config(), **TINY, **{"tuner.mode": "fixed", "train.lr": 1e8})
    result = walk_forward(slice_2004_2008, config, progress=False)
    assert len(result.history) >= 5 and all(h["rollbacks"] >= 1 for h in result.history)
    # Survived, not just finished: every segment's chosen timing net scores and predicts finitely.
    assert all(np.isfinite(h["timing_val_loss"]) and np.isfinite(h["val_sharpes"]["neural_1"])
               for h in result.history)
    assert np.isfinite(result.returns).all()


def tiny_args(tmp_path, out):
    config = tmp_path / "tiny.toml"
    config.write_text(to_toml(override(Config(), **TINY)))
    return ["run", "--config", str(config), "--start", "2004-01-01", "--end", "2011-12-31", "--out", str(out),
            "--quiet"]


def test_killed_run_resumes_to_exactly_the_uninterrupted_returns(tmp_path, capsys):
    killed = tmp_path / "killed"
    args = tiny_args(tmp_path, killed)
    proc = subprocess.Popen([sys.executable, "-m", "nt_backtrader.cli", *args], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = killed / "checkpoint.pt"
    kill_after_segments(proc, checkpoint, 2)
    state = torch.load(checkpoint, weights_only=True)
    assert 2 <= state["segments_done"] < state["n_segments"] and not (killed / "returns.csv").exists()

    assert main([*args, "--resume"]) == 0
    straight = tmp_path / "straight"
    assert main(tiny_args(tmp_path, straight)) == 0
    capsys.readouterr()
    resumed = pd.read_csv(killed / "returns.csv", index_col="date")
    pd.testing.assert_frame_equal(resumed, pd.read_csv(straight / "returns.csv", index_col="date"), check_exact=True)
    history = json.loads((killed / "history.json").read_text())
    assert len(history) == state["n_segments"] and history == json.loads((straight / "history.json").read_text())


def test_resume_refuses_other_settings_and_damaged_checkpoints(tmp_path, capsys):
    out = tmp_path / "run"
    args = tiny_args(tmp_path, out)
    args[args.index("--end") + 1] = "2008-12-31"
    assert main(args) == 0
    assert main([*args, "--resume", "--seed", "7"]) == 2
    err = capsys.readouterr().err
    assert "other settings (seed was 0, now 7)" in err and len(err.strip().splitlines()) == 1
    (out / "checkpoint.pt").write_bytes((out / "checkpoint.pt").read_bytes()[:-64])
    assert main([*args, "--resume"]) == 2
    assert "damaged" in capsys.readouterr().err
    assert main(["run", "--resume", "--out", str(tmp_path / "empty"), "--quiet"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_tuner_decodes_within_bounds_and_starts_at_their_middle():
    tuner = Tuner(TunerConfig(), TrainConfig(), dropout=0.1)
    middle = tuner.decode(torch.zeros(4))
    assert middle.lr == pytest.approx(1e-3) and middle.batch_size == 256 and middle.weight_decay == pytest.approx(1e-4)
    for extreme in (-50.0, 50.0):
        hyper = tuner.decode(torch.full((4,), extreme))
        assert 1e-4 <= hyper.lr <= 1e-2 and 64 <= hyper.batch_size <= 512 and 0 <= hyper.dropout <= 0.4
    generator = torch.Generator().manual_seed(0)
    random = Tuner(TunerConfig(mode="random"), TrainConfig(), 0.1).propose(torch.zeros(N_TUNER_INPUTS), generator)
    fixed = Tuner(TunerConfig(mode="fixed"), TrainConfig(), 0.1).propose(torch.zeros(N_TUNER_INPUTS), generator)
    assert len({p.hyper.lr for p in random}) == 3 and {p.hyper.lr for p in fixed} == {1e-3}


def test_tuner_learns_which_learning_rates_validate_better():
    tuner = Tuner(TunerConfig(population=6), TrainConfig(), dropout=0.1)
    state, generator = torch.zeros(N_TUNER_INPUTS), torch.Generator().manual_seed(0)
    start = tuner.net(state).mean[0].item()
    for _ in range(60):
        proposals = tuner.propose(state, generator)
        # A made-up validation loss that is lowest at lr = 3e-3, above the middle of the bounds.
        losses = [abs(np.log10(p.hyper.lr) - np.log10(3e-3)) for p in proposals]
        tuner.learn_from_validation(state, proposals, losses)
    assert tuner.decode(tuner.net(state).mean.detach()).lr > 2e-3 and tuner.net(state).mean[0].item() > start


def test_the_tuner_reads_how_its_chosen_candidate_did_on_the_validation_tail(slice_2004_2008):
    from nt_backtrader.traders import arrays_of
    from nt_backtrader.training.coordinator import Coordinator
    from nt_backtrader.training.samples import AssetWindow

    coordinator = Coordinator(override(Config(), **TINY))
    before = coordinator.tuner.state(0.2)
    _, info = coordinator.fit({"sp500": AssetWindow(arrays_of(slice_2004_2008), 0, 600)}, segment=0)
    last = coordinator.tuner.last
    assert last["val_sharpe"] == info["val_sharpes"]["neural_1"] and last["val_loss"] == info["timing_val_loss"]
    assert last["val_accuracy"] == info["timing_val_accuracy"]
    assert not torch.equal(coordinator.tuner.state(0.2), before)


@pytest.mark.parametrize("realized_sharpe, direction", [(2.0, 1), (-2.0, -1)])
def test_tuner_realized_reward_makes_the_chosen_settings_more_or_less_likely(realized_sharpe, direction):
    tuner = Tuner(TunerConfig(), TrainConfig(), dropout=0.1)
    state = torch.zeros(N_TUNER_INPUTS)
    chosen = tuner.propose(state, torch.Generator().manual_seed(0))[0]
    before = tuner.net(state).log_prob(chosen.action).sum().item()
    tuner.learn_from_outcome(state, chosen, realized_sharpe)
    assert direction * (tuner.net(state).log_prob(chosen.action).sum().item() - before) > 0


def test_meta_learner_moves_weight_to_the_member_that_earned_it():
    meta = Meta(MetaConfig(steps=30, prior=0.1))
    members = ["neural_1", "tsmom"]
    rng = np.random.default_rng(0)
    for _ in range(6):
        inputs = meta.inputs(members, [0.0, 0.0], np.zeros(2))
        good, bad = rng.normal(0.001, 0.01, 250), rng.normal(-0.001, 0.01, 250)
        meta.update(inputs, members, np.stack([bad, good]), np.zeros((0, 2)), np.zeros((0, 2)))
    weights, trust = meta.weigh(meta.inputs(members, [0.0, 0.0], np.zeros(2)))
    assert weights[1] > 0.6 and abs(weights.sum() - 1) < 1e-6
    off = Meta(MetaConfig(enabled=False))
    weights, trust = off.weigh(off.inputs(members, [1.0, -1.0], np.zeros(2)))
    assert list(weights) == [0.5, 0.5] and list(trust) == [0.5, 0.5]


def test_history_and_learning_figure_of_a_neural_run(tmp_path, capsys):
    out = tmp_path / "run"
    args = tiny_args(tmp_path, out)
    args[args.index("--end") + 1] = "2008-12-31"
    assert main(args) == 0
    history = json.loads((out / "history.json").read_text())
    last = history[-1]
    assert len(last["candidates"]) == TINY["tuner.population"]
    # the timing net kept is the candidate with the lowest validation loss, and each one's reward minus its loss
    best = min(last["candidates"], key=lambda candidate: candidate["val_loss"])
    hyper = ("lr", "batch_size", "dropout", "weight_decay")
    assert [last[k] for k in hyper] == [best[k] for k in hyper] and last["timing_val_loss"] == best["val_loss"]
    assert last["tuner_val_rewards"] == [-candidate["val_loss"] for candidate in last["candidates"]]
    assert set(last["weights"]) == set(last["member_oos_sharpes"]) and sum(last["weights"].values()) == pytest.approx(1)
    for key in ("sizing_trust", "risk_trust", "timing_accuracy", "timing_val_accuracy"):
        assert 0.0 <= last[key] <= 1.0, key
    assert last["rollbacks"] == 0 and np.isfinite(last["tuner_realized_reward"])
    returns = pd.read_csv(out / "returns.csv", index_col="date", parse_dates=True)["strategy"]
    assert last["oos_return"] == pytest.approx(np.prod(1.0 + returns[last["test_start"]:last["test_end"]]) - 1.0)
    figure = out / "learning_progress.png"
    assert figure.stat().st_size > 20_000 and 'src="learning_progress.png"' in (out / "tearsheet.html").read_text()
