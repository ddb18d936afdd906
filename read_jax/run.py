"""`read-jax run CONFIG [key.sub=value ...]` and `read-jax run --resume DIR`.

CONFIG is a YAML file of `read_jax.experiment.ExperimentConfig` fields (see
``experiments/*.yaml``); overrides use the same dotted names, e.g.
``loop.budget_tokens=30000 loop.seed=2 policies=[read_ucb,uniform]``.  The experiment
directory (``--out``, default ``runs/<config name>``) keeps every finished stage, so
``--resume DIR`` continues an interrupted experiment where it stopped (from its last finished interval,
however it stopped: kill -9 included); ``--resume DIR key=value`` continues it with a setting changed
explicitly, e.g. a smaller learning rate after a numerical fault.

Multi-host: start the same command on every host (process) with ``--coordinator HOST:PORT
--num-processes N --process-id I`` (or ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` /
``JAX_PROCESS_ID``, or ``READ_JAX_DISTRIBUTED=1`` where JAX detects the cluster itself, e.g. a
Cloud TPU slice); the processes join one JAX run (`read_jax.distributed`) on a mesh over all their
devices (config ``mesh``), and only process 0 writes files besides the orbax checkpoints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from read_jax.errors import ReadJaxError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="read-jax run", description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", type=Path, help="experiment YAML")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    parser.add_argument("--resume", default=None, help="continue the experiment in this directory (or gs:// URL)")
    parser.add_argument("--out", default=None, help="experiment directory or gs:// URL (default runs/<config>)")
    parser.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                        help="multi-process run: process 0's address (jax.distributed)")
    parser.add_argument("--num-processes", type=int, default=None, help="multi-process run: number of processes")
    parser.add_argument("--process-id", type=int, default=None, help="multi-process run: this process's index")
    args = parser.parse_intermixed_args(argv)  # options may come after the overrides
    if args.config is None and args.resume is None:
        raise ReadJaxError("give either CONFIG or --resume DIR")

    from read_jax.distributed import initialize

    initialize(args.coordinator, args.num_processes, args.process_id)  # before anything starts a JAX backend

    from read_jax.config import load_yaml
    from read_jax.run_files import as_path
    from read_jax.demo import enable_compilation_cache
    from read_jax.experiment import Experiment, ExperimentConfig, format_table

    enable_compilation_cache()
    if args.resume is not None:
        if args.config is not None and "=" in str(args.config):  # `--resume DIR key=value`: an override
            args.overrides.insert(0, str(args.config))
        elif args.config is not None:
            raise ReadJaxError("give either CONFIG or --resume DIR, not both")
        out = as_path(args.resume)
        exp = Experiment.resume(out, args.overrides)
    else:
        config = load_yaml(ExperimentConfig, args.config, args.overrides)
        out = as_path(args.out) if args.out else Path("runs") / Path(args.config).stem
        exp = Experiment(config, out)
    report = exp.run()
    print(format_table(report))
    print(f"report: {out / 'report.json'}")
    return 0
