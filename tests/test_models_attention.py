"""The model's attention (`attend`, over the cache layout) and the CPU train path's
(`causal_attend`: causal block skipping + hand-written backward) against a textbook
reference, values and gradients, with padding and a sliding window; and a single query in
both of `attend`'s CPU forms (matmuls, multiply-reduce)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from read_jax import backend
from read_jax.models.decoder import attend, cache_layout, causal_attend


def _reference(q, k, v, mask):
    """Grouped-query attention written the textbook way (softmax, then P·V), [B, T, KVH, K] keys."""
    b, t, h, d = q.shape
    k, v = (jnp.repeat(a, h // a.shape[2], axis=2) for a in (k, v))
    scores = jnp.einsum("bthd,bshd->bhts", q, k) * d ** -0.5
    probs = jax.nn.softmax(jnp.where(mask[:, None], scores, -1e30), axis=-1)
    return jnp.einsum("bhts,bshd->bthd", probs, v).reshape(b, t, h * d)


def _cache_attend(q, k, v, mask):
    return attend(q, *cache_layout(k, v), mask)


@pytest.mark.parametrize("t,window", [(70, None), (100, 9), (16, None)])
def test_causal_attend_matches_attend(t, window):
    rng = np.random.default_rng(t)
    b, h, kvh, d = 3, 4, 2, 8
    q, k, v = (jnp.asarray(rng.standard_normal((b, t, n, d)), jnp.float32) for n in (h, kvh, kvh))
    valid = np.ones((b, t), bool)
    valid[1, :11] = False   # left padding
    valid[2, -7:] = False   # right padding
    causal = np.tril(np.ones((t, t), bool))
    if window is not None:
        causal &= (np.arange(t)[:, None] - np.arange(t)[None, :]) < window
    mask = jnp.asarray(causal[None] & valid[:, None, :])
    rows = np.asarray(mask).any(-1)  # query rows with at least one valid key
    w = jnp.asarray(rng.standard_normal((b, t, h * d)) * rows[..., None], jnp.float32)

    def loss(fn):
        return jax.jit(jax.value_and_grad(lambda q, k, v: jnp.sum(fn(q, k, v, mask) * w), argnums=(0, 1, 2)))

    (l0, g0) = loss(_reference)(q, k, v)
    o0 = _reference(q, k, v, mask)
    for fn in (_cache_attend, causal_attend):
        l1, g1 = loss(fn)(q, k, v)
        o1 = jax.jit(fn)(q, k, v, mask)
        np.testing.assert_allclose(np.asarray(o1)[rows], np.asarray(o0)[rows], atol=1e-5)
        np.testing.assert_allclose(float(l1), float(l0), rtol=1e-5, atol=1e-5)
        for a, b_ in zip(g0, g1):
            np.testing.assert_allclose(np.asarray(b_), np.asarray(a), atol=1e-5)


@pytest.mark.parametrize("platform", ["cpu", "tpu"])  # multiply-reduce on CPU, batched matmuls elsewhere
def test_single_query_attention_in_both_forms(platform):
    rng = np.random.default_rng(1)
    b, s, h, kvh, d = 4, 23, 6, 2, 8
    q = jnp.asarray(rng.standard_normal((b, 1, h, d)), jnp.float32)
    k, v = (jnp.asarray(rng.standard_normal((b, s, kvh, d)), jnp.float32) for _ in range(2))
    mask = jnp.asarray(rng.random((b, 1, s)) < 0.7).at[:, :, 0].set(True)
    with backend.on_platform(platform):  # a fresh function: traces are cached per function, not per platform
        jaxpr = str(jax.make_jaxpr(lambda *a: _cache_attend(*a))(q, k, v, mask))
        out = _cache_attend(q, k, v, mask)
    assert ("dot_general" in jaxpr) == (platform != "cpu")
    np.testing.assert_allclose(np.asarray(out), np.asarray(_reference(q, k, v, mask)), atol=1e-5)
