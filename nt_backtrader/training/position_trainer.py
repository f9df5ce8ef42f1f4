"""Training of the position nets: pooled sequences, the decision function, the validation
portfolio's net Sharpe, one fit per seed, and the top-M of K seed ensemble.

Arrays in, nets out: the inputs, next-day returns and volatility scales come from
nt_backtrader.momentum; nothing here reads prices, dates aside.

Rows are bars. A row's label reads `reach` bars ahead (the trader's: open[t+2] / open[t+1] - 1,
what a weight decided on bar t's close earns once filled at the next open), so a fit row is one
with row + reach < fit_end and a validation row one with fit_end <= row and row + reach < val_end:
no fit label reaches the validation tail, no label at all reaches val_end.

The validation tail has two parts with one job each: its first half early-stops each net, its
second half ranks the nets for the top-M ensemble (and the candidates for the tuner), so the
Sharpe a net is chosen by is not the one its stopping epoch was chosen by.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import momentum
from ..errors import DataError
from ..features import windows
from ..networks.position import PositionEnsemble, PositionNet
from .loop import FitResult, Hyper, fit
from .losses import net_sharpe_loss, position_direction_loss, sharpe
from .samples import labelled_rows

PAD_TO = 64       # decision batches are padded to a multiple of this (see positions)
MIN_SEQUENCES = 4  # a batch of fewer sequences is skipped; 4 of 63 bars give the loss about 250 steps


@dataclass
class AssetSeries:
    """One asset of the pool, rows in time order; nothing at or after val_end is ever read."""

    name: str
    inputs: np.ndarray        # (n, F) causal inputs, NaN in the warm-up
    next_returns: np.ndarray  # (n,) r_{t+1}, NaN at the last bar
    vol_scale: np.ndarray     # (n,) sigma_target / ex-ante sigma_t
    cost: float               # per-side fraction of the traded value (commission + slippage)
    dates: np.ndarray         # (n,) datetime64
    fit_end: int              # rows < fit_end are the fit part
    val_end: int              # rows in [fit_end, val_end) are the validation tail
    reach: int = 1            # bars a row's label reads ahead (1: r_{t+1} close to close; the trader's: 2)

    @property
    def stop_end(self) -> int:
        """The validation tail's first part [fit_end, stop_end) early-stops; [stop_end, val_end) ranks."""
        return self.fit_end + (self.val_end - self.fit_end) // 2

    def part(self, name: str) -> tuple[int, int]:
        """(start, end) rows of the validation tail's part: "stop", "rank" or the whole "tail"."""
        return {"stop": (self.fit_end, self.stop_end), "rank": (self.stop_end, self.val_end),
                "tail": (self.fit_end, self.val_end)}[name]

    def usable(self, start: int, end: int) -> np.ndarray:
        """Rows in [start, end) whose inputs and labels are finite and whose label stays before end."""
        rows = labelled_rows(start, end, self.reach)
        finite = (np.isfinite(self.inputs[rows]).all(axis=1) & np.isfinite(self.next_returns[rows])
                  & np.isfinite(self.vol_scale[rows]))
        return rows[finite]


@dataclass
class Sequences:
    """The fit parts of a pool cut into sequences, stacked over assets in time order."""

    x: torch.Tensor             # (B, L, F) inputs
    next_returns: torch.Tensor  # (B, L)
    vol_scale: torch.Tensor     # (B, L)
    cost: torch.Tensor          # (B,)
    mask: torch.Tensor          # (B, L) bool: the steps the loss counts
    asset: torch.Tensor         # (B,) index of the asset in the pool

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: str | torch.device) -> "Sequences":
        return Sequences(*(t.to(device) for t in (self.x, self.next_returns, self.vol_scale, self.cost,
                                                   self.mask, self.asset)))


def runs(rows: np.ndarray) -> list[np.ndarray]:
    """Stretches of consecutive rows: a sequence never bridges a gap of unusable rows."""
    return np.split(rows, np.flatnonzero(np.diff(rows) != 1) + 1) if len(rows) else []


def sequence_starts(n: int, length: int, stride: int, burn_in: int = 1) -> list[tuple[int, int]]:
    """(start, first counted step) of each sequence over n consecutive rows: every `stride`
    rows, the last one aligned to the end. The first `burn_in` steps of every sequence, and the
    steps an earlier sequence already counted, serve as context only, so each row enters the loss
    at most once, and always with a previous step whose weight change it pays."""
    if n < length:
        return []
    starts = list(range(0, n - length + 1, stride))
    if starts[-1] != n - length:
        starts.append(n - length)
    counted, out = 0, []
    for start in starts:
        out.append((start, max(counted - start, burn_in)))
        counted = start + length
    return out


