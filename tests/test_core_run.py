"""`nt-backtrader run` with the deep-momentum core: the report holds the literature's four baselines on the
same dates and the learning figure; warnings come as one line each; a run that never trades still reports."""
from __future__ import annotations

import json
import warnings

import pandas as pd

from nt_backtrader.cli import main, one_line_warning
from nt_backtrader.config import CLASSICAL_STRATEGIES, Config, override
from nt_backtrader.walkforward import baseline_names

from conftest import CORE_TINY, yahoo_csv

CORE_BASELINES = ["buy_hold", "long_only", "tsmom_ls", "macd"]


def config_toml(path, changes: dict) -> str:
    """`changes` (dotted keys) as a TOML file: one table per section."""
    tables: dict[str, list[str]] = {}
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        tables.setdefault(section, []).append(f"{key} = {json.dumps(value)}")
    path.write_text("\n".join(f"[{name}]\n" + "\n".join(lines) for name, lines in tables.items()) + "\n")
    return str(path)


def test_the_core_is_compared_with_the_literatures_four_baselines_the_discrete_modes_with_the_classical_three():
    assert list(baseline_names(Config())) == CORE_BASELINES
    assert baseline_names(override(Config(), **{"timing.mode": "direction"})) == CLASSICAL_STRATEGIES


def test_a_warning_on_the_command_line_is_one_line():
    text = one_line_warning(UserWarning("spx.csv: 1 bar repaired"), UserWarning, "data.py", 430)
    assert text == "nt-backtrader: warning: spx.csv: 1 bar repaired\n"


def test_a_core_run_reports_its_four_baselines_on_the_same_dates(sp500, tmp_path):
    yahoo_csv(tmp_path / "spx.csv", sp500.loc["2004":].iloc[:1100])
    # one asset: the whole book, so the buffer (rebalance_band x book scale) must stay below the largest weight
    toml = config_toml(tmp_path / "core.toml", CORE_TINY | {"sizing.max_fraction": 1.0})
    out = tmp_path / "out"
    with warnings.catch_warnings():
        assert main(["run", "--csv", str(tmp_path / "spx.csv"), "--out", str(out), "--quiet", "--config", toml]) == 0
        assert warnings.formatwarning is one_line_warning
    comparison = pd.read_csv(out / "comparison.csv", index_col=0)
    assert list(comparison.index) == ["neural"] + CORE_BASELINES and comparison.loc["neural", "n_trades"] > 0
    baselines = pd.read_csv(out / "baselines.csv", index_col=0, parse_dates=True)
    returns = pd.read_csv(out / "returns.csv", index_col=0, parse_dates=True)
    assert list(baselines.columns) == CORE_BASELINES and baselines.index.equals(returns.index)
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 3 and set(history[0]["member_oos_sharpes"]) == {"neural", "tsmom", "macd"}
    assert (out / "learning_progress.png").stat().st_size > 10_000


def test_a_run_that_never_trades_still_writes_its_tear_sheet(sp500, tmp_path):
    yahoo_csv(tmp_path / "spx.csv", sp500.loc["2004":].iloc[:1100])
    # the buffer (0.1 x a book of one) equals the largest weight: no target ever moves past it
    toml = config_toml(tmp_path / "core.toml", CORE_TINY)
    out = tmp_path / "out"
    assert main(["run", "--csv", str(tmp_path / "spx.csv"), "--out", str(out), "--quiet", "--config", toml]) == 0
    assert (pd.read_csv(out / "returns.csv")["strategy"] == 0).all() and (out / "tearsheet.html").is_file()

