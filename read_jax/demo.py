"""`read-jax demo [--quick] [--out DIR]`: ReAD end to end on the embedded synthetic world.

On one composite task and one budget it runs ReAD (BLR-UCB) and the uniform and one-hot
baselines at equal budget, with a real teacher (a decoder trained from scratch on the
world, shipped with the package or trained on first use), real generation, real training
and probes; prints a table and writes ``report.json``, a ``history.jsonl`` per policy and
plots to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from read_jax.loop import BanditConfig, GenerationConfig, LoopConfig, TrainConfig

TASK = "word_problem"

FULL = LoopConfig(
    task=TASK, budget_tokens=60_000, intervals=12, probes_per_capability=16, dev_every=0.25,
    generation=GenerationConfig(max_new_tokens=16, prompts_per_call=64),
    train=TrainConfig(rows=32, learning_rate=2e-3),
    bandit=BanditConfig(),
)
QUICK = dataclasses.replace(FULL, budget_tokens=24_000, intervals=6, probes_per_capability=8, dev_every=0.5)


def enable_compilation_cache() -> None:
    """Persist XLA executables across processes: policies and reruns reuse compiled programs."""
    import os

    import jax

    path = Path(os.environ.get("READ_JAX_CACHE", Path.home() / ".cache" / "read_jax")) / "xla"
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def demo_config(quick: bool, seed: int, policies: tuple[str, ...] = ("read_ucb", "uniform", "one_hot")):
    from read_jax.experiment import ExperimentConfig

    loop = dataclasses.replace(QUICK if quick else FULL, seed=seed)
    return ExperimentConfig(loop=loop, policies=policies, requirement="interventions",
                            interventions=4 if quick else 6, intervention_tokens=3_000)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="read-jax demo", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller budget and fewer steps (a few minutes)")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory (default runs/demo)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    enable_compilation_cache()
    from read_jax.experiment import Experiment, format_table

    out = args.out / ("quick" if args.quick else "full") / f"seed{args.seed}"
    t0 = time.perf_counter()
    print(f"read-jax demo: task {TASK!r}, policies read (BLR-UCB), uniform, one_hot; writing to {out}")
    exp = Experiment(demo_config(args.quick, args.seed), out)
    req = exp.requirement()
    print(f"requirement ({req['mode']}, {req['seconds']:.0f} s): estimated "
          + " ".join(f"{v:.2f}" for v in req["estimated"]) + "\n" + " " * 31 + "true "
          + " ".join(f"{v:.2f}" for v in req["true"]))
    report = exp.run()
    print(format_table(report))
    print(f"report: {out / 'report.json'}; plots: " + ", ".join(Path(p).name for p in report["plots"]))
    print(f"total wall time {time.perf_counter() - t0:.0f} s")
    return 0
