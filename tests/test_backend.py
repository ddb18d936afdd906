"""CPU-only speed-ups behind one door (`read_jax.backend`): on another platform the plain formulation
is traced, and both formulations compute the same values (run here on CPU, where both can run)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from read_jax import backend
from read_jax.bandit.blr import solve_lower
from read_jax.models import DecoderConfig, init_decoder
from read_jax.models.decoder import rope_tables_once

CONFIG = DecoderConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=8)


def _jaxpr(fn, *args, platform: str) -> str:
    with backend.on_platform(platform):
        return str(jax.make_jaxpr(fn)(*args))


def test_the_door_follows_the_platform_it_is_given():
    assert backend.current_platform() == jax.default_backend()
    with backend.on_platform("tpu"):
        assert not (backend.custom_attention_backward() or backend.rope_fusion_barrier() or backend.sequential_solves())
        with backend.on_platform("cpu"):
            assert backend.on_cpu()
        assert backend.current_platform() == "tpu"  # nested blocks restore the outer platform
    assert backend.decode_compiler_options("gpu") is None and backend.decode_compiler_options("cpu")
    assert backend.platform_of(jax.devices()[0]) == "cpu" and backend.platform_of(jnp.ones(2)) == "cpu"


def test_rope_barrier_and_attention_backward_only_on_cpu():
    positions = jnp.arange(6)[None]
    assert "cond" in _jaxpr(lambda p: rope_tables_once(CONFIG, p), positions, platform="cpu")
    assert "cond" not in _jaxpr(lambda p: rope_tables_once(CONFIG, p), positions, platform="tpu")

    model = init_decoder(CONFIG, 0)
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 64, (2, 6)))

    grads = {}
    for platform in ("cpu", "gpu"):
        def loss(m):  # a new function per platform: a traced function is cached with the first platform's choice
            out = m(tokens)
            return jnp.mean((out[0] if isinstance(out, tuple) else out) ** 2)

        with backend.on_platform(platform):
            text = str(jax.make_jaxpr(loss)(model))  # the train path's forward: custom_vjp only on CPU
            grads[platform] = jax.grad(loss)(model)
        assert ("custom_vjp" in text) == (platform == "cpu")
    for a, b in zip(jax.tree.leaves(grads["cpu"]), jax.tree.leaves(grads["gpu"])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("platform", ["cpu", "gpu"])
def test_solves_are_sequential_under_vmap_only_on_cpu(platform):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 5, 5))
    chol = jnp.asarray(np.linalg.cholesky(a @ a.transpose(0, 2, 1) + 5 * np.eye(5)), jnp.float32)
    rhs = jnp.asarray(rng.standard_normal((3, 5)), jnp.float32)
    text = _jaxpr(jax.vmap(solve_lower), chol, rhs, platform=platform)
    assert ("while" in text or "scan" in text) == (platform == "cpu")
    with backend.on_platform(platform):
        out = jax.vmap(solve_lower)(chol, rhs)
    want = np.stack([np.linalg.solve(np.asarray(c), np.asarray(r)) for c, r in zip(chol, rhs)])
    np.testing.assert_allclose(np.asarray(out), want, rtol=1e-4, atol=1e-5)


def test_the_model_blocks_are_named_in_the_compiled_program():
    model = init_decoder(CONFIG, 0)
    hlo = jax.jit(lambda m, t: m(t)).lower(model, jnp.zeros((1, 4), jnp.int32)).as_text(debug_info=True)
    for scope in ("layer_0/attention", "layer_0/mlp", "lm_head", "embed"):
        assert scope in hlo, scope
