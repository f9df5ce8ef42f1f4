"""MetaLearner: ensemble weights over timing members, and trust in the sizer and risk net vs their twins."""
from __future__ import annotations

import torch
from torch import nn

N_MEMBER_INPUTS = 3   # validation Sharpe now, realized Sharpe last segment, realized Sharpe remembered
N_REGIME_INPUTS = 2   # volatility level, trend of the last train months
N_TRUST_INPUTS = 2    # realized advantage of the sizer, of the risk net, over their twins


class MetaLearner(nn.Module):
    """One scorer shared by all members (so a member that joins later is scored the same way),
    a softmax over the scores, and two sigmoid trust levels. Zero-initialised output layers
    start it at equal weights and trust 0.5."""

    def __init__(self, hidden: int = 16):
        super().__init__()
        self.scorer = nn.Sequential(nn.Linear(N_MEMBER_INPUTS + N_REGIME_INPUTS, hidden), nn.Tanh(),
                                    nn.Linear(hidden, 1))
        self.truster = nn.Sequential(nn.Linear(N_TRUST_INPUTS + N_REGIME_INPUTS, hidden), nn.Tanh(),
                                     nn.Linear(hidden, 2))
        for head in (self.scorer[-1], self.truster[-1]):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, members: torch.Tensor, regime: torch.Tensor, advantages: torch.Tensor):
        """members (M, N_MEMBER_INPUTS), regime (N_REGIME_INPUTS,), advantages (N_TRUST_INPUTS,)
        -> weights (M,) summing to 1, trust (2,) in (0, 1) for (sizing, risk)."""
        scores = self.scorer(torch.cat([members, regime.expand(len(members), -1)], dim=1)).squeeze(-1)
        trust = torch.sigmoid(self.truster(torch.cat([advantages, regime])))
        return torch.softmax(scores, dim=0), trust
