"""The interface every allocation policy implements, and the machinery the policies share.

Every policy is a frozen (hashable) dataclass holding only static configuration; everything that
changes lives in a ``chex.dataclass`` state, so ``select`` / ``update`` are pure functions that
``jit``, ``lax.scan`` and ``vmap`` over seeds (see `read_jax.bandit.simulator`).

    state              = policy.init(key)
    allocation, state  = policy.select(state, context, actions, key, mask=None)
    state              = policy.update(state, context, allocation, reward, delta_s=None)
    state              = policy.on_checkpoint(state, dev_utility)

``context`` is x = [r ; s ; b ; w_prev ; ds_prev] (`features.ContextLayout`), ``actions`` the
candidate allocations [K, C] (rows with ``mask`` False are never chosen), ``allocation`` the [C]
simplex vector to play.  Policies that do not choose among candidates (uniform, task-static,
ODM, DoReMi) return their own allocation and ignore ``actions``.

``select`` / ``update`` / ``on_checkpoint`` are plain Python entry points that refuse non-finite
contexts, rewards and dev utilities with a one-line `ReadJaxError` (`guards`), then call the
jitted ``_select`` / ``_update`` / ``_on_checkpoint``; pass host floats / numpy arrays to check
them without a device sync.  Rewards past +-1e15 are clipped (`guards.REWARD_LIMIT`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Protocol

import chex
import jax
import jax.numpy as jnp

from read_jax.bandit.features import ContextLayout
from read_jax.bandit.guards import check_context, check_reward, check_scalar

Array = jax.Array


class Policy(Protocol):
    """The interface the ReAD loop and the simulator use (see the package docstring)."""

    name: str
    n_caps: int

    def init(self, key: Array) -> Any: ...

    def select(
        self, state: Any, context: Array, actions: Array, key: Array, mask: Array | None = None
    ) -> tuple[Array, Any]: ...

    def update(
        self, state: Any, context: Array, allocation: Array, reward: Array, delta_s: Array | None = None
    ) -> Any: ...

    def on_checkpoint(self, state: Any, dev_utility: Array) -> Any: ...


_jit_method = functools.partial(jax.jit, static_argnums=0)


class _GuardedEntry:
    """The Python-level entry points every policy shares: check the inputs, then call the jitted
    ``_select`` / ``_update`` / ``_on_checkpoint``.

    Non-finite contexts, rewards and dev utilities raise `ReadJaxError` here (jitted code cannot
    raise, and one NaN poisons a learning policy for the rest of the run); see `guards` for what
    is checked without a device sync and for the reward / context range the policies guarantee.
    Called with tracers (inside ``jit`` / ``scan`` / ``vmap``) the checks are skipped.
    """

    def select(self, state, context, actions, key, mask=None):
        context = check_context(context, f"bandit policy {self.name!r} select")
        return self._select(state, context, actions, key, mask)

    def update(self, state, context, allocation, reward, delta_s=None):
        where = f"bandit policy {self.name!r} update"
        reward = check_reward(reward, where)
        context = check_context(context, where)
        return self._update(state, context, allocation, reward, delta_s)

    def on_checkpoint(self, state, dev_utility):
        dev_utility = check_scalar(dev_utility, "dev utility", f"bandit policy {self.name!r} on_checkpoint")
        return self._on_checkpoint(state, dev_utility)

    def _on_checkpoint(self, state, dev_utility):
        del dev_utility
        return state


def _masked_logits(actions: Array, mask: Array | None) -> Array:
    if mask is None:
        return jnp.zeros((actions.shape[0],))
    return jnp.where(mask, 0.0, -jnp.inf)


def _masked_argmax(scores: Array, mask: Array | None) -> Array:
    if mask is not None:
        scores = jnp.where(mask, scores, -jnp.inf)
    return jnp.argmax(scores)


@chex.dataclass
class StepState:
    """State of the memoryless schedules: only the number of updates seen."""

    step: Array


@dataclasses.dataclass(frozen=True)
class _Stateless(_GuardedEntry):
    """Base for policies without learning: counting steps is their whole state."""

    n_caps: int
    context_dim: int

    def init(self, key: Array) -> StepState:
        del key
        return StepState(step=jnp.zeros((), jnp.int32))

    @_jit_method
    def _update(self, state, context, allocation, reward, delta_s=None):
        del context, allocation, reward, delta_s
        return state.replace(step=state.step + 1)

    @property
    def layout(self) -> ContextLayout:
        return ContextLayout(self.n_caps)
