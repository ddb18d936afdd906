"""Masked distillation losses: pure functions returning ``(loss, metrics)``.

Conventions (method.md §4, design.md "Losses")
- Everything is computed in float32, whatever the dtype of the logits / hidden states.
- One explicit per-token weight ``mask`` ([B, T] float32) = loss mask × attention mask ×
  (label != ignore).  Every loss is ``Σ mask · term / max(Σ mask, 1)``.  Masked positions are
  removed with ``where`` (not a multiply), so garbage there (NaN/inf teacher log-probs, ignore
  labels) can neither leak into the value nor into the gradient: they get exactly zero gradient.
- ``labels[b, t]`` is the token that position ``t`` predicts (inputs already shifted); teacher
  signals (logits, cached top-k) are aligned with ``labels``.
- Metrics are ``{name: (sum, count)}`` pairs of float32 scalars, so averages stay token-weighted
  when batches are split across devices, micro-steps or hosts: ``value = sum / max(count, 1)``.

Terms (per token, before masking):
- ``ce``           cross-entropy of the label (SFT on teacher text).
- ``kl``           forward KL(teacher_T ‖ student_T) · T², with teacher_T = softmax(t / T).
                   Reported also as ``kl_xent`` − ``kl_entropy`` (T²·cross-entropy minus T²·teacher
                   entropy, equal to ``kl`` to rounding) and as ``kl_t1`` (KL at T = 1).
- ``reverse_kl``   KL(student_T ‖ teacher_T) · T².
- ``topk_kl``      sparse KL from the teacher's cached top-k (see `sparse_topk_kl_terms`).
- ``logit_mse``    mean over the vocabulary of ((s − mean s) − (t − mean t))², i.e. matching
                   centred logits (logits are only defined up to a constant per token).

Two evaluation paths give the same numbers (tested): dense, `kd_loss` on full ``[B, T, V]``
logits (here), and chunked, `read_jax.distill.chunked.kd_loss_from_hidden` on hidden states and
the output kernel, so ``[B, T, V]`` never exists.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, Union

import jax
import jax.numpy as jnp

from read_jax.errors import ReadJaxError

Array = jax.Array
Metrics = dict[str, tuple[Array, Array]]
Schedule = Callable[[Any], Any]
ScalarOrSchedule = Union[float, Schedule]

IGNORE_INDEX = -100
TERMS = ("ce", "kl", "reverse_kl", "topk_kl", "logit_mse")

# ----------------------------------------------------------------------------- config
@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Weights of the loss terms and the KD temperature.

    Each weight and the temperature is a float or an optax-style schedule ``step -> value``
    (``step`` = number of optimizer updates applied so far).  A term whose weight is the float
    0 is not computed at all; a scheduled weight is always computed.

    ``chunk_size``: sequence positions per chunk of the chunked path (each chunk holds
    [B, chunk_size, V] logits; used by the train step, which then computes the loss from hidden
    states); ``"auto"`` (default) picks the largest power of two (≤ T) keeping one chunk's
    logits within `chunked.AUTO_CHUNK_FLOATS` floats (64 MiB in float32); ``None`` materialises full
    [B, T, V] logits (dense path).
    ``chunk_impl``: ``"fused"`` (gradient computed in the forward scan) or ``"remat"``.
    ``tail_bucket``: sparse top-k KL convention (see `sparse_topk_kl_terms`).
    """

    ce: ScalarOrSchedule = 1.0
    kl: ScalarOrSchedule = 0.0
    reverse_kl: ScalarOrSchedule = 0.0
    topk_kl: ScalarOrSchedule = 0.0
    logit_mse: ScalarOrSchedule = 0.0
    temperature: ScalarOrSchedule = 1.0
    tail_bucket: bool = False
    chunk_size: int | str | None = "auto"
    chunk_impl: str = "fused"
    ignore_index: int = IGNORE_INDEX

    def __post_init__(self) -> None:
        for name in (*TERMS, "temperature"):
            value = getattr(self, name)
            if not callable(value):
                value = float(value)
                if not math.isfinite(value) or value < 0:
                    raise ReadJaxError(f"loss {name} must be a finite number >= 0, got {value}")
                object.__setattr__(self, name, value)
        if not callable(self.temperature) and self.temperature <= 0:
            raise ReadJaxError(f"loss temperature must be > 0, got {self.temperature}")
        if self.tail_bucket and self.uses("topk_kl") and (callable(self.temperature) or self.temperature != 1.0):
            raise ReadJaxError("topk_kl with tail_bucket=True is only defined at temperature 1 (the tail mass of "
                               "a tempered teacher is unknown from its top-k); use tail_bucket=False")
        if self.chunk_size is not None and self.chunk_size != "auto" and (
                isinstance(self.chunk_size, str) or int(self.chunk_size) <= 0):
            raise ReadJaxError(f"loss chunk_size must be a positive int, 'auto' or None, got {self.chunk_size!r}")
        if self.chunk_impl not in ("fused", "remat"):
            raise ReadJaxError(f"loss chunk_impl must be 'fused' or 'remat', got {self.chunk_impl!r}")
        if not any(self.uses(t) for t in TERMS):
            raise ReadJaxError("every loss weight is 0: nothing to train on")

    def uses(self, term: str) -> bool:
        w = getattr(self, term)
        return callable(w) or w != 0.0

    @property
    def needs_teacher_logits(self) -> bool:
        """True when a full teacher distribution (teacher forward or given logits) is needed."""
        return any(self.uses(t) for t in ("kl", "reverse_kl", "logit_mse"))

    @property
    def needs_topk(self) -> bool:
        return self.uses("topk_kl")

    def weights_at(self, step: Any) -> dict[str, Array]:
        """float32 weight of every used term at ``step`` (schedules evaluated, traceable)."""
        return {t: _value_at(getattr(self, t), step) for t in TERMS if self.uses(t)}

    def temperature_at(self, step: Any) -> Array:
        return _value_at(self.temperature, step)


