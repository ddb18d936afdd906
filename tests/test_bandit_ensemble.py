"""The paper's bootstrap MLP ensemble: numpy forward reference, training, spread, ring buffer."""

import jax
import jax.numpy as jnp
import numpy as np

from read_jax.bandit import ensemble
from read_jax.bandit.ensemble import EnsembleConfig

CFG = EnsembleConfig(n_members=4, hidden=16, lr=1e-2, train_steps=100, batch_size=16, capacity=32)


def _numpy_mlp(p, x):
    h = np.maximum(x @ p["w0"] + p["b0"], 0)
    h = np.maximum(h @ p["w1"] + p["b1"], 0)
    return (h @ p["w2"] + p["b2"])[..., 0]


def _filled(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, 2)).astype(np.float32)
    y = (np.sin(3 * x[:, 0]) + x[:, 1]).astype(np.float32)
    state = ensemble.init(jax.random.PRNGKey(seed), 2, CFG)
    for xi, yi in zip(x, y):
        state = ensemble.add(state, xi, yi)
    return state, x, y


def test_predict_matches_numpy_reference():
    state, x, _ = _filled(5)
    params = jax.tree.map(np.asarray, state.params)
    members = np.stack([_numpy_mlp({k: v[j] for k, v in params.items()}, x) for j in range(CFG.n_members)])
    # standardisation: predictions are mean + std * raw output
    t = np.asarray(state.targets[:5], np.float64)
    want = t.mean() + (t.std() + 1e-8) * members
    np.testing.assert_allclose(ensemble.predict_members(state, x, CFG), want, rtol=1e-4, atol=1e-5)
    mu, sigma = ensemble.predict(state, x, CFG)
    np.testing.assert_allclose(mu, want.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sigma, want.std(0, ddof=1), rtol=1e-3, atol=1e-5)


def test_fit_learns_and_members_disagree_off_the_data():
    state, x, y = _filled(24)
    before = np.asarray(ensemble.predict(state, x, CFG)[0])
    fitted, losses = ensemble.fit(state, jax.random.PRNGKey(1), CFG)
    assert losses.shape == (CFG.n_members, CFG.train_steps)
    assert np.all(np.asarray(losses[:, -10:]).mean(1) < 0.5 * np.asarray(losses[:, :10]).mean(1))
    mu, sigma = (np.asarray(a) for a in ensemble.predict(fitted, x, CFG))
    assert np.mean((mu - y) ** 2) < 0.5 * np.mean((before - y) ** 2)
    far = np.full((8, 2), 4.0, np.float32)  # far outside the unit square the data live in
    assert np.all(sigma > 0)
    assert float(np.mean(ensemble.predict(fitted, far, CFG)[1])) > 2 * float(np.mean(sigma))


def test_empty_buffer_fit_is_a_no_op_and_ring_buffer_wraps():
    state = ensemble.init(jax.random.PRNGKey(0), 2, CFG)
    fitted, _ = ensemble.fit(state, jax.random.PRNGKey(1), CFG)
    jax.tree.map(np.testing.assert_array_equal, fitted.params, state.params)
    for i in range(CFG.capacity + 3):
        state = ensemble.add(state, jnp.asarray([i, i], jnp.float32), float(i))
    assert int(state.count) == CFG.capacity + 3
    assert float(state.targets[0]) == CFG.capacity and float(state.targets[3]) == 3.0


def _leaves_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def _max_diff(a, b) -> float:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b))
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in pairs)


def test_persistent_optimizer_is_carried_across_refits():
    fresh, _, _ = _filled(12)
    persistent = ensemble.init(jax.random.PRNGKey(0), 2, CFG, True)
    assert isinstance(persistent, ensemble.PersistentEnsembleState)
    assert not isinstance(fresh, ensemble.PersistentEnsembleState)  # the default keeps its old pytree
    assert len(jax.tree.leaves(fresh)) == len(jax.tree.leaves(fresh.params)) + 3
    # an empty buffer changes neither the parameters nor the optimiser state
    same, _ = ensemble.fit(persistent, jax.random.PRNGKey(1), CFG)
    assert _leaves_equal(same, persistent)
    persistent = persistent.replace(inputs=fresh.inputs, targets=fresh.targets, count=fresh.count)
    counts, states = [], [persistent.opt_state]
    p, f = persistent, fresh
    for i in range(3):
        key = jax.random.PRNGKey(10 + i)
        p, _ = ensemble.fit(p, key, CFG)
        f, _ = ensemble.fit(f, key, CFG)
        counts.append(np.asarray(p.opt_state[0].count))
        states.append(p.opt_state)
        if i == 0:  # the first refit starts from a fresh Adam state either way: the same parameters
            assert _max_diff(p.params, f.params) < 1e-5  # (up to float rounding: two compiled programs)
    # every refit continues the step count and moves the moments; later refits differ from a fresh Adam
    np.testing.assert_array_equal(counts, [[CFG.train_steps * (i + 1)] * CFG.n_members for i in range(3)])
    for before, after in zip(states, states[1:]):
        assert not _leaves_equal(before[0].mu, after[0].mu) and not _leaves_equal(before[0].nu, after[0].nu)
    assert _max_diff(p.params, f.params) > 1e-3  # continuing the moments is not a fresh Adam
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(p))


def test_persistent_policy_state_survives_a_checkpoint_round_trip(tmp_path):
    from read_jax.bandit import make_context, make_policy, pad_actions
    from read_jax.checkpoint import RunCheckpointer

    policy = make_policy("read_paper", n_caps=3, ensemble_config=EnsembleConfig(
        n_members=2, hidden=8, train_steps=5, batch_size=4, capacity=8), warmup=2)
    actions, mask = pad_actions([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.25, 0.75]], 5)
    key = jax.random.PRNGKey(3)
    state = policy.init(key)
    x = make_context([0.5, 0.3, 0.2], [0.1, 0.2, 0.3], 0.5)
    for t in range(4):
        w, state = policy.select(state, x, actions, jax.random.fold_in(key, t), mask)
        state = policy.update(state, x, w, 0.1 * t)
    assert int(state.model.opt_state[0].count[0]) > 0  # refits have run
    ckpt = RunCheckpointer(tmp_path / "ckpt", async_save=False)
    ckpt.save(4, {"policy": state}, {"t": 4})
    fresh = policy.init(jax.random.PRNGKey(99))
    restored, _ = ckpt.restore({"policy": fresh})
    restored = restored["policy"]
    assert type(restored.model) is ensemble.PersistentEnsembleState
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    assert _leaves_equal(restored, state)
    # the restored state decides and learns exactly like the original
    k = jax.random.fold_in(key, 4)
    w1, s1 = policy.select(state, x, actions, k, mask)
    w2, s2 = policy.select(restored, x, actions, k, mask)
    np.testing.assert_array_equal(np.asarray(w1), np.asarray(w2))
    assert _leaves_equal(s1, s2)
    ckpt.close()
