"""Bundle: the trained networks of one segment + feature spec + scaler + ensemble, in one file.

The timing decision is an ensemble: neural timing members and classical members (tsmom,
sma), weighted by the meta-learner; the sizer's fraction and the risk net's distances are
blended with their classical twins by the meta-learner's trust. The file holds plain
tensors, numbers and strings only, written atomically and checked by SHA-256 on load.
"""
from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .checkpoint import FORMAT_VERSION, atomic_torch_save, check_payload, digest, load_payload
from .decisions import STATE_INPUTS, DecisionSpec, warmup_bars
from .errors import CheckpointError
from .features import FEATURE_SPEC, N_FEATURES, VOL_21D, Scaler, average_true_range, compute_features, windows
from .networks import PositionSizingNet, RiskNet, TimingNet
from .networks.timing import SeedAverage, long_short_probabilities
from .signals import CLASSICAL_MEMBERS, classical_signal, primary_side
from .timeframe import DAILY

KIND = "nt_backtrader.bundle"
N_RISK_INPUTS = N_FEATURES + 1
N_SIZING_INPUTS = N_FEATURES + len(STATE_INPUTS)


@dataclass
class Signals:
    """Per-bar outputs over an OHLCV array; NaN before the warm-up is complete."""

    p_long: np.ndarray         # ensemble probabilities
    p_short: np.ndarray
    confidence: np.ndarray     # 1 - normalised entropy of the ensemble's distribution
    stop_atr: np.ndarray       # bracket distances of a long entry, in ATRs
    take_atr: np.ndarray
    stop_atr_short: np.ndarray  # and of a short entry
    take_atr_short: np.ndarray
    atr: np.ndarray
    vol: np.ndarray            # annualised 21-day volatility
    scaled: np.ndarray         # (n, F) scaled features, for the sizer


@dataclass(frozen=True)
class Sizing:
    fraction: float      # what is traded
    confidence: float    # the sizing net's P(the sized trade makes money)
    network: float       # the sizing net's own fraction
    twin: float          # the volatility-target fraction


def ensemble_confidence(p_long: np.ndarray, p_short: np.ndarray, allow_short: bool) -> np.ndarray:
    classes = [p_long, 1.0 - p_long - p_short, p_short] if allow_short else [p_long, 1.0 - p_long]
    probs = np.clip(np.stack(classes), 1e-12, 1.0)
    return 1.0 - (-(probs * np.log(probs)).sum(0)) / np.log(len(classes))


def risk_inputs(scaled_rows: np.ndarray, direction: float) -> torch.Tensor:
    """Risk-net inputs: the scaled features at the entry bar and the trade's direction (+1/-1)."""
    column = np.full((len(scaled_rows), 1), direction)
    return torch.as_tensor(np.concatenate([scaled_rows, column], axis=1), dtype=torch.float32)


