"""PositionBundle: the deep-momentum core's trained segment, as one file: what a feed's target weight is.

A feed's target weight (position value / equity), decided on each bar's close from bars <= t:

    blend of the members' positions (the meta-learner's weights over MEMBERS: the top-M position
    ensemble and the classical tsmom and macd positions of momentum.py), in [-1, 1]
    x vol_scale (sigma_target / ex-ante sigma_t, capped at max_leverage)
    x the sizing net's multiplier (training/position_sizer.py; 1 without one)
    x book_scale (1 / the number of traded assets: the tsmom portfolio, averaged over the assets)

clipped to +-max_weight (at 0 from below when long-only). Its brackets (stop and take-profit
distances in ATRs) are the fixed ones of the spec, the risk net's (training/position_risk.py), or none.
The file holds plain tensors, numbers and strings only, written atomically and checked by SHA-256 on
load (checkpoint.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from . import momentum
from .checkpoint import FORMAT_VERSION, PayloadFile, check_payload, cpu_state, sealed
from .errors import CheckpointError, ConfigError
from .features import average_true_range
from .networks.position import PositionEnsemble, PositionNet
from .networks.risk import RiskNet
from .networks.sizing import PositionSizingNet
from .timeframe import DAILY
from .training.position_risk import NO_LEGS, NONE, STOP_GRID, TAKE_GRID, grid
from .training.position_sizer import STATE_COLUMNS, multipliers, sizing_state
from .training.position_trainer import positions

KIND = "nt_backtrader.position_bundle"
MEMBERS = ("neural", "tsmom", "macd")   # the meta-learner weighs these, in this order
RISK_MODES = ("atr", "none", "net")     # fixed ATR levels, no legs, the risk net's levels


@dataclass(frozen=True)
class PositionSpec:
    """How a bundle's positions become target weights and orders: plain numbers and strings."""

    length: int = 63                       # L: bars the position net reads, ending at the decision bar
    vol_target: float = momentum.VOL_TARGET  # annualised volatility each position is scaled to
    vol_span: int = momentum.VOL_SPAN      # span of the ex-ante volatility's EWMA
    max_leverage: float = momentum.MAX_LEVERAGE  # cap of vol_scale
    max_weight: float = 1.0                # |weight| of one asset
    max_gross: float = 1.0                 # sum of |weights| of the book (the strategy scales the book down)
    buffer: float = 0.0                    # re-trade a feed only when |target - current weight| > buffer
    long_only: bool = False
    cooldown: int = 0                      # bars after a stop or take-profit fill before that side may be held
    risk: str = "atr"                      # atr: fixed brackets of fixed_stop_atr / fixed_take_atr; none; net
    fixed_stop_atr: float = 2.0
    fixed_take_atr: float = 3.0
    tsmom_lookback: int = momentum.TSMOM_LOOKBACK  # the tsmom member's lookback (strategy.tsmom_lookback)

    def __post_init__(self):
        if self.risk not in RISK_MODES:
            raise ConfigError(f"position risk mode '{self.risk}' is unknown: choose one of {', '.join(RISK_MODES)}")
        if self.length < 2:
            raise ConfigError(f"timing.length is {self.length}: the position net reads 2 bars or more")

    @property
    def warmup_bars(self) -> int:
        """Bars a feed needs before its first finite target: a full window of the net's inputs, and
        the classical members' and the volatility's own histories."""
        return max(momentum.INPUT_BARS + self.length - 1,
                   momentum.ready_bars("tsmom", self.tsmom_lookback, self.vol_span),
                   momentum.ready_bars("macd", span=self.vol_span))


def net_args(net: PositionNet) -> dict:
    """The keywords that rebuild an empty PositionNet of this shape (dropout aside: it is off in a bundle)."""
    embedding = net.embedding
    return {"n_inputs": net.lstm.input_size - (embedding.embedding_dim if embedding is not None else 0),
            "hidden": net.lstm.hidden_size, "heads": net.block.attention.num_heads,
            "n_assets": embedding.num_embeddings if embedding is not None else 0,
            "embed": embedding.embedding_dim if embedding is not None else 0, "long_only": net.long_only}


def ensemble_payload(ensemble: PositionEnsemble) -> dict:
    """An ensemble's nets as plain tensors, with why each was chosen (its validation Sharpe, its seed)."""
    return {"val_sharpes": [float(v) for v in ensemble.val_sharpes], "seeds": [int(s) for s in ensemble.seeds],
            "states": [cpu_state(net) for net in ensemble.nets]}


