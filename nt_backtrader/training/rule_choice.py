"""The turnover-aware part of the timing rule, chosen on the validation tail.

A position should change only when the expected gain clears the cost. How wide the no-trade
band, how long the least holding period, how long the wait after a stop or take-profit and how
far the brackets (in multiples of the risk net's distances) should be is not fixed by hand:
every combination of the config's options is replayed on the validation tail of the train
window with the ensemble's outputs, the risk net's brackets and the backtest's costs, and the
one with the best Sharpe there is traded in the test window.
The options are listed from the fewest trades to the most, so a tie (options that trade alike)
keeps the calmer one.

The replay follows NeuralStrategy bar by bar at unit size: the decision at bar t's close
fills at bar t+1's open; a bracket's levels come from bar t's close and ATR and are checked
from bar t+2 on (stop first when a bar touches both, a gap fills at the open); a bracket exit
blocks that side for `cooldown` bars.
"""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from .. import metrics
from ..config import TimingConfig
from ..decisions import DecisionSpec, aged, levels_from, next_position, waited
from .meta import equal_weight


def rule_options(spec: DecisionSpec, timing: TimingConfig) -> list[DecisionSpec]:
    """Every (band, min_hold, cooldown, bracket width) of the config, as decision specs."""
    return [dataclasses.replace(spec, enter=0.5 + band, exit=0.5 - band, min_hold=hold, cooldown=wait,
                                bracket_width=width)
            for band, hold, wait, width in itertools.product(timing.bands, timing.min_holds, timing.cooldowns,
                                                             timing.bracket_widths)]


def replay(p_long, p_short, arrays: dict, atr, stops, takes, spec: DecisionSpec,
           cost: float) -> tuple[np.ndarray, np.ndarray]:
    """Daily returns (close to close) of the rule at unit size over the given bars, costs on, and the
    position held at each bar's close (+1, 0, -1).

    `stops`, `takes`: (n, 2) bracket distances in ATRs for a long (column 0) and a short entry, at
    width 1 (spec.bracket_width scales them).
    """
    o, h, low, c = (np.asarray(arrays[k], dtype=float) for k in ("open", "high", "low", "close"))
    n = len(c)
    out, holding = np.zeros(n), np.zeros(n, dtype=int)
    wanted = age = held = blocked = blocked_bars = 0
    entering = exiting = False
    levels = None
    for t in range(1, n):
        r = 0.0
        if entering:                       # filled at this bar's open
            r = held * (c[t] / o[t] - 1.0) - cost
            entering = False
        elif exiting:
            r = held * (o[t] / c[t - 1] - 1.0) - cost
            held, exiting, levels = 0, False, None
        elif held:
            stop, take = levels
            hit_stop = low[t] <= stop if held > 0 else h[t] >= stop
            hit_take = h[t] >= take if held > 0 else low[t] <= take
            if hit_stop or hit_take:       # the stop is checked first; a gap through a level fills at the open
                level = stop if hit_stop else take
                fill = min if (held > 0) == hit_stop else max  # the worse price for a stop, the better for a take
                price = fill(o[t], level)
                r = held * (price / c[t - 1] - 1.0) - cost
                blocked, blocked_bars = held, spec.cooldown
                held, levels = 0, None
            else:
                r = held * (c[t] / c[t - 1] - 1.0)
        out[t], holding[t] = r, held
        # the decision at this bar's close, as NeuralStrategy.decide takes it
        position = next_position(wanted, age, p_long[t], p_short[t], spec)
        wanted, age = position, aged(wanted, age, position)
        blocked, blocked_bars = waited(blocked, blocked_bars, wanted)
        if t + 1 >= n or not np.isfinite(atr[t]):
            continue
        if held and held != wanted:
            exiting = True
        elif not held and wanted and wanted != blocked:
            held, entering = wanted, True
            column = 0 if wanted > 0 else 1
            width = spec.bracket_width
            levels = levels_from(c[t], atr[t], width * stops[t, column], width * takes[t, column], wanted)
    return out, holding


def choose_rule(options: list[DecisionSpec], assets: list[dict], cost: float) -> tuple[int, list[float]]:
    """The index of the option with the best validation Sharpe of the equal-weight book, and every score.

    `assets`: per asset a dict of p_long, p_short, arrays (OHLC and dates of the validation
    bars), atr, stops and takes over the same bars."""
    scores = []
    for spec in options:
        daily = [replay(a["p_long"], a["p_short"], a["arrays"], a["atr"], a["stops"], a["takes"], spec, cost)[0][1:]
                 for a in assets]
        scores.append(metrics.sharpe(equal_weight(tuple(a["arrays"]["dates"][1:] for a in assets), tuple(daily))))
    finite = [s if np.isfinite(s) else -np.inf for s in scores]
    return int(np.argmax(finite)), scores
