"""load_universe: several assets by name, in order, each validated on its own; the CLI spellings that name them."""
from __future__ import annotations

import pandas as pd
import pytest

from nt_backtrader.cli import build_parser, config_from_args
from nt_backtrader.config import DataConfig, load_config
from nt_backtrader.data import load_ohlcv, load_universe, universe_name
from nt_backtrader.errors import ConfigError, DataError

from conftest import edit_field, yahoo_csv


@pytest.fixture
def three_csvs(tmp_path, sp500_short):
    """bonds, gold, stocks: three ten-bar files in one folder, each a different slice of real bars."""
    folder = tmp_path / "universe"
    folder.mkdir()
    for i, name in enumerate(("bonds", "gold", "stocks")):
        yahoo_csv(folder / f"{name}.csv", sp500_short.iloc[10 * i:10 * i + 10])
    return folder


def test_two_datasets_load_in_order_each_on_its_own_calendar():
    universe = load_universe(dataset=("nasdaq", "sp500"), start="2008-01-01", end="2008-12-31")
    assert list(universe) == ["nasdaq", "sp500"]
    for name, frame in universe.items():
        pd.testing.assert_frame_equal(frame, load_ohlcv(dataset=name).loc["2008"])
    assert not universe["nasdaq"]["close"].equals(universe["sp500"]["close"])


def test_one_name_is_a_universe_of_one(sp500):
    universe = load_universe(dataset="sp500")
    assert list(universe) == ["sp500"] and universe["sp500"].equals(sp500)


def test_repeated_csv_and_csv_dir_give_the_same_universe(three_csvs, sp500_short):
    files = [str(three_csvs / f"{name}.csv") for name in ("bonds", "gold", "stocks")]
    by_files = load_universe(csv=files)
    by_folder = load_universe(csv_dir=str(three_csvs))
    assert list(by_files) == list(by_folder) == ["bonds", "gold", "stocks"]
    for name in by_files:
        pd.testing.assert_frame_equal(by_files[name], by_folder[name])
    pd.testing.assert_frame_equal(by_files["gold"], sp500_short.iloc[10:20], check_freq=False, rtol=1e-12)


def test_csv_files_come_before_the_folders_and_hidden_files_are_skipped(three_csvs, tmp_path, sp500_short):
    yahoo_csv(tmp_path / "cash.csv", sp500_short.iloc[:5])
    (three_csvs / "._gold.csv").write_bytes(b"\x00\x05\x16\x07")  # a macOS resource fork, not an asset
    (three_csvs / "notes.txt").write_text("not an asset")
    universe = load_universe(csv=str(tmp_path / "cash.csv"), csv_dir=str(three_csvs))
    assert list(universe) == ["cash", "bonds", "gold", "stocks"]


def test_files_win_over_tickers_and_datasets(three_csvs):
    universe = load_universe(csv_dir=str(three_csvs), tickers=("SPY",), dataset=("nasdaq",))
    assert list(universe) == ["bonds", "gold", "stocks"]


def test_duplicate_names_fail_naming_both_before_anything_loads(three_csvs, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "gold.csv").write_text("not even a CSV\x00")
    with pytest.raises(DataError) as info:
        load_universe(csv=str(other / "gold.csv"), csv_dir=str(three_csvs))
    message = str(info.value)
    assert "two assets are named 'gold'" in message and "rename one of the files" in message
    assert str(other / "gold.csv") in message and str(three_csvs / "gold.csv") in message
    with pytest.raises(DataError, match=r"'SPY' \(ticker SPY and ticker SPY\)"):
        load_universe(tickers=("spy", "SPY"))


def test_a_bad_row_in_the_second_of_three_files_names_that_file_and_row(three_csvs):
    gold = three_csvs / "gold.csv"
    gold.write_text(edit_field(gold.read_text(), 4, "Close", "n/a"))
    with pytest.raises(DataError) as info:
        load_universe(csv_dir=str(three_csvs))
    assert str(info.value).startswith(f"{gold} row 5: close is missing or not a number ('n/a')")


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(DataError, match="no such folder; give --csv-dir a folder of CSV files"):
        load_universe(csv_dir=str(tmp_path / "nope"))
    (tmp_path / "readme.txt").write_text("no prices here")
    with pytest.raises(DataError, match=r"no \*.csv files in this folder"):
        load_universe(csv_dir=str(tmp_path))


def test_an_asset_without_bars_in_the_date_range_is_named(three_csvs):
    # bonds.csv ends ten bars before gold.csv does: starting on gold's last bar leaves bonds with none.
    last_gold = pd.read_csv(three_csvs / "gold.csv")["Date"].iloc[-1]
    with pytest.raises(DataError, match=rf"{three_csvs / 'bonds.csv'}: no bars between"):
        load_universe(csv_dir=str(three_csvs), start=last_gold)
    with pytest.raises(DataError, match="^dataset nasdaq: no bars between 2030-01-01"):
        load_universe(dataset="nasdaq", start="2030-01-01")


def test_dataset_and_ticker_errors_name_the_asset(tmp_path, sp500_short):
    with pytest.raises(DataError, match="unknown dataset 'sp5000'"):
        load_universe(dataset=("sp500", "sp5000"))
    cache = tmp_path / "TLT.csv"  # a damaged cache file names the ticker it caches
    cache.write_text(edit_field(yahoo_csv(cache, sp500_short.iloc[:10]), 3, "Open", "0"))
    with pytest.raises(DataError, match=r"TLT\.csv row 4: open is 0.0"):
        load_universe(tickers="tlt", cache_dir=str(tmp_path))


