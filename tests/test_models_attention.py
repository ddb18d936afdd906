"""The train-path attention (`causal_attend`: causal block skipping + hand-written backward)
against the reference `attend`, values and gradients, with padding and a sliding window."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from read_jax.models.decoder import attend, causal_attend


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

    (l0, g0), (l1, g1) = loss(attend)(q, k, v), loss(causal_attend)(q, k, v)
    o0, o1 = attend(q, k, v, mask), jax.jit(causal_attend)(q, k, v, mask)
    np.testing.assert_allclose(np.asarray(o1)[rows], np.asarray(o0)[rows], atol=1e-5)
    np.testing.assert_allclose(float(l1), float(l0), rtol=1e-5, atol=1e-5)
    for a, b_ in zip(g0, g1):
        np.testing.assert_allclose(np.asarray(b_), np.asarray(a), atol=1e-5)
