"""Named fault-injection points, for the kill-anywhere tests (tests/test_faults.py).

``READ_JAX_KILL_AT=NAME:N`` makes the N-th pass (1-based) through `point(NAME)` kill this
process with SIGKILL, exactly as a preempted VM or ``kill -9`` would: no handler, no flush, no
cleanup.  Unset (always, outside those tests), `point` is one dict lookup.  The points mark the
phases of a run: requirement interventions, teacher generation, a training step, probes, the
bandit update, dev evaluation, a checkpoint write in flight, and every run file write
(``write:<file name>``, between the temporary file and the rename).
"""

from __future__ import annotations

import os
import signal

ENV = "READ_JAX_KILL_AT"
_counts: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    spec = os.environ.get(ENV)
    if not spec:
        return None
    name, _, n = spec.rpartition(":")
    return (name, int(n)) if name and n.isdigit() else (spec, 1)


_TARGET = _target()


def point(name: str) -> None:
    """Kill the process here if ``READ_JAX_KILL_AT`` names this point and pass."""
    if _TARGET is None or name != _TARGET[0]:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == _TARGET[1]:
        os.kill(os.getpid(), signal.SIGKILL)
