"""PositionTrader: the deep-momentum core's side of the walk-forward, one cycle per segment.

    fit(train window):  per asset an AssetSeries of momentum.py's inputs -> the tuner proposes
                        tuner.population hyperparameter sets -> each trains timing.seeds position
                        nets (seed line by seed line, each warm-started from its line's net of the
                        last segment), scored by the validation portfolio's net Sharpe -> the tuner
                        learns from the scores -> the best meta.neural_members nets, averaged, are
                        the neural member -> the meta-learner weighs it against tsmom and macd
                        -> a PositionBundle
    (the walk-forward trades the bundle in PositionStrategy)
    feedback(window):   each member's realized returns on the test window update the meta-learner;
                        the realized Sharpe of the tuner's chosen candidate rewards the tuner

Everything is credited as the strategy trades (momentum.held_returns, momentum.net_returns): a
weight decided on bar t's close fills at the next open and is held to the open after (open to
open), less the asset's cost x |change of weight|. The nets train and are validated on that
return; each member's record is its own vol-scaled book, equal weight over the traded assets.
Every random draw is seeded by (seed, segment, seed line), so a resumed run repeats exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from . import metrics, momentum, timeframe
from .checkpoint import cpu_state
from .config import Config
from .costs import asset_costs
from .data import traded
from .errors import ConfigError
from .features import average_true_range
from .networks.position import PositionEnsemble
from .position_bundle import (
    MEMBERS,
    PositionBundle,
    PositionMembers,
    PositionSpec,
    ensemble_from,
    ensemble_payload,
    net_args,
)
from .runtime import configure
from .splits import Segment
from .training.brackets import bracket_reach, bracket_returns
from .training.loop import FitResult, Hyper
from .training.meta import Meta, equal_weight
from .training.position_risk import Entries, entry_rows, fit_risk, grid
from .training.position_sizer import Window, fit_sizer
from .training.position_trainer import AssetSeries, PositionFit, ensemble, fit_position_net, positions
from .training.samples import open_reach
from .training.tuner import Proposal, Tuner

SEED_LINES = 8  # candidate j's seed k continues line j * SEED_LINES + k (config: at most 8 of each)
SIZING_WINDOWS = 5  # realized test windows the sizing and risk nets learn from: the latest five years
RET_63D = momentum.INPUTS.index("ret_63d")


def position_spec(config: Config, book_scale: float = 1.0) -> PositionSpec:
    """The config's position-mode settings. The vol target, span, cap, tsmom lookback and rebalance band
    are strategy.*'s, as the vol-scaled baselines read them; the band, like theirs, is a share of one
    asset's weight (the book scale)."""
    s, t = config.strategy, config.timing
    return PositionSpec(length=t.length, vol_target=s.vol_target, vol_span=s.vol_window, max_leverage=s.max_leverage,
                        max_weight=config.sizing.max_fraction, max_gross=config.sizing.max_gross,
                        buffer=s.rebalance_band * book_scale, long_only=not s.allow_short, cooldown=t.cooldown,
                        risk=t.risk_mode, fixed_stop_atr=config.risk.fixed_stop_atr,
                        fixed_take_atr=config.risk.fixed_take_atr, tsmom_lookback=s.tsmom_lookback)


def check_train_bars(config: Config) -> None:
    """The first train window's fit part (before its validation tail) must hold one sequence of rows
    with full inputs: refused before anything trains, in one line."""
    wf = config.walkforward
    fit_bars = wf.train_bars - wf.validation_bars(wf.train_bars)
    need = momentum.INPUT_BARS + config.timing.length
    if fit_bars < need:
        raise ConfigError(f"walkforward.train_bars ({wf.train_bars}) leaves {fit_bars} bars before the validation "
                          f"tail; timing.mode 'position' needs {need} there ({momentum.INPUT_BARS} bars of input "
                          f"history and a sequence of timing.length {config.timing.length}): raise "
                          f"walkforward.train_bars to {math.ceil(need / (1 - wf.val_fraction)) + 1} or more, or lower "
                          "timing.length")


