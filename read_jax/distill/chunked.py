"""The chunked loss path: `kd_loss_from_hidden`, the same numbers as `losses.kd_loss` from student
hidden states ``[B, T, D]`` and the output kernel ``[D, V]``, scanning over chunks of sequence
positions so full ``[B, T, V]`` logits never exist.

Two implementations: ``"remat"`` (lax.scan over a ``jax.checkpoint``-ed chunk; the backward
recomputes each chunk's logits) and ``"fused"`` (the default: a custom VJP whose forward scan also
computes the chunk's gradient with respect to hidden states and kernel, so the vocabulary matmul
runs 3 times per step instead of 4 and nothing is recomputed).  The ReAD loop trains through this
path (``chunk_size="auto"``): on CPU it measured as fast as or faster than the dense loss even where
one chunk holds the whole batch (docs/benchmarks.md), and it bounds the logits' memory for large
vocabularies.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from read_jax.distill.losses import LossConfig, Metrics, Signals, check_inputs, finish, kd_loss, term_sums
from read_jax.errors import ReadJaxError

Array = jax.Array

AUTO_CHUNK_FLOATS = 1 << 24


def auto_chunk(batch: int, seq: int, vocab: int) -> int:
    """Largest power of two ≤ ``seq`` with ``batch · chunk · vocab ≤ AUTO_CHUNK_FLOATS`` (at least 1)."""
    fit = max(1, AUTO_CHUNK_FLOATS // max(1, batch * vocab))
    return max(1, min(seq, 1 << (fit.bit_length() - 1)))


@dataclasses.dataclass(frozen=True)
class HiddenTeacher:
    """A teacher given as final hidden states [B, T, Dt] and its output kernel [Dt, V]."""

    hidden: Array
    kernel: Array


def _seq_chunks(chunk: int, *arrays):
    """[B, T, ...] arrays (or None) -> [C, B, chunk, ...], T padded to a multiple of ``chunk``.

    Chunks run along the sequence and keep the batch axis whole, so a batch sharded over the
    mesh's data axes stays sharded inside every chunk (no resharding of activations).
    """
    out = []
    for x in arrays:
        if x is None:
            out.append(None)
            continue
        b, t = x.shape[:2]
        c = -(-t // chunk)
        if c * chunk != t:
            x = jnp.pad(x, [(0, 0), (0, c * chunk - t)] + [(0, 0)] * (x.ndim - 2))
        out.append(jnp.moveaxis(x.reshape(b, c, chunk, *x.shape[2:]), 1, 0))
    return out


def _chunk_logits(h: Array, kernel: Array) -> Array:
    return jnp.dot(h, kernel, preferred_element_type=jnp.float32)


def kd_loss_from_hidden(config: LossConfig, hidden: Array, kernel: Array, labels: Array, mask: Array, *,
                        teacher: HiddenTeacher | None = None, teacher_logits: Array | None = None,
                        topk_ids: Array | None = None, topk_logprobs: Array | None = None,
                        step: Any = 0, chunk_size: int | str | None = None, impl: str | None = None
                        ) -> tuple[Array, Metrics]:
    """The same loss as `kd_loss`, from student hidden states [B, T, D] and kernel [D, V].

    The sequence is processed ``chunk_size`` positions at a time (all rows of the batch
    together; default ``config.chunk_size``; ``"auto"`` see `LossConfig`; ``None`` falls back to
    dense logits): logits exist for one [B, chunk, V] slice at a time.  The teacher is either
    hidden states + kernel (`HiddenTeacher`, its logits also computed chunk by chunk), full
    logits, or cached top-k.  Gradients flow to ``hidden`` and ``kernel`` only.
    """
    v = kernel.shape[-1]
    teacher_vocab = None
    if teacher is not None:
        teacher_vocab = teacher.kernel.shape[-1]
    elif teacher_logits is not None:
        teacher_vocab = teacher_logits.shape[-1]
    check_inputs(config, v, teacher_vocab, topk_ids)
    chunk = config.chunk_size if chunk_size is None else chunk_size
    if chunk == "auto":
        chunk = auto_chunk(labels.shape[0], labels.shape[-1], kernel.shape[-1])
    impl = config.chunk_impl if impl is None else impl
    temperature = config.temperature_at(step)
    if chunk is None:
        t_logits = teacher_logits
        if teacher is not None and config.needs_teacher_logits:
            t_logits = _chunk_logits(teacher.hidden.reshape(-1, teacher.hidden.shape[-1]), teacher.kernel)
        logits = _chunk_logits(hidden.reshape(-1, hidden.shape[-1]), kernel)
        return kd_loss(config, logits, labels.reshape(-1), mask.reshape(-1), teacher_logits=t_logits,
                       topk_ids=topk_ids, topk_logprobs=topk_logprobs, step=step)

    if hidden.ndim != 3 or labels.shape != hidden.shape[:2]:
        raise ReadJaxError(f"chunked loss needs hidden [B, T, D] and labels [B, T], got {hidden.shape} and "
                           f"{labels.shape}")
    bsz, seq = labels.shape
    # garbage at masked positions is replaced before any math (as in the dense path)
    mask = mask.astype(jnp.float32)
    keep = mask > 0
    labels = jnp.where(keep, labels, 0)
    if topk_logprobs is not None:
        topk_logprobs = jnp.where(keep[..., None], topk_logprobs.astype(jnp.float32), 0.0)
    count = jnp.sum(mask)
    t_hidden = None
    # per-call constants of every chunk, passed explicitly (no closed-over tracers)
    const: dict[str, Any] = {"temperature": jax.lax.stop_gradient(temperature)}
    if teacher is not None and config.needs_teacher_logits:
        t_hidden = jax.lax.stop_gradient(teacher.hidden)
        const["t_kernel"] = jax.lax.stop_gradient(teacher.kernel)
    chunk = min(int(chunk), seq)
    h_c, lab_c, m_c, tl_c, ids_c, lp_c, th_c = _seq_chunks(
        chunk, hidden, labels, mask, teacher_logits, topk_ids, topk_logprobs, t_hidden)
    xs = dict(h=h_c, labels=lab_c, mask=m_c, tl=tl_c, ids=ids_c, lp=lp_c, th=th_c)
    xs = {k: x for k, x in xs.items() if x is not None}

    def chunk_terms(s_logits, x, c):
        """Term sums of one chunk from its flat student logits [B*chunk, V]."""
        n = x["labels"].size
        flat = {k: v.reshape(n, *v.shape[2:]) for k, v in x.items() if k != "h"}
        tl = flat.get("tl")
        if "th" in flat:
            tl = _chunk_logits(flat["th"], c["t_kernel"])
        csig = Signals(labels=flat["labels"], mask=flat["mask"], teacher_logits=tl, topk_ids=flat.get("ids"),
                        topk_logprobs=flat.get("lp"))
        return term_sums(config, s_logits, csig, c["temperature"])

    def chunk_sums(kern, x, c):
        h = x["h"]
        return chunk_terms(_chunk_logits(h.reshape(-1, h.shape[-1]), kern), x, c)

    weights = config.weights_at(step)
    denom = jnp.maximum(count, 1.0)
    if impl not in ("fused", "remat"):
        raise ReadJaxError(f"chunked loss impl must be 'fused' or 'remat', got {impl!r}")
    if impl == "remat":
        sums = _scan_remat(chunk_sums, kernel, xs, const)
        return finish(config, sums, count, step, temperature)
    const["scale"] = jax.lax.stop_gradient(jax.tree.map(lambda w: w / denom, weights))
    loss, sums = _fused_total(chunk_terms, kernel, xs, const)
    return finish(config, sums, count, step, temperature, loss=loss)


def _zeros_like_out(fn, *args):
    """Zeros shaped like ``fn(kernel, xs[0], const)`` (the per-chunk output)."""
    x0 = [jax.tree.map(lambda a: a[0], a) if i == 1 else a for i, a in enumerate(args)]
    return jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(fn, *x0))


def _scan_remat(chunk_sums, kernel: Array, xs: dict[str, Array], const: dict[str, Array]) -> dict[str, Array]:
    body = jax.checkpoint(chunk_sums)

    def step(acc, x):
        return jax.tree.map(jnp.add, acc, body(kernel, x, const)), None

    sums, _ = jax.lax.scan(step, _zeros_like_out(chunk_sums, kernel, xs, const), xs)
    return sums


def _fused_total(chunk_terms, kernel: Array, xs: dict[str, Array], const: dict[str, Any]
                 ) -> tuple[Array, dict[str, Array]]:
    """``(Σ_t scale_t · sums_t, sums)`` whose gradient w.r.t. kernel and hidden is made in the forward scan.

    Per chunk: logits = h @ W; the gradient of the chunk's weighted terms w.r.t. its logits
    (elementwise autodiff, the logits still in cache); then dh = g @ Wᵀ and dW += hᵀ @ g with
    hᵀ materialised first (XLA:CPU runs the transposed-LHS weight-gradient matmul
    [D, n] x [n, V] through a slow generic path otherwise, docs/benchmarks.md).  The logits die with the chunk; the backward only scales the
    stored gradients by the incoming cotangent of the total.  The sums are metrics: their
    cotangent is ignored.  Only ``kernel`` and ``xs["h"]`` get gradients.  A chunk without
    any loss token (all prompt or padding, common at the end of right-padded buckets) is
    skipped at run time (``lax.cond``): no logits, no gradient matmuls.
    """
    names = tuple(sorted(const["scale"]))

    def weighted(s_logits, x, c):
        out = chunk_terms(s_logits, x, c)
        return sum(c["scale"][t] * out[t] for t in names), out

    def flat_h(x):
        h = x["h"]
        return h.reshape(-1, h.shape[-1])

    def zeros_out(kernel, xs):
        x0 = jax.tree.map(lambda a: a[0], xs)
        return jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype),
                            jax.eval_shape(lambda x: weighted(_chunk_logits(flat_h(x), kernel), x, const), x0))

    def forward(kernel, xs, const):
        zeros = zeros_out(kernel, xs)

        def step(acc, x):
            # chunks without a single loss token (prompt-only, padding) are skipped
            out = jax.lax.cond(jnp.any(x["mask"] > 0),
                               lambda: weighted(_chunk_logits(flat_h(x), kernel), x, const), lambda: zeros)
            return jax.tree.map(jnp.add, acc, out), None

        acc, _ = jax.lax.scan(step, zeros, xs)
        return acc

    def fwd(kernel, xs, const):
        zeros = zeros_out(kernel, xs)

        def chunk_grad(x):
            h = flat_h(x)
            logits = _chunk_logits(h, kernel)
            total, pullback, out = jax.vjp(lambda lg: weighted(lg, x, const), logits, has_aux=True)
            (g_logits,) = pullback(jnp.ones((), total.dtype))
            gk = jnp.dot(jax.lax.optimization_barrier(h.T), g_logits.astype(h.dtype),
                         preferred_element_type=jnp.float32)
            gh = jnp.dot(g_logits.astype(kernel.dtype), kernel.T, preferred_element_type=jnp.float32)
            return (total, out), gk, gh.reshape(x["h"].shape)

        def skip(x):
            return zeros, jnp.zeros(kernel.shape, jnp.float32), jnp.zeros(x["h"].shape, jnp.float32)

        def step(carry, x):
            acc, g_kernel = carry
            # chunks without a single loss token (prompt-only, padding) are skipped
            res, gk, gh = jax.lax.cond(jnp.any(x["mask"] > 0), chunk_grad, skip, x)
            return (jax.tree.map(jnp.add, acc, res), g_kernel + gk), gh

        (acc, g_kernel), g_h = jax.lax.scan(step, (zeros, jnp.zeros(kernel.shape, jnp.float32)), xs)
        return acc, (g_kernel, g_h, xs, const)

    def bwd(res, ct):
        g_kernel, g_h, xs, const = res
        g = ct[0]
        g_xs = jax.tree.map(_zero_cotangent, xs)
        g_xs["h"] = (g * g_h).astype(xs["h"].dtype)
        return (g * g_kernel).astype(kernel.dtype), g_xs, jax.tree.map(_zero_cotangent, const)

    f = jax.custom_vjp(forward)
    f.defvjp(fwd, bwd)
    return f(kernel, xs, const)


def _zero_cotangent(x: Array) -> Any:
    if jnp.issubdtype(x.dtype, jnp.inexact):
        return jnp.zeros_like(x)
    return np.zeros(x.shape, jax.dtypes.float0)
