"""NeuralTrainer: fits the timing, sizing and risk networks of one segment (the Coordinator makes the Bundle).

Timing candidates train first (warm-started from the last chosen net, early-stopped on the
validation tail); the sizer and the risk net then train on the positions the ensemble's
timing rule takes over the train window. Training is pooled: every network learns from the
rows of every asset of the universe (a `pool` of per-asset samples, each scaled with its own
train-window statistics). Only data up to the end of the train window is ever handed in.
The Coordinator decides which candidates, with which weights.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .. import metrics
from ..bracket_levels import N_RISK_INPUTS, BracketLevels, risk_inputs
from ..checkpoint import cpu_state
from ..config import Config
from ..decisions import AccountRecord, DecisionSpec, decide_positions, state_vector, unit_rule_returns
from ..entry_sizing import N_SIZING_INPUTS
from ..errors import DataError
from ..features import N_FEATURES, VOL_21D, average_true_range, windows
from ..networks import PositionSizingNet, RiskNet, TimingNet
from ..signals import primary_side
from ..timing_ensemble import TimingEnsemble, TimingMembers
from . import losses
from .brackets import bracket_returns
from .limits import choose_limits
from .loop import FitResult, Hyper, fit
from .meta import equal_weight
from .rule_choice import choose_rule, rule_options
from .samples import (
    MIN_SAMPLES,
    MIN_VALIDATION_SAMPLES,
    AssetWindow,
    SegmentSamples,
    forward_return,
    label_reach,
    next_open_return,
    prepare,
)

SHARPE_WEIGHT = 0.1     # the Sharpe loss (about -2..2 per batch) beside cross-entropy (about 0.69)
THREE_CLASS_BAND = 0.5  # with shorts: |forward return| under this many sigmas is 'flat'
HEAD_HYPER = Hyper(lr=3e-3, batch_size=256, dropout=0.0, weight_decay=1e-4)  # the sizer's and risk net's fits


@dataclass
class TimingFit:
    net: TimingNet
    result: FitResult
    val_accuracy: float


def decision_spec(config: Config) -> DecisionSpec:
    t, s, r = config.timing, config.sizing, config.risk
    # the most active of the rule's options: what each member's own signal is judged with
    band = min(t.bands)
    return DecisionSpec(window=t.window, allow_short=config.strategy.allow_short, enter=0.5 + band, exit=0.5 - band,
                        cooldown=min(t.cooldowns), min_hold=min(t.min_holds), bracket_width=min(t.bracket_widths),
                        timing_mode=t.mode,
                        use_sizing=s.enabled, use_risk=r.enabled, vol_target=s.vol_target,
                        max_fraction=s.max_fraction, fixed_stop_atr=r.fixed_stop_atr, fixed_take_atr=r.fixed_take_atr,
                        max_gross=s.max_gross, drawdown_brake=r.drawdown_brake)


def network_args(config: Config, dropout: float) -> dict:
    t, s, r = config.timing, config.sizing, config.risk
    return {"timing": {"n_features": N_FEATURES, "window": t.window, "hidden": t.hidden, "heads": t.heads,
                       "layers": t.layers, "dropout": dropout,
                       # meta-labeling: (skip, take) tsmom's trade; direction: (flat, long) or (short, flat, long)
                       "n_classes": 3 if config.strategy.allow_short and t.mode == "direction" else 2},
            "sizing": {"n_inputs": N_SIZING_INPUTS, "hidden": s.hidden, "vol_target": s.vol_target,
                       "max_fraction": s.max_fraction, "max_multiplier": s.max_multiplier},
            "risk": {"n_inputs": N_RISK_INPUTS, "hidden": r.hidden}}


class NeuralTrainer:
    """The per-segment fits: timing candidates, then the sizer and the risk net on the ensemble's
    positions. Warm starts come from `warm` (the last segment's chosen nets)."""

    def __init__(self, config: Config, device: torch.device | None = None):
        self.config = config
        self.spec = decision_spec(config)
        self.device = device or torch.device("cpu")
        self.warm: dict = {"timing": None, "timing_seeds": [], "sizing": None, "risk": None}

    def prepare(self, assets: dict[str, AssetWindow]) -> list[SegmentSamples]:
        return [prepare(name, a.arrays, a.train_start, a.val_start, self.config.timing.window)
                for name, a in assets.items()]

    def cost(self) -> float:
        """One side's cost per unit traded, as a fraction: commission plus slippage, each charged per
        side; a round trip pays twice this."""
        b = self.config.backtest
        return (b.commission_bps + b.slippage_bps) / 1e4

    # --- timing -----------------------------------------------------------------------------
    def timing_labels(self, pool: list[SegmentSamples], rows: list[np.ndarray]) -> dict[str, torch.Tensor]:
        """Per row: the class label, the next open-to-open return, the side the position takes per unit
        of p(long) (meta-labeling: tsmom's side, 0 when it has none) and whether the label counts."""
        h, meta_label = self.config.timing.horizon, self.spec.timing_mode == "meta_label"
        out = {"labels": [], "returns": [], "side": [], "mask": []}
        for samples, r in zip(pool, rows):
            forward = forward_return(samples.arrays["close"], r, h)
            if meta_label:
                side = primary_side(samples.arrays["close"], self.spec.allow_short)[r]
                out["labels"].append((side * forward > 0).astype(int))   # take the trade: it earned
                out["side"].append(side)
                out["mask"].append(side != 0)
            else:
                if self.spec.allow_short:
                    band = THREE_CLASS_BAND * samples.features[r, VOL_21D] / np.sqrt(252.0) * np.sqrt(h)
                    out["labels"].append(np.where(forward > band, 2, np.where(forward < -band, 0, 1)))
                else:
                    out["labels"].append((forward > 0).astype(int))
                out["side"].append(np.ones(len(r)))
                out["mask"].append(np.ones(len(r), dtype=bool))
            out["returns"].append(next_open_return(samples.arrays["open"], r))
        kinds = {"labels": torch.long, "returns": torch.float32, "side": torch.float32, "mask": torch.bool}
        return {k: torch.as_tensor(np.concatenate(v), dtype=kinds[k], device=self.device) for k, v in out.items()}

    def fit_timing(self, pool: list[SegmentSamples], hyper: Hyper, seed: int, line: int = 0) -> TimingFit:
        """Train one timing candidate on every asset's rows, warm-started from the last net of its seed line
        (line 0: the chosen candidate's; lines 1..seeds-1: the seed ensemble's other members)."""
        cfg, train = self.config.timing, self.config.train
        rng = np.random.default_rng(seed)
        net = self._fresh_timing_net(hyper, seed)
        warm = self.warm_timing(line)
        if warm is not None:
            net.load_state_dict(warm)
        fit_rows, val_rows = pooled_rows(pool, self.config, "timing")
        if count(fit_rows) < MIN_SAMPLES:
            return TimingFit(net.eval(), FitResult(), float("nan"))
        x_fit, fit_y = self._windows(pool, fit_rows), self.timing_labels(pool, fit_rows)
        x_val, val_y = self._windows(pool, val_rows), self.timing_labels(pool, val_rows)
        cost = self.cost()  # the Sharpe loss pays what the backtest pays per unit of position change

        def loss(model, x, y):
            logits = model(x)
            total = torch.zeros((), device=self.device)
            if cfg.loss in ("direction", "both") and bool(y["mask"].any()):
                total = total + losses.direction_loss(logits[y["mask"]], y["labels"][y["mask"]])
            if cfg.loss in ("sharpe", "both"):
                weight = 1.0 if cfg.loss == "sharpe" else SHARPE_WEIGHT
                total = total + weight * losses.sharpe_loss(logits, y["returns"], cost, y["side"])
            return total

        def train_from(start: TimingNet, epochs: int) -> FitResult:
            return fit(start, count(fit_rows), lambda m, i: loss(m, x_fit[i], {k: v[i] for k, v in fit_y.items()}),
                       torch.no_grad()(lambda m: float(loss(m, x_val, val_y))), hyper, epochs,
                       train.patience, rng, train.grad_clip, train.max_samples)

        result = train_from(net, train.max_epochs if warm is not None else train.first_epochs)
        if not np.isfinite(result.best_val):
            # Not even the warm start scores finitely here (a diverged net can keep finite but
            # exploded weights): train a fresh net from scratch, counted as one more rollback.
            earlier = result.rollbacks + 1
            net = self._fresh_timing_net(hyper, seed)
            result = train_from(net, train.first_epochs)
            result.rollbacks += earlier
        with torch.no_grad():
            mask = val_y["mask"]
            predicted = net(x_val[mask]).argmax(-1) if bool(mask.any()) else val_y["labels"][:0]
        accuracy = float((predicted == val_y["labels"][mask]).float().mean()) if len(predicted) else float("nan")
        return TimingFit(net, result, accuracy)

    def warm_timing(self, line: int):
        """The last chosen net of seed line `line`, or None (a fresh start)."""
        if line == 0:
            return self.warm["timing"]
        lines = self.warm.get("timing_seeds") or []
        return lines[line - 1] if line - 1 < len(lines) else None

    def _fresh_timing_net(self, hyper: Hyper, seed: int) -> TimingNet:
        torch.manual_seed(seed)
        return TimingNet(**network_args(self.config, hyper.dropout)["timing"]).to(self.device)

    def _windows(self, pool: list[SegmentSamples], rows: list[np.ndarray]) -> torch.Tensor:
        x = np.concatenate([windows(s.scaled, self.config.timing.window, r) for s, r in zip(pool, rows)])
        return torch.as_tensor(x, dtype=torch.float32, device=self.device)

    # --- the ensemble ---------------------------------------------------------------------------
    def heads(self, seed: int) -> tuple[PositionSizingNet, RiskNet]:
        """The sizing and risk nets this segment starts from: the last segment's, else freshly seeded."""
        args = network_args(self.config, self.config.timing.dropout)
        torch.manual_seed(seed + 2)
        sizing, risk = PositionSizingNet(**args["sizing"]), RiskNet(**args["risk"])
        for name, net in (("sizing", sizing), ("risk", risk)):
            if self.warm[name] is not None:
                net.load_state_dict(self.warm[name])
        return sizing.eval(), risk.eval()

    def member_outputs(self, members: TimingMembers, samples: SegmentSamples, rows: np.ndarray):
        return members.probabilities(samples.scaled, samples.arrays["close"], rows, self.spec)

    def validation_outputs(self, members: TimingMembers, pool: list[SegmentSamples]) -> list[tuple]:
        """Per asset (validation rows, members' p_long, members' p_short): computed once, read by the
        meta-learner's inputs and by the rule's choice (the weights combine them later)."""
        outputs = []
        for samples in pool:
            rows = np.arange(samples.val_start, samples.n)
            outputs.append((rows, *self.member_outputs(members, samples, rows)))
        return outputs

    def validation_sharpes(self, members: TimingMembers, pool: list[SegmentSamples],
                           outputs: list[tuple]) -> list[float]:
        """Each member's unit-size Sharpe over the validation tail (costs on), on the equal-weight
        portfolio of the assets (each asset's rule at unit size, averaged over the assets trading that day)."""
        parts = []
        for samples, (rows, p_long, p_short) in zip(pool, outputs):
            close = samples.arrays["close"][rows]
            dates = samples.arrays["dates"][rows][1:]
            parts.append((dates, [unit_rule_returns(pl[rows], ps[rows], close, self.spec, self.cost())[1:]
                                  for pl, ps in zip(p_long, p_short)]))
        return [metrics.sharpe(equal_weight(*zip(*[(dates, member[m]) for dates, member in parts])))
                for m in range(len(members.names))]

    def choose_rule(self, ensemble: TimingEnsemble, brackets: BracketLevels, pool: list[SegmentSamples],
                    outputs: list[tuple]) -> tuple[DecisionSpec, dict]:
        """The no-trade band, least holding period, re-entry wait and bracket width with the best Sharpe
        on the validation tail, replayed with the ensemble, the brackets and the backtest's costs."""
        options = rule_options(self.spec, self.config.timing)
        best, scores = 0, [float("nan")]
        if len(options) > 1:
            assets = []
            for samples, (rows, members_long, members_short) in zip(pool, outputs):
                a = samples.arrays
                p_long, p_short, _ = ensemble.combine(members_long, members_short, self.spec.allow_short)
                # at width 1: each option scales them by its own
                levels = [np.divide(brackets.distances(samples.scaled[rows], direction, self.spec),
                                    self.spec.bracket_width) for direction in (1.0, -1.0)]
                assets.append({"p_long": p_long[rows], "p_short": p_short[rows],
                               "arrays": {k: a[k][rows] for k in ("open", "high", "low", "close", "dates")},
                               "atr": average_true_range(a["high"], a["low"], a["close"])[rows],
                               "stops": np.stack([stop for stop, _ in levels], 1),
                               "takes": np.stack([take for _, take in levels], 1)})
            best, scores = choose_rule(options, assets, self.cost())
        chosen = options[best]
        return chosen, {"rule_band": chosen.enter - 0.5, "rule_min_hold": chosen.min_hold,
                        "rule_cooldown": chosen.cooldown, "rule_bracket_width": chosen.bracket_width,
                        "rule_val_sharpe": scores[best]}

    def finish(self, ensemble: TimingEnsemble, spec: DecisionSpec, sizing: PositionSizingNet, risk: RiskNet,
               pool: list[SegmentSamples], seed: int, scale: float) -> tuple[PositionSizingNet, RiskNet, tuple, dict]:
        """The sizing net, the risk net and the limits (learned ones, or () for the spec's fixed ones) trained
        on the positions the ensemble's rule (`spec`) takes over each asset's train window, at portfolio
        scale `scale`; and what to record."""
        rng = np.random.default_rng(seed + 1)
        torch.manual_seed(seed + 1)
        outputs = []
        for samples in pool:
            rows = np.arange(samples.first_row, samples.n)
            p_long, p_short, conf = ensemble.combine(*self.member_outputs(ensemble.members, samples, rows),
                                                     spec.allow_short)
            positions = decide_positions(p_long, p_short, spec)
            outputs.append({"positions": positions,
                            "states": simulated_states(samples.arrays["close"], positions, conf, samples.first_row)})
        sizing, sizing_info = self.fit_sizing(pool, outputs, rng, sizing)
        risk, risk_info = self.fit_risk(pool, outputs, rng, risk)
        limits = ()
        if self.config.risk.limits == "learned":
            limits, limits_info = self.fit_limits(pool, outputs, scale)
            risk_info |= limits_info
        self.warm["sizing"], self.warm["risk"] = cpu_state(sizing), cpu_state(risk)
        exposure = np.concatenate([np.abs(o["positions"]) for o in outputs])
        return sizing, risk, limits, {**sizing_info, **risk_info, "train_exposure": float(exposure.mean())}

    # --- limits -----------------------------------------------------------------------------
    def fit_limits(self, pool: list[SegmentSamples], outputs: list[dict], scale: float):
        """The portfolio limits that did best on the validation tail, replayed on the train window."""
        columns = {"positions": {}, "fractions": {}, "returns": {}}
        for samples, out in zip(pool, outputs):
            rows = np.arange(max(samples.first_row, samples.train_start), samples.n)
            dates = samples.arrays["dates"][rows]
            close = samples.arrays["close"]
            vol = samples.features[rows, VOL_21D]
            columns["positions"][samples.name] = pd.Series(out["positions"][rows], index=dates)
            columns["fractions"][samples.name] = pd.Series(
                [self.spec.twin_fraction(v) * scale for v in vol], index=dates)
            ahead = np.append(close[rows[1:]] / close[rows[:-1]] - 1.0, 0.0)  # to the next close, 0 at the end
            columns["returns"][samples.name] = pd.Series(ahead, index=dates)
        tables = {k: pd.DataFrame(v).sort_index().fillna(0.0) for k, v in columns.items()}
        val_start = min(samples.arrays["dates"][samples.val_start] for samples in pool)
        fixed = (self.spec.max_fraction, self.spec.max_gross, self.spec.drawdown_brake)
        return choose_limits(tables["positions"], tables["fractions"], tables["returns"], val_start, fixed,
                             self.cost())

    # --- sizing -----------------------------------------------------------------------------
    def sizing_inputs(self, pool: list[SegmentSamples], outputs: list[dict], rows: list[np.ndarray]):
        """Inputs as the NeuralSizer will see them, from a unit-size account per asset that follows the rule."""
        x, vol, returns = [], [], []
        for samples, out, r in zip(pool, outputs, rows):
            x.append(np.concatenate([samples.scaled[r], out["states"][r]], axis=1))
            vol.append(samples.features[r, VOL_21D])
            returns.append(out["positions"][r] * next_open_return(samples.arrays["open"], r,
                                                                  self.config.timing.horizon))
        as_t = lambda v: torch.as_tensor(np.concatenate(v), dtype=torch.float32, device=self.device)  # noqa: E731
        return as_t(x), as_t(vol), as_t(returns)

    def fit_sizing(self, pool: list[SegmentSamples], outputs: list[dict], rng, net: PositionSizingNet):
        cfg, train = self.config.sizing, self.config.train
        net = net.to(self.device)
        if not cfg.enabled:  # the twin sizes: nothing to train, and no rows to ask of the split
            return net.cpu().eval(), {"sizing_epochs": 0, "sizing_samples": 0, "sizing_rollbacks": 0}
        fit_rows, val_rows = pooled_rows(pool, self.config, "sizing")
        in_market = [out["positions"] != 0 for out in outputs]
        fit_rows = [r[m[r]] for r, m in zip(fit_rows, in_market)]
        val_rows = [r[m[r]] for r, m in zip(val_rows, in_market)]
        if count(fit_rows) < MIN_SAMPLES or count(val_rows) < MIN_VALIDATION_SAMPLES:
            # the rule was in the market too rarely to learn a size from: the sizer keeps its last weights
            warnings.warn(f"the sizing net is not trained this segment: the timing rule holds a position on "
                          f"{count(fit_rows)} train and {count(val_rows)} validation rows (it needs {MIN_SAMPLES} "
                          f"and {MIN_VALIDATION_SAMPLES}); the meta-learner's trust weighs it against its twin",
                          stacklevel=2)
            return net.cpu().eval(), {"sizing_epochs": 0, "sizing_samples": count(fit_rows),
                                      "sizing_rollbacks": 0}
        x_fit, v_fit, r_fit = self.sizing_inputs(pool, outputs, fit_rows)
        x_val, v_val, r_val = self.sizing_inputs(pool, outputs, val_rows)

        def loss(model, x, v, r):
            fraction, conf, multiplier = model(x, v)
            return losses.sizing_loss(fraction, conf, multiplier, r, cfg.anchor)

        result = fit(net, count(fit_rows), lambda m, i: loss(m, x_fit[i], v_fit[i], r_fit[i]),
                     torch.no_grad()(lambda m: float(loss(m, x_val, v_val, r_val))), HEAD_HYPER, 30, 5, rng,
                     epoch_samples=train.max_samples)
        with torch.no_grad():
            fraction, _, multiplier = net(x_val, v_val)
        return net.cpu().eval(), {"sizing_epochs": result.epochs, "sizing_samples": count(fit_rows),
                                  "sizing_val_multiplier": float(multiplier.mean()),
                                  "sizing_rollbacks": result.rollbacks}

    # --- risk -------------------------------------------------------------------------------
    def risk_samples(self, pool: list[SegmentSamples], outputs: list[dict], rows: list[np.ndarray], risk: RiskNet):
        horizon, cost = self.config.risk.horizon, 2.0 * self.cost()
        xs, ys = [], []
        for samples, out, asset_rows in zip(pool, outputs, rows):
            a = samples.arrays
            atr = average_true_range(a["high"], a["low"], a["close"])
            for direction in ((1, -1) if self.spec.allow_short else (1,)):
                chosen = asset_rows[out["positions"][asset_rows] == direction]
                # too few entries: every bar as an entry
                chosen = chosen if len(chosen) >= 4 * MIN_SAMPLES else asset_rows
                xs.append(risk_inputs(samples.scaled[chosen], float(direction)))
                ys.append(bracket_returns(a["open"], a["high"], a["low"], a["close"], atr, chosen,
                                          risk.stops.cpu().numpy(), risk.takes.cpu().numpy(), horizon, direction,
                                          cost))
        return torch.cat(xs).to(self.device), torch.as_tensor(np.concatenate(ys), dtype=torch.float32,
                                                              device=self.device)

    def fit_risk(self, pool: list[SegmentSamples], outputs: list[dict], rng, net: RiskNet):
        cfg, train = self.config.risk, self.config.train
        net = net.to(self.device)
        if not cfg.enabled:  # fixed ATR brackets: nothing to train, and no rows to ask of the split
            return net.cpu().eval(), {"risk_epochs": 0, "risk_rollbacks": 0}
        fit_rows, val_rows = pooled_rows(pool, self.config, "risk")
        if count(fit_rows) < MIN_SAMPLES:
            return net.cpu().eval(), {"risk_epochs": 0, "risk_rollbacks": 0}
        x_fit, y_fit = self.risk_samples(pool, outputs, fit_rows, net)
        x_val, y_val = self.risk_samples(pool, outputs, val_rows, net)
        result = fit(net, len(x_fit), lambda m, i: losses.bracket_loss(m(x_fit[i]), y_fit[i]),
                     torch.no_grad()(lambda m: float(losses.bracket_loss(m(x_val), y_val))), HEAD_HYPER, 30, 5,
                     rng, epoch_samples=train.max_samples * (2 if self.spec.allow_short else 1))
        with torch.no_grad():
            stop, take = net.levels(x_val)
        return net.cpu().eval(), {"risk_epochs": result.epochs, "risk_val_stop_atr": float(stop.mean()),
                                  "risk_val_take_atr": float(take.mean()), "risk_rollbacks": result.rollbacks}


def pooled_rows(pool: list[SegmentSamples], config: Config, network: str) -> tuple[list, list]:
    """Per asset, (fit rows, validation rows) of `network`, its labels cut at the train window's end.

    config.validate sizes the validation tail for every network; the features' warm-up (a first
    train window little longer than it) or an asset without bars there can still leave it short,
    and then an error says so rather than a net that never trained."""
    pairs = [samples.rows(label_reach(config)[network], config.train.max_samples) for samples in pool]
    fit_rows, val_rows = [rows for rows, _ in pairs], [rows for _, rows in pairs]
    if count(val_rows) < MIN_VALIDATION_SAMPLES:
        end = max(samples.arrays["dates"][-1] for samples in pool)
        raise DataError(f"the train window ending {str(end)[:10]} leaves the {network} net {count(val_rows)} "
                        f"validation rows, fewer than {MIN_VALIDATION_SAMPLES}: its validation tail holds too few "
                        f"bars after the features' warm-up ({min(samples.first_row for samples in pool)} bars); "
                        "raise walkforward.train_bars or walkforward.val_fraction")
    return fit_rows, val_rows


def count(rows: list[np.ndarray]) -> int:
    return int(sum(len(r) for r in rows))


def book_scale(config: Config, arrays: list[dict]) -> float:
    """The portfolio scale of the sizer's fractions (1 for the per-asset volatility-target twin)."""
    return portfolio_scale(arrays) if config.sizing.portfolio else 1.0


def portfolio_scale(arrays: list[dict], lookback: int = 3 * 252) -> float:
    """What each asset's volatility-target fraction is multiplied by so that the portfolio, not each
    asset alone, meets the target: 1 / (N sqrt(w'Cw)) for equal weights w = 1/N and the assets'
    daily-return correlation C over the last `lookback` bars of the train window (1 for one asset)."""
    n = len(arrays)
    if n <= 1:
        return 1.0
    columns = [pd.Series(np.diff(np.log(a["close"][-lookback:])), index=a["dates"][-lookback:][1:]) for a in arrays]
    corr = pd.concat(columns, axis=1).corr(min_periods=60).fillna(0.0).to_numpy(copy=True)
    np.fill_diagonal(corr, 1.0)
    w = np.full(n, 1.0 / n)
    return float(1.0 / (n * np.sqrt(max(w @ corr @ w, 1.0 / n))))


def simulated_states(close: np.ndarray, positions: np.ndarray, timing_confidence: np.ndarray,
                     start: int) -> np.ndarray:
    """(n, 4) sizer state inputs of a unit-size account holding `positions`, close to close."""
    states = np.full((len(close), 4), np.nan)
    record, equity = AccountRecord(), 1.0
    for r in range(start, len(close)):
        equity *= 1.0 + positions[r - 1] * (close[r] / close[r - 1] - 1.0)
        record.update(equity)
        states[r] = state_vector(*record.state(abs(positions[r - 1])), timing_confidence[r])
    return states

