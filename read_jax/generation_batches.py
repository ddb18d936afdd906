"""Generation over prompts of mixed lengths: length-sorted chunks with a bounded prefill.

The sampler pads a call's prompts to one power-of-two length T and its prefill holds a
[rows, heads, T, T] attention score block, so one long-context prompt in a call of 64
short ones multiplies the call's memory and time by (T_long / T_short)².  Sorting the
prompts by length and cutting chunks so that rows × T² stays under a bound keeps short
prompts together and runs long ones a few rows at a time; results come back in the
callers' order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from read_jax.sampling import GenerateOutput, bucket, generate

# rows x T^2 of one call's prefill: 64 rows of 512 tokens (2^24); on CPU a 30-layer 135M model's
# prefill at that size takes seconds, and the per-head score block stays in the hundreds of MB
MAX_PREFILL_ROWS_X_T2 = 1 << 24


def length_chunks(lengths: Sequence[int], max_rows: int, budget: int = MAX_PREFILL_ROWS_X_T2,
                  one_bucket: bool = False) -> list[list[int]]:
    """Indices of ``lengths`` grouped shortest first, each group at most ``max_rows`` rows with
    rows × bucket(longest)² ≤ ``budget`` (a group of one row may exceed it); with ``one_bucket``
    every group's prompts also share one power-of-two length bucket, so no short prompt pays
    for a long one's KV cache at every decode step (a decode step reads rows × T cache slots)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    chunks: list[list[int]] = []
    for i in order:
        t = bucket(lengths[i])
        same = not one_bucket or (chunks and bucket(lengths[chunks[-1][0]]) == t)
        if chunks and same and len(chunks[-1]) < max_rows and (len(chunks[-1]) + 1) * t * t <= budget:
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks


def generate_in_chunks(model: Any, prompt_ids: Sequence[Sequence[int]], *, max_rows: int,
                       budget: int = MAX_PREFILL_ROWS_X_T2, seed: int = 0, one_bucket: bool = False,
                       on_chunk: Callable[[int], None] | None = None, **kwargs: Any) -> GenerateOutput:
    """`read_jax.sampling.generate` over length-sorted chunks (`length_chunks`), results in input order.

    Chunk ``j`` samples with seed ``seed + j`` (rows of one call already get distinct keys).  Greedy
    decoding gives every row the same tokens however rows are grouped, so evaluation can use
    ``one_bucket``; sampling keeps a single call's rows in order where they fit one call."""
    chunks = length_chunks([len(p) for p in prompt_ids], max_rows, budget, one_bucket)
    if len(chunks) == 1:  # one call: rows in the caller's order, exactly as a plain `generate`
        chunks = [list(range(len(prompt_ids)))]
    n = len(prompt_ids)
    tokens: list[Any] = [None] * n
    logprobs: list[Any] = [None] * n
    finished: list[bool] = [False] * n
    topk_ids: list[Any] | None = None
    topk_lps: list[Any] | None = None
    for j, idx in enumerate(chunks):
        out = generate(model, [prompt_ids[i] for i in idx], seed=seed + j, **kwargs)
        if out.topk_ids is not None and topk_ids is None:
            topk_ids, topk_lps = [None] * n, [None] * n
        for r, i in enumerate(idx):
            tokens[i], logprobs[i], finished[i] = out.tokens[r], out.token_logprobs[r], out.finished[r]
            if topk_ids is not None:
                topk_ids[i], topk_lps[i] = out.topk_ids[r], out.topk_logprobs[r]
        if on_chunk is not None:
            on_chunk(len(idx))
    return GenerateOutput(tokens, logprobs, topk_ids, topk_lps, finished)
