"""Every policy behind the one interface; BLR-UCB beats uniform and random on a linear problem."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from read_jax.bandit import POLICIES, EnsembleConfig, FeatureMap, make_context, make_policy, pad_actions
from read_jax.bandit.simulator import simulate_linear
from read_jax.errors import ReadJaxError

C = 3
SMALL_ENSEMBLE = dict(ensemble_config=EnsembleConfig(n_members=2, hidden=8, train_steps=3, batch_size=4, capacity=8))
CANDIDATE_POLICIES = {"read_ucb", "read_thompson", "read_ensemble", "greedy", "best_fixed", "random"}


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_runs_select_update(name):
    policy = make_policy(name, n_caps=C, **(SMALL_ENSEMBLE if name == "read_ensemble" else {}))
    assert policy.name == name
    actions, mask = pad_actions([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]], 5)
    key = jax.random.PRNGKey(0)
    state = policy.init(key)
    s = jnp.asarray([0.3, 0.5, 0.2])
    for t in range(3):
        ctx = make_context([0.6, 0.3, 0.1], s, 1.0 - t / 3)
        w, state = policy.select(state, ctx, actions, jax.random.fold_in(key, t), mask)
        w = np.asarray(w)
        assert w.shape == (C,) and np.all(np.isfinite(w)) and np.all(w >= 0) and abs(w.sum() - 1) < 1e-5
        if name in CANDIDATE_POLICIES:  # chosen among the valid candidates, never a padded row
            assert any(np.allclose(w, a) for a in np.asarray(actions)[:3])
        ds = jnp.asarray([0.02, -0.01, 0.0]) * (t + 1)
        state = policy.update(state, ctx, jnp.asarray(w), jnp.float32(0.01 * t), ds)
        state = policy.on_checkpoint(state, jnp.float32(0.5))
        s = s + ds


def test_unknown_policy_and_bad_option_are_one_line_errors():
    with pytest.raises(ReadJaxError, match="'nope'") as err:
        make_policy("nope", n_caps=C)
    assert "\n" not in str(err.value)
    with pytest.raises(ReadJaxError, match="uniform") as err:
        make_policy("uniform", n_caps=C, kappa=2.0)
    assert "\n" not in str(err.value)
    with pytest.raises(ReadJaxError):
        make_policy("read_ucb", n_caps=C, strategy="softmax")


def test_schedules_follow_r():
    ctx = make_context([0.2, 0.5, 0.3], [0.1, 0.1, 0.1], 1.0)
    acts = jnp.eye(C)
    key = jax.random.PRNGKey(0)
    for name, want in (("task_static", [0.2, 0.5, 0.3]), ("one_hot", [0, 1, 0]), ("uniform", [1 / 3] * 3)):
        p = make_policy(name, n_caps=C)
        np.testing.assert_allclose(p.select(p.init(key), ctx, acts, key)[0], want, atol=1e-6)
    p = make_policy("best_fixed", n_caps=C, allocation=[0.1, 0.2, 0.7])
    np.testing.assert_allclose(p.select(p.init(key), ctx, acts, key)[0], [0.1, 0.2, 0.7], atol=1e-6)
    p = make_policy("best_fixed", n_caps=C, index=2)
    np.testing.assert_allclose(p.select(p.init(key), ctx, acts, key)[0], [0, 0, 1])


def test_doremi_and_odm_shift_mass_to_the_largest_loss():
    key = jax.random.PRNGKey(0)
    ctx = make_context([1 / 3] * 3, [0.2, 0.8, 0.9], 1.0)  # capability 0 is furthest behind
    acts = jnp.eye(C)
    for name in ("doremi", "odm"):
        p = make_policy(name, n_caps=C)
        state = p.init(key)
        for _ in range(30):
            w, state = p.select(state, ctx, acts, key)
            state = p.update(state, ctx, w, 0.0)
        w = np.asarray(p.select(state, ctx, acts, key)[0])
        assert int(np.argmax(w)) == 0 and abs(w.sum() - 1) < 1e-5, (name, w)
        assert w.min() > 0  # both keep exploring every capability (smoothing / EXP3 floor)


def test_read_kappa_decays_when_dev_utility_stalls():
    p = make_policy("read_ucb", n_caps=C, kappa=2.0)
    state = p.init(jax.random.PRNGKey(0))
    for dev, want in ((0.5, 2.0), (0.6, 2.0), (0.55, 1.4), (0.7, 1.4)):
        state = p.on_checkpoint(state, dev)
        assert float(state.kappa) == pytest.approx(want)


def test_blr_ucb_beats_uniform_and_random_on_a_linear_contextual_problem():
    fmap = FeatureMap(C, 4, ("linear", "sqrt"), "full")
    rng = np.random.default_rng(0)
    # 8 random mixtures plus the uniform allocation (last row), so every policy's regret is >= 0
    actions = jnp.asarray(np.vstack([rng.dirichlet(np.ones(C), 8), np.full((1, C), 1 / C)]), jnp.float32)
    n_seeds, n_rounds = 4, 200
    thetas = jnp.asarray(rng.normal(size=(n_seeds, fmap.dim)), jnp.float32)
    keys = jax.random.split(jax.random.PRNGKey(0), n_seeds)
    ucb = make_policy("read_ucb", n_caps=C, context_dim=4, interaction="full")
    res = jax.jit(jax.vmap(lambda k, th: simulate_linear(ucb, k, th, actions, fmap, n_rounds, 0.1)))(keys, thetas)
    # the baselines on the very same contexts, exactly: uniform always plays the last candidate,
    # random's expected regret is the mean over candidates (no sampling noise in the comparison)
    oracle, means = np.asarray(res.oracle), np.asarray(res.candidate_means)
    regret = {
        "read_ucb": np.asarray(res.regret[:, -1]),
        "uniform": (oracle - means[:, :, -1]).sum(1),
        "random": (oracle[:, :, None] - means).mean(2).sum(1),
    }
    uni = make_policy("uniform", n_caps=C, context_dim=4)
    np.testing.assert_allclose(uni.select(uni.init(keys[0]), jnp.zeros(4), actions, keys[0])[0], actions[-1])
    assert np.all(regret["read_ucb"] >= 0)
    assert regret["read_ucb"].mean() < 0.5 * regret["uniform"].mean(), regret
    assert regret["read_ucb"].mean() < 0.5 * regret["random"].mean(), regret
    assert np.all(regret["read_ucb"] < regret["random"]), regret
