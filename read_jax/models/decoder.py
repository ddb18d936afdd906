"""One config-driven NNX decoder for the Llama / Mistral / Qwen2 / Qwen3 family.

Layout choices, and why:
- Every projection is a 2-D kernel ``[in, out]`` applied to activations flattened to
  ``[B*T, in]``.  Under XLA on CPU, dense-layer weight gradients of 3-D activations were
  measured markedly slower than the same matmul on flattened 2-D activations; on TPU/GPU
  the reshape is free.
- Parameters live in the config's dtype (float32 or bfloat16); RMSNorm statistics,
  RoPE tables, attention softmax and the returned logits are float32.
- Masks are built once per call in *cache-slot* space: a query in slot i may attend to
  key slot j when j <= i, key j is valid (not padding), and, for sliding-window models,
  i - j < window.  With left padding, token positions (for RoPE) default to the number of
  valid tokens before each token, which is what transformers' ``generate`` uses.
- One forward pass serves training (no cache), prefill (a prompt block written into the
  cache) and single-token decode (one query against the cache): `Decoder.__call__`.  The KV
  cache is an explicit pytree (`KVCache`) passed in and returned, so a decode loop can carry
  and donate it; the module itself stays stateless between calls.  Its layout is the one a
  one-token query reads fastest: keys [B, KVH, K, S] and values [B, KVH, S, K] (heads before
  length, keys length-last), so q·K and P·V are plain batched matmuls per (batch, head).
- Backend-specific choices go through `read_jax.backend` only: the CPU train path's
  attention backward (`causal_attend`), the RoPE fusion barrier, single-query attention as
  multiply-and-reduce, and the CPU decode weight layout (`StackedWeights`: ``[out, in]``
  copies, a layer's q/k/v and gate/up stacked, multiplied from the left).

The attention kernels (`attend`, `causal_attend`) live in `models.attention` and the cache in
`models.kv_cache`; both are re-exported here.
"""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx, struct

from read_jax import backend
from read_jax.models.attention import attend, cache_layout, causal_attend
from read_jax.models.config import DecoderConfig
from read_jax.models.kv_cache import KVCache

Array = jax.Array


def _normal(rngs: nnx.Rngs, shape: tuple[int, ...], std: float, dtype: Any) -> Array:
    return (jax.random.normal(rngs.params(), shape, jnp.float32) * std).astype(dtype)


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, eps: float, dtype: Any):
        self.weight = nnx.Param(jnp.ones((dim,), dtype), logical_axes=("norm",))
        self.eps = eps

    def __call__(self, x: Array, axis: int = -1) -> Array:
        """Normalise over ``axis``: the features, last, or first in the feature-major CPU decode layout."""
        xf = x.astype(jnp.float32)
        normed = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=axis, keepdims=True) + self.eps)
        weight = self.weight.get_value().astype(jnp.float32)
        return (normed * (weight if axis == -1 else weight[:, None])).astype(x.dtype)


class Linear(nnx.Module):
    """``y = x @ kernel (+ bias)`` on activations flattened to 2-D (see module docstring)."""

    def __init__(self, d_in: int, d_out: int, axes: tuple[str, str], *, bias: bool, std: float,
                 dtype: Any, rngs: nnx.Rngs):
        self.kernel = nnx.Param(_normal(rngs, (d_in, d_out), std, dtype), logical_axes=axes)
        self.bias = nnx.Param(jnp.zeros((d_out,), dtype), logical_axes=(axes[1],)) if bias else None

    def __call__(self, x: Array) -> Array:
        kernel = self.kernel.get_value()
        y = x.reshape(-1, x.shape[-1]) @ kernel
        if self.bias is not None:
            y = y + self.bias.get_value()
        return y.reshape(*x.shape[:-1], kernel.shape[-1])


def rope_tables(config: DecoderConfig, positions: Array) -> tuple[Array, Array]:
    """cos / sin of shape [B, T, head_dim] (float32), HF's half-rotation layout."""
    inv_freq = jnp.asarray(config.rope.inv_freq(config.head_dim))
    freqs = positions.astype(jnp.float32)[..., None] * inv_freq
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


