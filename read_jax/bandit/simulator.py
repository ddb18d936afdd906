"""A synthetic capability world for comparing allocation policies in seconds (no LLM involved).

The world encodes the paper's two findings with known ground truth:

* **Transfer** (Finding 1): a known signed matrix M [C, C], row i = the capability trained,
  column j = the capability that moves.  Positive entries (the diagonal, and some off-diagonal
  helpers such as reasoning -> math) act through a concave progress curve; negative entries
  (interference) act linearly in tokens and grow with the budget already spent, so off-target
  effects become more negative as the budget grows.
* **Diminishing returns** (Finding 2): progress on capability i is G(n_i) = 1 - exp(-n_i / tau),
  n_i the budget fraction spent on i so far, so the marginal on-target gain shrinks.

One step with allocation w spends m = 1 / n_steps of the budget:

    ds_j = sum_i P_ij [G(n_i + m w_i) - G(n_i)]  -  sum_i N_ij m w_i (1 + growth * sum(n))

with P = max(M, 0), N = max(-M, 0).  Probes are noisy: s_obs = s_true + noise * eps.  The task
utility is U = r^T s_true.  The reward the policy sees is the proxy reward of `reward.py` on the
*observed* profile change; regret is measured on the noise-free reward against the best candidate
action at the current state (a per-step oracle), and final utility on s_true.

Everything is one ``lax.scan`` over steps, ``vmap``-ed over seeds (each seed draws its own world
and task), and jitted once per policy.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import chex
import jax
import jax.numpy as jnp
from jax.scipy.special import ndtri

from read_jax.bandit.actions import ARTIFACT_WEIGHT_GRID, candidate_actions_jax, spillover_jax
from read_jax.bandit.features import FeatureMap, make_context
from read_jax.bandit.policies import BestFixedPolicy, FixedState, Policy
from read_jax.bandit.reward import ARTIFACT_BETA

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class SimConfig:
    """Static simulation settings (hashable: the jitted runners take it as a static argument)."""

    n_caps: int = 8
    n_steps: int = 20
    top_k: int = 3
    weight_grid: tuple[float, ...] = ARTIFACT_WEIGHT_GRID
    include_one_hot: bool = True
    beta: float = ARTIFACT_BETA
    lam: float = 1e-5  # per token
    step_tokens: float = 1000.0  # cost of every step (equal for all actions: a constant offset)
    checkpoint_every: int = 2  # 10 % of a 20-step budget, like the artifact's dev checkpoints
    noise: float = 0.004  # probe noise std on each capability score
    tau: float = 0.35  # saturation scale of G, in budget fractions
    growth: float = 2.0  # how fast interference grows with the spent budget
    requirement_sharpness: float = 2.0  # r = softmax(sharpness * N(0, I)): larger = sparser tasks


@chex.dataclass
class SimWorld:
    """One synthetic task: the known transfer matrix, the start profile and the requirement."""

    transfer: Array  # [C, C] signed M
    s0: Array  # [C]
    r: Array  # [C]


@chex.dataclass
class SimResult:
    """Per-step trace of one run (leading [T]; a seed axis in front after vmap)."""

    allocations: Array  # [T, C]
    rewards: Array  # [T] proxy reward the policy saw (noisy)
    expected: Array  # [T] noise-free proxy reward of the played allocation
    oracle: Array  # [T] best noise-free proxy reward among the candidates at that state
    utility: Array  # [T] r^T s_true after each step
    utility0: Array  # [] r^T s_true at the start

    @property
    def regret(self) -> Array:
        return jnp.cumsum(self.oracle - self.expected, axis=-1)


def make_world(key: Array, config: SimConfig = SimConfig()) -> SimWorld:
    """Draw a world: diagonal gains 0.2-0.4, ~30 % helpful and ~40 % interfering off-diagonals.

    One flat uniform draw sliced into every quantity: each PRNG call, and each extra dimension of
    its shape (partitionable threefry), costs seconds of XLA compile time on CPU.
    """
    c = config.n_caps
    u = jax.random.uniform(key, (5 * c * c,), minval=1e-6, maxval=1.0 - 1e-6).reshape(5, c, c)
    diag = 0.2 + 0.2 * u[0, 0]
    pos = (u[1] < 0.3) * (0.1 + 0.4 * u[2])
    neg = (u[3] < 0.4) * (0.05 + 0.25 * u[4])
    off = (pos - neg) * diag[:, None]
    transfer = off * (1.0 - jnp.eye(c)) + jnp.diag(diag)
    s0 = 0.2 + 0.3 * u[0, 1]
    # softmax of scaled normals: a few capabilities dominate, like a Dirichlet with small alpha,
    # without jax.random.gamma (slow to compile on CPU).
    r = jax.nn.softmax(config.requirement_sharpness * ndtri(u[0, 2]))
    return SimWorld(transfer=transfer, s0=s0, r=r)


def progress(n: Array, tau: float) -> Array:
    """G(n) = 1 - exp(-n / tau): concave progress in the budget fraction spent on a capability."""
    return 1.0 - jnp.exp(-n / tau)


def world_step(world: SimWorld, spent: Array, w: Array, config: SimConfig) -> tuple[Array, Array]:
    """(ds_true [C], new spent [C]) for allocation ``w`` [C] given the budget spent so far."""
    m = 1.0 / config.n_steps
    new_spent = spent + m * w
    d_prog = progress(new_spent, config.tau) - progress(spent, config.tau)
    pos = jnp.maximum(world.transfer, 0.0)
    neg = jnp.maximum(-world.transfer, 0.0)
    interference = (m * w) @ neg * (1.0 + config.growth * jnp.sum(spent))
    return d_prog @ pos - interference, new_spent


def effective_transfer(world: SimWorld, budget: float, config: SimConfig = SimConfig()) -> Array:
    """T_ij(B) = s_j(one-hot i for budget fraction B) - s_j(start), noise-free (the paper's Finding 1)."""
    steps = max(1, int(round(budget * config.n_steps)))

    def one(i: Array) -> Array:
        w = jax.nn.one_hot(i, config.n_caps)

        def body(carry, _):
            s, spent = carry
            ds, spent = world_step(world, spent, w, config)
            return (s + ds, spent), None

        (s, _), _ = jax.lax.scan(body, (world.s0, jnp.zeros(config.n_caps)), None, length=steps)
        return s - world.s0

    return jax.vmap(one)(jnp.arange(config.n_caps))


def _reward(world: SimWorld, ds: Array, config: SimConfig) -> Array:
    cost = config.lam * config.step_tokens
    return jnp.dot(world.r, ds) - config.beta * spillover_jax(world.r, ds, config.top_k) - cost


def candidates(world: SimWorld, config: SimConfig) -> Array:
    """The artifact's candidate set for this world's task (sparse top-k, jittable)."""
    return candidate_actions_jax(
        world.r, 2, config.weight_grid, config.top_k, 50, config.include_one_hot
    )


def simulate(policy: Policy, world: SimWorld, key: Array, config: SimConfig = SimConfig(), state: Any = None) -> SimResult:
    """One run of ``policy`` in ``world`` (pure; jit / vmap it).  ``state`` overrides policy.init."""
    k_init, k_policy, k_noise = jax.random.split(key, 3)
    actions = candidates(world, config)
    state = policy.init(k_init) if state is None else state
    c, n_steps = config.n_caps, config.n_steps
    # drawn once, outside the scan, flat (see make_world)
    noise = config.noise * jax.random.normal(k_noise, ((n_steps + 1) * c,)).reshape(n_steps + 1, c)
    policy_keys = jax.random.split(k_policy, n_steps)

    def expected_reward(spent: Array, w: Array) -> Array:
        ds, _ = world_step(world, spent, w, config)
        return _reward(world, ds, config)

    def body(carry, xs):
        t, k_t, eps = xs
        pstate, s_true, s_obs, spent, prev_w, prev_gain = carry
        ctx = make_context(world.r, s_obs, 1.0 - t / n_steps, prev_w, prev_gain)
        w, pstate = policy.select(pstate, ctx, actions, k_t)
        ds_true, new_spent = world_step(world, spent, w, config)
        s_true = s_true + ds_true
        new_obs = s_true + eps
        ds_obs = new_obs - s_obs
        reward = _reward(world, ds_obs, config)
        pstate = policy.update(pstate, ctx, w, reward, ds_obs)
        is_ckpt = (t + 1) % config.checkpoint_every == 0
        ck = policy.on_checkpoint(pstate, jnp.dot(world.r, new_obs))
        pstate = jax.tree.map(lambda a, b: jnp.where(is_ckpt, a, b), ck, pstate)
        oracle = jnp.max(jax.vmap(lambda a: expected_reward(spent, a))(actions))
        out = (w, reward, expected_reward(spent, w), oracle, jnp.dot(world.r, s_true))
        return (pstate, s_true, new_obs, new_spent, w, ds_obs), out

    carry0 = (state, world.s0, world.s0 + noise[0], jnp.zeros(c), jnp.zeros(c), jnp.zeros(c))
    xs = (jnp.arange(n_steps), policy_keys, noise[1:])
    _, (ws, rewards, expected, oracle, utility) = jax.lax.scan(body, carry0, xs)
    return SimResult(
        allocations=ws, rewards=rewards, expected=expected, oracle=oracle, utility=utility,
        utility0=jnp.dot(world.r, world.s0),
    )


@functools.partial(jax.jit, static_argnums=(1, 2))
def make_worlds(key: Array, n_seeds: int, config: SimConfig = SimConfig()) -> tuple[SimWorld, Array]:
    """``n_seeds`` worlds (batched pytree) and one run key per seed; compiled once per config and
    shared by every policy, so seed i is the same world for every policy (paired comparison)."""
    k_world, k_run = jax.random.split(key)
    worlds = jax.vmap(lambda k: make_world(k, config))(jax.random.split(k_world, n_seeds))
    return worlds, jax.random.split(k_run, n_seeds)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _run_batch(policy: Policy, config: SimConfig, worlds: SimWorld, keys: Array) -> SimResult:
    return jax.vmap(lambda w, k: simulate(policy, w, k, config))(worlds, keys)


def run_seeds(policy: Policy, key: Array, n_seeds: int, config: SimConfig = SimConfig()) -> SimResult:
    """``n_seeds`` independent (world, run) pairs in one jitted, vmapped call (leading [n_seeds])."""
    worlds, keys = make_worlds(key, n_seeds, config)
    return _run_batch(policy, config, worlds, keys)


@functools.partial(jax.jit, static_argnums=(0,))
def _run_fixed(config: SimConfig, worlds: SimWorld, keys: Array) -> SimResult:
    policy = BestFixedPolicy(config.n_caps, 4 * config.n_caps + 1)

    def one(world: SimWorld, k: Array, index: Array) -> SimResult:
        state = FixedState(allocation=jnp.zeros((config.n_caps,), jnp.float32), index=index,
                           step=jnp.zeros((), jnp.int32))
        return simulate(policy, world, k, config, state=state)

    n_cand = candidates(jax.tree.map(lambda a: a[0], worlds), config).shape[0]
    over_seeds = jax.vmap(one, in_axes=(0, 0, None))
    return jax.vmap(over_seeds, in_axes=(None, None, 0))(worlds, keys, jnp.arange(n_cand))


def best_fixed_in_hindsight(key: Array, n_seeds: int, config: SimConfig = SimConfig()) -> tuple[int, SimResult]:
    """The paper's "best fixed grid allocation": every candidate (rank-relative, e.g. "0.5 / 0.5 on
    the top two") as a fixed schedule on the same seeds as `run_seeds`; returns the index with the
    best mean final utility and its runs.  An oracle: it picks with the evaluation outcomes."""
    worlds, keys = make_worlds(key, n_seeds, config)
    res = _run_fixed(config, worlds, keys)
    best = int(jnp.argmax(jnp.mean(res.utility[:, :, -1], axis=1)))
    return best, jax.tree.map(lambda a: a[best], res)


@chex.dataclass
class LinearResult:
    expected: Array  # [T] true mean reward of the played allocation
    oracle: Array  # [T] best true mean reward among the candidates
    candidate_means: Array  # [T, K] true mean reward of every candidate (for exact baselines)

    @property
    def regret(self) -> Array:
        return jnp.cumsum(self.oracle - self.expected, axis=-1)


def simulate_linear(
    policy: Policy, key: Array, theta: Array, actions: Array, features: FeatureMap, n_rounds: int, noise: float = 0.1
) -> LinearResult:
    """A realizable linear contextual bandit: R = phi(x, w)^T theta + noise, x ~ U(0, 1)^dx fresh
    each round.  The sanity problem on which a correct BLR-UCB must beat uniform and random."""
    k_init, k_ctx, k_sel, k_noise = jax.random.split(key, 4)
    state = policy.init(k_init)
    contexts = jax.random.uniform(k_ctx, (n_rounds * features.context_dim,)).reshape(n_rounds, -1)
    noises = noise * jax.random.normal(k_noise, (n_rounds,))

    def body(pstate, xs):
        x, k, eps = xs
        w, pstate = policy.select(pstate, x, actions, k)
        mean = features(x, w) @ theta
        pstate = policy.update(pstate, x, w, mean + eps)
        means = features(x, actions) @ theta
        return pstate, (mean, jnp.max(means), means)

    xs = (contexts, jax.random.split(k_sel, n_rounds), noises)
    _, (expected, oracle, means) = jax.lax.scan(body, state, xs)
    return LinearResult(expected=expected, oracle=oracle, candidate_means=means)
