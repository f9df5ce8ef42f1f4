"""Tuner: proposes the timing net's hyperparameters each segment and learns from how they did.

REINFORCE with a baseline, rewarded twice: within the segment by the validation loss each
proposed candidate reached (the population's mean is the baseline), and after the segment
by the realized out-of-sample Sharpe of the chosen candidate (a running mean is the
baseline). Modes for the ablations: `fixed` (the config's hyperparameters, seeds differ),
`random` (uniform search in the same bounds, the same number of candidates) and `optuna`
(Optuna's TPE in the same bounds at the same budget: what a user would pick instead).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from ..config import TrainConfig, TunerConfig
from ..networks.tuner import N_ACTIONS, HyperparameterTunerNet
from .loop import FitResult, Hyper
from .optuna_search import FAILED_VALUE, OptunaSearch

REALIZED_BASELINE_DECAY = 0.7


@dataclass
class Proposal:
    action: torch.Tensor   # (N_ACTIONS,) before squashing into bounds
    hyper: Hyper

    def to_state(self) -> dict:
        """As a plain tensor and numbers: what a bundle's pending feedback keeps of it."""
        return {"action": self.action, "hyper": asdict(self.hyper)}

    @classmethod
    def from_state(cls, state: dict) -> "Proposal":
        return cls(state["action"], Hyper(**state["hyper"]))


class Tuner:
    def __init__(self, config: TunerConfig, train: TrainConfig, dropout: float):
        self.config = config
        self.fixed = Hyper(train.lr, train.batch_size, dropout, train.weight_decay)
        self.net = HyperparameterTunerNet(exploration=config.exploration)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.step_lr)
        self.realized_baseline = 0.0
        self.optuna = OptunaSearch()
        # What the next state is made of; updated as results come in.
        self.last = {"val_improvement": 0.0, "val_loss": 0.0, "val_sharpe": 0.0, "realized_sharpe": 0.0,
                     "val_accuracy": 0.5, "settings": [0.5] * N_ACTIONS}

    def decode(self, action: torch.Tensor) -> Hyper:
        c = self.config
        u = torch.sigmoid(action).tolist()

        def log_lerp(lo, hi, t):
            return float(10 ** (math.log10(lo) + t * (math.log10(hi) - math.log10(lo))))

        batch = 2 ** round(math.log2(c.batch_min) + u[1] * (math.log2(c.batch_max) - math.log2(c.batch_min)))
        return Hyper(lr=log_lerp(c.lr_min, c.lr_max, u[0]), batch_size=int(batch), dropout=u[2] * c.dropout_max,
                     weight_decay=log_lerp(c.weight_decay_min, c.weight_decay_max, u[3]))

    def state(self, volatility: float) -> torch.Tensor:
        last = self.last
        values = [last["val_improvement"], last["val_loss"], last["val_sharpe"] / 3.0, last["realized_sharpe"] / 3.0,
                  2.0 * (last["val_accuracy"] - 0.5), *last["settings"], volatility / 0.2 - 1.0]
        # an unmeasured input (no validation row to score: meta-labeling where tsmom held no side) reads as 0
        return torch.tensor(np.clip(np.nan_to_num(values, nan=0.0), -3.0, 3.0), dtype=torch.float32)

    def search(self, state: torch.Tensor, seed: int, train: Callable[[int, Hyper], object]) -> tuple[list, list]:
        """The segment's candidates: `train(j, hyper)` fits candidate j and returns its fit (with
        `.result.best_val`). Returns the proposals and their fits, in order."""
        if self.config.mode == "optuna":
            fits = []

            def evaluate(j: int, action: torch.Tensor) -> float:
                fits.append(train(j, self.decode(action)))
                return fits[-1].result.best_val

            actions = self.optuna.search(self.config.population, seed, evaluate)
            return [Proposal(a, self.decode(a)) for a in actions], fits
        proposals = self.propose(state, torch.Generator().manual_seed(seed))
        return proposals, [train(j, p.hyper) for j, p in enumerate(proposals)]

    def propose(self, state: torch.Tensor, generator: torch.Generator) -> list[Proposal]:
        n = self.config.population
        if self.config.mode == "fixed":
            return [Proposal(torch.zeros(N_ACTIONS), self.fixed) for _ in range(n)]
        if self.config.mode == "random":
            u = torch.rand((n, N_ACTIONS), generator=generator).clamp(1e-4, 1 - 1e-4)
            actions = torch.log(u) - torch.log1p(-u)  # logit: uniform over every bound after squashing
        else:
            with torch.no_grad():
                policy = self.net(state)
            actions = policy.mean + policy.stddev * torch.randn((n, N_ACTIONS), generator=generator)
        return [Proposal(a, self.decode(a)) for a in actions]

    def _step(self, loss: torch.Tensor) -> float:
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
        self.optimizer.step()
        return float(loss.detach())

    def learn_from_validation(self, state: torch.Tensor, proposals: list[Proposal], val_losses: list[float]) -> dict:
        """Reward = minus the validation loss each candidate reached; the population mean is the baseline."""
        rewards = -np.nan_to_num(np.asarray(val_losses, dtype=float), nan=FAILED_VALUE, posinf=FAILED_VALUE)
        info = {"tuner_val_rewards": rewards.tolist(), "tuner_val_loss": float("nan")}
        if self.config.mode == "network" and len(proposals) > 1 and rewards.std() > 0:
            advantages = torch.tensor((rewards - rewards.mean()) / rewards.std(), dtype=torch.float32)
            log_probs = self.net(state).log_prob(torch.stack([p.action for p in proposals])).sum(-1)
            info["tuner_val_loss"] = self._step(-(advantages * log_probs).mean())
        return info

    def learn_from_outcome(self, state: torch.Tensor, chosen: Proposal, realized_sharpe: float) -> dict:
        """Reward = the realized out-of-sample Sharpe of the chosen candidate, against a running mean."""
        advantage = float(np.clip(realized_sharpe, -5, 5) - self.realized_baseline)
        info = {"tuner_realized_reward": advantage, "tuner_realized_loss": float("nan")}
        if self.config.mode == "network":
            log_prob = self.net(state).log_prob(chosen.action).sum()
            info["tuner_realized_loss"] = self._step(-advantage * log_prob / 3.0)
        self.realized_baseline = (REALIZED_BASELINE_DECAY * self.realized_baseline
                                  + (1 - REALIZED_BASELINE_DECAY) * float(np.clip(realized_sharpe, -5, 5)))
        self.last["realized_sharpe"] = float(realized_sharpe)
        return info

    def remember(self, chosen: Proposal, fit: FitResult, val_accuracy: float, val_sharpe: float) -> None:
        """The chosen candidate's validation record: part of the next segment's state."""
        improvement = (fit.first_val - fit.best_val) / max(abs(fit.first_val), 1e-8)
        self.last.update(val_improvement=float(np.nan_to_num(improvement)),
                         val_loss=float(np.nan_to_num(fit.best_val)), val_sharpe=float(np.nan_to_num(val_sharpe)),
                         val_accuracy=val_accuracy,
                         settings=torch.sigmoid(chosen.action).tolist())

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "realized_baseline": self.realized_baseline, "last": self.last, "optuna": self.optuna.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.realized_baseline = state["realized_baseline"]
        self.last = state["last"]
        self.optuna.load_state_dict(state["optuna"])