def ensemble_from(payload: dict, args: dict) -> PositionEnsemble:
    """The ensemble `ensemble_payload` wrote, its nets rebuilt from `args` (net_args) without dropout."""
    nets = []
    for state in payload["states"]:
        net = PositionNet(dropout=0.0, **args)
        net.load_state_dict(state)
        nets.append(net)
    return PositionEnsemble(nets, [float(v) for v in payload["val_sharpes"]], list(payload["seeds"]))


def sizer_args(net: PositionSizingNet) -> dict:
    """The keywords that rebuild an empty PositionSizingNet of this shape."""
    first = net.body[0]
    return {"n_inputs": first.in_features, "hidden": first.out_features, "max_multiplier": float(net.max_multiplier)}


@dataclass(frozen=True)
class PositionMembers:
    """What each of MEMBERS holds on a bar, before the meta-learner weighs them (it weighs them by these
    positions on the validation tail): the position ensemble's and the classical tsmom's and macd's."""

    spec: PositionSpec
    net: PositionEnsemble                  # the top-M position nets, averaged
    assets: tuple[str, ...] = ()           # pool order: an asset's index is its id for a net with an embedding

    @property
    def warmup_bars(self) -> int:
        return self.spec.warmup_bars

    def asset_id(self, asset: str | None) -> int | None:
        """The asset's index for a net with an asset embedding; None for one without."""
        if self.net.nets[0].embedding is None:
            return None
        if asset not in self.assets:
            raise ConfigError(f"this bundle's net tells assets apart and was trained on {', '.join(self.assets)}; "
                              f"feed '{asset}' is none of them: name the feed after one, or train on it")
        return self.assets.index(asset)

    def positions(self, close, asset: str | None = None, rows: np.ndarray | None = None,
                  inputs: np.ndarray | None = None) -> np.ndarray:
        """(len(MEMBERS), len(rows)) each member's position in [-1, 1] ([0, 1] long-only) decided on each
        row's close (default: every bar), from bars <= row only; NaN before a member's warm-up.
        `inputs`: momentum.inputs(close), when the caller has them."""
        close = np.asarray(close, dtype=float)
        rows = np.arange(len(close)) if rows is None else np.asarray(rows, dtype=int)
        inputs = momentum.inputs(close) if inputs is None else inputs
        neural = positions(self.net, inputs, rows, self.spec.length, self.asset_id(asset))
        classical = np.stack([momentum.tsmom(close, self.spec.tsmom_lookback), momentum.macd(close)])[:, rows]
        if self.spec.long_only:  # the net's sigmoid is already in [0, 1]
            classical = np.maximum(classical, 0.0)
        return np.vstack([neural[None], classical])


