"""One reader for a bundle file: a Bundle (the discrete timing modes) or a PositionBundle (the
deep-momentum core), told apart by the `kind` its payload records, never by the file's name.

Every command that reads --bundle goes through `load_bundle`: the file is read once with
weights_only=True and checked by SHA-256 by the class its kind names; a missing, damaged, tampered
or foreign file (a walk-forward checkpoint, another program's torch file) ends in one CheckpointError.
"""
from __future__ import annotations

from pathlib import Path

from . import bundle, position_bundle
from .checkpoint import load_payload
from .errors import CheckpointError

READERS = {bundle.KIND: bundle.Bundle, position_bundle.KIND: position_bundle.PositionBundle}


def load_bundle(path: str | Path) -> bundle.Bundle | position_bundle.PositionBundle:
    """The bundle at `path`, of the class its payload's kind names."""
    payload = load_payload(path)
    reader = READERS.get(payload.get("kind"))
    if reader is None:
        what = f"a {payload['kind']}, not a bundle" if isinstance(payload.get("kind"), str) else \
            "not an nt_backtrader bundle"
        raise CheckpointError(f"{path} is {what}: give a file written by `nt-backtrader train` or `update`")
    return reader.from_payload(payload, source=str(path))


def is_position(loaded) -> bool:
    """The bundle is the deep-momentum core's (traded by PositionStrategy), not a discrete one."""
    return isinstance(loaded, position_bundle.PositionBundle)
