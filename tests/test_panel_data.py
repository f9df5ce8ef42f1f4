"""The 28-market panel as package data (issue #18, point 1): its quirks said once per asset, its calendars
kept apart, --trade by ticker, costs per asset or class reaching backtrader, and the files found from an
installed package."""
from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import sys
import warnings
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nt_backtrader
from nt_backtrader import cli, job
from nt_backtrader.cli import build_parser, config_from_args
from nt_backtrader.config import Config, DataConfig, load_config, override, to_toml
from nt_backtrader.costs import asset_class, asset_costs
from nt_backtrader.data import load_panel, load_universe, traded, universe_name
from nt_backtrader.datasets import PANEL_END, panel_classes, panel_file, panel_folder
from nt_backtrader.errors import ConfigError, DataError
from nt_backtrader.features import FEATURE_NAMES, LOOKBACK, compute_features
from nt_backtrader.plugin import BuyHold, run_backtest

NO_VOLUME = ("EURUSD", "GBPUSD", "NZDUSD", "EURGBP", "XAUUSD")  # OANDA's currencies and gold


def raw_file(ticker: str) -> pd.DataFrame:
    """A panel file as it is shipped, indexed by its dates."""
    with panel_file(ticker).open("rb") as handle:
        return pd.read_csv(io.BytesIO(gzip.decompress(handle.read())), index_col="Date", parse_dates=True)


