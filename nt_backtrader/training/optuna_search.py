"""The tuner's anchor: Optuna's TPE choosing the timing net's hyperparameters, at the tuner's budget.

Same search space as the tuner (its unit cube, decoded by the tuner into the same bounds) and
the same number of candidates per segment; each candidate is asked, trained, scored on the
validation tail and told before the next is asked. One study spans the whole walk-forward: the
trials of earlier segments (their validation losses; the windows differ, so this is an
approximation a user of Optuna would make too) guide the later ones. The study is rebuilt from
the recorded trials with a sampler seeded by (seed, segment), so a resumed run repeats exactly.
The sampler keeps Optuna's defaults, as a user would: its first 10 trials (the first four
segments at 3 candidates) are random, TPE proposes from then on.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..networks.tuner import N_ACTIONS

FAILED_VALUE = 10.0   # the loss of a candidate that scored no finite validation loss: worse than any real one
NAMES = tuple(f"u{i}" for i in range(N_ACTIONS))


class OptunaSearch:
    def __init__(self):
        self.trials: list[list[float]] = []  # per trial: the unit-cube point, then its validation loss

    def search(self, n: int, seed: int, evaluate: Callable[[int, torch.Tensor], float]) -> list[torch.Tensor]:
        """Ask `n` points one by one; `evaluate(j, action)` trains candidate j and returns its validation
        loss. Returns the actions (pre-squash, as the tuner's proposals are)."""
        import optuna
        from optuna.distributions import FloatDistribution

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        space = {name: FloatDistribution(0.0, 1.0) for name in NAMES}
        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.add_trials([optuna.trial.create_trial(params=dict(zip(NAMES, t[:-1])), distributions=space, value=t[-1])
                          for t in self.trials])
        actions = []
        for j in range(n):
            trial = study.ask(space)
            u = torch.tensor([trial.params[name] for name in NAMES], dtype=torch.float64).clamp(1e-4, 1 - 1e-4)
            action = torch.logit(u).float()
            loss = evaluate(j, action)
            value = float(loss) if np.isfinite(loss) else FAILED_VALUE
            study.tell(trial, value)
            self.trials.append([*u.tolist(), value])
            actions.append(action)
        return actions

    def state_dict(self) -> dict:
        return {"trials": torch.tensor(self.trials, dtype=torch.float64).reshape(-1, N_ACTIONS + 1)}

    def load_state_dict(self, state: dict) -> None:
        self.trials = state["trials"].tolist()
