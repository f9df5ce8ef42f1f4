"""A bundle's brackets: the stop and take-profit distances of an entry, in ATRs.

The risk net's distances blended with the fixed ones (spec.fixed_stop_atr, fixed_take_atr) by the
meta-learner's trust in the net, times the rule's bracket width; the fixed ones alone when the
spec switches the risk net off.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .decisions import DecisionSpec
from .features import N_FEATURES
from .networks import RiskNet

N_RISK_INPUTS = N_FEATURES + 1


def risk_inputs(scaled_rows: np.ndarray, direction: float) -> torch.Tensor:
    """Risk-net inputs: the scaled features at the entry bar and the trade's direction (+1/-1)."""
    column = np.full((len(scaled_rows), 1), direction)
    return torch.as_tensor(np.concatenate([scaled_rows, column], axis=1), dtype=torch.float32)


@dataclass(frozen=True)
class BracketLevels:
    net: RiskNet
    trust: float  # the meta-learner's weight of the risk net against the fixed brackets

    def __post_init__(self):
        self.net.eval()

    @torch.inference_mode()
    def net_levels(self, scaled_rows: np.ndarray, direction: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The risk net's own (stop, take) in ATRs at each of the rows, before the blend: what the
        meta-learner's feedback sets against the fixed brackets."""
        return self.net.levels(risk_inputs(scaled_rows, direction))

    def distances(self, scaled_rows: np.ndarray, direction: float,
                  spec: DecisionSpec) -> tuple[np.ndarray, np.ndarray]:
        """(stop, take) in ATRs of an entry in `direction` at each of the rows."""
        n, width = len(scaled_rows), spec.bracket_width
        fixed_stop, fixed_take = np.full(n, spec.fixed_stop_atr), np.full(n, spec.fixed_take_atr)
        if not spec.use_risk or n == 0:
            return width * fixed_stop, width * fixed_take
        stop, take = self.net_levels(scaled_rows, direction)
        t = self.trust
        return width * (t * stop.numpy() + (1 - t) * fixed_stop), width * (t * take.numpy() + (1 - t) * fixed_take)
