"""Checkpoint files: plain tensors and numbers, written atomically, checked by SHA-256 on load.

Shared by bundles and walk-forward checkpoints: `torch.load(weights_only=True)` never runs
code from a file, the temp-file-then-rename write never leaves half a file, and the digest
turns a damaged file (truncated, a flipped bit, a careless edit) into one clear error instead
of silently wrong weights. The digest is stored in the file itself, so it checks integrity,
not authenticity: whoever edits a file on purpose can store a matching digest. Load only
files you or someone you trust wrote.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch

from .errors import CheckpointError

FORMAT_VERSION = 5  # 2: the tuner reads validation Sharpe; bundles record their feature spec;
                   # 3: a universe: per-asset scalers, portfolio scale, per-asset carry;
                   # 4: the tuner's state holds its Optuna trials;
                   # 5: seed ensembles, meta-labeling and the chosen least holding period


def digest(payload: dict) -> str:
    """SHA-256 over every tensor's bytes and every other value, in a fixed key order: an integrity
    check (no key is involved, so anyone can recompute it)."""
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


def cpu_state(net: torch.nn.Module) -> dict:
    """A copy of a net's weights as plain CPU tensors: what a file, a warm start or a checkpoint keeps,
    whatever the device it trained on."""
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def sealed(payload: dict) -> dict:
    """The payload with its digest stored in it, under "sha256"."""
    payload["sha256"] = digest(payload)
    return payload


class PayloadFile:
    """save() and load() for a class that writes itself as a payload (to_payload) and is rebuilt from one
    (from_payload, which checks it): the file written atomically, read with weights_only=True."""

    def save(self, path: str | Path) -> Path:
        return atomic_torch_save(self.to_payload(), path)

    @classmethod
    def load(cls, path: str | Path):
        return cls.from_payload(load_payload(path), source=str(path))


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
