"""Performance numbers of a daily return series: Sharpe, drawdown, CAGR, volatility, PSR, DSR, turnover.

Conventions: simple daily returns, 252 periods a year, Sharpe with the sample standard
deviation (ddof=1) and a zero risk-free rate, CAGR over trading days (n / 252 years), as QuantStats computes it.

These stay the project's own, and tests/test_metrics_quantstats.py checks that they equal QuantStats' (the
tear-sheet's numbers: quantstats.stats.sharpe, cagr, max_drawdown, volatility, probabilistic_sharpe_ratio) to 6
decimals on the embedded S&P 500's, a strategy's and a seeded random series. Why not call QuantStats: `sharpe`
ranks members, rule options and the tuner's candidates inside training, on plain arrays with no dates, where
QuantStats wants a dated pandas Series (its drawdown adds a day before the first); and QuantStats has changed
these definitions between releases (CAGR over calendar days until 0.0.70, the drawdown's first-day baseline and
PSR's kurtosis in 0.0.82), which must not move a training decision. On purpose, ours differ in three places:
fewer than 2 returns give a Sharpe of 0.0 (QuantStats: NaN), as a training decision needs a number; PSR takes
the population skew and kurtosis (scipy) where QuantStats takes pandas' bias-corrected ones, the same formula
otherwise (equal to 6 decimals given the same moments; as they are, a few 1e-6 apart on 4 to 6 years, 1e-7 on
20); NaN is not skipped (QuantStats skips it): our series have none. DSR and turnover have no QuantStats twin.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

PERIODS = 252


def sharpe(returns: pd.Series | np.ndarray, periods: int = PERIODS) -> float:
    """Annual Sharpe ratio; 0.0 for fewer than 2 returns or no volatility. The one Sharpe of the project:
    the report prints it and training ranks with it (members, rule options, the tuner's candidates), so its
    operations and their order are fixed, any change moves both."""
    r = np.asarray(returns, dtype=float)
    sd = r.std(ddof=1) if len(r) > 1 else 0.0  # no std of one number: numpy would warn and give NaN
    return float(r.mean() / sd * math.sqrt(periods)) if sd > 0 else 0.0


def equity_curve(returns: pd.Series) -> np.ndarray:
    """Growth of 1 unit, starting with the 1 held before the first return."""
    return np.concatenate([[1.0], np.cumprod(1.0 + np.asarray(returns, dtype=float))])


def max_drawdown(returns: pd.Series) -> float:
    """Largest peak-to-trough loss of the equity curve, as a negative fraction."""
    equity = equity_curve(returns)
    return float((equity / np.maximum.accumulate(equity) - 1.0).min())


def cagr(returns: pd.Series, periods: int = PERIODS) -> float:
    years = len(returns) / periods
    return float(equity_curve(returns)[-1] ** (1.0 / years) - 1.0) if years > 0 else 0.0


def annual_volatility(returns: pd.Series, periods: int = PERIODS) -> float:
    return float(np.asarray(returns, dtype=float).std(ddof=1) * math.sqrt(periods))


def rescaled_to_vol(returns: pd.Series, target_vol: float, periods: int = PERIODS) -> pd.Series:
    """The daily returns x target_vol / their realized annual volatility: every strategy at the same
    risk, ex post (the scale uses the whole sample, so it is a way to compare, not a tradable rule).
    Sharpe is unchanged; return and drawdown become comparable. A series with no volatility stays as it is.
    """
    vol = annual_volatility(returns, periods)
    return returns * (target_vol / vol) if vol > 0 else returns.copy()


def psr(returns: pd.Series, sr_benchmark: float = 0.0) -> float:
    """Probabilistic Sharpe ratio (Bailey and Lopez de Prado 2012): P(true SR > sr_benchmark).

    Both Sharpe ratios are per period (daily), not annualised; skew and kurtosis of the
    returns widen the standard error of the estimate.
    """
    r = np.asarray(returns, dtype=float)
    n = len(r)
    if n < 3 or r.std(ddof=1) == 0:
        return float("nan")
    from scipy import stats  # here, not at the top: scipy.stats takes a second to import, `signal` has 5

    sr = r.mean() / r.std(ddof=1)
    skew = stats.skew(r)
    kurt = stats.kurtosis(r, fisher=False)
    denom = math.sqrt(max(1e-12, 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr**2))
    return float(stats.norm.cdf((sr - sr_benchmark) * math.sqrt(n - 1) / denom))


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """Expected maximum of n_trials daily Sharpe ratios under the null (Bailey and Lopez de Prado 2014)."""
    if n_trials <= 1:
        return 0.0
    from scipy import stats

    gamma = 0.5772156649015329  # Euler-Mascheroni
    z1 = stats.norm.ppf(1.0 - 1.0 / n_trials)
    z2 = stats.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(sr_variance) * ((1.0 - gamma) * z1 + gamma * z2))


def dsr(returns: pd.Series, n_trials: int, sr_variance: float | None = None) -> float:
    """Deflated Sharpe ratio: PSR against the best Sharpe that n_trials of pure luck would give.

    Without the trials' Sharpe variance, it is taken as the variance of the Sharpe estimate
    itself, 1 / (n - 1): the spread that luck alone produces on a sample of this length.
    """
    n = len(returns)
    variance = sr_variance if sr_variance is not None else 1.0 / max(1, n - 1)
    return psr(returns, expected_max_sharpe(n_trials, variance))


def turnover(fills: pd.DataFrame, equity: pd.Series, periods: int = PERIODS) -> float:
    """Annual one-way turnover: traded value over equity, summed, per year (1.0 = the book once)."""
    if fills.empty or equity.empty:
        return 0.0
    at_fill = equity.reindex(pd.DatetimeIndex(fills["date"]), method="ffill").to_numpy()
    traded = (fills["size"].abs() * fills["price"]).to_numpy() / at_fill
    return float(traded.sum() / (len(equity) / periods))


def summary(returns: pd.Series, fills: pd.DataFrame, equity: pd.Series, n_trades: int) -> dict:
    return {"sharpe": sharpe(returns), "cagr": cagr(returns), "max_drawdown": max_drawdown(returns),
            "volatility": annual_volatility(returns), "psr": psr(returns),
            "turnover": turnover(fills, equity), "n_trades": int(n_trades),
            "start": str(returns.index[0].date()), "end": str(returns.index[-1].date()),
            "n_days": int(len(returns))}
