"""The decode cache (`KVCache`): the explicit pytree of per-layer keys and values that prefill
writes and a decode loop carries and donates, in the layout a one-token query reads fastest."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from jax.sharding import NamedSharding, PartitionSpec as P

from read_jax.models.config import DecoderConfig
from read_jax.sharding import BATCH_AXES, named_sharding

Array = jax.Array


@struct.dataclass
class KVCache:
    """The decode cache: per layer keys [B, KVH, K, S] and values [B, KVH, S, K], key validity
    [B, S], next write slot.

    Heads come before length, so a one-token query attends with plain batched products over
    (B, KVH) without copying a transposed cache every layer and step; keys are stored
    length-last, so the score product q·K is [G, K] x [K, S] per (batch, head), about twice
    as fast as against a [B, S, KVH, K] cache on XLA:CPU (docs/benchmarks.md).
    """

    keys: tuple[Array, ...]
    values: tuple[Array, ...]
    key_mask: Array
    index: Array

    # logical axes (read_jax.sharding), for sharding the cache like the model
    KEY_AXES = ("batch", "cache_heads", "head_dim", "length")
    VALUE_AXES = ("batch", "cache_heads", "length", "head_dim")

    @classmethod
    def init(cls, config: DecoderConfig, batch: int, length: int, dtype: Any = None) -> "KVCache":
        dtype = jnp.dtype(dtype or config.dtype)
        kvh, k, n = config.num_key_value_heads, config.head_dim, config.num_hidden_layers
        return cls(keys=tuple(jnp.zeros((batch, kvh, k, length), dtype) for _ in range(n)),
                   values=tuple(jnp.zeros((batch, kvh, length, k), dtype) for _ in range(n)),
                   key_mask=jnp.zeros((batch, length), jnp.bool_), index=jnp.zeros((), jnp.int32))

    @property
    def length(self) -> int:
        return self.key_mask.shape[1]

    def constrained(self, mesh: Any) -> "KVCache":
        """Keys and values pinned to their rule-table shardings on ``mesh`` (batch over the data axes)."""
        def pin(a: Array, axes: tuple[str, ...]) -> Array:
            return jax.lax.with_sharding_constraint(a, named_sharding(mesh, axes, a.shape))

        return self.replace(keys=tuple(pin(a, self.KEY_AXES) for a in self.keys),
                            values=tuple(pin(a, self.VALUE_AXES) for a in self.values),
                            key_mask=jax.lax.with_sharding_constraint(
                                self.key_mask, NamedSharding(mesh, P(BATCH_AXES, None))))

    def grown(self, length: int) -> "KVCache":
        """This cache with empty slots appended up to ``length``."""
        pad = length - self.length
        if pad < 0:
            raise ValueError(f"cannot shrink a cache of {self.length} slots to {length}")
        return self.replace(keys=tuple(jnp.pad(a, ((0, 0),) * 3 + ((0, pad),)) for a in self.keys),
                            values=tuple(jnp.pad(a, ((0, 0),) * 2 + ((0, pad), (0, 0))) for a in self.values),
                            key_mask=jnp.pad(self.key_mask, ((0, 0), (0, pad))))

    def prefix(self, length: int) -> "KVCache":
        """The first ``length`` slots (a copy)."""
        return self.replace(keys=tuple(a[..., :length] for a in self.keys),
                            values=tuple(a[:, :, :length] for a in self.values), key_mask=self.key_mask[:, :length])

    def with_prefix(self, head: "KVCache") -> "KVCache":
        """This cache with its first slots overwritten by ``head`` (in place when donated), at ``head``'s index."""
        def put(a: Array, part: Array) -> Array:
            return jax.lax.dynamic_update_slice(a, part, (0,) * a.ndim)

        return self.replace(keys=tuple(map(put, self.keys, head.keys)), values=tuple(map(put, self.values, head.values)),
                            key_mask=put(self.key_mask, head.key_mask), index=head.index)
