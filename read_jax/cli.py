"""`read-jax` command line.

Subcommands are registered in `COMMANDS` and imported lazily, so `read-jax --help`
does not pay for importing jax, and a helper module can add a subcommand without
touching the others.  Benchmarks live in `read_jax/bench/<name>.py`, each exposing
`main(argv) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from read_jax.errors import ReadJaxError

# name -> module with `main(argv: list[str]) -> int`
BENCHMARKS: dict[str, str] = {
    "sampler": "read_jax.bench.sampler",
    "kd-step": "read_jax.bench.kd_step",
    "kd-memory": "read_jax.bench.kd_memory",
    "bandit": "read_jax.bench.bandit",
    "device": "read_jax.bench.device",
}

# name -> (module, help); each module exposes `main(argv: list[str]) -> int`
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("read_jax.demo", "run the main job on the embedded default"),
    "run": ("read_jax.run", "run a configured experiment (CONFIG [key.sub=value ...] | --resume DIR)"),
    "bench": ("read_jax.cli", "benchmarks against the reference implementations"),
    "plan": ("read_jax.plan", "memory / time plan of a teacher-student pair on a mesh, before weights (CONFIG)"),
    "eval": ("read_jax.eval_cli", "score a model or predictions on a benchmark task card (CARDS --task NAME)"),
    "results": ("read_jax.results.cli", "run the paper's experiment suites (run SUITE [--small]); regenerate RESULTS.md"),
    "convert": ("read_jax.convert", "write a model spec (HF dir, org/name, .gguf, alias[#keep=N]) as an HF dir"),
}


def bench_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="read-jax bench")
    parser.add_argument("name", choices=sorted(BENCHMARKS) + ["all"])
    args, rest = parser.parse_known_args(argv)
    names = sorted(BENCHMARKS) if args.name == "all" else [args.name]
    status = 0
    for name in names:
        status |= importlib.import_module(BENCHMARKS[name]).main(rest)
    return status


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: read-jax COMMAND [args]\n\ncommands:\n" + "\n".join(lines))
        if argv and argv[0] not in ("-h", "--help"):
            print(f"read-jax: error: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    if argv[0] in ("demo", "run", "results"):  # long training jobs may opt in to keeping XLA:CPU's step buffers mapped
        from read_jax.distill.cpu import restart_with_retained_malloc

        argv = restart_with_retained_malloc("read_jax.cli", argv)
    name, rest = argv[0], argv[1:]
    try:
        if name == "bench":
            return bench_main(rest)
        module = importlib.import_module(COMMANDS[name][0])
        return int(module.main(rest) or 0)
    except ReadJaxError as err:
        print(f"read-jax {name}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"read-jax {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
