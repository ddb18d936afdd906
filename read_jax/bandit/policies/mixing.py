"""The task-agnostic data-mixing baselines from the LM pre-training literature, online versions of
ODM (EXP3 over capabilities) and DoReMi (multiplicative weights on excess loss)."""

from __future__ import annotations

import dataclasses
import math

import chex
import jax
import jax.numpy as jnp

from read_jax.bandit.features import ContextLayout
from read_jax.bandit.policies.base import _GuardedEntry, _jit_method

Array = jax.Array


@chex.dataclass
class OdmState:
    reward_est: Array  # [C] smoothed importance-weighted reward estimates R_hat
    step: Array


@dataclasses.dataclass(frozen=True)
class OdmPolicy(_GuardedEntry):
    """Online Data Mixing: EXP3 over capabilities (Albalak et al. 2023, "Efficient Online Data
    Mixing For Language Model Pre-Training").

    Each capability is an arm; the reward of an arm is its current training loss ("domains with
    higher loss have more to learn"), importance-weighted by 1 / pi and smoothed:
    R_hat_i <- alpha R_hat_i + (1 - alpha) L_i / pi_i.  The mixture is
    pi = (1 - K eps_t) softmax(eps_{t-1} R_hat) + eps_t with eps_t = min(1/K, sqrt(ln K / (K t))).
    The loss of capability c is read off the context as ``loss_offset - s_c`` (s = probe score,
    higher is better; offset 1 keeps losses positive for accuracy- and log-likelihood probes).
    Task-agnostic by design: it never looks at r.
    """

    n_caps: int
    context_dim: int
    alpha: float = 0.9
    loss_offset: float = 1.0
    name: str = "odm"

    def _eps(self, t: Array) -> Array:
        k = self.n_caps
        tf = jnp.maximum(t.astype(jnp.float32), 1.0)
        return jnp.minimum(1.0 / k, jnp.sqrt(math.log(max(k, 2)) / (k * tf)))

    def init(self, key: Array) -> OdmState:
        del key
        return OdmState(reward_est=jnp.zeros((self.n_caps,), jnp.float32), step=jnp.zeros((), jnp.int32))

    def mixture(self, state: OdmState) -> Array:
        t = state.step + 1
        eps_t = self._eps(t)
        eps_prev = jnp.where(t > 1, self._eps(t - 1), 1.0 / self.n_caps)
        # softmax(eps R) written as softmax(eps (R - max R)): the same mixture, but the largest logit
        # is exactly 0.  With softmax(eps R) XLA on CPU fuses eps * R into an FMA inside
        # exp(eps R - max(eps R)), so the top logit comes out as +-(rounding error of eps R) instead
        # of 0: +-128 at R ~ 7e9, exp overflows or underflows and the mixture turned NaN.
        est = state.reward_est
        return (1.0 - self.n_caps * eps_t) * jax.nn.softmax(eps_prev * (est - jnp.max(est))) + eps_t

    @_jit_method
    def _select(self, state, context, actions, key, mask=None):
        del context, actions, key, mask
        return self.mixture(state), state

    @_jit_method
    def _update(self, state, context, allocation, reward, delta_s=None):
        del reward, delta_s
        loss = self.loss_offset - jnp.asarray(context)[ContextLayout(self.n_caps).s]
        pi = jnp.maximum(jnp.asarray(allocation, jnp.float32), 1e-6)
        est = self.alpha * state.reward_est + (1.0 - self.alpha) * loss / pi
        return state.replace(reward_est=est, step=state.step + 1)


@chex.dataclass
class DoremiState:
    log_alpha: Array  # [C] log of the (unsmoothed) domain weights
    step: Array


@dataclasses.dataclass(frozen=True)
class DoremiPolicy(_GuardedEntry):
    """DoReMi-style multiplicative weights on excess loss (Xie et al. 2023, "DoReMi: Optimizing
    Data Mixtures Speeds Up Language Model Pretraining").

    alpha <- normalise(alpha * exp(eta * lambda)), lambda_c = max(0, loss_c - loss_ref_c) the excess
    loss of the student over a reference; played weights w = (1 - c) alpha + c / |C| (c = 1e-3).
    With probe scores s (higher is better) the excess loss is max(0, reference_c - s_c), the
    reference being e.g. the teacher's profile (default: 1, a perfect score).  Online: the
    weights are updated each step instead of averaged over a proxy-model run.  Task-agnostic.
    """

    n_caps: int
    context_dim: int
    eta: float = 1.0
    smoothing: float = 1e-3
    reference: float | tuple[float, ...] = 1.0
    name: str = "doremi"

    def init(self, key: Array) -> DoremiState:
        del key
        return DoremiState(
            log_alpha=jnp.full((self.n_caps,), -math.log(self.n_caps), jnp.float32), step=jnp.zeros((), jnp.int32)
        )

    @_jit_method
    def _select(self, state, context, actions, key, mask=None):
        del context, actions, key, mask
        alpha = jax.nn.softmax(state.log_alpha)
        return (1.0 - self.smoothing) * alpha + self.smoothing / self.n_caps, state

    @_jit_method
    def _update(self, state, context, allocation, reward, delta_s=None):
        del allocation, reward, delta_s
        s = jnp.asarray(context)[ContextLayout(self.n_caps).s]
        excess = jnp.maximum(0.0, jnp.asarray(self.reference, jnp.float32) - s)
        return state.replace(log_alpha=jax.nn.log_softmax(state.log_alpha + self.eta * excess), step=state.step + 1)
