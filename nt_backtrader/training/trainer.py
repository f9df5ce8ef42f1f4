"""NeuralTrainer: fits the timing, sizing and risk networks of one segment into a Bundle.

Timing candidates train first (warm-started from the last chosen net, early-stopped on the
validation tail); the sizer and the risk net then train on the positions the ensemble's
timing rule takes over the train window. Only data up to the end of the train window is
ever handed in. The Coordinator decides which candidates, with which weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..bundle import N_RISK_INPUTS, N_SIZING_INPUTS, Bundle, risk_inputs
from ..decisions import AccountRecord, DecisionSpec, decide_positions, state_vector, unit_rule_returns
from ..config import Config, to_toml
from ..features import N_FEATURES, average_true_range, windows
from ..networks import PositionSizingNet, RiskNet, TimingNet
from . import losses
from .brackets import bracket_returns
from .loop import FitResult, Hyper, fit
from .meta import annual_sharpe
from .samples import SegmentSamples, forward_return, next_open_return, prepare

SHARPE_WEIGHT = 0.1     # the Sharpe loss (about -2..2 per batch) beside cross-entropy (about 0.69)
THREE_CLASS_BAND = 0.5  # with shorts: |forward return| under this many sigmas is 'flat'
MIN_SAMPLES = 50


@dataclass
class TimingFit:
    net: TimingNet
    result: FitResult
    val_accuracy: float


def decision_spec(config: Config) -> DecisionSpec:
    t, s, r = config.timing, config.sizing, config.risk
    return DecisionSpec(window=t.window, allow_short=config.strategy.allow_short, enter=t.enter, exit=t.exit,
                        cooldown=t.cooldown,
                        use_sizing=s.enabled, use_risk=r.enabled, vol_target=s.vol_target,
                        max_fraction=s.max_fraction, fixed_stop_atr=r.fixed_stop_atr, fixed_take_atr=r.fixed_take_atr)


def network_args(config: Config, dropout: float) -> dict:
    t, s, r = config.timing, config.sizing, config.risk
    return {"timing": {"n_features": N_FEATURES, "window": t.window, "hidden": t.hidden, "heads": t.heads,
                       "layers": t.layers, "dropout": dropout, "n_classes": 3 if config.strategy.allow_short else 2},
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
        self.warm: dict = {"timing": None, "sizing": None, "risk": None}

    def prepare(self, arrays: dict, train_start: int, val_start: int) -> SegmentSamples:
        return prepare(arrays, train_start, val_start, self.config.timing.window)

    def cost(self) -> float:
        """Round-trip cost per unit traded, as a fraction: commission and slippage, both sides."""
        b = self.config.backtest
        return (b.commission_bps + b.slippage_bps) / 1e4

    # --- timing -----------------------------------------------------------------------------
    def timing_reach(self) -> int:
        return max(self.config.timing.horizon, 2)

    def timing_labels(self, samples: SegmentSamples, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        a, h = samples.arrays, self.config.timing.horizon
        forward = forward_return(a["close"], rows, h)
        if self.spec.allow_short:
            band = THREE_CLASS_BAND * samples.features[rows, 8] / np.sqrt(252.0) * np.sqrt(h)
            labels = np.where(forward > band, 2, np.where(forward < -band, 0, 1))
        else:
            labels = (forward > 0).astype(int)
        returns = next_open_return(a["open"], rows)
        return torch.as_tensor(labels, device=self.device), torch.as_tensor(returns, dtype=torch.float32,
                                                                             device=self.device)

    def fit_timing(self, samples: SegmentSamples, hyper: Hyper, seed: int) -> TimingFit:
        """Train one timing candidate, warm-started from the last chosen net when there is one."""
        cfg, train = self.config.timing, self.config.train
        rng = np.random.default_rng(seed)
        net = self._fresh_timing_net(hyper, seed)
        if self.warm["timing"] is not None:
            net.load_state_dict(self.warm["timing"])
        fit_rows, val_rows = samples.rows(self.timing_reach(), train.max_samples)
        if len(fit_rows) < MIN_SAMPLES or len(val_rows) < MIN_SAMPLES // 2:
            return TimingFit(net.eval(), FitResult(), float("nan"))
        x_fit, (y_fit, r_fit) = self._windows(samples, fit_rows), self.timing_labels(samples, fit_rows)
        x_val, (y_val, r_val) = self._windows(samples, val_rows), self.timing_labels(samples, val_rows)
        cost = cfg.turnover_bps / 1e4

        def loss(model, x, y, r):
            logits = model(x)
            total = torch.zeros((), device=self.device)
            if cfg.loss in ("direction", "both"):
                total = total + losses.direction_loss(logits, y)
            if cfg.loss in ("sharpe", "both"):
                weight = 1.0 if cfg.loss == "sharpe" else SHARPE_WEIGHT
                total = total + weight * losses.sharpe_loss(logits, r, cost)
            return total

        def train_from(start: TimingNet, epochs: int) -> FitResult:
            return fit(start, len(fit_rows), lambda m, i: loss(m, x_fit[i], y_fit[i], r_fit[i]),
                       torch.no_grad()(lambda m: float(loss(m, x_val, y_val, r_val))), hyper, epochs,
                       train.patience, rng, train.grad_clip)

        result = train_from(net, train.max_epochs if self.warm["timing"] is not None else train.first_epochs)
        if not np.isfinite(result.best_val):
            # Not even the warm start scores finitely here (a diverged net can keep finite but
            # exploded weights): train a fresh net from scratch, counted as one more rollback.
            earlier = result.rollbacks + 1
            net = self._fresh_timing_net(hyper, seed)
            result = train_from(net, train.first_epochs)
            result.rollbacks += earlier
        with torch.no_grad():
            predicted = net(x_val).argmax(-1)
        return TimingFit(net, result, float((predicted == y_val).float().mean()))

    def _fresh_timing_net(self, hyper: Hyper, seed: int) -> TimingNet:
        torch.manual_seed(seed)
        return TimingNet(**network_args(self.config, hyper.dropout)["timing"]).to(self.device)

    def _windows(self, samples: SegmentSamples, rows: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(windows(samples.scaled, self.config.timing.window, rows), dtype=torch.float32,
                               device=self.device)

    # --- the ensemble ---------------------------------------------------------------------------
    def draft(self, samples: SegmentSamples, nets: list, members: list, weights, trust, dropout: float,
              seed: int, meta: dict | None = None) -> Bundle:
        """A bundle of these timing members with the warm (or freshly seeded) sizer and risk net."""
        args = network_args(self.config, dropout)
        torch.manual_seed(seed + 2)
        sizing, risk = PositionSizingNet(**args["sizing"]), RiskNet(**args["risk"])
        for name, net in (("sizing", sizing), ("risk", risk)):
            if self.warm[name] is not None:
                net.load_state_dict(self.warm[name])
        provenance = (meta or {}) | {"config": to_toml(self.config)}  # the experiment that trained it
        return Bundle([n.cpu().eval() for n in nets], sizing, risk, samples.scaler, self.spec, args,
                      tuple(members), tuple(float(w) for w in weights), tuple(float(t) for t in trust),
                      provenance).eval()

    def member_outputs(self, bundle: Bundle, samples: SegmentSamples, rows: np.ndarray):
        return bundle.member_probabilities(samples.scaled, samples.arrays["close"], rows)

    def validation_sharpes(self, bundle: Bundle, samples: SegmentSamples) -> list[float]:
        """Each member's unit-size Sharpe over the validation tail (costs on)."""
        rows = np.arange(samples.val_start, samples.n)
        p_long, p_short = self.member_outputs(bundle, samples, rows)
        close = samples.arrays["close"][rows]
        return [annual_sharpe(unit_rule_returns(pl[rows], ps[rows], close, self.spec, self.cost())[1:])
                for pl, ps in zip(p_long, p_short)]

    def finish(self, bundle: Bundle, samples: SegmentSamples, seed: int) -> tuple[Bundle, dict]:
        """Train the sizer and the risk net on the positions the ensemble takes over the train window."""
        rng = np.random.default_rng(seed + 1)
        torch.manual_seed(seed + 1)
        rows = np.arange(samples.first_row, samples.n)
        p_long, p_short, conf = bundle.combine(*self.member_outputs(bundle, samples, rows))
        positions = decide_positions(p_long, p_short, self.spec)
        outputs = {"positions": positions,
                   "states": simulated_states(samples.arrays["close"], positions, conf, samples.first_row)}
        bundle.sizing, sizing_info = self.fit_sizing(samples, outputs, rng, bundle.sizing)
        bundle.risk, risk_info = self.fit_risk(samples, outputs, rng, bundle.risk)
        self.warm["sizing"], self.warm["risk"] = cpu_state(bundle.sizing), cpu_state(bundle.risk)
        return bundle.eval(), {**sizing_info, **risk_info, "train_exposure": float(np.abs(positions).mean())}

    # --- sizing -----------------------------------------------------------------------------
    def sizing_inputs(self, samples: SegmentSamples, outputs: dict, rows: np.ndarray):
        """Inputs as the NeuralSizer will see them, from a unit-size account that follows the rule."""
        x = np.concatenate([samples.scaled[rows], outputs["states"][rows]], axis=1)
        returns = outputs["positions"][rows] * next_open_return(samples.arrays["open"], rows,
                                                                self.config.timing.horizon)
        as_t = lambda v: torch.as_tensor(v, dtype=torch.float32, device=self.device)  # noqa: E731
        return as_t(x), as_t(samples.features[rows, 8]), as_t(returns)

    def fit_sizing(self, samples: SegmentSamples, outputs: dict, rng, net: PositionSizingNet):
        cfg, train = self.config.sizing, self.config.train
        net = net.to(self.device)
        fit_rows, val_rows = samples.rows(self.config.timing.horizon + 1, train.max_samples)
        in_market = outputs["positions"] != 0
        fit_rows, val_rows = fit_rows[in_market[fit_rows]], val_rows[in_market[val_rows]]
        if not cfg.enabled or len(fit_rows) < MIN_SAMPLES or len(val_rows) < MIN_SAMPLES // 2:
            return net.cpu().eval(), {"sizing_epochs": 0, "sizing_samples": int(len(fit_rows)),
                                      "sizing_rollbacks": 0}
        x_fit, v_fit, r_fit = self.sizing_inputs(samples, outputs, fit_rows)
        x_val, v_val, r_val = self.sizing_inputs(samples, outputs, val_rows)

        def loss(model, x, v, r):
            fraction, conf, multiplier = model(x, v)
            return losses.sizing_loss(fraction, conf, multiplier, r, cfg.anchor)

        result = fit(net, len(fit_rows), lambda m, i: loss(m, x_fit[i], v_fit[i], r_fit[i]),
                     torch.no_grad()(lambda m: float(loss(m, x_val, v_val, r_val))),
                     Hyper(lr=3e-3, batch_size=256, dropout=0.0, weight_decay=1e-4), 30, 5, rng)
        with torch.no_grad():
            fraction, _, multiplier = net(x_val, v_val)
        return net.cpu().eval(), {"sizing_epochs": result.epochs, "sizing_samples": int(len(fit_rows)),
                                  "sizing_val_multiplier": float(multiplier.mean()), "sizing_rollbacks": result.rollbacks}

    # --- risk -------------------------------------------------------------------------------
    def risk_samples(self, samples: SegmentSamples, outputs: dict, rows: np.ndarray, risk: RiskNet):
        a, horizon = samples.arrays, self.config.risk.horizon
        cost = 2.0 * self.cost()
        atr = average_true_range(a["high"], a["low"], a["close"])
        xs, ys = [], []
        for direction in ((1, -1) if self.spec.allow_short else (1,)):
            chosen = rows[outputs["positions"][rows] == direction]
            chosen = chosen if len(chosen) >= 4 * MIN_SAMPLES else rows  # too few: every bar as an entry
            xs.append(risk_inputs(samples.scaled[chosen], float(direction)))
            ys.append(bracket_returns(a["open"], a["high"], a["low"], a["close"], atr, chosen,
                                      risk.stops.cpu().numpy(), risk.takes.cpu().numpy(), horizon, direction, cost))
        return torch.cat(xs).to(self.device), torch.as_tensor(np.concatenate(ys), dtype=torch.float32,
                                                              device=self.device)

    def fit_risk(self, samples: SegmentSamples, outputs: dict, rng, net: RiskNet):
        cfg, train = self.config.risk, self.config.train
        net = net.to(self.device)
        fit_rows, val_rows = samples.rows(cfg.horizon + 2, train.max_samples)
        if not cfg.enabled or len(fit_rows) < MIN_SAMPLES or len(val_rows) < MIN_SAMPLES // 2:
            return net.cpu().eval(), {"risk_epochs": 0, "risk_rollbacks": 0}
        x_fit, y_fit = self.risk_samples(samples, outputs, fit_rows, net)
        x_val, y_val = self.risk_samples(samples, outputs, val_rows, net)
        result = fit(net, len(x_fit), lambda m, i: losses.bracket_loss(m(x_fit[i]), y_fit[i]),
                     torch.no_grad()(lambda m: float(losses.bracket_loss(m(x_val), y_val))),
                     Hyper(lr=3e-3, batch_size=256, dropout=0.0, weight_decay=1e-4), 30, 5, rng)
        with torch.no_grad():
            stop, take = net.levels(x_val)
        return net.cpu().eval(), {"risk_epochs": result.epochs, "risk_val_stop_atr": float(stop.mean()),
                                  "risk_val_take_atr": float(take.mean()), "risk_rollbacks": result.rollbacks}


def cpu_state(net: torch.nn.Module) -> dict:
    """A copy of the weights on the CPU: what a warm start and a checkpoint keep, whatever the device."""
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


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