def _value_at(value: ScalarOrSchedule, step: Any) -> Array:
    v = value(step) if callable(value) else value
    return jnp.asarray(v, jnp.float32)


def check_vocab(student_vocab: int, teacher_vocab: int) -> None:
    """Logit losses compare distributions over one vocabulary: sizes must be equal."""
    if int(student_vocab) != int(teacher_vocab):
        raise ReadJaxError(
            f"teacher vocabulary size {int(teacher_vocab)} != student vocabulary size {int(student_vocab)}: "
            "logit losses (KL, top-k KL, logit MSE) need one shared vocabulary; use ce-only (SFT) distillation "
            "or a student with the teacher's tokenizer")


def check_topk_ids(student_vocab: int, topk_ids: Any) -> None:
    """Top-k ids must index the student's vocabulary (checked on concrete arrays only)."""
    try:
        hi = int(jnp.max(topk_ids))
    except jax.errors.ConcretizationTypeError:
        return
    if hi >= int(student_vocab):
        raise ReadJaxError(f"teacher top-k id {hi} is out of the student vocabulary of size {int(student_vocab)}")


# ----------------------------------------------------------------------------- masks
def token_mask(labels: Array, loss_mask: Array | None = None, attention_mask: Array | None = None,
               ignore_index: int = IGNORE_INDEX) -> Array:
    """float32 [B, T] = loss_mask × attention_mask × (labels != ignore_index)."""
    m = labels != ignore_index
    if loss_mask is not None:
        m = m & (loss_mask != 0)
    if attention_mask is not None:
        m = m & (attention_mask != 0)
    return m.astype(jnp.float32)


def _masked_sum(term: Array, mask: Array) -> Array:
    return jnp.sum(jnp.where(mask > 0, term * mask, 0.0))


# ----------------------------------------------------------------------------- per-token terms
def _lse(x: Array) -> Array:
    """logsumexp over the last axis, float32, with the max kept out of the gradient path."""
    m = jax.lax.stop_gradient(jnp.max(x, axis=-1, keepdims=True))
    return jnp.log(jnp.sum(jnp.exp(x - m), axis=-1)) + m[..., 0]


