"""Bundle: trained networks + feature spec + scaler statistics + config, in one checkpoint file.

The file holds plain tensors, numbers and strings only (`torch.load(weights_only=True)`),
is written atomically, and carries a SHA-256 of its content so that a tampered or damaged
file is refused with one clear line instead of loading silently wrong weights.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import CheckpointError
from .features import LOOKBACK, N_FEATURES, Scaler, average_true_range, compute_features, windows
from .networks import NETWORKS
from .networks.timing import confidence, long_short_probabilities

FORMAT_VERSION = 1
KIND = "nt_backtrader.bundle"
STATE_INPUTS = ("drawdown", "exposure", "recent_pnl", "timing_confidence")  # after the market features
RECENT_PNL_BARS = 21


@dataclass(frozen=True)
class DecisionSpec:
    """How network outputs become orders; fixed at training time, stored with the nets."""

    window: int = 32
    allow_short: bool = False
    enter: float = 0.55          # enter when p(long) (or p(short)) reaches this
    exit: float = 0.45           # leave when it falls below this
    use_sizing: bool = True      # False: the classical twin, volatility-target fraction
    use_risk: bool = True        # False: the classical twin, fixed ATR brackets
    vol_target: float = 0.15
    max_fraction: float = 1.0
    fixed_stop_atr: float = 2.0
    fixed_take_atr: float = 3.0

    @property
    def warmup_bars(self) -> int:
        """Bars of history before the first decision: feature lookback plus the window."""
        return LOOKBACK + self.window - 1


def next_position(previous: int, p_long: float, p_short: float, spec: DecisionSpec) -> int:
    """The timing rule with hysteresis: -1 short, 0 flat, +1 long. NaN outputs mean flat.

    Shared by the strategy (bar by bar) and by training (the sizer and risk net learn on the
    positions this rule takes), so both see the same decisions.
    """
    if not (p_long == p_long) or not (p_short == p_short):  # NaN: no opinion yet
        return 0
    short_ok = spec.allow_short
    if previous > 0 and p_long >= spec.exit:
        return 1
    if previous < 0 and p_short >= spec.exit:
        return -1
    if p_long >= spec.enter and p_long >= p_short:
        return 1
    if short_ok and p_short >= spec.enter:
        return -1
    return 0


def decide_positions(p_long: np.ndarray, p_short: np.ndarray, spec: DecisionSpec) -> np.ndarray:
    positions = np.zeros(len(p_long), dtype=int)
    previous = 0
    for i, (pl, ps) in enumerate(zip(p_long, p_short)):
        previous = positions[i] = next_position(previous, pl, ps, spec)
    return positions


def state_vector(drawdown: float, exposure: float, recent_pnl: float, timing_confidence: float) -> np.ndarray:
    """Portfolio state inputs of the sizing net, on a common scale (fixed transforms)."""
    return np.array([5.0 * drawdown, exposure, 10.0 * recent_pnl, timing_confidence])


@dataclass
class AccountRecord:
    """Running peak and recent values of an account: the portfolio state the sizer reads.

    Updated once per bar with the closing value, in training (a simulated account) and in
    backtrader (the real one) alike; carried across walk-forward segments as plain numbers.
    """

    peak: float = 0.0
    recent: list = field(default_factory=list)   # the last RECENT_PNL_BARS + 1 values

    def update(self, value: float) -> None:
        self.peak = max(self.peak, value)
        self.recent.append(value)
        del self.recent[:-RECENT_PNL_BARS - 1]

    def state(self, exposure: float) -> tuple[float, float, float]:
        """(drawdown from the peak, exposure, PnL over the last RECENT_PNL_BARS bars)."""
        if not self.recent:
            return 0.0, exposure, 0.0
        return self.recent[-1] / self.peak - 1.0, exposure, self.recent[-1] / self.recent[0] - 1.0

    def to_dict(self) -> dict:
        return {"peak": self.peak, "recent": list(self.recent)}


_LOADED: dict = {}


def get_bundle(bundle) -> "Bundle":
    """A Bundle as given, or loaded (once per file version) from a path."""
    if isinstance(bundle, Bundle):
        return bundle
    if bundle is None:
        raise CheckpointError("no bundle given: pass bundle='model.pt' (written by `nt-backtrader train`)")
    path = Path(bundle).resolve()
    key = (str(path), path.stat().st_mtime_ns if path.exists() else None)
    if key not in _LOADED:
        _LOADED[key] = Bundle.load(path)
    return _LOADED[key]


@dataclass
class Signals:
    """Per-bar network outputs over an OHLCV array; NaN before the warm-up is complete."""

    p_long: np.ndarray
    p_short: np.ndarray
    confidence: np.ndarray
    stop_atr: np.ndarray       # bracket distances of a long entry, in ATRs
    take_atr: np.ndarray
    stop_atr_short: np.ndarray  # and of a short entry
    take_atr_short: np.ndarray
    atr: np.ndarray
    vol: np.ndarray            # annualised 21-day volatility
    scaled: np.ndarray         # (n, F) scaled features, for the sizer


@dataclass
class Bundle:
    timing: torch.nn.Module
    sizing: torch.nn.Module
    risk: torch.nn.Module
    scaler: Scaler
    spec: DecisionSpec
    args: dict                               # constructor arguments of each network
    meta: dict = field(default_factory=dict)  # config, data source, train dates: provenance only

    def eval(self) -> "Bundle":
        for net in (self.timing, self.sizing, self.risk):
            net.eval()
        return self

    @torch.inference_mode()
    def predict(self, open_, high, low, close, volume, rows: np.ndarray | None = None,
                batch: int = 1024) -> Signals:
        """Network outputs for every bar (or `rows`), each from bars up to that bar only."""
        features = compute_features(open_, high, low, close, volume)
        scaled = self.scaler.transform(features)
        n = len(features)
        first = self.spec.warmup_bars - 1
        rows = np.arange(first, n) if rows is None else rows[rows >= first]
        out = {k: np.full(n, np.nan) for k in ("p_long", "p_short", "confidence", "stop_atr", "take_atr",
                                                "stop_atr_short", "take_atr_short")}
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            x = torch.as_tensor(windows(scaled, self.spec.window, chunk), dtype=torch.float32)
            logits = self.timing(x)
            p_long, p_short = long_short_probabilities(logits)
            out["p_long"][chunk], out["p_short"][chunk] = p_long.numpy(), p_short.numpy()
            out["confidence"][chunk] = confidence(logits).numpy()
            for direction, suffix in ((1.0, ""), (-1.0, "_short")):
                stop, take = self.brackets(scaled[chunk], direction)
                out["stop_atr" + suffix][chunk], out["take_atr" + suffix][chunk] = stop, take
        return Signals(**out, atr=average_true_range(np.asarray(high, float), np.asarray(low, float),
                                                     np.asarray(close, float)),
                       vol=features[:, 8], scaled=scaled)

    @torch.inference_mode()
    def brackets(self, scaled_rows: np.ndarray, direction: float) -> tuple[np.ndarray, np.ndarray]:
        """Stop and take-profit distances in ATRs; the fixed classical twin when use_risk is off."""
        if not self.spec.use_risk:
            n = len(scaled_rows)
            return np.full(n, self.spec.fixed_stop_atr), np.full(n, self.spec.fixed_take_atr)
        stop, take = self.risk.levels(risk_inputs(scaled_rows, direction))
        return stop.numpy().astype(float), take.numpy().astype(float)

    @torch.inference_mode()
    def size(self, scaled_row: np.ndarray, state: np.ndarray, vol: float) -> tuple[float, float]:
        """Fraction of equity and the sizer's confidence for one decision.

        With use_sizing off, the classical twin: the volatility-target fraction, confidence 1.
        """
        if not self.spec.use_sizing:
            return min(self.spec.max_fraction, self.spec.vol_target / max(vol, 1e-4)), 1.0
        x = torch.as_tensor(np.concatenate([scaled_row, state])[None], dtype=torch.float32)
        fraction, conf, _ = self.sizing(x, torch.tensor([vol], dtype=torch.float32))
        return float(fraction[0]), float(conf[0])

    # --- persistence ------------------------------------------------------------------------
    def to_payload(self) -> dict:
        payload = {
            "format_version": FORMAT_VERSION, "kind": KIND,
            "spec": dict(vars(self.spec)), "args": self.args, "meta": self.meta,
            "scaler": {"mean": torch.as_tensor(self.scaler.mean), "std": torch.as_tensor(self.scaler.std),
                       "clip": self.scaler.clip},
            "state": {name: {k: v.detach().cpu().clone() for k, v in getattr(self, name).state_dict().items()}
                      for name in NETWORKS},
        }
        payload["sha256"] = digest(payload)
        return payload

    def save(self, path: str | Path) -> Path:
        return atomic_torch_save(self.to_payload(), path)

    @classmethod
    def from_payload(cls, payload: dict, source: str = "bundle") -> "Bundle":
        check_payload(payload, source, KIND)
        try:
            nets = {}
            for name, net_cls in NETWORKS.items():
                net = net_cls(**payload["args"][name])
                net.load_state_dict(payload["state"][name])
                nets[name] = net
            scaler = Scaler(payload["scaler"]["mean"].double().numpy(), payload["scaler"]["std"].double().numpy(),
                            float(payload["scaler"]["clip"]))
            spec = DecisionSpec(**payload["spec"])
        except (KeyError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"{source} does not hold a complete nt_backtrader bundle ({exc}); "
                                  "train a new one with `nt-backtrader train`") from None
        return cls(nets["timing"], nets["sizing"], nets["risk"], scaler, spec, payload["args"],
                   payload.get("meta", {})).eval()

    @classmethod
    def load(cls, path: str | Path) -> "Bundle":
        return cls.from_payload(load_payload(path), source=str(path))


def risk_inputs(scaled_rows: np.ndarray, direction: float) -> torch.Tensor:
    """Risk-net inputs: the scaled features at the entry bar and the trade's direction (+1/-1)."""
    column = np.full((len(scaled_rows), 1), direction)
    return torch.as_tensor(np.concatenate([scaled_rows, column], axis=1), dtype=torch.float32)


