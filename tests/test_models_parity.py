"""Float32 parity of read_jax's decoder with transformers' PyTorch models."""

import jax.numpy as jnp
import numpy as np
import pytest

from hf_fixtures import FAMILIES, left_padded_batch, make_hf_model, torch_logits
from read_jax.models import load_hf

ATOL = 1e-4


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    torch_model = make_hf_model(request.param, d)
    model, config = load_hf(d)
    return request.param, torch_model, model, config


def test_logits_match_transformers(family):
    name, torch_model, model, config = family
    ids = np.random.default_rng(0).integers(0, config.vocab_size, (2, 19)).astype(np.int32)
    ours = np.asarray(model(jnp.asarray(ids)))
    ref = torch_logits(torch_model, ids)
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=ATOL, rtol=0)


def test_left_padded_batch_matches_transformers(family):
    name, torch_model, model, config = family
    ids, mask, pos = left_padded_batch(np.random.default_rng(1), config.vocab_size, [13, 5, 9])
    ours = np.asarray(model(jnp.asarray(ids), attention_mask=jnp.asarray(mask), positions=jnp.asarray(pos)))
    ref = torch_logits(torch_model, ids, mask, pos)
    valid = mask.astype(bool)
    np.testing.assert_allclose(ours[valid], ref[valid], atol=ATOL, rtol=0)
    # positions default to "valid tokens before", so omitting them changes nothing
    default = np.asarray(model(jnp.asarray(ids), attention_mask=jnp.asarray(mask)))
    np.testing.assert_allclose(default[valid], ours[valid], atol=1e-6, rtol=0)


def test_config_translation(family):
    name, torch_model, model, config = family
    hf = torch_model.config
    assert config.model_type == hf.model_type
    assert config.tie_word_embeddings == bool(hf.tie_word_embeddings)
    assert config.qkv_bias == (name.startswith("qwen2"))
    assert config.qk_norm == (name == "qwen3")
    assert (model.lm_head is None) == config.tie_word_embeddings