def sequences(pool: list[AssetSeries], length: int, burn_in: int = 1) -> Sequences:
    """The fit part of every asset cut into sequences of `length` consecutive usable rows that
    overlap by `burn_in` rows: those are context, so every row but a run's first `burn_in`
    enters the loss once, with at least `burn_in` bars before it in its sequence."""
    if not 1 <= burn_in < length:
        raise ValueError(f"burn_in must be in [1, {length}), got {burn_in}")
    stride = length - burn_in
    parts = {key: [] for key in ("x", "r", "v", "cost", "mask", "asset")}
    for index, series in enumerate(pool):
        for run in runs(series.usable(0, series.fit_end)):
            for start, first in sequence_starts(len(run), length, stride, burn_in):
                rows = run[start:start + length]
                parts["x"].append(series.inputs[rows])
                parts["r"].append(series.next_returns[rows])
                parts["v"].append(series.vol_scale[rows])
                parts["cost"].append(series.cost)
                parts["mask"].append(np.arange(length) >= first)
                parts["asset"].append(index)
    if not parts["x"]:
        names = ", ".join(s.name for s in pool)
        raise DataError(f"no asset of the pool ({names}) has {length} consecutive usable bars before its "
                        f"validation tail: give more history or a shorter sequence length")
    as_float = lambda key: torch.as_tensor(np.stack(parts[key]), dtype=torch.float32)  # noqa: E731
    return Sequences(as_float("x"), as_float("r"), as_float("v"),
                     torch.as_tensor(parts["cost"], dtype=torch.float32),
                     torch.as_tensor(np.stack(parts["mask"])), torch.as_tensor(parts["asset"]))


@torch.inference_mode()
def positions(net: PositionNet | PositionEnsemble, series_inputs: np.ndarray, rows: np.ndarray, length: int,
              asset_id: int | None = None, batch: int = 4096) -> np.ndarray:
    """The decision function: the position at each row is the last step of the net run over
    the `length` rows ending at that row, so it depends on those rows only, never on what came
    after or before them. NaN where the window is incomplete or holds a non-finite input.
    (len(rows),)"""
    rows = np.asarray(rows, dtype=int)
    out = np.full(len(rows), np.nan)
    complete = rows >= length - 1
    finite = np.isfinite(series_inputs).all(axis=1).astype(int)
    finite_in_window = np.convolve(finite, np.ones(length, dtype=int))[:len(finite)]  # (n,) trailing count
    ok = np.flatnonzero(complete & (finite_in_window[np.where(complete, rows, 0)] == length))
    if len(ok) == 0:
        return out
    training = net.training
    net.eval()
    device = next(net.parameters()).device
    for chunk in (ok[start:start + batch] for start in range(0, len(ok), batch)):
        # CPU kernels round a batch whose size is not a multiple of 4 differently (1e-7): padded
        # to a multiple of PAD_TO, a row's position is bit-identical however many rows are asked
        padded = np.pad(rows[chunk], (0, -len(chunk) % PAD_TO), mode="edge")
        x = torch.as_tensor(windows(series_inputs, length, padded), dtype=torch.float32, device=device)
        asset = None if asset_id is None else torch.full((len(padded),), asset_id, device=device)
        out[chunk] = net.last_step(x, asset)[:len(chunk)].double().cpu().numpy()  # (B,)
    net.train(training)
    return out


def validation_returns(net: torch.nn.Module, series: AssetSeries, length: int, asset_id: int,
                       part: str = "tail") -> tuple[np.ndarray, np.ndarray]:
    """(dates, daily net returns) of one asset over a part of its validation tail, traded by
    `positions` as momentum.net_returns books it. The first change is measured from the position
    at the bar before the part; a row without a position is flat."""
    start, end = series.part(part)
    rows = series.usable(start, end)
    if len(rows) == 0:
        return series.dates[:0], np.zeros(0)
    held = np.arange(start - 1, rows[-1] + 1)                   # the bar before the part, then the part
    weight = np.zeros(len(held))                                # no position (or no bar): flat
    inside = held >= 0
    weight[inside] = positions(net, series.inputs, held[inside], length, asset_id) * series.vol_scale[held[inside]]
    earned = np.full(len(held), np.nan)
    earned[rows - held[0]] = series.next_returns[rows]
    returns = momentum.net_returns(np.nan_to_num(weight), earned, series.cost)
    return series.dates[rows], returns[rows - held[0]]