N_RISK_INPUTS = N_FEATURES + 1
N_SIZING_INPUTS = N_FEATURES + len(STATE_INPUTS)


# --- checkpoint files: shared by bundles and walk-forward checkpoints ---------------------------
def digest(payload: dict) -> str:
    """SHA-256 over every tensor's bytes and every other value, in a fixed key order."""
    h = hashlib.sha256()

    def feed(value, key=""):
        if isinstance(value, dict):
            for k in sorted(value):
                if k != "sha256":
                    feed(value[k], f"{key}/{k}")
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                feed(item, f"{key}[{i}]")
        elif isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
        else:
            h.update(f"{key}={json.dumps(value, sort_keys=True, default=str)}".encode())

    feed(payload)
    return h.hexdigest()


def atomic_torch_save(payload: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_payload(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; give a file written by `nt-backtrader train` or `run`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a truncated or foreign file
        raise CheckpointError(f"{path} is damaged or not an nt_backtrader file ({type(exc).__name__}); "
                              "write it again") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} is not an nt_backtrader file; write it again")
    return payload


def check_payload(payload: dict, source: str, kind: str) -> None:
    if payload.get("kind") != kind:
        raise CheckpointError(f"{source} is a {payload.get('kind', 'foreign file')}, not a {kind}")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{source} has format version {payload.get('format_version')}; this nt_backtrader "
                              f"reads version {FORMAT_VERSION}: retrain or write it again")
    if payload.get("sha256") != digest(payload):
        raise CheckpointError(f"{source} fails its SHA-256 check: it was modified or damaged; write it again")