def ce_terms(logits: Array, labels: Array) -> Array:
    """Per-token cross-entropy of ``labels`` under softmax(logits) ([..., V] -> [...])."""
    s = logits.astype(jnp.float32)
    safe = jnp.clip(labels, 0, s.shape[-1] - 1)
    picked = jnp.take_along_axis(s, safe[..., None], axis=-1)[..., 0]
    return _lse(s) - picked


def _is_one(t: Any) -> bool:
    return isinstance(t, (int, float)) and float(t) == 1.0


def _tempered(x: Array, t: Any) -> Array:
    """float32 ``x / t``; a multiply by the scalar reciprocal, nothing at all when ``t`` is the float 1."""
    x = x.astype(jnp.float32)
    return x if _is_one(t) else x * (1.0 / jnp.asarray(t, jnp.float32))


def forward_kl_terms(student_logits: Array, teacher_logits: Array, temperature: Any = 1.0,
                     with_t1: bool = True) -> dict[str, Array]:
    """Per-token forward KL(teacher_T ‖ student_T)·T² and its xent / entropy split.

    Returns ``kl``, ``kl_xent``, ``kl_entropy`` (kl = kl_xent − kl_entropy), and ``kl_t1``
    (unscaled KL at T = 1, a metric: no gradient flows through it) when ``with_t1``.  With
    ``temperature`` the Python float 1, ``kl_t1`` is ``kl`` itself (no second softmax pair).
    """
    s = _tempered(student_logits, temperature)
    q_logits = _tempered(teacher_logits, temperature)
    lse_s, lse_q = _lse(s), _lse(q_logits)
    q = jnp.exp(q_logits - lse_q[..., None])
    q_dot_s = jnp.sum(q * s, axis=-1)
    q_dot_t = jnp.sum(q * q_logits, axis=-1)
    xent = lse_s - q_dot_s            # -Σ q log p
    ent = lse_q - q_dot_t             # -Σ q log q
    if _is_one(temperature):
        out = {"kl": xent - ent, "kl_xent": xent, "kl_entropy": ent}
        if with_t1:
            out["kl_t1"] = jax.lax.stop_gradient(out["kl"])
        return out
    t = jnp.asarray(temperature, jnp.float32)
    t2 = t * t
    out = {"kl": t2 * (xent - ent), "kl_xent": t2 * xent, "kl_entropy": t2 * ent}
    if with_t1:
        out["kl_t1"] = jax.lax.stop_gradient(kl_div(teacher_logits, student_logits))
    return out


def kl_div(p_logits: Array, q_logits: Array) -> Array:
    """Per-token KL(softmax p ‖ softmax q), float32."""
    p_logits = p_logits.astype(jnp.float32)
    q_logits = q_logits.astype(jnp.float32)
    lp = p_logits - _lse(p_logits)[..., None]
    lq = q_logits - _lse(q_logits)[..., None]
    return jnp.sum(jnp.exp(lp) * (lp - lq), axis=-1)


def reverse_kl_terms(student_logits: Array, teacher_logits: Array, temperature: Any = 1.0) -> Array:
    """Per-token reverse KL(student_T ‖ teacher_T)·T²."""
    kl = kl_div(_tempered(student_logits, temperature), _tempered(teacher_logits, temperature))
    if _is_one(temperature):
        return kl
    t = jnp.asarray(temperature, jnp.float32)
    return t * t * kl


def logit_mse_terms(student_logits: Array, teacher_logits: Array) -> Array:
    """Per-token mean over V of ((s − mean s) − (t − mean t))²."""
    d = student_logits.astype(jnp.float32) - teacher_logits.astype(jnp.float32)
    d = d - jnp.mean(d, axis=-1, keepdims=True)
    return jnp.mean(d * d, axis=-1)


