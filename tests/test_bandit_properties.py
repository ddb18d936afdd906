"""Property tests (hypothesis): every bandit policy stays finite and on the simplex under
adversarial rewards and contexts; non-finite inputs are refused with a one-line `ReadJaxError`.

The guaranteed range (read_jax/bandit/guards.py): any finite reward (|R| <= 1e15 used as given,
clipped to +-1e15 beyond); contexts with finite entries, |x| <= 1e6 (r, w_prev on the simplex,
b in [0, 1]).  Shapes are fixed (C = 3, 12 padded candidates), so each policy compiles once.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from read_jax.bandit import POLICIES, EnsembleConfig, build_candidate_actions, make_context, make_policy, pad_actions
from read_jax.bandit.guards import CONTEXT_LIMIT, REWARD_LIMIT, check_reward
from read_jax.bandit.policies import DoremiState, FixedState, OdmState
from read_jax.errors import ReadJaxError

C = 3
K = 12  # the artifact set for C = 3: 3 one-hots + 3 pairs x 3 weights
CAPS = ["a", "b", "c"]
SMALL_ENSEMBLE = EnsembleConfig(n_members=2, hidden=8, train_steps=3, batch_size=4, capacity=8)
FIXED_ALLOC = (0.2, 0.3, 0.5)


def _make(name: str):
    if name == "best_fixed_alloc":
        return make_policy("best_fixed", n_caps=C, allocation=FIXED_ALLOC)
    return make_policy(name, n_caps=C, **({"ensemble_config": SMALL_ENSEMBLE} if name in ENSEMBLE_POLICIES else {}))


ENSEMBLE_POLICIES = {"read_ensemble", "read_paper", "greedy_ensemble"}
NAMES = sorted(POLICIES) + ["best_fixed_alloc"]
POLICY = {name: _make(name) for name in NAMES}  # built once: the jit caches are keyed on the policy
CANDIDATE_POLICIES = {"read_ucb", "read_thompson", "greedy", "best_fixed", "random"} | ENSEMBLE_POLICIES

SETTINGS = settings(max_examples=20, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- strategies ---------------------------------------------------------------------------------
unit = st.floats(0.0, 1.0, allow_nan=False, width=32)
bounded = st.one_of(st.floats(-CONTEXT_LIMIT, CONTEXT_LIMIT, allow_nan=False, width=32),
                    st.sampled_from([CONTEXT_LIMIT, -CONTEXT_LIMIT, -30.0, 1e-30, 0.0]))  # the edges, often
finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)  # every finite float32
REGIMES = ("huge", "tiny", "constant", "alternating", "zeros", "any_finite", "past_limit")


@st.composite
def reward_sequence(draw, n: int) -> list[float]:
    """``n`` rewards of one adversarial regime."""
    regime = draw(st.sampled_from(REGIMES))
    if regime == "huge":  # +-1e6 .. 1e12: used as given
        return [draw(st.sampled_from([-1.0, 1.0])) * draw(st.floats(1e6, 1e12)) for _ in range(n)]
    if regime == "tiny":
        return [draw(st.sampled_from([-1.0, 1.0])) * draw(st.floats(1e-30, 1e-29)) for _ in range(n)]
    if regime == "constant":
        c = draw(st.one_of(finite32, st.sampled_from([0.0, 1e12, -1e12, 1e-30])))
        return [c] * n
    if regime == "alternating":
        m = draw(st.sampled_from([1e-30, 1e-2, 1.0, 1e6, 1e12, REWARD_LIMIT, 3e38]))
        return [m * (-1) ** t for t in range(n)]
    if regime == "zeros":
        return [0.0] * n
    if regime == "past_limit":  # finite, beyond the limit: clipped (float32 max included)
        return [draw(st.sampled_from([-1.0, 1.0])) * draw(st.floats(REWARD_LIMIT, 3.4e38)) for _ in range(n)]
    return [draw(finite32) for _ in range(n)]


@st.composite
def episode(draw):
    """A run: (r, rewards, per-step contexts pieces, checkpoint flags / dev utilities, #valid rows)."""
    n = draw(st.integers(1, 8))
    raw_r = np.asarray(draw(st.lists(unit, min_size=C, max_size=C)), np.float64) + 1e-6
    steps = []
    for reward in draw(reward_sequence(n)):
        steps.append(dict(
            reward=reward,
            s=draw(st.lists(bounded, min_size=C, max_size=C)),
            ds=draw(st.lists(bounded, min_size=C, max_size=C)),
            b=draw(unit),
            dev=draw(st.one_of(st.none(), finite32, unit)),  # None: no checkpoint after this step
        ))
    n_valid = draw(st.integers(1, K))
    return raw_r / raw_r.sum(), steps, n_valid


def _all_finite(tree) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(leaf)))) for leaf in jax.tree.leaves(jax.device_get(tree)))


