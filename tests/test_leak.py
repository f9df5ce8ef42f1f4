"""No lookahead: any change of the bars after date T changes no order, fill or daily return up to T."""
from __future__ import annotations

import pandas as pd
import pytest

from nt_backtrader.config import Config, override
from nt_backtrader.walkforward import walk_forward

from conftest import FUTURES, assert_same_up_to

# Inside test windows, and on the last bar of one (the next segment is then all changed future).
CUTS = ["2004-09-14", "2008-09-12", "2010-06-15", "2013-01-14", "2016-06-23"]


@pytest.mark.parametrize("name", ["buy_hold", "sma_cross", "tsmom"])
def test_changed_future_after_t_leaves_everything_up_to_t_unchanged(sp500, name):
    config = override(Config(), **{"strategy.name": name, "strategy.allow_short": True})
    clean = walk_forward(sp500, config, progress=False)
    for cut in map(pd.Timestamp, CUTS):
        for future in FUTURES.values():
            assert_same_up_to(clean, walk_forward(future(sp500, cut), config, progress=False), cut)


class SpyTrader:
    """A buy-and-hold trader that records the last bar each fit was handed."""

    def __init__(self, config):
        from nt_backtrader.traders import classical_trader

        self.inner = classical_trader("buy_hold", config)
        self.name, self.strategy, self.warmup_bars = "spy", self.inner.strategy, self.inner.warmup_bars
        self.seen = []

    def fit(self, train, segment, calendar):
        self.seen.append((max(frame.index[-1] for frame in train.values()), segment))
        return self.inner.fit(train, segment, calendar)

    def feedback(self, segment, result, windows):
        return {}


def test_each_fit_sees_its_train_window_only_and_the_purge_gap_separates_it(sp500):
    config = override(Config(), **{"walkforward.purge_bars": 7})
    spy = SpyTrader(config)
    walk_forward(sp500, config, trader=spy, progress=False)
    assert len(spy.seen) == 15
    for last_seen, seg in spy.seen:
        assert last_seen == sp500.index[seg.train_end - 1]
        assert seg.test_start - seg.train_end == 7
