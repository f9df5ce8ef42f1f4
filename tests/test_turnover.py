"""Turnover-aware decisions: the least holding period, the validation-tail replay of the rule, and its choice."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from nt_backtrader.config import Config, TimingConfig
from nt_backtrader.decisions import DecisionSpec, decide_positions
from nt_backtrader.features import average_true_range
from nt_backtrader.plugin import NeuralStrategy, run_backtest
from nt_backtrader.training.rule_choice import choose_rule, replay, rule_options

WIDE = 1e6  # bracket distances no price reaches


def arrays_of(frame: pd.DataFrame) -> dict:
    return {k: frame[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close")} | {
        "dates": frame.index.to_numpy()}


def test_a_position_younger_than_min_hold_is_kept_whatever_the_signal():
    rng = np.random.default_rng(0)
    p_long = rng.uniform(0, 1, 2000)  # a signal that flips most bars
    for hold in (1, 5, 21):
        positions = decide_positions(p_long, np.zeros_like(p_long), DecisionSpec(min_hold=hold))
        starts = np.flatnonzero(np.diff(positions, prepend=0) == 1)
        ends = np.flatnonzero(np.diff(positions, append=0) == -1)
        assert len(starts) > 20
        closed = ends < len(positions) - 1  # not the holding the data ends in
        assert (ends - starts + 1)[closed].min() >= hold  # every holding lasts min_hold bars at least
    churn = [np.abs(np.diff(decide_positions(p_long, np.zeros_like(p_long), DecisionSpec(min_hold=h)))).sum()
             for h in (1, 5, 21)]
    assert churn[0] > churn[1] > churn[2]


def test_replay_of_a_held_long_earns_the_price_path_less_one_entry_cost(sp500):
    frame = sp500.loc["2010-01-01":"2010-12-31"]
    a, n, cost = arrays_of(frame), len(frame), 2e-4
    wide = np.full((n, 2), WIDE)
    returns, held = replay(np.ones(n), np.zeros(n), a, np.full(n, 1.0), wide, wide, DecisionSpec(), cost)
    # decided at bar 1's close (bar 0 has no return to earn), filled at bar 2's open, held to the end
    assert held[:2].tolist() == [0, 0] and held[2:].min() == 1
    assert returns[2] == pytest.approx(a["close"][2] / a["open"][2] - 1 - cost)
    growth = np.prod(1 + returns[3:])
    assert growth == pytest.approx(a["close"][-1] / a["close"][2], rel=1e-12)


def test_replay_takes_the_trades_the_backtest_takes(sp500, tiny_bundle):
    """Days in the market, entries and bracket exits of NeuralStrategy equal the replay's, bar for bar."""
    bundle = dataclasses.replace(tiny_bundle, spec=dataclasses.replace(tiny_bundle.spec, enter=0.5, exit=0.5,
                                                                       min_hold=5, cooldown=3, bracket_width=1.0))
    frame = sp500.loc["2010-01-01":"2012-12-31"]
    start = frame.index[bundle.warmup_bars]
    result = run_backtest(frame, NeuralStrategy, {"bundle": bundle}, trade_from=start.date())
    stats = result.strategy.diagnostics()
    assert stats["bracket_exits"]["stop"] + stats["bracket_exits"]["take"] >= 3 and stats["signal_exits"] >= 3

    signals = bundle.predict(*(frame[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close", "volume")))
    rows = np.arange(bundle.warmup_bars - 1, len(frame))  # the bar before the first traded one decides first
    stops = np.stack([signals.stop_atr, signals.stop_atr_short], 1)[rows]
    takes = np.stack([signals.take_atr, signals.take_atr_short], 1)[rows]
    _, held = replay(signals.p_long[rows], signals.p_short[rows], arrays_of(frame.iloc[rows]), signals.atr[rows],
                     stops, takes, bundle.spec, 0.0)
    in_market = (result.weights["data"].reindex(frame.index[rows]).fillna(0.0).abs() > 0).astype(int)
    assert held.sum() > 50
    np.testing.assert_array_equal(held[1:], in_market.to_numpy()[1:])


def test_the_choice_is_the_best_validation_sharpe_and_a_tie_keeps_the_calmer_option(sp500):
    frame = sp500.loc["2011-01-01":"2012-12-31"]
    a, n = arrays_of(frame), len(frame)
    atr = average_true_range(a["high"], a["low"], a["close"])
    wide = np.full((n, 2), WIDE)
    timing = TimingConfig(bands=(0.2, 0.0), min_holds=(21, 1), cooldowns=(5,), bracket_widths=(1.0,))
    options = rule_options(DecisionSpec(), timing)
    assert [(o.enter, o.min_hold) for o in options] == [(0.7, 21), (0.7, 1), (0.5, 21), (0.5, 1)]
    # a signal that says 'long' for a month, then 'flat' for a month: a band never changes it (0 or 1)
    p_long = ((np.arange(n) // 21) % 2 == 0).astype(float)
    asset = {"p_long": p_long, "p_short": np.zeros(n), "arrays": a, "atr": atr, "stops": wide, "takes": wide}
    best, scores = choose_rule(options, [asset], cost=2e-4)
    assert scores[0] == scores[2] and scores[1] == scores[3]  # the band changes nothing here...
    assert best in (0, 1)                                    # ...so of two equal options the first (wider) is kept
    # a noisy signal around 0.5: the widest band and longest hold trade least; at a high cost the most
    # active option scores worst and is not chosen
    rng = np.random.default_rng(1)
    noisy = dict(asset, p_long=np.clip(0.5 + rng.normal(0, 0.15, n), 0, 1))
    best, scores = choose_rule(options, [noisy], cost=0.05)
    trades = [np.abs(np.diff(replay(noisy["p_long"], noisy["p_short"], a, atr, wide, wide, o, 0.05)[1])).sum()
              for o in options]
    assert trades[0] == min(trades) and trades[-1] == max(trades) and trades[-1] > 3 * trades[0]
    assert scores[-1] == min(scores) and best != len(options) - 1


def seven_bars(later: float) -> dict:
    """Closes flat, flat, +2%, +2%, then `later` three times; each bar opens at the last close (no gaps)."""
    close = 100.0 * np.cumprod(1.0 + np.array([0.0, 0.0, 0.02, 0.02, later, later, later]))
    open_ = np.concatenate([[close[0]], close[:-1]])
    return {"open": open_, "high": np.maximum(open_, close), "low": np.minimum(open_, close), "close": close,
            "dates": pd.bdate_range("2020-01-06", periods=7).to_numpy()}


def test_the_choice_on_seven_bars_worked_by_hand():
    """A strong signal (0.8) enters at bar 2's open; from bar 3's close on it is weak (0.4): the narrow
    band (exit below 0.5) sells at bar 4's open, the wide band (exit below 0.3) holds to the end.

    Daily returns of bars 1..6 with a cost of 0.001 per fill:
      narrow: 0, .019, .02, -.001, 0, 0              mean .00633, sd .01021: Sharpe .6202 x sqrt(252) = 9.846
      wide, falling (-3% a bar): 0, .019, .02, -.03 x 3  mean -.0085 < 0: Sharpe -5.484, the narrow band wins
      wide, rising (+1% a bar): 0, .019, .02, .01 x 3    mean .0115, sd .007314: Sharpe 1.5722 x sqrt(252) = 24.959
    and with a signal that stays strong both hold alike: a tie, which keeps the wide (calmer) band.
    """
    timing = TimingConfig(bands=(0.2, 0.0), min_holds=(1,), cooldowns=(5,), bracket_widths=(1.0,))
    options = rule_options(DecisionSpec(), timing)
    assert [(o.enter, o.exit) for o in options] == [(0.7, 0.3), (0.5, 0.5)]
    weakening = np.array([0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.4])
    wide = np.full((7, 2), WIDE)
    falls, rises, sells = [0, .019, .02, -.03, -.03, -.03], [0, .019, .02, .01, .01, .01], [0, .019, .02, -.001, 0, 0]
    # name: (move after bar 3, signal, daily returns of the wide band and of the narrow one, their Sharpes, choice)
    cases = {"falling": (-0.03, weakening, falls, sells, [-5.484, 9.846], 1),
             "rising": (0.01, weakening, rises, sells, [24.959, 9.846], 0),
             "tie": (0.01, np.full(7, 0.8), rises, rises, [24.959, 24.959], 0)}
    for name, (later, p_long, wide_daily, narrow_daily, sharpes, chosen) in cases.items():
        asset = {"p_long": p_long, "p_short": np.zeros(7), "arrays": seven_bars(later), "atr": np.ones(7),
                 "stops": wide, "takes": wide}
        for option, daily in zip(options, (wide_daily, narrow_daily)):
            returns, _ = replay(p_long, asset["p_short"], asset["arrays"], asset["atr"], wide, wide, option, 1e-3)
            np.testing.assert_allclose(returns[1:], daily, atol=1e-12, err_msg=name)
        best, scores = choose_rule(options, [asset], cost=1e-3)
        assert scores == pytest.approx(sharpes, abs=1e-3), name
        assert best == chosen, name


def test_a_fixed_rule_has_one_option_and_the_config_checks_the_lists():
    from nt_backtrader.config import override
    from nt_backtrader.errors import ConfigError

    config = override(Config(), **{"timing.bands": [0.05], "timing.min_holds": [1], "timing.cooldowns": [5],
                                   "timing.bracket_widths": [1.5]})
    (only,) = rule_options(DecisionSpec(), config.timing)
    assert (only.enter, only.exit, only.min_hold, only.cooldown, only.bracket_width) == (0.55, 0.45, 1, 5, 1.5)
    for key, value in (("timing.bands", [0.5]), ("timing.min_holds", [0]), ("timing.seeds", 0),
                       ("timing.bracket_widths", [0.0])):
        with pytest.raises(ConfigError, match=key):
            override(Config(), **{key: value})
