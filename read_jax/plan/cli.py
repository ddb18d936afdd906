"""The `read-jax plan` command: read the plan file, make the fake devices, compile and report."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from read_jax.accelerators import accelerator
from read_jax.plan.compile import compile_plan, resolve
from read_jax.plan.reporting import format_report, report
from read_jax.plan.spec import _with_device_count, cpu_devices_ready, load_spec, resolve_mesh


def plan_in_child(argv: list[str], n: int) -> int:
    """Plan in a fresh process with ``n`` fake CPU devices (jax already runs here with fewer)."""
    env = dict(os.environ, XLA_FLAGS=_with_device_count(os.environ.get("XLA_FLAGS", ""), n), JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "read_jax.cli", "plan", *argv], env=env).returncode


# ----------------------------------------------------------------------------- command
def main(argv: list[str]) -> int:
    doc = sys.modules[__package__].__doc__  # the package's docstring describes the command
    parser = argparse.ArgumentParser(prog="read-jax plan", description=doc.split("\n")[0])
    parser.add_argument("config", help="plan file (experiments/plans/*.yaml)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--accelerator", help="chip of the table (v4, v5e, v5p, v6e, a100, h100, h200)")
    parser.add_argument("--devices", type=int, help="number of chips (the mesh's -1 axis absorbs it)")
    args = parser.parse_args(argv)
    spec = load_spec(args.config)
    chip = accelerator(args.accelerator if args.accelerator else spec.accelerator,
                       "--accelerator" if args.accelerator else f"{args.config}: accelerator")
    devices, mesh = resolve_mesh(spec, args.config, args.devices)
    if not cpu_devices_ready(devices):
        return plan_in_child(argv, devices)
    plan = resolve(spec, args.config, devices, mesh, chip)
    result = report(plan, compile_plan(plan))
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0
