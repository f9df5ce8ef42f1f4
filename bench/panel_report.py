"""The figures issue #18 asks of the core's panel sweeps, from finished sweep folders (no training here).

    python bench/panel_report.py reports/panel_edge [reports/panel_ablation ...] [--reference cost_1bp]

Per sweep folder and variant, over its seeds: the neural side's Sharpe (median, min, max and the
spread max - min), each baseline's median on the same dates and costs, the ratio of the medians to
TSMOM's, all for the full test period and from --since on (2013 by default, the literature's "after
2010s" split). With two variants that differ only in cost (cost_1bp, cost_3bp: 1 + 1 and 3 + 3 bp per
side), the breakeven cost: per seed, the per-side cost at which the neural Sharpe, read linearly
between the two measured costs, falls to 0 and to TSMOM's. With --reference, every other variant's
per-seed difference from it (the ablation's paired reading: the same seed, the same dates).
The deflated Sharpe and Hansen's SPA on the daily returns as traded are in each folder's summary.md
(`nt-backtrader sweep` writes it); as the core runs at about half TSMOM's volatility, a test of mean
returns there compares risks more than skill, so this script also gives the SPA p-value with every
series first rescaled to the same realized volatility (metrics.rescaled_to_vol: ex post, a way to
compare, as the comparison table's rescaled columns).
"""
from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

import pandas as pd

from nt_backtrader.metrics import rescaled_to_vol, sharpe
from nt_backtrader.sweep.summary import spa_pvalue

TSMOM = ("tsmom_ls", "tsmom")   # position mode's long/short rule; the direction mode's classical tsmom
COST_PER_SIDE_BPS = {"cost_1bp": 2.0, "cost_3bp": 6.0}   # commission + slippage, per side


def cell_sharpes(cell: Path, since: str) -> dict[str, dict[str, float]]:
    """{"full" | "since": {strategy: Sharpe}} of one finished cell."""
    strategy = pd.read_csv(cell / "returns.csv", index_col=0, parse_dates=True)["strategy"]
    baselines = pd.read_csv(cell / "baselines.csv", index_col=0, parse_dates=True)
    frame = baselines.assign(neural=strategy)
    return {"full": {k: sharpe(v.dropna()) for k, v in frame.items()},
            "since": {k: sharpe(v.dropna()) for k, v in frame.loc[since:].items()}}


def finished_cells(folder: Path) -> pd.DataFrame:
    """sweep.csv's finished cells, with the group each belongs to: its variant ("base" in a sweep without
    variants), and its dataset too in a grid over datasets."""
    table = pd.read_csv(folder / "sweep.csv")
    ok = table[table["status"] == "ok"]
    group = ok["variant"].astype(str) if "variant" in table else pd.Series("base", index=ok.index)
    if "data.dataset" in table:   # a grid over datasets: one group per variant and dataset
        group = group + " on " + ok["data.dataset"].astype(str)
    return ok.assign(group=group)


def spa_at_equal_vol(folder: Path, vol: float = 0.10, reps: int = 1000) -> dict[str, dict[str, float]]:
    """{variant: {baseline: Hansen's SPA consistent p-value}}, H0 'no seed of the variant beats the
    baseline', every daily series rescaled to `vol` first."""
    out = {}
    for variant, rows in finished_cells(folder).groupby("group"):
        cells = [folder / "cells" / name for name in rows["name"]]
        models = {c.name: pd.read_csv(c / "returns.csv", index_col=0, parse_dates=True)["strategy"] for c in cells}
        baselines = pd.read_csv(cells[0] / "baselines.csv", index_col=0, parse_dates=True)
        out[variant] = {}
        for name, base in baselines.items():
            frame = pd.concat({"baseline": base, **models}, axis=1, join="inner").dropna()
            out[variant][name] = spa_pvalue(frame.apply(lambda column: rescaled_to_vol(column, vol)), reps)
    return out


def read_sweep(folder: Path, since: str) -> pd.DataFrame:
    """One row per finished cell: variant, seed, then (period, strategy) Sharpes."""
    rows = []
    for _, row in finished_cells(folder).iterrows():
        sharpes = cell_sharpes(folder / "cells" / row["name"], since)
        rows.append({"variant": row["group"], "seed": int(row["seed"]),
                     **{(period, k): v for period, values in sharpes.items() for k, v in values.items()}})
    return pd.DataFrame(rows)


