"""Coordinator: one cycle per segment in which the networks train and improve each other.

    fit(train window):  the tuner proposes hyperparameters -> timing candidates train and are
                        scored on the validation tail -> the tuner is rewarded -> the
                        meta-learner weighs the best candidates and the classical members and
                        sets its trust -> the sizer and the risk net train on the ensemble -> the
                        bundle is made once, from these finished parts
    (the walk-forward backtests the test window)
    feedback(window):   the realized window updates the meta-learner (members' returns, the
                        sizer and risk net against their twins) and rewards the tuner again

Every random draw is seeded by (seed, segment, candidate), so a resumed run repeats exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..bracket_levels import BracketLevels
from ..bundle import Bundle
from ..checkpoint import cpu_state
from ..config import Config, to_toml
from ..decisions import unit_rule_returns
from ..entry_sizing import EntrySizer
from ..features import RET_63D, VOL_21D, average_true_range, compute_features
from ..networks.timing import SeedAverage
from ..timeframe import DAILY
from ..timing_ensemble import TimingEnsemble, TimingMembers
from .brackets import bracket_reach, bracket_returns
from .meta import Meta, equal_weight
from .samples import OHLCV, AssetWindow, pooled_scaler
from .trainer import NeuralTrainer, book_scale, network_args
from .tuner import Proposal, Tuner

MIN_BRACKET_PATH = 3
SEED_LINES = 8  # candidate j of a segment trains with seed * 16 + j, seed line k with seed * 16 + 8 + k


@dataclass
class AssetFeedback:
    """One asset's test window, as plain arrays."""

    arrays: dict               # OHLCV (and dates) of the backtest window: warm-up bars, then the test bars
    first_test: int            # index of the first test bar in `arrays`
    entries: np.ndarray        # (n, 5): decision bar, direction, network fraction, twin fraction, trade return


@dataclass
class Feedback:
    """What the walk-forward hands back after a test window: per asset, and the portfolio's Sharpe."""

    assets: dict               # asset name -> AssetFeedback
    realized_sharpe: float     # of the portfolio's daily returns over the test window


@dataclass(frozen=True)
class Pending:
    """What feedback() needs of the last fit: the tuner's state and chosen proposal, the meta-learner's
    inputs and members, and the bundle that trades the window."""

    state: torch.Tensor
    chosen: Proposal | None
    meta_inputs: dict
    members: list
    bundle: Bundle

    def to_state(self) -> dict:
        """As plain tensors and numbers (the bundle aside): what a bundle written by `train` carries."""
        return {"state": self.state, "meta_inputs": dict(self.meta_inputs), "members": list(self.members),
                "chosen": None if self.chosen is None else self.chosen.to_state()}

    @classmethod
    def from_state(cls, state: dict, bundle: Bundle) -> "Pending":
        chosen = state["chosen"]
        return cls(state["state"], None if chosen is None else Proposal.from_state(chosen), state["meta_inputs"],
                   state["members"], bundle)


def regime(pool) -> np.ndarray:
    """Volatility level and 63-day trend at the end of the train window, roughly unit scale; the
    mean over the assets."""
    last = np.array([samples.features[-1] for samples in pool])
    return np.array([last[:, VOL_21D].mean() / 0.2 - 1.0, last[:, RET_63D].mean() / 2.0])  # ret_63d in sigma units


