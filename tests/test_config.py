"""Config: TOML in and out, unknown keys with a suggestion, types checked."""
from __future__ import annotations

import pytest

from nt_backtrader.config import Config, load_config, override, to_toml
from nt_backtrader.errors import ConfigError


def test_toml_round_trip(tmp_path):
    config = override(Config(), **{"seed": 7, "data.columns": {"date": "Datum"}, "walkforward.window": "rolling",
                                   "backtest.commission_bps": 3.0, "strategy.allow_short": True})
    path = tmp_path / "exp.toml"
    path.write_text(to_toml(config))
    assert load_config(path) == config


def test_unknown_key_suggests_the_closest(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text("[backtest]\ncomission_bps = 2\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'backtest.comission_bps': did you mean 'commission_bps'\?"):
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
    (tmp_path / "bad.toml").write_text("[backtest\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")
