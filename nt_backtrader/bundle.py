"""Bundle: one segment's trained decision, in one file: what it thinks of each bar of a feed.

A bundle is made once, from finished parts, each with one job:
    the timing ensemble (timing_ensemble.py): neural and classical members weighed by the meta-learner;
    the brackets (bracket_levels.py): the risk net's distances blended with fixed ones by trust;
    the entry sizer (entry_sizing.py): the sizing net's fraction blended with its volatility-target
        twin by trust, and the portfolio limits;
    its payload (bundle_payload.py): plain tensors, numbers and strings, written atomically and
        checked by SHA-256 on load;
with the timing rule chosen on the validation tail (spec) and the train window's feature scalers.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .bracket_levels import BracketLevels
from .bundle_payload import KIND, bundle_parts, bundle_payload
from .checkpoint import PayloadFile
from .decisions import DecisionSpec, warmup_bars
from .entry_sizing import EntrySizer, Sizing
from .errors import CheckpointError
from .features import VOL_21D, Scaler, average_true_range, compute_features
from .timeframe import DAILY
from .timing_ensemble import TimingEnsemble

__all__ = ["KIND", "Bundle", "Signals", "bundle_for", "get_bundle"]  # KIND: read by bundle_file


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


@dataclass
class Bundle(PayloadFile):
    """One segment's trained decision, made once from finished parts (see the module): what it thinks of
    each bar of a feed (predict), the size of an entry (size, limit), and its file (save, load)."""

    spec: DecisionSpec                    # the timing rule chosen on the validation tail; the twins' settings
    ensemble: TimingEnsemble              # the timing members and their weights
    bracket_levels: BracketLevels         # the risk net and its trust
    entry_sizer: EntrySizer               # the sizing net, its trust, the portfolio scale and limits
    scaler: Scaler                        # the pooled train-window scaler: for a feed it was not trained on
    scalers: dict                         # asset name -> its own train-window Scaler
    args: dict                            # constructor arguments of each network kind
    timeframe: tuple = DAILY              # the bars it was trained on: (bt.TimeFrame name, compression)
    meta: dict = field(default_factory=dict)   # data source, train dates, config: provenance only
    cycle: dict = field(default_factory=dict)  # what `nt-backtrader update` continues from (see cycle.py); {} = none

    @property
    def warmup_bars(self) -> int:
        return warmup_bars(self.spec, self.ensemble.members.names)

    def scaler_for(self, asset: str | None) -> Scaler:
        """The asset's own scaler; for a feed the bundle was not trained on, the pooled one."""
        return self.scalers.get(asset, self.scaler)

    def member_probabilities(self, scaled: np.ndarray, close: np.ndarray,
                             rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(members, n) p_long and p_short of every member at `rows`; NaN elsewhere."""
        return self.ensemble.members.probabilities(scaled, close, rows, self.spec)

    @torch.inference_mode()
    def predict(self, open_, high, low, close, volume, rows: np.ndarray | None = None,
                asset: str | None = None) -> Signals:
        """Outputs for every bar (or `rows`) of one asset, each from bars up to that bar only."""
        high, low, close = (np.asarray(a, dtype=float) for a in (high, low, close))
        features = compute_features(open_, high, low, close, volume)
        scaled = self.scaler_for(asset).transform(features)
        n = len(features)
        rows = np.arange(self.warmup_bars - 1, n) if rows is None else rows[rows >= self.warmup_bars - 1]
        p_long, p_short, conf = self.ensemble.combine(*self.member_probabilities(scaled, close, rows),
                                                      self.spec.allow_short)
        levels = {}
        for direction, suffix in ((1.0, ""), (-1.0, "_short")):
            stop, take = np.full(n, np.nan), np.full(n, np.nan)
            stop[rows], take[rows] = self.bracket_levels.distances(scaled[rows], direction, self.spec)
            levels["stop_atr" + suffix], levels["take_atr" + suffix] = stop, take
        return Signals(p_long, p_short, conf, **levels, atr=average_true_range(high, low, close),
                       vol=features[:, VOL_21D], scaled=scaled)

    def size(self, scaled_row: np.ndarray, state: np.ndarray, vol: float) -> Sizing:
        """The fraction of equity for one entry (entry_sizing.EntrySizer.size)."""
        return self.entry_sizer.size(scaled_row, state, vol, self.spec)

    def limit(self, fraction: float, gross: float, drawdown: float) -> float:
        """An entry's fraction within the portfolio limits (entry_sizing.EntrySizer.limit)."""
        return self.entry_sizer.limit(fraction, gross, drawdown, self.spec)

    def to_payload(self) -> dict:
        return bundle_payload(self)

    @classmethod
    def from_payload(cls, payload: dict, source: str = "bundle") -> "Bundle":
        return cls(**bundle_parts(payload, source))


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
