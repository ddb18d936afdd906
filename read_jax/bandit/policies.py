"""Allocation policies behind one interface: ReAD (BLR-UCB / BLR-Thompson / ensemble) and baselines.

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
import math
from typing import Any, Literal, Protocol

import chex
import jax
import jax.numpy as jnp

from read_jax.bandit import blr, ensemble
from read_jax.bandit.features import ContextLayout, FeatureMap
from read_jax.bandit.guards import REWARD_LIMIT, check_context, check_reward, check_scalar
from read_jax.bandit.reward import ARTIFACT_KAPPA_DECAY, decay_kappa
from read_jax.errors import ReadJaxError

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


@dataclasses.dataclass(frozen=True)
class UniformPolicy(_Stateless):
    """Uniform schedule: w = 1/|C| every step (the paper's "uniform" allocation baseline)."""

    name: str = "uniform"

    @_jit_method
    def _select(self, state, context, actions, key, mask=None):
        del context, actions, key, mask
        return jnp.full((self.n_caps,), 1.0 / self.n_caps), state


@dataclasses.dataclass(frozen=True)
class TaskStaticPolicy(_Stateless):
    """Task-static schedule: w = r_tau every step (the paper's "task-static" baseline)."""

    name: str = "task_static"

    @_jit_method
    def _select(self, state, context, actions, key, mask=None):
        del actions, key, mask
        r = jnp.maximum(jnp.asarray(context)[self.layout.r], 0.0)
        total = jnp.sum(r)
        w = jnp.where(total > 0, r / jnp.maximum(total, 1e-12), 1.0 / self.n_caps)
        return w, state


@dataclasses.dataclass(frozen=True)
class OneHotPolicy(_Stateless):
    """One-hot on the top requirement argmax r (the paper's one-hot baselines, on the best one)."""

    name: str = "one_hot"

    @_jit_method
    def _select(self, state, context, actions, key, mask=None):
        del actions, key, mask
        r = jnp.asarray(context)[self.layout.r]
        return jax.nn.one_hot(jnp.argmax(r), self.n_caps), state


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


@chex.dataclass
class ReadState:
    """ReAD bandit state: the reward model plus the exploration schedule."""

    model: Any  # blr.BLRPosterior or ensemble.EnsembleState
    kappa: Array
    best_dev: Array
    pivot: Array  # first reward seen; BLR targets are stored as reward - pivot (f32 safety)
    step: Array


@dataclasses.dataclass(frozen=True)
class ReadPolicy(_GuardedEntry):
    """ReAD's contextual bandit (Cheng et al. 2026, method.md §5).

    ``model="blr"``: Bayesian linear regression on phi(x, w) (`features.FeatureMap`), exact
    Normal-Inverse-Gamma posterior (Riquelme et al. 2018), decided by UCB
    (x^T mu + kappa sqrt(E[sigma^2] x^T Lambda^{-1} x)) or Thompson sampling; rewards are
    standardised at decision time (`blr.standardize`).  This project's default.
    ``model="ensemble"``: the paper's bootstrap ensemble of MLPs on [x ; w] with UCB mu + kappa
    sigma (Thompson: the prediction of one random member); retrained in ``select`` before each
    decision, as the artifact does.  ``persistent_optimizer`` (ensemble only, default False: a
    fresh Adam state per refit) keeps every member's Adam state across refits in the policy state,
    as the artifact does (``read/bandit.py`` of LabRAI/ReAD: one ``torch.optim.Adam`` per member,
    made once in ``UCBEnsembleBandit.__init__`` and reused by every ``fit``).
    The first ``warmup`` decisions (counted in updates) are uniformly random among the valid
    candidates, for either model (artifact: 5 for the ensemble, ``bandit.warmup_steps`` in
    ``configs/read.yml``; default 0 here, so ``read_ucb`` / ``read_thompson`` decide from the first
    step unless given ``warmup=5``).  ``kappa = 0`` is the paper's greedy baseline.
    ``on_checkpoint`` shrinks kappa by ``kappa_decay`` when dev utility did not improve.

    Defaults: features phi = h(w) x [1, r, s, w_prev, ds_prev, b] elementwise
    (``interaction="diagonal"``, 96 features for |C| = 8) rather than the full outer product
    (544 features): ~20 decisions per run cannot fit 544 coefficients, and on the simulator the two
    gave the same utility.  kappa = 1 (the artifact's `read.yml` sets κ₀ = 1.0); on our simulator
    smaller kappa did slightly better over 20 steps (see experiments/bandit_simulation.py).
    """

    n_caps: int
    context_dim: int
    model: Literal["blr", "ensemble"] = "blr"
    strategy: Literal["ucb", "thompson"] = "ucb"
    kappa: float = 1.0
    kappa_decay: float = ARTIFACT_KAPPA_DECAY
    warmup: int = 0
    curvature: tuple[str, ...] = ("linear", "sqrt")
    interaction: Literal["full", "diagonal", "none"] = "diagonal"
    a0: float = blr.DEFAULT_A0
    b0: float = blr.DEFAULT_B0
    lam: float = blr.DEFAULT_LAMBDA
    forget: float = 1.0
    standardize: bool = True
    ensemble_config: ensemble.EnsembleConfig = ensemble.EnsembleConfig()
    persistent_optimizer: bool = False
    name: str = "read_ucb"

    def __post_init__(self) -> None:
        if self.model not in ("blr", "ensemble"):
            raise ReadJaxError(f"ReAD model must be 'blr' or 'ensemble', got {self.model!r}")
        if self.strategy not in ("ucb", "thompson"):
            raise ReadJaxError(f"ReAD strategy must be 'ucb' or 'thompson', got {self.strategy!r}")
        if self.kappa < 0:
            raise ReadJaxError(f"kappa must be >= 0, got {self.kappa}")
        if self.warmup < 0:
            raise ReadJaxError(f"warmup must be >= 0, got {self.warmup}")
        if self.persistent_optimizer and self.model != "ensemble":
            raise ReadJaxError("persistent_optimizer applies to model='ensemble' only (the BLR has no optimiser)")
        try:
            self.features  # validates curvature / interaction / context_dim
        except ValueError as err:
            raise ReadJaxError(str(err)) from None

    @property
    def features(self) -> FeatureMap:
        return FeatureMap(self.n_caps, self.context_dim, tuple(self.curvature), self.interaction)

    def init(self, key: Array) -> ReadState:
        if self.model == "blr":
            model = blr.init(self.features.dim, a0=self.a0, b0=self.b0, lam=self.lam, forget=self.forget)
        else:
            model = ensemble.init(key, self.context_dim + self.n_caps, self.ensemble_config, self.persistent_optimizer)
        return ReadState(
            model=model,
            kappa=jnp.asarray(self.kappa, jnp.float32),
            # the lowest finite float32, below every utility (the first checkpoint never shrinks
            # kappa) and finite, so every state leaf is finite (older checkpoints hold -inf: same)
            best_dev=jnp.asarray(jnp.finfo(jnp.float32).min, jnp.float32),
            pivot=jnp.zeros((), jnp.float32),
            step=jnp.zeros((), jnp.int32),
        )

    def scores(self, state: ReadState, context: Array, actions: Array, key: Array) -> tuple[Array, ReadState]:
        """Acquisition value of every candidate (and the state, the ensemble being refitted)."""
        actions = jnp.asarray(actions, jnp.float32)
        if self.model == "blr":
            post = blr.standardize(state.model) if self.standardize else state.model
            nig = blr.posterior(post)
            phi = self.features(context, actions)
            if self.strategy == "ucb":
                return blr.ucb_scores(nig, phi, state.kappa), state
            return blr.thompson_scores(nig, phi, key), state
        k_fit, k_member = jax.random.split(key)
        fitted, _ = ensemble.fit(state.model, k_fit, self.ensemble_config)
        inputs = ensemble.ensemble_inputs(context, actions)
        if self.strategy == "ucb":
            s = ensemble.ucb_scores(fitted, inputs, state.kappa, self.ensemble_config)
        else:
            preds = ensemble.predict_members(fitted, inputs, self.ensemble_config)
            s = preds[jax.random.randint(k_member, (), 0, self.ensemble_config.n_members)]
        return s, state.replace(model=fitted)

    @_jit_method
    def _select(self, state, context, actions, key, mask=None):
        actions = jnp.asarray(actions, jnp.float32)
        k_score, k_rand = jax.random.split(key)
        scores, new_state = self.scores(state, context, actions, k_score)
        best = _masked_argmax(scores, mask)
        rand = jax.random.categorical(k_rand, _masked_logits(actions, mask))
        idx = jnp.where(state.step < self.warmup, rand, best)
        return actions[idx], new_state

    @_jit_method
    def _update(self, state, context, allocation, reward, delta_s=None):
        del delta_s
        # clipped to +-REWARD_LIMIT (1e15): the BLR's float32 sums of squared targets overflow near
        # 2e19 (see `guards`); NaN is refused before this jitted call
        reward = jnp.clip(jnp.asarray(reward, jnp.float32), -REWARD_LIMIT, REWARD_LIMIT)
        if self.model == "blr":
            pivot = jnp.where(state.step == 0, reward, state.pivot)
            phi = self.features(context, allocation)
            model = blr.update_one(state.model, phi, reward - pivot)
        else:
            pivot = state.pivot
            model = ensemble.add(state.model, ensemble.ensemble_inputs(context, allocation[None])[0], reward)
        return state.replace(model=model, pivot=pivot, step=state.step + 1)

    @_jit_method
    def _on_checkpoint(self, state, dev_utility):
        kappa, best = decay_kappa(state.kappa, state.best_dev, dev_utility, self.kappa_decay)
        return state.replace(kappa=kappa, best_dev=best)


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


def _read(**defaults: Any):
    return lambda **kw: ReadPolicy(**{**defaults, **kw})


_ENSEMBLE_DEFAULTS = dict(model="ensemble", strategy="ucb", warmup=5, name="read_ensemble")
# ReAD as the paper / artifact runs it (LabRAI/ReAD configs/read.yml + read/bandit.py): bootstrap
# ensemble of J = 5 MLPs, UCB with kappa_0 = 1.0 shrunk x 0.7 on a stalled dev checkpoint, 5 random
# warm-up steps, one Adam state per member kept across refits.  Meant with the paper's action set:
# loop.bandit.action_set=paper loop.bandit.include_one_hot=false (experiments/read_paper.yaml).
_PAPER_DEFAULTS = dict(_ENSEMBLE_DEFAULTS, persistent_optimizer=True, name="read_paper")

POLICIES: dict[str, Any] = {
    "read_ucb": _read(model="blr", strategy="ucb", name="read_ucb"),
    "read_thompson": _read(model="blr", strategy="thompson", name="read_thompson"),
    "read_ensemble": _read(**_ENSEMBLE_DEFAULTS),
    "read_paper": _read(**_PAPER_DEFAULTS),
    "greedy": _read(model="blr", strategy="ucb", kappa=0.0, kappa_decay=1.0, name="greedy"),
    # the paper's greedy baseline on its own learner: read_paper with kappa = 0 (5 random warm-up steps kept)
    "greedy_ensemble": _read(**{**_PAPER_DEFAULTS, "kappa": 0.0, "kappa_decay": 1.0, "name": "greedy_ensemble"}),
    "uniform": UniformPolicy,
    "task_static": TaskStaticPolicy,
    "one_hot": OneHotPolicy,
    "best_fixed": BestFixedPolicy,
    "random": RandomPolicy,
    "odm": OdmPolicy,
    "doremi": DoremiPolicy,
}


# policies that take a fixed allocation in their spec: "best_fixed:0.5,0.5,0,0,0,0,0,0"
SPEC_ALLOCATION = ("best_fixed",)


def parse_policy_spec(spec: str, n_caps: int | None = None, where: str = "policy") -> tuple[str, dict[str, Any]]:
    """``NAME`` or ``NAME:W1,...,WC`` (a fixed allocation, one weight per capability in the source's
    order, for ``best_fixed``) -> (name, make_policy options).  Checks the name against `POLICIES` and
    the allocation against the simplex (and against ``n_caps`` when given); errors are one line
    naming ``where`` (the config field)."""
    name, sep, weights = str(spec).partition(":")
    name = name.strip()
    if name not in POLICIES:
        raise ReadJaxError(f"{where}: unknown policy {name!r}; choose one of {', '.join(sorted(POLICIES))}")
    if not sep:
        return name, {}
    if name not in SPEC_ALLOCATION:
        raise ReadJaxError(f"{where}: {spec!r}: only {', '.join(SPEC_ALLOCATION)} takes an allocation "
                           f"(NAME:W1,...,WC); write {name!r} alone")
    try:
        alloc = tuple(float(w) for w in weights.split(","))
    except ValueError:
        raise ReadJaxError(f"{where}: {spec!r}: the allocation must be comma-separated numbers, "
                           f"e.g. {name}:0.5,0.5,0,0") from None
    total = sum(alloc)
    if not all(math.isfinite(w) and w >= 0 for w in alloc) or abs(total - 1.0) > 1e-3:
        raise ReadJaxError(f"{where}: {spec!r}: the allocation is off the simplex (weights must be >= 0 and "
                           f"sum to 1, these sum to {total:g}); fix the weights")
    if n_caps is not None and len(alloc) != n_caps:
        raise ReadJaxError(f"{where}: {spec!r}: the allocation has {len(alloc)} weights for {n_caps} "
                           "capabilities; give one weight per capability")
    return name, {"allocation": alloc}


def make_policy(name: str, *, n_caps: int, context_dim: int | None = None, **kwargs: Any) -> Policy:
    """Build a policy by name (see `POLICIES`) or spec (`parse_policy_spec`: ``best_fixed:0.5,0.5,...``);
    ``context_dim`` defaults to the standard layout 4C+1.

    Raises `ReadJaxError` with one line for an unknown name or an option the policy does not take.
    """
    if ":" in str(name):
        name, spec_kwargs = parse_policy_spec(name, n_caps=n_caps)
        kwargs = {**spec_kwargs, **kwargs}
    if name not in POLICIES:
        raise ReadJaxError(f"unknown bandit policy {name!r}; choose one of {', '.join(sorted(POLICIES))}")
    if n_caps < 1:
        raise ReadJaxError(f"n_caps must be >= 1, got {n_caps}")
    context_dim = ContextLayout(n_caps).dim if context_dim is None else int(context_dim)
    if "curvature" in kwargs:
        kwargs["curvature"] = tuple(kwargs["curvature"])
    if isinstance(kwargs.get("allocation"), (list, jax.Array)) or hasattr(kwargs.get("allocation"), "tolist"):
        kwargs["allocation"] = tuple(float(v) for v in kwargs["allocation"])
    if isinstance(kwargs.get("reference"), list):
        kwargs["reference"] = tuple(float(v) for v in kwargs["reference"])
    try:
        return POLICIES[name](n_caps=n_caps, context_dim=context_dim, **kwargs)
    except TypeError as err:
        raise ReadJaxError(f"bad option for bandit policy {name!r}: {err}") from None
