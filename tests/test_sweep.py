"""Sweeps on a local Ray: every cell a plain `run`, the statistics over cells, nothing lost or run twice."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from nt_backtrader import metrics
from nt_backtrader.config import Config
from nt_backtrader.errors import ConfigError
from nt_backtrader.sweep import load_sweep
from nt_backtrader.sweep.cell import finished, run_cell
from nt_backtrader.sweep.grid import Cell
from nt_backtrader.sweep.summary import Group, group_labels, spa_pvalues, variant_label
from nt_backtrader.training.optuna_search import OptunaSearch

from sweep_cases import BASE, SMALL_SWEEP, run_cli, sweep_file


def test_sweep_file_mistakes_fail_before_any_work(tmp_path, capsys):
    cases = {
        "unknown key": ("[grid]\n\"tuner.mdoe\" = [\"fixed\"]\n",
                        "unknown config key 'tuner.mdoe': did you mean 'mode'?"),
        "bad value": ("[grid]\n\"tuner.mode\" = [\"network\", \"grid\"]\n", "'tuner.mode' is 'grid'"),
        "not a list": ("[grid]\nseed = 3\n", "grid key 'seed' must be a non-empty list"),
        "unknown table": ("[grdi]\nseed = [0]\n", "unknown table [grdi]"),
        "variant typo": ("[variants.a]\n\"risk.enabeld\" = false\n", "variant 'a'"),
        "same cell twice": ("[grid]\nseed = [0, 0]\n", "two cells would share the folder 'seed=0'"),
    }
    for name, (body, message) in cases.items():
        path = sweep_file(tmp_path, body, f"{name.replace(' ', '_')}.toml")
        code, _, err = run_cli(["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet"], capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (name, err)
    assert not (tmp_path / "out").exists()  # nothing written, no Ray started
    assert run_cli(["sweep", str(tmp_path / "missing.toml"), "--quiet"], capsys)[0] == 2


def test_cells_are_the_grid_crossed_with_the_variants_each_with_a_stable_hash(tmp_path):
    spec = load_sweep(sweep_file(tmp_path, SMALL_SWEEP), threads=1)
    assert [c.name for c in spec.cells][:5] == ["variant=neural__seed=0", "variant=optuna__seed=0",
                                                "variant=tsmom__seed=0", "variant=too_short__seed=0",
                                                "variant=neural__seed=1"]
    assert len(spec.cells) == 8 and all(c.config.train.threads == 1 for c in spec.cells)
    by_name = {c.name: c for c in spec.cells}
    optuna = by_name["variant=optuna__seed=1"].config
    assert optuna.tuner.mode == "optuna" and optuna.seed == 1 and optuna.timing.hidden == 8
    assert by_name["variant=too_short__seed=0"].config.data.start == "2011-06-01"
    # the hash is the config's: the same file gives the same hashes; another base value, others
    again = load_sweep(sweep_file(tmp_path, SMALL_SWEEP, "again.toml"), threads=1)
    assert [c.hash for c in again.cells] == [c.hash for c in spec.cells] and len({c.hash for c in spec.cells}) == 8
    costlier = load_sweep(sweep_file(tmp_path, SMALL_SWEEP.replace("[grid]", "backtest = { commission_bps = 3 }\n\n"
                                                                   "[grid]"), "costlier.toml"), threads=1)
    assert not {c.hash for c in costlier.cells} & {c.hash for c in spec.cells}
    assert load_sweep(sweep_file(tmp_path, SMALL_SWEEP), threads=2).cells[0].config.train.threads == 2


def test_a_small_sweep_on_local_ray(tmp_path, capsys):
    path = sweep_file(tmp_path, SMALL_SWEEP)
    out = tmp_path / "sweep"
    code, stdout, _ = run_cli(["sweep", str(path), "--out", str(out), "--cpus", "2", "--quiet"], capsys)
    assert code == 1  # the too_short cells failed; the others went on

    table = pd.read_csv(out / "sweep.csv")
    assert list(table["name"]) == [c.name for c in load_sweep(path).cells]
    assert list(table.columns[:3]) == ["name", "variant", "seed"]
    failed = table[table["status"] == "failed"]
    assert list(failed["variant"]) == ["too_short", "too_short"]
    assert all("are too few" in e for e in failed["error"]) and failed["error"].str.count("\n").eq(0).all()
    ok = table[table["status"] == "ok"]
    assert len(ok) == 6 and ok["seconds"].gt(0).all()
    for _, row in ok.iterrows():  # each row is its cell's own metrics.json
        cell = json.loads((out / "cells" / row["name"] / "metrics.json").read_text())
        assert row["sharpe"] == pytest.approx(cell["sharpe"], rel=1e-12) and row["n_trades"] == cell["n_trades"]
    tsmom = ok[ok["variant"] == "tsmom"]
    assert tsmom["sharpe"].nunique() == 1  # a classical rule ignores the seed

    # the summary: median [min, max] over seeds, the deflated Sharpe counting all 8 cells, SPA per baseline
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_trials"] == 8 and summary["ok"] == 6 and len(summary["failed"]) == 2
    group = summary["groups"]["sp500"]
    neural = group["variants"]["neural"]
    assert neural["seeds"] == [0, 1]
    assert neural["sharpe"] == list(ok.loc[ok["variant"] == "neural", "sharpe"])
    returns = {name: pd.read_csv(out / "cells" / name / "returns.csv", index_col="date")["strategy"]
               for name in ok["name"]}
    variance = np.var([r.mean() / r.std() for r in returns.values()], ddof=1)
    assert neural["dsr"][0] == pytest.approx(metrics.dsr(returns["variant=neural__seed=0"], 8, variance), rel=1e-9)
    assert set(group["spa"]) == {"buy_hold", "sma_cross", "tsmom"} and all(0 <= p <= 1 for p in group["spa"].values())
    md = (out / "summary.md").read_text()
    median = np.median(neural["sharpe"])
    assert f"| neural | 2 | {median:.2f} [{min(neural['sharpe']):.2f}, {max(neural['sharpe']):.2f}] |" in md
    trials = pd.read_csv(tmp_path / "trials.csv")  # next to the sweep file: each finished cell once
    assert sorted(trials["name"]) == sorted(ok["name"]) and list(trials["sharpe"]) == list(ok["sharpe"])
    assert "Hansen's SPA" in md and "too_short" in md and md.split("\n")[0] in stdout
    assert (out / "sharpe_by_variant.png").stat().st_size > 10_000 and "<table>" in (out / "summary.html").read_text()

    # a cell is a plain run: the same config file gives the same bytes
    cell = out / "cells" / "variant=optuna__seed=1"
    argv = ["run", "--config", str(cell / "config.toml"), "--out", str(tmp_path / "run"), "--quiet"]
    assert run_cli(argv, capsys)[0] == 0
    for name in ("returns.csv", "trades.csv", "baselines.csv", "positions.csv"):
        assert (tmp_path / "run" / name).read_bytes() == (cell / name).read_bytes(), name

    # run again: the finished cells are skipped, the failed ones tried again
    stamps = {name: (out / "cells" / name / "cell.json").stat().st_mtime_ns for name in ok["name"]}
    code, _, _ = run_cli(["sweep", str(path), "--out", str(out), "--cpus", "2", "--quiet"], capsys)
    assert code == 1
    assert {name: (out / "cells" / name / "cell.json").stat().st_mtime_ns for name in ok["name"]} == stamps
    for name in ok["name"]:
        assert (out / "cells" / name / "log.txt").read_text().count("--- cell") == 1
    for name in failed["name"]:
        assert (out / "cells" / name / "log.txt").read_text().count("--- cell") == 2
    pd.testing.assert_frame_equal(pd.read_csv(out / "sweep.csv").drop(columns="seconds"),
                                  table.drop(columns="seconds"))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "trials.csv"), trials)  # nothing recorded twice


def test_the_deflated_sharpe_counts_every_recorded_trial(tmp_path):
    from nt_backtrader.sweep.trials import COLUMNS, read_trials, trial_count

    path = sweep_file(tmp_path, "[grid]\nseed = [0, 1]\n[sweep]\ntrials = \"trials.csv\"\nearlier_trials = 4\n")
    spec = load_sweep(path)
    assert spec.trials == tmp_path / "trials.csv" and trial_count(spec, read_trials(spec.trials)) == 2 + 4
    earlier = [["a1", "2026-11-30", "old.toml", "x", "sp500", 0, 0.5, 20.0, 200],
               ["a2", "2026-11-30", "old.toml", "y", "nasdaq", 0, 0.4, 20.0, 200],
               [spec.cells[0].hash, "2026-12-01", "sweep.toml", spec.cells[0].name, "sp500", 0, 0.3, 5.0, 50]]
    pd.DataFrame(earlier, columns=COLUMNS).to_csv(spec.trials, index=False)
    assert trial_count(spec, read_trials(spec.trials)) == 3 + 1 + 4  # two earlier rows, this sweep's two cells
    (tmp_path / "bad.toml").write_text("[sweep]\ntrials = 3\n")
    with pytest.raises(ConfigError, match="trials must name a .csv file"):
        load_sweep(tmp_path / "bad.toml")


def test_groups_are_the_cells_measured_on_the_same_data_dates_and_costs(tmp_path):
    body = """[grid]
