"""What a sweep says: per data (and costs) and variant, the Sharpe over seeds as median [min, max];
the deflated Sharpe ratio counting every cell of the sweep as a trial; Hansen's SPA test of the
cells against each classical baseline on the same dates; a figure of Sharpe by variant with the
seeds as points. Written as summary.md, summary.html and sharpe_by_variant.png.
"""
from __future__ import annotations

import html
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics
from ..config import to_dict
from ..data import asset_names, atomic_write_text, universe_name
from ..report import dump_json, html_table
from .grid import SETTINGS, Cell, Sweep, value_text
from .trials import daily_sharpes, read_trials, trial_count

SUMMARY_MD = "summary.md"
SUMMARY_HTML = "summary.html"
FIGURE = "sharpe_by_variant.png"
SPA_REPS = 1000
SOURCE_KEYS = ("data.dataset", "data.csv", "data.csv_dir", "data.tickers")  # named by the traded assets


@dataclass
class Group:
    """The cells measured on one data set with one set of costs: comparable with each other."""

    label: str
    rows: dict = field(default_factory=dict)        # variant -> list of (cell, record, returns)
    baselines: dict = field(default_factory=dict)   # name -> {"summary": dict, "returns": Series}


def settings_of(config) -> dict[str, str]:
    """Dotted key -> value (as JSON text) of what fixes a cell's baselines: the SETTINGS sections (data,
    dates, costs) and the classical rules' parameters (every strategy key but the name)."""
    items = {f"{section}.{key}": value
             for section in SETTINGS for key, value in to_dict(getattr(config, section)).items()}
    items |= {f"strategy.{key}": value for key, value in to_dict(config.strategy).items() if key != "name"}
    # what is traded, not what is learned from, fixes the baselines: an asset trained alone and on a panel compare
    for key in SOURCE_KEYS + ("data.trade",):
        items.pop(key)
    items["data.traded"] = list(config.data.trade) or asset_names(config.data)
    return {key: json.dumps(value, sort_keys=True) for key, value in items.items()}


def group_labels(cells: list[Cell]) -> dict[str, str]:
    """Cell name -> the label of its group: the universe, plus every setting that differs between groups
    (cells agreeing on every setting share a label and a group)."""
    settings = {cell.name: settings_of(cell.config) for cell in cells}
    keys = list(next(iter(settings.values()), {}))
    differing = [k for k in keys if k != "data.traded" and len({s[k] for s in settings.values()}) > 1]
    labels, taken = {}, {}
    for cell in cells:
        identity = json.dumps(settings[cell.name], sort_keys=True)
        traded = cell.config.data.trade
        label = ", ".join(["+".join(traded) if traded else universe_name(cell.config.data)] + [
            f"{k}={json.loads(settings[cell.name][k])}" for k in differing])
        while taken.setdefault(label, identity) != identity:  # two universes with one short name
            label += "'"
        labels[cell.name] = label
    return labels


def variant_label(cell: Cell, sweep: Sweep) -> str:
    parts = ([str(cell.values["variant"])] if "variant" in cell.values else []) + [
        f"{key}={value_text(cell.values[key])}" for key in sweep.variant_keys]
    return ", ".join(parts) or cell.config.strategy.name


def read_returns(folder: Path, file: str) -> pd.DataFrame:
    return pd.read_csv(folder / file, index_col="date", parse_dates=True)


def collect(sweep: Sweep, table: pd.DataFrame, cells_dir: Path) -> dict[str, Group]:
    records = {row["name"]: row for row in table.to_dict(orient="records")}
    done = [cell for cell in sweep.cells if records[cell.name]["status"] == "ok"]
    labels = group_labels(done)
    groups: dict[str, Group] = {}
    for cell in done:
        record = records[cell.name]
        folder = cells_dir / cell.name
        group = groups.setdefault(labels[cell.name], Group(labels[cell.name]))
        returns = read_returns(folder, "returns.csv")["strategy"]
        group.rows.setdefault(variant_label(cell, sweep), []).append((cell, record, returns))
        comparison = json.loads((folder / "metrics.json").read_text()).get("comparison", {})
        baseline_returns = read_returns(folder, "baselines.csv")
        for name in baseline_returns:
            if name not in group.baselines:
                group.baselines[name] = {"summary": comparison[name], "returns": baseline_returns[name]}
    return groups


