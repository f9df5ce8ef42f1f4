"""The bundle commands with the deep-momentum core (timing.mode = "position"): `train` writes the walk-forward's
first segment as a PositionBundle carrying what `update` needs; `signal` gives each traded asset's target weight
for the next session, untouched by bars after its last one; `backtest` trades the bundle next to the core's
baselines; a chain train -> update at the walk-forward's boundaries makes the walk-forward's bundles."""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import runpy
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_cli import run_cli

from nt_backtrader import position_signal
from nt_backtrader.bundle_file import load_bundle
from nt_backtrader.cli import main
from nt_backtrader.config import Config, from_dict, override, to_toml
from nt_backtrader.costs import asset_costs
from nt_backtrader.data import load_universe
from nt_backtrader.plugin import PositionStrategy, run_backtest
from nt_backtrader.position_bundle import PositionBundle
from nt_backtrader.position_signal import RecordedTargets
from nt_backtrader.position_trader import PositionTrader
from nt_backtrader.run_state import plain
from nt_backtrader.walkforward import calendar_of, segments_for, train_frames, walk_forward

from conftest import CORE_TINY, with_noise_after

START, BARS = "2004-01-01", 1100  # sp500 and nasdaq share their calendar: 2004-01-02 .. 2008-05-15
FIRST_TEST = 905                  # train_bars 900 + purge_bars 5: segment 0's test window starts here

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def config() -> Config:
    return override(Config(), **CORE_TINY | {"data.dataset": ("sp500", "nasdaq"), "data.start": START})


@pytest.fixture(scope="module")
def calendar(config):
    return calendar_of(load_universe(config.data))[:BARS]


def upto(config: Config, calendar, bars: int) -> dict:
    """The two indices' first `bars` bars from START, as the command line loads them with --end."""
    return load_universe(override(config, **{"data.end": str(calendar[bars - 1].date())}).data)


def cli(*argv) -> tuple[int, str]:
    """main(argv) with its standard output caught (module fixtures cannot take capsys)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


@pytest.fixture(scope="module")
def toml(config, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("config") / "core.toml"
    path.write_text(to_toml(override(config, **{"data.dataset": (), "data.start": None})))
    return str(path)


@pytest.fixture(scope="module")
def trained(toml, calendar, tmp_path_factory):
    """`nt-backtrader train` on the bars before segment 0's test window: (bundle path, its standard output)."""
    path = tmp_path_factory.mktemp("bundle") / "core.pt"
    code, stdout = cli("train", "--dataset", "sp500,nasdaq", "--start", START, "--end",
                       str(calendar[FIRST_TEST - 1].date()), "--config", toml, "--out", str(path))
    assert code == 0
    return path, stdout


def states(bundle: PositionBundle) -> list[dict]:
    return [net.state_dict() for net in bundle.net.nets]


def assert_same_nets(mine: PositionBundle, theirs: PositionBundle) -> None:
    assert len(mine.net.nets) == len(theirs.net.nets) > 0
    for a, b in zip(states(mine), states(theirs)):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (mine.weights, mine.spec, mine.book_scale, mine.net.seeds) == \
        (theirs.weights, theirs.spec, theirs.book_scale, theirs.net.seeds)


def test_train_writes_the_walk_forwards_first_segment_as_a_position_bundle(config, calendar, trained):
    path, stdout = trained
    bundle = load_bundle(path)
    assert isinstance(bundle, PositionBundle)
    # the walk-forward's segment 0 fitted directly: the same nets, member weights and spec
    universe = upto(config, calendar, BARS)
    seg = segments_for(universe, config)[0]
    assert seg.test_start == FIRST_TEST
    trader = PositionTrader(config, "sp500+nasdaq")
    fitted = trader.fit(train_frames(universe, calendar[seg.train_end]), seg, calendar)["bundle"]
    assert_same_nets(bundle, fitted)
    assert bundle.meta == fitted.meta | {"source": "sp500+nasdaq"}
    assert (bundle.meta["train_start"], bundle.meta["train_end"]) == ("2004-01-02", str(calendar[899].date()))
    # what `update` continues from
    cycle = bundle.cycle
    assert (cycle["segment"], cycle["bars"], cycle["assets"]) == (0, FIRST_TEST, ["nasdaq", "sp500"])
    assert cycle["last_date"] == str(calendar[FIRST_TEST - 1].date()) and cycle["carry"] is None
    assert from_dict(Config, tomllib.loads(cycle["config"])).timing == config.timing
    assert sorted(cycle["trader"]["warm"]) == [0, 1] and cycle["trader"]["realized"] == []
    assert set(cycle["pending"]) == {"state", "meta_inputs", "proposal", "candidate"}
    assert len(cycle["pending"]["candidate"]["states"]) == 2                      # the chosen candidate's seeds
    # one line per fit, as the discrete mode prints: its dates, the chosen candidate's validation Sharpe, epochs
    (chosen,) = trader.last_fit["candidates"]                                     # tuner.population 1
    weights = ", ".join(f"{name} {w:.2f}" for name, w in zip(("neural", "tsmom", "macd"), bundle.weights))
    assert stdout.splitlines()[0] == (f"trained on sp500+nasdaq 2004-01-02 .. {calendar[899].date()}: validation "
                                      f"net Sharpe {-chosen['val_loss']:.2f} after {chosen['epochs']} epochs; "
                                      f"member weights {weights}")
    assert np.isfinite(chosen["val_loss"]) and chosen["epochs"] >= 1


