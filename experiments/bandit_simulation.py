"""Compare every allocation policy on the synthetic capability world: regret plot + JSON summary.

    python experiments/bandit_simulation.py --out runs/bandit_sim [--seeds 32] [--steps 20]

Each seed draws its own world (transfer matrix, start profile, task requirement r) and every policy
runs on the same seeds (paired).  Regret is the noise-free proxy reward lost against the best
candidate action at each state (per-step oracle); "utility gain" is r^T s_T - r^T s_0 on the true
profile.  ``best_fixed`` is the paper's best fixed grid allocation, picked in hindsight on these
same seeds (an oracle upper bound for fixed schedules, not a deployable policy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

from read_jax.bandit import make_policy
from read_jax.bandit.simulator import SimConfig, best_fixed_in_hindsight, candidates, make_worlds, run_seeds

DEFAULT_POLICIES = (
    "read_ucb", "read_thompson", "read_ensemble", "greedy", "uniform", "task_static", "one_hot",
    "random", "odm", "doremi",
)


def _summary(res, seconds: float) -> dict:
    final = np.asarray(res.utility[:, -1], np.float64)
    gain = final - np.asarray(res.utility0, np.float64)
    regret = np.asarray(res.regret[:, -1], np.float64)
    n = len(gain)
    se = lambda a: float(a.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0  # noqa: E731
    return {
        "final_utility_mean": float(final.mean()),
        "gain_mean": float(gain.mean()), "gain_stderr": se(gain),
        "cumulative_regret_mean": float(regret.mean()), "cumulative_regret_stderr": se(regret),
        "seconds_incl_compile": seconds,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output directory (PNG + JSON)")
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="decisions per run (paper: ~20)")
    parser.add_argument("--n-caps", type=int, default=8)
    parser.add_argument("--policies", default=",".join(DEFAULT_POLICIES), help="comma-separated names")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = SimConfig(n_caps=args.n_caps, n_steps=args.steps, checkpoint_every=max(1, args.steps // 10))
    key = jax.random.PRNGKey(args.seed)
    results, summary = {}, {}
    for name in [p for p in args.policies.split(",") if p]:
        t0 = time.perf_counter()
        res = run_seeds(make_policy(name, n_caps=cfg.n_caps), key, args.seeds, cfg)
        jax.block_until_ready(res.utility)
        results[name] = res
        summary[name] = _summary(res, time.perf_counter() - t0)
        print(f"{name:14s} gain {summary[name]['gain_mean']:.4f} +- {summary[name]['gain_stderr']:.4f}  "
              f"regret {summary[name]['cumulative_regret_mean']:.4f}  ({summary[name]['seconds_incl_compile']:.1f}s)",
              flush=True)
    t0 = time.perf_counter()
    best, res = best_fixed_in_hindsight(key, args.seeds, cfg)
    results["best_fixed"] = res
    summary["best_fixed"] = _summary(res, time.perf_counter() - t0)
    worlds, _ = make_worlds(key, args.seeds, cfg)
    example = np.asarray(candidates(jax.tree.map(lambda a: a[0], worlds), cfg))[best]
    summary["best_fixed"]["candidate_index"] = best
    summary["best_fixed"]["allocation_seed0"] = [round(float(v), 4) for v in example]
    print(f"best_fixed[{best}] gain {summary['best_fixed']['gain_mean']:.4f}  "
          f"regret {summary['best_fixed']['cumulative_regret_mean']:.4f}")

    if "read_ucb" in results:  # paired differences against the project default
        ref = np.asarray(results["read_ucb"].utility[:, -1], np.float64)
        for name, res in results.items():
            d = ref - np.asarray(res.utility[:, -1], np.float64)
            summary[name]["paired_read_ucb_minus_this"] = {
                "mean": float(d.mean()), "stderr": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0,
            }

    fig, (ax_r, ax_u) = plt.subplots(1, 2, figsize=(13, 5))
    steps = np.arange(1, cfg.n_steps + 1)
    order = sorted(results, key=lambda n: summary[n]["cumulative_regret_mean"])
    palette = {"read_ucb": "#d62728", "read_thompson": "#ff7f0e", "read_ensemble": "#8c564b", "greedy": "#1f77b4",
               "task_static": "#2ca02c", "best_fixed": "#000000", "one_hot": "#9467bd", "random": "#7f7f7f",
               "uniform": "#17becf", "odm": "#bcbd22", "doremi": "#e377c2"}
    for i, name in enumerate(order):
        res = results[name]
        style = dict(color=palette.get(name, plt.get_cmap("tab10")(i % 10)),
                     lw=2.4 if name.startswith("read") else 1.4,
                     ls="--" if name in ("best_fixed", "odm") else "-")
        reg = np.asarray(res.regret)
        m, s = reg.mean(0), reg.std(0, ddof=1) / np.sqrt(reg.shape[0])
        ax_r.plot(steps, m, label=name, **style)
        ax_r.fill_between(steps, m - s, m + s, color=style["color"], alpha=0.15)
        gain = np.asarray(res.utility) - np.asarray(res.utility0)[:, None]
        m, s = gain.mean(0), gain.std(0, ddof=1) / np.sqrt(gain.shape[0])
        ax_u.plot(steps, m, label=name, **style)
        ax_u.fill_between(steps, m - s, m + s, color=style["color"], alpha=0.15)
    ax_r.set(xlabel="decision step", ylabel="cumulative regret (vs best candidate per step)",
             title=f"Cumulative regret, {args.seeds} seeds, |C| = {cfg.n_caps}")
    ax_u.set(xlabel="decision step", ylabel="task utility gain r^T(s_t - s_0)", title="Utility gain (mean +- s.e.)")
    ax_r.legend(fontsize=8, ncol=2)
    ax_u.legend(fontsize=8, ncol=2)
    for ax in (ax_r, ax_u):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    png = out / "bandit_regret.png"
    fig.savefig(png, dpi=120)
    payload = {
        "config": {**{k: getattr(cfg, k) for k in cfg.__dataclass_fields__}, "seeds": args.seeds, "seed": args.seed},
        "policies": summary,
        "machine": {"python": platform.python_version(), "jax": jax.__version__, "cpu_count": os.cpu_count(),
                    "backend": jax.default_backend()},
    }
    (out / "bandit_summary.json").write_text(json.dumps(payload, indent=2))
    print(f"wrote {png} and {out / 'bandit_summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
