"""The paper's reward model: a bootstrap ensemble of J small MLPs on (x, w) -> R, UCB on mu + kappa sigma.

This is the paper-faithful alternative to the BLR default.  Artifact defaults: J = 5 members, two
hidden layers of 64 units (ReLU), Adam lr 1e-3, 200 steps of minibatch 64 per fit, 5 random
warm-up decisions before the model is trusted.  Input is the plain concatenation [x ; w].

How it is made fast and scan-able in JAX:

* the J members' parameters are one pytree with a leading [J] axis; training and prediction are
  ``vmap``-ed over members, the 200 Adam steps are one ``lax.scan``, the whole fit is one ``jit``;
* the logged data live in a fixed-capacity ring buffer, so shapes never change as data arrive;
* bootstrap: each member draws multiplicities for the n logged rounds (n draws with replacement)
  and samples its minibatches from that resample, i.e. categorical over rows with probability
  proportional to the multiplicity.

Optimiser across refits.  Each fit continues from the current parameters.  By default it starts a
fresh Adam state (moments zero, bias correction restarted).  The artifact (``read/bandit.py`` of
LabRAI/ReAD: ``UCBEnsembleBandit`` builds one ``torch.optim.Adam`` per member in ``__init__`` and
``fit`` reuses it) keeps one Adam state per member for the whole run; ``init(...,
persistent_optimizer=True)`` does the same: the state is then a `PersistentEnsembleState`, whose
``opt_state`` (the J members' Adam moments and step counts, a pytree with a leading [J] axis) is
carried from fit to fit and checkpointed with the rest of the state.  Plain `EnsembleState` keeps
the pytree structure it always had, so older checkpoints still restore.

Assumptions where the paper and artifact are silent (documented, not hidden): targets are
standardised by the buffer's mean / std for training (predictions are mapped back), which makes
lr 1e-3 sensible whatever the reward units; the ensemble spread uses the unbiased std over
members, like ``torch.std``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import chex
import jax
import jax.numpy as jnp
import optax

Array = jax.Array
Params = dict[str, Array]


@dataclasses.dataclass(frozen=True)
class EnsembleConfig:
    """Static configuration (hashable: it is a static argument of the jitted functions)."""

    n_members: int = 5
    hidden: int = 64
    lr: float = 1e-3
    train_steps: int = 200
    batch_size: int = 64
    capacity: int = 256
    standardize: bool = True


@chex.dataclass
class EnsembleState:
    """Member parameters (leading [J] axis) and the ring buffer of logged (input, reward) rounds."""

    params: Params
    inputs: Array  # [capacity, input_dim]
    targets: Array  # [capacity]
    count: Array  # [] int32, rounds ever added (the buffer holds the last `capacity`)


@chex.dataclass
class PersistentEnsembleState(EnsembleState):
    """An `EnsembleState` whose members keep one Adam state across refits (the artifact's way)."""

    opt_state: Any  # optax Adam state of every member, leading [J] axis (count [J], moments like params)


def _optimizer(config: "EnsembleConfig") -> optax.GradientTransformation:
    return optax.adam(config.lr)


def _init_member(key: Array, input_dim: int, hidden: int) -> Params:
    """PyTorch nn.Linear default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases."""
    dims = [(input_dim, hidden), (hidden, hidden), (hidden, 1)]
    params: Params = {}
    for i, (fan_in, fan_out) in enumerate(dims):
        key, kw, kb = jax.random.split(key, 3)
        bound = 1.0 / jnp.sqrt(fan_in)
        # drawn flat: multi-dimensional threefry shapes compile much slower on CPU
        flat = jax.random.uniform(kw, (fan_in * fan_out,), jnp.float32, -bound, bound)
        params[f"w{i}"] = flat.reshape(fan_in, fan_out)
        params[f"b{i}"] = jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound)
    return params


def mlp_apply(params: Params, x: Array) -> Array:
    """Two hidden ReLU layers -> scalar.  x [..., input_dim] -> [...]."""
    h = jax.nn.relu(x @ params["w0"] + params["b0"])
    h = jax.nn.relu(h @ params["w1"] + params["b1"])
    return (h @ params["w2"] + params["b2"])[..., 0]


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def init(
    key: Array, input_dim: int, config: EnsembleConfig = EnsembleConfig(), persistent_optimizer: bool = False
) -> EnsembleState:
    """J independently initialised members and an empty buffer.

    With ``persistent_optimizer`` the state also holds every member's Adam state
    (`PersistentEnsembleState`), which `fit` then carries across refits instead of starting afresh.
    """
    keys = jax.random.split(key, config.n_members)
    params = jax.vmap(lambda k: _init_member(k, input_dim, config.hidden))(keys)
    fields = dict(
        params=params,
        inputs=jnp.zeros((config.capacity, input_dim), jnp.float32),
        targets=jnp.zeros((config.capacity,), jnp.float32),
        count=jnp.zeros((), jnp.int32),
    )
    if persistent_optimizer:
        return PersistentEnsembleState(**fields, opt_state=jax.vmap(_optimizer(config).init)(params))
    return EnsembleState(**fields)


