"""Torch runtime: device choice, thread count and seeding, set once per run."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from .errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device here; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def configure(device: str = "auto", threads: int = 0) -> torch.device:
    """One thread per core by default: small nets on a small machine gain nothing from more."""
    torch.set_num_threads(threads if threads > 0 else max(1, os.cpu_count() or 1))
    return resolve_device(device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
