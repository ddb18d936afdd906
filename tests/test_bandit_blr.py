"""BLR posterior: exact statistics, closed-form NIG agreement, positive definiteness, Thompson spread."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from read_jax.bandit import blr
from read_jax.bandit.features import FeatureMap


def _data(seed: int, n: int, d: int, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    theta = rng.normal(size=d)
    y = (x @ theta + 0.3 * rng.normal(size=n)) * scale
    return x, y.astype(np.float32)


def _nig_numpy(x, y, a0=6.0, b0=6.0, lam=0.25, weights=None):
    """Closed-form NIG posterior in float64 (Riquelme et al. 2018), optionally weighted."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, np.float64)
    prec = (x * w[:, None]).T @ x + lam * np.eye(x.shape[1])
    mean = np.linalg.solve(prec, (x * w[:, None]).T @ y)
    a = a0 + 0.5 * w.sum()
    b = b0 + 0.5 * (np.sum(w * y * y) - mean @ prec @ mean)
    return mean, prec, a, b


@pytest.mark.parametrize("forget", [1.0, 0.9])
def test_batch_update_equals_sequence_of_single_updates(forget):
    x, y = _data(0, 12, 5)
    batch = blr.update(blr.init(5, forget=forget), x, y)
    seq = blr.init(5, forget=forget)
    for xi, yi in zip(x, y):
        seq = blr.update_one(seq, xi, yi)
    chex.assert_trees_all_close(batch, seq, rtol=1e-5, atol=1e-5)


def test_masked_rows_are_skipped_even_with_forgetting():
    x, y = _data(1, 8, 3)
    mask = np.array([1, 0, 1, 1, 0, 0, 1, 1], bool)
    masked = blr.update(blr.init(3, forget=0.8), x, y, mask)
    kept = blr.update(blr.init(3, forget=0.8), x[mask], y[mask])
    chex.assert_trees_all_close(masked, kept, rtol=1e-5, atol=1e-5)