@jax.jit
def add(state: EnsembleState, inputs: Array, target: Array | float) -> EnsembleState:
    """Log one round (overwrites the oldest once the buffer is full)."""
    pos = state.count % state.targets.shape[0]
    return state.replace(
        inputs=state.inputs.at[pos].set(jnp.asarray(inputs, jnp.float32)),
        targets=state.targets.at[pos].set(jnp.asarray(target, jnp.float32)),
        count=state.count + 1,
    )


def _target_stats(state: EnsembleState, standardize: bool) -> tuple[Array, Array, Array, Array]:
    cap = state.targets.shape[0]
    n = jnp.minimum(state.count, cap)
    valid = jnp.arange(cap) < n
    if not standardize:
        return n, valid, jnp.zeros(()), jnp.ones(())
    nf = jnp.maximum(n, 1).astype(jnp.float32)
    mean = jnp.sum(jnp.where(valid, state.targets, 0.0)) / nf
    var = jnp.sum(jnp.where(valid, (state.targets - mean) ** 2, 0.0)) / nf
    return n, valid, mean, jnp.sqrt(var) + 1e-8


@functools.partial(jax.jit, static_argnames=("config",))
def fit(state: EnsembleState, key: Array, config: EnsembleConfig = EnsembleConfig()) -> tuple[EnsembleState, Array]:
    """Train every member for ``config.train_steps`` Adam steps on its bootstrap resample.

    Returns the new state and the per-member training losses [J, steps].  With an empty buffer
    the parameters (and a persistent optimiser state) are left unchanged.  A
    `PersistentEnsembleState` continues from its members' Adam states and returns the updated ones;
    a plain `EnsembleState` starts each member from a fresh Adam state.
    """
    n, valid, mean, std = _target_stats(state, config.standardize)
    y = (state.targets - mean) / std
    cap = state.targets.shape[0]
    opt = _optimizer(config)
    persistent = isinstance(state, PersistentEnsembleState)

    def loss_fn(params: Params, xb: Array, yb: Array) -> Array:
        return jnp.mean((mlp_apply(params, xb) - yb) ** 2)

    def member(params: Params, mkey: Array, opt_state: Any = None) -> tuple[Params, Array, Any]:
        k_boot, k_steps = jax.random.split(mkey)
        draws = jax.random.randint(k_boot, (cap,), 0, jnp.maximum(n, 1))
        counts = jnp.zeros((cap,), jnp.float32).at[draws].add(valid.astype(jnp.float32))
        # sample rows with probability counts / n by inverting the CDF (cheaper than Gumbel-max
        # over [batch, capacity], and the same distribution)
        cdf = jnp.cumsum(counts)

        def step(carry, k):
            p, o = carry
            u = jax.random.uniform(k, (config.batch_size,)) * cdf[-1]
            idx = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), cap - 1)
            loss, grads = jax.value_and_grad(loss_fn)(p, state.inputs[idx], y[idx])
            updates, o = opt.update(grads, o, p)
            return (optax.apply_updates(p, updates), o), loss

        start = opt.init(params) if opt_state is None else opt_state
        (new, new_opt), losses = jax.lax.scan(step, (params, start), jax.random.split(k_steps, config.train_steps))
        keep = lambda a, b: jnp.where(n > 0, a, b)  # noqa: E731  (an empty buffer changes nothing)
        new = jax.tree.map(keep, new, params)
        return new, losses, (None if opt_state is None else jax.tree.map(keep, new_opt, opt_state))

    keys = jax.random.split(key, config.n_members)
    if not persistent:  # a fresh Adam state per member and per fit
        params, losses, _ = jax.vmap(member)(state.params, keys)
        return state.replace(params=params), losses
    params, losses, opt_state = jax.vmap(member)(state.params, keys, state.opt_state)
    return state.replace(params=params, opt_state=opt_state), losses


@functools.partial(jax.jit, static_argnames=("config",))
def predict_members(state: EnsembleState, inputs: Array, config: EnsembleConfig = EnsembleConfig()) -> Array:
    """Every member's prediction in reward units: [J, K] for ``inputs`` [K, input_dim]."""
    _, _, mean, std = _target_stats(state, config.standardize)
    out = jax.vmap(mlp_apply, in_axes=(0, None))(state.params, jnp.asarray(inputs, jnp.float32))
    return mean + std * out


@functools.partial(jax.jit, static_argnames=("config",))
def predict(state: EnsembleState, inputs: Array, config: EnsembleConfig = EnsembleConfig()) -> tuple[Array, Array]:
    """(mean, std) over members, each [K]."""
    preds = predict_members(state, inputs, config)
    ddof = 1 if config.n_members > 1 else 0
    return jnp.mean(preds, axis=0), jnp.std(preds, axis=0, ddof=ddof)


def ucb_scores(
    state: EnsembleState, inputs: Array, kappa: Array | float, config: EnsembleConfig = EnsembleConfig()
) -> Array:
    """mu + kappa * sigma over the members (the paper's acquisition)."""
    mu, sigma = predict(state, inputs, config)
    return mu + kappa * sigma


def ensemble_inputs(context: Array, actions: Array) -> Array:
    """The paper's model input: [x ; w] for every candidate, [K, dx + C]."""
    actions = jnp.asarray(actions, jnp.float32)
    x = jnp.broadcast_to(jnp.asarray(context, jnp.float32), (actions.shape[0], jnp.shape(context)[-1]))
    return jnp.concatenate([x, actions], axis=1)