@dataclass
class Bundle:
    timing: list                               # neural timing members (TimingNet)
    sizing: PositionSizingNet
    risk: RiskNet
    scaler: Scaler
    spec: DecisionSpec
    args: dict                                 # constructor arguments of each network kind
    members: tuple = ()                        # ensemble member names: neural_1.., tsmom, sma
    weights: tuple = ()                        # ensemble weights, one per member, summing to 1
    trust: tuple = (1.0, 1.0)                  # (sizing, risk): weight of each network against its twin
    meta: dict = field(default_factory=dict)   # data source, train dates: provenance only
    scalers: dict = field(default_factory=dict)  # asset name -> its own train-window Scaler
    portfolio_scale: float = 1.0               # on every fraction: the portfolio, not each asset, meets the target
    limits: tuple = ()                         # learned (max weight, max gross, drawdown brake); () = the spec's fixed ones
    timeframe: tuple = DAILY                   # the bars it was trained on: (bt.TimeFrame name, compression)
    cycle: dict = field(default_factory=dict)  # what `nt-backtrader update` continues from (see cycle.py); {} = none

    def __post_init__(self):
        if not self.members:  # a plain bundle: the neural members, equally weighted
            self.members = tuple(f"neural_{i + 1}" for i in range(len(self.timing)))
            self.weights = tuple(1.0 / len(self.members) for _ in self.members)

    @property
    def warmup_bars(self) -> int:
        return warmup_bars(self.spec, self.members)

    def scaler_for(self, asset: str | None) -> Scaler:
        """The asset's own scaler; for a feed the bundle was not trained on, the pooled one."""
        return self.scalers.get(asset, self.scaler)

    def eval(self) -> "Bundle":
        for net in [*self.timing, self.sizing, self.risk]:
            net.eval()
        return self

    # --- predictions --------------------------------------------------------------------------
    @torch.inference_mode()
    def member_probabilities(self, scaled: np.ndarray, close: np.ndarray, rows: np.ndarray,
                             batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """(members, n) p_long and p_short of every member at `rows`; NaN elsewhere."""
        n, m = len(scaled), len(self.members)
        p_long, p_short = np.full((m, n), np.nan), np.full((m, n), np.nan)
        rows = rows[rows >= self.spec.feature_bars - 1]
        chunks = [rows[start:start + batch] for start in range(0, len(rows), batch)]
        inputs = [torch.as_tensor(windows(scaled, self.spec.window, chunk), dtype=torch.float32)
                  for chunk in chunks] if self.timing else []  # (B, L, F) each, shared by the members
        nets = iter(self.timing)
        # meta-labeling: a net's p(take) goes to the side tsmom takes (none before its lookback)
        side = primary_side(close, self.spec.allow_short) if self.spec.timing_mode == "meta_label" else None
        for i, name in enumerate(self.members):
            if name in CLASSICAL_MEMBERS:
                pl, ps = classical_signal(name, close, self.spec.allow_short)
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

    def combine(self, p_long: np.ndarray, p_short: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ensemble (p_long, p_short, confidence) from member probabilities; NaN where a member has none."""
        w = np.asarray(self.weights)[:, None]
        pl, ps = (w * p_long).sum(0), (w * p_short).sum(0)
        missing = np.isnan(p_long).any(0)
        pl[missing] = ps[missing] = np.nan
        return pl, ps, ensemble_confidence(pl, ps, self.spec.allow_short)

    @torch.inference_mode()
    def predict(self, open_, high, low, close, volume, rows: np.ndarray | None = None,
                asset: str | None = None) -> Signals:
        """Outputs for every bar (or `rows`) of one asset, each from bars up to that bar only."""
        high, low, close = (np.asarray(a, dtype=float) for a in (high, low, close))
        features = compute_features(open_, high, low, close, volume)
        scaled = self.scaler_for(asset).transform(features)
        n = len(features)
        rows = np.arange(self.warmup_bars - 1, n) if rows is None else rows[rows >= self.warmup_bars - 1]
        p_long, p_short, conf = self.combine(*self.member_probabilities(scaled, close, rows))
        levels = {}
        for direction, suffix in ((1.0, ""), (-1.0, "_short")):
            stop, take = np.full(n, np.nan), np.full(n, np.nan)
            stop[rows], take[rows] = self.brackets(scaled[rows], direction)
            levels["stop_atr" + suffix], levels["take_atr" + suffix] = stop, take
        return Signals(p_long, p_short, conf, **levels, atr=average_true_range(high, low, close),
                       vol=features[:, VOL_21D], scaled=scaled)

    @torch.inference_mode()
    def brackets(self, scaled_rows: np.ndarray, direction: float) -> tuple[np.ndarray, np.ndarray]:
        """Stop and take-profit distances in ATRs: the risk net blended with fixed brackets by trust."""
        n, width = len(scaled_rows), self.spec.bracket_width
        fixed_stop, fixed_take = np.full(n, self.spec.fixed_stop_atr), np.full(n, self.spec.fixed_take_atr)
        if not self.spec.use_risk or n == 0:
            return width * fixed_stop, width * fixed_take
        stop, take = self.risk.levels(risk_inputs(scaled_rows, direction))
        t = self.trust[1]
        return width * (t * stop.numpy() + (1 - t) * fixed_stop), width * (t * take.numpy() + (1 - t) * fixed_take)

    def limit(self, fraction: float, gross: float, drawdown: float) -> float:
        """An entry's fraction within the portfolio limits: the largest weight per asset, what is
        left of the gross exposure, and the drawdown brake (new entries halved beyond it)."""
        max_weight, max_gross, brake = self.limits or (self.spec.max_fraction, self.spec.max_gross,
                                                       self.spec.drawdown_brake)
        fraction = min(fraction, max_weight, max(0.0, max_gross - gross))
        return 0.5 * fraction if brake > 0 and drawdown < -brake else fraction

    @torch.inference_mode()
    def size(self, scaled_row: np.ndarray, state: np.ndarray, vol: float) -> Sizing:
        """The fraction of equity for one decision: the sizing net blended with the
        volatility-target twin by trust (the twin alone when use_sizing is off)."""
        twin = self.spec.twin_fraction(vol) * self.portfolio_scale
        if not self.spec.use_sizing:
            return Sizing(twin, 1.0, twin, twin)
        x = torch.as_tensor(np.concatenate([scaled_row, state])[None], dtype=torch.float32)
        fraction, conf, _ = self.sizing(x, torch.tensor([vol], dtype=torch.float32))
        network, t = float(fraction[0]) * self.portfolio_scale, self.trust[0]
        return Sizing(t * network + (1 - t) * twin, float(conf[0]), network, twin)

    # --- persistence --------------------------------------------------------------------------
    def to_payload(self) -> dict:
        def state(net):
            return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}

        payload = {
            "format_version": FORMAT_VERSION, "kind": KIND,
            "spec": dict(vars(self.spec)), "args": self.args, "meta": self.meta,
            "features": copy.deepcopy(FEATURE_SPEC),
            "scaler": scaler_payload(self.scaler),
            "scalers": {name: scaler_payload(scaler) for name, scaler in self.scalers.items()},
            "portfolio_scale": float(self.portfolio_scale), "limits": [float(v) for v in self.limits],
            "timeframe": [str(self.timeframe[0]), int(self.timeframe[1])], "cycle": self.cycle,
            "ensemble": {"members": list(self.members), "weights": [float(w) for w in self.weights],
                         "trust": [float(t) for t in self.trust]},
            "state": {"timing": [state(net) for net in self.timing], "sizing": state(self.sizing),
                      "risk": state(self.risk)},
        }
        payload["sha256"] = digest(payload)
        return payload

    def save(self, path: str | Path) -> Path:
        return atomic_torch_save(self.to_payload(), path)

    @classmethod
    def from_payload(cls, payload: dict, source: str = "bundle") -> "Bundle":
        check_payload(payload, source, KIND)
        if payload.get("features") != FEATURE_SPEC:
            raise CheckpointError(f"{source} was trained on other features than this nt_backtrader computes; "
                                  "train a new one with `nt-backtrader train`")
        try:
            args, states = payload["args"], payload["state"]
            timing = []
            for state in states["timing"]:
                net = timing_member(args["timing"], state)
                net.load_state_dict(state)
                timing.append(net)
            sizing, risk = PositionSizingNet(**args["sizing"]), RiskNet(**args["risk"])
            sizing.load_state_dict(states["sizing"])
            risk.load_state_dict(states["risk"])
            ensemble = payload["ensemble"]
            bundle = cls(timing, sizing, risk, scaler_from(payload["scaler"]), DecisionSpec(**payload["spec"]), args,
                         tuple(ensemble["members"]), tuple(ensemble["weights"]), tuple(ensemble["trust"]),
                         payload.get("meta", {}), {k: scaler_from(v) for k, v in payload["scalers"].items()},
                         float(payload["portfolio_scale"]), tuple(payload["limits"]),
                         tuple(payload.get("timeframe", DAILY)), payload.get("cycle", {}))
        except (KeyError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"{source} does not hold a complete nt_backtrader bundle ({exc}); "
                                  "train a new one with `nt-backtrader train`") from None
        return bundle.eval()

    @classmethod
    def load(cls, path: str | Path) -> "Bundle":
        return cls.from_payload(load_payload(path), source=str(path))


def timing_member(args: dict, state: dict):
    """An empty timing member for a saved state: one TimingNet, or a SeedAverage of as many as it holds."""
    lines = {key.split(".")[1] for key in state if key.startswith("nets.")}
    return SeedAverage([TimingNet(**args) for _ in lines]) if lines else TimingNet(**args)


def scaler_payload(scaler: Scaler) -> dict:
    return {"mean": torch.as_tensor(scaler.mean), "std": torch.as_tensor(scaler.std), "clip": scaler.clip}


def scaler_from(payload: dict) -> Scaler:
    return Scaler(payload["mean"].double().numpy(), payload["std"].double().numpy(), float(payload["clip"]))


BUNDLE_CACHE_SIZE = 16  # bundle files kept loaded: a process going through many (an optimisation) holds 16


def bundle_for(bundle, asset: str) -> Bundle:
    """A Bundle (or the path of one) as given, or the asset's own from a name -> bundle mapping
    (per-asset training gives one bundle per feed)."""
    if isinstance(bundle, Mapping):
        if asset not in bundle:
            raise CheckpointError(f"no bundle for feed '{asset}': the bundles given are for {', '.join(bundle)}; "
                                  "name the feeds after them or pass one bundle")
        return get_bundle(bundle[asset])
    return get_bundle(bundle)


def get_bundle(bundle) -> Bundle:
    """A Bundle as given, or loaded from a path (once per file version while it is among the last
    BUNDLE_CACHE_SIZE used)."""
    if isinstance(bundle, Bundle):
        return bundle
    if bundle is None:
        raise CheckpointError("no bundle given: pass bundle='model.pt' (written by `nt-backtrader train`)")
    path = Path(bundle).resolve()
    return _load_version(str(path), path.stat().st_mtime_ns if path.exists() else None)


@functools.lru_cache(maxsize=BUNDLE_CACHE_SIZE)
def _load_version(path: str, mtime_ns: int | None) -> Bundle:
    """The bundle at `path`; mtime_ns is part of the key only, so that a rewritten file is loaded anew."""
    return Bundle.load(path)