def core_book_scale(train: dict[str, pd.DataFrame], config: Config) -> float:
    """1 / the number of traded assets whose train window holds the core's warm-up (tsmom's equal risk
    budget per asset): the core's book, and its vol-scaled baselines' on the same segment."""
    warmup = position_spec(config).warmup_bars
    return 1.0 / max(1, sum(len(frame) >= warmup for frame in traded(train, config.data).values()))


def asset_series(name: str, frame: pd.DataFrame, fit_end: int, cost: float, spec: PositionSpec) -> AssetSeries:
    """One asset's train window as the position trainer reads it: rows before `fit_end` are fitted on,
    the rest of the frame is its validation tail."""
    close = frame["close"].to_numpy(dtype=float)
    return AssetSeries(name, momentum.inputs(close), momentum.held_returns(frame["open"].to_numpy(dtype=float)),
                       momentum.vol_scale(close, spec.vol_target, spec.vol_span, spec.max_leverage), cost,
                       frame.index.to_numpy(), fit_end, len(frame), reach=open_reach(1))


def member_returns(members: PositionMembers, name: str, frame: pd.DataFrame, start: int, cost: float,
                   candidate: PositionEnsemble | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(dates (T,), net returns (M, T)) of each of the members (and of `candidate`, a last row),
    vol-scaled, on the rows of `frame` from `start` whose hold ends inside the frame. The first change
    of weight is measured from the bar before `start`; a bar without a position is flat."""
    # positions read a fixed number of bars back: the bars before that would change nothing, only cost time
    lead = max(0, start - members.warmup_bars)
    frame, start = frame.iloc[lead:], start - lead
    close, open_ = (frame[c].to_numpy(dtype=float) for c in ("close", "open"))
    rows = np.arange(max(start - 1, 0), len(frame))
    held = members.positions(close, name, rows)                                              # (3, R)
    if candidate is not None:
        row = positions(candidate, momentum.inputs(close), rows, members.spec.length, members.asset_id(name))
        held = np.vstack([held, row[None]])                                                  # (4, R)
    spec = members.spec
    weight = np.nan_to_num(held * momentum.vol_scale(close, spec.vol_target, spec.vol_span, spec.max_leverage)[rows])
    earned = momentum.held_returns(open_)[rows]
    keep = (rows >= start) & np.isfinite(earned)
    return frame.index.to_numpy()[rows[keep]], momentum.net_returns(weight, earned, cost)[:, keep]


def realized(bundle: PositionBundle, windows: dict[str, pd.DataFrame], first_test, costs: dict,
             horizon: int) -> tuple[Window, Entries]:
    """The sizing and risk nets' records of a traded test window, from `first_test` on: per asset and
    day, the bundle's state, its weight before the multiplier and what that weight earned (open to
    open); per entry of a side whose `horizon` bars after it lie inside the window, the return of each
    bracket of the risk net's grid, net of a round trip's cost."""
    stops, takes = grid()
    days = lambda frame, rows: frame.index.to_numpy()[rows].astype("datetime64[D]").astype(np.int64)  # noqa: E731
    sized, entered = [], []
    for name, frame in windows.items():
        start = int(frame.index.searchsorted(first_test))
        frame = frame.iloc[max(0, start - bundle.warmup_bars):]       # the bars the positions read, no more
        start = int(frame.index.searchsorted(first_test))
        o, h, low, c = (frame[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close"))
        unsized, state = bundle.unsized_weights(c, name)
        earned = momentum.held_returns(o)
        rows = np.arange(start, len(frame))
        rows = rows[np.isfinite(earned[rows]) & np.isfinite(unsized[rows]) & np.isfinite(state[rows]).all(axis=1)]
        first = np.zeros(len(rows), dtype=bool)
        first[:1] = True
        sized.append((state[rows], unsized[rows], earned[rows], np.full(len(rows), costs[name]), days(frame, rows),
                      first))
        atr = average_true_range(h, low, c)
        entries = entry_rows(unsized, start, len(frame) - bracket_reach(horizon))  # row + reach < the window's end
        entries = entries[np.isfinite(atr[entries]) & np.isfinite(state[entries]).all(axis=1)]
        outcomes = np.zeros((len(entries), len(stops)))
        for side in (1, -1):
            mine = np.sign(unsized[entries]) == side
            if mine.any():
                outcomes[mine] = bracket_returns(o, h, low, c, atr, entries[mine], stops, takes, horizon, side,
                                                 2 * costs[name])
        entered.append((state[entries], outcomes, days(frame, entries)))
    return (Window(*(np.concatenate([part[k] for part in sized]) for k in range(6))),
            Entries(*(np.concatenate([part[k] for part in entered]) for k in range(3))))


def books(parts: list[tuple[np.ndarray, np.ndarray]], members: int) -> np.ndarray:
    """(members, T) each member's equal-weight book over the assets (per date, the mean of those trading)."""
    parts = [(dates, returns) for dates, returns in parts if len(dates)]
    if not parts:
        return np.zeros((members, 0))
    dates = tuple(d for d, _ in parts)
    return np.stack([equal_weight(dates, tuple(r[m] for _, r in parts)) for m in range(members)])


