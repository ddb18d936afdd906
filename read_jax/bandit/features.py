"""The bandit's context layout and the feature map phi(context, allocation).

Context (method.md §5):  x = [r ; s ; b ; w_prev ; ds_prev]
  r        [C]  task requirement vector (simplex)
  s        [C]  current probe profile of the student
  b        [1]  remaining budget as a *fraction* of the total (keep every block O(1))
  w_prev   [C]  previous allocation      } rho: a short record of recent allocations and gains
  ds_prev  [C]  previous profile change  } (zeros at the first step; the artifact omits rho)

Why a feature map at all.  A linear model on the plain concatenation [x ; w] scores an action as
theta_x^T x + theta_w^T w: the context adds the same constant to every action, so argmax_w never
depends on x.  The bandit would pick the same allocation for a math task and a code task.  The
reward of an allocation *does* depend on the context (R ~ sum_i g(w_i) (T r)_i: which capability
pays off depends on r, on how saturated s_i already is, and on the remaining budget), so phi
multiplies allocation terms by context terms:

    phi(x, w) = vec( h(w) (x) [1 ; x] )          interaction="full"
    h(w)      = [w ; sqrt(w)]                     curvature=("linear", "sqrt")

* ``h(w) (x) 1`` are the main effects of the allocation.  Mixing a linear and a concave basis lets
  the model express diminishing returns (a w_i + b sqrt(w_i) with b > 0 is concave), so an
  interior mixture can beat every one-hot, as Finding 2 of the paper says it does.
* ``h(w) (x) x`` are the interactions: e.g. the coefficient of sqrt(w_i) x r_j learns the transfer
  from training capability i to requirement j, of w_i x s_i how saturation lowers the gain.

``interaction="diagonal"`` keeps only the aligned products (h(w) * r, h(w) * s, h(w) * w_prev,
h(w) * ds_prev elementwise, h(w) * b): ~6 |C| features per basis instead of |C| (|x| + 1), which
is what ~20 decisions per run can actually fit.  ``interaction="none"`` is the plain
concatenation [h(w) ; x], kept as the context-blind counter-example.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp

Array = jax.Array

CURVATURES = ("linear", "sqrt", "square")
Interaction = Literal["full", "diagonal", "none"]


@dataclasses.dataclass(frozen=True)
class ContextLayout:
    """Where each block of the standard context lives (policies slice r and s out of it)."""

    n_caps: int

    @property
    def dim(self) -> int:
        return 4 * self.n_caps + 1

    @property
    def r(self) -> slice:
        return slice(0, self.n_caps)

    @property
    def s(self) -> slice:
        return slice(self.n_caps, 2 * self.n_caps)

    @property
    def budget(self) -> slice:
        return slice(2 * self.n_caps, 2 * self.n_caps + 1)

    @property
    def prev_alloc(self) -> slice:
        return slice(2 * self.n_caps + 1, 3 * self.n_caps + 1)

    @property
    def prev_gain(self) -> slice:
        return slice(3 * self.n_caps + 1, 4 * self.n_caps + 1)


def make_context(
    r: Array,
    s: Array,
    budget_frac: Array | float,
    prev_alloc: Array | None = None,
    prev_gain: Array | None = None,
) -> Array:
    """Build x = [r ; s ; b ; w_prev ; ds_prev] (length 4C + 1) in the standard layout."""
    r = jnp.asarray(r, jnp.float32)
    s = jnp.asarray(s, jnp.float32)
    zeros = jnp.zeros_like(r)
    prev_alloc = zeros if prev_alloc is None else jnp.asarray(prev_alloc, jnp.float32)
    prev_gain = zeros if prev_gain is None else jnp.asarray(prev_gain, jnp.float32)
    b = jnp.reshape(jnp.asarray(budget_frac, jnp.float32), (1,))
    return jnp.concatenate([r, s, b, prev_alloc, prev_gain])


def _basis(w: Array, curvature: tuple[str, ...]) -> Array:
    """h(w): [..., C] -> [..., C * len(curvature)]."""
    parts = []
    for name in curvature:
        if name == "linear":
            parts.append(w)
        elif name == "sqrt":
            parts.append(jnp.sqrt(jnp.maximum(w, 0.0)))
        elif name == "square":
            parts.append(w * w)
        else:  # validated in FeatureMap.__post_init__
            raise ValueError(name)
    return jnp.concatenate(parts, axis=-1)


@dataclasses.dataclass(frozen=True)
class FeatureMap:
    """phi(context, allocation); frozen and hashable so it can be closed over by jitted code.

    Call with ``context`` [dx] and ``actions`` [K, C] (-> [K, dim]) or one allocation [C] (-> [dim]).
    """

    n_caps: int
    context_dim: int
    curvature: tuple[str, ...] = ("linear", "sqrt")
    interaction: Interaction = "full"

    def __post_init__(self) -> None:
        bad = [c for c in self.curvature if c not in CURVATURES]
        if bad or not self.curvature:
            raise ValueError(f"curvature must be a non-empty subset of {CURVATURES}, got {self.curvature}")
        if self.interaction not in ("full", "diagonal", "none"):
            raise ValueError(f"interaction must be full|diagonal|none, got {self.interaction!r}")
        if self.interaction == "diagonal" and self.context_dim != ContextLayout(self.n_caps).dim:
            raise ValueError(
                f"interaction='diagonal' needs the standard context layout of length "
                f"{ContextLayout(self.n_caps).dim}, got context_dim={self.context_dim}"
            )

    @property
    def basis_dim(self) -> int:
        return self.n_caps * len(self.curvature)

    @property
    def dim(self) -> int:
        nb = len(self.curvature)
        if self.interaction == "full":
            return self.basis_dim * (self.context_dim + 1)
        if self.interaction == "diagonal":
            return nb * self.n_caps * 6  # 1, r, s, w_prev, ds_prev, b
        return self.basis_dim + self.context_dim

    def __call__(self, context: Array, actions: Array) -> Array:
        actions = jnp.asarray(actions, jnp.float32)
        if actions.ndim == 1:
            return self(context, actions[None, :])[0]
        x = jnp.asarray(context, jnp.float32)
        h = _basis(actions, self.curvature)  # [K, B]
        k = actions.shape[0]
        if self.interaction == "full":
            x1 = jnp.concatenate([jnp.ones((1,), x.dtype), x])
            return (h[:, :, None] * x1[None, None, :]).reshape(k, -1)
        if self.interaction == "none":
            return jnp.concatenate([h, jnp.broadcast_to(x, (k, x.shape[0]))], axis=1)
        lay = ContextLayout(self.n_caps)
        nb = len(self.curvature)
        per_cap = [jnp.ones((self.n_caps,)), x[lay.r], x[lay.s], x[lay.prev_alloc], x[lay.prev_gain]]
        blocks = [h * jnp.tile(v, nb)[None, :] for v in per_cap]
        blocks.append(h * x[lay.budget][0])
        return jnp.concatenate(blocks, axis=1)
