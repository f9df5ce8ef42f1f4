"""A bundle's sizing: the fraction of equity an entry gets, and the portfolio limits it is cut to.

The sizing net's fraction blended with its volatility-target twin by the meta-learner's trust,
both times the portfolio scale (the book, not each asset alone, meets the volatility target);
then the limits: the largest weight per asset, what is left of the gross exposure, and the
drawdown brake (learned ones, or the spec's fixed ones).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .decisions import STATE_INPUTS, DecisionSpec
from .features import N_FEATURES
from .networks import PositionSizingNet

N_SIZING_INPUTS = N_FEATURES + len(STATE_INPUTS)


@dataclass(frozen=True)
class Sizing:
    fraction: float      # what is traded
    confidence: float    # the sizing net's P(the sized trade makes money)
    network: float       # the sizing net's own fraction
    twin: float          # the volatility-target fraction


@dataclass(frozen=True)
class EntrySizer:
    net: PositionSizingNet
    trust: float                  # the meta-learner's weight of the sizing net against its twin
    portfolio_scale: float = 1.0  # on every fraction
    limits: tuple = ()            # learned (max weight, max gross, drawdown brake); (): the spec's fixed ones

    def __post_init__(self):
        self.net.eval()

    @torch.inference_mode()
    def size(self, scaled_row: np.ndarray, state: np.ndarray, vol: float, spec: DecisionSpec) -> Sizing:
        """The fraction of equity for one decision: the sizing net blended with the
        volatility-target twin by trust (the twin alone when spec.use_sizing is off)."""
        twin = spec.twin_fraction(vol) * self.portfolio_scale
        if not spec.use_sizing:
            return Sizing(twin, 1.0, twin, twin)
        x = torch.as_tensor(np.concatenate([scaled_row, state])[None], dtype=torch.float32)
        fraction, conf, _ = self.net(x, torch.tensor([vol], dtype=torch.float32))
        network, t = float(fraction[0]) * self.portfolio_scale, self.trust
        return Sizing(t * network + (1 - t) * twin, float(conf[0]), network, twin)

    def limit(self, fraction: float, gross: float, drawdown: float, spec: DecisionSpec) -> float:
        """An entry's fraction within the portfolio limits: the largest weight per asset, what is
        left of the gross exposure, and the drawdown brake (new entries halved beyond it)."""
        max_weight, max_gross, brake = self.limits or (spec.max_fraction, spec.max_gross, spec.drawdown_brake)
        fraction = min(fraction, max_weight, max(0.0, max_gross - gross))
        return 0.5 * fraction if brake > 0 and drawdown < -brake else fraction