def test_split_batches_equal_one_batch():
    x, y = _data(2, 20, 4)
    one = blr.update(blr.init(4, forget=0.95), x, y)
    two = blr.update(blr.update(blr.init(4, forget=0.95), x[:7], y[:7]), x[7:], y[7:])
    chex.assert_trees_all_close(one, two, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("forget", [1.0, 0.97])
def test_posterior_matches_closed_form_nig_in_float64(forget):
    x, y = _data(3, 40, 6)
    nig = blr.posterior(blr.update(blr.init(6, forget=forget), x, y))
    weights = forget ** np.arange(len(y) - 1, -1, -1)
    mean, prec, a, b = _nig_numpy(x, y, weights=weights)
    np.testing.assert_allclose(nig.mean, mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(nig.chol @ nig.chol.T, prec, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(nig.a, a, rtol=1e-6)
    np.testing.assert_allclose(nig.b, b, rtol=1e-4)


def test_standardize_equals_nig_on_standardized_targets():
    x, y = _data(4, 30, 5, scale=0.01)
    y = y + 3.0  # a constant cost-like offset
    post = blr.standardize(blr.update(blr.init(5), x, y - y[0]))  # pivot-shifted, as ReadPolicy does
    ys = (y - y.mean()) / y.std()
    mean, prec, a, b = _nig_numpy(x, ys)
    nig = blr.posterior(post)
    np.testing.assert_allclose(nig.mean, mean, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(nig.b, b, rtol=1e-3)


def test_ucb_scores_match_numpy_formula():
    x, y = _data(5, 25, 4)
    nig = blr.posterior(blr.update(blr.init(4), x, y))
    mean, prec, a, b = _nig_numpy(x, y)
    cands = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    quad = np.einsum("kd,de,ke->k", cands, np.linalg.inv(prec), cands)
    want = cands @ mean + 1.5 * np.sqrt(b / (a - 1) * quad)
    np.testing.assert_allclose(blr.ucb_scores(nig, jnp.asarray(cands), 1.5), want, rtol=1e-4, atol=1e-5)
    mask = jnp.asarray([True] * 6 + [False])
    idx = int(blr.select_ucb(blr.update(blr.init(4), x, y), jnp.asarray(cands), 1.5, mask))
    assert idx == int(np.argmax(want[:6]))


def test_precision_stays_positive_definite_over_1e5_updates():
    """10^5 single updates in float32 with collinear features (sum_c w_i r_c = w_i): only the
    lam * I floor keeps those directions positive; accumulation error must not eat it."""
    fmap = FeatureMap(n_caps=2, context_dim=3, interaction="full")  # x = [r0, r1, b], d = 16
    d, n_outer, n_inner = fmap.dim, 100, 1000
    lam = 0.25

    def run(key):
        # all randomness drawn up front, flat (cheap to compile), then scanned over
        k_w, k_x, k_y = jax.random.split(key, 3)
        n = n_outer * n_inner
        w = jax.nn.softmax(jax.random.normal(k_w, (2 * n,)).reshape(n, 2))
        ctx = jax.random.uniform(k_x, (3 * n,)).reshape(n, 3)
        ctx = ctx.at[:, :2].set(ctx[:, :2] / jnp.sum(ctx[:, :2], axis=1, keepdims=True))  # r on the simplex
        phi = jax.vmap(fmap)(ctx, w).reshape(n_outer, n_inner, d)
        y = jax.random.normal(k_y, (n,)).reshape(n_outer, n_inner)

        def inner(post, xy):
            return blr.update_one(post, *xy), None

        def outer(post, xy):
            post, _ = jax.lax.scan(inner, post, xy)
            chol = jnp.linalg.cholesky(blr.precision(post))
            return post, (jnp.all(jnp.isfinite(chol)), jnp.min(jnp.diag(chol)))

        return jax.lax.scan(outer, blr.init(d, lam=lam), (phi, y))

    post, (finite, min_diag) = jax.jit(run)(jax.random.PRNGKey(0))
    assert bool(jnp.all(finite)) and float(jnp.min(min_diag)) > 0.0
    assert float(post.n) == n_outer * n_inner
    eig = np.linalg.eigvalsh(np.asarray(blr.precision(post), np.float64))
    assert eig.min() > 0.5 * lam  # the null directions keep (about) the prior precision
    nig = blr.posterior(post)
    assert bool(jnp.all(jnp.isfinite(nig.mean))) and float(nig.b) > 0


def test_gamma_sampler_moments():
    draw = jax.jit(lambda k, a: blr.gamma_large_shape(k, a, 20000))
    for a in (1.0, 6.0, 50.0):
        g = np.asarray(draw(jax.random.PRNGKey(0), jnp.float32(a)))
        assert abs(g.mean() - a) < 4 * np.sqrt(a / len(g))
        assert abs(g.var() / a - 1.0) < 0.06


def test_thompson_draws_follow_the_posterior_and_shrink_with_data():
    d = 3

    def draws(n):
        x, y = _data(6, n, d)
        nig = blr.posterior(blr.update(blr.init(d), x, y))
        return nig, np.asarray(blr.thompson_samples(nig, jax.random.PRNGKey(1), 20000))

    small_nig, small = draws(5)
    big_nig, big = draws(500)
    # marginal of beta under NIG: Student-t with covariance b / (a - 1) * Lambda^{-1}
    prec = np.asarray(small_nig.chol @ small_nig.chol.T, np.float64)
    want_cov = float(small_nig.b / (small_nig.a - 1)) * np.linalg.inv(prec)
    np.testing.assert_allclose(np.cov(small.T), want_cov, rtol=0.1, atol=0.02 * np.abs(want_cov).max())
    np.testing.assert_allclose(small.mean(0), small_nig.mean, atol=0.05 * np.sqrt(np.diag(want_cov)).max() * 4)
    assert np.all(big.std(0) < 0.2 * small.std(0))  # the spread uses the posterior variance
    # the single-draw path is the same sampler
    one = np.asarray(blr.thompson_sample(small_nig, jax.random.PRNGKey(2)))
    assert one.shape == (d,) and np.all(np.isfinite(one))
