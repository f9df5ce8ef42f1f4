"""Walk-forward checkpoints: everything a run needs to resume after any segment, in one file.

Written atomically after every segment (`<out>/checkpoint.pt`): config, progress, the carried
account state, the stitched results so far, the history, the trainer's state (networks,
optimizers, tuner and meta-learner) and a fingerprint of every asset's bars used so far.
Plain tensors, numbers and strings only.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .checkpoint import FORMAT_VERSION, atomic_torch_save, check_payload, digest, load_payload
from .config import Config, to_dict
from .data import COLUMNS
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


def fingerprint(frame: pd.DataFrame, through: pd.Timestamp) -> str:
    """SHA-256 over an asset's bars up to `through` (inclusive): their dates and OHLCV values, so bars
    appended after `through` leave it unchanged and any edit up to it changes it."""
    used = frame.loc[frame.index <= through]
    h = hashlib.sha256(used.index.to_numpy().astype("datetime64[ns]").astype(np.int64).tobytes())
    h.update(used[COLUMNS].to_numpy(dtype=np.float64).tobytes())
    return h.hexdigest()


def data_used(universe: dict[str, pd.DataFrame], through: pd.Timestamp) -> dict:
    """What a checkpoint records of its data: the last bar its segments used and each asset's fingerprint."""
    return {"through": str(through), "assets": {name: fingerprint(frame, through) for name, frame in universe.items()}}


def save(path: Path, config: Config, done: int, n_segments: int, carry: dict, returns: pd.Series,
         equity: pd.Series, tables: dict, history: list, trader_state: dict, data: dict) -> None:
    """`data`: `data_used` of the universe up to the last bar of segment `done - 1`'s test window."""
    payload = {"format_version": FORMAT_VERSION, "kind": KIND, "config": config_key(config), "data": data,
               "segments_done": done, "n_segments": n_segments, "carry": plain(carry),
               "returns": series_to_payload(returns), "equity": series_to_payload(equity),
               "tables": {name: frame_to_payload(tables[name]) for name in TABLES}
               | {name: frame_to_payload(tables[name].reset_index()) for name in WIDE_TABLES},
               "history": plain(history), "trader": plain(trader_state)}
    payload["sha256"] = digest(payload)
    atomic_torch_save(payload, path)


def load(path: Path, config: Config, n_segments: int, columns: dict[str, list[str]],
         universe: dict[str, pd.DataFrame]) -> dict:
    """The checkpoint at `path`, checked against the config and data (`universe`) of the run that resumes it."""
    payload = load_payload(path)
    check_payload(payload, str(path), KIND)
    if payload["config"] != config_key(config):
        mine, theirs = json.loads(config_key(config)), json.loads(payload["config"])
        raise CheckpointError(f"{path} was written by a run with other settings ({first_difference(theirs, mine)}); "
                              "resume with the same options, or start afresh without --resume")
    if "data" not in payload:
        raise CheckpointError(f"{path} was written by an older nt_backtrader that did not record its data, so a "
                              "resume could mix two data sets: start afresh without --resume")
    changed = data_change(payload["data"], universe)
    if changed:
        raise CheckpointError(f"{path} was written on other data ({changed}): resume on the same data, "
                              "or start afresh without --resume")
    if payload["n_segments"] != n_segments:
        raise CheckpointError(f"{path} was written for {payload['n_segments']} segments, this data gives "
                              f"{n_segments}: resume on the same data, or start afresh without --resume")
    return {"done": payload["segments_done"], "carry": payload["carry"],
            "returns": payload_to_series(payload["returns"], "returns"),
            "equity": payload_to_series(payload["equity"], "equity"),
            "tables": {name: payload_to_frame(payload["tables"][name], columns[name]) for name in TABLES}
            | {name: wide_frame(payload["tables"][name]) for name in WIDE_TABLES},
            "history": payload["history"], "trader": payload["trader"]}


def data_change(recorded_data: dict, universe: dict[str, pd.DataFrame]) -> str:
    """The first asset whose bars up to the last bar a checkpoint used (`recorded_data`, as `data_used`
    gave it) differ in `universe`, in words; "" when none does."""
    through = pd.Timestamp(recorded_data["through"])
    recorded, now = recorded_data["assets"], data_used(universe, through)["assets"]
    for name in sorted(set(recorded) | set(now)):
        if name not in now:
            return f"asset '{name}' is missing now"
        if name not in recorded:
            return f"asset '{name}' is new"
        if recorded[name] != now[name]:
            return f"asset '{name}' has other bars up to {through.date()}"
    return ""


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
