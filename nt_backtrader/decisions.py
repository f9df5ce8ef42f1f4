"""How network outputs become positions and sizes: the timing rule and the sizer's account state.

Shared by the strategy (bar by bar, in backtrader) and by training (the sizer and the risk
net learn on the positions this rule takes), so both see the same decisions.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .features import LOOKBACK
from .signals import CLASSICAL_LOOKBACK, CLASSICAL_MEMBERS

RECENT_PNL_BARS = 21
STATE_INPUTS = ("drawdown", "exposure", "recent_pnl", "timing_confidence")  # after the market features


@dataclass(frozen=True)
class DecisionSpec:
    """How network outputs become orders; fixed at training time, stored with the nets."""

    window: int = 32
    allow_short: bool = False
    enter: float = 0.55          # enter when p(long) (or p(short)) reaches this
    exit: float = 0.45           # leave when it falls below this
    cooldown: int = 5            # bars after a bracket exit before re-entering that side
    min_hold: int = 1            # bars a position is kept before the timing signal may close it
    bracket_width: float = 1.0   # the stop and take-profit distances (risk net or fixed) times this
    timing_mode: str = "direction"  # direction | meta_label (the nets say whether to take tsmom's side)
    use_sizing: bool = True      # False: the classical twin, volatility-target fraction
    use_risk: bool = True        # False: the classical twin, fixed ATR brackets
    vol_target: float = 0.15
    max_fraction: float = 1.0
    fixed_stop_atr: float = 2.0
    fixed_take_atr: float = 3.0
    max_gross: float = 1.0       # fixed limit: gross exposure of the whole book
    drawdown_brake: float = 0.0  # fixed limit: beyond this drawdown new entries are halved (0: off)

    @property
    def feature_bars(self) -> int:
        """Bars of history the networks need before a decision: feature lookback plus the window."""
        return LOOKBACK + self.window - 1

    def twin_fraction(self, vol: float) -> float:
        """The classical sizing twin: the volatility-target fraction, capped."""
        return min(self.max_fraction, self.vol_target / max(vol, 1e-4))


def warmup_bars(spec: DecisionSpec, members) -> int:
    """Bars an asset needs before its first decision: the networks' features and window, and the
    classical members' lookback where the ensemble holds one of `members` (or meta-labels tsmom's side).
    What a bundle needs (its members) and what a config's walk-forward feeds (its classical members)."""
    classical = any(m in CLASSICAL_MEMBERS for m in members) or spec.timing_mode == "meta_label"
    return max(spec.feature_bars, CLASSICAL_LOOKBACK if classical else 0)


def next_position(previous: int, age: int, p_long: float, p_short: float, spec: DecisionSpec) -> int:
    """The timing rule with hysteresis: -1 short, 0 flat, +1 long. NaN outputs mean flat.

    `age`: bars the rule has held `previous`; a position younger than spec.min_hold is kept
    (a bracket may still close it: that is risk, not timing)."""
    if not (p_long == p_long) or not (p_short == p_short):  # NaN: no opinion yet
        return 0
    if previous and age < spec.min_hold:
        return previous
    if previous > 0 and p_long >= spec.exit:
        return 1
    if previous < 0 and p_short >= spec.exit:
        return -1
    if p_long >= spec.enter and p_long >= p_short:
        return 1
    if spec.allow_short and p_short >= spec.enter:
        return -1
    return 0


def aged(previous: int, age: int, position: int) -> int:
    """The age of `position` one bar on: 1 on the bar it changed, else one more."""
    return age + 1 if position == previous else 1


def waited(blocked: int, blocked_bars: int, wanted: int) -> tuple[int, int]:
    """The re-entry wait after a bracket exit, one bar on: (blocked side, bars left). It ends when
    its bars run out or the rule no longer wants the blocked side."""
    if not blocked:
        return 0, blocked_bars
    blocked_bars -= 1
    return (0 if blocked_bars <= 0 or wanted != blocked else blocked), blocked_bars


def decide_positions(p_long: np.ndarray, p_short: np.ndarray, spec: DecisionSpec) -> np.ndarray:
    positions = np.zeros(len(p_long), dtype=int)
    previous, age = 0, 0
    for i, (pl, ps) in enumerate(zip(p_long, p_short)):
        positions[i] = next_position(previous, age, pl, ps, spec)
        previous, age = positions[i], aged(previous, age, positions[i])
    return positions


def levels_from(close: float, atr: float, stop_atr: float, take_atr: float, direction: int):
    """(stop price, take-profit price) of an entry decided at `close`, distances in ATRs."""
    return close - direction * stop_atr * atr, close + direction * take_atr * atr


def state_vector(drawdown: float, exposure: float, recent_pnl: float, timing_confidence: float) -> np.ndarray:
    """Portfolio state inputs of the sizing net, on a common scale (fixed transforms)."""
    return np.array([5.0 * drawdown, exposure, 10.0 * recent_pnl, timing_confidence])


@dataclass
class AccountRecord:
    """Running peak and recent values of an account: the portfolio state the sizer reads.

    Updated once per bar with the closing value, in training (a simulated account) and in
    backtrader (the real one) alike; carried across walk-forward segments as plain numbers.
    """

    peak: float = 0.0
    recent: list = field(default_factory=list)   # the last RECENT_PNL_BARS + 1 values

    def update(self, value: float) -> None:
        self.peak = max(self.peak, value)
        self.recent.append(value)
        del self.recent[:-RECENT_PNL_BARS - 1]

    def state(self, exposure: float) -> tuple[float, float, float]:
        """(drawdown from the peak, exposure, PnL over the last RECENT_PNL_BARS bars)."""
        if not self.recent:
            return 0.0, exposure, 0.0
        return self.recent[-1] / self.peak - 1.0, exposure, self.recent[-1] / self.recent[0] - 1.0

    def to_dict(self) -> dict:
        return {"peak": self.peak, "recent": list(self.recent)}


def unit_rule_returns(p_long: np.ndarray, p_short: np.ndarray, close: np.ndarray, spec: DecisionSpec,
                      cost: float) -> np.ndarray:
    """Daily returns of the timing rule at unit size, close to close, less `cost` per unit traded.

    result[t] is earned over bar t by the position decided at bar t-1 (result[0] = 0).
    """
    positions = decide_positions(p_long, p_short, spec).astype(float)
    held = np.concatenate([[0.0], positions[:-1]])
    moves = np.abs(np.diff(held, prepend=0.0))
    daily = np.zeros(len(close))
    daily[1:] = close[1:] / close[:-1] - 1.0
    return held * daily - cost * moves
