"""HF export / import round trips, sharded loading, and strict errors on bad checkpoints."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file

from hf_fixtures import TINY, make_hf_model, torch_logits
from read_jax.errors import CheckpointFormatError
from read_jax.models import DecoderConfig, KVCache, init_decoder, load_hf, save_hf
from read_jax.sharding import make_mesh, variable_sharding


def _flat_params(model):
    return {".".join(map(str, p)): np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("llama")
    make_hf_model("llama", d)
    return d


@pytest.mark.parametrize("model_type,tied", [("llama", False), ("qwen2", True), ("qwen3", False)])
def test_export_reloads_in_transformers_and_load_hf(tmp_path, model_type, tied):
    import torch
    from transformers import AutoModelForCausalLM

    config = DecoderConfig(vocab_size=80, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=8, model_type=model_type,
                           tie_word_embeddings=tied, qkv_bias=model_type == "qwen2",
                           qk_norm=model_type == "qwen3", eos_token_id=1)
    model = init_decoder(config, seed=3)
    save_hf(model, tmp_path / "out")
    ref = AutoModelForCausalLM.from_pretrained(str(tmp_path / "out"), dtype=torch.float32).eval()
    ids = np.random.default_rng(0).integers(0, 80, (2, 11)).astype(np.int32)
    np.testing.assert_allclose(np.asarray(model(jnp.asarray(ids))), torch_logits(ref, ids), atol=1e-4, rtol=0)

    again, config2 = load_hf(tmp_path / "out")
    assert config2 == config
    a, b = _flat_params(model), _flat_params(again)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_sharded_export_writes_index_and_reloads(tmp_path, llama_dir):
    model, config = load_hf(llama_dir)
    save_hf(model, tmp_path / "sharded", max_shard_size=40_000)
    index = json.loads((tmp_path / "sharded" / "model.safetensors.index.json").read_text())
    shards = set(index["weight_map"].values())
    assert len(shards) > 1 and all((tmp_path / "sharded" / s).is_file() for s in shards)
    again, _ = load_hf(tmp_path / "sharded")
    ids = jnp.asarray(np.arange(24).reshape(2, 12) % config.vocab_size, jnp.int32)
    np.testing.assert_array_equal(np.asarray(model(ids)), np.asarray(again(ids)))


def test_bfloat16_params_keep_float32_logits(llama_dir):
    model, config = load_hf(llama_dir, dtype="bfloat16")
    assert all(v.get_value().dtype == jnp.bfloat16 for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param)))
    ids = jnp.asarray(np.arange(10).reshape(1, 10), jnp.int32)
    logits = model(ids)
    assert logits.dtype == jnp.float32
    ref, _ = load_hf(llama_dir)
    assert float(jnp.max(jnp.abs(logits - ref(ids)))) < 0.1


def test_sharded_load_on_mesh_matches_unsharded(llama_dir, eight_devices):
    mesh = make_mesh((2, 2, 2))
    sharded, config = load_hf(llama_dir, mesh=mesh)
    plain, _ = load_hf(llama_dir)
    for path, variable in nnx.to_flat_state(nnx.state(sharded, nnx.Param)):
        value = variable.get_value()
        want = variable_sharding(mesh, variable)
        assert value.sharding.is_equivalent_to(want, value.ndim), path
    # the rule table really shards: q_proj kernel [embed, heads] -> ('fsdp', 'tp')
    q = sharded.layers[0].self_attn.q_proj.kernel.get_value()
    assert q.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tp")
    assert len(q.addressable_shards) == 8 and q.addressable_shards[0].data.shape == (32, 32)
    ids = jnp.asarray(np.random.default_rng(0).integers(0, config.vocab_size, (4, 16)), jnp.int32)
    np.testing.assert_allclose(np.asarray(jax.jit(lambda m, x: m(x))(sharded, ids)), np.asarray(plain(ids)),
                               atol=1e-5, rtol=0)


def test_transformers4_style_config_loads(tmp_path, llama_dir):
    d = tmp_path / "v4"
    shutil.copytree(llama_dir, d)
    raw = json.loads((d / "config.json").read_text())
    raw.pop("rope_parameters", None)
    raw["rope_theta"] = 500000.0
    raw["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                           "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
    (d / "config.json").write_text(json.dumps(raw))
    _, config = load_hf(d)
    assert config.rope.rope_type == "llama3" and config.rope.theta == 500000.0 and config.rope.factor == 8.0


def test_kv_cache_decode_matches_full_forward(llama_dir):
    model, config = load_hf(llama_dir)
    ids = jnp.asarray(np.random.default_rng(2).integers(1, config.vocab_size, (2, 12)), jnp.int32)
    mask = jnp.asarray(np.array([[0, 0, 0] + [1] * 9, [1] * 12]), jnp.int32)
    full = np.asarray(model(ids, attention_mask=mask))
    cache = KVCache.init(config, 2, 32)
    logits, cache = model(ids[:, :7], attention_mask=mask[:, :7], cache=cache)
    steps = [np.asarray(logits)]
    for t in range(7, 12):
        logits, cache = model(ids[:, t:t + 1], cache=cache)
        steps.append(np.asarray(logits))
    got = np.concatenate(steps, axis=1)
    valid = np.asarray(mask, bool)
    np.testing.assert_allclose(got[valid], full[valid], atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------------- bad input
def _one_error(d, match):
    with pytest.raises(CheckpointFormatError, match=match) as info:
        load_hf(d)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_config(tmp_path, llama_dir):
    shutil.copytree(llama_dir, tmp_path / "m")
    (tmp_path / "m" / "config.json").unlink()
    _one_error(tmp_path / "m", "config.json not found")


def test_unknown_model_type(tmp_path, llama_dir):
    shutil.copytree(llama_dir, tmp_path / "m")
    raw = json.loads((tmp_path / "m" / "config.json").read_text())
    raw["model_type"] = "gpt_neox"
    (tmp_path / "m" / "config.json").write_text(json.dumps(raw))
    _one_error(tmp_path / "m", "model_type 'gpt_neox' is not supported")


def test_wrong_shape_names_the_key(tmp_path, llama_dir):
    shutil.copytree(llama_dir, tmp_path / "m")
    tensors = load_file(str(tmp_path / "m" / "model.safetensors"))
    tensors["model.layers.1.mlp.up_proj.weight"] = np.zeros((3, 3), np.float32)
    tensors["model.layers.0.self_attn.k_proj.weight"] = np.zeros((5, 64), np.float32)
    save_file(tensors, str(tmp_path / "m" / "model.safetensors"))
    msg = _one_error(tmp_path / "m", "2 problem")
    assert "model.layers.1.mlp.up_proj.weight" in msg and "model.layers.0.self_attn.k_proj.weight" in msg


def test_missing_weight_is_reported_and_unused_key_logged(tmp_path, llama_dir, caplog):
    shutil.copytree(llama_dir, tmp_path / "m")
    tensors = load_file(str(tmp_path / "m" / "model.safetensors"))
    tensors["model.extra.weight"] = np.zeros((2,), np.float32)
    save_file(tensors, str(tmp_path / "m" / "model.safetensors"))
    with caplog.at_level("WARNING"):
        load_hf(tmp_path / "m")
    assert "model.extra.weight" in caplog.text
    del tensors["model.norm.weight"]
    save_file(tensors, str(tmp_path / "m" / "model.safetensors"))
    _one_error(tmp_path / "m", "'norm.weight'.*left unfilled")


def test_missing_shard_in_index(tmp_path, llama_dir):
    model, _ = load_hf(llama_dir)
    save_hf(model, tmp_path / "s", max_shard_size=40_000)
    index = json.loads((tmp_path / "s" / "model.safetensors.index.json").read_text())
    victim = sorted(set(index["weight_map"].values()))[1]
    (tmp_path / "s" / victim).unlink()
    _one_error(tmp_path / "s", f"missing: {victim}")


def test_unreadable_safetensors(tmp_path, llama_dir):
    shutil.copytree(llama_dir, tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x00garbage, not a safetensors file")
    _one_error(tmp_path / "m", "model.safetensors: unreadable safetensors file")


def test_integer_tensor_is_a_dtype_error(tmp_path, llama_dir):
    shutil.copytree(llama_dir, tmp_path / "m")
    tensors = load_file(str(tmp_path / "m" / "model.safetensors"))
    tensors["model.norm.weight"] = np.ones(TINY["hidden_size"], np.int32)
    save_file(tensors, str(tmp_path / "m" / "model.safetensors"))
    _one_error(tmp_path / "m", "model.norm.weight.*not a float dtype")