def spread(values, fmt: str = "{:.2f}") -> str:
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(np.median(values))} [{fmt.format(min(values))}, {fmt.format(max(values))}]"


def spa_pvalue(frame: pd.DataFrame, reps: int = SPA_REPS) -> float:
    """Hansen's SPA consistent p-value of daily returns: column "baseline" against every other column,
    H0 'none beats the baseline' (losses are the negated returns; bootstrap seeded)."""
    from arch.bootstrap import SPA

    test = SPA(-frame["baseline"].to_numpy(), -frame.drop(columns="baseline").to_numpy(), reps=reps, seed=0)
    test.compute()
    return float(test.pvalues["consistent"])


def spa_pvalues(group: Group) -> dict[str, float]:
    """Hansen's SPA, H0 'no cell of this group beats the baseline': its consistent p-value per baseline."""
    out = {}
    for name, base in group.baselines.items():
        models = {f"{cell.name}": r for rows in group.rows.values() for cell, _, r in rows
                  if cell.config.strategy.name != name}
        if models:
            out[name] = spa_pvalue(pd.concat({"baseline": base["returns"], **models}, axis=1, join="inner"))
    return out


def analyse(sweep: Sweep, table: pd.DataFrame, cells_dir: Path) -> dict:
    """Every number the summary shows, as plain data (also written as summary.json)."""
    groups = collect(sweep, table, cells_dir)
    # One scope for both numbers of the deflated Sharpe: every cell of the sweep is a trial, and the
    # spread of luck is that of the daily Sharpe ratios of every finished cell.
    # With a trials file, every configuration it records is a trial too, and the spread comes from all of them.
    trials = read_trials(sweep.trials)
    n_trials = trial_count(sweep, trials)
    finished_cells = [(cell, r) for g in groups.values() for rows in g.rows.values() for cell, _, r in rows]
    recorded = set(trials["hash"])
    sharpes = list(daily_sharpes(trials)) + [metrics.sharpe(r, periods=1) for cell, r in finished_cells
                                             if cell.hash not in recorded]
    variance = float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else None
    out = {"cells": len(sweep.cells), "ok": int((table["status"] == "ok").sum()),
           "failed": table.loc[table["status"] == "failed", ["name", "error"]].to_dict(orient="records"),
           "pending": int((table["status"] == "pending").sum()), "n_trials": n_trials,
           "sharpe_variance": variance, "groups": {}}
    for label, group in groups.items():
        first = next(iter(group.rows.values()))[0][2]
        variants = {}
        for variant, rows in group.rows.items():
            records = [record for _, record, _ in rows]
            variants[variant] = {
                "seeds": [cell.seed for cell, _, _ in rows],
                **{key: [float(r[key]) for r in records] for key in ("sharpe", "max_drawdown", "turnover", "n_trades")},
                "dsr": [metrics.dsr(r, n_trials, variance) for _, _, r in rows]}
        out["groups"][label] = {
            "start": str(first.index[0].date()), "end": str(first.index[-1].date()), "variants": variants,
            "baselines": {name: {k: b["summary"][k] for k in ("sharpe", "max_drawdown", "turnover", "n_trades")}
                          for name, b in group.baselines.items()},
            "spa": spa_pvalues(group)}
    return out


def markdown(result: dict, sweep: Sweep) -> str:
    lines = [f"# Sweep {sweep.path.name}: {result['cells']} cells ({result['ok']} ok, {len(result['failed'])} failed, "
             f"{result['pending']} not run)", "",
             f"Trials counted by the deflated Sharpe ratio: {result['n_trials']} (every cell of the sweep"
             + (f" and every configuration recorded in {sweep.trials.name}" if sweep.trials else "")
             + (f", plus {sweep.earlier_trials} tried on this data before" if sweep.earlier_trials else "") + ").", ""]
    for label, g in result["groups"].items():
        lines += [f"## {label}: out of sample {g['start']} .. {g['end']}", "",
                  "| variant | seeds | Sharpe median [min, max] | max drawdown median | turnover / yr | trades | "
                  "deflated Sharpe median [min, max] |", "|---|---|---|---|---|---|---|"]
        for variant, v in g["variants"].items():
            lines.append(f"| {variant} | {len(v['seeds'])} | {spread(v['sharpe'])} "
                         f"| {np.median(v['max_drawdown']):.1%} | {np.median(v['turnover']):.1f}x "
                         f"| {np.median(v['n_trades']):.0f} | {spread(v['dsr'])} |")
        for name, b in g["baselines"].items():
            lines.append(f"| {name} (baseline) | - | {b['sharpe']:.2f} | {b['max_drawdown']:.1%} "
                         f"| {b['turnover']:.1f}x | {b['n_trades']} | - |")
        if g["spa"]:
            lines += ["", f"Hansen's SPA, H0 'no cell beats the baseline' (consistent p-value, {SPA_REPS} bootstrap "
                      "reps): " + ", ".join(f"{k} {p:.2f}" for k, p in g["spa"].items())]
        lines.append("")
    if result["failed"]:
        lines += ["## Failed cells", ""] + [f"- {f['name']}: {f['error']}" for f in result["failed"]] + [""]
    lines += [f"![Sharpe by variant]({FIGURE})", ""]
    return "\n".join(lines)