@dataclass(frozen=True)
class PositionPending:
    """What feedback() needs of the last fit: the bundle that trades the window, the tuner's state and
    chosen proposal, the meta-learner's inputs, and the chosen candidate's nets (its realized Sharpe
    rewards the tuner)."""

    bundle: PositionBundle
    state: torch.Tensor
    proposal: Proposal
    meta_inputs: dict
    candidate: PositionEnsemble

    def to_state(self) -> dict:
        """As plain tensors and numbers (the bundle aside)."""
        return {"state": self.state, "meta_inputs": dict(self.meta_inputs), "proposal": self.proposal.to_state(),
                "candidate": ensemble_payload(self.candidate) | {"args": net_args(self.candidate.nets[0])}}

    @classmethod
    def from_state(cls, state: dict, bundle: PositionBundle) -> "PositionPending":
        candidate = state["candidate"]
        return cls(bundle, state["state"], Proposal.from_state(state["proposal"]), state["meta_inputs"],
                   ensemble_from(candidate, candidate["args"]))


@dataclass
class Candidate:
    """One proposal of the tuner trained with every seed; `result.best_val` is minus the seeds' mean
    validation Sharpe: the loss the tuner ranks candidates by."""

    fits: list[PositionFit]
    result: FitResult

    @classmethod
    def of(cls, fits: list[PositionFit]) -> "Candidate":
        return cls(fits, FitResult(epochs=max(f.result.epochs for f in fits),
                                   best_val=-float(np.mean([f.val_sharpe for f in fits])),
                                   first_val=float(np.mean([f.result.first_val for f in fits]))))