def test_a_position_bundle_without_the_training_state_still_round_trips(trained, tmp_path):
    bundle = load_bundle(trained[0])
    bundle.cycle = {}
    again = load_bundle(bundle.save(tmp_path / "plain.pt"))
    assert again.cycle == {} and "cycle" in torch.load(tmp_path / "plain.pt", weights_only=True)
    assert_same_nets(again, bundle)


CUT = 1000  # bar T of the signal tests: 95 bars after the bundle's training data ends


def with_brackets(bundle: PositionBundle) -> PositionBundle:
    """The bundle with fixed ATR brackets and a 5-bar wait after a leg fills: its targets then depend on the
    fills before them, which a replay must repeat."""
    return dataclasses.replace(bundle, spec=dataclasses.replace(bundle.spec, risk="atr", cooldown=5))


def recorded(bundle: PositionBundle, universe: dict, config: Config, first) -> pd.DataFrame:
    """RecordedTargets over `universe` trading from `first`, the replay's costs: (date, asset) -> its decision."""
    b = config.backtest
    result = run_backtest(universe, RecordedTargets, {"bundle": bundle, "cash_buffer": b.cash_buffer}, cash=b.cash,
                          commission_bps=b.commission_bps, slippage_bps=b.slippage_bps, trade_from=first.date(),
                          costs=asset_costs(config, universe))
    return result.strategy.decision_table().set_index(["date", "asset"]), result


def test_the_signal_is_the_backtests_target_on_that_bar_whatever_comes_after(config, calendar, trained):
    bundle = with_brackets(load_bundle(trained[0]))
    cut = calendar[CUT]
    table = position_signal.next_decisions(bundle, upto(config, calendar, CUT + 1), config, history=0)
    assert list(table["asset"]) == ["sp500", "nasdaq"] and (table["date"] == cut).all()
    first = calendar[bundle.warmup_bars]                      # where a replay of every bar starts trading
    clean = upto(config, calendar, BARS)
    noisy = {name: with_noise_after(frame, cut, seed=i + 1) for i, (name, frame) in enumerate(clean.items())}
    decided = {}
    for future, universe in (("clean", clean), ("noisy", noisy)):
        decided[future], result = recorded(bundle, universe, config, first)
        assert (result.fills["type"] != "Market").any()      # legs filled before T: the waits were live
        for row in table.itertuples():
            mine = decided[future].loc[(cut, row.asset)]
            assert (mine["target"], mine["held"], mine["rebalance"]) == (row.target, row.held, row.rebalance)
    assert 0 < abs(table["target"]).max() <= 0.1 and table["held"].abs().max() > 0
    after = decided["clean"].index.get_level_values("date") > cut
    assert not np.array_equal(decided["clean"]["target"][after], decided["noisy"]["target"][after])


