"""Plots of an experiment report: allocations over steps, profiles before/after, utility vs tokens.

Written through `read_jax.run_files` (atomically, by the primary process only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot_report(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from read_jax.run_files import as_path, write_figure

    out = as_path(out_dir)
    caps = report["capabilities"]
    policies = report["policies"]
    paths = []

    # 1. allocation over steps, one panel per policy (stacked shares)
    fig, axes = plt.subplots(1, len(policies), figsize=(4.2 * len(policies), 3.4), squeeze=False, sharey=True)
    colors = plt.cm.tab10(np.arange(len(caps)))
    for ax, (name, p) in zip(axes[0], policies.items()):
        alloc = np.asarray(p["allocations"], float)
        if alloc.size:  # step t's allocation spans [t, t + 1)
            ax.stackplot(np.arange(len(alloc) + 1), np.vstack([alloc, alloc[-1:]]).T, colors=colors, labels=caps,
                         step="post")
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("share of step tokens")
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle(f"allocation over steps ({report['task']})")
    fig.tight_layout()
    paths.append(out / "allocations.png")
    write_figure(fig, paths[-1], dpi=110)
    plt.close(fig)

    # 2. profile before / after (mean log-likelihood of teacher answers)
    fig, ax = plt.subplots(figsize=(9, 3.8))
    series = {"initial": report["initial"]["profile"], **{n: p["profile"] for n, p in policies.items()},
              "teacher": report["teacher"]["profile"]}
    width = 0.8 / len(series)
    for i, (name, prof) in enumerate(series.items()):
        ax.bar(np.arange(len(caps)) + i * width, [prof[c] for c in caps], width, label=name)
    ax.set_xticks(np.arange(len(caps)) + 0.4 - width / 2)
    ax.set_xticklabels([c.replace("_", "\n") for c in caps], fontsize=8)
    ax.set_ylabel("probe log-likelihood")
    ax.legend(fontsize=8)
    r_true = report["requirement"].get("true")
    title = "capability profile before / after"
    if r_true:
        title += "  (true requirement: " + ", ".join(f"{c}={v:.1f}" for c, v in zip(caps, r_true) if v > 0) + ")"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    paths.append(out / "profiles.png")
    write_figure(fig, paths[-1], dpi=110)
    plt.close(fig)

    # 3. dev utility against tokens spent
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, p in policies.items():
        hist = _history(out, p)
        pts = [(h["budget"]["used"], h["dev_utility"]) for h in hist if h.get("dev_utility") is not None]
        if pts:
            x, y = zip(*[(0, report["initial"]["dev_utility"])] + pts)
            ax.plot(x, y, marker="o", label=name)
    ax.set_xlabel("tokens spent")
    ax.set_ylabel("dev utility (exact match)")
    ax.set_title(f"utility vs tokens ({report['task']})")
    ax.legend()
    fig.tight_layout()
    paths.append(out / "utility_vs_tokens.png")
    write_figure(fig, paths[-1], dpi=110)
    plt.close(fig)
    return paths


def _history(out: Path, policy_summary: dict[str, Any]) -> list[dict[str, Any]]:
    import json

    path = out / "runs" / policy_summary.get("run_dir", policy_summary["policy"]) / "history.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
