"""Walk-forward splitter: tiling, purge gap, validation tail, expanding and rolling windows."""
from __future__ import annotations

import pytest

from nt_backtrader.config import WalkForwardConfig
from nt_backtrader.errors import ConfigError
from nt_backtrader.splits import MIN_LAST_WINDOW, split


def test_default_split_of_the_embedded_data_gives_15_yearly_segments():
    segments = split(5031, WalkForwardConfig())
    assert len(segments) == 15
    assert segments[0].test_start == 1260 + 5 and segments[-1].test_end == 5031
    assert sum(s.n_test for s in segments) == 5031 - 1265  # 3766 days, about 15 years


@pytest.mark.parametrize("window", ["expanding", "rolling"])
def test_test_windows_tile_without_holes_and_train_never_touches_them(window):
    config = WalkForwardConfig(train_bars=300, test_bars=100, purge_bars=7, val_fraction=0.25, window=window)
    segments = split(1234, config)
    for before, after in zip(segments, segments[1:]):
        assert before.test_end == after.test_start  # no hole, no overlap
    for s in segments:
        assert s.train_start <= s.val_start < s.train_end
        assert s.test_start - s.train_end == 7  # the purge gap
        assert s.train_end - s.val_start == round(0.25 * (s.train_end - s.train_start))
        if window == "rolling":
            assert s.train_end - s.train_start == 300
        else:
            assert s.train_start == 0


def test_a_short_remainder_joins_the_last_window():
    config = WalkForwardConfig(train_bars=100, test_bars=50, purge_bars=0)
    segments = split(100 + 2 * 50 + MIN_LAST_WINDOW - 1, config)
    assert [s.n_test for s in segments] == [50, 50 + MIN_LAST_WINDOW - 1]


def test_bad_settings_are_rejected():
    with pytest.raises(ConfigError, match="val_fraction"):
        split(1000, WalkForwardConfig(val_fraction=0.7))
    with pytest.raises(ConfigError, match="train_bars must be >= 20"):
        split(1000, WalkForwardConfig(train_bars=19))