def test_signal_from_the_command_line_gives_each_assets_target_and_members(config, calendar, trained, capsys):
    path = trained[0]
    bundle = load_bundle(path)
    cut = calendar[CUT]
    code, stdout, stderr = run_cli(["signal", "--bundle", str(path), "--end", str(cut.date()), "--json"], capsys)
    assert code == 0 and f"sp500 ({cut.date()})" in stderr   # the bundle's own source; old data named
    rows = {row["asset"]: row for row in json.loads(stdout)}
    assert list(rows) == ["sp500", "nasdaq"]
    known = upto(config, calendar, CUT + 1)
    for name, frame in known.items():
        row = rows[name]
        assert row["date"] == str(cut.date()) and row["close"] == frame["close"].iloc[-1]
        # no brackets and a book of 0.2 at most: the target is the bundle's own weight on that bar
        assert row["target"] == bundle.target_weights(*(frame[c].to_numpy() for c in ("open", "high", "low",
                                                                                      "close")), asset=name)[-1]
        positions = bundle.member_positions(frame["close"].to_numpy(), name)[:, -1]
        assert [m["position"] for m in row["members"].values()] == list(positions)
        assert [m["weight"] for m in row["members"].values()] == list(bundle.weights)
        assert list(row["members"]) == ["neural", "tsmom", "macd"] and row["held"] is not None
    code, stdout, _ = run_cli(["signal", "--bundle", str(path), "--end", str(cut.date())], capsys)
    lines = stdout.splitlines()
    assert code == 0 and lines[0].split() == ["asset", "bar", "target", "held", "trade"] and len(lines) == 5
    for line, name in zip(lines[1:3], ["sp500", "nasdaq"]):   # each column under its name, as the JSON says
        row = rows[name]
        assert line.split() == [name, str(cut.date()), f"{row['target']:+.1%}", f"{row['held']:+.1%}",
                                "yes" if row["rebalance"] else "no"]
    assert lines[3].startswith("sp500 positions: neural ")


def test_backtest_trades_the_bundle_next_to_the_cores_baselines_as_the_walk_forward(config, calendar, trained, toml,
                                                                                   tmp_path, capsys):
    first, last = calendar[FIRST_TEST], calendar[FIRST_TEST + 62]   # segment 0's test window
    out = tmp_path / "report"
    code, _, stderr = run_cli(["backtest", "--bundle", str(trained[0]), "--dataset", "sp500,nasdaq", "--start",
                               str(first.date()), "--end", str(last.date()), "--config", toml, "--out", str(out),
                               "--quiet"], capsys)
    assert code == 0 and "in-sample" not in stderr and "note:" not in stderr, stderr
    comparison = pd.read_csv(out / "comparison.csv", index_col=0)
    assert list(comparison.index) == ["neural-bundle", "buy_hold", "long_only", "tsmom_ls", "macd"]
    assert pd.read_csv(out / "positions.csv", index_col=0).abs().max().min() > 0.02   # both assets held
    returns = pd.read_csv(out / "returns.csv", index_col=0, parse_dates=True)["strategy"]
    baselines = pd.read_csv(out / "baselines.csv", index_col=0, parse_dates=True)
    assert returns.index[0] == first and returns.index[-1] == last and baselines.index.equals(returns.index)
    # the walk-forward's first test window: the same bundle (segment 0's), the same account from flat; and
    # the baselines of the core's `run` on those dates, each holding the same share of the book
    universe = upto(config, calendar, BARS)
    walk = walk_forward(universe, config, progress=False)
    np.testing.assert_allclose(returns, walk.returns.loc[first:last], rtol=0, atol=1e-15)
    for name in baselines:
        theirs = walk_forward(universe, override(config, **{"strategy.name": name}), progress=False).returns
        np.testing.assert_allclose(baselines[name], theirs.loc[first:last], rtol=0, atol=1e-15)
    assert (baselines != 0).any().all()


