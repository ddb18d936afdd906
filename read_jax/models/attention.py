"""The decoder's attention kernels: grouped-query `attend` over keys / values in the cache layout,
and the CPU train path's `causal_attend` with its hand-written backward; pure functions of arrays,
apart from the modules that call them (`decoder.Attention`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from read_jax import backend

Array = jax.Array
_MASK_VALUE = -0.7 * float(jnp.finfo(jnp.float32).max)


def attend(q: Array, keys: Array, values: Array, mask: Array) -> Array:
    """Grouped-query attention over keys / values in the cache layout, float32 scores and softmax.

    q: [B, T, H, K]; keys: [B, KVH, K, S]; values: [B, KVH, S, K]; mask: [B, T, S] bool.
    The normalisation is applied after the value product (a [B, H, T, K] divide, not
    [B, H, T, S]).  Rows with no valid key (left padding) get a uniform distribution instead
    of NaNs; their outputs are ignored.  A single query on CPU is written as broadcast
    multiplies reduced over the contracted axis (`backend.reduce_single_query_attention`):
    XLA:CPU runs those as YNN reductions, faster than one tiny matmul per (batch, head).
    """
    b, t, h, d = q.shape
    kvh = keys.shape[1]
    f32 = jnp.float32
    qh = jnp.transpose(q.reshape(b, t, kvh, h // kvh, d), (0, 2, 3, 1, 4)).astype(keys.dtype)  # [B, N, G, T, K]
    reduce = t == 1 and backend.reduce_single_query_attention()
    if reduce:
        scores = jnp.sum((qh[..., None] * keys[:, :, None, None]).astype(f32), axis=4)
    else:
        scores = jnp.einsum("bngtd,bnds->bngts", qh, keys, preferred_element_type=f32)
    scores = jnp.where(mask[:, None, None], scores * (d ** -0.5), _MASK_VALUE)
    unnorm = jnp.exp(scores - jnp.max(scores, axis=-1, keepdims=True))
    weights = unnorm.astype(values.dtype)
    if reduce:
        out = jnp.sum((weights[..., None] * values[:, :, None, None]).astype(f32), axis=4)
    else:
        out = jnp.einsum("bngts,bnsd->bngtd", weights, values, preferred_element_type=f32)
    out = out / jnp.sum(unnorm, axis=-1)[..., None]
    return jnp.transpose(out, (0, 3, 1, 2, 4)).reshape(b, t, h * d).astype(q.dtype)


def cache_layout(k: Array, v: Array) -> tuple[Array, Array]:
    """Keys and values [B, T, KVH, K] -> the cache layout: keys [B, KVH, K, T], values [B, KVH, T, K]."""
    return jnp.transpose(k, (0, 2, 3, 1)), jnp.swapaxes(v, 1, 2)


_MAX_QUERY_BLOCKS = 8
_MIN_QUERY_BLOCK = 32


def _query_blocks(t: int) -> list[tuple[int, int]]:
    """Query blocks for causal block skipping: at most 8 blocks of at least 32 queries."""
    n = max(1, min(_MAX_QUERY_BLOCKS, t // _MIN_QUERY_BLOCK))
    size = -(-t // n)
    return [(s, min(s + size, t)) for s in range(0, t, size)]


@jax.custom_vjp
def causal_attend(q: Array, k: Array, v: Array, mask: Array) -> Array:
    """`attend` for a causal mask in slot space from slot 0 (no cache; k, v [B, S, KVH, K]):
    same values on every row with at least one valid key, with a hand-written backward.

    Requires ``mask[b, i, j] == False`` for ``j > i`` (true for `Decoder.hidden_states`
    without a cache, whatever the padding or sliding window).  Queries are processed in
    blocks; block ``[s0, s1)`` only looks at keys ``[0, s1)``, skipping the blocks above the
    diagonal (about 44 % of the score work at T = 256).  The layout is head-major
    ([B, KVH, G, T, K]) so every score / value product is one batched matmul per block.  The
    backward reuses the saved probabilities: dV = Pᵀ dO, dP = dO Vᵀ,
    dS = P ∘ (dP − rowsum(dO ∘ O)), dQ = dS K, dK = dSᵀ Q (rowsum(dO ∘ O) = rowsum(P ∘ dP)
    costs O(T·K) instead of O(T·S)).  On CPU this is markedly faster than autodiff of
    `attend` (docs/benchmarks.md).
    Rows without any valid key (left padding) get a uniform distribution over their block's
    keys instead of all keys; as in `attend`, their outputs are meaningless and unused.
    """
    return _causal_attend_fwd(q, k, v, mask)[0]


def _causal_attend_fwd(q: Array, k: Array, v: Array, mask: Array):
    b, t, h, d = q.shape
    kvh = k.shape[2]
    g = h // kvh
    qh = jnp.transpose((q * jnp.asarray(d ** -0.5, q.dtype)).reshape(b, t, kvh, g, d), (0, 2, 3, 1, 4))
    kh = jnp.transpose(k, (0, 2, 1, 3))
    vh = jnp.transpose(v, (0, 2, 1, 3))
    outs, probs = [], []
    for s0, s1 in _query_blocks(t):
        scores = jnp.einsum("bngtd,bnsd->bngts", qh[:, :, :, s0:s1], kh[:, :, :s1],
                            preferred_element_type=jnp.float32)
        scores = jnp.where(mask[:, None, None, s0:s1, :s1], scores, _MASK_VALUE)
        p = jnp.exp(scores - jnp.max(scores, axis=-1, keepdims=True))
        p = (p * (1.0 / jnp.sum(p, axis=-1, keepdims=True))).astype(v.dtype)
        outs.append(jnp.einsum("bngts,bnsd->bngtd", p, vh[:, :, :s1]))
        probs.append(p)
    oh = jnp.concatenate(outs, axis=3) if len(outs) > 1 else outs[0]
    out = jnp.transpose(oh, (0, 3, 1, 2, 4)).reshape(b, t, h * d)
    return out, (qh, kh, vh, oh, tuple(probs))


def _causal_attend_bwd(res, d_out):
    qh, kh, vh, oh, probs = res
    b, kvh, g, t, d = qh.shape
    f32 = jnp.float32
    do = jnp.transpose(d_out.reshape(b, t, kvh, g, d), (0, 2, 3, 1, 4)).astype(f32)
    delta = jnp.sum(do * oh.astype(f32), axis=-1)  # [b, n, g, t]
    dq_parts = []
    dk = jnp.zeros(kh.shape, f32)
    dv = jnp.zeros(vh.shape, f32)
    for (s0, s1), p in zip(_query_blocks(t), probs):
        do_b = do[:, :, :, s0:s1]
        p = p.astype(f32)
        dv_b = jnp.einsum("bngts,bngtd->bnsd", p, do_b)
        dp = jnp.einsum("bngtd,bnsd->bngts", do_b, vh[:, :, :s1].astype(f32))
        ds = p * (dp - delta[..., s0:s1, None])
        dq_parts.append(jnp.einsum("bngts,bnsd->bngtd", ds, kh[:, :, :s1].astype(f32)))
        dk_b = jnp.einsum("bngts,bngtd->bnsd", ds, qh[:, :, :, s0:s1].astype(f32))
        if s1 == t:
            dk, dv = dk + dk_b, dv + dv_b
        else:
            dk, dv = dk.at[:, :, :s1].add(dk_b), dv.at[:, :, :s1].add(dv_b)
    dqh = jnp.concatenate(dq_parts, axis=3) if len(dq_parts) > 1 else dq_parts[0]
    dq = jnp.transpose(dqh * (d ** -0.5), (0, 3, 1, 2, 4)).reshape(b, t, kvh * g, d)
    return (dq.astype(qh.dtype), jnp.transpose(dk, (0, 2, 1, 3)).astype(kh.dtype),
            jnp.transpose(dv, (0, 2, 1, 3)).astype(vh.dtype), None)


causal_attend.defvjp(_causal_attend_fwd, _causal_attend_bwd)
