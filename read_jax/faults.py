"""Named fault-injection points, for the kill-anywhere and numerical-fault tests (tests/test_faults.py).

``READ_JAX_KILL_AT=NAME:N`` makes the N-th pass (1-based) through `point(NAME)` kill this process
with SIGKILL, exactly as a preempted VM or ``kill -9`` would: no handler, no flush, no cleanup.
``READ_JAX_NAN_AT=NAME:N`` makes the N-th `nan_here(NAME)` return True (the loop then poisons the
student's weights, so the real train step computes a non-finite loss and gradients).
``READ_JAX_FAULT_TRACE=FILE`` appends every point passed to FILE, which is how a test learns
where the phases of a run are.  With none of them set (always, outside those tests) a point costs
one comparison.  Points: ``generate``, ``train``, ``probe``, ``bandit``, ``dev_eval``, ``checkpoint``
(an orbax write in flight), ``intervention`` (requirement identification), ``policy_done`` and
``write:<file name>`` (between a run file's temporary copy and its rename).
"""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def _target(env: str) -> tuple[str, int] | None:
    spec = os.environ.get(env)
    if not spec:
        return None
    name, _, n = spec.rpartition(":")
    return (name, int(n)) if name and n.isdigit() else (spec, 1)


_KILL, _NAN, _TRACE = _target("READ_JAX_KILL_AT"), _target("READ_JAX_NAN_AT"), os.environ.get("READ_JAX_FAULT_TRACE")
_ACTIVE = bool(_KILL or _NAN or _TRACE)


def _hit(target: tuple[str, int] | None, name: str, key: str) -> bool:
    if target is None or name != target[0]:
        return False
    _counts[key] = _counts.get(key, 0) + 1
    return _counts[key] == target[1]


def point(name: str) -> None:
    """Kill the process here if ``READ_JAX_KILL_AT`` names this pass through ``name``."""
    if not _ACTIVE:
        return
    if _TRACE:
        with open(_TRACE, "a") as f:
            f.write(name + "\n")
    if _hit(_KILL, name, "kill:" + name):
        os.kill(os.getpid(), signal.SIGKILL)


def nan_here(name: str) -> bool:
    """True on the pass through ``name`` that ``READ_JAX_NAN_AT`` names."""
    return _ACTIVE and _hit(_NAN, name, "nan:" + name)
