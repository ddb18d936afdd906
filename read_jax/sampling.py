"""Teacher generation: a jitted KV-cache sampler that can also hand back top-k log-probs.

```python
from read_jax.sampling import generate
out = generate(model, prompt_ids, max_new_tokens=128, temperature=0.0, top_p=1.0, top_k=0,
               eos_id=None, seed=0, topk_logprobs=0, mesh=None)
out.tokens[i]                 # list[int]: new tokens of prompt i, ending with the first eos if one was emitted
out.token_logprobs[i]         # list[float], same length
out.topk_ids[i], out.topk_logprobs[i]   # [len, k] numpy when topk_logprobs > 0

sampler = Sampler(model, mesh=None)     # split (and place) once, for repeated calls
out = sampler.generate(prompt_ids, max_new_tokens=128, ...)   # same arguments, minus mesh
texts = generate_text(model, tokenizer, ["question?"], max_new_tokens=64)   # strings in, strings out
```

How it runs
- The module is split once (`nnx.split`, in `Sampler`); two jitted *pure* functions of
  ``(graphdef static, state, ...)`` do the work: ``prefill`` (the whole left-padded prompt
  batch in one forward pass -> KV cache, next-token logits, positions, done mask) and
  ``decode`` (one program: a ``lax.while_loop`` of sample, record, one-token forward, which
  stops at ``max_new_tokens`` or when every row has emitted an end-of-sequence id; long
  decodes run it as up to three loops in sequence over a growing prefix of the cache,
  `cache_phases`, each continuing where the last stopped).  The prefill output (KV cache,
  logits, positions, done mask) is donated to ``decode``, so the cache is updated in place;
  sampling is compiled once, in ``decode`` only.
- The decode step (`decode_step`) is built from the model's own sub-modules' parameters but
  keeps its residual stream feature-major ([hidden, batch]) and multiplies by the weights
  from the left (`DecodeMatrices`: on CPU, [out, in] copies with each layer's q/k/v and
  gate/up stacked, made once per `Sampler`); its cache keeps keys [B, KVH, K, S] and values
  [B, KVH, S, K] (`DecodeCache`), and on CPU the single-query attention is written as
  multiply-and-reduce, which XLA:CPU's YNN reductions run fastest (`_attend_one`,
  `DECODE_COMPILER_OPTIONS`).
- Compiles are bounded by bucketing: batch, prompt length and the new-token buffer are
  rounded up to powers of two (dummy rows are padded in, marked done from the start); the
  cache holds ``prompt_bucket + new_bucket`` slots, i.e. a sum of two powers of two, which
  bounds the programs as tightly as a pure power of two and never attends over more than
  twice the needed slots, usually far fewer (32 + 128 = 160, not 256).  Long decodes run in
  up to three phases over a growing prefix of the cache (`cache_phases`: 64, 96, then 160
  slots for 32 + 128), so early steps do not attend over empty slots.
  ``max_new_tokens`` itself, temperature, top-p, top-k, the seed and the eos ids are traced
  arrays: changing them never recompiles.
- Sampling per row: temperature 0 is greedy (argmax of the raw logits); otherwise logits are
  divided by the temperature, truncated to the top-k (0 = off), then to the smallest set of
  most likely tokens whose probability reaches top-p (1 = off), and sampled with Gumbel-max.
  Tokens tied with the truncation threshold are kept.  When no row of the batch samples,
  the sort needed for top-k / top-p is skipped at run time (``lax.cond``).
- Randomness: row ``i`` uses ``fold_in(fold_in(key(seed), i), step)``, so a seed gives the
  same output every time, and a row's output depends only on its own prompt, parameters,
  row index and the seed -- never on the other rows, the batch bucket or its left padding.
- Log-probs: ``token_logprobs`` and the optional top-k capture are log-probs of the
  teacher's *untempered, untruncated* softmax, ``log_softmax(logits)``, whatever
  temperature / top-p / top-k the sample was drawn with.  That is the distribution logit
  distillation matches (a KD loss at temperature T re-tempers it, and a top-k sparse KL
  needs the teacher's real probabilities, not a truncated renormalised proposal).
- Under a mesh the parameters are placed by the rule table (`read_jax.sharding`), the
  batch (and the KV cache) is sharded over the data axes, the cache's KV heads over 'tp'.

Where the time goes (2-core CPU, the `read-jax bench sampler` Llama: batch 8, 32 + 128
tokens): the matrix products over half of a decode step, attention over the cache about a
third (by ablation, with cache phases: dropping attention took 1.87 -> 1.19 ms per step;
each attended slot costs ~5 µs per step, which is why the cache grows in phases,
`cache_phases`), and norms, RoPE, cache writes, sampling and log-probs the rest.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from read_jax import backend
from read_jax.distributed import to_host
from read_jax.models.decoder import Decoder, KVCache, _rope_tables_once, apply_rope
from read_jax.sharding import BATCH_AXES, batch_sharding, named_sharding, place, state_shardings

Array = jax.Array

MIN_PROMPT_BUCKET = 8
MIN_PHASE_TOKENS = 32
MIN_EOS_SLOTS = 4
_MASK_VALUE = -0.7 * float(np.finfo(np.float32).max)  # as the model's attention mask
# The decode loop hands only reductions to XLA:CPU's YNN library fusions: its dots go to
# XLA's own kernels, which ran the feature-major [out, in] x [in, B] products ~1.5x faster
# (see DecodeMatrices), while YNN runs the multiply-reduce attention (`_attend_one`).
# Used for the CPU decode program only;
# an experimental XLA:CPU option of the pinned jaxlib (pyproject), to re-check on upgrades.
DECODE_COMPILER_OPTIONS = backend.DECODE_COMPILER_OPTIONS  # XLA:CPU only (read_jax.backend)

__all__ = ["DecodeCache", "GenerateOutput", "Sampler", "bucket", "compile_count", "decode_step", "generate",
           "generate_text", "sample_logits"]


# --------------------------------------------------------------------------- output
@dataclasses.dataclass
class GenerateOutput:
    """Per-prompt results (lists indexed like the prompts)."""

    tokens: list[list[int]]
    token_logprobs: list[list[float]]
    topk_ids: list[np.ndarray] | None = None       # each [len, k] int32
    topk_logprobs: list[np.ndarray] | None = None  # each [len, k] float32
    finished: list[bool] = dataclasses.field(default_factory=list)  # True when an eos was emitted

    @property
    def num_generated_tokens(self) -> int:
        return sum(len(t) for t in self.tokens)


# --------------------------------------------------------------------------- helpers
def bucket(n: int, minimum: int = 1) -> int:
    """The smallest power of two >= max(n, minimum)."""
    n = max(int(n), int(minimum), 1)
    return 1 << (n - 1).bit_length()


def cache_phases(prompt_bucket: int, n_out: int) -> tuple[int, ...]:
    """Cache lengths of the decode's phases: ``prompt_bucket + n_out / 4``, ``+ n_out / 2`` and
    ``+ n_out`` (fewer phases when the quarter would be under `MIN_PHASE_TOKENS` new slots).

    Single-query attention reads every slot of the cache each step, filled or not; decoding
    in phases whose cache grows (copied once per phase) attends over 120 instead of 160
    slots on average for 32 + 128 tokens.  A phase runs on a copy of the first slots of the
    (donated) full cache, written back when it ends; each phase is another copy of the
    decode body in the compiled program, so there are at most three.
    """
    lengths = [prompt_bucket + n_out]
    while len(lengths) < 3 and (lengths[0] - prompt_bucket) // 2 >= MIN_PHASE_TOKENS:
        lengths.insert(0, prompt_bucket + (lengths[0] - prompt_bucket) // 2)
    return tuple(lengths)


def _per_example(value: Any, n: int, name: str, dtype: Any) -> np.ndarray:
    arr = np.asarray(value, dtype=dtype)
    if arr.ndim == 0:
        return np.full((n,), arr, dtype)
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected a scalar or {n} values (one per prompt), got shape {arr.shape}")
    return arr


def _argmax(logits: Array, row_max: Array | None = None) -> Array:
    """First index of the row maximum ([B, V] -> [B] int32), as `jnp.argmax`.

    Two plain reductions (max, then min over matching indices) instead of one variadic
    (value, index) reduction, which XLA:CPU runs ~2.5x slower; the max is shared with the
    log-normaliser in `_pick`.
    """
    v = logits.shape[-1]
    if row_max is None:
        row_max = jnp.max(logits, axis=-1, keepdims=True)
    idx = jnp.min(jnp.where(logits == row_max, jnp.arange(v, dtype=jnp.int32), v), axis=-1)
    return jnp.minimum(idx, v - 1)  # all-NaN row: stay in range


def sample_logits(logits: Array, keys: Array | Callable[[], Array], temperature: Array, top_p: Array,
                  top_k: Array, greedy: Array | None = None) -> Array:
    """One token per row from ``logits`` [B, V] (float32) with per-row parameters [B].

    temperature 0 -> argmax; else softmax(logits / temperature) truncated to the top-k
    (k <= 0 or k >= V: off), then to the smallest most-likely set with mass >= top_p
    (top_p >= 1: off), sampled by Gumbel-max with the row's key (``keys``: a [B] key array,
    or a function returning one, called only when some row samples).  ``greedy``: the
    argmax, when the caller already has it.
    """
    logits = logits.astype(jnp.float32)
    v = logits.shape[-1]
    if greedy is None:
        greedy = _argmax(logits)
    sampling = temperature > 0

    def draw() -> Array:
        t = jnp.where(sampling, temperature, 1.0).astype(jnp.float32)
        scaled = logits / t[:, None]
        desc = -jnp.sort(-scaled, axis=-1)  # [B, V] descending
        rank = jnp.arange(v, dtype=jnp.int32)[None, :]
        k = jnp.where((top_k > 0) & (top_k < v), top_k, v).astype(jnp.int32)
        in_k = rank < k[:, None]
        masked = jnp.where(in_k, desc, -jnp.inf)
        probs = jax.nn.softmax(masked, axis=-1)
        mass_before = jnp.cumsum(probs, axis=-1) - probs
        keep = in_k & ((mass_before < top_p[:, None]) | (top_p[:, None] >= 1.0))
        n_keep = jnp.maximum(jnp.sum(keep, axis=-1), 1)
        threshold = jnp.take_along_axis(desc, (n_keep - 1)[:, None], axis=-1)
        truncated = jnp.where(scaled >= threshold, scaled, -jnp.inf)
        row_keys = keys() if callable(keys) else keys
        gumbel = jax.vmap(lambda key: jax.random.gumbel(key, (v,), jnp.float32))(row_keys)
        drawn = _argmax(truncated + gumbel)
        return jnp.where(sampling, drawn, greedy)

    # greedy-only batches (the common teacher setting) skip the sort and the RNG at run time
    return jax.lax.cond(jnp.any(sampling), draw, lambda: greedy)


# --------------------------------------------------------------------------- jitted core
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
    cache: DecodeCache
    logits: Array       # [B, V] float32, logits of the next token
    position: Array     # [B] int32, RoPE position of the next token
    done: Array         # [B] bool
    step: Array         # [] int32, number of tokens sampled so far
    tokens: Array       # [B, N] int32
    logprobs: Array     # [B, N] float32
    topk_ids: Array     # [B, N, k] int32 (k may be 0)
    topk_logprobs: Array  # [B, N, k] float32


def _row_keys(seed: Array, step: Array, batch: int) -> Array:
    base = jax.random.key(seed)
    rows = jnp.arange(batch, dtype=jnp.uint32)
    return jax.vmap(lambda r: jax.random.fold_in(jax.random.fold_in(base, r), step))(rows)


def _constrain(x: Array, mesh: Mesh | None, spec: P) -> Array:
    if mesh is None:
        return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


def _constrain_state(s: DecodeState, mesh: Mesh | None) -> DecodeState:
    if mesh is None:
        return s
    cache = s.cache.constrained(mesh).replace(key_mask=_constrain(s.cache.key_mask, mesh, P(BATCH_AXES, None)))
    b = P(BATCH_AXES)
    return s.replace(
        cache=cache, logits=_constrain(s.logits, mesh, P(BATCH_AXES, None)), position=_constrain(s.position, mesh, b),
        done=_constrain(s.done, mesh, b), tokens=_constrain(s.tokens, mesh, P(BATCH_AXES, None)),
        logprobs=_constrain(s.logprobs, mesh, P(BATCH_AXES, None)),
        topk_ids=_constrain(s.topk_ids, mesh, P(BATCH_AXES, None, None)),
        topk_logprobs=_constrain(s.topk_logprobs, mesh, P(BATCH_AXES, None, None)))


def _pick(logits: Array, step: Array, p: SamplingParams, k: int):
    """Sample one token per row and compute its log-prob (+ top-k) under log_softmax(logits)."""
    b = logits.shape[0]
    row_max = jnp.max(logits, axis=-1, keepdims=True)
    token = sample_logits(logits, lambda: _row_keys(p.seed, step, b), p.temperature, p.top_p, p.top_k,
                          greedy=_argmax(logits, row_max))
    logz = row_max[:, 0] + jnp.log(jnp.sum(jnp.exp(logits - row_max), axis=-1))
    logprob = jnp.take_along_axis(logits, token[:, None], axis=-1)[:, 0] - logz
    if k:
        top_vals, top_ids = jax.lax.top_k(logits, k)
        top = (top_ids.astype(jnp.int32), top_vals - logz[:, None])
    else:
        top = (jnp.zeros((b, 0), jnp.int32), jnp.zeros((b, 0), jnp.float32))
    return token, logprob, top


@struct.dataclass
class DecodeCache:
    """The sampler's KV cache: per layer keys [B, KVH, K, S] and values [B, KVH, S, K], key
    validity [B, S], next slot.

    Heads come before length (the model's `KVCache` is [B, S, KVH, K]): a one-token query
    then attends with plain batched matmuls over (B, KVH), which XLA runs without first
    copying a transposed cache every layer and step (see `_attend_one`).  Keys are stored
    transposed, length last, so the score product q·K is [G, K] x [K, S] per (batch, head):
    measured 55-65 µs instead of 130-157 µs per layer and step in the sampler benchmark's
    decode (XLA:CPU profile, batch 8, 160 slots).  Built once from the prefill cache by
    `from_prefill`.
    """

    keys: tuple[Array, ...]
    values: tuple[Array, ...]
    key_mask: Array
    index: Array

    KEY_AXES = ("batch", "cache_heads", "head_dim", "length")
    VALUE_AXES = ("batch", "cache_heads", "length", "head_dim")

    def constrained(self, mesh: Mesh) -> "DecodeCache":
        """Keys and values pinned to their rule-table shardings on ``mesh``."""
        def pin(a: Array, axes: tuple[str, ...]) -> Array:
            return jax.lax.with_sharding_constraint(a, named_sharding(mesh, axes, a.shape))

        return self.replace(keys=tuple(pin(a, self.KEY_AXES) for a in self.keys),
                            values=tuple(pin(a, self.VALUE_AXES) for a in self.values))

    @classmethod
    def from_prefill(cls, cache: KVCache, length: int) -> "DecodeCache":
        """The model-layout ``cache`` transposed to the decode layout and grown to ``length`` slots."""
        return cls(keys=tuple(jnp.transpose(a, (0, 2, 3, 1)) for a in cache.keys),  # [B, S, KVH, K] -> [B, KVH, K, S]
                   values=tuple(jnp.swapaxes(a, 1, 2) for a in cache.values),       # -> [B, KVH, S, K]
                   key_mask=cache.key_mask, index=cache.index).grown(length)

    def grown(self, length: int) -> "DecodeCache":
        """This cache with empty slots appended up to ``length``."""
        pad = length - self.length
        if pad < 0:
            raise ValueError(f"cannot shrink a cache of {self.length} slots to {length}")
        return self.replace(keys=tuple(jnp.pad(a, ((0, 0),) * 3 + ((0, pad),)) for a in self.keys),
                            values=tuple(jnp.pad(a, ((0, 0),) * 2 + ((0, pad), (0, 0))) for a in self.values),
                            key_mask=jnp.pad(self.key_mask, ((0, 0), (0, pad))))

    def prefix(self, length: int) -> "DecodeCache":
        """The first ``length`` slots (a copy)."""
        return self.replace(keys=tuple(a[..., :length] for a in self.keys),
                            values=tuple(a[:, :, :length] for a in self.values), key_mask=self.key_mask[:, :length])

    def with_prefix(self, head: "DecodeCache") -> "DecodeCache":
        """This cache with its first slots overwritten by ``head`` (in place when donated), at ``head``'s index."""
        def put(a: Array, part: Array) -> Array:
            return jax.lax.dynamic_update_slice(a, part, (0,) * a.ndim)

        return self.replace(keys=tuple(map(put, self.keys, head.keys)), values=tuple(map(put, self.values, head.values)),
                            key_mask=put(self.key_mask, head.key_mask), index=head.index)

    @property
    def length(self) -> int:
        return self.key_mask.shape[1]


def _attend_one(q: Array, keys: Array, values: Array, bias: Array, products: bool = True) -> Array:
    """Single-query grouped attention.  q: [B, H, K]; keys: [B, KVH, K, S]; values: [B, KVH, S, K]; bias: [B, S]
    (0 for a valid key, a large negative number otherwise).  Float32 scores and softmax; the
    normalisation is applied after the value product ([B, H, K] divides, not [B, H, S]).

    ``products``: both products as batched matmuls (einsum).  Otherwise as broadcast
    multiplies reduced over the contracted axis, which XLA:CPU hands to its YNN reduction
    kernels (`DECODE_COMPILER_OPTIONS` keeps YNN for reductions only): 40-48 µs per layer
    in a microbenchmark of the benchmark's cache, where XLA's own batched dots (one small
    product per batch row and head) took 85-100 µs; inside the full decode step the two
    measured within noise of each other.
    """
    b, h, d = q.shape
    kvh = keys.shape[1]
    q = q.reshape(b, kvh, h // kvh, d).astype(keys.dtype)
    f32 = jnp.float32
    if products:
        scores = jnp.einsum("bngd,bnds->bngs", q, keys, preferred_element_type=f32)
    else:
        scores = jnp.sum((q[..., None] * keys[:, :, None]).astype(f32), axis=3)
    scores = scores * (d ** -0.5) + bias[:, None, None, :]
    unnorm = jnp.exp(scores - jnp.max(scores, axis=-1, keepdims=True))
    if products:
        out = jnp.einsum("bngs,bnsd->bngd", unnorm.astype(values.dtype), values, preferred_element_type=f32)
    else:
        out = jnp.sum((unnorm.astype(values.dtype)[..., None] * values[:, :, None]).astype(f32), axis=3)
    return (out / jnp.sum(unnorm, axis=-1)[..., None]).reshape(b, h * d)


_GROUPS = ("qkv", "o", "gate_up", "down")  # a layer's projections, grouped by shared input


@struct.dataclass
class DecodeMatrices:
    """The matrices a decode step multiplies by: per layer four groups of projections that
    share an input -- (q, k, v), (o,), (gate, up), (down,) -- and the output head.

    The decode step keeps its residual stream feature-major, ``[features, batch]``, and each
    projection is ``W @ x`` with the weight as the *left* operand.  With a handful of rows,
    ``x @ W`` is a skinny product dominated by re-reading (and re-packing) the weight for a
    few rows; ``W[out, in] @ x[in, B]`` streams each weight row once against the whole
    batch (on XLA:CPU's own dot kernels, `DECODE_COMPILER_OPTIONS`).  So with ``cpu=True``
    (what `Sampler` builds on CPU) the matrices are ``[out, in]`` copies, each group
    stacked into one matrix (one product per group: q/k/v and gate/up each read their
    input once), and ``row_splits`` cuts the product back into its parts.  Measured on
    the benchmark's shapes (2 cores, batch 8): the MLP products 750-1000 µs per 24 as
    ``W @ x`` vs 1700-2200 as ``x @ W``, and stacking a layer's groups another ~25 %.
    Accelerator compilers choose operand layouts themselves, so with ``cpu=False`` the
    groups are the model's own ``[in, out]`` kernels (no copy; the copy is twice the
    teacher's weights, acceptable on a CPU host, not in accelerator memory).
    """

    layers: tuple[tuple[tuple[Array, ...], ...], ...]  # [layer][group] -> matrices
    head: Array                                       # [vocab, hidden] if cpu else [hidden, vocab]
    cpu: bool = struct.field(pytree_node=False, default=False)
    row_splits: tuple[tuple[int, ...], ...] = struct.field(pytree_node=False, default=())

    @classmethod
    def of(cls, model: Decoder, cpu: bool) -> "DecodeMatrices":
        """``model``'s matrices, as views (``cpu=False``) or stacked ``[out, in]`` copies."""
        def groups(layer) -> tuple[tuple[Array, ...], ...]:
            a, m = layer.self_attn, layer.mlp
            mods = ((a.q_proj, a.k_proj, a.v_proj), (a.o_proj,), (m.gate_proj, m.up_proj), (m.down_proj,))
            return tuple(tuple(mod.kernel.get_value() for mod in g) for g in mods)

        layers = tuple(groups(layer) for layer in model.layers)
        if not cpu:
            return cls(layers=layers, head=model.output_kernel(), cpu=False)
        splits = tuple(tuple(w.shape[1] for w in g) for g in layers[0])
        stacked = tuple(tuple((jnp.concatenate([w.T for w in g], axis=0),) for g in ws) for ws in layers)
        head = (model.embed_tokens.get_value() if model.lm_head is None
                else jnp.transpose(model.lm_head.kernel.get_value()))  # tied: the embedding is [vocab, hidden]
        return cls(layers=stacked, head=head, cpu=True, row_splits=splits)

    def products(self, layer: int, group: str, x: Array) -> tuple[Array, ...]:
        """``x`` [in, B] through ``layer``'s projection ``group`` -> one [out, B] per projection."""
        g = _GROUPS.index(group)
        ws = self.layers[layer][g]
        if not self.cpu:
            return tuple(jnp.einsum("io,ib->ob", w, x) for w in ws)
        y = ws[0] @ x
        return tuple(jnp.split(y, np.cumsum(self.row_splits[g])[:-1].tolist(), axis=0))

    def logits(self, x: Array) -> Array:
        """Final hidden states [D, B] -> logits [V, B]."""
        return self.head @ x if self.cpu else jnp.einsum("dv,db->vb", self.head, x)


def _with_bias(y: Array, module) -> Array:
    return y if module.bias is None else y + module.bias.get_value()[:, None]


def _batch_major(y: Array) -> Array:
    """[F, B] -> [B, F].  The barrier keeps XLA from folding the transpose into the product
    that made ``y`` (which turns ``W @ x`` back into the slow ``x.T @ W.T`` form)."""
    return jnp.transpose(jax.lax.optimization_barrier(y))


def decode_step(model: Decoder, token: Array, position: Array, cache: DecodeCache,
                matrices: DecodeMatrices | None = None) -> tuple[Array, DecodeCache]:
    """One decode step for a [B] batch of tokens at RoPE ``position`` [B] -> (logits [B, V] f32, cache).

    The same computation as ``model(token[:, None], positions=position[:, None], cache=...)``,
    built from the model's own sub-modules' parameters (norms, projections, RoPE, MLP,
    output head) with the single-query attention of `_attend_one` over a `DecodeCache`.  The
    residual stream is feature-major, [D, B], and projections multiply by ``matrices``
    (default: the model's kernels; see `DecodeMatrices`); per-head work (q/k norms, RoPE,
    attention) runs batch-major on the small [B, heads, head_dim] tensors.  Tested against
    the model's full forward pass in both matrix layouts.
    """
    config = model.config
    if matrices is None:
        matrices = DecodeMatrices.of(model, cpu=False)
    b = token.shape[0]
    index = cache.index
    key_mask = jax.lax.dynamic_update_slice(cache.key_mask, jnp.ones((b, 1), jnp.bool_), (0, index))
    slots = jnp.arange(cache.length, dtype=jnp.int32)
    valid = key_mask & (slots <= index)[None]
    if config.sliding_window is not None:
        valid = valid & ((index - slots) < config.sliding_window)[None]
    bias = jnp.where(valid, 0.0, _MASK_VALUE).astype(jnp.float32)  # once per step, shared by all layers
    cos, sin = _rope_tables_once(config, position[:, None])  # once per step, not fused into every layer
    x = jnp.transpose(jnp.take(model.embed_tokens.get_value(), token, axis=0))  # [D, B]
    keys, values = [], []
    for i, layer in enumerate(model.layers):
        attn, mlp = layer.self_attn, layer.mlp
        h = layer.input_layernorm(x, axis=0)
        q, k, v = (_batch_major(_with_bias(y, mod)).reshape(b, 1, -1, attn.head_dim)
                   for y, mod in zip(matrices.products(i, "qkv", h), (attn.q_proj, attn.k_proj, attn.v_proj)))
        if attn.q_norm is not None:
            q, k = attn.q_norm(q), attn.k_norm(k)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        kc = jax.lax.dynamic_update_slice(cache.keys[i], jnp.transpose(k, (0, 2, 3, 1)).astype(cache.keys[i].dtype),
                                          (0, 0, 0, index))
        vc = jax.lax.dynamic_update_slice(cache.values[i], jnp.swapaxes(v, 1, 2).astype(cache.values[i].dtype),
                                          (0, 0, index, 0))
        keys.append(kc)
        values.append(vc)
        out = _attend_one(q[:, 0], kc, vc, bias, products=not matrices.cpu).astype(x.dtype)  # [B, H*K]
        (o,) = matrices.products(i, "o", jnp.transpose(out))
        x = x + _with_bias(o, attn.o_proj)
        gate, up = matrices.products(i, "gate_up", layer.post_attention_layernorm(x, axis=0))
        (down,) = matrices.products(i, "down", jax.nn.silu(gate) * up)
        x = x + down
    logits = _batch_major(matrices.logits(model.norm(x, axis=0))).astype(jnp.float32)
    return logits, DecodeCache(keys=tuple(keys), values=tuple(values), key_mask=key_mask, index=index + 1)


def _is_eos(token: Array, eos: Array) -> Array:
    return jnp.any(token[:, None] == eos[None, :], axis=-1)


def _record(s: DecodeState, token, logprob, top, at) -> DecodeState:
    def put(buf, val):
        start = (0, at) + (0,) * (buf.ndim - 2)
        return jax.lax.dynamic_update_slice(buf, val[:, None].astype(buf.dtype), start)

    return s.replace(tokens=put(s.tokens, token), logprobs=put(s.logprobs, logprob),
                     topk_ids=put(s.topk_ids, top[0]), topk_logprobs=put(s.topk_logprobs, top[1]))


@functools.partial(jax.jit, static_argnames=("graphdef", "cache_len", "mesh"))
def _prefill(graphdef, state, ids: Array, mask: Array, active: Array, *, cache_len: int, mesh: Mesh | None):
    """The prompt batch in one forward pass -> (DecodeCache, next-token logits, next position, done)."""
    model: Decoder = nnx.merge(graphdef, state)
    b, t = ids.shape
    positions = jnp.maximum(jnp.cumsum(mask.astype(jnp.int32), axis=1) - 1, 0)
    # the prompt attends within its own bucket; the cache grows to full length only afterwards
    hidden, cache = model.hidden_states(ids, attention_mask=mask, positions=positions,
                                        cache=KVCache.init(model.config, b, t))
    cache = DecodeCache.from_prefill(cache, cache_len)
    logits = model.logits_from_hidden(hidden[:, -1])  # left padding: the last column is real
    out = (cache, logits, jnp.sum(mask.astype(jnp.int32), axis=1), ~active)
    if mesh is not None:
        out = (cache.constrained(mesh), *out[1:])
    return out


def _decode_loops(graphdef, state, matrices: DecodeMatrices, prefilled, params: SamplingParams, *, n_out: int,
                  phases: tuple[int, ...], k: int, mesh: Mesh | None) -> DecodeState:
    """``lax.while_loop`` s, one per cache phase (`cache_phases`): sample from the current
    logits, record, run the model on the token; between phases the cache grows.

    Sampling lives only here (not also in the prefill program), so it is compiled once.
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
        token, logprob, top = _pick(s.logits, s.step, params, k)
        s = _record(s, token, logprob, top, s.step)
        done, step = s.done | _is_eos(token, params.eos), s.step + 1

        def forward(cache):
            return decode_step(nnx.merge(graphdef, state), token, s.position, cache, matrices)

        logits, cache = jax.lax.cond((step < limit) & ~jnp.all(done), forward,
                                     lambda cache: (s.logits, cache), s.cache)
        s = s.replace(cache=cache, logits=logits, position=s.position + 1, done=done, step=step)
        return _constrain_state(s, mesh)

    full = s.cache  # all slots: donated, and updated in place once per phase
    for length in phases:
        s = _constrain_state(s.replace(cache=full.prefix(length) if length < full.length else full), mesh)
        # the steps whose forward pass writes a slot of this phase's cache
        phase_end = jnp.minimum(limit, length - prompt_bucket)
        s = jax.lax.while_loop(lambda s, end=phase_end: (s.step < end) & ~jnp.all(s.done), body, s)
        full = full.with_prefix(s.cache) if length < full.length else s.cache
    return s.replace(cache=full)


_DECODE_JIT = dict(static_argnames=("graphdef", "n_out", "phases", "k", "mesh"), donate_argnames=("prefilled",))
_decode = jax.jit(_decode_loops, **_DECODE_JIT)
# CPU options only where they apply (an accelerator's compiler is never handed them)
_decode_cpu = jax.jit(_decode_loops, compiler_options=DECODE_COMPILER_OPTIONS, **_DECODE_JIT)


def compile_count() -> dict[str, int]:
    """How many programs the sampler's jitted functions hold (for recompilation tests)."""
    return {"prefill": _prefill._cache_size(), "decode": _decode._cache_size() + _decode_cpu._cache_size()}


# --------------------------------------------------------------------------- public API
def _eos_ids(eos_id: int | Sequence[int] | None, config) -> list[int]:
    if eos_id is None:
        return list(config.eos_ids)
    if isinstance(eos_id, (int, np.integer)):
        return [int(eos_id)]
    return [int(e) for e in eos_id]


class Sampler:
    """A model prepared for repeated generation: split once into (graphdef, state), and with
    ``mesh`` its parameters placed by the rule table once.  Holds a snapshot of the parameters
    taken at construction (build a new one after updating the model).  ReAD's teacher is
    fixed, so a run builds one and calls `generate` many times; the module-level `generate`
    builds a throw-away one per call (one `nnx.split`, milliseconds)."""

    def __init__(self, model: Decoder, mesh: Mesh | None = None):
        self.config = model.config
        self.mesh = mesh
        self.graphdef, state = nnx.split(model)
        if mesh is not None:
            state = jax.tree.map(lambda v, s: v.replace(place(v.get_value(), s)), state, state_shardings(mesh, state),
                                 is_leaf=lambda x: isinstance(x, nnx.Variable))
        self.state = state
        self.platform = backend.platform_of(mesh if mesh is not None else jax.devices()[0])
        self.matrices = DecodeMatrices.of(nnx.merge(self.graphdef, state),
                                          cpu=backend.cpu_decode_layout(self.platform))

    def generate(self, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int = 128,
                 temperature: float | Sequence[float] = 0.0, top_p: float | Sequence[float] = 1.0,
                 top_k: int | Sequence[int] = 0, eos_id: int | Sequence[int] | None = None, seed: int = 0,
                 topk_logprobs: int = 0, pad_id: int | None = None) -> GenerateOutput:
        """See the module-level `generate`."""
        with backend.on_platform(self.platform):  # CPU-only kernels only on CPU devices
            return self._generate(prompt_ids, max_new_tokens, temperature, top_p, top_k, eos_id, seed,
                                  topk_logprobs, pad_id)

    def _generate(self, prompt_ids, max_new_tokens, temperature, top_p, top_k, eos_id, seed, topk_logprobs,
                  pad_id) -> GenerateOutput:
        config, mesh = self.config, self.mesh
        prompts = [list(map(int, p)) for p in prompt_ids]
        n = len(prompts)
        k = int(topk_logprobs)
        if n == 0:
            return GenerateOutput([], [], [] if k else None, [] if k else None, [])
        if any(len(p) == 0 for p in prompts):
            raise ValueError("generate: every prompt needs at least one token")
        if max_new_tokens < 1:
            raise ValueError(f"generate: max_new_tokens must be >= 1, got {max_new_tokens}")
        if not 0 <= k <= config.vocab_size:
            raise ValueError(f"generate: topk_logprobs must be in [0, {config.vocab_size}], got {k}")
        temp = _per_example(temperature, n, "temperature", np.float32)
        tp = _per_example(top_p, n, "top_p", np.float32)
        tk = _per_example(top_k, n, "top_k", np.int32)
        if (temp < 0).any() or not np.isfinite(temp).all():
            raise ValueError("generate: temperature must be finite and >= 0")
        if (tp <= 0).any() or (tp > 1).any():
            raise ValueError("generate: top_p must be in (0, 1]")
        if (tk < 0).any():
            raise ValueError("generate: top_k must be >= 0")
        eos = _eos_ids(eos_id, config)
        if pad_id is None:
            pad_id = config.pad_token_id if config.pad_token_id is not None else 0

        # bucketing: batch, prompt length and new-token buffer to powers of two
        data_size = 1 if mesh is None else int(np.prod([mesh.shape[a] for a in BATCH_AXES]))
        b = bucket(n, data_size)
        b = -(-b // data_size) * data_size
        t = bucket(max(len(p) for p in prompts), MIN_PROMPT_BUCKET)
        n_out = bucket(max_new_tokens)
        ids = np.full((b, t), pad_id, np.int32)
        mask = np.zeros((b, t), np.bool_)
        for i, p in enumerate(prompts):
            ids[i, t - len(p):] = p
            mask[i, t - len(p):] = True
        mask[n:, -1] = True  # dummy rows: one valid token, done from the start

        def pad_rows(a: np.ndarray, fill) -> np.ndarray:
            return np.concatenate([a, np.full((b - n,), fill, a.dtype)])

        eos_arr = np.full((bucket(len(eos), MIN_EOS_SLOTS),), -1, np.int32)
        eos_arr[:len(eos)] = eos
        params = SamplingParams(
            temperature=pad_rows(temp, 0.0), top_p=pad_rows(tp, 1.0), top_k=pad_rows(tk, 0),
            seed=np.asarray(seed, np.uint32), eos=eos_arr, active=np.arange(b) < n,
            max_new_tokens=np.asarray(max_new_tokens, np.int32))
        if mesh is not None:
            ids, mask = (place(a, batch_sharding(mesh, 2)) for a in (ids, mask))
            rep = NamedSharding(mesh, P())
            params = jax.tree.map(lambda a: place(a, batch_sharding(mesh, 1) if a.shape == (b,) else rep), params)

        phases = cache_phases(t, n_out)
        prefilled = _prefill(self.graphdef, self.state, ids, mask, params.active, cache_len=t + n_out, mesh=mesh)
        decode = _decode_cpu if self.matrices.cpu else _decode
        s = decode(self.graphdef, self.state, self.matrices, prefilled, params, n_out=n_out, phases=phases, k=k,
                   mesh=mesh)
        # gathered from every process when the batch is sharded over several (`read_jax.distributed`)
        steps, tokens, logprobs, top_ids, top_lps = to_host(
            (s.step, s.tokens, s.logprobs, s.topk_ids, s.topk_logprobs))

        eos_set = set(eos)
        out = GenerateOutput([], [], [] if k else None, [] if k else None, [])
        for i in range(n):
            row = tokens[i, :min(int(steps), max_new_tokens)].tolist()
            length = next((j + 1 for j, tok in enumerate(row) if tok in eos_set), len(row))
            out.tokens.append(row[:length])
            out.token_logprobs.append(logprobs[i, :length].tolist())
            out.finished.append(length > 0 and row[length - 1] in eos_set)
            if k:
                out.topk_ids.append(np.asarray(top_ids[i, :length]))
                out.topk_logprobs.append(np.asarray(top_lps[i, :length]))
        return out


def generate(model: Decoder | Sampler, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int = 128,
             temperature: float | Sequence[float] = 0.0, top_p: float | Sequence[float] = 1.0,
             top_k: int | Sequence[int] = 0, eos_id: int | Sequence[int] | None = None, seed: int = 0,
             topk_logprobs: int = 0, mesh: Mesh | None = None, pad_id: int | None = None) -> GenerateOutput:
    """Generate up to ``max_new_tokens`` new tokens for each prompt (see the module docstring).

    ``model``: a `Decoder`, or a `Sampler` prepared once for repeated calls.
    ``prompt_ids``: token-id lists of any (non-zero) lengths.  ``temperature`` / ``top_p`` /
    ``top_k``: scalars or one value per prompt.  ``eos_id``: an id or ids (default: the
    model config's eos ids; an empty list = always run ``max_new_tokens``).  ``seed``: row i
    samples with ``fold_in(fold_in(key(seed), i), step)``.  ``topk_logprobs``: k of the
    captured teacher top-k (0 = off).  ``mesh``: run sharded on a ('data','fsdp','tp') mesh.
    ``pad_id``: the id written into left padding (default: config pad id, else 0; never attended).
    """
    if isinstance(model, Sampler):
        if mesh is not None and mesh is not model.mesh:
            raise ValueError("generate: this Sampler was built for another mesh; build one with mesh=")
        sampler = model
    else:
        sampler = Sampler(model, mesh)
    return sampler.generate(prompt_ids, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                            top_k=top_k, eos_id=eos_id, seed=seed, topk_logprobs=topk_logprobs, pad_id=pad_id)


def generate_text(model: Decoder | Sampler, tokenizer, prompts: Sequence[str | list[dict[str, str]]], *,
                  use_chat_template: bool = True, skip_special_tokens: bool = True,
                  **kwargs: Any) -> list[str]:
    """Strings in, strings out: encode (through the chat template when the tokenizer has one),
    `generate`, decode the new tokens with the eos stripped.  ``kwargs`` go to `generate`;
    by default eos ids are the model config's plus the tokenizer's ``eos_token_id``."""
    from read_jax.models import encode_prompt

    ids = [encode_prompt(tokenizer, p, use_chat_template=use_chat_template) for p in prompts]
    if kwargs.get("eos_id") is None:
        eos = list(model.config.eos_ids)
        if getattr(tokenizer, "eos_token_id", None) is not None and tokenizer.eos_token_id not in eos:
            eos.append(int(tokenizer.eos_token_id))
        kwargs["eos_id"] = eos
    if kwargs.get("pad_id") is None and getattr(tokenizer, "pad_token_id", None) is not None:
        kwargs["pad_id"] = int(tokenizer.pad_token_id)
    out = generate(model, ids, **kwargs)
    eos_set = set(_eos_ids(kwargs["eos_id"], model.config))
    texts = []
    for toks, fin in zip(out.tokens, out.finished):
        if fin and toks and toks[-1] in eos_set:
            toks = toks[:-1]
        texts.append(tokenizer.decode(toks, skip_special_tokens=skip_special_tokens))
    return texts
