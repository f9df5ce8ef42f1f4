"""No lookahead: noise after date T changes no order, fill or daily return up to T."""
from __future__ import annotations

import pandas as pd
import pytest

from conftest import with_noise_after
from nt_backtrader.config import Config, override
from nt_backtrader.walkforward import walk_forward

# One cut inside a test window, one on the last bar of a test window (next segment all noise).
CUTS = ["2010-06-15", "2013-01-14"]


@pytest.mark.parametrize("name", ["buy_hold", "sma_cross", "tsmom"])
def test_noise_after_t_leaves_everything_up_to_t_unchanged(sp500, name):
    config = override(Config(), **{"strategy.name": name, "strategy.allow_short": True})
    clean = walk_forward(sp500, config, progress=False)
    for cut in map(pd.Timestamp, CUTS):
        noisy = walk_forward(with_noise_after(sp500, cut), config, progress=False)
        before = clean.returns.index <= cut
        pd.testing.assert_series_equal(clean.returns[before], noisy.returns[noisy.returns.index <= cut],
                                       check_exact=True)
        for table in ("orders", "fills"):
            mine, theirs = getattr(clean, table), getattr(noisy, table)
            pd.testing.assert_frame_equal(mine[mine["date"] <= cut].reset_index(drop=True),
                                          theirs[theirs["date"] <= cut].reset_index(drop=True), check_exact=True)
        # The noise did reach the walk-forward: what comes after T differs.
        assert not clean.returns[~before].equals(noisy.returns[noisy.returns.index > cut])
