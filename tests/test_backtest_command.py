"""`nt-backtrader backtest`: it trades the assets `--trade` names, and from `--start` on, its warm-up
taken from the bars before `--start` (a note says when trading starts where the data has too few)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from nt_backtrader.bundle import Bundle
from nt_backtrader.cli import main
from nt_backtrader.config import Config, override, to_toml
from nt_backtrader.data import load_ohlcv

from conftest import TINY

STRATEGIES = ["neural-bundle", "buy_hold", "sma_cross", "tsmom"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A tiny bundle trained on sp500 and nasdaq, 1999-2004."""
    folder = tmp_path_factory.mktemp("bundle")
    config = folder / "tiny.toml"
    config.write_text(to_toml(override(Config(), **TINY)))
    path = folder / "model.pt"
    assert main(["train", "--dataset", "sp500,nasdaq", "--end", "2004-12-31", "--config", str(config),
                 "--out", str(path)]) == 0
    return path


def backtest(bundle, out, capsys, *options):
    code = main(["backtest", "--bundle", str(bundle), "--dataset", "sp500,nasdaq", "--out", str(out), "--quiet",
                 *options])
    stderr = capsys.readouterr().err
    assert code == 0, stderr
    return stderr


def first_dates(out) -> dict[str, str]:
    """Each strategy's first traded date: the neural one's from returns.csv, the baselines' from baselines.csv."""
    returns = pd.read_csv(out / "returns.csv", index_col=0, parse_dates=True)
    baselines = pd.read_csv(out / "baselines.csv", index_col=0, parse_dates=True)
    firsts = {"neural-bundle": returns.index[0]} | {name: baselines[name].first_valid_index()
                                                    for name in STRATEGIES[1:]}
    return {name: str(date.date()) for name, date in firsts.items()}


def test_trade_names_the_only_assets_traded(bundle, tmp_path, capsys):
    assert Bundle.load(bundle).meta["assets"] == ["sp500", "nasdaq"]  # learned from both
    out = tmp_path / "report"
    backtest(bundle, out, capsys, "--trade", "sp500", "--start", "2005-01-01", "--end", "2006-06-30")
    assert list(pd.read_csv(out / "positions.csv", index_col=0).columns) == ["sp500"]
    assert list(pd.read_csv(out / "assets.csv")["asset"]) == ["sp500"]
    trades = pd.read_csv(out / "trades.csv")
    assert len(trades) > 0 and set(trades["asset"]) == {"sp500"}
    # buy_hold of sp500 alone: its return is sp500's over the same dates, less the costs of one entry
    sp500 = load_ohlcv(dataset="sp500").loc["2005-01-01":"2006-06-30", "close"]
    buy_hold = (1 + pd.read_csv(out / "baselines.csv", index_col=0)["buy_hold"]).prod() - 1
    assert buy_hold == pytest.approx(sp500.iloc[-1] / sp500.iloc[0] - 1, abs=0.01)


def test_start_is_the_first_traded_bar_when_the_data_has_warm_up_bars_before_it(bundle, tmp_path, capsys):
    out = tmp_path / "report"
    stderr = backtest(bundle, out, capsys, "--start", "2006-01-01", "--end", "2007-03-31")
    assert "note:" not in stderr and "in-sample" not in stderr
    # 2006-01-03: the first session of 2006, for every strategy of the report
    assert first_dates(out) == dict.fromkeys(STRATEGIES, "2006-01-03")
    assert json.loads((out / "metrics.json").read_text())["start"] == "2006-01-03"
    orders = pd.read_csv(out / "trades.csv", parse_dates=["entry_date"])
    assert orders["entry_date"].min() >= pd.Timestamp("2006-01-03")


def test_a_start_without_warm_up_bars_before_it_says_when_trading_starts(bundle, tmp_path, capsys):
    warmup = Bundle.load(bundle).warmup_bars
    calendar = load_ohlcv(dataset="sp500").index
    before = int((calendar < "1999-02-01").sum())  # 19 sessions of January 1999
    starts = str(calendar[warmup].date())
    out = tmp_path / "report"
    stderr = backtest(bundle, out, capsys, "--start", "1999-02-01", "--end", "2000-12-31")
    notes = [line for line in stderr.splitlines() if "note:" in line]
    assert notes == [f"nt-backtrader: note: trading starts on {starts}, not at --start 1999-02-01: the bundle's "
                     f"warm-up needs {warmup} bars and the data has {before} before it"]
    assert first_dates(out) == dict.fromkeys(STRATEGIES, starts)
    # the in-sample warning names the real first traded date
    assert f"sp500 from {starts} overlaps the bundle's training data" in stderr


def test_an_asset_whose_data_starts_later_says_when_it_starts_trading(bundle, tmp_path, capsys):
    from conftest import yahoo_csv
    warmup = Bundle.load(bundle).warmup_bars
    sp500, nasdaq = load_ohlcv(dataset="sp500").loc["2004":"2007"], load_ohlcv(dataset="nasdaq").loc["2006":"2007"]
    paths = [yahoo_csv(tmp_path / "sp500.csv", sp500) and tmp_path / "sp500.csv",
             yahoo_csv(tmp_path / "nasdaq.csv", nasdaq) and tmp_path / "nasdaq.csv"]
    code = main(["backtest", "--bundle", str(bundle), "--csv", str(paths[0]), "--csv", str(paths[1]), "--start",
                 "2006-02-01", "--out", str(tmp_path / "report"), "--quiet"])
    stderr = capsys.readouterr().err
    assert code == 0, stderr
    before = int((nasdaq.index < "2006-02-01").sum())
    notes = [line for line in stderr.splitlines() if "note:" in line]
    assert notes == [f"nt-backtrader: note: nasdaq starts trading on {nasdaq.index[warmup].date()}, not on "
                     f"2006-02-01: the bundle's warm-up needs {warmup} bars and nasdaq has {before} before it"]


def test_a_long_only_bundles_baselines_are_long_only_whatever_the_default(tiny_bundle):
    """The default config may go short (the core's long/short): a discrete bundle trained long-only is still
    compared with sma_cross and tsmom long or flat, as it was trained."""
    from nt_backtrader.cli import bundle_trading

    assert Config().strategy.allow_short and not tiny_bundle.spec.allow_short
    _, _, config, names = bundle_trading(tiny_bundle, Config(), allow_timeframe=False)
    assert config.strategy.allow_short is False and "tsmom" in names
