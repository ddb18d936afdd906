"""The two jitted programs behind `Sampler`: ``prefill`` and the ``decode`` loop.

Both are pure functions of ``(graphdef static, state, ...)`` and call the model's one forward
pass (`Decoder.__call__`): prefill runs the whole left-padded prompt batch into a `KVCache`,
decode is one ``lax.while_loop`` of sample (`rule.pick`), record, one-token forward, which
stops at ``max_new_tokens`` or when every row has emitted an end-of-sequence id.  The prefill
output is donated to decode, so the cache is updated in place; sampling is compiled once, in
decode only.

Single-query attention reads every slot of the cache each step, filled or not, so long
decodes run as up to three loops over a growing prefix of the cache (`cache_phases`), each
continuing where the last stopped.  On a CPU host the forward pass multiplies by the
`StackedWeights` layout and the decode program gets XLA:CPU's YNN options
(`read_jax.backend`); elsewhere the plain model and compiler defaults run.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from read_jax import backend
from read_jax.models.decoder import Decoder, StackedWeights
from read_jax.models.kv_cache import KVCache
from read_jax.sampling.rule import pick
from read_jax.sharding import BATCH_AXES

Array = jax.Array

MIN_PHASE_TOKENS = 32


def cache_phases(prompt_bucket: int, n_out: int) -> tuple[int, ...]:
    """Cache lengths of the decode's phases: ``prompt_bucket + n_out / 4``, ``+ n_out / 2`` and
    ``+ n_out`` (fewer phases when the quarter would be under `MIN_PHASE_TOKENS` new slots).

    Decoding in phases whose cache grows (copied once per phase) attends over 120 instead of
    160 slots on average for 32 + 128 tokens.  A phase runs on a copy of the first slots of
    the (donated) full cache, written back when it ends; each phase is another copy of the
    decode body in the compiled program, so there are at most three.
    """
    lengths = [prompt_bucket + n_out]
    while len(lengths) < 3 and (lengths[0] - prompt_bucket) // 2 >= MIN_PHASE_TOKENS:
        lengths.insert(0, prompt_bucket + (lengths[0] - prompt_bucket) // 2)
    return tuple(lengths)


@struct.dataclass
class SamplingParams:
    temperature: Array  # [B] float32
    top_p: Array        # [B] float32
    top_k: Array        # [B] int32
    seed: Array         # [] uint32
    eos: Array          # [E] int32, -1 = unused slot
    active: Array       # [B] bool, False for dummy rows padded in by bucketing
    max_new_tokens: Array  # [] int32


@struct.dataclass
class DecodeState:
    cache: KVCache
    logits: Array       # [B, V] float32, logits of the next token
    position: Array     # [B] int32, RoPE position of the next token
    done: Array         # [B] bool
    step: Array         # [] int32, number of tokens sampled so far
    tokens: Array       # [B, N] int32
    logprobs: Array     # [B, N] float32
    topk_ids: Array     # [B, N, k] int32 (k may be 0)
    topk_logprobs: Array  # [B, N, k] float32

    def constrained(self, mesh: Mesh | None) -> "DecodeState":
        """Every array pinned to its sharding on ``mesh``: batch over the data axes, the cache by the rule table."""
        if mesh is None:
            return self

        def rows(a: Array) -> Array:
            return jax.lax.with_sharding_constraint(a, NamedSharding(mesh, P(BATCH_AXES, *([None] * (a.ndim - 1)))))

        return self.replace(cache=self.cache.constrained(mesh), logits=rows(self.logits),
                            position=rows(self.position), done=rows(self.done), tokens=rows(self.tokens),
                            logprobs=rows(self.logprobs), topk_ids=rows(self.topk_ids),
                            topk_logprobs=rows(self.topk_logprobs))

    def record(self, token: Array, logprob: Array, top: tuple[Array, Array]) -> "DecodeState":
        """Write this step's token, log-prob and top-k into the output buffers."""
        def put(buf, val):
            start = (0, self.step) + (0,) * (buf.ndim - 2)
            return jax.lax.dynamic_update_slice(buf, val[:, None].astype(buf.dtype), start)

        return self.replace(tokens=put(self.tokens, token), logprobs=put(self.logprobs, logprob),
                            topk_ids=put(self.topk_ids, top[0]), topk_logprobs=put(self.topk_logprobs, top[1]))


