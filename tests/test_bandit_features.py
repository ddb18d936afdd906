"""The feature map lets the chosen allocation depend on the context (and on diminishing returns)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from read_jax.bandit import blr
from read_jax.bandit.features import ContextLayout, FeatureMap, make_context

C = 2
ACTIONS = jnp.asarray([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])


def _random_contexts(rng: np.random.Generator, n: int) -> np.ndarray:
    r = rng.dirichlet([1.0, 1.0], n)
    budget = rng.uniform(size=(n, 1))
    return np.concatenate(
        [r, rng.uniform(size=(n, C)), budget, rng.dirichlet([1.0, 1.0], n), 0.1 * rng.normal(size=(n, C))], axis=1
    ).astype(np.float32)


def _fit(fmap: FeatureMap, reward_fn, n: int = 200, seed: int = 0) -> blr.NIGParams:
    """Posterior after n random (context, allocation) rounds of a known reward."""
    rng = np.random.default_rng(seed)
    ctx = _random_contexts(rng, n)
    w = rng.dirichlet([1.0, 1.0], n).astype(np.float32)
    phi = jax.jit(jax.vmap(fmap))(ctx, w)
    y = reward_fn(ctx, w) + 0.01 * rng.normal(size=n)
    return blr.posterior(blr.update(blr.init(fmap.dim), phi, y))


def _best(fmap, nig, ctx):
    return int(jnp.argmax(fmap(ctx, ACTIONS) @ nig.mean))


def _task_reward(ctx, w):
    """R = r^T w: train what the task requires (r = ctx[:, :C])."""
    return np.sum(ctx[:, :C] * w, axis=1)


def test_layout_and_dims():
    lay = ContextLayout(C)
    x = make_context([0.7, 0.3], [0.1, 0.2], 0.4, [1.0, 0.0], [0.01, -0.02])
    assert x.shape == (lay.dim,) == (4 * C + 1,)
    np.testing.assert_allclose(x[lay.r], [0.7, 0.3])
    np.testing.assert_allclose(x[lay.s], [0.1, 0.2])
    np.testing.assert_allclose(x[lay.budget], [0.4])
    np.testing.assert_allclose(x[lay.prev_alloc], [1.0, 0.0])
    np.testing.assert_allclose(x[lay.prev_gain], [0.01, -0.02])
    for inter in ("full", "diagonal", "none"):
        fmap = FeatureMap(C, lay.dim, ("linear", "sqrt"), inter)
        assert fmap(x, ACTIONS).shape == (3, fmap.dim)
        assert fmap(x, ACTIONS[0]).shape == (fmap.dim,)
    with pytest.raises(ValueError):
        FeatureMap(C, lay.dim, ("cubic",))
    with pytest.raises(ValueError):
        FeatureMap(C, 5, interaction="diagonal")


@pytest.mark.parametrize("interaction", ["full", "diagonal"])
def test_best_action_flips_with_the_context(interaction):
    fmap = FeatureMap(C, ContextLayout(C).dim, ("linear", "sqrt"), interaction)
    nig = _fit(fmap, _task_reward)
    math_task = make_context([0.9, 0.1], [0.3, 0.3], 0.5)
    code_task = make_context([0.1, 0.9], [0.3, 0.3], 0.5)
    assert _best(fmap, nig, math_task) == 0
    assert _best(fmap, nig, code_task) == 1


def test_plain_concatenation_ignores_the_context():
    """With phi = [h(w); x] the context adds the same constant to every action's score."""
    fmap = FeatureMap(C, ContextLayout(C).dim, ("linear", "sqrt"), "none")
    nig = _fit(fmap, _task_reward)
    contexts = _random_contexts(np.random.default_rng(1), 20)
    scores = np.stack([np.asarray(fmap(c, ACTIONS) @ nig.mean) for c in contexts])
    spread = scores - scores[:, :1]  # score differences between actions
    np.testing.assert_allclose(spread, np.broadcast_to(spread[0], spread.shape), atol=1e-4)
    assert len({int(np.argmax(s)) for s in scores}) == 1


def test_sqrt_curvature_captures_diminishing_returns():
    """R = sqrt(w0) + sqrt(w1): the 50/50 mix beats both one-hots; a model linear in w (which sums
    to 1) cannot prefer an interior point, the sqrt basis can."""

    def concave(ctx, w):
        return np.sqrt(w).sum(axis=1)

    lay = ContextLayout(C)
    curved = FeatureMap(C, lay.dim, ("linear", "sqrt"), "none")
    linear = FeatureMap(C, lay.dim, ("linear",), "none")
    ctx = make_context([0.5, 0.5], [0.3, 0.3], 0.5)
    assert _best(curved, _fit(curved, concave), ctx) == 2
    lin = np.asarray(linear(ctx, ACTIONS) @ _fit(linear, concave).mean)
    np.testing.assert_allclose(lin[2], 0.5 * (lin[0] + lin[1]), rtol=1e-5, atol=1e-6)  # never beats both
