"""A bundle's timing ensemble: what each member thinks of a bar, and the members weighed into one opinion.

TimingMembers are the neural timing nets and the classical rules (tsmom, sma), each giving
(p_long, p_short) per bar; a TimingEnsemble is the members with the meta-learner's weights. The
two are apart because the meta-learner weighs the members by what they said on the validation
tail: their probabilities come first, the weights after, and the ensemble is made once from both.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .decisions import DecisionSpec
from .features import windows
from .networks.timing import long_short_probabilities
from .signals import CLASSICAL_MEMBERS, classical_signal, primary_side


@dataclass(frozen=True)
class TimingMembers:
    nets: tuple    # the neural members (TimingNet, or a SeedAverage of several), in the order of their names
    names: tuple   # neural_1.., then the classical members (tsmom, sma)

    def __post_init__(self):
        for net in self.nets:
            net.eval()

    @torch.inference_mode()
    def probabilities(self, scaled: np.ndarray, close: np.ndarray, rows: np.ndarray, spec: DecisionSpec,
                      batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """(members, n) p_long and p_short of every member at `rows`; NaN elsewhere."""
        n, m = len(scaled), len(self.names)
        p_long, p_short = np.full((m, n), np.nan), np.full((m, n), np.nan)
        rows = rows[rows >= spec.feature_bars - 1]
        chunks = [rows[start:start + batch] for start in range(0, len(rows), batch)]
        inputs = [torch.as_tensor(windows(scaled, spec.window, chunk), dtype=torch.float32)
                  for chunk in chunks] if self.nets else []  # (B, L, F) each, shared by the members
        nets = iter(self.nets)
        # meta-labeling: a net's p(take) goes to the side tsmom takes (none before its lookback)
        side = primary_side(close, spec.allow_short) if spec.timing_mode == "meta_label" else None
        for i, name in enumerate(self.names):
            if name in CLASSICAL_MEMBERS:
                pl, ps = classical_signal(name, close, spec.allow_short)
                p_long[i, rows], p_short[i, rows] = pl[rows], ps[rows]
                continue
            net = next(nets)
            for chunk, x in zip(chunks, inputs):
                pl, ps = long_short_probabilities(net(x))
                if side is None:
                    p_long[i, chunk], p_short[i, chunk] = pl.numpy(), ps.numpy()
                else:
                    take = pl.numpy()
                    p_long[i, chunk], p_short[i, chunk] = take * (side[chunk] > 0), take * (side[chunk] < 0)
        return p_long, p_short


@dataclass(frozen=True)
class TimingEnsemble:
    members: TimingMembers
    weights: tuple  # the meta-learner's, one per member, summing to 1

    def combine(self, p_long: np.ndarray, p_short: np.ndarray,
                allow_short: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ensemble (p_long, p_short, confidence) from member probabilities; NaN where a member has none."""
        w = np.asarray(self.weights)[:, None]
        pl, ps = (w * p_long).sum(0), (w * p_short).sum(0)
        missing = np.isnan(p_long).any(0)
        pl[missing] = ps[missing] = np.nan
        return pl, ps, ensemble_confidence(pl, ps, allow_short)


def ensemble_confidence(p_long: np.ndarray, p_short: np.ndarray, allow_short: bool) -> np.ndarray:
    """1 - the normalised entropy of the ensemble's distribution over its classes."""
    classes = [p_long, 1.0 - p_long - p_short, p_short] if allow_short else [p_long, 1.0 - p_long]
    probs = np.clip(np.stack(classes), 1e-12, 1.0)
    return 1.0 - (-(probs * np.log(probs)).sum(0)) / np.log(len(classes))
