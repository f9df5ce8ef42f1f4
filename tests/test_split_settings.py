"""Split settings are checked once, when the config is made, for every command; every label is cut
at the train window's end; a validation tail the features' warm-up eats is an error, not an untrained net."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from nt_backtrader import cycle, data, job, sweep
from nt_backtrader.cli import main
from nt_backtrader.config import Config, WalkForwardConfig, override
from nt_backtrader.errors import ConfigError, DataError
from nt_backtrader.features import average_true_range
from nt_backtrader.traders import arrays_of
from nt_backtrader.training import samples
from nt_backtrader.training.brackets import bracket_returns
from nt_backtrader.training.loop import Hyper
from nt_backtrader.training.samples import AssetWindow, prepare
from nt_backtrader.training.trainer import NeuralTrainer, pooled_rows


@pytest.mark.parametrize("fraction", [0.0, -0.1, 0.5, 0.7])
def test_a_val_fraction_outside_0_to_half_is_refused_by_the_config(fraction):
    with pytest.raises(ConfigError, match=r"'walkforward.val_fraction' is -?0\.\d: it must be above 0 and below 0.5"):
        override(Config(), **{"walkforward.val_fraction": fraction})
    with pytest.raises(ConfigError, match="walkforward.val_fraction"):
        WalkForwardConfig(val_fraction=fraction)  # what splits.split is given: refused when it is made


def test_the_validation_tail_must_hold_25_rows_past_the_longest_label_reach():
    assert samples.label_reach(Config()) == {"timing": 5, "sizing": 6, "risk": 23}
    small = {"walkforward.train_bars": 252, "sizing.enabled": True}  # a tail of round(0.2 * 252) = 50 bars
    override(Config(), **small, **{"risk.horizon": 23})  # 25 + 23 + 2 = 50: just enough
    with pytest.raises(ConfigError, match=r"walkforward.val_fraction \(0.2\) of walkforward.train_bars \(252\) is a "
                                          r"validation tail of 50 bars; it needs 51: 25 validation rows of the risk "
                                          r"net plus the 26 bars .* lower risk.horizon"):
        override(Config(), **small, **{"risk.horizon": 24})
    with pytest.raises(ConfigError, match=r"tail of 38 bars; it needs 48"):  # round(0.15 * 252) = 38
        override(Config(), **small, **{"walkforward.val_fraction": 0.15})
    # a long timing horizon: the sizer's labels (horizon + 1) reach furthest
    with pytest.raises(ConfigError, match=r"needs 56: 25 validation rows of the sizing net .* lower timing.horizon"):
        override(Config(), **small, **{"timing.horizon": 30, "walkforward.purge_bars": 30, "risk.horizon": 5})


@pytest.mark.parametrize("key", ["timing.horizon", "risk.horizon"])
def test_a_label_horizon_under_one_bar_is_refused(key):
    with pytest.raises(ConfigError, match=rf"'{key}' is 0: a label horizon is 1 bar or more"):
        override(Config(), **{key: 0})


def no_work(*args, **kwargs):
    raise AssertionError("work started with a config that should have been refused")


@pytest.mark.parametrize("command, fraction", [("run", 0.0), ("train", -0.1), ("backtest", 0.5)])
def test_every_command_refuses_a_bad_val_fraction_in_one_line_before_any_work(command, fraction, tmp_path, capsys,
                                                                              monkeypatch):
    for module, name in ((job, "run_and_report"), (cycle, "first_bundle"), (data, "load_universe")):
        monkeypatch.setattr(module, name, no_work)
    (tmp_path / "c.toml").write_text(f"[walkforward]\nval_fraction = {fraction}\n")
    bundle = ["--bundle", str(tmp_path / "missing.pt")] if command == "backtest" else []
    code = main([command, "--config", str(tmp_path / "c.toml"), *bundle, "--out", str(tmp_path / "out")])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "walkforward.val_fraction" in err


def test_a_sweep_refuses_a_bad_val_fraction_before_any_cell_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep, "sweep", no_work)
    (tmp_path / "s.toml").write_text("[base]\nwalkforward = { val_fraction = 0.0 }\n[grid]\nseed = [0, 1]\n")
    code = main(["sweep", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out")])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "walkforward.val_fraction" in err


def test_update_refuses_a_bundle_whose_config_has_a_bad_val_fraction():
    """`update` (and `signal`) read the bundle's own config TOML: it is checked like a config file."""
    stored = SimpleNamespace(cycle={"config": "[walkforward]\nval_fraction = 0.0\n"})
    with pytest.raises(ConfigError, match="walkforward.val_fraction"):
        cycle.bundle_config(stored)