class PositionTrader:
    """Trains the deep-momentum core on each train window; trades its PositionBundle in PositionStrategy."""

    name = "neural"

    def __init__(self, config: Config, source: str = ""):
        self.config = config
        self.source = source
        # one thread per process ran 3-10x faster than two on a loaded 2-core box: train.threads = 1 there
        self.device = configure(config.train.device, config.train.threads)
        check_train_bars(config)
        self.warmup_bars = position_spec(config).warmup_bars
        with torch.random.fork_rng(devices=[]):  # the same initial nets whatever ran before in this process
            torch.manual_seed(config.seed)
            self.tuner = Tuner(config.tuner, config.train, config.timing.dropout)
            self.meta = Meta(config.meta)
        self.warm: dict[int, dict] = {}   # seed line -> the weights its net ended the last segment with
        self.realized: list[Window] = []  # the latest SIZING_WINDOWS test windows traded: the sizing net's data
        self.entries: list[Entries] = []  # and their entries of sides: the risk net's
        self.pending: PositionPending | None = None  # what feedback needs of the last fit
        self.last_fit: dict = {}

    @property
    def strategy(self) -> type:
        from .plugin.position import PositionStrategy  # the plugin's side, imported when a backtest needs it
        return PositionStrategy

    def costs(self, names: list[str]) -> dict[str, float]:
        """Each asset's cost per side, as a fraction of the traded value (commission + slippage)."""
        # backtest.costs may name assets that join the universe after this train window: they count as
        # known here; the backtest checks every key against the whole universe
        table = asset_costs(self.config, names + [key for key in self.config.backtest.costs])
        return {name: sum(table[name]) / 1e4 for name in names}

    def fit(self, train: dict[str, pd.DataFrame], segment: Segment, calendar: pd.DatetimeIndex) -> dict:
        config = self.config
        names = list(train)
        val_start = calendar[segment.val_start]
        book_scale = core_book_scale(train, config)
        spec = position_spec(config, book_scale)
        costs = self.costs(names)
        pool = [asset_series(name, frame, int(frame.index.searchsorted(val_start)), costs[name], spec)
                for name, frame in train.items()]
        seed = config.seed * 1000 + segment.index
        # the state the tuner and the meta-learner read: the volatility level and the 63-day trend at the
        # end of the train window, averaged over the assets
        volatility = float(np.nan_to_num(np.nanmean([last_vol(frame, spec) for frame in train.values()]), nan=0.2))
        trend = float(np.nan_to_num(np.nanmean([series.inputs[-1, RET_63D] for series in pool])))
        regime = np.array([volatility / 0.2 - 1.0, trend / 2.0])
        state = self.tuner.state(volatility)
        proposals, candidates = self.tuner.search(state, seed, lambda j, hyper: self.candidate(pool, j, hyper, seed,
                                                                                            spec))
        val_losses = [c.result.best_val for c in candidates]
        tuner_info = self.tuner.learn_from_validation(state, proposals, val_losses)
        best = int(np.argsort(val_losses, kind="stable")[0])
        # no accuracy for a position: the tuner reads that input as unmeasured (0)
        self.tuner.remember(proposals[best], candidates[best].result, math.nan, -val_losses[best])
        for j, candidate in enumerate(candidates):
            for k, fitted in enumerate(candidate.fits):
                self.warm[j * SEED_LINES + k] = cpu_state(fitted.net)
        net = ensemble([f for c in candidates for f in c.fits], config.meta.neural_members).cpu()
        meta = {"source": self.source, "assets": names, "segment": segment.index,
                "train_start": str(calendar[segment.train_start].date()),
                "train_end": str(max(frame.index[-1] for frame in train.values()).date())}
        sizer, sizer_info = (fit_sizer(self.realized, seed, config.sizing.hidden, config.sizing.max_multiplier,
                                       config.sizing.anchor) if config.sizing.enabled else (None, {}))
        risk_net, risk_info = (fit_risk(self.entries, seed, config.risk.hidden) if spec.risk == "net"
                               else (None, {}))
        # the members' validation records on the tails' rank half (the stop half stopped the nets), over
        # the assets traded, credited as the strategy trades them (see the module's docstring)
        members, trading = PositionMembers(spec, net, tuple(names)), traded(train, config.data)
        val_books = books([member_returns(members, s.name, train[s.name], s.stop_end, s.cost)
                           for s in pool if s.name in trading], len(MEMBERS))
        val_sharpes = [metrics.sharpe(r) for r in val_books]
        meta_inputs = self.meta.inputs(list(MEMBERS), val_sharpes, regime)
        weights, _ = self.meta.weigh(meta_inputs)  # trust: the sizing and risk nets are kept or not by their gates
        bundle = PositionBundle(spec, net, tuple(float(w) for w in weights), book_scale, sizer, risk_net,
                                timeframe.of_index(calendar[:segment.train_end]), meta, tuple(names))
        chosen = candidates[best]
        self.pending = PositionPending(bundle, state, proposals[best], meta_inputs, PositionEnsemble(
            [f.net for f in chosen.fits], [f.val_sharpe for f in chosen.fits], [f.seed for f in chosen.fits]).cpu())
        hyper = proposals[best].hyper
        self.last_fit = {"lr": hyper.lr, "batch_size": hyper.batch_size, "dropout": hyper.dropout,
                         "weight_decay": hyper.weight_decay, "book_scale": bundle.book_scale,
                         "candidates": [{"lr": p.hyper.lr, "batch_size": p.hyper.batch_size,
                                         "dropout": p.hyper.dropout, "weight_decay": p.hyper.weight_decay,
                                         "val_loss": c.result.best_val, "epochs": c.result.epochs,
                                         "rollbacks": sum(f.result.rollbacks for f in c.fits)}
                                        for p, c in zip(proposals, candidates)],
                         "ensemble_seeds": list(net.seeds), "ensemble_val_sharpes": list(net.val_sharpes),
                         "weights": dict(zip(MEMBERS, bundle.weights)), "val_sharpes": dict(zip(MEMBERS, val_sharpes)),
                         **sizer_info, **risk_info, **tuner_info}
        return {"bundle": bundle, "cash_buffer": config.backtest.cash_buffer}

    def candidate(self, pool: list[AssetSeries], j: int, hyper: Hyper, seed: int, spec: PositionSpec) -> Candidate:
        """Proposal j trained with every seed, each seed line warm-started from its last net."""
        t, train = self.config.timing, self.config.train
        fits = []
        for k in range(t.seeds):
            line = j * SEED_LINES + k
            warm = self.warm.get(line)
            fits.append(fit_position_net(pool, hyper, seed * SEED_LINES ** 2 + line, length=t.length, hidden=t.hidden,
                                         heads=t.heads, embed=t.embed, burn_in=t.burn_in,
                                         long_only=spec.long_only,
                                         loss="direction" if t.loss == "direction" else "sharpe",
                                         epochs=train.max_epochs if warm is not None else train.first_epochs,
                                         patience=train.patience, warm_state=warm, device=str(self.device)))
        return Candidate.of(fits)

    def feedback(self, segment: Segment, result, windows: dict[str, pd.DataFrame]) -> dict:
        """Learn from the test window just traded: `windows` are each traded asset's bars (warm-up, then
        the test window, which starts at the first date of result.returns)."""
        pending, self.pending = self.pending, None
        bundle, costs = pending.bundle, self.costs(list(windows))
        first_test = result.returns.index[0]
        parts = [member_returns(bundle.members, name, frame, int(frame.index.searchsorted(first_test)), costs[name],
                                pending.candidate)
                 for name, frame in windows.items()]
        records = books(parts, len(MEMBERS) + 1)                                    # (members + candidate, T)
        meta_info = self.meta.update(pending.meta_inputs, list(MEMBERS), records[:len(MEMBERS)],
                                     np.zeros((0, 2)), np.zeros((0, 2)))
        candidate_sharpe = metrics.sharpe(records[-1])
        window, entries = realized(bundle, windows, first_test, costs, self.config.risk.horizon)
        self.realized = (self.realized + [window])[-SIZING_WINDOWS:]
        self.entries = (self.entries + [entries])[-SIZING_WINDOWS:]
        tuner_info = self.tuner.learn_from_outcome(pending.state, pending.proposal, candidate_sharpe)
        return self.last_fit | {"member_oos_sharpes": meta_info.pop("member_sharpes"),
                                "candidate_oos_sharpe": candidate_sharpe, **meta_info, **tuner_info}

    def pending_state(self) -> dict:
        """What feedback() will need of the last fit, as plain tensors and numbers (the bundle aside): a
        bundle written by `nt-backtrader train` carries it to the `update` that feeds its window back."""
        return self.pending.to_state()

    def load_pending(self, state: dict, bundle: PositionBundle) -> None:
        self.pending = PositionPending.from_state(state, bundle)

    def state_dict(self) -> dict:
        return {"tuner": self.tuner.state_dict(), "meta": self.meta.state_dict(), "warm": dict(self.warm),
                "realized": [window.to_state() for window in self.realized],
                "entries": [entries.to_state() for entries in self.entries]}

    def load_state_dict(self, state: dict) -> None:
        self.tuner.load_state_dict(state["tuner"])
        self.meta.load_state_dict(state["meta"])
        self.warm = {int(line): weights for line, weights in state["warm"].items()}
        self.realized = [Window.from_state(window) for window in state.get("realized", [])]
        self.entries = [Entries.from_state(entries) for entries in state.get("entries", [])]


def last_vol(frame: pd.DataFrame, spec: PositionSpec) -> float:
    """The annualised ex-ante volatility at the frame's last bar (from the bars it needs only)."""
    bars = momentum.VOL_SPANS_KEPT * spec.vol_span + 1
    return float(momentum.ex_ante_vol(frame["close"].to_numpy(dtype=float)[-bars:], spec.vol_span)[-1])
