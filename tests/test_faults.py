"""Kill anywhere, resume exactly: SIGKILL a real `read-jax run` at named points and resume it.

A tiny experiment (requirement by interventions + two policies, tiny random models on the
synthetic world) runs once uninterrupted as the reference, recording every fault point it passes
(`read_jax.faults`).  Each case then runs the same experiment in a fresh directory, kills it with
SIGKILL on the chosen pass through one point, resumes it with `read-jax run --resume DIR`, and
requires the result to equal the reference: history, report and requirement (wall-clock fields
aside), and every array of every policy's last checkpoint (student parameters, optimizer state,
bandit state, RNG key) bit for bit, plus the budget ledger.  The fast cases run in `make test`;
``-m slow`` runs all twelve (README: "What survives a kill").

Also here: numerical faults (a non-finite loss stops the run, exit 2, the last good checkpoint
intact, `--resume DIR key=value` continues) and the run-directory lock.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp
import pytest

from tiny_world import save_tiny_pair

CONFIG = """\
source: world
teacher: {teacher}
student: {student}
requirement: interventions
interventions: 2
intervention_tokens: 300
policies: [read_ucb, uniform]
eval_split: dev
loop:
  task: dev_assistant
  budget_tokens: 1200
  intervals: 3
  probes_per_capability: 3
  dev_every: 0.5
  generation: {{max_new_tokens: 8, prompts_per_call: 16, keep_unfinished: true}}
  train: {{rows: 8, optimizer: {{warmup_steps: 2}}}}
