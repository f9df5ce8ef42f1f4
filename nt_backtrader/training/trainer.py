"""NeuralTrainer: fits the timing, sizing and risk networks of one segment into a Bundle.

The timing net trains first (warm-started from the previous segment, early-stopped on the
validation tail); the sizer and the risk net then train on the positions the timing rule
takes over the train window. Only data up to the end of the train window is ever handed in.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..bundle import (N_RISK_INPUTS, N_SIZING_INPUTS, AccountRecord, Bundle, DecisionSpec, decide_positions,
                      risk_inputs, state_vector)
from ..config import Config
from ..features import N_FEATURES, average_true_range, windows
from ..networks import PositionSizingNet, RiskNet, TimingNet
from ..networks.timing import confidence, long_short_probabilities
from . import losses
from .brackets import bracket_returns
from .loop import FitResult, Hyper, fit
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
    def __init__(self, config: Config, device: torch.device | None = None):
        self.config = config
        self.spec = decision_spec(config)
        self.device = device or torch.device("cpu")
        self.previous: Bundle | None = None

    # --- one segment ------------------------------------------------------------------------
    def prepare(self, arrays: dict, train_start: int, val_start: int) -> SegmentSamples:
        return prepare(arrays, train_start, val_start, self.config.timing.window)

    def fit(self, arrays: dict, train_start: int, val_start: int, seed: int, hyper: Hyper | None = None,
            meta: dict | None = None) -> tuple[Bundle, dict]:
        hyper = hyper or self.default_hyper()
        samples = self.prepare(arrays, train_start, val_start)
        timing = self.fit_timing(samples, hyper, seed)
        return self.finish(samples, timing, hyper, seed, meta)

    def default_hyper(self) -> Hyper:
        t = self.config.train
        return Hyper(t.lr, t.batch_size, self.config.timing.dropout, t.weight_decay)

    def finish(self, samples: SegmentSamples, timing: TimingFit, hyper: Hyper, seed: int,
               meta: dict | None = None) -> tuple[Bundle, dict]:
        """Given the chosen timing net, train the sizer and the risk net and assemble the bundle."""
        rng = np.random.default_rng(seed + 1)
        torch.manual_seed(seed + 1)
        outputs = self.timing_outputs(timing.net, samples)
        sizing, sizing_info = self.fit_sizing(samples, outputs, rng)
        risk, risk_info = self.fit_risk(samples, outputs, rng)
        bundle = Bundle(timing.net, sizing, risk, samples.scaler, self.spec,
                        network_args(self.config, hyper.dropout), meta or {}).eval()
        self.previous = bundle
        info = {"timing_epochs": timing.result.epochs, "timing_val_loss": timing.result.best_val,
                "timing_val_accuracy": timing.val_accuracy, "rollbacks": timing.result.rollbacks,
                **sizing_info, **risk_info}
        return bundle, info

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

    def new_timing(self, dropout: float) -> TimingNet:
        return TimingNet(**network_args(self.config, dropout)["timing"]).to(self.device)

    def fit_timing(self, samples: SegmentSamples, hyper: Hyper, seed: int,
                   init: dict | None = None) -> TimingFit:
        """Train one timing candidate; warm start from `init` or the previous segment's net."""
        cfg, train = self.config.timing, self.config.train
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        net = self.new_timing(hyper.dropout)
        start = init if init is not None else (self.previous.timing.state_dict() if self.previous else None)
        if start is not None:
            net.load_state_dict(start)
        fit_rows, val_rows = samples.rows(self.timing_reach(), train.max_samples)
        x_fit = self._windows(samples, fit_rows)
        y_fit, r_fit = self.timing_labels(samples, fit_rows)
        x_val = self._windows(samples, val_rows)
        y_val, r_val = self.timing_labels(samples, val_rows)
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

        epochs = train.max_epochs if start is not None else train.first_epochs
        if len(fit_rows) < MIN_SAMPLES or len(val_rows) < MIN_SAMPLES // 2:
            return TimingFit(net.eval(), FitResult(), float("nan"))

        @torch.no_grad()
        def val_loss(model):
            return float(loss(model, x_val, y_val, r_val))

        result = fit(net, len(fit_rows), lambda m, i: loss(m, x_fit[i], y_fit[i], r_fit[i]), val_loss, hyper,
                     epochs, train.patience, rng, train.grad_clip)
        with torch.no_grad():
            predicted = net(x_val).argmax(-1)
        return TimingFit(net, result, float((predicted == y_val).float().mean()))

    def _windows(self, samples: SegmentSamples, rows: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(windows(samples.scaled, self.config.timing.window, rows), dtype=torch.float32,
                               device=self.device)

    @torch.no_grad()
    def timing_outputs(self, net: TimingNet, samples: SegmentSamples) -> dict:
        """In-sample timing outputs and the rule's positions for every usable row of the history."""
        rows = np.arange(samples.first_row, samples.n)
        p_long, p_short, conf = (np.full(samples.n, np.nan) for _ in range(3))
        for start in range(0, len(rows), 2048):
            chunk = rows[start:start + 2048]
            logits = net(self._windows(samples, chunk))
            pl, ps = long_short_probabilities(logits)
            p_long[chunk], p_short[chunk], conf[chunk] = pl.cpu().numpy(), ps.cpu().numpy(), confidence(logits).cpu().numpy()
        positions = decide_positions(p_long, p_short, self.spec)
        states = simulated_states(samples.arrays["close"], positions, conf, samples.first_row)
        return {"p_long": p_long, "p_short": p_short, "confidence": conf, "positions": positions, "states": states}

    # --- sizing -----------------------------------------------------------------------------
    def sizing_inputs(self, samples: SegmentSamples, outputs: dict, rows: np.ndarray):
        """Inputs as the NeuralSizer will see them, from a unit-size account that follows the rule."""
        x = np.concatenate([samples.scaled[rows], outputs["states"][rows]], axis=1)
        returns = outputs["positions"][rows] * next_open_return(samples.arrays["open"], rows,
                                                                self.config.timing.horizon)
        as_t = lambda v: torch.as_tensor(v, dtype=torch.float32, device=self.device)  # noqa: E731
        return as_t(x), as_t(samples.features[rows, 8]), as_t(returns)

    def fit_sizing(self, samples: SegmentSamples, outputs: dict, rng) -> tuple[PositionSizingNet, dict]:
        cfg, train = self.config.sizing, self.config.train
        net = PositionSizingNet(**network_args(self.config, 0.0)["sizing"]).to(self.device)
        if self.previous is not None:
            net.load_state_dict(self.previous.sizing.state_dict())
        fit_rows, val_rows = samples.rows(self.config.timing.horizon + 1, train.max_samples)
        in_market = outputs["positions"] != 0
        fit_rows, val_rows = fit_rows[in_market[fit_rows]], val_rows[in_market[val_rows]]
        if not cfg.enabled or len(fit_rows) < MIN_SAMPLES or len(val_rows) < MIN_SAMPLES // 2:
            return net.eval(), {"sizing_epochs": 0, "sizing_samples": int(len(fit_rows))}
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
        return net, {"sizing_epochs": result.epochs, "sizing_samples": int(len(fit_rows)),
                     "sizing_val_multiplier": float(multiplier.mean())}

    # --- risk -------------------------------------------------------------------------------
    def risk_samples(self, samples: SegmentSamples, outputs: dict, rows: np.ndarray, risk: RiskNet):
        a, horizon = samples.arrays, self.config.risk.horizon
        cost = 2.0 * (self.config.backtest.commission_bps + self.config.backtest.slippage_bps) / 1e4
        atr = average_true_range(a["high"], a["low"], a["close"])
        xs, ys = [], []
        for direction in ((1, -1) if self.spec.allow_short else (1,)):
            chosen = rows[outputs["positions"][rows] == direction]
            chosen = chosen if len(chosen) >= 4 * MIN_SAMPLES else rows  # too few: every bar as an entry
            xs.append(risk_inputs(samples.scaled[chosen], float(direction)))
            ys.append(bracket_returns(a["open"], a["high"], a["low"], a["close"], atr, chosen,
                                      risk.stops.numpy(), risk.takes.numpy(), horizon, direction, cost))
        return torch.cat(xs).to(self.device), torch.as_tensor(np.concatenate(ys), dtype=torch.float32,
                                                              device=self.device)

    def fit_risk(self, samples: SegmentSamples, outputs: dict, rng) -> tuple[RiskNet, dict]:
        cfg, train = self.config.risk, self.config.train
        net = RiskNet(**network_args(self.config, 0.0)["risk"]).to(self.device)
        if self.previous is not None:
            net.load_state_dict(self.previous.risk.state_dict())
        fit_rows, val_rows = samples.rows(cfg.horizon + 2, train.max_samples)
        if not cfg.enabled or len(fit_rows) < MIN_SAMPLES or len(val_rows) < MIN_SAMPLES // 2:
            return net.eval(), {"risk_epochs": 0}
        x_fit, y_fit = self.risk_samples(samples, outputs, fit_rows, net)
        x_val, y_val = self.risk_samples(samples, outputs, val_rows, net)
        result = fit(net, len(x_fit), lambda m, i: losses.bracket_loss(m(x_fit[i]), y_fit[i]),
                     torch.no_grad()(lambda m: float(losses.bracket_loss(m(x_val), y_val))),
                     Hyper(lr=3e-3, batch_size=256, dropout=0.0, weight_decay=1e-4), 30, 5, rng)
        with torch.no_grad():
            stop, take = net.levels(x_val)
        return net, {"risk_epochs": result.epochs, "risk_val_stop_atr": float(stop.mean()),
                     "risk_val_take_atr": float(take.mean())}


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