def fmt(values) -> str:
    values = list(values)
    return (f"{statistics.median(values):.2f} [{min(values):.2f}, {max(values):.2f}] "
            f"spread {max(values) - min(values):.2f}")


def describe(cells: pd.DataFrame, period: str) -> list[str]:
    lines = []
    for (folder, variant), group in cells.groupby(["folder", "variant"], sort=False):
        neural = group[(period, "neural")]
        base = {col[1]: statistics.median(group[col]) for col in group.columns
                if isinstance(col, tuple) and col[0] == period and col[1] != "neural" and group[col].notna().all()}
        tsmom = next((base[name] for name in TSMOM if name in base), math.nan)
        lines.append(f"| {folder}: {variant} | {len(group)} | {fmt(neural)} | "
                     + ", ".join(f"{name} {value:.2f}" for name, value in base.items())
                     + f" | {statistics.median(neural) / tsmom if tsmom else math.nan:.2f} |")
    return lines


def breakeven(cells: pd.DataFrame) -> list[str]:
    """Per seed, the per-side cost (bp) where the neural Sharpe, linear in cost between the two measured
    costs, reaches 0 and TSMOM's."""
    if not set(COST_PER_SIDE_BPS) <= set(cells["variant"]):
        return []
    low, high = (cells[cells["variant"] == v].set_index("seed") for v in COST_PER_SIDE_BPS)
    if low.empty or high.empty:
        return []
    (c1, c2), out = COST_PER_SIDE_BPS.values(), []
    for seed in sorted(set(low.index) & set(high.index)):
        for against, label in ((None, "Sharpe 0"), ("tsmom_ls", "TSMOM's Sharpe")):
            gap1 = low.at[seed, ("full", "neural")] - (low.at[seed, ("full", against)] if against else 0.0)
            gap2 = high.at[seed, ("full", "neural")] - (high.at[seed, ("full", against)] if against else 0.0)
            slope = (gap2 - gap1) / (c2 - c1)
            never = "never: the gap does not shrink with cost"
            where = f"at {c1 - gap1 / slope:.1f} bp per side" if slope < 0 else never
            out.append(f"- seed {seed}: {label} {where} (gap {gap1:+.2f} at {c1:g} bp, {gap2:+.2f} at {c2:g} bp)")
    return out


def paired(cells: pd.DataFrame, reference: str) -> list[str]:
    ref = cells[cells["variant"] == reference].set_index("seed")[("full", "neural")]
    lines = []
    for variant, group in cells.groupby("variant", sort=False):
        if variant == reference:
            continue
        diff = group.set_index("seed")[("full", "neural")] - ref
        diff = diff.dropna()
        if len(diff):
            lines.append(f"| {variant} - {reference} | {len(diff)} | {fmt(diff)} | "
                         f"{int((diff > 0).sum())} of {len(diff)} seeds above |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="finished `nt-backtrader sweep` folders")
    parser.add_argument("--since", default="2013-01-01", help="start of the second period (default 2013-01-01)")
    parser.add_argument("--reference", help="variant the others are compared with, seed by seed")
    args = parser.parse_args()
    cells = pd.concat([read_sweep(folder, args.since).assign(folder=folder.name) for folder in args.folders],
                      ignore_index=True)
    header = ("| sweep: variant | seeds | neural Sharpe: median [min, max] | baselines' medians | median / "
              "TSMOM's |\n|---|---|---|---|---|")
    for period, title in (("full", "Full test period"), ("since", f"From {args.since}")):
        print(f"\n### {title}\n\n{header}")
        print("\n".join(describe(cells, period)))
    print("\n### Hansen's SPA at equal volatility (10%), H0 'no seed beats the baseline': consistent p-values\n")
    for folder in args.folders:
        for variant, pvalues in spa_at_equal_vol(folder).items():
            print(f"- {folder.name}: {variant}: " + ", ".join(f"{k} {p:.2f}" for k, p in pvalues.items()))
    lines = breakeven(cells)
    if lines:
        print("\n### Breakeven cost (linear between the two measured costs)\n\n" + "\n".join(lines))
    if args.reference:
        print(f"\n### Paired with {args.reference} (full period, neural Sharpe)\n\n| difference | seeds | median "
              "[min, max] | |\n|---|---|---|---|\n" + "\n".join(paired(cells, args.reference)))


if __name__ == "__main__":
    main()
