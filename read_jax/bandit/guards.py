"""Plain-Python guards at the bandit's entry points: non-finite inputs are refused with one line.

Jitted code cannot raise on a value, and one NaN reward poisons a policy for the rest of a run
(the BLR statistics are sums: a NaN never leaves them; the ensemble trains on it).  So every
policy's Python-level ``select`` / ``update`` / ``on_checkpoint`` checks its inputs here *before*
the jitted call and raises `ReadJaxError` naming the input, the value and the caller.

Cost.  A Python float / int or a numpy scalar / array is checked on the host: no device sync, so
the ReAD loop should pass its reward as the Python float it already has.  A concrete
``jax.Array`` has to be read back (one small device-to-host copy, which waits for the value to be
computed).  A tracer (the policy called inside ``jit`` / ``lax.scan`` / ``vmap``, as the simulator
does) cannot be inspected: it passes unchecked, and the jitted update clips what it can
(`REWARD_LIMIT`; a NaN made inside a traced program is the program's own bug).

The range the bandit guarantees (tested in tests/test_bandit_properties.py):

* rewards: any finite value.  |R| <= `REWARD_LIMIT` = 1e15 is used as given (rounded to float32);
  beyond it the ReAD update clips to +-1e15.  Why: the BLR keeps float32 sums of squared targets
  (y = R - first reward, |y| <= 2e15, y^2 <= 4e30), which stay finite for ~4e7 updates at the
  clip; an unclipped 2e19 overflows y^2 at the first update.  A proxy reward is ~1e-2 in utility
  units, so a reward past 1e15 is a scaling bug (e.g. a calibration slope from nearly equal
  proxies); clipping keeps the decision finite instead of killing a long run.
* contexts: every entry finite; tested for |x| <= `CONTEXT_LIMIT` = 1e6 with r, w_prev on the
  simplex and b in [0, 1] (by design each block is O(1): s and ds are per-token log-likelihoods
  or accuracies, tens at most).  Larger finite entries are accepted but not guaranteed: the BLR's
  float32 X^T X sums x^2, which overflows near |x| ~ 1e19 / sqrt(updates) (seen at 1e19).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from read_jax.errors import ReadJaxError

REWARD_LIMIT = 1e15
CONTEXT_LIMIT = 1e6


def _is_tracer(value: Any) -> bool:
    return isinstance(value, jax.core.Tracer)


def _host_scalar(value: Any) -> float | None:
    """``value`` as a Python float without a device sync where possible; None for a tracer.

    Raises TypeError for anything but one real number (a string, None, a complex or a longer array).
    """
    if _is_tracer(value):
        return None
    if isinstance(value, (numbers.Real, np.bool_, np.integer, np.floating)):
        return float(value)
    arr = np.asarray(value)  # a jax.Array is read back here (the one sync)
    if arr.dtype.kind not in "biuf" or arr.size != 1:
        raise TypeError(f"{type(value).__name__} of dtype {arr.dtype} and shape {arr.shape}")
    return float(arr.reshape(()))


def check_scalar(value: Any, name: str, where: str, clip: float | None = None) -> Any:
    """Raise `ReadJaxError` if ``value`` (float / int / numpy / jax scalar) is NaN or infinite.

    Returns a float32 ``jax.Array`` for a host value (so the jitted call sees the same signature as
    the loop's ``jnp.asarray(v, jnp.float32)`` and does not recompile), clipped to +-``clip`` if
    given, and ``value`` itself for a ``jax.Array`` or tracer.
    """
    try:
        v = _host_scalar(value)
    except (TypeError, ValueError) as err:
        raise ReadJaxError(f"{where}: {name} must be one real number, got {err}") from None
    if v is not None and not math.isfinite(v):
        raise ReadJaxError(f"{where}: {name} is {v} (not finite); the bandit needs a finite {name}")
    if isinstance(value, jax.Array):
        return value
    if clip is not None:
        v = min(max(v, -clip), clip)
    return jnp.asarray(v, jnp.float32)


def check_reward(value: Any, where: str) -> Any:
    """`check_scalar` for a reward: NaN / +-inf raise ``ReadJaxError("<where>: reward is nan ...")``.

    A finite host reward past +-`REWARD_LIMIT` is clipped here (before the float32 conversion,
    which would overflow past 3.4e38); the jitted ReAD update clips array rewards the same way.
    """
    return check_scalar(value, "reward", where, clip=REWARD_LIMIT)


def check_vector(value: Any, name: str, where: str) -> Any:
    """Raise `ReadJaxError` if any entry of ``value`` is NaN or infinite (tracers pass unchecked).

    Returns a float32 ``jax.Array`` for host input, ``value`` itself for a ``jax.Array`` / tracer.
    """
    if _is_tracer(value):
        return value
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ReadJaxError(f"{where}: {name} must be a real array, got dtype {arr.dtype}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        raise ReadJaxError(f"{where}: {name} has {int(bad.sum())} non-finite entr"
                           f"{'y' if bad.sum() == 1 else 'ies'} (first: {float(arr.reshape(-1)[i])} at index {i} "
                           f"of {arr.size}); the bandit needs a finite {name}")
    if isinstance(value, jax.Array):
        return value
    return jnp.asarray(arr.astype(np.float32, copy=False))


def check_context(value: Any, where: str) -> Any:
    """`check_vector` for a context x = [r ; s ; b ; w_prev ; ds_prev]."""
    return check_vector(value, "context", where)
