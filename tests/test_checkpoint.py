"""Orbax run checkpoints restore values, dtypes and the *requested* shardings."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from read_jax.checkpoint import RunCheckpointer
from read_jax.errors import ReadJaxError
from read_jax.sharding import make_mesh


def test_round_trip_with_target_shardings(tmp_path, eight_devices):
    mesh_a, mesh_b = make_mesh((2, 2, 2)), make_mesh((8, 1, 1))
    params = {"w": jax.device_put(jnp.arange(64.0).reshape(8, 8), NamedSharding(mesh_a, P("fsdp", "tp"))),
              "b": jnp.ones(3, jnp.bfloat16)}
    ckpt = RunCheckpointer(tmp_path / "ckpt")
    ckpt.save(1, {"params": params, "rng": jax.random.key_data(jax.random.key(7))}, {"step": 1, "hist": [0.5]})
    ckpt.save(2, {"params": jax.tree.map(lambda x: x * 2, params), "rng": jax.random.key_data(jax.random.key(8))},
              {"step": 2, "hist": [0.5, 0.25]})
    ckpt.wait()  # another manager reads the directory next
    # restore onto a different mesh: the target's sharding wins
    target = {"params": {"w": jax.device_put(jnp.zeros((8, 8)), NamedSharding(mesh_b, P("data", None))),
                         "b": jnp.zeros(3, jnp.bfloat16)},
              "rng": jnp.zeros((2,), jnp.uint32)}
    trees, meta = RunCheckpointer(tmp_path / "ckpt").restore(target)
    assert meta == {"step": 2, "hist": [0.5, 0.25]}
    np.testing.assert_array_equal(np.asarray(trees["params"]["w"]), np.arange(64.0).reshape(8, 8) * 2)
    assert trees["params"]["w"].sharding.spec == P("data", None)
    assert trees["params"]["b"].dtype == jnp.bfloat16
    trees1, meta1 = RunCheckpointer(tmp_path / "ckpt").restore(target, step=1)
    assert meta1["step"] == 1
    np.testing.assert_array_equal(np.asarray(trees1["rng"]), np.asarray(jax.random.key_data(jax.random.key(7))))


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ReadJaxError, match="no checkpoint to resume from"):
        RunCheckpointer(tmp_path / "empty").restore({"x": jnp.zeros(2)})


def test_background_save_survives_donation_of_the_saved_buffers(tmp_path):
    """The loop donates the student's buffers to the next train step while a save may be pending."""
    ckpt = RunCheckpointer(tmp_path / "ckpt")
    assert ckpt.async_save
    x = jnp.arange(1 << 16, dtype=jnp.float32)
    ckpt.save(1, {"x": x}, {"step": 1})
    overwrite = jax.jit(lambda a: a * 0 - 1, donate_argnums=0)
    y = overwrite(x)  # x's buffer may now hold y
    trees, meta = ckpt.restore({"x": jnp.zeros_like(y)})
    np.testing.assert_array_equal(np.asarray(trees["x"]), np.arange(1 << 16, dtype=np.float32))
    assert meta == {"step": 1}