seed = [0, 1]
"data.start" = ["2005-01-01", "2010-01-01"]
[variants.a]
[variants.costly]
"backtest.commission_bps" = 10
[variants.long]                   # the baselines long or flat: other baselines, another group
"strategy.allow_short" = false
[variants.optuna]                 # the same data, costs and baselines as `a`: the same group
"tuner.mode" = "optuna"
"""
    spec = load_sweep(sweep_file(tmp_path, body))
    labels = group_labels(spec.cells)
    assert len(set(labels.values())) == 6  # two start dates x (1 bp, 10 bp, 1 bp long or flat)
    assert labels["variant=costly__seed=1__data.start=2010-01-01"] == \
        "sp500, data.start=2010-01-01, backtest.commission_bps=10.0, strategy.allow_short=True"
    assert labels["variant=long__seed=0__data.start=2005-01-01"].endswith("strategy.allow_short=False")
    for start in ("2005-01-01", "2010-01-01"):
        same = {labels[f"variant={v}__seed={seed}__data.start={start}"] for v in ("a", "optuna") for seed in (0, 1)}
        assert len(same) == 1
    assert {variant_label(c, spec) for c in spec.cells} == {"a", "costly", "long", "optuna"}


def test_spa_rejects_only_when_a_cell_beats_the_baseline(sp500):
    rng = np.random.default_rng(0)
    dates = sp500.index[-1000:]
    base = pd.Series(rng.normal(0.0002, 0.01, len(dates)), index=dates)
    p = {}
    for name, shift in (("better", 0.002), ("worse", -0.002)):
        returns = base + shift + pd.Series(rng.normal(0, 0.002, len(dates)), index=dates)
        group = Group("sp500", rows={name: [(Cell(name, {}, Config(), "hash"), {}, returns)]},
                      baselines={"tsmom": {"summary": {}, "returns": base}})
        p[name] = spa_pvalues(group)["tsmom"]
    assert p["better"] < 0.05 and p["worse"] > 0.3  # (a clearly worse model sits near 0.5)


def test_a_cell_whose_config_changed_runs_again_from_scratch(tmp_path):
    body = BASE + '\n[grid]\n"strategy.name" = ["tsmom"]\n'
    cheap = load_sweep(sweep_file(tmp_path, body)).cells[0]
    cells_dir = tmp_path / "cells"
    first = run_cell(cheap, cells_dir)
    assert first["status"] == "ok" and finished(cheap, cells_dir) == first
    costly = load_sweep(sweep_file(tmp_path, body.replace("[grid]", "backtest = { commission_bps = 20 }\n\n[grid]"),
                                   "costly.toml")).cells[0]
    assert costly.name == cheap.name and costly.hash != cheap.hash and finished(costly, cells_dir) is None
    record = run_cell(costly, cells_dir)
    folder = cells_dir / cheap.name
    assert record["status"] == "ok" and record["hash"] == costly.hash and record["sharpe"] < first["sharpe"]
    assert (folder / "log.txt").read_text().count("--- cell") == 1  # the other config's files went first
    assert json.loads((folder / "metrics.json").read_text())["commission_bps"] == 20.0


def test_cpus_that_cannot_fit_a_cell_are_refused_before_any_work(tmp_path, capsys):
    path = sweep_file(tmp_path, BASE + "\n[grid]\nseed = [0]\n")
    out = tmp_path / "out"
    code, _, err = run_cli(["sweep", str(path), "--out", str(out), "--cpus", "1", "--cpus-per-cell", "2"], capsys)
    assert code == 2 and "needs 2 CPUs" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["sweep", str(path), "--out", str(out), "--cpus", "2", "--address", "auto"], capsys)
    assert code == 2 and "--cpus sizes a local Ray" in err
    assert not out.exists()


def test_optuna_search_finds_the_better_region_and_resumes_exactly():
    """TPE over the tuner's cube: with a made-up validation loss lowest at u0 = 0.8, the later
    segments' candidates sit nearer 0.8 than the first (random) ones; a search rebuilt from its
    saved state asks exactly what the uninterrupted one asks."""
    def loss(j, action):
        return float((torch.sigmoid(action[0]) - 0.8) ** 2)

    search = OptunaSearch()
    for segment in range(12):
        search.search(3, seed=segment, evaluate=loss)
    u0 = np.array([t[0] for t in search.trials])
    assert np.abs(u0[-9:] - 0.8).mean() < 0.5 * np.abs(u0[:9] - 0.8).mean()

    resumed = OptunaSearch()
    resumed.load_state_dict(search.state_dict())
    assert [a.tolist() for a in resumed.search(3, 12, loss)] == [a.tolist() for a in search.search(3, 12, loss)]


def test_config_rejects_an_unknown_tuner_mode():
    with pytest.raises(ConfigError, match="optuna"):
        from nt_backtrader.config import Config, override
        override(Config(), **{"tuner.mode": "tpe"})
