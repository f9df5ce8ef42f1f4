"""Config: TOML in and out, unknown keys with a suggestion, types checked."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from nt_backtrader.config import CHOICES, Config, DataConfig, load_config, override, to_toml
from nt_backtrader.errors import ConfigError


def test_toml_round_trip(tmp_path):
    config = override(Config(), **{"seed": 7, "data.columns": {"date": "Datum"}, "walkforward.window": "rolling",
                                   "backtest.commission_bps": 3.0, "strategy.allow_short": True})
    path = tmp_path / "exp.toml"
    path.write_text(to_toml(config))
    assert load_config(path) == config


def test_toml_round_trip_of_a_universe(tmp_path):
    path = tmp_path / "exp.toml"
    for data in ({"data.dataset": ("sp500", "nasdaq")}, {"data.dataset": (), "data.csv": ("a.csv", "b.csv")},
                 {"data.csv_dir": "prices", "data.tickers": ("SPY", "TLT")}):
        config = override(Config(), **data)
        path.write_text(to_toml(config))
        assert load_config(path) == config


# a value of every kind of field: int, float, bool, str, str | None, tuple[str, ...], tuple[float, ...],
# tuple[int, ...], dict[str, str], dict[str, tuple[float, ...]]; keys and strings TOML must quote or escape
EVERY_KIND = {"seed": 3, "backtest.cash": 5e4, "train.weight_decay": 1e-7, "strategy.allow_short": False,
              "timing.loss": "sharpe", "data.cache_dir": 'caché "x"\\y', "data.start": "2005-01-01",
              "data.dataset": ("sp500", "nasdaq"), "meta.classical_members": ("sma",), "timing.bands": (0.1,),
              "timing.min_holds": (10, 3, 1), "data.columns": {"date": "Datum", "adj close": "Schluss"},
              "backtest.costs": {"currency": (0.5, 0.5), "BRK.B": (2.0, 5.0)}}


@pytest.mark.parametrize("changes", [{}, EVERY_KIND], ids=["default", "every_kind"])
def test_written_and_read_back_is_equal(tmp_path, changes):
    config = override(Config(), **changes)
    path = tmp_path / "exp.toml"
    path.write_text(to_toml(config), encoding="utf-8")
    assert load_config(path) == config
    if changes:
        assert config != Config() and config.data.cache_dir == 'caché "x"\\y'
        assert tomllib.loads(to_toml(config))["backtest"]["costs"]["BRK.B"] == [2.0, 5.0]
        assert "csv_dir" not in tomllib.loads(to_toml(config))["data"]  # None: TOML has none, the default reads back


def test_code_and_command_line_values_take_the_fields_types():
    config = override(Config(), **{"backtest.cash": 5000, "timing.bands": [0.05], "data.csv_dir": Path("prices"),
                                   "data.trade": "SPY", "backtest.costs": {"SPY": [2, 0]}})
    assert config.backtest.cash == 5000.0 and isinstance(config.backtest.cash, float)
    assert config.timing.bands == (0.05,) and config.data.csv_dir == "prices" and config.data.trade == ("SPY",)
    assert config.backtest.costs == {"SPY": (2.0, 0.0)}


@pytest.mark.parametrize("key, value, message", [
    ("train.threads", True, "config key 'train.threads' must be int, got True"),
    ("train.threads", 1.5, "config key 'train.threads' must be int, got 1.5"),
    ("strategy.allow_short", "yes", "config key 'strategy.allow_short' must be bool, got 'yes'"),
    ("data.start", 2005, "config key 'data.start' must be str, got 2005"),
    ("timing.min_holds", [1.5], "config key 'timing.min_holds' must be a list of whole numbers, got [1.5]"),
    ("timing.bands", [], "config key 'timing.bands' must list one or more numbers"),
    ("data.columns", "date=Datum", "config key 'data.columns' must be a table, e.g. columns = { ... }"),
    ("backtest.costs", {"SPY": "cheap"}, "config key 'backtest.costs.SPY' must be a list of numbers, got ['cheap']"),
    ("timing.hiden", 8, "unknown config key 'timing.hiden': did you mean 'hidden'?"),
])
def test_a_value_of_the_wrong_type_names_its_key(key, value, message):
    with pytest.raises(ConfigError) as info:
        override(Config(), **{key: value})
    assert str(info.value) == message


def test_one_name_is_a_list_of_one(tmp_path):
    assert override(Config(), **{"data.dataset": "nasdaq"}).data.dataset == ("nasdaq",)
    assert override(Config(), **{"data.csv": tmp_path / "a.csv"}).data.csv == (str(tmp_path / "a.csv"),)
    path = tmp_path / "exp.toml"
    path.write_text('[data]\ndataset = "nasdaq"\ncsv = "a.csv"\n\n[meta]\nclassical_members = "sma"\n')
    config = load_config(path)
    assert config.data.dataset == ("nasdaq",) and config.data.csv == ("a.csv",)
    assert config.meta.classical_members == ("sma",)


def test_unknown_key_suggests_the_closest(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text("[backtest]\ncomission_bps = 2\n")
    with pytest.raises(ConfigError,
                       match=r"unknown config key 'backtest.comission_bps': did you mean 'commission_bps'\?"):
        load_config(path)
    path.write_text("[walkfoward]\ntrain_bars = 500\n")
    with pytest.raises(ConfigError, match=r"'walkfoward': did you mean 'walkforward'\?"):
        load_config(path)


def test_types_are_checked_and_ints_widen_to_floats(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text("[walkforward]\ntrain_bars = 'long'\n")
    with pytest.raises(ConfigError, match="'walkforward.train_bars' must be int"):
        load_config(path)
    path.write_text("[backtest]\ncash = 5000\n")
    assert load_config(path).backtest.cash == 5000.0


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.toml")
    with pytest.raises(ConfigError, match="is a folder: give a TOML file"):
        load_config(tmp_path)
    (tmp_path / "bad.toml").write_text("[backtest\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")


@pytest.mark.parametrize("key, value, message", [
    ("tuner.mode", "fixd", "'tuner.mode' is 'fixd': did you mean 'fixed'? choose one of network, fixed, random"),
    ("timing.loss", "sharp", "'timing.loss' is 'sharp': did you mean 'sharpe'? choose one of direction, sharpe, both"),
    ("walkforward.window", "sliding", "'walkforward.window' is 'sliding': choose one of expanding, rolling"),
    ("strategy.name", "tsmon", "'strategy.name' is 'tsmon': did you mean 'tsmom'? "
                               "choose one of neural, buy_hold, sma_cross, tsmom"),
    ("train.device", "gpu", "'train.device' is 'gpu': did you mean 'cpu'? choose one of auto, cpu, cuda"),
    ("meta.classical_members", ("tsmom", "smaa"), "'meta.classical_members' is 'smaa': did you mean 'sma'? "
                                                  "choose one of tsmom, sma"),
    ("data.dataset", "nasdq", "'data.dataset' is 'nasdq': did you mean 'nasdaq'? choose one of sp500, nasdaq"),
])
def test_fixed_choice_knobs_reject_other_values(tmp_path, key, value, message):
    with pytest.raises(ConfigError) as info:
        override(Config(), **{key: value})
    assert message in str(info.value)
    section, name = key.split(".")
    path = tmp_path / "exp.toml"
    path.write_text(f"[{section}]\n{name} = {list(value) if isinstance(value, tuple) else repr(value)}\n")
    with pytest.raises(ConfigError, match=message.split(":")[0]):
        load_config(path)


def test_every_allowed_value_is_accepted():
    discrete = override(Config(), **{"timing.mode": "direction"})  # risk.limits 'learned' is the discrete mode's
    for key, allowed in CHOICES.items():
        for value in allowed:
            override(discrete, **{key: (value,) if key == "meta.classical_members" else value})


def test_purge_gap_must_cover_the_label_horizon():
    override(Config(), **{"timing.horizon": 8, "walkforward.purge_bars": 8})
    with pytest.raises(ConfigError, match=r"walkforward.purge_bars \(7\) must be >= timing.horizon \(8\)"):
        override(Config(), **{"timing.horizon": 8, "walkforward.purge_bars": 7})
    with pytest.raises(ConfigError, match=r"purge_bars \(4\) must be >= timing.horizon \(5\)"):
        override(Config(), **{"walkforward.purge_bars": 4})


def test_none_for_a_list_of_names_is_no_names():
    assert DataConfig(csv=None).csv == () and override(Config(), **{"data.trade": None}).data.trade == ()
