"""Bucketed batches of (prompt, response) examples with exact token accounting.

Layout of one example in a row of length L (right padding, pad id ``pad_id``)::

    input_ids      = prompt + response + pad...
    attention_mask = 1 on the P + R real tokens
    labels[t]      = input_ids[t + 1] for t < P + R − 1, IGNORE_INDEX elsewhere
    loss_mask[t]   = 1 where labels[t] is a response token (t = P − 1 … P + R − 2)
    topk_*[t]      = the teacher's top-k for that response token (when the examples carry them)

so attended tokens = prompt + label tokens (what the artifact accounting charges) and the R
positions with a loss are exactly the R response (label) tokens.  Packing several examples per
row would need block-diagonal attention, which the decoder does not take; instead rows have a
length bucketed to a power of two (between ``min_length`` and ``max_length``) and every batch
has the same number of rows, so the train step compiles once per bucket: at most
log2(max_length / min_length) + 1 shapes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from read_jax.distill.losses import IGNORE_INDEX
from read_jax.errors import ReadJaxError


@dataclasses.dataclass(frozen=True)
class TokenExample:
    """One (prompt, teacher response) pair of token ids; optional cached teacher top-k per response token."""

    prompt: Sequence[int]
    response: Sequence[int]
    topk_ids: Any = None         # [len(response), k] int
    topk_logprobs: Any = None    # [len(response), k] float (untempered full-softmax log-probs)

    def __post_init__(self) -> None:
        if len(self.prompt) < 1:
            raise ReadJaxError("an example needs at least one prompt token (e.g. BOS) to predict its response from")
        if (self.topk_ids is None) != (self.topk_logprobs is None):
            raise ReadJaxError("topk_ids and topk_logprobs go together")
        if self.topk_ids is not None:
            ids, lps = np.asarray(self.topk_ids), np.asarray(self.topk_logprobs)
            if ids.shape != lps.shape or ids.ndim != 2 or ids.shape[0] != len(self.response):
                raise ReadJaxError(f"top-k arrays must be [len(response)={len(self.response)}, k], got "
                                   f"{ids.shape} and {lps.shape}")

    @property
    def num_tokens(self) -> int:
        return len(self.prompt) + len(self.response)

    def truncated(self, max_tokens: int) -> "TokenExample | None":
        """The example cut to at most ``max_tokens`` tokens (response cut first); None if the prompt
        alone does not leave room for one response token."""
        if self.num_tokens <= max_tokens:
            return self
        keep = max_tokens - len(self.prompt)
        if keep < 1:
            return None
        cut = lambda x: None if x is None else np.asarray(x)[:keep]  # noqa: E731
        return TokenExample(self.prompt, list(self.response)[:keep], cut(self.topk_ids), cut(self.topk_logprobs))

    def with_label_limit(self, label_tokens: int) -> "TokenExample | None":
        """The example keeping only its first ``label_tokens`` response tokens (None if 0)."""
        if label_tokens >= len(self.response):
            return self
        if label_tokens < 1:
            return None
        return self.truncated(len(self.prompt) + int(label_tokens))


@dataclasses.dataclass
class Batch:
    """Arrays for the train step plus the token counts the budget charges."""

    arrays: dict[str, np.ndarray]
    prompt_tokens: int
    label_tokens: int
    padding_tokens: int
    indices: list[int]              # positions of the examples in the input list (rows in order)

    @property
    def training_tokens(self) -> int:
        """prompt + label tokens (padding never counts)."""
        return self.prompt_tokens + self.label_tokens

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.arrays["input_ids"].shape)


def bucket_length(n: int, min_length: int = 16, max_length: int | None = None) -> int:
    """Smallest power of two ≥ max(n, min_length), capped at ``max_length`` (which n must not exceed)."""
    if max_length is not None and n > max_length:
        raise ReadJaxError(f"sequence of {n} tokens exceeds max_length {max_length}")
    length = 1 << max(int(max(n, min_length, 1)) - 1, 0).bit_length()
    return min(length, max_length) if max_length is not None else length


def collate(examples: Sequence[TokenExample], length: int, rows: int, *, pad_id: int = 0,
            ignore_index: int = IGNORE_INDEX, indices: Sequence[int] | None = None) -> Batch:
    """Pack ``examples`` (≤ rows) one per row into [rows, length] arrays (empty rows are all padding)."""
    if len(examples) > rows:
        raise ReadJaxError(f"{len(examples)} examples do not fit in {rows} rows")
    ids = np.full((rows, length), pad_id, np.int32)
    attn = np.zeros((rows, length), np.int32)
    labels = np.full((rows, length), ignore_index, np.int32)
    loss_mask = np.zeros((rows, length), np.int32)
    with_topk = [e.topk_ids is not None for e in examples]
    if any(with_topk) and not all(with_topk):
        raise ReadJaxError("either every example of a batch carries teacher top-k or none does")
    topk_ids = topk_lp = None
    if examples and all(with_topk):
        ks = {np.asarray(e.topk_ids).shape[1] for e in examples}
        if len(ks) != 1:
            raise ReadJaxError(f"examples of one batch have different top-k sizes {sorted(ks)}")
        k = ks.pop()
        topk_ids = np.zeros((rows, length, k), np.int32)
        topk_lp = np.zeros((rows, length, k), np.float32)
    prompt_tokens = label_tokens = 0
    for r, e in enumerate(examples):
        p, n = len(e.prompt), e.num_tokens
        if n > length:
            raise ReadJaxError(f"example of {n} tokens does not fit in length {length}")
        seq = np.concatenate([np.asarray(e.prompt, np.int64), np.asarray(e.response, np.int64)]).astype(np.int32)
        ids[r, :n] = seq
        attn[r, :n] = 1
        labels[r, :n - 1] = seq[1:]
        loss_mask[r, p - 1:n - 1] = 1
        if topk_ids is not None:
            topk_ids[r, p - 1:n - 1] = np.asarray(e.topk_ids)
            topk_lp[r, p - 1:n - 1] = np.asarray(e.topk_logprobs)
        prompt_tokens += p
        label_tokens += n - p
    arrays = {"input_ids": ids, "attention_mask": attn, "labels": labels, "loss_mask": loss_mask}
    if topk_ids is not None:
        arrays["topk_ids"], arrays["topk_logprobs"] = topk_ids, topk_lp
    return Batch(arrays=arrays, prompt_tokens=prompt_tokens, label_tokens=label_tokens,
                 padding_tokens=rows * length - prompt_tokens - label_tokens,
                 indices=list(range(len(examples))) if indices is None else list(indices))


def make_batches(examples: Sequence[TokenExample], rows: int, *, min_length: int = 16, max_length: int = 2048,
                 pad_id: int = 0, ignore_index: int = IGNORE_INDEX) -> tuple[list[Batch], list[int]]:
    """Group examples by length bucket into batches of ``rows`` rows.

    Examples longer than ``max_length`` are truncated (response first); those whose prompt
    leaves no room are dropped.  Returns ``(batches, dropped_indices)``; batch rows keep the
    input order within a bucket, buckets come shortest first, ``Batch.indices`` names the
    examples of each batch.
    """
    if rows < 1:
        raise ReadJaxError(f"rows must be >= 1, got {rows}")
    buckets: dict[int, list[tuple[int, TokenExample]]] = {}
    dropped: list[int] = []
    for i, e in enumerate(examples):
        t = e.truncated(max_length)
        if t is None:
            dropped.append(i)
            continue
        buckets.setdefault(bucket_length(t.num_tokens, min_length, max_length), []).append((i, t))
    batches = []
    for length in sorted(buckets):
        items = buckets[length]
        for s in range(0, len(items), rows):
            part = items[s:s + rows]
            batches.append(collate([e for _, e in part], length, rows, pad_id=pad_id, ignore_index=ignore_index,
                                   indices=[i for i, _ in part]))
    return batches, dropped