def test_the_risk_nets_outcomes_never_read_past_the_train_windows_end(sp500):
    """The bracket outcomes of the risk net's last validation row end on the train window's last bar:
    computed on the train window alone they are those computed with every later bar there too."""
    config = Config()
    everything = arrays_of(sp500.loc["2004":"2007"])
    n = 756  # the train window: its first 756 bars
    train = {k: v[:n] for k, v in everything.items()}
    pool = [prepare("sp500", train, 0, n - 151, config.timing.window)]
    _, val_rows = pooled_rows(pool, config, "risk")
    rows = val_rows[0]
    assert rows[0] == n - 151 and rows[-1] + config.risk.horizon + 1 == n - 2  # one bar of margin
    stops, takes = np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 6.0])

    def outcomes(a):
        atr = average_true_range(a["high"], a["low"], a["close"])
        return bracket_returns(a["open"], a["high"], a["low"], a["close"], atr, rows, stops, takes,
                               config.risk.horizon)

    np.testing.assert_array_equal(outcomes(train), outcomes(everything))


def test_a_validation_tail_without_rows_is_an_error_not_an_untrained_net(sp500):
    trainer = NeuralTrainer(Config())
    arrays = arrays_of(sp500.loc["2004":"2006"])
    n = len(arrays["close"])
    # val_fraction 0 in the segment: the tail is empty (the config refuses it; the trainer does not trust that)
    empty = trainer.prepare({"sp500": AssetWindow(arrays, 0, n)})
    with pytest.raises(DataError, match=r"leaves the timing net 0 validation rows, fewer than 25"):
        trainer.fit_timing(empty, Hyper(), seed=0)
    # a first train window little longer than the features' warm-up: the warm-up eats the tail
    short = {k: v[:180] for k, v in arrays.items()}
    warm = trainer.prepare({"sp500": AssetWindow(short, 0, 130)})
    assert warm[0].first_row > 130 and 0 < 180 - 5 - warm[0].first_row < 25
    with pytest.raises(DataError, match=rf"the train window ending {str(short['dates'][-1])[:10]} leaves the timing "
                                        rf"net {180 - 5 - warm[0].first_row} validation rows, fewer than 25"):
        trainer.fit_timing(warm, Hyper(), seed=0)


def test_a_switched_off_network_does_not_size_the_validation_tail():
    """risk.horizon 40 needs a tail of 25 + 42 bars, which 252 x 0.2 = 50 is not; with the risk net off
    (fixed ATR brackets) nothing learns from that horizon, so the config stands."""
    changes = {"walkforward.train_bars": 252, "risk.horizon": 40}
    with pytest.raises(ConfigError, match="needs 67: 25 validation rows of the risk net"):
        override(Config(), **changes)
    assert override(Config(), **changes, **{"risk.enabled": False}).risk.horizon == 40


def test_an_empty_frame_is_a_one_line_error_in_every_message_that_names_its_dates():
    empty = data.pd.DataFrame({"close": []}, index=data.pd.DatetimeIndex([]))
    with pytest.raises(DataError, match=r"^x.csv: no bars between 2004-01-01 and the end; the data covers no dates"):
        data.slice_dates(empty, "2004-01-01", None, "x.csv")
    with pytest.raises(DataError, match=r"^0 bars \(no dates at all\) are too few: a run needs at least 10"):
        data.require_bars(empty, 10, "a run")