class Coordinator:
    def __init__(self, config: Config, device: torch.device | None = None):
        self.config = config
        self.trainer = NeuralTrainer(config, device)
        with torch.random.fork_rng(devices=[]):  # the same initial nets whatever ran before in this process
            torch.manual_seed(config.seed)
            self.tuner = Tuner(config.tuner, config.train, config.timing.dropout)
            self.meta = Meta(config.meta)
        self.pending: Pending | None = None

    @property
    def spec(self):
        return self.trainer.spec

    def fit(self, assets: dict[str, AssetWindow], segment: int, meta: dict | None = None,
            timeframe: tuple = DAILY, portfolio_scale: float | None = None) -> tuple[Bundle, dict]:
        """One cycle on the train windows of `assets` (name -> AssetWindow; pooled training): the bundle
        that trades bars of `timeframe`, and what to record. Its fractions are scaled for the portfolio
        of `assets`, or by `portfolio_scale` (an asset trained alone and traded in a universe)."""
        seed = self.config.seed * 1000 + segment
        pool = self.trainer.prepare(assets)
        state = self.tuner.state(float(np.mean([samples.features[-1, VOL_21D] for samples in pool])))
        neural, chosen, info = self._timing_round(pool, state, seed)
        names = [f"neural_{i + 1}" for i in range(len(neural))] + list(self.config.meta.classical_members)
        members = TimingMembers(tuple(net.cpu() for net in neural), tuple(names))
        sizing, risk = self.trainer.heads(seed)
        val_outputs = self.trainer.validation_outputs(members, pool)
        val_sharpes = self.trainer.validation_sharpes(members, pool, val_outputs)
        if chosen:  # what the tuner reads next segment: how the chosen candidate did on the validation tail
            proposal, fitted = chosen
            self.tuner.remember(proposal, fitted.result, fitted.val_accuracy, val_sharpes[0])
        meta_inputs = self.meta.inputs(names, val_sharpes, regime(pool))
        weights, trust = self.meta.weigh(meta_inputs)
        ensemble = TimingEnsemble(members, tuple(float(w) for w in weights))
        sizing_trust, risk_trust = (float(t) for t in trust)
        # chosen before the sizer and the risk net learn the positions it takes
        spec, rule_info = self.trainer.choose_rule(ensemble, BracketLevels(risk, risk_trust), pool, val_outputs)
        scale = book_scale(self.config, [samples.arrays for samples in pool])
        sizing, risk, limits, finish_info = self.trainer.finish(ensemble, spec, sizing, risk, pool, seed, scale)
        dropout = chosen[0].hyper.dropout if chosen else self.config.timing.dropout
        bundle = Bundle(spec, ensemble, BracketLevels(risk, risk_trust),
                        EntrySizer(sizing, sizing_trust, scale if portfolio_scale is None else portfolio_scale,
                                   limits),
                        pooled_scaler(pool), {samples.name: samples.scaler for samples in pool},
                        network_args(self.config, dropout), timeframe,
                        (meta or {}) | {"config": to_toml(self.config)})  # the experiment that trained it
        self.pending = Pending(state, chosen[0] if chosen else None, meta_inputs, names, bundle)
        # rollbacks: every network of the segment; the sizer's and the risk net's also on their own
        rollbacks = info["rollbacks"] + finish_info["sizing_rollbacks"] + finish_info["risk_rollbacks"]
        return bundle, {**info, "weights": dict(zip(names, ensemble.weights)),
                        "val_sharpes": dict(zip(names, val_sharpes)), "sizing_trust": sizing_trust,
                        "risk_trust": risk_trust, **rule_info, **finish_info, "rollbacks": rollbacks}

    def _timing_round(self, pool, state: torch.Tensor, seed: int):
        """The tuner proposes, the candidates train and are scored, the tuner learns from the scores.

        Returns the ranked neural members, the (proposal, fit) chosen, and what to record.
        """
        n_members = self.config.meta.neural_members
        nan = float("nan")
        if n_members == 0:  # the classical-members-only ablation trains no timing net
            return [], None, {"lr": nan, "batch_size": nan, "dropout": nan, "weight_decay": nan, "candidates": [],
                              "timing_epochs": 0, "timing_val_loss": nan, "timing_val_accuracy": nan, "rollbacks": 0}
        proposals, fits = self.tuner.search(state, seed, lambda j, hyper: self.trainer.fit_timing(pool, hyper,
                                                                                             seed * 16 + j))
        val_losses = [f.result.best_val for f in fits]
        tuner_info = self.tuner.learn_from_validation(state, proposals, val_losses)
        order = np.argsort(val_losses, kind="stable")
        best = int(order[0])
        chosen = fits[best]
        hyper = proposals[best].hyper
        # the seed ensemble: more nets of the chosen hyperparameters, each continuing its own seed line
        others = [self.trainer.fit_timing(pool, hyper, seed * 16 + SEED_LINES + k, line=k)
                  for k in range(1, self.config.timing.seeds)]
        self.trainer.warm["timing"] = cpu_state(chosen.net)
        self.trainer.warm["timing_seeds"] = [cpu_state(f.net) for f in others]
        nets = [fits[j].net for j in order[:n_members]]
        if others and nets:
            nets[0] = SeedAverage([chosen.net] + [f.net for f in others])
        info = {"lr": hyper.lr, "batch_size": hyper.batch_size, "dropout": hyper.dropout,
                "weight_decay": hyper.weight_decay,
                "candidates": [{"lr": p.hyper.lr, "batch_size": p.hyper.batch_size, "dropout": p.hyper.dropout,
                                "weight_decay": p.hyper.weight_decay, "val_loss": f.result.best_val,
                                "epochs": f.result.epochs, "rollbacks": f.result.rollbacks}
                               for p, f in zip(proposals, fits)],
                "timing_epochs": chosen.result.epochs, "timing_val_loss": chosen.result.best_val,
                "timing_val_accuracy": chosen.val_accuracy, "rollbacks": int(sum(f.result.rollbacks for f in fits)),
                **tuner_info}
        return nets, (proposals[best], chosen), info

    def feedback(self, fb: Feedback) -> dict:
        """Learn from the test window that was just traded."""
        pending, self.pending = self.pending, None
        bundle = pending.bundle
        spec, cost = self.spec, self.trainer.cost()
        dates, returns, sizing_pairs, risk_pairs = [], [], [], []
        for name, asset in fb.assets.items():
            close = np.asarray(asset.arrays["close"], dtype=float)
            scaled = bundle.scaler_for(name).transform(compute_features(*(asset.arrays[k] for k in OHLCV)))
            p_long, p_short = bundle.member_probabilities(scaled, close, np.arange(len(close)))
            test = slice(asset.first_test, None)
            returns.append(np.stack([unit_rule_returns(np.nan_to_num(pl, nan=0.0), np.nan_to_num(ps, nan=0.0),
                                                       close, spec, cost)[test] for pl, ps in zip(p_long, p_short)]))
            dates.append(asset.arrays["dates"][test])
            sizing_pairs += [(net * r, twin * r) for _, _, net, twin, r in asset.entries if np.isfinite(r)]
            risk_pairs.append(self._bracket_pairs(bundle, asset, scaled))
        # each member's rule on every asset at unit size, as one equal-weight book
        member_returns = np.stack([equal_weight(tuple(dates), tuple(r[m] for r in returns))
                                   for m in range(len(pending.members))])
        meta_info = self.meta.update(pending.meta_inputs, pending.members, member_returns,
                                     np.asarray(sizing_pairs, dtype=float).reshape(-1, 2),
                                     np.concatenate(risk_pairs))
        tuner_info = (self.tuner.learn_from_outcome(pending.state, pending.chosen, fb.realized_sharpe)
                      if pending.chosen is not None else {})
        member_oos_sharpes = meta_info.pop("member_sharpes")
        return {**meta_info, **tuner_info, "member_oos_sharpes": member_oos_sharpes}

    def _bracket_pairs(self, bundle: Bundle, fb: AssetFeedback, scaled: np.ndarray) -> np.ndarray:
        """Per entry: the outcome of the risk net's bracket and of the fixed one on the realized path."""
        a = {k: np.asarray(v, dtype=float) for k, v in fb.arrays.items()}
        atr = average_true_range(a["high"], a["low"], a["close"])
        pairs = []
        for bar, direction, *_ in fb.entries:
            bar, direction = int(bar), int(direction)
            # the longest path that still ends inside the window: bar + bracket_reach(horizon) < its bars
            horizon = min(self.config.risk.horizon, len(a["close"]) - 1 - bar - bracket_reach(0))
            if horizon < MIN_BRACKET_PATH or not np.isfinite(atr[bar]):
                continue
            stop, take = bundle.bracket_levels.net_levels(scaled[bar:bar + 1], float(direction))
            out = bracket_returns(a["open"], a["high"], a["low"], a["close"], atr, np.array([bar]),
                                  np.array([float(stop[0]), bundle.spec.fixed_stop_atr]),
                                  np.array([float(take[0]), bundle.spec.fixed_take_atr]), horizon, direction)
            pairs.append(out[0])
        return np.asarray(pairs, dtype=float).reshape(-1, 2)

    # --- checkpoint ---------------------------------------------------------------------------
    def pending_state(self) -> dict:
        """What feedback() will need of the last fit, as plain tensors and numbers (the bundle aside)."""
        return self.pending.to_state()

    def load_pending(self, state: dict, bundle: Bundle) -> None:
        self.pending = Pending.from_state(state, bundle)

    def state_dict(self) -> dict:
        return {"tuner": self.tuner.state_dict(), "meta": self.meta.state_dict(), "warm": self.trainer.warm}

    def load_state_dict(self, state: dict) -> None:
        self.tuner.load_state_dict(state["tuner"])
        self.meta.load_state_dict(state["meta"])
        self.trainer.warm = dict(state["warm"])