def assert_same(mine, theirs, where: str = "") -> None:
    """Two plain states (dicts, lists, tensors, numbers) equal bit for bit, key sets included."""
    if isinstance(mine, dict):
        assert mine.keys() == theirs.keys(), where
        for key in mine:
            assert_same(mine[key], theirs[key], f"{where}/{key}")
    elif isinstance(mine, (list, tuple)):
        assert len(mine) == len(theirs), where
        for i, (a, b) in enumerate(zip(mine, theirs)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(mine, torch.Tensor):
        assert torch.equal(mine, theirs), where
    else:
        assert mine == theirs or (mine != mine and theirs != theirs), where


def test_a_chain_of_updates_is_the_walk_forward(config, calendar, tmp_path):
    # the sizing and risk nets on: their realized windows are what feedback adds to the trader's state
    chain = override(config, **{"sizing.enabled": True, "timing.risk_mode": "net", "data.dataset": (),
                                "data.start": None})
    (tmp_path / "chain.toml").write_text(to_toml(chain))
    config = override(chain, **{"data.dataset": ("sp500", "nasdaq"), "data.start": START})
    fits = []

    class Recording(PositionTrader):
        def fit(self, *args, **kwargs):
            params = super().fit(*args, **kwargs)
            # copies: the state holds the tuner's and meta-learner's live tensors, which feedback changes
            fits.append((params["bundle"], copy.deepcopy(plain(self.state_dict())),
                         copy.deepcopy(plain(self.pending_state()))))
            return params

    universe = upto(config, calendar, BARS)
    walk = walk_forward(universe, config, trader=Recording(config, "sp500+nasdaq"), progress=False)
    ends = [seg.test_start for seg in segments_for(universe, config)] + [BARS]
    assert ends == [905, 968, 1031, 1100] and len(fits) == 3
    paths = [tmp_path / f"core{k}.pt" for k in range(4)]
    code, _ = cli("train", "--dataset", "sp500,nasdaq", "--start", START, "--end", str(calendar[ends[0] - 1].date()),
                  "--config", str(tmp_path / "chain.toml"), "--out", str(paths[0]))
    assert code == 0
    printed = []
    for k, end in enumerate(ends[1:]):  # every step goes through the file: it carries all the state
        code, stdout = cli("update", "--bundle", str(paths[k]), "--end", str(calendar[end - 1].date()),
                           "--out", str(paths[k + 1]))
        assert code == 0 and f"trained segment {k + 1} on sp500+nasdaq" in stdout
        printed.append(stdout.splitlines()[0])
    # train + 3 updates against the walk-forward's 3 fits (the last update's bundle trades no window here)
    bundles = [load_bundle(path) for path in paths]
    for mine, (theirs, state, pending) in zip(bundles, fits):
        assert_same_nets(mine, theirs)
        assert (mine.meta["train_end"], mine.meta["segment"]) == (theirs.meta["train_end"], theirs.meta["segment"])
        a, b = mine.to_payload(), theirs.to_payload()
        assert_same(a["sizer"], b["sizer"], "sizer")
        assert_same(a["risk_net"], b["risk_net"], "risk_net")
        assert_same(mine.cycle["trader"], state, "trader")
        assert_same(mine.cycle["pending"], pending, "pending")
    assert [len(b.cycle["trader"]["realized"]) for b in bundles] == [0, 1, 2, 3]   # each window learned from
    assert bundles[2].sizer is not None   # segment 2 keeps a sizing net, learned from the two windows traded
    for line, seg in zip(printed, walk.history):
        assert line.startswith(f"traded {seg['test_start']} .. {seg['test_end']}: return {seg['oos_return']:+.2%}, "
                               f"{seg['n_fills']} fills")
    assert sum(seg["n_fills"] for seg in walk.history) > 0


def test_an_update_without_enough_new_bars_is_refused_in_one_line(calendar, trained, tmp_path, capsys):
    path, new = trained[0], tmp_path / "next.pt"
    for end, message in ((FIRST_TEST - 1, "no new bars since the bundle's last one"),
                         (FIRST_TEST + 9, "10 new bars since the bundle's last one")):
        code, _, stderr = run_cli(["update", "--bundle", str(path), "--end", str(calendar[end].date()),
                                   "--out", str(new)], capsys)
        assert code == 2 and len(stderr.strip().splitlines()) == 1 and message in stderr
    assert not new.exists()


def test_the_bundle_example_trades_a_position_bundle_in_position_strategy(config, calendar, trained, tmp_path,
                                                                          capsys):
    frame = upto(config, calendar, BARS)["sp500"]
    csv = tmp_path / "prices.csv"
    frame.reset_index().rename(columns=str.title).to_csv(csv, index=False, date_format="%Y-%m-%d")
    example = runpy.run_path(str(Path(__file__).parents[1] / "strategies" / "neural_from_bundle.py"))
    strategy, report = example["main"](["--bundle", str(trained[0]), "--csv", str(csv)])
    assert type(strategy).__name__ == "PositionStrategy" and capsys.readouterr().out.startswith("PositionStrategy")
    direct = run_backtest(frame, PositionStrategy, {"bundle": load_bundle(trained[0])}, commission_bps=1.0,
                          slippage_bps=0.0)
    assert len(report["orders"]) >= 5
    np.testing.assert_array_equal(report["orders"]["date"], direct.orders["date"])  # same decisions, any feed
    np.testing.assert_allclose(report["orders"]["size"], direct.orders["size"], rtol=1e-9)
