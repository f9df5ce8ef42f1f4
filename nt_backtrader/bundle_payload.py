"""A Bundle as a file's payload and back: plain tensors, numbers and strings only.

The payload's layout is the one bundles have been written in since format version 5, so a file
written by `nt-backtrader train` before the bundle was made of parts loads as it did.
"""
from __future__ import annotations

import copy

import torch

from .bracket_levels import BracketLevels
from .checkpoint import FORMAT_VERSION, check_payload, cpu_state, sealed
from .decisions import DecisionSpec
from .entry_sizing import EntrySizer
from .errors import CheckpointError
from .features import FEATURE_SPEC, Scaler
from .networks import PositionSizingNet, RiskNet, TimingNet
from .networks.timing import SeedAverage
from .timeframe import DAILY
from .timing_ensemble import TimingEnsemble, TimingMembers

KIND = "nt_backtrader.bundle"
RETRAIN = "train a new one with `nt-backtrader train`"


def bundle_payload(bundle) -> dict:
    """The payload of a Bundle, sealed with its SHA-256."""
    ensemble, sizer = bundle.ensemble, bundle.entry_sizer
    return sealed({
        "format_version": FORMAT_VERSION, "kind": KIND,
        "spec": dict(vars(bundle.spec)), "args": bundle.args, "meta": bundle.meta,
        "features": copy.deepcopy(FEATURE_SPEC),
        "scaler": scaler_payload(bundle.scaler),
        "scalers": {name: scaler_payload(scaler) for name, scaler in bundle.scalers.items()},
        "portfolio_scale": float(sizer.portfolio_scale), "limits": [float(v) for v in sizer.limits],
        "timeframe": [str(bundle.timeframe[0]), int(bundle.timeframe[1])], "cycle": bundle.cycle,
        "ensemble": {"members": list(ensemble.members.names), "weights": [float(w) for w in ensemble.weights],
                     "trust": [float(sizer.trust), float(bundle.bracket_levels.trust)]},
        "state": {"timing": [cpu_state(net) for net in ensemble.members.nets],
                  "sizing": cpu_state(sizer.net), "risk": cpu_state(bundle.bracket_levels.net)},
    })


def bundle_parts(payload: dict, source: str) -> dict:
    """The keyword arguments of the Bundle a checked payload holds; a foreign, damaged, older or
    incomplete payload is one CheckpointError that says to retrain."""
    from .position_bundle import KIND as POSITION_KIND

    if payload.get("kind") == POSITION_KIND:  # the default config's bundle, given to a discrete-mode piece
        raise CheckpointError(f"{source} is a bundle of the deep-momentum core (timing.mode position), which "
                              "PositionStrategy trades; NeuralStrategy, NeuralSizer and the risk brackets take a "
                              "discrete one: train it with --config strategies/discrete.toml")
    check_payload(payload, source, KIND)
    if payload.get("features") != FEATURE_SPEC:
        raise CheckpointError(f"{source} was trained on other features than this nt_backtrader computes; {RETRAIN}")
    try:
        args, states, ensemble = payload["args"], payload["state"], payload["ensemble"]
        sizing_trust, risk_trust = ensemble["trust"]
        members = TimingMembers(tuple(timing_member(args["timing"], state) for state in states["timing"]),
                                tuple(ensemble["members"]))
        sizing, risk = PositionSizingNet(**args["sizing"]), RiskNet(**args["risk"])
        sizing.load_state_dict(states["sizing"])
        risk.load_state_dict(states["risk"])
        return {"spec": DecisionSpec(**payload["spec"]),
                "ensemble": TimingEnsemble(members, tuple(ensemble["weights"])),
                "bracket_levels": BracketLevels(risk, risk_trust),
                "entry_sizer": EntrySizer(sizing, sizing_trust, float(payload["portfolio_scale"]),
                                          tuple(payload["limits"])),
                "scaler": scaler_from(payload["scaler"]),
                "scalers": {k: scaler_from(v) for k, v in payload["scalers"].items()}, "args": args,
                "timeframe": tuple(payload.get("timeframe", DAILY)), "meta": payload.get("meta", {}),
                "cycle": payload.get("cycle", {})}
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{source} does not hold a complete nt_backtrader bundle ({exc}); {RETRAIN}") from None


def timing_member(args: dict, state: dict):
    """A timing member with a saved state: one TimingNet, or a SeedAverage of as many as it holds."""
    lines = {key.split(".")[1] for key in state if key.startswith("nets.")}
    net = SeedAverage([TimingNet(**args) for _ in lines]) if lines else TimingNet(**args)
    net.load_state_dict(state)
    return net


def scaler_payload(scaler: Scaler) -> dict:
    return {"mean": torch.as_tensor(scaler.mean), "std": torch.as_tensor(scaler.std), "clip": scaler.clip}


def scaler_from(payload: dict) -> Scaler:
    return Scaler(payload["mean"].double().numpy(), payload["std"].double().numpy(), float(payload["clip"]))
