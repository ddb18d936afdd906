"""The decoder's config, and its translation from / to Hugging Face `config.json`.

One frozen dataclass covers the Llama family (incl. Llama-3 RoPE scaling), Mistral,
Qwen2 (q/k/v biases) and Qwen3 (q/k RMSNorm).  It is hashable, so it can be a static
argument of jitted functions and part of an NNX graph definition.

HF configs are read as plain dicts: transformers 4 wrote ``rope_theta`` + ``rope_scaling``,
transformers 5 writes ``rope_parameters``; both are accepted.  Anything we do not
implement raises one `CheckpointFormatError` naming the field, instead of loading a model
that silently computes something else.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import numpy as np

from read_jax.errors import CheckpointFormatError

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")
DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class RopeConfig:
    theta: float = 10000.0
    rope_type: str = "default"
    factor: float = 1.0
    # llama3 only
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192

    def __post_init__(self) -> None:
        if self.rope_type not in SUPPORTED_ROPE_TYPES:
            raise CheckpointFormatError(
                f"rope type {self.rope_type!r} is not supported (supported: {', '.join(SUPPORTED_ROPE_TYPES)})"
            )

    def inv_freq(self, head_dim: int) -> np.ndarray:
        """Inverse frequencies in float32, computed the way transformers computes them."""
        exponent = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / np.float32(head_dim)
        inv = (np.float32(1.0) / (np.float32(self.theta) ** exponent)).astype(np.float32)
        if self.rope_type == "linear":
            return (inv / np.float32(self.factor)).astype(np.float32)
        if self.rope_type == "llama3":
            old = self.original_max_position_embeddings
            low_wavelen = old / self.low_freq_factor
            high_wavelen = old / self.high_freq_factor
            wavelen = 2 * math.pi / inv
            scaled = np.where(wavelen > low_wavelen, inv / self.factor, inv)
            smooth = (old / wavelen - self.low_freq_factor) / (self.high_freq_factor - self.low_freq_factor)
            smoothed = (1 - smooth) * scaled / self.factor + smooth * scaled
            medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
            return np.where(medium, smoothed, scaled).astype(np.float32)
        return inv


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Architecture of one decoder-only transformer of the Llama / Mistral / Qwen2 / Qwen3 family."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    model_type: Literal["llama", "mistral", "qwen2", "qwen3"] = "llama"
    rms_norm_eps: float = 1e-6
    rope: RopeConfig = RopeConfig()
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False
    sliding_window: int | None = None
    initializer_range: float = 0.02
    dtype: str = "float32"
    bos_token_id: int | None = None
    eos_token_id: int | tuple[int, ...] | None = None
    pad_token_id: int | None = None

    def __post_init__(self) -> None:
        if self.model_type not in SUPPORTED_MODEL_TYPES:
            raise CheckpointFormatError(
                f"model_type {self.model_type!r} is not supported (supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
            )
        if self.dtype not in DTYPES:
            raise CheckpointFormatError(f"dtype {self.dtype!r} is not supported (supported: {', '.join(DTYPES)})")
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "num_key_value_heads", "head_dim"):
            if int(getattr(self, name)) <= 0:
                raise CheckpointFormatError(f"{name} must be positive, got {getattr(self, name)}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise CheckpointFormatError(
                f"num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={self.num_key_value_heads}"
            )
        if self.head_dim % 2:
            raise CheckpointFormatError(f"head_dim must be even for RoPE, got {self.head_dim}")

    def replace(self, **changes: Any) -> "DecoderConfig":
        return dataclasses.replace(self, **changes)

    @property
    def eos_ids(self) -> tuple[int, ...]:
        if self.eos_token_id is None:
            return ()
        return (self.eos_token_id,) if isinstance(self.eos_token_id, int) else tuple(self.eos_token_id)

    def num_params(self) -> int:
        d, i, v, k = self.hidden_size, self.intermediate_size, self.vocab_size, self.head_dim
        h, kv = self.num_attention_heads, self.num_key_value_heads
        attn = d * h * k * 2 + d * kv * k * 2
        attn += (h * k + 2 * kv * k) * self.qkv_bias + d * self.o_bias + 2 * k * self.qk_norm
        layer = attn + 3 * d * i + 2 * d
        return v * d * (1 if self.tie_word_embeddings else 2) + self.num_hidden_layers * layer + d

    # ------------------------------------------------------------------ HF translation
    @classmethod
    def from_hf_dict(cls, hf: dict[str, Any], dtype: str = "float32") -> "DecoderConfig":
        model_type = hf.get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise CheckpointFormatError(
                f"model_type {model_type!r} is not supported (supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
            )
        missing = [k for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                               "num_attention_heads") if hf.get(k) is None]
        if missing:
            raise CheckpointFormatError(f"config.json lacks required field(s): {', '.join(missing)}")
        heads = int(hf["num_attention_heads"])
        head_dim = hf.get("head_dim") or hf["hidden_size"] // heads
        if float(hf.get("partial_rotary_factor", 1.0) or 1.0) != 1.0:
            raise CheckpointFormatError("partial_rotary_factor != 1 is not supported")
        attention_bias = bool(hf.get("attention_bias", False))
        sliding = None
        if model_type == "mistral":
            sliding = hf.get("sliding_window")
        elif model_type in ("qwen2", "qwen3") and hf.get("use_sliding_window", False):
            raise CheckpointFormatError("use_sliding_window=true is not supported for qwen models")
        if hf.get("mlp_bias", False):
            raise CheckpointFormatError("mlp_bias=true is not supported")
        eos = hf.get("eos_token_id")
        return cls(
            model_type=model_type,
            vocab_size=int(hf["vocab_size"]),
            hidden_size=int(hf["hidden_size"]),
            intermediate_size=int(hf["intermediate_size"]),
            num_hidden_layers=int(hf["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=int(hf.get("num_key_value_heads") or heads),
            head_dim=int(head_dim),
            rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            rope=_rope_from_hf(hf),
            max_position_embeddings=int(hf.get("max_position_embeddings", 4096)),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
            qkv_bias=True if model_type == "qwen2" else attention_bias,
            o_bias=attention_bias if model_type in ("llama", "mistral", "qwen3") else False,
            qk_norm=model_type == "qwen3",
            sliding_window=int(sliding) if sliding else None,
            initializer_range=float(hf.get("initializer_range", 0.02)),
            dtype=dtype,
            bos_token_id=hf.get("bos_token_id"),
            eos_token_id=tuple(eos) if isinstance(eos, list) else eos,
            pad_token_id=hf.get("pad_token_id"),
        )

    def to_hf_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for transformers' config class of ``model_type``."""
        rope: dict[str, Any] = {"rope_type": self.rope.rope_type, "rope_theta": self.rope.theta}
        if self.rope.rope_type in ("linear", "llama3"):
            rope["factor"] = self.rope.factor
        if self.rope.rope_type == "llama3":
            rope.update(low_freq_factor=self.rope.low_freq_factor, high_freq_factor=self.rope.high_freq_factor,
                        original_max_position_embeddings=self.rope.original_max_position_embeddings)
        kw: dict[str, Any] = dict(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers, num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads, head_dim=self.head_dim,
            rms_norm_eps=self.rms_norm_eps, rope_parameters=rope,
            max_position_embeddings=self.max_position_embeddings, tie_word_embeddings=self.tie_word_embeddings,
            initializer_range=self.initializer_range, hidden_act="silu",
            bos_token_id=self.bos_token_id, pad_token_id=self.pad_token_id,
            eos_token_id=list(self.eos_token_id) if isinstance(self.eos_token_id, tuple) else self.eos_token_id,
        )
        if self.model_type in ("llama", "mistral", "qwen3"):
            kw["attention_bias"] = self.o_bias
        if self.model_type == "mistral":
            kw["sliding_window"] = self.sliding_window
        if self.model_type in ("qwen2", "qwen3"):
            kw["use_sliding_window"] = False
        return kw