def validation_sharpe(net: torch.nn.Module, pool: list[AssetSeries], length: int, part: str = "tail") -> float:
    """Annualised Sharpe of the validation portfolio over a part of the tails: each date the mean
    net return of the assets that trade that date (calendars differ). NaN with fewer than two
    dates. An asset's index in the pool is its id for a net with an asset embedding."""
    dated = [validation_returns(net, series, length, index, part) for index, series in enumerate(pool)]
    dates = np.concatenate([d for d, _ in dated])
    if len(dates) == 0:
        return math.nan
    days, day = np.unique(dates, return_inverse=True)
    portfolio = (np.bincount(day, weights=np.concatenate([r for _, r in dated]), minlength=len(days))
                 / np.bincount(day, minlength=len(days)))                       # (days,)
    return float(sharpe(torch.as_tensor(portfolio))) if len(portfolio) > 1 else math.nan


@dataclass
class PositionFit:
    """One trained net, what it scored on the validation tail and what it was trained with."""

    net: PositionNet
    val_sharpe: float      # the validation portfolio's net Sharpe on the tails' rank part, at the kept weights
    result: FitResult
    seed: int
    hyper: Hyper


def fit_position_net(pool: list[AssetSeries], hyper: Hyper, seed: int, *, length: int = 63,
                     burn_in: int = 1, hidden: int = 16, heads: int = 4, embed: int = 0,
                     long_only: bool = False, loss: str = "sharpe", epochs: int = 30, patience: int = 5,
                     epoch_samples: int | None = None, warm_state: dict | None = None,
                     device: str = "cpu") -> PositionFit:
    """One position net pooled over every asset's fit part, early-stopped on the validation
    portfolio's net Sharpe over the tails' stop part through the shared loop, scored on their
    rank part. `hyper.batch_size` and `epoch_samples` count sequences. `loss` "direction" trains the
    cross-entropy twin instead of the net Sharpe (the ablation's; early stopping and ranking stay on the
    net Sharpe). Everything random (initial weights, dropout, batch order) follows `seed`; on CPU two
    fits with the same arguments give the same weights."""
    for part in ("stop", "rank"):
        if not any(len(series.usable(*series.part(part))) for series in pool):
            raise DataError(f"no asset of the pool ({', '.join(s.name for s in pool)}) has a usable bar in the "
                            f"{part} half of its validation tail: give more history or a longer validation tail")
    data = sequences(pool, length, burn_in).to(device)
    # fork_rng: seeding here must not move the caller's global torch stream
    with torch.random.fork_rng(devices=None if torch.device(device).type == "cuda" else []):
        torch.manual_seed(seed)
        net = PositionNet(pool[0].inputs.shape[1], hidden, heads, hyper.dropout,
                          n_assets=len(pool), embed=embed, long_only=long_only)
        if warm_state is not None:
            net.load_state_dict(warm_state)
        net.to(device)

        def batch_loss(model, idx: np.ndarray) -> torch.Tensor:
            idx = torch.as_tensor(idx, device=device)
            position = model(data.x[idx], data.asset[idx])                          # (b, L)
            if loss == "direction":
                return position_direction_loss(position, data.next_returns[idx], data.mask[idx], long_only)
            return net_sharpe_loss(position, data.next_returns[idx], data.vol_scale[idx], data.cost[idx],
                                   data.mask[idx])

        def val_loss(model) -> float:
            return -validation_sharpe(model, pool, length, "stop")

        result = fit(net, len(data), batch_loss, val_loss, hyper, epochs, patience,
                     np.random.default_rng(seed), epoch_samples=epoch_samples, min_block=MIN_SEQUENCES)
    return PositionFit(net, validation_sharpe(net, pool, length, "rank"), result, seed, hyper)


def ensemble(fits: list[PositionFit], top_m: int) -> PositionEnsemble:
    """The `top_m` fits with the best validation Sharpe, their positions averaged; ties keep the
    order of `fits` (seed order), a NaN Sharpe ranks last."""
    rank = lambda i: -fits[i].val_sharpe if math.isfinite(fits[i].val_sharpe) else math.inf  # noqa: E731
    best = sorted(range(len(fits)), key=rank)[:max(1, top_m)]
    return PositionEnsemble([fits[i].net for i in best], [fits[i].val_sharpe for i in best],
                            [fits[i].seed for i in best])


def fit_ensemble(pool: list[AssetSeries], hypers: list[Hyper], seeds: list[int], top_m: int,
                 **options) -> tuple[PositionEnsemble, list[PositionFit]]:
    """K = len(hypers) x len(seeds) nets (every draw of the tuner with every seed), the top M averaged.
    `options` are fit_position_net's keywords. The K fits run one after another; on a GPU they
    could be batched into one wide net (torch.func.stack_module_state), a later optimisation."""
    fits = [fit_position_net(pool, hyper, seed, **options) for hyper, seed in itertools.product(hypers, seeds)]
    return ensemble(fits, top_m), fits
