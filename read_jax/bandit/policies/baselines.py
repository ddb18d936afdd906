"""The non-learning baselines ReAD is compared against: fixed schedules (uniform, task-static,
one-hot, a fixed grid allocation) and a uniformly random candidate."""

from __future__ import annotations

import dataclasses
import math

import chex
import jax
import jax.numpy as jnp

from read_jax.bandit.policies.base import _GuardedEntry, _jit_method, _masked_logits, _Stateless
from read_jax.errors import ReadJaxError

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class UniformPolicy(_Stateless):
    """Uniform schedule: w = 1/|C| every step (the paper's "uniform" allocation baseline)."""

    name: str = "uniform"

    @_jit_method
    def _select(self, state, context, actions, key, mask=None):
        del context, actions, key, mask
        return jnp.full((self.n_caps,), 1.0 / self.n_caps), state


@dataclasses.dataclass(frozen=True)
class _FromRequirement(_Stateless):
    """Base for schedules that are a fixed function of the task requirement r (read off the
    context): each subclass provides the pure mapping ``_allocation(r, n_caps) -> w``."""

    @staticmethod
    def _allocation(r: Array, n_caps: int) -> Array:
        raise NotImplementedError

    @_jit_method
    def _select(self, state, context, actions, key, mask=None):
        del actions, key, mask
        return self._allocation(jnp.asarray(context)[self.layout.r], self.n_caps), state


@dataclasses.dataclass(frozen=True)
class TaskStaticPolicy(_FromRequirement):
    """Task-static schedule: w = r_tau every step (the paper's "task-static" baseline)."""

    name: str = "task_static"

    @staticmethod
    def _allocation(r: Array, n_caps: int) -> Array:
        r = jnp.maximum(r, 0.0)
        total = jnp.sum(r)
        return jnp.where(total > 0, r / jnp.maximum(total, 1e-12), 1.0 / n_caps)


@dataclasses.dataclass(frozen=True)
class OneHotPolicy(_FromRequirement):
    """One-hot on the top requirement argmax r (the paper's one-hot baselines, on the best one)."""

    name: str = "one_hot"

    @staticmethod
    def _allocation(r: Array, n_caps: int) -> Array:
        return jax.nn.one_hot(jnp.argmax(r), n_caps)


@dataclasses.dataclass(frozen=True)
class RandomPolicy(_Stateless):
    """A uniformly random candidate each step (the floor any learner must beat)."""

    name: str = "random"

    @_jit_method
    def _select(self, state, context, actions, key, mask=None):
        del context
        idx = jax.random.categorical(key, _masked_logits(actions, mask))
        return jnp.asarray(actions)[idx], state


@chex.dataclass
class FixedState:
    """The fixed allocation lives in the state so one compiled simulator can sweep a whole grid."""

    allocation: Array
    index: Array
    step: Array


@dataclasses.dataclass(frozen=True)
class BestFixedPolicy(_GuardedEntry):
    """A fixed allocation every step: the paper's "best fixed grid allocation" baseline.

    "Best" is chosen in hindsight (an oracle): run every grid allocation as a fixed schedule and
    keep the best final utility (`simulator.best_fixed_in_hindsight`).  The policy itself plays
    ``allocation`` if given, else candidate ``index`` of the current action set (so a rank-relative
    choice such as "0.5 / 0.5 on the top two" carries over between tasks); with a ``mask``, the
    ``index``-th valid candidate (the last valid one when there are fewer).
    """

    n_caps: int
    context_dim: int
    allocation: tuple[float, ...] | None = None
    index: int = 0
    name: str = "best_fixed"

    def __post_init__(self) -> None:
        if self.allocation is None:
            return
        alloc = [float(v) for v in self.allocation]
        if len(alloc) != self.n_caps:
            raise ReadJaxError(f"best_fixed allocation has {len(alloc)} entries for {self.n_caps} capabilities")
        if not all(math.isfinite(v) and v >= 0.0 for v in alloc) or abs(sum(alloc) - 1.0) > 1e-3:
            raise ReadJaxError(f"best_fixed allocation must be finite, >= 0 and sum to 1, got {alloc}")

    def init(self, key: Array) -> FixedState:
        del key
        if self.allocation is None:  # all zeros (not an allocation) marks "use candidate `index`"
            alloc = jnp.zeros((self.n_caps,), jnp.float32)
        else:  # validated in __post_init__; renormalised so float32 rounding keeps the sum at 1
            alloc = jnp.asarray(self.allocation, jnp.float32)
            alloc = alloc / jnp.sum(alloc)
        return FixedState(allocation=alloc, index=jnp.asarray(self.index, jnp.int32), step=jnp.zeros((), jnp.int32))

    @_jit_method
    def _select(self, state, context, actions, key, mask=None):
        del context, key
        actions = jnp.asarray(actions)
        if mask is None:
            from_index = actions[jnp.clip(state.index, 0, actions.shape[0] - 1)]
        else:  # the index-th valid row (the last valid one past the end): a masked row is never played
            valid = jnp.asarray(mask, bool)
            target = jnp.clip(state.index, 0, jnp.maximum(jnp.sum(valid) - 1, 0))
            from_index = actions[jnp.argmax(valid & (jnp.cumsum(valid) - 1 == target))]
        alloc = state.allocation
        total = jnp.sum(alloc)
        # the sentinel (all zeros; NaN in older checkpoints) or any state that is not on the simplex
        # plays candidate `index` instead
        use_fixed = jnp.all(jnp.isfinite(alloc)) & jnp.all(alloc >= 0) & (total > 0)
        return jnp.where(use_fixed, alloc / jnp.where(use_fixed, total, 1.0), from_index), state

    @_jit_method
    def _update(self, state, context, allocation, reward, delta_s=None):
        del context, allocation, reward, delta_s
        return state.replace(step=state.step + 1)