def sparse_topk_kl_terms(student_logits: Array, topk_ids: Array, topk_logprobs: Array,
                         temperature: Any = 1.0, tail_bucket: bool = False) -> Array:
    """Per-token sparse KL from the teacher's cached top-k.

    Inputs: ``topk_ids`` [..., k] and ``topk_logprobs`` [..., k], the teacher's top-k token ids
    and their log-probabilities under its *untempered full* softmax (what the sampler stores).
    Student log-probabilities always come from its full softmax over the vocabulary.

    Convention ``tail_bucket=False`` (default): the teacher is renormalised over its top-k,
    ``q_i = softmax(lp_i / T)`` over the k entries, and
    ``KL = T² Σ_i q_i (log q_i − log p_T(i))`` with ``p_T = softmax(s / T)`` over the full
    vocabulary.  Since Σ_i p_T(i) ≤ 1 this is ≥ 0; it is exactly the full forward KL at T when
    k = V.

    Convention ``tail_bucket=True`` (T = 1 only): a (k+1)-bucket distribution, the k teacher
    probabilities as given (not renormalised) plus a tail bucket ``q_tail = 1 − Σ_i exp(lp_i)``;
    the student's tail is ``p_tail = Σ_{j ∉ top-k} p(j)`` (computed as a logsumexp over the
    non-top-k logits, not as 1 − Σ, for precision).
    ``KL = Σ_i q_i (lp_i − log p(i)) + q_tail (log q_tail − log p_tail)`` (0·log 0 = 0).  It is
    the KL between the two distributions coarsened onto those k+1 buckets, hence ≤ the full KL,
    and equal to it when k = V (empty tail).

    Duplicate ids within one token's top-k are not supported.
    """
    s = student_logits.astype(jnp.float32)
    v = s.shape[-1]
    ids = jnp.clip(topk_ids, 0, v - 1)
    lp_teacher = topk_logprobs.astype(jnp.float32)
    if not tail_bucket:
        st = _tempered(s, temperature)
        log_p = jnp.take_along_axis(st, ids, axis=-1) - _lse(st)[..., None]
        lq = _tempered(lp_teacher, temperature)
        lq = lq - _lse(lq)[..., None]
        kl = jnp.sum(jnp.exp(lq) * (lq - log_p), axis=-1)
        if _is_one(temperature):
            return kl
        t = jnp.asarray(temperature, jnp.float32)
        return t * t * kl
    lse_s = _lse(s)
    log_p = jnp.take_along_axis(s, ids, axis=-1) - lse_s[..., None]
    q = jnp.exp(lp_teacher)
    head = jnp.sum(q * (lp_teacher - log_p), axis=-1)
    q_tail = jnp.maximum(1.0 - jnp.sum(q, axis=-1), 0.0)
    flat = s.reshape(-1, v)
    in_topk = jnp.zeros(flat.shape, jnp.bool_).at[jnp.arange(flat.shape[0])[:, None],
                                                   ids.reshape(flat.shape[0], -1)].set(True)
    rest = jnp.where(in_topk, -jnp.inf, flat)
    m = jax.lax.stop_gradient(jnp.max(flat, axis=-1, keepdims=True))
    tail_sum = jnp.sum(jnp.exp(rest - m), axis=-1)
    log_p_tail = (jnp.log(jnp.where(tail_sum > 0, tail_sum, 1.0)) + m[:, 0]).reshape(lse_s.shape) - lse_s
    safe_q_tail = jnp.where(q_tail > 0, q_tail, 1.0)
    tail = jnp.where(q_tail > 0, q_tail * (jnp.log(safe_q_tail) - log_p_tail), 0.0)
    return head + tail


# ----------------------------------------------------------------------------- combination
@dataclasses.dataclass(frozen=True)
class Signals:
    """Per-token inputs of one chunk (or the whole batch), flattened to [N, ...]."""

    labels: Array
    mask: Array
    teacher_logits: Array | None = None
    topk_ids: Array | None = None
    topk_logprobs: Array | None = None