def rope_tables_once(config: DecoderConfig, positions: Array) -> tuple[Array, Array]:
    """`rope_tables`, computed once into buffers on CPU.

    XLA:CPU otherwise fuses the cos / sin evaluation into every consumer (the q and k
    rotations of every layer, forward and backward): 76 transcendental evaluations of the
    table instead of 2 in the kd-step benchmark's train step.  A conditional whose two
    branches are the same function is a fusion boundary XLA cannot remove (it cannot prove
    the predicate), so the tables are materialised once; the result is identical whatever
    the predicate (docs/benchmarks.md has the measurement).  Other backends do not duplicate
    transcendental producers; plain call there.
    """
    if not backend.rope_fusion_barrier():
        return rope_tables(config, positions)

    def tables(p):
        return rope_tables(config, p)

    return jax.lax.cond(jnp.min(positions) >= 0, tables, tables, positions)


def apply_rope(x: Array, cos: Array, sin: Array) -> Array:
    """x: [B, T, N, K]; rotation done in float32 and cast back."""
    xf = x.astype(jnp.float32)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-xf[..., half:], xf[..., :half]], axis=-1)
    return (xf * cos[:, :, None, :] + rotated * sin[:, :, None, :]).astype(x.dtype)


@struct.dataclass
class StackedWeights:
    """The model's matrices in the CPU decode layout: per layer four groups of projections
    that share an input -- (q, k, v), (o,), (gate, up), (down,) -- each one ``[out, in]``
    matrix (the group's kernels transposed and stacked), and the output head ``[vocab, hidden]``.

    With a handful of rows, ``x @ W`` is a skinny product dominated by re-reading (and
    re-packing) the weight for a few rows; ``W[out, in] @ x[in, rows]`` streams each weight
    row once against every row, and a stacked group reads its input once (docs/benchmarks.md
    has the measurements).  With these weights the forward pass keeps its residual stream
    feature-major, [D, B·T], so no product's input or output is transposed except q / k / v
    and the attention output (the per-head work stays batch-major).
    `backend.cpu_decode_layout` decides where this is built (a CPU host; never accelerator
    memory, where it would double the weights and the compiler picks operand layouts itself).
    """

    layers: tuple[tuple[Array, ...], ...]  # [layer][group] -> [out, in]
    head: Array                           # [vocab, hidden]

    GROUPS = ("qkv", "o", "gate_up", "down")

    @classmethod
    def of(cls, model: "Decoder") -> "StackedWeights":
        def stacked(modules) -> Array:
            return jnp.concatenate([m.kernel.get_value().T for m in modules], axis=0)

        return cls(layers=tuple(tuple(stacked(g) for g in layer.projection_groups()) for layer in model.layers),
                   head=model.output_kernel().T)


def rows(y: Array) -> Array:
    """Feature-major [F, N] -> [N, F].  The barrier keeps XLA from folding the transpose into the
    product that made ``y`` (which turns ``W @ x`` back into the slow ``xᵀ @ Wᵀ`` form)."""
    return jnp.transpose(jax.lax.optimization_barrier(y))


def project(x: Array, modules: tuple["Linear", ...], stacked: Array | None = None) -> tuple[Array, ...]:
    """``x`` through each of ``modules`` (projections sharing an input).

    With ``stacked`` (their kernels in the `StackedWeights` layout) ``x`` is feature-major
    [in, N] and so are the results, [out_i, N]: one left product, cut back into its parts."""
    if stacked is None:
        return tuple(m(x) for m in modules)
    sizes = [m.kernel.shape[1] for m in modules]
    parts = jnp.split(stacked @ x, list(itertools.accumulate(sizes))[:-1], axis=0)
    return tuple(p if m.bias is None else p + m.bias.get_value()[:, None] for p, m in zip(parts, modules))


