"""The proxy reward and the two schedules that tie it to dev utility (method.md §5).

    R_t = r^T ds_t - beta * sum_{c in C_ess} r_c max(0, -ds_{t,c}) - lam * cost_t

* r^T ds: progress on what the task needs (ds = change of the probe profile over the step);
* the spillover term penalises *losing* ground on the top-k task-essential capabilities, the
  negative transfer the paper's Finding 1 documents;
* lam * cost charges the tokens the step consumed (artifact: beta = 0.5, lam = 1e-5 per token).

The proxy is cheap (probes) but only a proxy; at dev checkpoints the loop measures real utility and

* `calibrate` fits utility ~ slope * cumulative_proxy + intercept (least squares); the artifact
  uses the slope as a reward scale when it is positive (rewards in utility units);
* `decay_kappa` shrinks the exploration weight (x 0.7) when dev utility did not improve: a stalled
  run should exploit what it knows rather than keep exploring.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from read_jax.bandit.actions import ARTIFACT_TOP_K, spillover_jax

Array = jax.Array

ARTIFACT_BETA = 0.5
ARTIFACT_LAMBDA = 1e-5  # per token
ARTIFACT_KAPPA_DECAY = 0.7


def proxy_reward(
    r: Array,
    delta_s: Array,
    cost: Array | float,
    beta: float = ARTIFACT_BETA,
    lam: float = ARTIFACT_LAMBDA,
    top_k: int = ARTIFACT_TOP_K,
) -> Array:
    """R = r^T ds - beta * spillover(r, ds, top_k) - lam * cost (jittable)."""
    r = jnp.asarray(r, jnp.float32)
    delta_s = jnp.asarray(delta_s, jnp.float32)
    return jnp.dot(r, delta_s) - beta * spillover_jax(r, delta_s, top_k) - lam * jnp.asarray(cost, jnp.float32)


def decay_kappa(
    kappa: Array | float,
    best_dev: Array | float,
    dev_utility: Array | float,
    factor: float = ARTIFACT_KAPPA_DECAY,
    tol: float = 0.0,
) -> tuple[Array, Array]:
    """(new kappa, new best dev utility): kappa *= factor unless dev utility beat the best so far.

    Compared with the best so far (not only the last checkpoint) so a noisy dip-and-recover does
    not count as progress.  Start with best_dev = -inf (ReAD states use the lowest finite float32,
    so every leaf stays finite): the first checkpoint never shrinks kappa.
    """
    kappa = jnp.asarray(kappa, jnp.float32)
    best_dev = jnp.asarray(best_dev, jnp.float32)
    dev = jnp.asarray(dev_utility, jnp.float32)
    improved = dev > best_dev + tol
    return jnp.where(improved, kappa, kappa * factor), jnp.maximum(best_dev, dev)


@dataclasses.dataclass(frozen=True)
class Calibration:
    """utility ~ slope * cumulative proxy reward + intercept; reward_scale = slope if > 0 else 1."""

    slope: float
    intercept: float
    reward_scale: float
    n_points: int


def calibrate(cumulative_proxy: Sequence[float], dev_utility: Sequence[float]) -> Calibration:
    """Least-squares affine fit of dev utility on cumulative proxy reward (numpy, float64).

    With fewer than two points, or no spread in the proxy, the slope is undefined: slope 0,
    intercept = mean utility, and the reward scale falls back to 1 (rewards left as they are).
    """
    x = np.asarray(cumulative_proxy, np.float64).reshape(-1)
    y = np.asarray(dev_utility, np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"{x.shape[0]} proxy values for {y.shape[0]} utilities")
    n = int(x.shape[0])
    if n == 0:
        return Calibration(slope=0.0, intercept=0.0, reward_scale=1.0, n_points=0)
    xc = x - x.mean()
    sxx = float(xc @ xc)
    if n < 2 or sxx <= 1e-300:
        return Calibration(slope=0.0, intercept=float(y.mean()), reward_scale=1.0, n_points=n)
    slope = float(xc @ (y - y.mean()) / sxx)
    intercept = float(y.mean() - slope * x.mean())
    return Calibration(slope=slope, intercept=intercept, reward_scale=slope if slope > 0 else 1.0, n_points=n)
