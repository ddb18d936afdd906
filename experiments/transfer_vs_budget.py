"""The paper's two budget claims, read off the committed budget sweep: how on-target gain and
off-target transfer of one-hot distillation change with the budget.

    python experiments/transfer_vs_budget.py [--root results]

The sweep (`read-jax results run budget`) runs `one_hot_best` at every budget: the one-hot
allocation chosen on the profiling split (for a given seed the same capability at every budget,
since the search runs at a fixed token count), then distilled with the whole budget.  Its probe
profile against the initial student's is a row of the transfer matrix T(B) at four budgets.  The
paper reports (i) off-diagonal effects that grow more negative with B and (ii) diminishing
returns: the marginal on-target gain per token shrinks as B grows.  Printed per budget: the
on-target change, the mean change of the seven other capabilities (mean ± 95 % CI over seeds),
and the on-target gain per 100k tokens since the previous budget.  Probe scores are mean
log-likelihoods of the teacher's answers (higher is better).  Nothing is run: this reads
``ROOT/budget.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from read_jax.results.stats import mean_ci
from read_jax.run_files import read_json


def rows(budget_json: dict) -> list[dict]:
    """One row per (budget, seed): the chosen capability, its change and the others' mean change."""
    caps = budget_json["cells"][0]["capabilities"]
    out = []
    for cell in budget_json["cells"]:
        policy = cell["policies"]["one_hot_best"]
        target = int(np.argmax(policy["search"]["allocation"]))
        delta = np.array([policy["profile"][c] - cell["initial"]["profile"][c] for c in caps])
        out.append({"budget": cell["labels"]["budget"], "seed": cell["labels"]["seed"], "capability": caps[target],
                    "on_target": float(delta[target]), "off_target": float(np.delete(delta, target).mean())})
    return out


def table(found: list[dict]) -> str:
    budgets = sorted({r["budget"] for r in found})
    picks = sorted({(r["seed"], r["capability"]) for r in found})
    lines = ["one-hot capability per seed: " + ", ".join(f"seed {s} {c}" for s, c in picks), "",
             "| budget | on-target Δs | off-target Δs (mean of 7) | on-target gain per 100k since previous |",
             "|---|---|---|---|"]
    previous = None
    for b in budgets:
        on = [r["on_target"] for r in found if r["budget"] == b]
        off = [r["off_target"] for r in found if r["budget"] == b]
        (mo, co), (mf, cf) = mean_ci(on), mean_ci(off)
        marginal = "" if previous is None else f"{(mo - previous[1]) / ((b - previous[0]) / 100_000):+.3f}"
        lines.append(f"| {b} | {mo:+.2f} ± {co:.2f} | {mf:+.2f} ± {cf:.2f} | {marginal} |")
        previous = (b, mo)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="results")
    data = read_json(Path(parser.parse_args().root) / "budget.json", "budget sweep")
    print(f"from `{data['command']}` · commit `{data['commit']}` · code `{data['code_version']}`\n")
    print(table(rows(data)))


if __name__ == "__main__":
    main()
