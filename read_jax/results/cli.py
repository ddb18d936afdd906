"""`read-jax results [--root DIR]` regenerates RESULTS.md; `read-jax results run SUITE [--small]` runs a suite."""

from __future__ import annotations

import argparse

from read_jax.errors import ReadJaxError


def main(argv: list[str]) -> int:
    from read_jax.results.suites import SUITES

    parser = argparse.ArgumentParser(prog="read-jax results", description=__doc__)
    parser.add_argument("action", nargs="?", choices=["run", "report"], default="report")
    parser.add_argument("suite", nargs="?", help=f"with run: one of {', '.join(SUITES)}")
    parser.add_argument("--small", action="store_true", help="the small variant (minutes, not hours)")
    parser.add_argument("--root", default="results", help="where suite files and cell directories live")
    parser.add_argument("--output", default="RESULTS.md")
    args = parser.parse_args(argv)
    if args.action == "run":
        if args.suite not in SUITES:
            raise ReadJaxError(f"results run: choose a suite: {', '.join(SUITES)} (got {args.suite!r})")
        from read_jax.demo import enable_compilation_cache
        from read_jax.results.runner import run_suite

        enable_compilation_cache()
        print(f"wrote {run_suite(args.suite, args.small, args.root)}")
    from read_jax.results.report import write_results

    print(f"wrote {write_results(args.root, args.output)}")
    return 0