def _rope_from_hf(hf: dict[str, Any]) -> RopeConfig:
    params = hf.get("rope_parameters")
    if isinstance(params, dict) and "full_attention" in params and isinstance(params["full_attention"], dict):
        params = params["full_attention"]  # per-layer-type form
    if params:  # transformers 5
        theta = params.get("rope_theta", hf.get("rope_theta", 10000.0))
        scaling = params
    else:  # transformers 4
        theta = hf.get("rope_theta", 10000.0)
        scaling = hf.get("rope_scaling") or {}
    rope_type = scaling.get("rope_type", scaling.get("type", "default")) or "default"
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise CheckpointFormatError(
            f"rope_scaling type {rope_type!r} is not supported (supported: {', '.join(SUPPORTED_ROPE_TYPES)})"
        )
    if rope_type == "default":
        return RopeConfig(theta=float(theta))
    if rope_type == "linear":
        return RopeConfig(theta=float(theta), rope_type=rope_type, factor=float(scaling.get("factor", 1.0)))
    return RopeConfig(
        theta=float(theta),
        rope_type=rope_type,
        factor=float(scaling.get("factor", 1.0) or 1.0),
        low_freq_factor=float(scaling.get("low_freq_factor", 1.0)),
        high_freq_factor=float(scaling.get("high_freq_factor", 4.0)),
        original_max_position_embeddings=int(
            scaling.get("original_max_position_embeddings", hf.get("max_position_embeddings", 8192))
        ),
    )
