"""Shared fixtures: real data slices, small walk-forward configs, and no network at all."""
from __future__ import annotations

import os
import signal
import socket
import time

import numpy as np
import pandas as pd
import pytest
import torch
from curl_cffi import requests as curl_requests  # yfinance's HTTP client

from nt_backtrader.config import Config, override
from nt_backtrader.data import load_ohlcv

if os.environ.get("PYTEST_XDIST_WORKER"):
    # two workers on two cores: a second torch thread per worker would only fight the other worker for a core
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open an internet connection fails the test that made it: Python sockets,
    and curl_cffi (yfinance's HTTP client), which opens its sockets in C, out of Python's sight."""

    def refuse(what):
        raise RuntimeError(f"test tried to reach the network: {what}")

    real_connect = socket.socket.connect

    def guarded(sock, address, *args, **kwargs):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            refuse(address)
        return real_connect(sock, address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    for session in (curl_requests.Session, curl_requests.AsyncSession):
        monkeypatch.setattr(session, "request", lambda self, method, url, *a, **k: refuse(url))


@pytest.fixture(scope="session")
def sp500() -> pd.DataFrame:
    return load_ohlcv(dataset="sp500")


@pytest.fixture(scope="session")
def sp500_short(sp500) -> pd.DataFrame:
    """2004-2009: six years, a bull market, the 2008 crash and the rebound."""
    return sp500.loc["2004-01-01":"2009-12-31"]


@pytest.fixture
def small_config() -> Config:
    """One-year train windows and quarterly tests: many segments on a short slice."""
    return override(Config(), **{"walkforward.train_bars": 252, "walkforward.test_bars": 63})


def yahoo_csv(path, frame: pd.DataFrame, adj_ratio: float | np.ndarray = 1.0) -> str:
    """Write `frame` in Yahoo's download format; returns the file's text."""
    out = pd.DataFrame({"Date": frame.index.strftime("%Y-%m-%d"), "Open": frame["open"], "High": frame["high"],
                        "Low": frame["low"], "Close": frame["close"], "Adj Close": frame["close"] * adj_ratio,
                        "Volume": frame["volume"].astype(int)})
    out.to_csv(path, index=False)
    return path.read_text()


def edit_field(text: str, row: int, column: str, value: str) -> str:
    """The CSV text with one cell (line `row`, column `column`) set to `value`: a damaged row."""
    lines = text.splitlines()
    header = lines[0].split(",")
    cells = lines[row].split(",")
    cells[header.index(column)] = value
    lines[row] = ",".join(cells)
    return "\n".join(lines) + "\n"


def with_noise_after(frame: pd.DataFrame, cutoff: pd.Timestamp, seed: int = 1) -> pd.DataFrame:
    """Replace every bar after `cutoff` by a valid random walk: the future a leak would see."""
    rng = np.random.default_rng(seed)
    noisy = frame.copy()
    after = noisy.index > cutoff
    n = int(after.sum())
    close = frame["close"][~after].iloc[-1] * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
    open_ = close * np.exp(rng.normal(0, 0.01, n))
    noisy.loc[after, "open"] = open_
    noisy.loc[after, "close"] = close
    noisy.loc[after, "high"] = np.maximum(open_, close) * (1 + rng.uniform(0, 0.02, n))
    noisy.loc[after, "low"] = np.minimum(open_, close) * (1 - rng.uniform(0, 0.02, n))
    noisy.loc[after, "volume"] = rng.uniform(1e8, 5e9, n)
    return noisy


def with_prices_scaled_after(frame: pd.DataFrame, cutoff: pd.Timestamp, factor: float) -> pd.DataFrame:
    """Every price after `cutoff` times `factor`: a jump on the next bar that a one-bar peek cannot miss."""
    scaled = frame.copy()
    scaled.loc[scaled.index > cutoff, ["open", "high", "low", "close"]] *= factor
    return scaled


FUTURES = {"noise": with_noise_after,
           "halved": lambda frame, cut: with_prices_scaled_after(frame, cut, 0.5),
           "doubled": lambda frame, cut: with_prices_scaled_after(frame, cut, 2.0)}


def assert_same_up_to(clean, changed, cutoff: pd.Timestamp) -> None:
    """Every daily return, order and fill up to `cutoff` is bit for bit the same; after it, not."""
    before = clean.returns.index <= cutoff
    pd.testing.assert_series_equal(clean.returns[before], changed.returns[changed.returns.index <= cutoff],
                                   check_exact=True)
    for table in ("orders", "fills"):
        mine, theirs = getattr(clean, table), getattr(changed, table)
        pd.testing.assert_frame_equal(mine[mine["date"] <= cutoff].reset_index(drop=True),
                                      theirs[theirs["date"] <= cutoff].reset_index(drop=True), check_exact=True)
    # The change did reach the walk-forward: what comes after T differs.
    assert not clean.returns[~before].equals(changed.returns[changed.returns.index > cutoff])


def kill_after_segments(proc, checkpoint, segments: int, timeout: float = 240) -> int:
    """SIGKILL `proc` once the walk-forward checkpoint at `checkpoint` records `segments` done (or at
    the timeout, or when the process ended); returns the segments it had done."""
    done, deadline = 0, time.time() + timeout
    while done < segments and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if checkpoint.is_file():
            done = torch.load(checkpoint, weights_only=True)["segments_done"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return done


# The discrete mode's tiny settings: its tests were written when it was the default (allow_short and the
# sizing net as then); the core's tests start from CORE_TINY (below).
TINY = {"timing.mode": "direction", "strategy.allow_short": False, "sizing.enabled": True,
        "walkforward.train_bars": 252, "walkforward.test_bars": 126, "timing.hidden": 8, "timing.heads": 2,
        "timing.window": 16, "train.first_epochs": 3, "train.max_epochs": 1, "train.max_samples": 400,
        "sizing.hidden": 8, "risk.hidden": 8, "tuner.population": 2, "meta.steps": 5}


@pytest.fixture
def tiny_config() -> Config:
    """Tiny networks and few epochs: the neural pipeline end to end in seconds."""
    return override(Config(), **TINY)


@pytest.fixture(scope="session")
def tiny_bundle(sp500):
    """A tiny bundle trained on 2004-2009, for backtests from 2010 on."""
    from nt_backtrader.traders import arrays_of
    from nt_backtrader.training.coordinator import Coordinator
    from nt_backtrader.training.samples import AssetWindow

    history = sp500.loc["2004":"2009"]
    coordinator = Coordinator(override(Config(), **TINY))
    bundle, _ = coordinator.fit({"sp500": AssetWindow(arrays_of(history), 0, int(len(history) * 0.8))}, segment=0,
                                meta={"source": "sp500", "train_start": "2004-01-02", "train_end": "2009-12-31"})
    return bundle


# The deep-momentum core's tiny settings (timing.mode = "position"), shared by the core's tests through the
# `config` fixture below (test_core_guarantees and test_position_commands build theirs from it).
CORE_TINY = {"timing.mode": "position", "timing.hidden": 4, "timing.heads": 2, "timing.length": 21,
             "tuner.population": 1, "timing.seeds": 2, "train.first_epochs": 2, "train.max_epochs": 2,
             "train.threads": 1, "walkforward.train_bars": 900, "walkforward.test_bars": 63,
             "strategy.allow_short": True, "sizing.max_fraction": 0.1, "train.device": "cpu"}


@pytest.fixture(scope="module")
def config() -> Config:
    """The core's tiny config (CORE_TINY)."""
    return override(Config(), **CORE_TINY)


@pytest.fixture(scope="module")
def universe(sp500) -> dict[str, pd.DataFrame]:
    """Two indices from 2004, 1,100 bars each: three segments of a 900-bar first train window."""
    return {"sp500": sp500.loc["2004":].iloc[:1100], "nasdaq": load_ohlcv(dataset="nasdaq").loc["2004":].iloc[:1100]}


@pytest.fixture(scope="module")
def one_thread():
    """Nets this small gain nothing from a second thread, and on a shared 2-core box two threads per process
    wait on each other (measured 10x slower): one thread for the module that asks for it
    (pytestmark = pytest.mark.usefixtures("one_thread")), then the count the tests before had, restored."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_records_equal(records: list, restored: list, count: int) -> None:
    """Two lists of the core's realized records (position_sizer.Window, position_risk.Entries) hold
    the same arrays, dtypes included: what a state_dict round trip must keep."""
    assert len(restored) == len(records) == count
    for mine, theirs in zip(records, restored):
        for key, value in vars(mine).items():
            assert getattr(theirs, key).dtype == value.dtype
            np.testing.assert_array_equal(getattr(theirs, key), value)