"""

# wall-clock fields: the only things allowed to differ between an interrupted and a clean run
CLOCK_KEYS = {"timing", "wall_seconds", "phase_seconds", "overhead_share", "seconds", "plots"}


def _cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "READ_JAX_MALLOC": "default", **(env or {})}
    for name in ("READ_JAX_KILL_AT", "READ_JAX_NAN_AT", "READ_JAX_FAULT_TRACE"):
        if name not in (env or {}):
            full.pop(name, None)
    return subprocess.run([sys.executable, "-m", "read_jax.cli", "run", *args], env=full,
                          capture_output=True, text=True, timeout=600)


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in CLOCK_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _checkpoint_arrays(run_dir: Path) -> tuple[int, dict[str, np.ndarray], dict]:
    """The latest checkpoint of a policy run as {path: array} (restored without targets) and its meta."""
    manager = ocp.CheckpointManager(run_dir / "checkpoints")
    step = manager.latest_step()
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(),
                                                             meta=ocp.args.JsonRestore()))
    manager.close()
    import jax

    flat = {jax.tree_util.keystr(path): np.asarray(leaf)
            for path, leaf in jax.tree_util.tree_leaves_with_path(restored["state"])}
    return step, flat, dict(restored["meta"])


def _outcome(out: Path) -> dict:
    """Everything a run computes, wall-clock fields aside."""
    result = {"report": _strip(json.loads((out / "report.json").read_text())),
              "requirement": _strip(json.loads((out / "requirement.json").read_text()))}
    for run_dir in sorted((out / "runs").iterdir()):
        lines = (run_dir / "history.jsonl").read_text().splitlines()
        step, arrays, meta = _checkpoint_arrays(run_dir)
        result[run_dir.name] = {"history": [_strip(json.loads(line)) for line in lines], "step": step,
                                "arrays": arrays, "meta": _strip(meta)}
    return result


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key in ("report", "requirement"):
            assert a[key] == b[key], key
            continue
        x, y = a[key], b[key]
        assert x["history"] == y["history"], f"{key}: history differs"
        assert x["step"] == y["step"] and x["meta"] == y["meta"], f"{key}: budget ledger / loop state differs"
        assert x["arrays"].keys() == y["arrays"].keys()
        for name in x["arrays"]:
            assert np.array_equal(x["arrays"][name], y["arrays"][name]), f"{key}: {name} differs"


def _leftovers(out: Path) -> list[Path]:
    """Temporary files, a held lock or an unfinished orbax step left in a finished experiment."""
    return [p for p in out.rglob("*") if p.name.endswith(".tmp") or p.name == "run.lock"
            or "orbax-checkpoint-tmp" in p.name]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    teacher, student = save_tiny_pair(root)
    config = root / "tiny.yaml"
    config.write_text(CONFIG.format(teacher=teacher, student=student))
    trace = root / "trace.txt"
    done = _cli([str(config), "--out", str(root / "reference")], {"READ_JAX_FAULT_TRACE": str(trace)})
    assert done.returncode == 0, done.stderr[-3000:]
    return {"root": root, "config": config, "trace": trace.read_text().split(),
            "outcome": _outcome(root / "reference")}


def _pass_number(trace: list[str], name: str, after: str | None = None, nth: int = 1) -> int:
    """Which pass through ``name`` (1-based count over the whole run) is the ``nth`` one after the
    first pass through ``after``; the kill spec is ``name:<that number>``."""
    start = trace.index(after) if after else -1
    seen = [i for i, p in enumerate(trace) if p == name]
    later = [i for i in seen if i > start]
    assert len(later) >= nth, f"the reference run passes {name!r} only {len(later)} times after {after!r}"
    return seen.index(later[nth - 1]) + 1


# (case id, point, first pass after this point, which pass after it); together they cover every phase
CASES = [
    ("requirement-train", "train", None, 1),                        # inside the first intervention
    ("requirement-between-interventions", "intervention", None, 1),
    ("requirement-json-write", "write:requirement.json", None, 1),
    ("generation", "generate", "write:requirement.json", 2),
    ("training", "train", "write:requirement.json", 3),
    ("probes", "probe", "write:requirement.json", 1),
    ("bandit-update", "bandit", "write:requirement.json", 2),
    ("dev-eval", "dev_eval", "write:requirement.json", 1),
    ("orbax-write-in-flight", "checkpoint", "write:requirement.json", 2),
    ("history-write", "write:history.jsonl", "write:requirement.json", 3),
    ("between-policies", "policy_done", None, 1),
    ("second-policy-orbax-write", "checkpoint", "policy_done", 1),
    ("report-write", "write:report.json", None, 1),
]
FAST = {"requirement-train", "orbax-write-in-flight", "report-write"}


@pytest.mark.parametrize("case,point,after,nth", [
    pytest.param(*c, marks=() if c[0] in FAST else pytest.mark.slow, id=c[0]) for c in CASES])
def test_killed_run_resumes_to_the_same_result(reference, tmp_path, case, point, after, nth):
    out = tmp_path / "run"
    spec = f"{point}:{_pass_number(reference['trace'], point, after, nth)}"
    killed = _cli([str(reference["config"]), "--out", str(out)], {"READ_JAX_KILL_AT": spec})
    assert killed.returncode == -signal.SIGKILL, f"not killed at {spec}: {killed.stderr[-2000:]}"
    resumed = _cli(["--resume", str(out)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "taking over" in resumed.stderr  # the dead run's lock, with a message
    _assert_same(_outcome(out), reference["outcome"])
    assert _leftovers(out) == []


def test_second_run_on_a_directory_is_refused(reference, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "experiment.json").write_text(json.dumps({}))
    # a live owner: this test process
    (out / "run.lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    before = {p: p.read_bytes() for p in out.rglob("*")}
    done = _cli(["--resume", str(out)])
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "another read-jax run" in lines[0] and str(out) in lines[0], done.stderr
    assert {p: p.read_bytes() for p in out.rglob("*")} == before


def test_resume_of_another_version_is_refused(reference, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "experiment.json").write_text((reference["root"] / "reference" / "experiment.json").read_text())
    (out / "version.json").write_text(json.dumps({"read_jax": "0.0.1"}))
    done = _cli(["--resume", str(out)])
    assert done.returncode == 2 and "written by read_jax 0.0.1" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_nan_stops_the_run_and_resume_with_a_change_continues(reference, tmp_path):
    out = tmp_path / "run"
    policy_train = _pass_number(reference["trace"], "train", "write:requirement.json", 4)  # interval 1 or later
    done = _cli([str(reference["config"]), "--out", str(out)], {"READ_JAX_NAN_AT": f"train:{policy_train}"})
    assert done.returncode == 2, done.stderr[-2000:]
    line = done.stderr.strip().splitlines()[-1]
    assert "loss is nan" in line and "interval" in line and "optimizer step" in line and "batch" in line, line
    history = (out / "runs" / "read_ucb" / "history.jsonl").read_text().splitlines()
    step, arrays, meta = _checkpoint_arrays(out / "runs" / "read_ucb")
    assert step == len(history) == meta["t"] >= 1  # the last good interval is on disk, nothing after it
    assert all(np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == "f")
    assert not (out / "run.lock").exists()
    resumed = _cli(["--resume", str(out), "loop.train.optimizer.learning_rate=0.0005"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "loop.train.optimizer.learning_rate changed from 0.001 to 0.0005" in resumed.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["loop"]["train"]["optimizer"]["learning_rate"] == 0.0005
    assert report["policies"]["read"]["intervals"] == 3
