"""The main table's cells rerun with one change, paired seed by seed with `results/main.json`.

    READ_JAX_MALLOC=retain python experiments/main_variants.py VARIANT [--root results] [--seeds 5]

VARIANT is one of
  true_r         ``requirement: true``: the world's own r (the workloads' mixture weights, the
                 composed task's two skills) instead of the learned g_φ's estimate, whose
                 leave-one-task-out error is large on this world (RESULTS.md).  The gap separates
                 what is lost to requirement identification from what the allocator itself does.
                 Not part of the paper's protocol: the true r of a real task is unknowable.
  paper_actions  the paper's action set for every policy (``loop.bandit.action_set: paper``:
                 local moves around the previous allocation plus the sparse top-3 pairs, one-hots
                 off, as the artifact's read.yml).  In the main table every policy of a cell shares
                 the default action set (sparse, one-hots on), so its ``read_paper`` row is the
                 paper's learner on this project's action set; this is ReAD as the paper runs it.
Each variant reruns the same tasks, seeds, budget and loop (built by
`read_jax.results.suites.main_table`).  Uniform, which reads neither r nor the action set, runs
again as a pairing check: its utility must equal the main table's seed by seed, and where the
variant keeps the requirement stage its estimate of r must agree (within R_TOLERANCE: g_φ retrained
from scratch is not reproduced bit for bit).  Cells live in
ROOT/main_variants/VARIANT/<code version>/<task>-seed<s> (resumable); the summary is
ROOT/main_variants/VARIANT.json and the table is printed.  Diagnostics beside the paper's suites, so
not a suite of `read-jax results`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

from read_jax.demo import enable_compilation_cache
from read_jax.experiment import Experiment, ExperimentConfig
from read_jax.results.runner import code_version, git_commit
from read_jax.results.stats import holm, mean_ci, paired_p
from read_jax.results.suites import main_table
from read_jax.run_files import read_json, write_json

REPORT_NAMES = {"read_ucb": "read"}  # the report's name for a policy (as `Experiment.run` renames it)
# g_φ retrained from scratch (its cache under ROOT/identifier is not committed) reproduced the main
# table's estimate to within 0.003 per capability here, not bit for bit: a looser pairing than uniform's
R_TOLERANCE = 0.01


def _true_r(config: ExperimentConfig) -> ExperimentConfig:
    return dataclasses.replace(config, requirement="true",
                               policies=("read_ucb", "greedy", "task_static", "one_hot", "uniform"))


def _paper_actions(config: ExperimentConfig) -> ExperimentConfig:
    bandit = dataclasses.replace(config.loop.bandit, action_set="paper", include_one_hot=False)
    return dataclasses.replace(config, loop=dataclasses.replace(config.loop, bandit=bandit),
                               policies=("read_paper", "read_ucb", "uniform"))


VARIANTS: dict[str, Callable[[ExperimentConfig], ExperimentConfig]] = {
    "true_r": _true_r, "paper_actions": _paper_actions}


def _name(policy: str) -> str:
    return REPORT_NAMES.get(policy, policy)


def run(variant: str, root: Path, seeds: int) -> dict:
    main = read_json(root / "main.json", "main table")
    by_cell = {(c["labels"]["task"], c["labels"]["seed"]): c for c in main["cells"]}
    rows, policies, version = [], (), code_version()
    for cell in main_table(False, str(root)):
        task, seed = cell.labels["task"], cell.labels["seed"]
        if seed >= seeds:
            continue
        # keyed by the code version, as the suites' cells are: cells of other code are never reused
        out = root / "main_variants" / variant / version / f"{task}-seed{seed}"
        config = VARIANTS[variant](cell.config)
        policies = tuple(_name(p) for p in config.policies)
        if not (out / "report.json").exists():
            print(f"[{variant}] {task} seed {seed} -> {out}", file=sys.stderr, flush=True)
            Experiment(config, out).run()
        report = read_json(out / "report.json", "report")
        r_gap = None
        if config.requirement == cell.config.requirement:  # same requirement stage: the same estimate of r
            mine, theirs = report["requirement"]["estimated"], by_cell[(task, seed)]["requirement"]["estimated"]
            r_gap = max(abs(a - b) for a, b in zip(mine, theirs))
            if r_gap > R_TOLERANCE:
                raise SystemExit(f"pairing check failed: the estimated r differs on {task} seed {seed} by {r_gap:.4f}")
        row = {"task": task, "seed": seed, "r_hat_max_abs_diff": r_gap,
               "variant": {p: report["policies"][p]["utility"] for p in policies},
               "main": {p: by_cell[(task, seed)]["policies"][p]["utility"] for p in policies}}
        # uniform reads neither r nor the action set: the two runs must be the same run
        if abs(row["variant"]["uniform"] - row["main"]["uniform"]) > 1e-9:
            raise SystemExit(f"pairing check failed: uniform differs on {task} seed {seed}")
        rows.append(row)
    return {"variant": variant, "command": f"python experiments/main_variants.py {variant}",
            "code_version": version, "commit": git_commit(), "main_code_version": main["code_version"],
            "policies": policies, "rows": rows}


def table(summary: dict) -> str:
    """Per task: each policy in the main table and in the variant (p: the change, paired), and within the
    variant each policy against read (p: paired, Holm over the policies)."""
    lines = [f"`{summary['command']}` · commit `{summary['commit']}` · code `{summary['code_version']}` "
             f"(main table: code `{summary['main_code_version']}`)"]
    gaps = [r["r_hat_max_abs_diff"] for r in summary["rows"] if r.get("r_hat_max_abs_diff") is not None]
    if gaps:
        lines.append(f"\nestimated r against the main table's: largest difference {max(gaps):.4f} per capability")
    variant, names = summary["variant"], [p for p in summary["policies"] if p != "uniform"]
    for task in dict.fromkeys(r["task"] for r in summary["rows"]):
        rows = [r for r in summary["rows"] if r["task"] == task]
        got = {n: [r["variant"][n] for r in rows] for n in summary["policies"]}
        was = {n: [r["main"][n] for r in rows] for n in names}
        p_change = holm([paired_p(got[n], was[n]) for n in names])
        others = [n for n in summary["policies"] if n != "read"]
        p_read = dict(zip(others, holm([paired_p(got[n], got["read"]) for n in others])))
        lines += [f"\n{task} (n = {len(rows)}; utility mean ± 95 % CI; p paired, Holm)\n",
                  f"| policy | main table | {variant} | p (change) | p vs read ({variant}) |", "|---|---|---|---|---|"]
        for n, p in zip(names, p_change):
            (mm, cm), (mv, cv) = mean_ci(was[n]), mean_ci(got[n])
            vs_read = f"{p_read[n]:.3f}" if n in p_read else ""
            lines.append(f"| {n} | {mm:.3f} ± {cm:.3f} | {mv:.3f} ± {cv:.3f} | {p:.3f} | {vs_read} |")
        mu, cu = mean_ci(got["uniform"])
        lines.append(f"| uniform (pairing check: the same runs) | {mu:.3f} ± {cu:.3f} | {mu:.3f} ± {cu:.3f} | | "
                     f"{p_read['uniform']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variant", choices=sorted(VARIANTS))
    parser.add_argument("--root", default="results", help="where main.json is; the variant's cells go under it")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    enable_compilation_cache()
    root = Path(args.root)
    summary = run(args.variant, root, args.seeds)
    path = root / "main_variants" / f"{args.variant}.json"
    write_json(path, summary)
    print(table(summary))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
