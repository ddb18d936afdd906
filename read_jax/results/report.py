"""`RESULTS.md` and its figures, from the suite files `runner.run_suite` writes (nothing is re-run).

Every table is headed by the command that regenerates its numbers, the commit and the code hash
they come from, and the number of cells; intervals are 95 % t-intervals over seeds; paired tests
are against ReAD (BLR-UCB) seed by seed, Holm-corrected within a table.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from read_jax.results.stats import holm, mean_ci, paired_p
from read_jax.run_files import read_json, write_figure, write_text

REFERENCE = "read"  # ReAD (BLR-UCB) as the report names it


def _fmt(mean: float, half: float, digits: int = 3) -> str:
    if np.isnan(mean):
        return "–"
    return f"{mean:.{digits}f}" if np.isnan(half) else f"{mean:.{digits}f} ± {half:.{digits}f}"


def _header(data: dict[str, Any]) -> list[str]:
    return [f"## {data['title']}{' (small)' if data['small'] else ''}", "",
            f"`{data['command']}` · commit `{data['commit']}` · code `{data['code_version']}` · "
            f"{len(data['cells'])} cells", ""]


def _policy_table(cells: list[dict[str, Any]], metric: str = "utility") -> list[str]:
    """Rows per policy: mean ± CI over seeds, tokens, paired p vs ReAD (Holm)."""
    names = list(cells[0]["policies"])
    by_seed = {c["labels"]["seed"]: c for c in cells}
    seeds = sorted(by_seed)
    values = {n: [by_seed[s]["policies"][n][metric] for s in seeds] for n in names}
    tokens = {n: [by_seed[s]["policies"][n]["tokens_used"] for s in seeds] for n in names}
    others = [n for n in names if n != REFERENCE]
    raw = [paired_p(values[REFERENCE], values[n]) if REFERENCE in values else float("nan") for n in others]
    adjusted = dict(zip(others, holm(raw)))
    lines = [f"| policy | {metric} (mean ± 95 % CI, n = {len(seeds)}) | tokens used | p vs {REFERENCE} (paired, Holm) |",
             "|---|---|---|---|"]
    init = [by_seed[s]["initial"]["utility"] for s in seeds]
    lines.append(f"| initial student | {_fmt(*mean_ci(init))} | 0 | |")
    for n in names:
        p = adjusted.get(n)
        extra = f" (search {np.mean([by_seed[s]['policies'][n]['search']['tokens'] for s in seeds]):.0f})" \
            if by_seed[seeds[0]]["policies"][n].get("search") else ""
        lines.append(f"| {n} | {_fmt(*mean_ci(values[n]))} | {np.mean(tokens[n]):.0f}{extra} | "
                     f"{'' if p is None or np.isnan(p) else f'{p:.3f}'} |")
    return lines


def main_section(data: dict[str, Any]) -> list[str]:
    lines = _header(data)
    by_task: dict[str, list] = defaultdict(list)
    for c in data["cells"]:
        by_task[c["labels"]["task"]].append(c)
    for task, cells in by_task.items():
        lines += [f"### {task}", ""] + _policy_table(cells) + [""]
        loto = [c["identifier"] for c in cells if c.get("identifier")]
        if loto:
            lines += [f"g_φ leave-one-task-out error on the auxiliary tasks: L1 {np.mean([x['l1'] for x in loto]):.2f}, "
                      f"top-k overlap {np.mean([x['topk_overlap'] for x in loto]):.2f}; on {task} itself: L1 "
                      + _fmt(*mean_ci([c["requirement"]["metrics"]["l1"] for c in cells if c["requirement"]["metrics"]]),
                             2), ""]
            per_task = next((c["identifier_per_task"] for c in cells if c.get("identifier_per_task")), None)
            if per_task:  # the same for every seed: g_φ is trained once per world
                lines += ["| held-out auxiliary task | L1 | top-k overlap |", "|---|---|---|"]
                lines += [f"| {name} | {m['l1']:.2f} | {m['topk_overlap']:.2f} |" for name, m in per_task.items()]
                lines += [""]
    return lines + _overhead_table(data["cells"])


def _overhead_table(cells: list[dict[str, Any]]) -> list[str]:
    """Per policy: each phase's share of the intervals' wall time and the overhead (ReAD's own machinery:
    probes, bandit, checkpoints; `read_jax.experiment.report.OVERHEAD_PHASES`), mean ± CI over cells, so
    where the overhead goes is visible beside the paper's one number.  The phases are the ones the runs
    recorded (a phase a run did not record counts as 0 s there)."""
    recorded = [p.get("phase_seconds") or {} for c in cells for p in c["policies"].values()]
    shown = list(dict.fromkeys(k for seconds in recorded for k in seconds))
    shares: dict[str, list[float]] = defaultdict(list)
    phases: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for c in cells:
        for n, p in c["policies"].items():
            shares[n].append(100 * p["overhead_share"])
            seconds = p.get("phase_seconds") or {}
            total = sum(seconds.values())
            if total > 0:
                for k in shown:
                    phases[n][k].append(100 * seconds.get(k, 0.0) / total)
    lines = ["### Overhead: probes + bandit + checkpointing, share of the intervals' wall time (paper: 5.63 %)", "",
             "Each phase's share of the intervals' wall time, % (mean ± CI over cells); overhead = probe + bandit "
             "+ bookkeeping (checkpoints, history).", "",
             "| policy | overhead % | " + " | ".join(shown) + " |", "|---|---|" + "---|" * len(shown)]
    lines += [f"| {n} | {_fmt(*mean_ci(v), 1)} | "
              + " | ".join(_fmt(*mean_ci(phases[n][k]), 1) if phases[n][k] else "" for k in shown) + " |"
              for n, v in shares.items()]
    return lines + [""]


def transfer_section(data: dict[str, Any], out: Path) -> list[str]:
    cells = data["cells"]
    caps = cells[0]["capabilities"]
    names = list(cells[0]["policies"])
    delta = np.array([[[c["policies"][n]["profile"][k] - c["policies"][n]["initial_profile"][k] for k in caps]
                       for n in names] for c in cells])  # [seed, distilled, measured]
    stats = [[mean_ci(delta[:, i, j]) for j in range(len(caps))] for i in range(len(names))]
    lines = _header(data) + ["Rows: the capability all tokens went to (one-hot); columns: change of each "
                             "capability's probe score (mean log-likelihood of the teacher's answers) from the "
                             "initial student, mean ± 95 % CI over seeds.", "",
                             "| distilled \\ measured | " + " | ".join(caps) + " |", "|---|" + "---|" * len(caps)]
    for i in range(len(names)):
        lines.append(f"| {caps[i]} | " + " | ".join(_fmt(m, h, 2) for m, h in stats[i]) + " |")
    path = _heatmap(np.array([[m for m, _ in row] for row in stats]),
                    np.array([[h for _, h in row] for row in stats]), caps, out / "transfer.png")
    return lines + ["", f"![transfer matrix]({path.name})", ""]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _heatmap(mean: np.ndarray, half: np.ndarray, caps: list[str], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 6.5))
    lim = float(np.nanmax(np.abs(mean))) or 1.0
    ax.imshow(mean, cmap="RdBu", vmin=-lim, vmax=lim)
    for i in range(len(caps)):
        for j in range(len(caps)):
            ci = "" if np.isnan(half[i, j]) else f"\n±{half[i, j]:.2f}"
            ax.text(j, i, f"{mean[i, j]:+.2f}{ci}", ha="center", va="center", fontsize=6)
    ax.set_xticks(range(len(caps)), [c.replace("_", "\n") for c in caps], fontsize=7)
    ax.set_yticks(range(len(caps)), caps, fontsize=7)
    ax.set_xlabel("measured capability (Δ probe score)")
    ax.set_ylabel("distilled capability (one-hot)")
    fig.tight_layout()
    write_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def equivalent_budget(budgets: list[int], baseline: list[float], target: float) -> float:
    """Tokens a baseline needs to reach ``target`` utility, interpolating its mean utility linearly between
    the swept budgets (its first crossing); inf when it never reaches it within the sweep."""
    for k, (b, u) in enumerate(zip(budgets, baseline)):
        if u >= target:
            if k == 0:
                return float(b)
            b0, u0 = budgets[k - 1], baseline[k - 1]
            return float(b0 + (target - u0) * (b - b0) / (u - u0)) if u != u0 else float(b)
    return float("inf")


def budget_section(data: dict[str, Any], out: Path) -> list[str]:
    cells = data["cells"]
    budgets = sorted({c["labels"]["budget"] for c in cells})
    names = list(cells[0]["policies"])
    mean = {n: [mean_ci([c["policies"][n]["utility"] for c in cells if c["labels"]["budget"] == b]) for b in budgets]
            for n in names}
    lines = _header(data) + ["| budget | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for k, b in enumerate(budgets):
        lines.append(f"| {b} | " + " | ".join(_fmt(*mean[n][k]) for n in names) + " |")
    lines += ["", f"Equivalent budget: tokens each baseline needs to reach {REFERENCE}'s mean utility at each "
              "budget (linear interpolation over the sweep), as a multiple of that budget; > means never "
              "within the sweep.", "", "| budget | " + " | ".join(n for n in names if n != REFERENCE) + " |",
              "|---|" + "---|" * (len(names) - 1)]
    for k, b in enumerate(budgets):
        row = []
        for n in names:
            if n == REFERENCE:
                continue
            need = equivalent_budget(budgets, [m for m, _ in mean[n]], mean[REFERENCE][k][0])
            row.append(f"> {budgets[-1] / b:.1f}x" if np.isinf(need) else f"{need / b:.2f}x")
        lines.append(f"| {b} | " + " | ".join(row) + " |")
    path = _budget_plot(budgets, mean, out / "budget_sweep.png")
    return lines + ["", f"![budget sweep]({path.name})", ""]


def _budget_plot(budgets: list[int], mean: dict[str, list], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for n, stats in mean.items():
        m = np.array([s[0] for s in stats])
        h = np.nan_to_num(np.array([s[1] for s in stats]))
        ax.errorbar(budgets, m, yerr=h, marker="o", capsize=3, label=n)
    ax.set_xscale("log")
    ax.set_xlabel("token budget")
    ax.set_ylabel("task utility")
    ax.legend()
    fig.tight_layout()
    write_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def ablation_section(data: dict[str, Any]) -> list[str]:
    cells = data["cells"]
    variants = list(dict.fromkeys(c["labels"]["variant"] for c in cells))
    seeds = sorted({c["labels"]["seed"] for c in cells})
    get = {(c["labels"]["variant"], c["labels"]["seed"]): c for c in cells}
    base = [get["default", s]["policies"][REFERENCE]["utility"] for s in seeds]
    rows = [("default (BLR-UCB)", base)]
    rows.append(("ensemble instead of BLR", [get["default", s]["policies"]["read_ensemble"]["utility"] for s in seeds]))
    rows += [(v, [get[v, s]["policies"][REFERENCE]["utility"] for s in seeds]) for v in variants if v != "default"]
    adjusted = holm([paired_p(base, v) for _, v in rows[1:]])
    lines = _header(data) + ["| variant | utility (mean ± CI) | p vs default (paired, Holm) |", "|---|---|---|"]
    lines.append(f"| {rows[0][0]} | {_fmt(*mean_ci(base))} | |")
    lines += [f"| {name} | {_fmt(*mean_ci(v))} | {'' if np.isnan(p) else f'{p:.3f}'} |"
              for (name, v), p in zip(rows[1:], adjusted)]
    return lines + [""]


SECTIONS = {"main": main_section, "transfer": transfer_section, "budget": budget_section,
            "ablations": ablation_section}


def write_results(root: str | Path = "results", target: str | Path = "RESULTS.md") -> Path:
    """Regenerate ``target`` from every suite file under ``root`` (full before small, suites in order)."""
    root, target = Path(root), Path(target)
    lines = ["# Results", "", "Generated by `read-jax results` from the suite files in "
             f"`{root}/`; each section names the command that produced its numbers. Nothing here is typed by hand.", ""]
    found = False
    for name, section in SECTIONS.items():
        for suffix in ("", "-small"):
            path = root / f"{name}{suffix}.json"
            if path.exists():
                found = True
                data = read_json(path, "suite results")
                lines += section(data, root) if name in ("transfer", "budget") else section(data)
    if not found:
        lines += [f"No suite results under `{root}/` yet: run `read-jax results run SUITE [--small]`."]
    write_text(target, "\n".join(lines) + "\n")
    return target
