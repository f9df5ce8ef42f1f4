"""Torch runtime: device choice and thread count, set once per run."""
from __future__ import annotations

import os

import torch

from .errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device here; use --device cpu or auto")
    return torch.device(name)  # the name itself was checked with the Config (train.device)


def usable_cores() -> int:
    """The cores this process may run on (a container or taskset may allow fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def configure(device: str = "auto", threads: int = 0) -> torch.device:
    """One thread per usable core by default: small nets on a small machine gain nothing from more."""
    torch.set_num_threads(threads if threads > 0 else usable_cores())
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        # Reruns on one GPU are bit-identical (same GPU model, driver, CUDA, cuDNN and PyTorch; same config
        # and seed) only where every op has a deterministic CUDA kernel: cuBLAS needs a fixed workspace (set
        # here unless given, before CUDA's first use), cuDNN its deterministic kernels. An op without one
        # does not stop the run (warn_only): PyTorch warns, and that run's last bits may differ. Another GPU
        # model or software version, or the CPU, gives other bits.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        torch.use_deterministic_algorithms(True, warn_only=True)
    return resolved
