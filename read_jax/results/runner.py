"""Run a suite's missing cells, each cached by (config, code) and resumable; collect one JSON per suite.

A cell's directory is ``ROOT/cells/<key>`` with ``key = sha256(config, code version)``: a change
to any file of the package (code, templates, shipped checkpoints) gives new keys, so results of
other code are never mixed in, and a finished cell is never recomputed.  An interrupted cell
resumes where it stopped (`Experiment.resume` semantics: same directory, same config).
``ROOT/<suite>[-small].json`` holds what the report needs from every cell, plus the commit and
the command that made it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import read_jax
from read_jax.config import to_dict
from read_jax.results.suites import SUITES, Cell
from read_jax.run_files import make_dir, read_json, write_json

PACKAGE_SUFFIXES = (".py", ".json", ".jsonl", ".yaml", ".safetensors")


def code_version() -> str:
    """A hash of every file of the installed package that can change a result."""
    root = Path(read_jax.__file__).parent
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in PACKAGE_SUFFIXES and "__pycache__" not in p.parts):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(read_jax.__file__).parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], capture_output=True, text=True,
                               timeout=10, cwd=Path(read_jax.__file__).parent).stdout.strip()
        return out.stdout.strip() + ("+uncommitted" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cell_key(cell: Cell, version: str) -> str:
    blob = json.dumps({"config": to_dict(cell.config), "code": version}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    """What the tables read from a cell's report (the rest stays in the cell's directory)."""
    keep = ("utility", "dev_utility_final", "tokens_used", "profile", "initial_profile", "phase_seconds",
            "overhead_share", "search")
    return {"capabilities": report["capabilities"], "initial": report["initial"],
            "requirement": {k: report["requirement"].get(k) for k in ("estimated", "true", "metrics", "tokens")},
            "identifier": (report["requirement"].get("identifier") or {}).get("leave_one_task_out_mean"),
            "identifier_per_task": (report["requirement"].get("identifier") or {}).get("leave_one_task_out"),
            "teacher_utility": report["teacher"].get("utility"), "budget": report["budget"],
            "policies": {name: {k: p.get(k) for k in keep} for name, p in report["policies"].items()}}


def run_suite(name: str, small: bool = False, root: str | Path = "results", progress: bool = True) -> Path:
    from read_jax.experiment import Experiment

    suite = SUITES[name]
    root = make_dir(root)
    cells = suite.build(small, str(root))
    version, tick = code_version(), time.perf_counter()
    rows = []
    for i, cell in enumerate(cells):
        key = cell_key(cell, version)
        out = root / "cells" / key
        if not (out / "report.json").exists():
            if progress:
                print(f"[{name}] cell {i + 1}/{len(cells)} {cell.labels} -> {out}", file=sys.stderr, flush=True)
            Experiment(cell.config, out, progress=progress).run()
        rows.append({"labels": cell.labels, "key": key, **_summary(read_json(out / "report.json", "report"))})
    path = root / f"{name}{'-small' if small else ''}.json"
    write_json(path, {"suite": name, "title": suite.title, "small": small, "code_version": version,
                      "commit": git_commit(), "command": f"read-jax results run {name}{' --small' if small else ''}",
                      "seconds_this_invocation": time.perf_counter() - tick, "cells": rows})
    return path
