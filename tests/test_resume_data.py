"""--resume on other data: refused in one line naming the asset; on the same bars plus appended ones, it resumes."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from nt_backtrader import run_state
from nt_backtrader.checkpoint import atomic_torch_save, digest
from nt_backtrader.cli import main
from nt_backtrader.config import Config, override, to_toml

from conftest import yahoo_csv

# train 252 + purge 5: segment 0 tests bars [257, 383), so a checkpoint after it has used bars 0..382;
# 549 bars give three segments (the last one 40 bars), and 10 appended bars still give three.
SEGMENT_0_LAST_BAR = 382
N_BARS = 549


class Killed(Exception):
    """The run stopped right after writing a checkpoint, as a killed process would."""


@pytest.fixture
def bars(sp500) -> pd.DataFrame:
    return sp500.loc["2004":].iloc[:N_BARS]


def run_args(tmp_path, csv) -> list[str]:
    config = tmp_path / "small.toml"
    config.write_text(to_toml(override(Config(), **{"walkforward.train_bars": 252, "walkforward.test_bars": 126})))
    return ["run", "--csv", str(csv), "--config", str(config), "--strategy", "sma_cross",
            "--out", str(tmp_path / "out"), "--quiet"]


def run_first_segment_only(monkeypatch, args: list[str]) -> dict:
    """Run `args` until the checkpoint after segment 0 is written; returns that checkpoint."""
    real_save = run_state.save

    def save_then_die(path, *rest):
        real_save(path, *rest)
        raise Killed

    monkeypatch.setattr(run_state, "save", save_then_die)
    with pytest.raises(Killed):
        main(args)
    monkeypatch.undo()
    return torch.load(args[args.index("--out") + 1] + "/checkpoint.pt", weights_only=True)


def test_resume_after_one_close_edited_in_the_used_bars_is_refused_naming_the_asset(tmp_path, bars, monkeypatch,
                                                                                      capsys):
    csv = tmp_path / "spx.csv"
    yahoo_csv(csv, bars)
    args = run_args(tmp_path, csv)
    state = run_first_segment_only(monkeypatch, args)
    assert (state["segments_done"], state["n_segments"]) == (1, 3)

    edited = bars.copy()
    edited.iloc[300, edited.columns.get_loc("close")] = (bars["high"].iloc[300] + bars["low"].iloc[300]) / 2
    assert edited["close"].iloc[300] != bars["close"].iloc[300]
    yahoo_csv(csv, edited)
    capsys.readouterr()
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    last_used = bars.index[SEGMENT_0_LAST_BAR].date()
    assert len(err) == 1 and f"other data (asset 'spx' has other bars up to {last_used})" in err[0]
    assert not (tmp_path / "out" / "returns.csv").exists()

    # A checkpoint from before fingerprints (no "data", a valid digest) cannot vouch for its data: refused too.
    yahoo_csv(csv, bars)
    checkpoint = tmp_path / "out" / "checkpoint.pt"
    del state["data"]
    state["sha256"] = digest(state)
    atomic_torch_save(state, checkpoint)
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "older nt_backtrader that did not record its data" in err[0]


def test_resume_on_the_same_bars_with_bars_appended_ends_as_an_uninterrupted_run(tmp_path, sp500, bars,
                                                                                  monkeypatch, capsys):
    csv = tmp_path / "spx.csv"
    yahoo_csv(csv, bars)
    args = run_args(tmp_path, csv)
    state = run_first_segment_only(monkeypatch, args)
    assert state["data"]["through"] == str(bars.index[SEGMENT_0_LAST_BAR])

    longer = sp500.loc["2004":].iloc[:N_BARS + 10]
    yahoo_csv(csv, longer)
    assert main([*args, "--resume"]) == 0
    finished = torch.load(tmp_path / "out" / "checkpoint.pt", weights_only=True)
    assert finished["segments_done"] == 3 and finished["data"]["through"] == str(longer.index[-1])

    straight = [*args[:-3], "--out", str(tmp_path / "straight"), "--quiet"]
    assert main(straight) == 0
    capsys.readouterr()
    resumed = pd.read_csv(tmp_path / "out" / "returns.csv", index_col="date")
    assert resumed.index[-1] == str(longer.index[-1].date())
    pd.testing.assert_frame_equal(resumed, pd.read_csv(tmp_path / "straight" / "returns.csv", index_col="date"),
                                  check_exact=True)


def test_fingerprint_covers_the_bars_up_to_the_last_used_one_and_every_asset(bars):
    through = bars.index[100]
    digest = run_state.fingerprint(bars, through)
    assert len(digest) == 64 and run_state.fingerprint(bars.copy(), through) == digest
    for row, same in ((101, True), (400, True), (100, False), (0, False)):
        changed = bars.copy()
        changed.iloc[row, changed.columns.get_loc("close")] += 0.01
        assert (run_state.fingerprint(changed, through) == digest) is same, row
    assert run_state.fingerprint(bars.iloc[1:], through) != digest  # a bar dropped

    recorded = run_state.data_used({"a": bars, "b": bars}, through)
    assert run_state.data_change(recorded, {"a": bars, "b": bars.copy()}) == ""
    assert run_state.data_change(recorded, {"a": bars}) == "asset 'b' is missing now"
    assert run_state.data_change(recorded, {"a": bars, "b": bars, "c": bars}) == "asset 'c' is new"