@functools.partial(jax.jit, static_argnames=("graphdef", "cache_len", "mesh"))
def prefill(graphdef, state, ids: Array, mask: Array, active: Array, *, cache_len: int, mesh: Mesh | None):
    """The prompt batch in one forward pass -> (KVCache, next-token logits, next position, done)."""
    model: Decoder = nnx.merge(graphdef, state)
    b, t = ids.shape
    positions = jnp.maximum(jnp.cumsum(mask.astype(jnp.int32), axis=1) - 1, 0)
    # the prompt attends within its own bucket; the cache grows to full length only afterwards
    hidden, cache = model.hidden_states(ids, attention_mask=mask, positions=positions,
                                        cache=KVCache.init(model.config, b, t))
    cache = cache.grown(cache_len)
    logits = model.logits_from_hidden(hidden[:, -1])  # left padding: the last column is real
    if mesh is not None:
        cache = cache.constrained(mesh)
    return cache, logits, jnp.sum(mask.astype(jnp.int32), axis=1), ~active


def _decode_loops(graphdef, state, stacked: StackedWeights | None, prefilled, params: SamplingParams, *, n_out: int,
                  phases: tuple[int, ...], k: int, mesh: Mesh | None) -> DecodeState:
    """``lax.while_loop`` s, one per cache phase (`cache_phases`): sample from the current
    logits, record, run the model on the token; between phases the cache grows.

    The forward pass after the last sampled token is skipped (``lax.cond``).
    """
    cache, logits, position, done = prefilled
    b = logits.shape[0]
    s = DecodeState(
        cache=cache, logits=logits, position=position, done=done, step=jnp.zeros((), jnp.int32),
        tokens=jnp.zeros((b, n_out), jnp.int32), logprobs=jnp.zeros((b, n_out), jnp.float32),
        topk_ids=jnp.zeros((b, n_out, k), jnp.int32), topk_logprobs=jnp.zeros((b, n_out, k), jnp.float32))
    limit = jnp.minimum(params.max_new_tokens, n_out)
    prompt_bucket = phases[-1] - n_out

    def body(s: DecodeState) -> DecodeState:
        token, logprob, top = pick(s.logits, s.step, params.seed, params.temperature, params.top_p, params.top_k, k)
        s = s.record(token, logprob, top)
        done = s.done | jnp.any(token[:, None] == params.eos[None, :], axis=-1)
        step = s.step + 1

        def forward(cache: KVCache) -> tuple[Array, KVCache]:
            model: Decoder = nnx.merge(graphdef, state)
            logits, cache = model(token[:, None], positions=s.position[:, None], cache=cache, stacked=stacked)
            return logits[:, 0], cache

        logits, cache = jax.lax.cond((step < limit) & ~jnp.all(done), forward,
                                     lambda cache: (s.logits, cache), s.cache)
        return s.replace(cache=cache, logits=logits, position=s.position + 1, done=done, step=step).constrained(mesh)

    full = s.cache  # all slots: donated, and updated in place once per phase
    for length in phases:
        s = s.replace(cache=full.prefix(length) if length < full.length else full).constrained(mesh)
        # the steps whose forward pass writes a slot of this phase's cache
        phase_end = jnp.minimum(limit, length - prompt_bucket)
        s = jax.lax.while_loop(lambda s, end=phase_end: (s.step < end) & ~jnp.all(s.done), body, s)
        full = full.with_prefix(s.cache) if length < full.length else s.cache
    return s.replace(cache=full)


_DECODE_JIT = dict(static_argnames=("graphdef", "n_out", "phases", "k", "mesh"), donate_argnames=("prefilled",))
_decode = jax.jit(_decode_loops, **_DECODE_JIT)
# CPU options only where they apply (an accelerator's compiler is never handed them)
_decode_cpu = jax.jit(_decode_loops, compiler_options=backend.DECODE_COMPILER_OPTIONS, **_DECODE_JIT)


def decode(platform: str):
    """The jitted decode program for ``platform`` (with the CPU compiler options on CPU)."""
    return _decode_cpu if backend.decode_compiler_options(platform) else _decode


def compile_count() -> dict[str, int]:
    """How many programs the sampler's jitted functions hold (for recompilation tests)."""
    return {"prefill": prefill._cache_size(), "decode": _decode._cache_size() + _decode_cpu._cache_size()}
