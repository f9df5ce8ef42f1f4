"""Performance metrics on numbers small enough to check by hand."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from nt_backtrader import metrics


def test_sharpe_drawdown_cagr_by_hand():
    r = pd.Series([0.10, -0.20, 0.05, 0.10])
    assert metrics.sharpe(r, periods=1) == pytest.approx(0.0125 / r.std(ddof=1))
    # 1 -> 1.1 -> 0.88 -> 0.924 -> 1.0164: the trough 0.88 is 20% under the 1.1 peak.
    assert metrics.max_drawdown(r) == pytest.approx(-0.20)
    assert metrics.cagr(r, periods=4) == pytest.approx(1.1 * 0.8 * 1.05 * 1.1 - 1)
    assert metrics.max_drawdown(pd.Series([-0.1, 0.05])) == pytest.approx(-0.1)  # a loss on day one counts


def test_sharpe_is_bit_for_bit_the_one_training_ranks_with():
    """Members, rule options and the tuner's candidates are ranked by metrics.sharpe: mean / std(ddof=1) * sqrt(252)
    in that order, to the last bit (another order moves a tie-break, then a run's returns); fewer than 2
    returns or none moving give 0.0, without numpy's warning."""
    rng = np.random.default_rng(3)
    for x in (rng.normal(0.0004, 0.01, 250), np.where(rng.random(60) < 0.5, 0.0, rng.normal(0, 0.02, 60))):
        assert metrics.sharpe(x) == float(x.mean() / x.std(ddof=1) * math.sqrt(252))
        assert metrics.sharpe(pd.Series(x)) == metrics.sharpe(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert metrics.sharpe(np.array([])) == metrics.sharpe(np.array([0.01])) == metrics.sharpe(np.zeros(9)) == 0.0


def test_psr_is_a_probability_that_grows_with_evidence():
    rng = np.random.default_rng(0)
    daily = pd.Series(rng.normal(0.0005, 0.01, 5000))  # true annual Sharpe about 0.8
    assert metrics.psr(daily) > 0.99 > metrics.psr(daily[:250]) > 0.5
    assert metrics.psr(-daily) < 0.01
    # With no skew or excess kurtosis the formula reduces to Phi(SR * sqrt(n - 1)).
    sr = daily.mean() / daily.std()
    assert metrics.psr(daily) == pytest.approx(0.5 * (1 + math.erf(sr * math.sqrt(4999) / math.sqrt(2))), abs=0.01)


def test_deflated_sharpe_penalises_many_trials():
    rng = np.random.default_rng(1)
    daily = pd.Series(rng.normal(0.0004, 0.01, 2500))
    assert metrics.dsr(daily, 1) == pytest.approx(metrics.psr(daily))
    assert metrics.dsr(daily, 100) < metrics.dsr(daily, 10) < metrics.psr(daily)


def test_turnover_counts_the_book_traded_per_year():
    dates = pd.bdate_range("2020-01-01", periods=504)
    equity = pd.Series(100.0, index=dates)
    fills = pd.DataFrame({"date": [dates[0], dates[300]], "size": [1.0, -1.0], "price": [100.0, 100.0]})
    assert metrics.turnover(fills, equity) == pytest.approx(1.0)  # in and out once over two years
