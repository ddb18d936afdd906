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
