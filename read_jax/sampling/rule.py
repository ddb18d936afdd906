"""The sampling rule: one token per row from its logits, with per-row temperature / top-p / top-k,
and the token's log-prob (+ the top-k) under the untempered softmax.

Temperature 0 is greedy (argmax of the raw logits); otherwise logits are divided by the
temperature, truncated to the top-k (0 = off), then to the smallest set of most likely tokens
whose probability reaches top-p (1 = off), and sampled with Gumbel-max.  Tokens tied with the
truncation threshold are kept.  When no row of the batch samples, the sort needed for top-k /
top-p is skipped at run time (``lax.cond``).

Log-probs are of the teacher's *untempered, untruncated* softmax, ``log_softmax(logits)``,
whatever the sample was drawn with: that is the distribution logit distillation matches (a KD
loss at temperature T re-tempers it, and a top-k sparse KL needs the teacher's real
probabilities, not a truncated renormalised proposal).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


def argmax(logits: Array, row_max: Array | None = None) -> Array:
    """First index of the row maximum ([B, V] -> [B] int32), as `jnp.argmax`.

    Two plain reductions (max, then min over matching indices) instead of one variadic
    (value, index) reduction, which XLA:CPU runs far slower; the max is shared with the
    log-normaliser in `pick`.
    """
    v = logits.shape[-1]
    if row_max is None:
        row_max = jnp.max(logits, axis=-1, keepdims=True)
    idx = jnp.min(jnp.where(logits == row_max, jnp.arange(v, dtype=jnp.int32), v), axis=-1)
    return jnp.minimum(idx, v - 1)  # all-NaN row: stay in range


def sample_logits(logits: Array, keys: Array | Callable[[], Array], temperature: Array, top_p: Array,
                  top_k: Array, greedy: Array | None = None) -> Array:
    """One token per row from ``logits`` [B, V] (float32) with per-row parameters [B].

    ``keys``: a [B] key array, or a function returning one, called only when some row
    samples.  ``greedy``: the argmax, when the caller already has it.
    """
    logits = logits.astype(jnp.float32)
    v = logits.shape[-1]
    if greedy is None:
        greedy = argmax(logits)
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
        drawn = argmax(truncated + gumbel)
        return jnp.where(sampling, drawn, greedy)

    # greedy-only batches (the common teacher setting) skip the sort and the RNG at run time
    return jax.lax.cond(jnp.any(sampling), draw, lambda: greedy)


def row_keys(seed: Array, step: Array, batch: int) -> Array:
    """Row i's key at ``step``: ``fold_in(fold_in(key(seed), i), step)``, so a row's samples
    depend only on its own row index, never on the batch it was bucketed into."""
    base = jax.random.key(seed)
    rows = jnp.arange(batch, dtype=jnp.uint32)
    return jax.vmap(lambda r: jax.random.fold_in(jax.random.fold_in(base, r), step))(rows)


def pick(logits: Array, step: Array, seed: Array, temperature: Array, top_p: Array, top_k: Array, k: int
         ) -> tuple[Array, Array, tuple[Array, Array]]:
    """Sample one token per row; its log-prob and (k > 0) the top-k ids and log-probs under log_softmax(logits)."""
    b = logits.shape[0]
    row_max = jnp.max(logits, axis=-1, keepdims=True)
    token = sample_logits(logits, lambda: row_keys(seed, step, b), temperature, top_p, top_k,
                          greedy=argmax(logits, row_max))
    logz = row_max[:, 0] + jnp.log(jnp.sum(jnp.exp(logits - row_max), axis=-1))
    logprob = jnp.take_along_axis(logits, token[:, None], axis=-1)[:, 0] - logz
    if k:
        top_vals, top_ids = jax.lax.top_k(logits, k)
        top = (top_ids.astype(jnp.int32), top_vals - logz[:, None])
    else:
        top = (jnp.zeros((b, 0), jnp.int32), jnp.zeros((b, 0), jnp.float32))
    return token, logprob, top
