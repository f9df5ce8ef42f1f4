"""One loader for every bundle file: the class comes from the payload's kind; a missing, damaged,
tampered or foreign file is one CheckpointError, and one line with exit code 2 on the command line."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nt_backtrader import momentum
from nt_backtrader.bundle import Bundle
from nt_backtrader.bundle_file import is_position, load_bundle
from nt_backtrader.checkpoint import load_payload
from nt_backtrader.cli import main
from nt_backtrader.errors import CheckpointError
from nt_backtrader.networks.position import PositionEnsemble, PositionNet
from nt_backtrader.position_bundle import PositionBundle, PositionSpec


@pytest.fixture
def position_bundle() -> PositionBundle:
    """An untrained core bundle of one seeded net: what the loader reads needs no training."""
    torch.manual_seed(0)
    net = PositionNet(len(momentum.INPUTS), hidden=4, heads=2, dropout=0.0)
    return PositionBundle(PositionSpec(length=21), PositionEnsemble([net], [0.5], [0]), weights=(0.5, 0.3, 0.2),
                          book_scale=0.5, meta={"source": "sp500", "train_end": "2009-12-31"})


def test_each_file_comes_back_as_the_class_its_payload_names(tmp_path, tiny_bundle, position_bundle, sp500):
    discrete = load_bundle(tiny_bundle.save(tmp_path / "discrete.pt"))
    core = load_bundle(position_bundle.save(tmp_path / "core.pt"))
    assert type(discrete) is Bundle and not is_position(discrete)
    assert type(core) is PositionBundle and is_position(core)
    assert (core.weights, core.book_scale, core.meta) == ((0.5, 0.3, 0.2), 0.5, position_bundle.meta)
    frame = sp500.loc["2004":"2007"]
    bars = [frame[c].to_numpy() for c in ("open", "high", "low", "close")]
    mine, theirs = core.target_weights(*bars), position_bundle.target_weights(*bars)
    assert np.isfinite(mine[-100:]).all()
    np.testing.assert_array_equal(mine, theirs)


def test_missing_damaged_tampered_and_foreign_files_are_one_checkpoint_error(tmp_path, position_bundle):
    path = position_bundle.save(tmp_path / "core.pt")
    with pytest.raises(CheckpointError, match="no such file"):
        load_bundle(tmp_path / "none.pt")
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="damaged"):
        load_bundle(tmp_path / "cut.pt")
    payload = load_payload(path)
    payload["book_scale"] = 1.0  # an edit that leaves the digest as it was
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_bundle(tmp_path / "edited.pt")
    torch.save({"kind": "nt_backtrader.checkpoint", "format_version": 5}, tmp_path / "run.pt")  # a run's checkpoint
    with pytest.raises(CheckpointError, match=r"is a nt_backtrader.checkpoint, not a bundle: .*`nt-backtrader train`"):
        load_bundle(tmp_path / "run.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")  # another program's file
    with pytest.raises(CheckpointError, match="is not an nt_backtrader bundle: give a file"):
        load_bundle(tmp_path / "other.pt")


@pytest.mark.parametrize("command", ["signal", "backtest", "update"])
def test_every_command_reading_a_bundle_refuses_a_foreign_file_in_one_line(tmp_path, capsys, command):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    out = ["--out", str(tmp_path / ("new.pt" if command == "update" else "report"))] if command != "signal" else []
    assert main([command, "--bundle", str(tmp_path / "other.pt"), *out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other.pt is not an nt_backtrader bundle" in err[0]
    assert not (tmp_path / "report").exists() and not (tmp_path / "new.pt").exists()


def test_a_core_bundle_given_to_the_discrete_pieces_says_which_config_trains_theirs(tmp_path, position_bundle):
    path = position_bundle.save(tmp_path / "core.pt")
    with pytest.raises(CheckpointError, match=r"core.pt is a bundle of the deep-momentum core .* "
                                              r"--config strategies/discrete.toml"):
        Bundle.load(path)  # what NeuralStrategy, NeuralSizer and the risk brackets load