def draw(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = result["groups"]
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(1 + 5 * max(1, len(groups)), 4.5), squeeze=False,
                             sharey=True)
    for ax, (label, g) in zip(axes[0], groups.items()):
        names = list(g["variants"])
        for x, name in enumerate(names):
            sharpe = g["variants"][name]["sharpe"]
            ax.scatter(np.full(len(sharpe), x), sharpe, s=18, alpha=0.7, color="tab:blue")
            ax.hlines(np.median(sharpe), x - 0.3, x + 0.3, color="black", lw=1.5)
        for i, (name, b) in enumerate(g["baselines"].items()):
            ax.axhline(b["sharpe"], ls="--", lw=0.9, color=f"C{i + 1}", label=f"{name} {b['sharpe']:.2f}")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.legend(fontsize=7, loc="best")
    axes[0][0].set_ylabel("out-of-sample Sharpe (points: seeds, bar: median)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def page(result: dict, sweep: Sweep) -> str:
    parts = [f"<html><head><meta charset='utf-8'><title>Sweep {html.escape(sweep.path.name)}</title><style>"
             "body{font-family:sans-serif;margin:2em} table{border-collapse:collapse} "
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}</style></head><body>",
             f"<h2>Sweep {html.escape(sweep.path.name)}: {result['cells']} cells ({result['ok']} ok, "
             f"{len(result['failed'])} failed, {result['pending']} not run)</h2>",
             f"<p>Trials counted by the deflated Sharpe ratio: {result['n_trials']}.</p>"]
    for label, g in result["groups"].items():
        rows = [[variant, len(v["seeds"]), spread(v["sharpe"]), f"{np.median(v['max_drawdown']):.1%}",
                 f"{np.median(v['turnover']):.1f}x", f"{np.median(v['n_trades']):.0f}", spread(v["dsr"])]
                for variant, v in g["variants"].items()]
        rows += [[f"{name} (baseline)", "-", f"{b['sharpe']:.2f}", f"{b['max_drawdown']:.1%}", f"{b['turnover']:.1f}x",
                  b["n_trades"], "-"] for name, b in g["baselines"].items()]
        parts.append(html_table(f"{html.escape(label)}: out of sample {g['start']} .. {g['end']}",
                                ["variant", "seeds", "Sharpe median [min, max]", "max drawdown", "turnover / yr",
                                 "trades", "deflated Sharpe"], rows))
        if g["spa"]:
            parts.append("<p>Hansen's SPA consistent p-values: " + html.escape(
                ", ".join(f"{k} {p:.2f}" for k, p in g["spa"].items())) + "</p>")
    if result["failed"]:
        parts.append(html_table("Failed cells", ["cell", "error"], [[f["name"], f["error"]] for f in result["failed"]]))
    parts.append(f'<h3>Sharpe by variant</h3><img src="{FIGURE}" alt="Sharpe by variant"></body></html>')
    return "\n".join(parts)


def write_summary(sweep: Sweep, table: pd.DataFrame, out: Path) -> dict:
    """summary.md, summary.html, summary.json and the figure, each written whole or not at all."""
    result = analyse(sweep, table, out / "cells")
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{FIGURE}.", suffix=".png")
    os.close(fd)
    try:
        draw(result, Path(tmp))
        os.replace(tmp, out / FIGURE)
    finally:
        Path(tmp).unlink(missing_ok=True)
    atomic_write_text(out / "summary.json", dump_json(result))
    atomic_write_text(out / SUMMARY_MD, markdown(result, sweep))
    atomic_write_text(out / SUMMARY_HTML, page(result, sweep))
    return result
