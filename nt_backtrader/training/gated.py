"""The fit the core's sizing and risk nets share: train on older realized windows, early-stop on the
first half of the newest, keep the net only if it beats its twin on the second half (which the
early stop did not read)."""
from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

STEPS, CHECK_EVERY, LR, WEIGHT_DECAY = 300, 10, 1e-2, 1e-3


def fit_gated(net: nn.Module, loss: Callable[[nn.Module], torch.Tensor],
              score: Callable[[nn.Module | None, object], float], check, gate, name: str, info: dict,
              steps: int = STEPS) -> tuple[nn.Module | None, dict]:
    """Full-batch AdamW steps on `loss`; every CHECK_EVERY steps `score(net, check)`, the best weights
    kept; then the net if `score(net, gate)` beats `score(None, gate)` (its twin), else None. `info`
    gains name_check_sharpe (the net's on the gate half), name_twin_sharpe and name_kept."""
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    best, best_state = -math.inf, None
    for step in range(1, steps + 1):
        value = loss(net)
        opt.zero_grad()
        value.backward()
        opt.step()
        if step % CHECK_EVERY == 0:
            current = score(net, check)
            if current > best:
                best, best_state = current, copy.deepcopy(net.state_dict())
    if best_state is None:
        return None, info
    net.load_state_dict(best_state)
    net.eval()
    gated, twin = score(net, gate), score(None, gate)
    info |= {f"{name}_check_sharpe": gated, f"{name}_twin_sharpe": twin}
    return (net, info | {f"{name}_kept": True}) if gated > twin else (None, info)
