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
ENSEMBLE_POLICIES = {"read_ensemble", "read_paper", "greedy_ensemble"}
CANDIDATE_POLICIES = {"read_ucb", "read_thompson", "greedy", "best_fixed", "random"} | ENSEMBLE_POLICIES


def _small(name: str, **kwargs):
    return make_policy(name, n_caps=C, **(SMALL_ENSEMBLE if name in ENSEMBLE_POLICIES else {}), **kwargs)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_runs_select_update(name):
    policy = _small(name)
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


def test_read_paper_and_greedy_ensemble_are_the_papers_learner():
    paper, greedy = make_policy("read_paper", n_caps=C), make_policy("greedy_ensemble", n_caps=C)
    for p in (paper, greedy):
        assert p.model == "ensemble" and p.strategy == "ucb" and p.warmup == 5 and p.persistent_optimizer
        assert p.ensemble_config == EnsembleConfig()  # J = 5, 64 hidden, Adam 1e-3, 200 steps
    assert paper.kappa == 1.0 and paper.kappa_decay == pytest.approx(0.7)
    assert greedy.kappa == 0.0 and greedy.kappa_decay == 1.0
    assert not make_policy("read_ensemble", n_caps=C).persistent_optimizer  # unchanged default
    assert make_policy("read_ucb", n_caps=C).warmup == 0 and make_policy("greedy", n_caps=C).warmup == 0
    with pytest.raises(ReadJaxError, match="persistent_optimizer"):
        make_policy("read_ucb", n_caps=C, persistent_optimizer=True)
    with pytest.raises(ReadJaxError, match="warmup"):
        make_policy("read_ucb", n_caps=C, warmup=-1)


# six distinct candidates, two of them masked out (not a prefix mask)
MASK_ACTIONS = jnp.asarray([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0],
                            [0.0, 0.0, 1.0], [0.25, 0.75, 0.0], [0.0, 0.5, 0.5]], jnp.float32)
MASK = jnp.asarray([True, False, True, True, False, True])


def _index_of(w, actions=MASK_ACTIONS):
    return jnp.argmin(jnp.sum(jnp.abs(actions - w), axis=-1))


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_masked_rows_are_never_chosen(name):
    """Every policy honours the mask; the masked one-hot on capability 1 would be the best arm."""
    policy = _small(name, **({"index": 1} if name == "best_fixed" else {}))
    key = jax.random.PRNGKey(1)
    state = policy.init(key)
    theta = jnp.asarray([0.1, 1.0, 0.2])
    for t in range(8):
        ctx = make_context([0.2, 0.5, 0.3], [0.1, 0.2, 0.3], 1.0 - t / 8)
        w, state = policy.select(state, ctx, MASK_ACTIONS, jax.random.fold_in(key, t), MASK)
        w = np.asarray(w)
        assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-5
        if name in CANDIDATE_POLICIES:
            i = int(_index_of(w))
            assert np.allclose(w, MASK_ACTIONS[i]) and bool(MASK[i]), (name, t, w)
        state = policy.update(state, ctx, jnp.asarray(w), float(jnp.dot(theta, jnp.asarray(w))))
    if name == "best_fixed":  # index 1 is the second *valid* row
        np.testing.assert_allclose(w, MASK_ACTIONS[2])


@pytest.mark.parametrize("name,kwargs", [("read_paper", {}), ("read_ucb", {"warmup": 5})])
def test_warmup_is_uniform_over_valid_candidates_then_argmax_ucb(name, kwargs):
    """The first 5 decisions are uniformly random among the unmasked rows (over 400 seeds); from the
    6th on the choice is the masked argmax of the UCB scores."""
    policy = _small(name, **kwargs)
    n_seeds, n_steps, warm = 400, 7, 5
    ctx = make_context([0.2, 0.5, 0.3], [0.1, 0.2, 0.3], 0.5)

    def episode(key, theta):
        def body(state, t):
            k = jax.random.fold_in(key, t)
            w, new = policy.select(state, ctx, MASK_ACTIONS, k, MASK)
            scores, _ = policy.scores(state, ctx, MASK_ACTIONS, jax.random.split(k)[0])
            best = jnp.argmax(jnp.where(MASK, scores, -jnp.inf))
            new = policy.update(new, ctx, w, jnp.dot(theta, w))
            return new, (_index_of(w), best)

        return jax.lax.scan(body, policy.init(key), jnp.arange(n_steps))[1]

    keys = jax.random.split(jax.random.PRNGKey(7), n_seeds)
    thetas = jax.random.normal(jax.random.PRNGKey(8), (n_seeds, C))
    chosen, best = (np.asarray(a) for a in jax.jit(jax.vmap(episode))(keys, thetas))  # [seeds, steps]
    valid = np.flatnonzero(np.asarray(MASK))
    assert np.isin(chosen, valid).all()  # never a masked row, warm-up or not
    counts = np.stack([(chosen[:, :warm] == i).sum(0) for i in valid])  # [valid, warm-up step]
    # each warm-up step: Binomial(400, 1/4) per row, mean 100, sd 8.7 (bounds at ~4.6 sd)
    assert counts.min() >= 60 and counts.max() <= 140, counts
    pooled = counts.sum(1)  # 2000 draws, expected 500 per row; chi-square with 3 dof, p ~ 1e-6 at 30
    assert ((pooled - 500.0) ** 2 / 500.0).sum() < 30.0, pooled
    # the warm-up ignores the model: it disagrees with the UCB argmax about 3 times in 4
    assert (chosen[:, :warm] != best[:, :warm]).mean() > 0.5
    np.testing.assert_array_equal(chosen[:, warm:], best[:, warm:])