def term_sums(config: LossConfig, s_logits: Array, sig: Signals, temperature: Array) -> dict[str, Array]:
    """Masked sums of every per-token term the config uses (and its companion metrics)."""
    out: dict[str, Array] = {}
    m = sig.mask
    if not callable(config.temperature) and config.temperature == 1.0:
        temperature = 1.0  # static: no scaling ops, and kl_t1 is kl
    if config.uses("ce"):
        out["ce"] = _masked_sum(ce_terms(s_logits, sig.labels), m)
    if config.uses("kl"):
        for name, term in forward_kl_terms(s_logits, sig.teacher_logits, temperature).items():
            out[name] = _masked_sum(term, m)
    if config.uses("reverse_kl"):
        out["reverse_kl"] = _masked_sum(reverse_kl_terms(s_logits, sig.teacher_logits, temperature), m)
    if config.uses("logit_mse"):
        out["logit_mse"] = _masked_sum(logit_mse_terms(s_logits, sig.teacher_logits), m)
    if config.uses("topk_kl"):
        out["topk_kl"] = _masked_sum(
            sparse_topk_kl_terms(s_logits, sig.topk_ids, sig.topk_logprobs, temperature, config.tail_bucket), m)
    return out


def _weighted(sums: Mapping[str, Array], weights: Mapping[str, Array]) -> Array:
    return sum(weights[t] * sums[t] for t in weights)


def finish(config: LossConfig, sums: Mapping[str, Array], count: Array, step: Any,
            temperature: Array, loss: Array | None = None) -> tuple[Array, Metrics]:
    weights = config.weights_at(step)
    denom = jnp.maximum(count, 1.0)
    total = jax.lax.stop_gradient(_weighted(sums, weights))
    if loss is None:
        loss = _weighted(sums, weights) / denom
    metrics: Metrics = {name: (value, count) for name, value in sums.items()}
    metrics["loss"] = (total, count)
    one = jnp.ones((), jnp.float32)
    metrics["temperature"] = (temperature, one)
    return loss, metrics


def _flat_signals(labels: Array, mask: Array, teacher_logits: Array | None, topk_ids: Array | None,
                  topk_logprobs: Array | None) -> Signals:
    n = labels.size

    def flat(x, trailing):
        return None if x is None else x.reshape(n, *x.shape[x.ndim - trailing:])

    # garbage at masked positions (ignore labels, inf log-probs) is replaced before any math
    keep = mask.reshape(n) > 0
    lp = flat(topk_logprobs, 1)
    if lp is not None:
        lp = jnp.where(keep[:, None], lp.astype(jnp.float32), 0.0)
    return Signals(labels=jnp.where(keep, labels.reshape(n), 0), mask=mask.reshape(n).astype(jnp.float32),
                    teacher_logits=flat(teacher_logits, 1), topk_ids=flat(topk_ids, 1), topk_logprobs=lp)


def check_inputs(config: LossConfig, vocab: int, teacher_vocab: int | None, topk_ids: Array | None) -> None:
    if config.needs_teacher_logits:
        if teacher_vocab is None:
            raise ReadJaxError("the loss config uses kl / reverse_kl / logit_mse: teacher logits (or a teacher "
                               "model) are required")
        check_vocab(vocab, teacher_vocab)
    if config.needs_topk:
        if topk_ids is None:
            raise ReadJaxError("the loss config uses topk_kl: cached teacher top-k ids and log-probs are required")
        check_topk_ids(vocab, topk_ids)


def kd_loss(config: LossConfig, student_logits: Array, labels: Array, mask: Array, *,
            teacher_logits: Array | None = None, topk_ids: Array | None = None,
            topk_logprobs: Array | None = None, step: Any = 0) -> tuple[Array, Metrics]:
    """Dense weighted loss on full logits ``[B, T, V]``; ``mask`` from `token_mask`."""
    check_inputs(config, student_logits.shape[-1],
                  None if teacher_logits is None else teacher_logits.shape[-1], topk_ids)
    temperature = config.temperature_at(step)
    v = student_logits.shape[-1]
    sig = _flat_signals(labels, mask, teacher_logits, topk_ids, topk_logprobs)
    sums = term_sums(config, student_logits.reshape(-1, v), sig, temperature)
    return finish(config, sums, jnp.sum(sig.mask), step, temperature)
