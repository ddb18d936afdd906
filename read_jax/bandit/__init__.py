"""Allocation: which capabilities the next step's tokens go to (method.md §5).

Modules, one job each:
  blr.py        Bayesian linear regression, NIG prior, exact sufficient statistics, UCB / Thompson
  features.py   context layout x = [r; s; b; w_prev; ds_prev] and the feature map phi(x, w)
  ensemble.py   the paper's bootstrap ensemble of MLPs (vmapped, jitted Adam training)
  actions.py    candidate sets (artifact sparse top-k, paper local perturbations), spillover
  reward.py     proxy reward, kappa decay, affine calibration of proxy reward to dev utility
  policies/     ReAD and its baselines behind one interface, `make_policy` (docs/deviations.md lists the paper's baselines not built yet)
  guards.py     refuse non-finite rewards / contexts at the policies' entry points; supported ranges
  simulator.py  synthetic capability world (known transfer), lax.scan + vmap over seeds

The interface the ReAD loop calls (one decision per step)::

    from read_jax.bandit import build_candidate_actions, make_context, make_policy, proxy_reward

    policy = make_policy("read_ucb", n_caps=C)          # context_dim defaults to 4C + 1
    state = policy.init(key)
    for t in range(T):
        x = make_context(r, s, budget_left / budget, w_prev, ds_prev)   # [4C + 1]
        actions = jnp.asarray(build_candidate_actions(caps, r))         # [K, C]
        w, state = policy.select(state, x, actions, jax.random.fold_in(key, t))   # w: [C]
        ...  distil with allocation w, probe, ds = s' - s, cost = tokens spent ...
        R = scale * proxy_reward(r, ds, cost)          # scale: calibrate(...).reward_scale
        state = policy.update(state, x, w, R, delta_s=ds)
        if dev checkpoint: state = policy.on_checkpoint(state, dev_utility)  # kappa x 0.7 on stall

* ``select(state, context, actions, key, mask=None) -> (allocation [C], state)``: always returns
  the allocation itself (policies such as ODM or DoReMi produce mixtures outside the candidate
  set).  ``mask`` [K] marks valid rows when ``actions`` is padded to a fixed size
  (`pad_actions`) so a changing candidate count does not recompile.
* ``update(state, context, allocation, reward, delta_s=None) -> state`` with the context *before*
  the step; ``delta_s`` is optional extra information.
* ``on_checkpoint(state, dev_utility) -> state``: ReAD policies shrink kappa when dev utility
  did not improve; other policies ignore it.
* Policies are frozen dataclasses (static, hashable); states are chex dataclasses (pytrees).
  select / update are jitted and pure, so a whole run can be a ``lax.scan`` and seeds a ``vmap``.

Policy names for `make_policy`: read_ucb, read_thompson, read_ensemble, read_paper (the paper's
ensemble UCB as the artifact runs it: J = 5, 5 random warm-up steps, Adam state kept across refits),
greedy (kappa = 0 of read_ucb), greedy_ensemble (kappa = 0 of read_paper), uniform, task_static
(w = r), one_hot (argmax r), best_fixed, random, odm (EXP3, Albalak et al. 2023), doremi
(multiplicative weights on excess loss, Xie et al. 2023).  ``warmup=N`` gives any ReAD policy N
uniformly random first decisions (default 0 for read_ucb / read_thompson / greedy, 5 for the
ensembles).
"""

from read_jax.bandit import blr, ensemble
from read_jax.bandit.actions import (
    build_candidate_actions,
    candidate_actions_jax,
    local_perturbations,
    pad_actions,
    paper_action_set,
    rank_capabilities,
    spillover,
    spillover_jax,
)
from read_jax.bandit.blr import BLRPosterior, NIGParams
from read_jax.bandit.ensemble import EnsembleConfig, EnsembleState
from read_jax.bandit.features import ContextLayout, FeatureMap, make_context
from read_jax.bandit.policies import POLICIES, Policy, ReadPolicy, make_policy
from read_jax.bandit.reward import Calibration, calibrate, decay_kappa, proxy_reward

__all__ = [
    "BLRPosterior",
    "Calibration",
    "ContextLayout",
    "EnsembleConfig",
    "EnsembleState",
    "FeatureMap",
    "NIGParams",
    "POLICIES",
    "Policy",
    "ReadPolicy",
    "blr",
    "build_candidate_actions",
    "calibrate",
    "candidate_actions_jax",
    "decay_kappa",
    "ensemble",
    "local_perturbations",
    "make_context",
    "make_policy",
    "pad_actions",
    "paper_action_set",
    "proxy_reward",
    "rank_capabilities",
    "spillover",
    "spillover_jax",
]
