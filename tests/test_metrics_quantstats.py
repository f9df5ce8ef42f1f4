"""Our metrics equal QuantStats' (the tear-sheet's numbers) to 6 decimals on real and random return series.

metrics.py keeps its own numpy versions (its docstring says why); these tests hold them to quantstats.stats:
same Sharpe (ddof=1, 252 periods, rf 0), CAGR over trading days (n / 252 years: QuantStats counts periods
since 0.0.70, before it divided calendar days by 252), drawdown from the 1 held before the first return, and
the same PSR formula (ours takes the population skew and kurtosis, QuantStats pandas' bias-corrected ones).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import quantstats as qs
from scipy import stats as scipy_stats

from nt_backtrader import metrics
from nt_backtrader.plugin import SmaCross, run_backtest

SIX_DECIMALS = 5e-7


@pytest.fixture(scope="module")
def series(sp500, sp500_short) -> dict[str, pd.Series]:
    """The index's 20 years of daily returns; SMA crossover's on 2004-2009 (flat for weeks, then in the
    market, costs on); a seeded fat-tailed random walk whose first day is a loss (the drawdown's baseline)."""
    rng = np.random.default_rng(0)
    random = pd.Series(rng.standard_t(4, 1000) * 0.01 + 0.0003, index=pd.bdate_range("2015-01-01", periods=1000))
    random.iloc[0] = -0.03
    return {"sp500": sp500["close"].pct_change().dropna(), "sma_cross": run_backtest(sp500_short, SmaCross).returns,
            "random": random}


@pytest.mark.parametrize("name", ["sp500", "sma_cross", "random"])
def test_sharpe_cagr_drawdown_volatility_equal_quantstats(series, name):
    r = series[name]
    assert len(r) >= 1000 and r.std() > 0
    assert metrics.sharpe(r) == pytest.approx(qs.stats.sharpe(r, rf=0.0, periods=252), abs=SIX_DECIMALS)
    assert metrics.cagr(r) == pytest.approx(qs.stats.cagr(r, periods=252), abs=SIX_DECIMALS)
    assert metrics.max_drawdown(r) == pytest.approx(qs.stats.max_drawdown(r), abs=SIX_DECIMALS)
    assert metrics.annual_volatility(r) == pytest.approx(qs.stats.volatility(r, periods=252), abs=SIX_DECIMALS)
    # the report's "at the volatility target" columns are the same metrics of a rescaled series
    rescaled = metrics.rescaled_to_vol(r, 0.10)
    assert metrics.cagr(rescaled) == pytest.approx(qs.stats.cagr(rescaled), abs=SIX_DECIMALS)
    assert metrics.max_drawdown(rescaled) == pytest.approx(qs.stats.max_drawdown(rescaled), abs=SIX_DECIMALS)


def test_the_series_are_not_trivial(series):
    """The S&P 500's numbers by hand: 1999-2018, Sharpe 0.28, 3.6% a year, -56.8% from 2007 to 2009."""
    sp = series["sp500"]
    assert (sp.index[0], sp.index[-1], len(sp)) == (pd.Timestamp("1999-01-05"), pd.Timestamp("2018-12-31"), 5030)
    assert metrics.sharpe(sp) == pytest.approx(0.282739, abs=1e-6)
    assert metrics.cagr(sp) == pytest.approx((1 + sp).prod() ** (252 / 5030) - 1, abs=1e-12)
    assert metrics.max_drawdown(sp) == pytest.approx(-0.567754, abs=1e-6)
    assert (series["sma_cross"] == 0).mean() > 0.3  # out of the market for long stretches
    assert metrics.max_drawdown(series["random"][:1]) == pytest.approx(-0.03)


@pytest.mark.parametrize("name", ["sp500", "sma_cross", "random"])
def test_psr_is_quantstats_formula_with_population_moments(series, name, monkeypatch):
    r = series[name]
    # QuantStats' PSR with its skew and kurtosis replaced by the population ones we use: the same number
    monkeypatch.setattr(qs.stats, "skew", lambda x, prepare_returns=True: scipy_stats.skew(x))
    monkeypatch.setattr(qs.stats, "kurtosis", lambda x, prepare_returns=True: scipy_stats.kurtosis(x))
    assert metrics.psr(r) == pytest.approx(qs.stats.probabilistic_sharpe_ratio(r), abs=SIX_DECIMALS)
    monkeypatch.undo()
    # with its own bias-corrected moments, QuantStats differs by a few 1e-6 on these lengths
    assert metrics.psr(r) == pytest.approx(qs.stats.probabilistic_sharpe_ratio(r), abs=1e-5)


def test_where_we_differ_on_purpose():
    """Fewer than 2 returns: Sharpe 0.0, a number a training decision can rank (QuantStats: NaN)."""
    one = pd.Series([0.01], index=pd.bdate_range("2020-01-01", periods=1))
    assert metrics.sharpe(one) == 0.0 and np.isnan(qs.stats.sharpe(one))
    assert metrics.sharpe(np.array([])) == 0.0
