"""Meta: the meta-learner's per-segment use — ensemble weights and trust — and its update from realized PnL.

Before a test window it weighs the timing members (neural candidates and classical signals)
from their validation Sharpe on the train window's tail and their realized record, and sets
how far to trust the sizer and the risk net against their classical twins. After the window
it learns from what was realized there: each member's unit-size returns, and per trade the
sized against the volatility-target return and the risk net's bracket against fixed ones.
All past segments are replayed at each update (they are few and small).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .. import metrics
from ..config import MetaConfig
from ..networks.meta import MetaLearner


def equal_weight(dates: tuple, returns: tuple) -> np.ndarray:
    """Daily returns of an equal-weight book of the assets: on each date, the mean over those trading."""
    if len(returns) == 1:
        return np.asarray(returns[0], dtype=float)
    table = pd.concat([pd.Series(r, index=d) for d, r in zip(dates, returns)], axis=1)
    return table.mean(axis=1).sort_index().to_numpy()


def _soft_sharpe(x: torch.Tensor) -> torch.Tensor:
    """Mean over root mean square: a Sharpe that stays defined for two trades of one sign."""
    return x.mean() / torch.sqrt((x**2).mean() + 1e-8)


class Meta:
    def __init__(self, config: MetaConfig):
        self.config = config
        self.net = MetaLearner(config.hidden)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.step_lr)
        self.record: dict[str, list[float]] = {}   # member -> [last realized Sharpe, remembered Sharpe]
        self.advantages = [0.0, 0.0]               # realized advantage of (sizer, risk net) over their twins
        self.buffer: list[dict] = []

    def inputs(self, members: list[str], val_sharpes: list[float], regime: np.ndarray) -> dict:
        rows = [[np.clip(v, -3, 3) / 3.0, *(np.clip(self.record.get(m, [0.0, 0.0]), -3, 3) / 3.0)]
                for m, v in zip(members, val_sharpes)]
        return {"members": torch.tensor(rows, dtype=torch.float32),
                "regime": torch.tensor(np.clip(regime, -3, 3), dtype=torch.float32),
                "advantages": torch.tensor(np.clip(self.advantages, -3, 3), dtype=torch.float32)}

    def weigh(self, inputs: dict) -> tuple[np.ndarray, np.ndarray]:
        """(ensemble weights, (sizing trust, risk trust)); equal weights and 0.5 when it is off."""
        n = len(inputs["members"])
        if not self.config.enabled:
            return np.full(n, 1.0 / n), np.array([0.5, 0.5])
        with torch.no_grad():
            weights, trust = self.net(inputs["members"], inputs["regime"], inputs["advantages"])
        return weights.double().numpy(), trust.double().numpy()

    def update(self, inputs: dict, members: list[str], member_returns: np.ndarray, sizing_pairs: np.ndarray,
               risk_pairs: np.ndarray) -> dict:
        """Learn from a finished test window.

        member_returns (M, T): each member's unit-size daily returns; sizing_pairs (n, 2): per
        trade, its return at the network's size and at the twin's; risk_pairs (n, 2): per
        entry, the outcome of the network's bracket and of the fixed one.
        """
        sharpes = [metrics.sharpe(r) for r in member_returns]
        m = self.config.memory
        for name, sharpe in zip(members, sharpes):
            last, remembered = self.record.get(name, [0.0, sharpe])
            self.record[name] = [sharpe, m * remembered + (1 - m) * sharpe]
        self.advantages = [_advantage(sizing_pairs), _advantage(risk_pairs)]
        info = {"member_sharpes": dict(zip(members, sharpes)), "sizing_advantage": self.advantages[0],
                "risk_advantage": self.advantages[1], "meta_loss": float("nan")}
        if not self.config.enabled:
            return info
        self.buffer.append({**inputs, "returns": torch.tensor(member_returns, dtype=torch.float32),
                            "sizing": torch.tensor(sizing_pairs, dtype=torch.float32).reshape(-1, 2),
                            "risk": torch.tensor(risk_pairs, dtype=torch.float32).reshape(-1, 2)})
        for _ in range(self.config.steps):
            loss = self._replay_loss()
            self.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
            self.optimizer.step()
        info["meta_loss"] = float(self._replay_loss().detach())
        return info

    def _replay_loss(self) -> torch.Tensor:
        ensemble, sized, bracketed = [], [], []
        for seg in self.buffer:
            weights, trust = self.net(seg["members"], seg["regime"], seg["advantages"])
            ensemble.append(-_soft_sharpe(weights @ seg["returns"]))
            sized.append(trust[0] * seg["sizing"][:, 0] + (1 - trust[0]) * seg["sizing"][:, 1])
            bracketed.append(trust[1] * seg["risk"][:, 0] + (1 - trust[1]) * seg["risk"][:, 1])
        loss = torch.stack(ensemble).mean()
        for pooled in (torch.cat(sized), torch.cat(bracketed)):
            if len(pooled) > 1:
                loss = loss - _soft_sharpe(pooled)
        return loss + self.config.prior * self._prior_penalty()

    def _prior_penalty(self) -> torch.Tensor:
        """Distance from equal weights and trust 0.5, over the segments seen."""
        total = torch.zeros(())
        for seg in self.buffer:
            weights, trust = self.net(seg["members"], seg["regime"], seg["advantages"])
            total = total + ((weights - 1.0 / len(weights)) ** 2).sum() + ((trust - 0.5) ** 2).sum()
        return total / len(self.buffer)

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "record": {k: list(v) for k, v in self.record.items()}, "advantages": list(self.advantages),
                "buffer": self.buffer}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.record = {k: list(v) for k, v in state["record"].items()}
        self.advantages = list(state["advantages"])
        self.buffer = list(state["buffer"])


def _advantage(pairs: np.ndarray) -> float:
    """How much better the network did than its twin, per trade, in units of the spread."""
    pairs = np.asarray(pairs, dtype=float).reshape(-1, 2)
    if len(pairs) < 2:
        return 0.0
    diff = pairs[:, 0] - pairs[:, 1]
    spread = np.sqrt((diff**2).mean())
    return float(np.clip(diff.mean() / spread, -3, 3)) if spread > 0 else 0.0