@pytest.fixture(scope="module")
def panel():
    """The whole panel with its default end, and the warnings loading it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        universe = load_universe(dataset="panel")
    return universe, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def test_the_28_assets_load_by_ticker_with_their_classes(panel):
    universe, _ = panel
    classes = panel_classes()
    assert list(universe) == list(classes) and len(universe) == 28
    assert Counter(classes.values()) == {"us_equity_etf": 4, "country_equity_etf": 5, "bond_etf": 2,
                                         "commodity_etf": 7, "currency": 5, "gold_spot": 1, "us_stock": 4}
    assert asset_class("eurusd") == "currency" and asset_class("SPY") == "us_equity_etf" and asset_class("x") is None
    notice = (panel_folder() / "NOTICE").read_text()
    for needed in ("11bblandin/quantfiction", "QuantConnect/Lean", "MIT License", "Apache License 2.0", *classes):
        assert needed in notice
    assert "Apache License" in (panel_folder() / "LICENSE-APACHE-2.0").read_text()
    # every series ends on the default end: GDX's last bar, the earliest of the 28
    assert {frame.index[-1] for frame in universe.values()} == {pd.Timestamp(PANEL_END)}
    assert raw_file("GDX").index[-1] == pd.Timestamp(PANEL_END)
    assert universe["SPY"].index[0] == pd.Timestamp("1993-01-29")
    assert load_panel("IWM").index[-1] == pd.Timestamp("2021-03-31")  # with no end, an asset's own last bar


def test_what_is_repaired_or_ignored_is_said_once_per_asset(panel):
    _, said = panel
    assert said.count(f"dataset panel: the data ends at {PANEL_END}, the earliest last bar of its 28 series "
                      "(GDX's; 16 more end by 2018-04), so every asset trades to the end; give --end 2021-03-31 "
                      "for the years when a few run on") == 1
    assert [m for m in said if "outside the high-low range" in m] == [
        "panel/SPY.csv.gz: 2 bars had the open or close outside the high-low range (first 2015-03-05); "
        "widened the range to include them"]
    assert [m for m in said if "no volume" in m] == [
        f"panel/{ticker}.csv.gz: no volume (0 on every bar); the volume features read 0" for ticker in NO_VOLUME]
    assert len(said) == 1 + 1 + len(NO_VOLUME)


def test_spy_two_bars_open_below_the_low_are_widened_not_clipped(panel):
    spy, raw = panel[0]["SPY"], raw_file("SPY")
    for day in ("2015-03-05", "2015-03-30"):
        assert raw.loc[day, "Open"] < raw.loc[day, "Low"]  # 209.42 < 209.85 on 2015-03-05, Yahoo's own bar
        ratio = raw.loc[day, "AdjClose"] / raw.loc[day, "Close"]  # the total-return scaling
        assert spy.loc[day, "open"] == pytest.approx(raw.loc[day, "Open"] * ratio, rel=1e-12)
        assert spy.loc[day, "close"] == pytest.approx(raw.loc[day, "Close"] * ratio, rel=1e-12)
        assert spy.loc[day, "low"] == spy.loc[day, "open"]  # the range takes the open in
        assert spy.loc[day, "high"] == pytest.approx(raw.loc[day, "High"] * ratio, rel=1e-12)


def test_zero_volume_assets_give_volume_features_of_zero_and_nothing_else_changes(panel):
    eurusd = panel[0]["EURUSD"].loc["2016-01-01":]
    assert (eurusd["volume"] == 0).all()
    features = compute_features(*(eurusd[c].to_numpy() for c in ("open", "high", "low", "close", "volume")))
    later = features[LOOKBACK - 1:]
    assert np.isfinite(later).all()
    assert (later[:, FEATURE_NAMES.index("volume_z")] == 0).all()
    # the same bars with some volume differ in that one feature only
    some = compute_features(*(eurusd[c].to_numpy() for c in ("open", "high", "low", "close")),
                            np.arange(1.0, len(eurusd) + 1))[LOOKBACK - 1:]
    others = [i for i, name in enumerate(FEATURE_NAMES) if name != "volume_z"]
    np.testing.assert_array_equal(later[:, others], some[:, others])


def test_calendars_differ_and_nothing_is_forward_filled(panel):
    universe = panel[0]
    eurusd, spy = universe["EURUSD"], universe["SPY"]
    assert pd.Timestamp("2007-07-04") in eurusd.index and pd.Timestamp("2007-07-04") not in spy.index  # US holiday
    assert pd.Timestamp("2007-01-01") in eurusd.index and pd.Timestamp("2007-01-01") not in spy.index
    # each asset has exactly its file's dates up to the end: no bar added, none dropped
    for ticker in ("EURUSD", "SPY", "XAUUSD", "BNO"):
        dates = raw_file(ticker).index
        assert universe[ticker].index.equals(pd.DatetimeIndex(dates[dates <= PANEL_END]).rename("date"))


def test_trade_spy_tlt_keeps_28_trained_assets_and_trades_2(panel):
    args = build_parser().parse_args(["run", "--dataset", "panel", "--trade", "spy,TLT"])
    config = config_from_args(args)
    assert config.data == DataConfig(dataset=("panel",), trade=("spy", "TLT"))
    assert universe_name(config.data) == "SPY+TLT@panel"  # spelt as the panel spells them
    universe = panel[0]
    assert len(universe) == 28 and list(traded(universe, config.data)) == ["SPY", "TLT"]
    assert universe_name(DataConfig(dataset="panel")) == "panel"
    assert universe_name(DataConfig(dataset=("sp500", "nasdaq"), trade="SP500")) == "sp500@sp500+nasdaq"
    with pytest.raises(DataError, match="data.trade names 'SPX', which is not in the universe .*did you mean 'SPY'"):
        universe_name(DataConfig(dataset="panel", trade=("SPX",)))


def test_run_dataset_panel_reports_to_reports_panel_neural(monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr(job, "run_and_report", lambda config, out, **kwargs: seen.update(config=config, out=out))
    monkeypatch.setattr(cli, "print_comparison", lambda table, out: None)
    assert cli.main(["run", "--dataset", "panel", "--quiet"]) == 0
    assert seen["out"] == Path("reports") / "panel-neural" and seen["config"].data.dataset == ("panel",)
    assert cli.main(["run", "--dataset", "panel", "--trade", "SPY,TLT", "--quiet"]) == 0
    assert seen["out"] == Path("reports") / "SPY+TLT@panel-neural"
    assert cli.main(["run", "--dataset", "panel", "--trade", "SPX", "--quiet"]) == 2
    assert "did you mean 'SPY'?" in capsys.readouterr().err


def test_costs_by_asset_then_class_then_flat():
    config = override(Config(), **{"backtest.costs": {"currency": [0.5, 0.5], "eurusd": [0.2, 0.3]}})
    assert asset_costs(config, ["SPY", "EURUSD", "GBPUSD", "mine"]) == {
        "SPY": (1.0, 1.0), "EURUSD": (0.2, 0.3), "GBPUSD": (0.5, 0.5), "mine": (1.0, 1.0)}
    assert asset_costs(Config(), ["SPY"]) == {"SPY": (1.0, 1.0)}  # the flat 1 bp + 1 bp by default
    with pytest.raises(ConfigError, match="backtest.costs names 'curency'.*did you mean 'currency'"):
        asset_costs(override(Config(), **{"backtest.costs": {"curency": [1, 1]}}), ["SPY"])
    with pytest.raises(ConfigError, match=r"'backtest.costs.SPY' is \[2\]: give two costs"):
        override(Config(), **{"backtest.costs": {"SPY": [2]}})


def test_costs_table_reads_from_toml_and_writes_back(tmp_path):
    path = tmp_path / "costs.toml"
    path.write_text('[backtest]\ncommission_bps = 2\n[backtest.costs]\ncurrency = [0.5, 0.5]\nUNG = [2, 5]\n')
    config = load_config(path)
    assert config.backtest.costs == {"currency": (0.5, 0.5), "UNG": (2.0, 5.0)}
    path.write_text(to_toml(config))
    assert load_config(path) == config
    path.write_text('[backtest.costs]\nUNG = "cheap"\n')
    with pytest.raises(ConfigError, match="'backtest.costs.UNG' must be a list of numbers"):
        load_config(path)


def bars(closes, opens) -> pd.DataFrame:
    opens, closes = np.asarray(opens, dtype=float), np.asarray(closes, dtype=float)
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, closes) + 1, "low": np.minimum(opens, closes) - 1,
                         "close": closes, "volume": 1e6}, index=pd.bdate_range("2020-01-01", periods=len(closes)))


def test_an_assets_own_commission_reaches_backtraders_fill():
    frame = bars([100, 102, 104], opens=[100, 100, 103])
    costs = asset_costs(override(Config(), **{"backtest.costs": {"SPY": [10, 0]}}), ["SPY"])
    result = run_backtest({"SPY": frame}, BuyHold, {"cash_buffer": 0.01}, cash=10_000, costs=costs)
    # decided on bar 0's close: 9900 / 100 = 99 units; bar 1's open 100 with no slippage, 10 bp commission
    fill = result.fills.iloc[0]
    assert fill["size"] == pytest.approx(99) and fill["price"] == pytest.approx(100.0)
    assert fill["commission"] == pytest.approx(99 * 100.0 * 0.001)


def test_each_feed_pays_its_own_commission_and_slippage():
    frame = bars([100, 102, 104], opens=[100, 100, 103])
    config = override(Config(), **{"backtest.costs": {"currency": [0, 10], "SPY": [10, 0]}})
    costs = asset_costs(config, ["SPY", "EURUSD", "data"])
    result = run_backtest({"SPY": frame, "EURUSD": frame, "data": frame}, BuyHold, {"cash_buffer": 0.01},
                          cash=30_000, costs=costs)
    fills = result.fills.set_index("asset")
    for name, commission, slippage in (("SPY", 10, 0), ("EURUSD", 0, 10), ("data", 1, 1)):  # data: the flat 1 + 1
        fill = fills.loc[name]
        assert fill["price"] == pytest.approx(100.0 * (1 + slippage / 1e4))
        assert fill["commission"] == pytest.approx(abs(fill["size"]) * fill["price"] * commission / 1e4)


def test_the_installed_package_finds_its_panel(tmp_path):
    """A wheel built from the package, unpacked away from the repository, reads its own files."""
    source = tmp_path / "src"
    shutil.copytree(Path(nt_backtrader.__file__).parent, source / "nt_backtrader",
                    ignore=shutil.ignore_patterns("__pycache__"))
    root = Path(nt_backtrader.__file__).parents[1]
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    build = "from setuptools import build_meta; print(build_meta.build_wheel('dist'))"
    wheel = subprocess.run([sys.executable, "-c", build], cwd=source, capture_output=True, text=True, check=True)
    site = tmp_path / "site"
    zipfile.ZipFile(source / "dist" / wheel.stdout.strip().splitlines()[-1]).extractall(site)
    probe = ("import warnings; warnings.simplefilter('ignore')\n"
             "from nt_backtrader.config import DataConfig\n"
             "from nt_backtrader.data import asset_names, load_panel\n"
             "from nt_backtrader.datasets import panel_folder\n"
             "print(panel_folder())\n"
             "print(len(asset_names(DataConfig(dataset='panel'))), load_panel('EURUSD').index[-1].date())")
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == [str(site / "nt_backtrader" / "datasets" / "panel"), "28 2018-12-31"]
