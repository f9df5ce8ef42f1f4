"""The deep-momentum core's scale-free inputs and the literature's classical positions, from closes alone.

One place, as the Momentum Transformer's code keeps them (Wood et al. 2021), so the network and
its baselines share one volatility estimate and one volatility scaling:
- `ex_ante_vol`: an EWMA (span 60) of the daily returns' standard deviation, annualised;
- `inputs`: returns over 1, 21, 63, 126 and 252 days divided by the daily ex-ante volatility
  x sqrt(horizon), the MACD signals of Baz et al. (2015) at (8, 24), (16, 48), (32, 96), and a
  cheap regime proxy (the log ratio of 21-day to 252-day realised volatility);
- `long_only`, `tsmom` (Moskowitz, Ooi and Pedersen 2012), `macd` (Baz et al. 2015): positions
  in [-1, 1]; `vol_scale` turns one into a weight (position value / equity).

Every value at bar t uses bars <= t only, and none depends on where the array starts once its
bars are present: each statistic is computed over a fixed trailing window, the EWMAs included
(each keeps a fixed number of bars, its weights renormalised over them). Simple returns, as the
literature's code uses. Pure numpy: no pandas, no torch, no backtrader.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .features import ANNUAL, _lag, _rolling

VOL_SPAN = 60                # the ex-ante volatility's EWMA span (alpha = 2 / (span + 1))
VOL_SPANS_KEPT = 4           # its EWMA keeps 4 spans of returns: the weights dropped are < e^-7.9 of the newest
VOL_TARGET = 0.15            # annualised volatility each position is scaled to
MAX_LEVERAGE = 1.0           # cap on one asset's |weight| (target / volatility), as StrategyConfig.max_leverage
TSMOM_LOOKBACK = 252
RETURN_HORIZONS = (1, 21, 63, 126, 252)
MACD_PAIRS = ((8, 24), (16, 48), (32, 96))
# Baz et al.'s EWMAs of timescale T have alpha = 1 / T (half-life log(0.5) / log(1 - 1/T)). Each keeps
# 4 T bars, dropping (1 - 1/T)^(4T) ~ e^-4 ~ 1.8% of its weight. Against pandas' untruncated EWMAs on
# sp500 1999-2018 the combined position differs by 0.035 on average (at most 0.12; Y correlates 0.996);
# keeping 6 T would bring that to 0.006 (0.02) at the price of 192 more warm-up bars (MACD_BARS 827).
MACD_TIMESCALES_KEPT = 4
MACD_PRICE_WINDOW = 63       # q = MACD / the price's standard deviation over 63 bars
MACD_SIGNAL_WINDOW = 252     # Y = q / q's standard deviation over 252 bars
MACD_RESPONSE_SCALE = 0.89   # phi(Y) = Y exp(-Y^2 / 4) / 0.89: at most 0.96 in absolute value
REGIME_SHORT, REGIME_LONG = 21, 252
# TMT winsorises the price at its EWMA mean +- 5 EWMA standard deviations (an infinite recursion);
# clipping each input at +-5 bounds the outliers the same way and stays independent of the start.
WINSOR = 5.0

TREND_INPUTS = tuple(f"ret_{h}d" for h in RETURN_HORIZONS) + tuple(f"macd_{short}_{long}" for short, long in MACD_PAIRS)
REGIME_INPUTS = ("vol_ratio",)   # optional: log(21-day / 252-day realised volatility of daily returns)
INPUTS = TREND_INPUTS + REGIME_INPUTS

VOL_BARS = VOL_SPANS_KEPT * VOL_SPAN + 1  # closes ex_ante_vol needs at the default span, the current bar included
MACD_BARS = max(MACD_TIMESCALES_KEPT * max(long for _, long in MACD_PAIRS), MACD_PRICE_WINDOW) + MACD_SIGNAL_WINDOW - 1
INPUT_BARS = max(max(RETURN_HORIZONS) + 1, VOL_BARS, MACD_BARS, REGIME_LONG + 1)  # closes a row of inputs needs


def simple_returns(close: np.ndarray, horizon: int = 1) -> np.ndarray:
    """(n,) close[t] / close[t - horizon] - 1; NaN for the first `horizon` bars."""
    close = np.asarray(close, dtype=float)
    return close / _lag(close, horizon) - 1.0


def held_returns(open_: np.ndarray) -> np.ndarray:
    """(n,) open[t+2] / open[t+1] - 1: what a weight decided on bar t's close earns, filled at the
    next open and held to the open after (the position trainer's target, as the strategy trades);
    NaN for the last two bars."""
    open_ = np.asarray(open_, dtype=float)
    out = np.full(len(open_), np.nan)
    out[:-2] = open_[2:] / open_[1:-1] - 1.0
    return out


def net_returns(weight: np.ndarray, earned: np.ndarray, cost: float) -> np.ndarray:
    """(..., n) what weights decided row by row return net of costs: weight_t x earned_t less
    cost x |weight_t - weight_{t-1}|, flat before the first row. The one booking of the core's
    trades: the validation Sharpe that stops and ranks the nets and the members' records that the
    meta-learner and the tuner learn from. weight (..., n); earned (n,); cost per side."""
    change = np.abs(np.diff(weight, axis=-1, prepend=0.0))
    return weight * earned - cost * change


def next_returns(close: np.ndarray) -> np.ndarray:
    """(n,) r_{t+1} = close[t+1] / close[t] - 1, NaN at the last bar: the training target.

    The network is credited close to close; a backtest decides on the close and fills at the
    next open, so what it earns differs by the overnight gap: the backtest measures the real one.
    """
    close = np.asarray(close, dtype=float)
    out = np.full(len(close), np.nan)
    out[:-1] = close[1:] / close[:-1] - 1.0
    return out


def _ewm_windows(x: np.ndarray, alpha: float, bars: int) -> tuple[np.ndarray, np.ndarray]:
    """The (n - bars + 1, bars) trailing windows of x and their EWMA weights, normalised (newest last)."""
    weights = (1.0 - alpha) ** np.arange(bars - 1, -1, -1.0)
    return sliding_window_view(x, bars), weights / weights.sum()


def _ewma(x: np.ndarray, alpha: float, bars: int) -> np.ndarray:
    """(n,) EWMA of the trailing `bars` values (pandas' adjust=True over that window); NaN before."""
    out = np.full(len(x), np.nan)
    if len(x) >= bars:
        view, weights = _ewm_windows(x, alpha, bars)
        out[bars - 1:] = view @ weights
    return out


def _ewm_std(x: np.ndarray, alpha: float, bars: int) -> np.ndarray:
    """(n,) exponentially weighted standard deviation of the trailing `bars` values, bias-corrected as
    pandas' ewm(...).std() computes it over that window; NaN before."""
    out = np.full(len(x), np.nan)
    if len(x) >= bars:
        view, weights = _ewm_windows(x, alpha, bars)
        mean = view @ weights
        variance = (view - mean[:, None]) ** 2 @ weights / (1.0 - np.sum(weights ** 2))
        out[bars - 1:] = np.sqrt(variance)
    return out


def _std(x: np.ndarray, window: int) -> np.ndarray:
    return _rolling(x, window, lambda w, axis: np.std(w, axis=axis, ddof=1))


def _ratio(a: np.ndarray, b: np.ndarray, flat: float = 0.0) -> np.ndarray:
    """a / b; `flat` where b is 0 (a price that did not move over the window has no signal); NaN stays NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, flat, a / b)


def daily_ex_ante_vol(close: np.ndarray, span: int = VOL_SPAN) -> np.ndarray:
    """(n,) the daily returns' EWMA standard deviation over the last VOL_SPANS_KEPT x span returns;
    NaN until VOL_SPANS_KEPT x span + 1 bars."""
    return _ewm_std(simple_returns(close), 2.0 / (span + 1.0), VOL_SPANS_KEPT * span)


def ex_ante_vol(close: np.ndarray, span: int = VOL_SPAN) -> np.ndarray:
    """(n,) annualised ex-ante volatility at each bar (the literature's sigma_t); NaN until enough bars."""
    return daily_ex_ante_vol(close, span) * ANNUAL


def vol_scale(close: np.ndarray, target: float = VOL_TARGET, span: int = VOL_SPAN,
              cap: float = MAX_LEVERAGE) -> np.ndarray:
    """(n,) target / ex-ante volatility, at most `cap`: the factor that turns a position in [-1, 1]
    into one asset's weight (position value / equity); NaN until the volatility is ready."""
    with np.errstate(divide="ignore"):
        return np.minimum(cap, target / ex_ante_vol(close, span))


def macd_signal(close: np.ndarray, short: int, long: int) -> np.ndarray:
    """(n,) Baz et al.'s normalised MACD Y: q = (EWMA_short - EWMA_long) of the price / its 63-bar
    standard deviation, Y = q / q's 252-bar standard deviation."""
    close = np.asarray(close, dtype=float)
    fast = _ewma(close, 1.0 / short, MACD_TIMESCALES_KEPT * short)
    slow = _ewma(close, 1.0 / long, MACD_TIMESCALES_KEPT * long)
    q = _ratio(fast - slow, _std(close, MACD_PRICE_WINDOW))
    return _ratio(q, _std(q, MACD_SIGNAL_WINDOW))


def macd_response(y: np.ndarray) -> np.ndarray:
    """Baz et al.'s response phi(Y) = Y exp(-Y^2 / 4) / 0.89: odd, largest at |Y| = sqrt(2), where it
    is 0.96; strong trends are faded rather than followed further."""
    y = np.asarray(y, dtype=float)
    return y * np.exp(-y ** 2 / 4.0) / MACD_RESPONSE_SCALE


def inputs(close: np.ndarray) -> np.ndarray:
    """(n, len(INPUTS)) float64 in [-WINSOR, WINSOR]; rows before INPUT_BARS - 1 are NaN."""
    close = np.asarray(close, dtype=float)
    sigma = daily_ex_ante_vol(close)  # (n,) daily, not annualised: a 1-day return is then ~N(0, 1)
    columns = [_ratio(simple_returns(close, h), sigma * np.sqrt(h)) for h in RETURN_HORIZONS]
    columns += [macd_signal(close, short, long) for short, long in MACD_PAIRS]
    daily = simple_returns(close)
    with np.errstate(divide="ignore"):
        columns.append(np.log(_ratio(_std(daily, REGIME_SHORT), _std(daily, REGIME_LONG), flat=1.0)))
    table = np.clip(np.stack(columns, axis=1), -WINSOR, WINSOR)  # (n, F)
    table[:INPUT_BARS - 1] = np.nan
    return table


def long_only(close: np.ndarray) -> np.ndarray:
    """(n,) always long: 1 at every bar."""
    return np.ones(len(close))


def tsmom(close: np.ndarray, lookback: int = TSMOM_LOOKBACK) -> np.ndarray:
    """(n,) the sign of the `lookback`-bar return: +1, -1 (0 if unchanged); NaN until lookback + 1 bars."""
    return np.sign(simple_returns(close, lookback))


def macd(close: np.ndarray) -> np.ndarray:
    """(n,) Baz et al.'s combined trend position: phi(Y) averaged over the three MACD pairs, in
    (-0.97, 0.97); NaN until MACD_BARS bars."""
    return np.mean([macd_response(macd_signal(close, short, long)) for short, long in MACD_PAIRS], axis=0)


CLASSICAL_POSITIONS = {"long_only": long_only, "tsmom": tsmom, "macd": macd}


def ready_bars(kind: str, lookback: int = TSMOM_LOOKBACK, span: int = VOL_SPAN) -> int:
    """Closes a vol-scaled position of `kind` needs at its first value, the current bar included."""
    position = {"long_only": 1, "tsmom": lookback + 1, "macd": MACD_BARS}[kind]
    return max(position, VOL_SPANS_KEPT * span + 1)