class Attention(nnx.Module):
    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        c, dt, std = config, jnp.dtype(config.dtype), config.initializer_range
        h, kv, k = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.num_heads, self.num_kv_heads, self.head_dim = h, kv, k
        self.q_proj = Linear(c.hidden_size, h * k, ("embed", "heads"), bias=c.qkv_bias, std=std, dtype=dt, rngs=rngs)
        self.k_proj = Linear(c.hidden_size, kv * k, ("embed", "kv_heads"), bias=c.qkv_bias, std=std, dtype=dt,
                             rngs=rngs)
        self.v_proj = Linear(c.hidden_size, kv * k, ("embed", "kv_heads"), bias=c.qkv_bias, std=std, dtype=dt,
                             rngs=rngs)
        self.o_proj = Linear(h * k, c.hidden_size, ("heads", "embed"), bias=c.o_bias, std=std, dtype=dt, rngs=rngs)
        self.q_norm = RMSNorm(k, c.rms_norm_eps, dt) if c.qk_norm else None
        self.k_norm = RMSNorm(k, c.rms_norm_eps, dt) if c.qk_norm else None

    def __call__(self, x: Array, cos: Array, sin: Array, mask: Array,
                 cache_kv: tuple[Array, Array] | None = None, index: Array | None = None,
                 stacked: tuple[Array, ...] | None = None) -> tuple[Array, tuple[Array, Array] | None]:
        """``cache_kv``: this layer's (keys, values) in the `KVCache` layout, written at slot
        ``index`` and attended over; without one, the T tokens attend among themselves.  With
        ``stacked`` (the layer's `StackedWeights`) ``x`` and the result are feature-major [D, B*T];
        the per-head work runs batch-major on the small q / k / v either way."""
        b, t = mask.shape[:2]
        q, k, v = project(x, (self.q_proj, self.k_proj, self.v_proj), stacked and stacked[0])
        if stacked is not None:
            q, k, v = rows(q), rows(k), rows(v)
        q = q.reshape(b, t, self.num_heads, self.head_dim)
        k = k.reshape(b, t, self.num_kv_heads, self.head_dim)
        v = v.reshape(b, t, self.num_kv_heads, self.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        new_kv = None
        if cache_kv is not None:
            keys, values = cache_layout(k, v)
            keys = jax.lax.dynamic_update_slice(cache_kv[0], keys.astype(cache_kv[0].dtype), (0, 0, 0, index))
            values = jax.lax.dynamic_update_slice(cache_kv[1], values.astype(cache_kv[1].dtype), (0, 0, index, 0))
            new_kv = (keys, values)
            out = attend(q, keys, values, mask)
        elif backend.custom_attention_backward():  # the CPU train path's hand-written backward
            out = causal_attend(q, k, v, mask)
        else:
            out = attend(q, *cache_layout(k, v), mask)
        if stacked is not None:
            out = jnp.transpose(out.reshape(b * t, -1))
        (o,) = project(out, (self.o_proj,), stacked and stacked[1])
        return o, new_kv


class MLP(nnx.Module):
    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        c, dt, std = config, jnp.dtype(config.dtype), config.initializer_range
        self.gate_proj = Linear(c.hidden_size, c.intermediate_size, ("embed", "mlp"), bias=False, std=std, dtype=dt,
                                rngs=rngs)
        self.up_proj = Linear(c.hidden_size, c.intermediate_size, ("embed", "mlp"), bias=False, std=std, dtype=dt,
                              rngs=rngs)
        self.down_proj = Linear(c.intermediate_size, c.hidden_size, ("mlp", "embed"), bias=False, std=std, dtype=dt,
                                rngs=rngs)

    def __call__(self, x: Array, stacked: tuple[Array, ...] | None = None) -> Array:
        gate, up = project(x, (self.gate_proj, self.up_proj), stacked and stacked[2])
        (down,) = project(jax.nn.silu(gate) * up, (self.down_proj,), stacked and stacked[3])
        return down


class DecoderLayer(nnx.Module):
    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        dt = jnp.dtype(config.dtype)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps, dt)
        self.self_attn = Attention(config, rngs=rngs)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps, dt)
        self.mlp = MLP(config, rngs=rngs)

    def projection_groups(self) -> tuple[tuple[Linear, ...], ...]:
        """The layer's projections grouped by shared input, in `StackedWeights.GROUPS` order."""
        a, m = self.self_attn, self.mlp
        return (a.q_proj, a.k_proj, a.v_proj), (a.o_proj,), (m.gate_proj, m.up_proj), (m.down_proj,)

    def __call__(self, x, cos, sin, mask, cache_kv=None, index=None, stacked=None):
        axis = -1 if stacked is None else 0  # the feature axis: last, or first in the CPU decode layout
        # named scopes: a profile (xprof, perfetto) reads like this code
        with jax.named_scope("attention"):
            attn_out, new_kv = self.self_attn(self.input_layernorm(x, axis), cos, sin, mask, cache_kv, index, stacked)
        x = x + attn_out
        with jax.named_scope("mlp"):
            return x + self.mlp(self.post_attention_layernorm(x, axis), stacked), new_kv


