"""Walk-forward checkpoints: everything a run needs to resume after any segment, in one file.

Written atomically after every segment (`<out>/checkpoint.pt`): config, progress, the carried
account state, the stitched results so far, the history and the trainer's state (networks,
optimizers, tuner and meta-learner). Plain tensors, numbers and strings only.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .checkpoint import FORMAT_VERSION, atomic_torch_save, check_payload, digest, load_payload
from .config import Config, to_dict
from .errors import CheckpointError

KIND = "nt_backtrader.checkpoint"
TABLES = ("fills", "orders")
WIDE_TABLES = ("weights", "contributions")  # date x asset


def plain(value):
    """numpy scalars and arrays -> Python numbers and lists; tuples -> lists; tensors and keys kept
    (an optimizer's state is keyed by parameter number: a string key would silently drop it)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def frame_to_payload(frame: pd.DataFrame) -> dict:
    out = {}
    for name, column in frame.items():
        if pd.api.types.is_datetime64_any_dtype(column):
            out[name] = torch.tensor(column.to_numpy().astype("datetime64[ns]").astype(np.int64))
        elif pd.api.types.is_numeric_dtype(column):
            out[name] = torch.tensor(column.to_numpy(dtype=float))
        else:
            out[name] = [str(v) for v in column]
    return out


def payload_to_frame(payload: dict, columns: list[str]) -> pd.DataFrame:
    data = {}
    for name in columns:
        value = payload[name]
        if isinstance(value, torch.Tensor) and value.dtype == torch.int64:
            data[name] = pd.to_datetime(value.numpy().astype("datetime64[ns]"))
        elif isinstance(value, torch.Tensor):
            data[name] = value.numpy()
        else:
            data[name] = list(value)
    return pd.DataFrame(data, columns=columns)


def wide_frame(payload: dict) -> pd.DataFrame:
    """A date x asset table back from its payload (asset columns after the date)."""
    if "date" not in payload:
        return pd.DataFrame()
    return payload_to_frame(payload, list(payload)).set_index("date")


def series_to_payload(series: pd.Series) -> dict:
    return {"dates": torch.tensor(series.index.to_numpy().astype("datetime64[ns]").astype(np.int64)),
            "values": torch.tensor(series.to_numpy(dtype=float))}


def payload_to_series(payload: dict, name: str) -> pd.Series:
    index = pd.DatetimeIndex(payload["dates"].numpy().astype("datetime64[ns]"), name="date")
    return pd.Series(payload["values"].numpy(), index=index, name=name)


def config_key(config: Config) -> str:
    return json.dumps(plain(to_dict(config)), sort_keys=True)


def save(path: Path, config: Config, done: int, n_segments: int, carry: dict, returns: pd.Series,
         equity: pd.Series, tables: dict, history: list, trader_state: dict) -> None:
    payload = {"format_version": FORMAT_VERSION, "kind": KIND, "config": config_key(config),
               "segments_done": done, "n_segments": n_segments, "carry": plain(carry),
               "returns": series_to_payload(returns), "equity": series_to_payload(equity),
               "tables": {name: frame_to_payload(tables[name]) for name in TABLES}
               | {name: frame_to_payload(tables[name].reset_index()) for name in WIDE_TABLES},
               "history": plain(history), "trader": plain(trader_state)}
    payload["sha256"] = digest(payload)
    atomic_torch_save(payload, path)


def load(path: Path, config: Config, n_segments: int, columns: dict[str, list[str]]) -> dict:
    """The checkpoint at `path`, checked against the config and data of the run that resumes it."""
    payload = load_payload(path)
    check_payload(payload, str(path), KIND)
    if payload["config"] != config_key(config):
        mine, theirs = json.loads(config_key(config)), json.loads(payload["config"])
        raise CheckpointError(f"{path} was written by a run with other settings ({first_difference(theirs, mine)}); "
                              "resume with the same options, or start afresh without --resume")
    if payload["n_segments"] != n_segments:
        raise CheckpointError(f"{path} was written for {payload['n_segments']} segments, this data gives "
                              f"{n_segments}: resume on the same data, or start afresh without --resume")
    return {"done": payload["segments_done"], "carry": payload["carry"],
            "returns": payload_to_series(payload["returns"], "returns"),
            "equity": payload_to_series(payload["equity"], "equity"),
            "tables": {name: payload_to_frame(payload["tables"][name], columns[name]) for name in TABLES}
            | {name: wide_frame(payload["tables"][name]) for name in WIDE_TABLES},
            "history": payload["history"], "trader": payload["trader"]}


def first_difference(old: dict, new: dict, prefix: str = "") -> str:
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key} was {a!r}, now {b!r}"
    return ""