def test_load_ohlcv_takes_one_asset_only(three_csvs):
    with pytest.raises(DataError, match=r"3 assets \(bonds\+gold\+stocks\) where one is expected.*load_universe"):
        load_ohlcv(csv_dir=str(three_csvs))
    with pytest.raises(DataError, match="no data source: give --dataset"):
        load_ohlcv(dataset=())


@pytest.mark.parametrize("fields, name", [
    ({}, "sp500"),
    ({"dataset": "nasdaq"}, "nasdaq"),
    ({"dataset": ("sp500", "nasdaq")}, "sp500+nasdaq"),
    ({"tickers": ("spy",)}, "SPY"),
    ({"tickers": ("spy", "tlt", "gld")}, "SPY+TLT+GLD"),
    ({"tickers": ("aapl", "msft", "nvda", "amzn")}, "AAPL+3more"),
    ({"csv": ("data/spx.csv",), "dataset": ("nasdaq",)}, "spx"),
])
def test_universe_name(fields, name):
    assert universe_name(DataConfig(**fields)) == name


def test_universe_name_of_a_folder(three_csvs, sp500_short):
    assert universe_name(DataConfig(csv_dir=str(three_csvs))) == "bonds+gold+stocks"
    yahoo_csv(three_csvs / "oil.csv", sp500_short.iloc[:5])
    assert universe_name(DataConfig(csv_dir=str(three_csvs))) == "bonds+3more"


def test_toml_takes_a_string_or_a_list(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('[data]\ndataset = "nasdaq"\ntickers = ["SPY", "TLT"]\n')
    assert load_config(path).data.dataset == ("nasdaq",) and load_config(path).data.tickers == ("SPY", "TLT")
    path.write_text('[data]\ndataset = ["nasdaq", "sp500"]\n')
    assert load_config(path).data.dataset == ("nasdaq", "sp500")
    path.write_text('[data]\ndataset = ["nasdaq", "sp5000"]\n')
    with pytest.raises(ConfigError, match="'data.dataset' is 'sp5000': did you mean 'sp500'?"):
        load_config(path)
    path.write_text("[data]\ncsv = 3\n")
    with pytest.raises(ConfigError, match="'data.csv' must be a list of strings"):
        load_config(path)


def _data(argv: list[str], config: str | None = None) -> DataConfig:
    args = build_parser().parse_args(["run", *argv, *(["--config", config] if config else [])])
    return config_from_args(args).data


def _only(**fields) -> DataConfig:
    """The DataConfig a command-line source gives: its fields, every other source field empty."""
    return DataConfig(**{"dataset": (), **fields})


@pytest.mark.parametrize("argv, expected", [
    ([], DataConfig()),
    (["--dataset", "nasdaq"], _only(dataset=("nasdaq",))),
    (["--dataset", "sp500,nasdaq"], _only(dataset=("sp500", "nasdaq"))),
    (["--dataset", "sp500", "--dataset", "nasdaq"], _only(dataset=("sp500", "nasdaq"))),
    (["--csv", "a.csv", "--csv", "b.csv"], _only(csv=("a.csv", "b.csv"))),
    (["--csv-dir", "prices"], _only(csv_dir="prices")),
    (["--csv", "a.csv", "--csv-dir", "prices"], _only(csv=("a.csv",), csv_dir="prices")),
    (["--tickers", "SPY, TLT,GLD"], _only(tickers=("SPY", "TLT", "GLD"))),
    (["--ticker", "SPY"], _only(tickers=("SPY",))),
])
def test_each_command_line_spelling(argv, expected):
    assert _data(argv) == expected


def test_a_command_line_source_replaces_the_config_files(tmp_path):
    config = tmp_path / "exp.toml"
    config.write_text('[data]\ndataset = "nasdaq"\ntickers = ["SPY"]\nstart = "2005-01-01"\n')
    assert _data([], str(config)) == DataConfig(dataset=("nasdaq",), tickers=("SPY",), start="2005-01-01")
    assert _data(["--csv", "a.csv"], str(config)) == _only(csv=("a.csv",), start="2005-01-01")


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "nasdq"], "argument --dataset: unknown dataset 'nasdq': did you mean 'nasdaq'? "
                             "choose from sp500, nasdaq"),
    (["--dataset", "sp500,ftse"], "unknown dataset 'ftse': choose from sp500, nasdaq, panel, or give --csv FILE"),
    (["--tickers", " , "], "argument --tickers/--ticker: expected one or more names"),
    (["--tickers", "SPY", "--csv", "a.csv"], "not allowed with argument"),
    (["--ticker", "SPY", "--dataset", "sp500"], "not allowed with argument"),
])
def test_bad_source_options_are_one_line_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["run", *argv])
    stderr = capsys.readouterr().err
    assert info.value.code == 2 and message in stderr and len(stderr.splitlines()) == 1


@pytest.mark.parametrize("other", [["--dataset", "nasdaq"], ["--tickers", "SPY"]])
def test_csv_dir_does_not_mix_with_other_source_kinds(other):
    with pytest.raises(ConfigError, match=f"--csv-dir and {other[0]} are different sources"):
        _data(["--csv-dir", "prices", *other])