class Decoder(nnx.Module):
    """Decoder-only LM.  ``model(ids) -> float32 logits``; with ``cache=`` also returns the new cache.

    The same call trains (no cache), prefills a prompt block into a cache and decodes one
    token against it (``ids`` [B, 1]); ``stacked=`` runs the projections in the CPU decode
    layout (`StackedWeights`, built once per sampler on a CPU host).
    """

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        self.config = config
        dt = jnp.dtype(config.dtype)
        self.embed_tokens = nnx.Param(
            _normal(rngs, (config.vocab_size, config.hidden_size), config.initializer_range, dt),
            logical_axes=("vocab", "embed"))
        self.layers = nnx.List([DecoderLayer(config, rngs=rngs) for _ in range(config.num_hidden_layers)])
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps, dt)
        self.lm_head = None if config.tie_word_embeddings else Linear(
            config.hidden_size, config.vocab_size, ("embed", "vocab"), bias=False,
            std=config.initializer_range, dtype=dt, rngs=rngs)

    # -- pieces, exposed for chunked losses (hidden states and output projection separately)
    def output_kernel(self) -> Array:
        """The [hidden, vocab] output projection (the transposed embedding when tied)."""
        if self.lm_head is None:
            return self.embed_tokens.get_value().T
        return self.lm_head.kernel.get_value()

    def logits_from_hidden(self, hidden: Array, stacked: StackedWeights | None = None) -> Array:
        with jax.named_scope("lm_head"):
            if stacked is not None:
                logits = rows(stacked.head @ jnp.transpose(hidden.reshape(-1, hidden.shape[-1])))
                return logits.reshape(*hidden.shape[:-1], -1).astype(jnp.float32)
            kernel = self.output_kernel()
            flat = hidden.reshape(-1, hidden.shape[-1]) @ kernel
            return flat.reshape(*hidden.shape[:-1], kernel.shape[-1]).astype(jnp.float32)

    def hidden_states(self, input_ids: Array, attention_mask: Array | None = None,
                      positions: Array | None = None, cache: KVCache | None = None,
                      stacked: StackedWeights | None = None) -> tuple[Array, KVCache | None]:
        """Final (normed) hidden states [B, T, D], and the updated cache when one is given."""
        b, t = input_ids.shape
        new_mask = jnp.ones((b, t), jnp.bool_) if attention_mask is None else attention_mask.astype(jnp.bool_)
        if cache is None:
            index = jnp.zeros((), jnp.int32)
            key_mask = new_mask
        else:
            index = cache.index
            key_mask = jax.lax.dynamic_update_slice(cache.key_mask, new_mask, (0, index))
        s = key_mask.shape[1]
        q_slots = index + jnp.arange(t, dtype=jnp.int32)
        k_slots = jnp.arange(s, dtype=jnp.int32)
        if positions is None:
            before = jnp.cumsum(key_mask.astype(jnp.int32), axis=1) - 1
            positions = jnp.maximum(jnp.take(before, q_slots, axis=1), 0)
        mask = (k_slots[None, :] <= q_slots[:, None])[None] & key_mask[:, None, :]
        if self.config.sliding_window is not None:
            mask = mask & ((q_slots[:, None] - k_slots[None, :]) < self.config.sliding_window)[None]
        with jax.named_scope("rope"):
            cos, sin = rope_tables_once(self.config, positions)
        with jax.named_scope("embed"):
            x = jnp.take(self.embed_tokens.get_value(), input_ids, axis=0)
            if stacked is not None:  # the CPU decode layout keeps the residual stream feature-major
                x = jnp.transpose(x.reshape(b * t, -1))
        keys, values = [], []
        for i, layer in enumerate(self.layers):
            cache_kv = None if cache is None else (cache.keys[i], cache.values[i])
            with jax.named_scope(f"layer_{i}"):
                x, new_kv = layer(x, cos, sin, mask, cache_kv, index, None if stacked is None else stacked.layers[i])
            if new_kv is not None:
                keys.append(new_kv[0])
                values.append(new_kv[1])
        hidden = self.norm(x) if stacked is None else rows(self.norm(x, axis=0)).reshape(b, t, -1)
        if cache is None:
            return hidden, None
        return hidden, KVCache(keys=tuple(keys), values=tuple(values), key_mask=key_mask, index=index + t)

    def __call__(self, input_ids: Array, attention_mask: Array | None = None, positions: Array | None = None,
                 cache: KVCache | None = None, stacked: StackedWeights | None = None):
        hidden, new_cache = self.hidden_states(input_ids, attention_mask, positions, cache, stacked)
        logits = self.logits_from_hidden(hidden, stacked)
        return logits if cache is None else (logits, new_cache)


def init_decoder(config: DecoderConfig, seed: int = 0) -> Decoder:
    """A randomly initialised decoder (HF's normal(0, initializer_range) init)."""
    return Decoder(config, rngs=nnx.Rngs(seed))
