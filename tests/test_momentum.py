"""The deep-momentum inputs and the classical positions (momentum.py), their backtrader baselines
(VolScaled) and the comparison at the same realized volatility: numbers checked by hand, no
lookahead, no dependence on where the data starts."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nt_backtrader import metrics, momentum
from nt_backtrader.config import Config, override
from nt_backtrader.data import load_ohlcv
from nt_backtrader.errors import ConfigError
from nt_backtrader.plugin import run_backtest
from nt_backtrader.plugin.classical import VolScaled
from nt_backtrader.report import at_vol_target, comparison_frame, summary_html
from nt_backtrader.traders import make_trader
from nt_backtrader.walkforward import walk_forward

ANNUAL = math.sqrt(252)


@pytest.fixture(scope="module")
def close() -> np.ndarray:
    return load_ohlcv(dataset="sp500")["close"].to_numpy()


def every_output(close: np.ndarray) -> dict[str, np.ndarray]:
    return {"inputs": momentum.inputs(close), "vol": momentum.ex_ante_vol(close),
            "scale": momentum.vol_scale(close)} | {
        name: position(close) for name, position in momentum.CLASSICAL_POSITIONS.items()}


def test_ex_ante_vol_by_hand():
    close = np.array([100.0, 101, 99, 102, 100, 103, 101, 104, 102, 105])
    vol = momentum.ex_ante_vol(close, span=2)  # alpha 2/3: weights 1, 1/3, 1/9, ... over the last 8 returns
    assert np.isnan(vol[:8]).all() and np.isfinite(vol[8:]).all()
    returns = close[2:] / close[1:-1] - 1.0  # the 8 returns that end at the last bar
    weights = (1 / 3) ** np.arange(7, -1, -1)
    weights /= weights.sum()
    mean = weights @ returns
    variance = weights @ (returns - mean) ** 2 / (1 - weights @ weights)  # pandas' bias correction
    assert vol[9] == pytest.approx(math.sqrt(variance) * ANNUAL, rel=1e-12)
    assert vol[9] == pytest.approx(pd.Series(returns).ewm(span=2).std().iloc[-1] * ANNUAL, rel=1e-12)


def test_a_row_of_inputs_is_the_vol_normalised_returns(close):
    table = momentum.inputs(close)
    assert table.shape == (len(close), len(momentum.INPUTS)) and table.dtype == np.float64
    assert np.isnan(table[:momentum.INPUT_BARS - 1]).all() and np.isfinite(table[momentum.INPUT_BARS - 1:]).all()
    assert np.abs(table[momentum.INPUT_BARS - 1:]).max() <= momentum.WINSOR
    t = 3000
    # the daily ex-ante volatility at t: pandas' EWMA (span 60) over the 240 returns that end at t
    returns = pd.Series(close).pct_change()
    sigma = returns.iloc[t - 239:t + 1].ewm(span=60).std().iloc[-1]
    row = dict(zip(momentum.INPUTS, table[t]))
    assert row["ret_1d"] == pytest.approx((close[t] / close[t - 1] - 1) / sigma, rel=1e-9)
    assert row["ret_252d"] == pytest.approx((close[t] / close[t - 252] - 1) / (sigma * math.sqrt(252)), rel=1e-9)
    short, long = returns.iloc[t - 20:t + 1].std(), returns.iloc[t - 251:t + 1].std()
    assert row["vol_ratio"] == pytest.approx(math.log(short / long), rel=1e-9)
    # the truncated EWMA is close to the untruncated one the literature's code uses
    assert momentum.ex_ante_vol(close)[t] == pytest.approx(returns.ewm(span=60).std().iloc[t] * ANNUAL, rel=3e-3)


def test_macd_is_baz_et_al(close):
    y = momentum.macd_signal(close, 8, 24)
    t = 3000

    def q(s):  # EWMAs with alpha = 1 / timescale over 4 timescales of closes, over the price's 63-bar std
        fast = pd.Series(close[s - 31:s + 1]).ewm(alpha=1 / 8).mean().iloc[-1]
        slow = pd.Series(close[s - 95:s + 1]).ewm(alpha=1 / 24).mean().iloc[-1]
        return (fast - slow) / pd.Series(close[s - 62:s + 1]).std()

    qs = np.array([q(s) for s in range(t - 251, t + 1)])  # the 252 q's that Y's denominator spans
    assert y[t] == pytest.approx(qs[-1] / qs.std(ddof=1), rel=1e-9)

    # against pandas' untruncated EWMAs (what the Momentum Transformer's code computes): the same signal
    def untruncated(short, long):
        prices = pd.Series(close)
        q = (prices.ewm(alpha=1 / short).mean() - prices.ewm(alpha=1 / long).mean()) / prices.rolling(63).std()
        return (q / q.rolling(252).std()).to_numpy()
    reference = np.mean([momentum.macd_response(untruncated(s, long)) for s, long in momentum.MACD_PAIRS], axis=0)
    ours = momentum.macd(close)
    ready = slice(1500, None)
    assert np.mean(np.abs(ours[ready] - reference[ready])) < 0.05
    assert np.corrcoef(ours[ready], reference[ready])[0, 1] > 0.99


def test_macd_response_is_odd_zero_at_zero_and_largest_at_root_two():
    assert momentum.macd_response(0.0) == 0.0
    y = np.array([0.3, 1.0, 2.5])
    np.testing.assert_array_equal(momentum.macd_response(-y), -momentum.macd_response(y))
    assert momentum.macd_response(math.sqrt(2)) == pytest.approx(math.sqrt(2) * math.exp(-0.5) / 0.89)  # 0.9638
    assert momentum.macd_response(2.0) == pytest.approx(2 * math.exp(-1) / 0.89)  # 0.8267: faded past sqrt(2)


def test_tsmom_follows_the_sign_of_the_lookback_return_and_long_only_is_one():
    close = np.array([1.0, 2, 3, 4, 5, 4, 3, 2, 1])  # rises, then falls
    np.testing.assert_array_equal(momentum.tsmom(close, lookback=3), [np.nan] * 3 + [1, 1, 1, -1, -1, -1])
    np.testing.assert_array_equal(momentum.long_only(close), np.ones(9))


def test_next_returns_and_vol_scale():
    np.testing.assert_allclose(momentum.next_returns(np.array([100.0, 110, 99])), [0.1, -0.1, np.nan])
    rng = np.random.default_rng(0)
    calm = 100 * np.cumprod(1 + rng.normal(0, 0.002, 400))   # ~3% a year: the scale hits the cap
    wild = 100 * np.cumprod(1 + rng.normal(0, 0.03, 400))    # ~48% a year
    assert np.isnan(momentum.vol_scale(calm)[:momentum.VOL_BARS - 1]).all()
    assert np.nanmin(momentum.vol_scale(calm, cap=2.0)) == 2.0
    scale = momentum.vol_scale(wild, target=0.15, cap=2.0)
    np.testing.assert_allclose(scale[momentum.VOL_BARS - 1:], 0.15 / momentum.ex_ante_vol(wild)[momentum.VOL_BARS - 1:])
    assert 0.2 < np.nanmedian(scale) < 0.4


def test_nothing_after_t_changes_a_value_up_to_t(close):
    t = 3000
    rng = np.random.default_rng(1)
    noisy = close.copy()
    noisy[t + 1:] = close[t] * np.cumprod(1 + rng.normal(0, 0.03, len(close) - t - 1))
    clean, changed = every_output(close), every_output(noisy)
    for name in clean:
        np.testing.assert_array_equal(clean[name][:t + 1], changed[name][:t + 1], err_msg=name)
        if name != "long_only":  # the noise did reach what comes after t
            assert not np.array_equal(clean[name][t + 1:], changed[name][t + 1:], equal_nan=True), name
    # the training target looks one bar ahead, by definition, and no further
    target, noisy_target = momentum.next_returns(close), momentum.next_returns(noisy)
    np.testing.assert_array_equal(target[:t], noisy_target[:t])
    assert target[t] != noisy_target[t]


def test_values_do_not_depend_on_where_the_data_starts(close):
    dropped = 300
    full, late = every_output(close), every_output(close[dropped:])
    ready = momentum.INPUT_BARS - 1  # the first row the late start has in full
    for name in full:
        np.testing.assert_allclose(late[name][ready:], full[name][dropped + ready:], rtol=0, atol=1e-12, err_msg=name)
    assert np.isfinite(late["macd"][ready:]).all()


def assert_weights_follow_targets(result, frames: dict, targets: dict, cash_buffer: float,
                                  exact_share: float = 1.0) -> int:
    """With no rebalance band VolScaled re-trades every bar whose target differs from the weight held
    (drift included): the size bought at the next open is target x equity x (1 - cash buffer) / close.
    So the next bar's weight is that target carried through the day by the price and the equity:
    exactly on `exact_share` of the bars, within 0.01 on all (with several feeds a purchase is cut to
    the cash there is, e.g. buying back a short). Returns the number of target changes checked."""
    equity = result.equity
    traded = 0
    for name, frame in frames.items():
        close = frame["close"].reindex(equity.index)
        target = pd.Series(targets[name], index=frame.index).reindex(equity.index)
        changed = target != target.shift(1)
        start = (target * (1 - cash_buffer)).where(target.notna(), result.weights[name])  # weight after the next fill
        expected = (start * close.shift(-1) / close * equity / equity.shift(-1)).shift(1).iloc[1:]
        weight = result.weights[name].iloc[1:]
        exact = np.isclose(weight, expected, rtol=1e-9, atol=1e-12)
        assert exact.mean() >= exact_share and np.abs(weight - expected).max() < 0.01, name
        traded += int(changed.iloc[:-1].sum())
    return traded


def test_one_feed_trades_the_numpy_target(sp500):
    frame = sp500.loc["1999-01-01":"2004-12-31"]  # MACD is ready in July 2001; volatile enough to re-trade daily
    close = frame["close"].to_numpy()
    for kind, short in (("tsmom", True), ("macd", False)):
        params = {"kind": kind, "allow_short": short, "max_leverage": 1.0}
        result = run_backtest({"sp500": frame}, VolScaled, params, trade_from=pd.Timestamp("2001-08-01").date())
        weight = momentum.CLASSICAL_POSITIONS[kind](close) * momentum.vol_scale(close)
        if not short:
            weight = np.maximum(weight, 0.0)
        assert assert_weights_follow_targets(result, {"sp500": frame}, {"sp500": weight}, 0.01) > 400
        held = result.weights["sp500"]
        assert (held < 0).any() if short else (held >= 0).all()


def test_two_feeds_each_get_half_of_their_vol_scaled_weight(sp500):
    nasdaq = load_ohlcv(dataset="nasdaq")
    frames = {"sp500": sp500.loc["1999-01-01":"2004-12-31"], "nasdaq": nasdaq.loc["1999-01-01":"2004-12-31"]}
    result = run_backtest(frames, VolScaled, {"kind": "tsmom"}, trade_from=pd.Timestamp("2001-08-01").date())
    targets = {name: momentum.tsmom(f["close"].to_numpy()) * momentum.vol_scale(f["close"].to_numpy()) / 2
               for name, f in frames.items()}
    assert assert_weights_follow_targets(result, frames, targets, 0.01, exact_share=0.97) > 300
    # bar by bar (runonce off) the indicator reads only the trailing closes it needs: the same run
    bar_by_bar = run_backtest(frames, VolScaled, {"kind": "tsmom"}, trade_from=pd.Timestamp("2001-08-01").date(),
                              runonce=False)
    np.testing.assert_allclose(bar_by_bar.returns, result.returns, rtol=0, atol=1e-12)


def test_an_unknown_kind_is_refused_in_one_line(sp500):
    with pytest.raises(ConfigError, match="VolScaled kind 'sma' is unknown: choose one of long_only, tsmom, macd"):
        run_backtest(sp500.iloc[:300], VolScaled, {"kind": "sma"})


def test_the_baselines_run_by_name_through_the_walk_forward(sp500):
    config = override(Config(), **{"walkforward.train_bars": 252, "walkforward.test_bars": 126,
                                   "strategy.name": "tsmom_ls", "strategy.allow_short": True})
    trader = make_trader(config)
    assert trader.strategy is VolScaled and trader.params["kind"] == "tsmom"
    assert trader.warmup_bars == momentum.ready_bars("tsmom") + 1 == 254
    result = walk_forward({"sp500": sp500.loc["1999-01-01":"2002-12-31"]}, config, progress=False)  # a bear market
    assert result.strategy == "tsmom_ls" and (result.weights["sp500"] < 0).any()
    assert make_trader(config, "macd").warmup_bars == momentum.MACD_BARS + 1 == 636
    assert make_trader(config, "long_only").params["kind"] == "long_only"


def test_rescaled_to_vol_hits_the_target_and_keeps_the_sharpe():
    rng = np.random.default_rng(3)
    returns = pd.Series(rng.normal(0.0005, 0.02, 500), index=pd.bdate_range("2020-01-01", periods=500))
    rescaled = metrics.rescaled_to_vol(returns, 0.15)
    assert metrics.annual_volatility(rescaled) == pytest.approx(0.15, rel=1e-12)
    assert metrics.sharpe(rescaled) == pytest.approx(metrics.sharpe(returns), rel=1e-12)
    flat = pd.Series(np.zeros(10))
    pd.testing.assert_series_equal(metrics.rescaled_to_vol(flat, 0.15), flat)


def test_the_comparison_adds_return_and_drawdown_at_the_same_vol():
    # two days: +2%, -2%: annual vol = std(ddof=1) x sqrt(252) = 0.02 x sqrt(2) x sqrt(252)
    returns = pd.Series([0.02, -0.02], index=pd.bdate_range("2020-01-01", periods=2))
    factor = 0.15 / (0.02 * math.sqrt(2) * ANNUAL)
    at = at_vol_target(returns, 0.15)
    assert at["max_drawdown_at_vol_target"] == pytest.approx(-0.02 * factor)
    assert at["cagr_at_vol_target"] == pytest.approx(((1 + 0.02 * factor) * (1 - 0.02 * factor)) ** 126 - 1)
    summary = metrics.summary(returns, pd.DataFrame(), returns, 1) | at | {"n_segments": 1}
    table = comparison_frame({"a": summary})
    assert list(table.columns) == ["sharpe", "cagr", "max_drawdown", "volatility", "psr", "turnover", "n_trades",
                                   "start", "end", "cagr_at_vol_target", "max_drawdown_at_vol_target"]
    page = summary_html({"a": summary}, [], vol_target=0.15)
    assert "CAGR @15% vol" in page and "max drawdown @15% vol" in page