@dataclass
class PositionBundle(PayloadFile):
    spec: PositionSpec
    net: PositionEnsemble                  # the top-M position nets, averaged
    weights: tuple[float, ...] = (1 / 3, 1 / 3, 1 / 3)  # the meta-learner's weights of MEMBERS, summing to 1
    book_scale: float = 1.0                # 1 / the number of traded assets
    sizer: PositionSizingNet | None = None  # the sizing net; None: a multiplier of 1 (its twin)
    risk_net: RiskNet | None = None        # spec.risk 'net': the risk net; None there: no legs (its twin)
    timeframe: tuple[str, int] = DAILY
    meta: dict = field(default_factory=dict)  # provenance: source, assets, train window, segment
    assets: tuple[str, ...] = ()           # pool order: an asset's index is its id for a net with an embedding
    cycle: dict = field(default_factory=dict)  # what `nt-backtrader update` continues from (see cycle.py); {} = none

    def __post_init__(self):
        self.net.eval()
        for net in (self.sizer, self.risk_net):
            if net is not None:
                net.eval()

    @property
    def warmup_bars(self) -> int:
        return self.spec.warmup_bars

    @property
    def members(self) -> PositionMembers:
        return PositionMembers(self.spec, self.net, self.assets)

    def member_positions(self, close, asset: str | None = None, rows: np.ndarray | None = None,
                         inputs: np.ndarray | None = None) -> np.ndarray:
        """(len(MEMBERS), len(rows)) each member's position on each row (PositionMembers.positions)."""
        return self.members.positions(close, asset, rows, inputs)

    def target_weights(self, open_, high, low, close, asset: str | None = None) -> np.ndarray:
        """(n,) the signed target weight decided on each bar's close, from bars <= t only; NaN before
        the warm-up (and where a member has no position)."""
        return self.decisions(open_, high, low, close, asset)[0]

    def bracket_atr(self, open_, high, low, close, asset: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(n,) each: the stop and take-profit distances, in ATRs (features.average_true_range), of a
        side entered on that bar; NaN before the warm-up, with spec.risk 'none', and where the risk net
        (or its absence) says no legs; inf for the leg a risk net's cell leaves out (the other goes alone)."""
        return self.decisions(open_, high, low, close, asset)[1:]

    def decisions(self, open_, high, low, close, asset: str | None = None) -> tuple[np.ndarray, ...]:
        """(n,) each: the target weight, the stop and the take-profit distances of each bar, the
        members' positions computed once for all three."""
        unsized, state = self.unsized_weights(close, asset)
        with torch.no_grad():
            multiplier = multipliers(self.sizer, state).double().numpy()
        spec, n = self.spec, len(unsized)
        weight = np.clip(unsized * multiplier, 0.0 if spec.long_only else -spec.max_weight, spec.max_weight)
        weight[:spec.warmup_bars - 1] = np.nan
        stop, take = np.full(n, np.nan), np.full(n, np.nan)
        if spec.risk == "atr":
            stop[:], take[:] = spec.fixed_stop_atr, spec.fixed_take_atr
        elif spec.risk == "net" and self.risk_net is not None:
            finite = np.isfinite(state).all(axis=1)
            with torch.no_grad():
                cell = self.risk_net(torch.as_tensor(np.nan_to_num(state), dtype=torch.float32)).argmax(dim=-1).numpy()
            stops, takes = grid()
            legs = finite & (cell != NO_LEGS)
            # a distance of NONE beside a leg is that leg's absence (inf: a level no bar reaches), as trained
            stop = np.where(legs, np.where(stops[cell] >= NONE, np.inf, stops[cell]), np.nan)
            take = np.where(legs, np.where(takes[cell] >= NONE, np.inf, takes[cell]), np.nan)
        ready = np.isfinite(average_true_range(*(np.asarray(a, dtype=float) for a in (high, low, close))))
        ready[:spec.warmup_bars - 1] = False
        return weight, np.where(ready, stop, np.nan), np.where(ready, take, np.nan)

    def unsized_weights(self, close, asset: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """((n,) the target weight before the sizing net's multiplier and the limits, (n, k) the sizing
        and risk nets' state) on each bar, from bars <= t only: what those nets read."""
        close = np.asarray(close, dtype=float)
        spec, inputs = self.spec, momentum.inputs(close)
        blended = np.asarray(self.weights) @ self.member_positions(close, asset, inputs=inputs)     # (n,)
        scale = momentum.vol_scale(close, spec.vol_target, spec.vol_span, spec.max_leverage)
        return blended * scale * self.book_scale, sizing_state(blended, inputs)

    # --- persistence --------------------------------------------------------------------------
    def to_payload(self) -> dict:
        payload = {
            "format_version": FORMAT_VERSION, "kind": KIND, "spec": asdict(self.spec),
            "inputs": list(momentum.INPUTS), "args": net_args(self.net.nets[0]),
            "members": list(MEMBERS), "weights": [float(w) for w in self.weights],
            "book_scale": float(self.book_scale),
            "sizer": {} if self.sizer is None else {"args": sizer_args(self.sizer), "state": cpu_state(self.sizer)},
            "risk_net": {} if self.risk_net is None else {
                "hidden": self.risk_net.body[0].out_features, "state": cpu_state(self.risk_net)},
            "timeframe": [str(self.timeframe[0]), int(self.timeframe[1])], "meta": dict(self.meta),
            "assets": list(self.assets), "cycle": self.cycle, "ensemble": ensemble_payload(self.net),
        }
        return sealed(payload)

    @classmethod
    def from_payload(cls, payload: dict, source: str = "position bundle") -> "PositionBundle":
        check_payload(payload, source, KIND)
        if payload.get("inputs") != list(momentum.INPUTS) or payload.get("members") != list(MEMBERS):
            raise CheckpointError(f"{source} was trained on other inputs or members than this nt_backtrader "
                                  "computes; train a new one")
        try:
            sizer = None
            if payload["sizer"]:
                sizer = PositionSizingNet(**payload["sizer"]["args"])
                sizer.load_state_dict(payload["sizer"]["state"])
            risk_net = None
            if payload.get("risk_net"):
                risk_net = RiskNet(len(STATE_COLUMNS), payload["risk_net"]["hidden"], stop_grid=STOP_GRID,
                                   take_grid=TAKE_GRID)
                risk_net.load_state_dict(payload["risk_net"]["state"])
            return cls(PositionSpec(**payload["spec"]), ensemble_from(payload["ensemble"], payload["args"]),
                       tuple(payload["weights"]), float(payload["book_scale"]), sizer,
                       risk_net, (str(payload["timeframe"][0]), int(payload["timeframe"][1])),
                       dict(payload["meta"]), tuple(payload["assets"]), payload.get("cycle", {}))
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
            raise CheckpointError(f"{source} does not hold a complete position bundle ({exc}); train a new one") \
                from None