def _assert_on_simplex(w, where=""):
    w = np.asarray(w, np.float64)
    assert w.shape == (C,), where
    assert np.all(np.isfinite(w)) and np.all(w >= 0.0), (where, w)
    assert abs(w.sum() - 1.0) <= 1e-5, (where, w)


# -- 1. adversarial rewards and contexts ----------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(ep=episode(), reward_type=st.sampled_from(["float", "np64", "np32", "jax"]), seed=st.integers(0, 2**16))
def test_policy_stays_finite_and_on_the_simplex_under_adversarial_rewards(name, ep, reward_type, seed):
    policy = POLICY[name]
    r, steps, n_valid = ep
    cands = build_candidate_actions(CAPS, r.tolist())
    assert len(cands) == K
    actions, _ = pad_actions(cands, K)
    mask = jnp.arange(K) < n_valid
    valid = np.asarray(actions)[:n_valid]
    key = jax.random.PRNGKey(seed)
    state = policy.init(key)
    assert _all_finite(state)
    w_prev = np.zeros(C)
    for t, step in enumerate(steps):
        x = make_context(r, step["s"], step["b"], w_prev, step["ds"])
        w, state = policy.select(state, x, actions, jax.random.fold_in(key, t), mask)
        w = np.asarray(w)
        _assert_on_simplex(w, (name, t))
        if name in CANDIDATE_POLICIES:  # one of the valid candidates, never a masked row
            assert np.any(np.all(np.abs(valid - w) <= 1e-6, axis=1)), (name, w, valid)
        if name == "best_fixed_alloc":
            np.testing.assert_allclose(w, FIXED_ALLOC, atol=1e-6)
        reward = {"float": float, "np64": np.float64, "np32": np.float32,
                  "jax": lambda v: jnp.asarray(v, jnp.float32)}[reward_type](step["reward"])
        state = policy.update(state, x, jnp.asarray(w), reward, jnp.asarray(step["ds"], jnp.float32))
        assert _all_finite(state), (name, t, step["reward"])
        if step["dev"] is not None:
            state = policy.on_checkpoint(state, step["dev"])
            assert _all_finite(state), (name, t, step["dev"])
        w_prev = w
    # still usable after the sequence: one more decision on the simplex
    x = make_context(r, steps[-1]["s"], 0.0, w_prev, steps[-1]["ds"])
    w, state = policy.select(state, x, actions, jax.random.fold_in(key, 999), mask)
    _assert_on_simplex(w, (name, "final"))


# -- 2. non-finite inputs are refused -------------------------------------------------------------
BAD = [math.nan, math.inf, -math.inf]
TYPES = {"float": float, "np64": np.float64, "np32": np.float32, "jax": lambda v: jnp.asarray(v, jnp.float32)}


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=6, deadline=None, derandomize=True)
@given(prefix=st.lists(st.floats(-1e3, 1e3), max_size=3), bad=st.sampled_from(BAD),
       kind=st.sampled_from(sorted(TYPES)))
def test_non_finite_rewards_are_refused_and_the_state_stays_usable(name, prefix, bad, kind):
    policy = POLICY[name]
    r = np.asarray([0.5, 0.3, 0.2])
    actions, mask = pad_actions(build_candidate_actions(CAPS, r.tolist()), K)
    key = jax.random.PRNGKey(0)
    state = policy.init(key)
    x = make_context(r, [0.1, -2.0, 0.3], 0.5)
    for t, reward in enumerate(prefix):
        w, state = policy.select(state, x, actions, jax.random.fold_in(key, t), mask)
        state = policy.update(state, x, w, reward)
    w, state = policy.select(state, x, actions, key, mask)
    with pytest.raises(ReadJaxError) as err:
        policy.update(state, x, w, TYPES[kind](bad))
    msg = str(err.value)
    assert "\n" not in msg and "reward" in msg and str(bad) in msg and repr(policy.name) in msg, msg
    # nothing was applied (pure update); the state takes the next finite reward
    state = policy.update(state, x, w, 0.5)
    assert _all_finite(state)
    _assert_on_simplex(policy.select(state, x, actions, key, mask)[0])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", BAD)
def test_non_finite_contexts_and_dev_utilities_are_refused(name, bad):
    policy = POLICY[name]
    actions, mask = pad_actions(build_candidate_actions(CAPS, [0.5, 0.3, 0.2]), K)
    key = jax.random.PRNGKey(0)
    state = policy.init(key)
    good = np.asarray(make_context([0.5, 0.3, 0.2], [0.1, -2.0, 0.3], 0.5))
    w = jnp.asarray([1.0, 0.0, 0.0])
    for i, as_jax in ((4, False), (12, True)):
        x = good.copy()
        x[i] = bad
        x = jnp.asarray(x) if as_jax else x
        for call in (lambda: policy.select(state, x, actions, key, mask), lambda: policy.update(state, x, w, 0.1)):
            with pytest.raises(ReadJaxError, match=f"context has 1 non-finite entry .first: {bad} at index {i}") as err:
                call()
            assert "\n" not in str(err.value)
    with pytest.raises(ReadJaxError, match=f"dev utility is {bad}") as err:
        policy.on_checkpoint(state, bad)
    assert "\n" not in str(err.value)


