"""Bundles: a round trip predicts identically; a damaged or tampered file is refused in one line."""
from __future__ import annotations

import tomllib

import numpy as np
import pytest
import torch

from nt_backtrader.bundle import Bundle
from nt_backtrader.checkpoint import FORMAT_VERSION, digest, load_payload
from nt_backtrader.cli import main
from nt_backtrader.config import Config, from_dict
from nt_backtrader.errors import CheckpointError


def predict(bundle, frame):
    return bundle.predict(*(frame[c].to_numpy() for c in ("open", "high", "low", "close", "volume")))


def test_round_trip_gives_identical_predictions(tmp_path, tiny_bundle, sp500):
    path = tiny_bundle.save(tmp_path / "model.pt")
    loaded = Bundle.load(path)
    frame = sp500.loc["2010":"2011"]
    before, after = predict(tiny_bundle, frame), predict(loaded, frame)
    for name in ("p_long", "p_short", "confidence", "stop_atr", "take_atr", "atr", "vol"):
        np.testing.assert_array_equal(getattr(before, name), getattr(after, name))
    assert np.isfinite(after.p_long[-100:]).all()
    assert loaded.spec == tiny_bundle.spec and loaded.meta["train_end"] == "2009-12-31"
    assert list(path.parent.iterdir()) == [path]  # the temporary file was renamed, not left behind


def test_file_holds_plain_tensors_and_numbers(tmp_path, tiny_bundle):
    payload = torch.load(tiny_bundle.save(tmp_path / "model.pt"), weights_only=True)
    assert payload["format_version"] == FORMAT_VERSION and len(payload["sha256"]) == 64
    assert isinstance(payload["state"]["timing"][0]["head.weight"], torch.Tensor)
    assert payload["ensemble"]["members"] == ["neural_1", "neural_2", "tsmom", "sma"]
    assert sum(payload["ensemble"]["weights"]) == pytest.approx(1.0)


def test_tampered_weights_fail_the_checksum(tmp_path, tiny_bundle):
    path = tiny_bundle.save(tmp_path / "model.pt")
    payload = load_payload(path)
    payload["state"]["risk"]["body.0.bias"][0] += 1.0  # a quiet edit, checksum left as it was
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="fails its SHA-256 check"):
        Bundle.load(path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_damaged_files_are_refused(tmp_path, tiny_bundle, damage):
    path = tiny_bundle.save(tmp_path / "model.pt")
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    else:
        path.unlink()
    with pytest.raises(CheckpointError):
        Bundle.load(path)


def test_cli_backtest_with_a_tampered_bundle_is_one_line_exit_2(tmp_path, tiny_bundle, capsys):
    path = tiny_bundle.save(tmp_path / "model.pt")
    path.write_bytes(path.read_bytes()[:-100])
    code = main(["backtest", "--bundle", str(path), "--out", str(tmp_path / "report"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "report").exists()


def test_a_bundle_of_other_features_is_refused_and_its_config_is_kept(tmp_path, tiny_bundle):
    path = tiny_bundle.save(tmp_path / "model.pt")
    payload = load_payload(path)
    trained_with = from_dict(Config, tomllib.loads(payload["meta"]["config"]))  # the experiment that trained it
    assert trained_with.timing.hidden == 8
    payload["features"]["windows"]["vol_long"] = 42  # trained by a version that computed vol over 42 bars
    payload["sha256"] = digest(payload)
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="other features"):
        Bundle.load(path)
    payload["format_version"] = FORMAT_VERSION - 1  # a bundle written by an older nt_backtrader
    payload["sha256"] = digest(payload)
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="format version"):
        Bundle.load(path)
