"""ReAD's own learner, the contextual bandit over candidate allocations (BLR or bootstrap
ensemble, UCB or Thompson), and the named presets of it that `make_policy` offers."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import chex
import jax
import jax.numpy as jnp

from read_jax.bandit import blr, ensemble
from read_jax.bandit.features import FeatureMap
from read_jax.bandit.guards import REWARD_LIMIT
from read_jax.bandit.policies.base import _GuardedEntry, _jit_method, _masked_argmax, _masked_logits
from read_jax.bandit.reward import ARTIFACT_KAPPA_DECAY, decay_kappa
from read_jax.errors import ReadJaxError

Array = jax.Array


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


def _read(**defaults: Any):
    return lambda **kw: ReadPolicy(**{**defaults, **kw})


_ENSEMBLE_DEFAULTS = dict(model="ensemble", strategy="ucb", warmup=5, name="read_ensemble")
# ReAD as the paper / artifact runs it (LabRAI/ReAD configs/read.yml + read/bandit.py): bootstrap
# ensemble of J = 5 MLPs, UCB with kappa_0 = 1.0 shrunk x 0.7 on a stalled dev checkpoint, 5 random
# warm-up steps, one Adam state per member kept across refits.  Meant with the paper's action set:
# loop.bandit.action_set=paper loop.bandit.include_one_hot=false (experiments/read_paper.yaml).
_PAPER_DEFAULTS = dict(_ENSEMBLE_DEFAULTS, persistent_optimizer=True, name="read_paper")


# the ReAD entries of `registry.POLICIES`, in its order
_READ_PRESETS: dict[str, Any] = {
    "read_ucb": _read(model="blr", strategy="ucb", name="read_ucb"),
    "read_thompson": _read(model="blr", strategy="thompson", name="read_thompson"),
    "read_ensemble": _read(**_ENSEMBLE_DEFAULTS),
    "read_paper": _read(**_PAPER_DEFAULTS),
    "greedy": _read(model="blr", strategy="ucb", kappa=0.0, kappa_decay=1.0, name="greedy"),
    # the paper's greedy baseline on its own learner: read_paper with kappa = 0 (5 random warm-up steps kept)
    "greedy_ensemble": _read(**{**_PAPER_DEFAULTS, "kappa": 0.0, "kappa_decay": 1.0, "name": "greedy_ensemble"}),
}