def test_guard_accepts_host_and_device_scalars_and_clips_past_the_limit():
    assert float(check_reward(0.25, "t")) == 0.25
    assert float(check_reward(np.float32(-3.0), "t")) == -3.0
    assert float(check_reward(jnp.asarray(2.0), "t")) == 2.0
    assert float(check_reward(1e300, "t")) == np.float32(REWARD_LIMIT)  # would overflow float32
    for bad in ("1.5", [1.0, 2.0], None, 1 + 2j, np.ones((40, 40)), jnp.ones(3)):
        with pytest.raises(ReadJaxError, match="^t: reward must be one real number, got ") as err:
            check_reward(bad, "t")
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["read_ucb", "read_ensemble", "read_paper"])
def test_rewards_within_the_limit_are_used_as_given_and_clipped_beyond(name):
    policy = POLICY[name]
    x = make_context([0.5, 0.3, 0.2], [0.0, 0.0, 0.0], 1.0)
    w = jnp.asarray([1.0, 0.0, 0.0])
    for reward, stored in ((1e12, 1e12), (-REWARD_LIMIT, -REWARD_LIMIT), (1e20, REWARD_LIMIT), (-3e38, -REWARD_LIMIT)):
        for as_jax in (False, True):
            state = policy.update(policy.init(jax.random.PRNGKey(0)), x, w,
                                  jnp.asarray(reward, jnp.float32) if as_jax else reward)
            got = state.pivot if name == "read_ucb" else state.model.targets[0]
            assert float(got) == pytest.approx(stored, rel=1e-6)
            assert _all_finite(state)


def test_traced_updates_skip_the_guard_but_still_clip():
    """Inside jit / scan (the simulator) the guard cannot look at values; the update clips them."""
    policy = POLICY["read_ucb"]
    x = make_context([0.5, 0.3, 0.2], [0.0, 0.0, 0.0], 1.0)
    w = jnp.asarray([0.5, 0.5, 0.0])

    @jax.jit
    def run(rewards):
        def body(s, rew):
            return policy.update(s, x, w, rew), None
        return jax.lax.scan(body, policy.init(jax.random.PRNGKey(0)), rewards)[0]

    state = run(jnp.asarray([3e38, -3e38, 1.0, 3e38], jnp.float32))
    assert _all_finite(state) and float(state.pivot) == np.float32(REWARD_LIMIT)


# -- 3. any state, not only reachable ones ---------------------------------------------------------
@settings(max_examples=40, deadline=None, derandomize=True)
@given(alloc=st.lists(st.one_of(finite32, st.sampled_from([math.nan, math.inf, -math.inf, 0.0])), min_size=C, max_size=C),
       index=st.integers(-5, 20), est=st.lists(finite32, min_size=C, max_size=C),
       log_alpha=st.lists(st.floats(-1e30, 1e30), min_size=C, max_size=C), step=st.integers(0, 2**30))
def test_no_policy_state_yields_an_allocation_off_the_simplex(alloc, index, est, log_alpha, step):
    actions, mask = pad_actions(build_candidate_actions(CAPS, [0.5, 0.3, 0.2]), K)
    x = make_context([0.5, 0.3, 0.2], [0.0, 0.0, 0.0], 1.0)
    key = jax.random.PRNGKey(0)
    t = jnp.asarray(step, jnp.int32)
    states = {
        "best_fixed": FixedState(allocation=jnp.asarray(alloc, jnp.float32), index=jnp.asarray(index, jnp.int32), step=t),
        "odm": OdmState(reward_est=jnp.asarray(est, jnp.float32), step=t),
        "doremi": DoremiState(log_alpha=jnp.asarray(log_alpha, jnp.float32), step=t),
    }
    for name, state in states.items():
        w, _ = POLICY[name].select(state, x, actions, key, mask)
        _assert_on_simplex(w, (name, alloc, est, log_alpha))


def test_best_fixed_refuses_an_allocation_off_the_simplex():
    for bad in ((0.5, 0.7, -0.2), (0.2, 0.2, 0.2), (math.nan, 0.5, 0.5), (0.5, 0.5)):
        with pytest.raises(ReadJaxError, match="best_fixed allocation"):
            make_policy("best_fixed", n_caps=C, allocation=bad)
