"""`read-jax run CONFIG [key.sub=value ...]` and `read-jax run --resume DIR`.

CONFIG is a YAML file of `read_jax.experiment.ExperimentConfig` fields (see
``experiments/*.yaml``); overrides use the same dotted names, e.g.
``loop.budget_tokens=30000 loop.seed=2 policies=[read_ucb,uniform]``.  The experiment
directory (``--out``, default ``runs/<config name>``) keeps every finished stage, so
``--resume DIR`` continues an interrupted experiment where it stopped (from its last finished interval,
however it stopped: kill -9 included); ``--resume DIR key=value`` continues it with a setting changed
explicitly, e.g. a smaller learning rate after a numerical fault.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from read_jax.errors import ReadJaxError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="read-jax run", description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", type=Path, help="experiment YAML")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    parser.add_argument("--resume", type=Path, default=None, help="continue the experiment in this directory")
    parser.add_argument("--out", type=Path, default=None, help="experiment directory (default runs/<config>)")
    args = parser.parse_intermixed_args(argv)  # options may come after the overrides
    if args.config is None and args.resume is None:
        raise ReadJaxError("give either CONFIG or --resume DIR")

    from read_jax.config import load_yaml
    from read_jax.demo import enable_compilation_cache
    from read_jax.experiment import Experiment, ExperimentConfig, format_table

    enable_compilation_cache()
    if args.resume is not None:
        if args.config is not None and "=" in str(args.config):  # `--resume DIR key=value`: an override
            args.overrides.insert(0, str(args.config))
        elif args.config is not None:
            raise ReadJaxError("give either CONFIG or --resume DIR, not both")
        exp = Experiment.resume(args.resume, args.overrides)
        out = args.resume
    else:
        config = load_yaml(ExperimentConfig, args.config, args.overrides)
        out = args.out or Path("runs") / args.config.stem
        exp = Experiment(config, out)
    report = exp.run()
    print(format_table(report))
    print(f"report: {out / 'report.json'}")
    return 0
