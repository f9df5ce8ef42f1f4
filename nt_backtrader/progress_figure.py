"""The learning-progress figure: did the system learn? One column per walk-forward segment.

Panels: the tuner's learning rate and batch size, dropout and weight decay (with every
candidate it proposed as faint dots), the meta-learner's ensemble weights and trust, the
timing net's accuracy (validation tail and out of sample), and the out-of-sample return
per segment with the cumulative return.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def draw_learning_progress(history: list[dict], path: Path, title: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(history))
    labels = [row["test_start"][:7] for row in history]
    fig, axes = plt.subplots(3, 2, figsize=(13, 10), sharex=True)
    (ax_lr, ax_reg), (ax_w, ax_trust), (ax_acc, ax_ret) = axes

    def candidates(key):
        points = [(i, c[key]) for i, row in enumerate(history) for c in row.get("candidates", [])]
        return np.array(points).reshape(-1, 2)

    ax_lr.scatter(*candidates("lr").T, s=10, color="tab:blue", alpha=0.3, label="candidates")
    ax_lr.plot(x, [r["lr"] for r in history], "o-", color="tab:blue", label="learning rate (chosen)")
    ax_lr.set_yscale("log")
    ax_lr.set_ylabel("learning rate")
    twin = ax_lr.twinx()
    twin.plot(x, [r["batch_size"] for r in history], "s--", color="tab:orange", label="batch size")
    twin.set_yscale("log", base=2)
    twin.set_ylabel("batch size")
    _legend(ax_lr, twin)
    ax_lr.set_title("tuner: learning rate and batch size")

    ax_reg.plot(x, [r["dropout"] for r in history], "o-", color="tab:green", label="dropout")
    ax_reg.set_ylabel("dropout")
    twin = ax_reg.twinx()
    twin.plot(x, [r["weight_decay"] for r in history], "s--", color="tab:red", label="weight decay")
    twin.set_yscale("log")
    twin.set_ylabel("weight decay")
    _legend(ax_reg, twin)
    ax_reg.set_title("tuner: dropout and weight decay")

    members = list(history[0]["weights"])
    weights = np.array([[row["weights"][m] for m in members] for row in history])
    ax_w.stackplot(x, weights.T, labels=members, alpha=0.8)
    ax_w.set_ylim(0, 1)
    ax_w.set_ylabel("ensemble weight")
    ax_w.legend(loc="upper left", fontsize=8, ncol=len(members))
    ax_w.set_title("meta-learner: weights of the timing members")

    if "sizing_trust" in history[0]:
        ax_trust.plot(x, [r["sizing_trust"] for r in history], "o-", label="trust in the sizing net")
        ax_trust.plot(x, [r["risk_trust"] for r in history], "s-", label="trust in the risk net")
        ax_trust.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax_trust.set_ylim(0, 1)
        ax_trust.set_title("meta-learner: networks against their classical twins")

        ax_acc.plot(x, [r["timing_val_accuracy"] for r in history], "o-", label="validation tail")
        ax_acc.plot(x, [r["timing_accuracy"] for r in history], "s-", label="out of sample")
        ax_acc.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax_acc.set_ylabel("directional accuracy")
        ax_acc.set_title("timing net: accuracy")
    else:  # the deep-momentum core outputs a position: each member's Sharpe, validation tail and realized
        for m, marker in zip(members, "os^v"):
            ax_trust.plot(x, [r["val_sharpes"][m] for r in history], marker + "-", label=f"{m}")
            ax_acc.plot(x, [r["member_oos_sharpes"][m] for r in history], marker + "-", label=f"{m}")
        for ax, where in ((ax_trust, "validation tail"), (ax_acc, "out of sample")):
            ax.axhline(0.0, color="grey", lw=0.8, ls=":")
            ax.set_ylabel("net Sharpe")
            ax.set_title(f"members' net Sharpe: {where}")
    ax_trust.legend(fontsize=8)
    ax_acc.legend(fontsize=8)

    returns = np.array([r["oos_return"] for r in history])
    ax_ret.bar(x, 100 * returns, color=np.where(returns >= 0, "tab:green", "tab:red"), label="segment")
    ax_ret.plot(x, 100 * (np.cumprod(1 + returns) - 1), "k.-", label="cumulative")
    ax_ret.set_ylabel("out-of-sample return, %")
    ax_ret.legend(fontsize=8)
    ax_ret.set_title("out-of-sample return per test window")

    for ax in axes[-1]:
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=60, fontsize=8)
        ax.set_xlabel("test window start")
    fig.suptitle(title or "learning progress across walk-forward segments")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _legend(*axes) -> None:
    handles, labels = [], []
    for ax in axes:
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    axes[0].legend(handles, labels, fontsize=8, loc="upper left")
