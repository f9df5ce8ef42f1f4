"""Walk-forward splitter: train window, validation tail, purge gap, test window, per segment.

Positions are integer offsets into the bar index; every window is half-open [start, end).
Test windows never overlap and tile the out-of-sample period without holes.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .config import WalkForwardConfig

MIN_LAST_WINDOW = 21  # a shorter remainder is folded into the previous test window


@dataclass(frozen=True)
class Segment:
    index: int
    train_start: int
    val_start: int      # the validation tail is [val_start, train_end)
    train_end: int      # purge gap is [train_end, test_start)
    test_start: int
    test_end: int

    @property
    def n_test(self) -> int:
        return self.test_end - self.test_start

    def describe(self, dates: pd.DatetimeIndex) -> dict:
        day = lambda i: str(dates[i].date())  # noqa: E731
        return {"segment": self.index, "train_start": day(self.train_start), "train_end": day(self.train_end - 1),
                "val_start": day(self.val_start), "test_start": day(self.test_start),
                "test_end": day(self.test_end - 1), "n_train": self.train_end - self.train_start,
                "n_test": self.n_test}


def bars_needed(config: WalkForwardConfig) -> int:
    """The fewest bars that give one full segment."""
    return config.train_bars + config.purge_bars + config.test_bars


def split(n_bars: int, config: WalkForwardConfig) -> list[Segment]:
    """The segments of `n_bars` bars; `config`'s values were checked when it was made (config.check_walkforward)."""
    first_test = config.train_bars + config.purge_bars
    starts = list(range(first_test, n_bars, config.test_bars))
    if len(starts) > 1 and n_bars - starts[-1] < MIN_LAST_WINDOW:
        starts.pop()
    ends = starts[1:] + [n_bars]
    return [segment_at(k, test_start, test_end, config) for k, (test_start, test_end) in enumerate(zip(starts, ends))]


def segment_at(index: int, test_start: int, test_end: int, config: WalkForwardConfig) -> Segment:
    """Segment `index` whose test window is [test_start, test_end): its train window ends a purge gap
    before, and starts at bar 0 (expanding) or train_bars earlier (rolling). `nt-backtrader train` and
    `update` cut their segment with this too, at the bar after the last one."""
    train_end = test_start - config.purge_bars
    train_start = 0 if config.window == "expanding" else max(0, train_end - config.train_bars)
    val_start = train_end - config.validation_bars(train_end - train_start)
    return Segment(index, train_start, val_start, train_end, test_start, test_end)
