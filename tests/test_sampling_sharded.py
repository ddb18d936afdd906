"""Sharded generation (8 fake CPU devices) equals unsharded generation."""

import numpy as np
import pytest

from hf_fixtures import make_hf_model
from read_jax.models import load_hf
from read_jax.sampling import generate
from read_jax.sharding import make_mesh


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("llama_sharded")
    make_hf_model("llama", d, seed=7)
    return d


@pytest.mark.parametrize("shape", [(2, 2, 2), (4, 1, 2)])
def test_sharded_generation_equals_unsharded(llama_dir, eight_devices, shape):
    plain, config = load_hf(llama_dir)
    mesh = make_mesh(shape)
    sharded, _ = load_hf(llama_dir, mesh=mesh)
    q = sharded.layers[0].self_attn.q_proj.kernel.get_value()
    assert len(q.sharding.device_set) == 8 and not q.sharding.is_fully_replicated
    rng = np.random.default_rng(0)
    prompts = [rng.integers(3, config.vocab_size, n).tolist() for n in [6, 13, 2, 9, 11]]
    kw = dict(max_new_tokens=20, temperature=[0.0, 0.8, 0.0, 1.2, 0.5], top_p=[1.0, 0.9, 1.0, 1.0, 0.7],
              top_k=[0, 0, 0, 20, 5], eos_id=[], seed=5, topk_logprobs=3)
    want = generate(plain, prompts, **kw)
    got = generate(sharded, prompts, mesh=mesh, **kw)
    assert got.tokens == want.tokens
    for a, b in zip(got.token_logprobs, want.token_logprobs):
        np.testing.assert_allclose(a, b, atol=2e-5)
    for a, b in zip(got.topk_ids, want.topk_ids):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(got.topk_logprobs, want.topk_logprobs):
        np.testing.assert_allclose(a, b, atol=2e-5)
    # an unsharded model is placed on the mesh by generate itself
    again = generate(plain, prompts, mesh=mesh, **kw)
    assert again.tokens == want.tokens
