"""PositionNet: an LSTM, then causal self-attention, over a sequence of inputs -> a position per step.

The deep-momentum shape (Lim, Zohren and Roberts 2019; Wood et al. 2021): many-to-many, so
every step of a sequence is a decision and a training target; the attention is masked so
step k reads steps <= k only, which keeps every output a function of its past.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .timing import LastStepEncoderLayer


class CausalEncoderLayer(LastStepEncoderLayer):
    """The timing net's pre-norm encoder layer (attention and feed-forward, each residual) with a
    path over every step whose attention is masked to the past: step k attends to steps 0..k.

    Training reads every step (`every_step`); a decision reads the last one, and the inherited
    `forward` computes that step alone, the others serving as keys and values only: the same
    arithmetic, about 40x less attention work than the masked softmax over all steps.
    """

    def attend_causal(self, x: torch.Tensor) -> torch.Tensor:
        """Multi-head attention of every step over itself and the steps before: (B, L, H) -> (B, L, H)."""
        att = self.attention
        (b, steps, hidden), heads = x.shape, att.num_heads
        q, k, v = F.linear(x, att.in_proj_weight, att.in_proj_bias).chunk(3, dim=-1)   # (B, L, H) each
        split = lambda t: t.view(b, steps, heads, hidden // heads).transpose(1, 2)  # noqa: E731
        out = F.scaled_dot_product_attention(split(q), split(k), split(v), is_causal=True,
                                             dropout_p=att.dropout if self.training else 0.0)  # (B, heads, L, d)
        return att.out_proj(out.transpose(1, 2).reshape(b, steps, hidden))

    def every_step(self, h: torch.Tensor) -> torch.Tensor:
        y = h + self.dropout1(self.attend_causal(self.norm1(h)))               # (B, L, H)
        return y + self.dropout2(self.feedforward(self.norm2(y)))               # (B, L, H)


class PositionNet(nn.Module):
    """A position in [-1, 1] (tanh) at every step, or in [0, 1] (sigmoid) when long-only.

    With `n_assets` and `embed` > 0, a learned vector per asset joins every step's inputs, so
    one pooled net can still treat a bond unlike a stock; `forward` then needs `asset`.
    """

    def __init__(self, n_inputs: int, hidden: int = 16, heads: int = 4, dropout: float = 0.1,
                 n_assets: int = 0, embed: int = 0, long_only: bool = False):
        super().__init__()
        if hidden % heads:
            raise ConfigError(f"hidden ({hidden}) must be a multiple of heads ({heads}): change one of them")
        self.embedding = nn.Embedding(n_assets, embed) if n_assets > 0 and embed > 0 else None
        self.lstm = nn.LSTM(n_inputs + (embed if self.embedding is not None else 0), hidden, batch_first=True)
        self.block = CausalEncoderLayer(hidden, heads, dropout)
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, 1)
        self.long_only = long_only

    def encode(self, x: torch.Tensor, asset: torch.Tensor | None) -> torch.Tensor:
        """LSTM states of every step: (B, L, F) -> (B, L, H)."""
        if self.embedding is not None:
            if asset is None:
                raise ValueError("this PositionNet has an asset embedding: pass asset (B,) indices")
            tag = self.embedding(asset)[:, None].expand(-1, x.shape[1], -1)   # (B, L, E)
            x = torch.cat([x, tag], dim=-1)                                    # (B, L, F + E)
        return self.lstm(x)[0]

    def squash(self, h: torch.Tensor) -> torch.Tensor:
        out = self.head(self.norm(h)).squeeze(-1)
        return torch.sigmoid(out) if self.long_only else torch.tanh(out)

    def forward(self, x: torch.Tensor, asset: torch.Tensor | None = None) -> torch.Tensor:
        """The position at every step: (B, L, F) -> (B, L)."""
        return self.squash(self.block.every_step(self.encode(x, asset)))

    def last_step(self, x: torch.Tensor, asset: torch.Tensor | None = None) -> torch.Tensor:
        """The position at the last step only, what a decision reads: (B, L, F) -> (B,)."""
        return self.squash(self.block(self.encode(x, asset)))


class PositionEnsemble(nn.Module):
    """Position nets of one input layout averaged step by step: the top-M of K seeds as one net.

    `val_sharpes` and `seeds` record why each member was chosen (best first)."""

    def __init__(self, nets: list[nn.Module], val_sharpes: list[float], seeds: list[int]):
        super().__init__()
        self.nets = nn.ModuleList(nets)
        self.val_sharpes, self.seeds = list(val_sharpes), list(seeds)

    def forward(self, x: torch.Tensor, asset: torch.Tensor | None = None) -> torch.Tensor:
        return torch.stack([net(x, asset) for net in self.nets]).mean(0)              # (B, L)

    def last_step(self, x: torch.Tensor, asset: torch.Tensor | None = None) -> torch.Tensor:
        return torch.stack([net.last_step(x, asset) for net in self.nets]).mean(0)    # (B,)
