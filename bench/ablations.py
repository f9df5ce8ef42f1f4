"""Ablations: does each network earn its place? Every variant, several seeds, each dataset or universe.

Each variant swaps one piece of the default system for its classical twin (or switches it
off) and runs the full default walk-forward, with costs, on each dataset (or universe:
`sp500+nasdaq` is one portfolio of both) and seed:

    full               tuner network + meta-learner + sizing net + risk net + timing nets
    tuner_fixed        the config's fixed hyperparameters (same number of candidates, seeds differ)
    tuner_random       an equal-budget random search in the tuner's bounds
    meta_off           equal ensemble weights, trust 0.5 in each network against its twin
    sizing_twin        a 15% volatility-target fraction instead of the sizing net
    risk_twin          fixed 2 ATR stop / 3 ATR take-profit instead of the risk net
    timing_classical   no timing net: the ensemble holds only tsmom and sma
    per_asset          a universe's networks trained per asset instead of pooled
    sizing_alone       each asset sized to the volatility target alone, not the portfolio
    limits_learned     portfolio limits learned on the validation tail instead of the fixed ones

Prints per dataset the out-of-sample Sharpe and max drawdown (median and [min, max] over
seeds), the number of configurations tried, the deflated Sharpe ratio of the full system
with that number, and Hansen's SPA test of all variants against each baseline.

    python bench/ablations.py [--datasets sp500 nasdaq] [--seeds 0 1 2] [--workers 2]
    python bench/ablations.py --datasets sp500+nasdaq --variants full per_asset sizing_alone limits_learned
"""
from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

VARIANTS = {
    "full": {},
    "tuner_fixed": {"tuner.mode": "fixed"},
    "tuner_random": {"tuner.mode": "random"},
    "meta_off": {"meta.enabled": False},
    "sizing_twin": {"sizing.enabled": False},
    "risk_twin": {"risk.enabled": False},
    "timing_classical": {"meta.neural_members": 0},
    "per_asset": {"train.pooled": False},
    "sizing_alone": {"sizing.portfolio": False},
    "limits_learned": {"risk.limits": "learned"},
}
# Full-data runs of the neural strategy looked at while it was built (before this bench):
# they are configurations tried too, and the deflated Sharpe counts them.
DEVELOPMENT_RUNS = 6


def run_one(job: tuple[str, str, int]) -> dict:
    dataset, variant, seed = job
    from nt_backtrader.config import Config, override
    from nt_backtrader.walkforward import walk_forward

    config = override(Config(), **{"seed": seed, "train.threads": 1, **VARIANTS[variant]})
    start = time.perf_counter()
    result = walk_forward(load(dataset), config, progress=False)
    return {"dataset": dataset, "variant": variant, "seed": seed, "seconds": time.perf_counter() - start,
            "summary": result.summary(), "returns": result.returns}


def load(dataset: str) -> dict:
    """One embedded dataset, or a universe of several joined by '+'."""
    from nt_backtrader.data import load_universe

    return load_universe(dataset=tuple(dataset.split("+")))


def baselines(dataset: str) -> dict:
    from nt_backtrader.config import CLASSICAL_STRATEGIES, Config, override
    from nt_backtrader.walkforward import walk_forward

    frame = load(dataset)
    out = {}
    for name in CLASSICAL_STRATEGIES:
        result = walk_forward(frame, override(Config(), **{"strategy.name": name}), progress=False)
        out[name] = {"summary": result.summary(), "returns": result.returns}
    return out


def spread(values: list[float], fmt: str) -> str:
    return f"{fmt.format(np.median(values))} [{fmt.format(min(values))}, {fmt.format(max(values))}]"


def report(dataset: str, runs: list[dict], base: dict, n_trials: int, tried: str) -> dict:
    from arch.bootstrap import SPA

    from nt_backtrader import metrics

    print(f"\n## {dataset}: out of sample {runs[0]['summary']['start']} .. {runs[0]['summary']['end']}, "
          f"1 bp commission + 1 bp slippage, seeds {sorted({r['seed'] for r in runs})}\n")
    print("| variant | Sharpe median [min, max] | max drawdown median [min, max] | turnover / yr | PSR |")
    print("|---|---|---|---|---|")
    table = {}
    for variant in VARIANTS:
        rows = [r for r in runs if r["variant"] == variant]
        if not rows:
            continue
        sharpe = [r["summary"]["sharpe"] for r in rows]
        dd = [100 * r["summary"]["max_drawdown"] for r in rows]
        turnover = [r["summary"]["turnover"] for r in rows]
        psr = [r["summary"]["psr"] for r in rows]
        table[variant] = {"sharpe": sharpe, "max_drawdown": dd, "turnover": turnover}
        print(f"| {variant} | {spread(sharpe, '{:.2f}')} | {spread(dd, '{:.0f}%')} | {np.median(turnover):.1f}x "
              f"| {np.median(psr):.2f} |")
    for name, b in base.items():
        s = b["summary"]
        print(f"| {name} (baseline) | {s['sharpe']:.2f} | {100 * s['max_drawdown']:.0f}% | {s['turnover']:.1f}x "
              f"| {s['psr']:.2f} |")

    daily_sharpes = [r["returns"].mean() / r["returns"].std() for r in runs]
    full = [r for r in runs if r["variant"] == "full"]
    dsr = [metrics.dsr(r["returns"], n_trials, float(np.var(daily_sharpes, ddof=1))) for r in full]
    print(f"\nconfigurations tried: {n_trials} ({tried}); deflated Sharpe ratio of `full` with that N and the "
          f"variance of the runs' Sharpe ratios: {spread(dsr, '{:.2f}')}")
    models = pd.concat({f"{r['variant']}/{r['seed']}": r["returns"] for r in runs}, axis=1)
    spa = {}
    for name, b in base.items():
        test = SPA(-b["returns"].to_numpy(), -models.to_numpy(), reps=1000, seed=0)
        test.compute()
        spa[name] = float(test.pvalues["consistent"])
    print("Hansen's SPA, H0 'no variant beats the baseline' (consistent p-value, 1000 bootstrap reps): "
          + ", ".join(f"{k} {v:.2f}" for k, v in spa.items()))
    return {"variants": table, "dsr_full": dsr, "spa_pvalues": spa, "n_trials": n_trials}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["sp500", "nasdaq"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--workers", type=int, default=2, help="processes, one torch thread each")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()

    jobs = [(d, v, s) for d in args.datasets for v in args.variants for s in args.seeds]
    n_trials = len(jobs) + DEVELOPMENT_RUNS
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        runs = list(pool.map(run_one, jobs))
    print(f"{len(jobs)} walk-forward runs in {(time.perf_counter() - start) / 60:.1f} min "
          f"({args.workers} workers, median {np.median([r['seconds'] for r in runs]):.0f} s per run)")
    out = {}
    for dataset in args.datasets:
        tried = (f"{len(args.variants)} variants x {len(args.seeds)} seeds x {len(args.datasets)} datasets, plus "
                 f"{DEVELOPMENT_RUNS} development runs")
        out[dataset] = report(dataset, [r for r in runs if r["dataset"] == dataset], baselines(dataset), n_trials,
                              tried)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
