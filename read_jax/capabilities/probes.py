"""Probe suite: the student's capability profile s(S) (method.md §1).

Per capability a fixed set of probe prompts is answered once by the teacher; the
student's score on a capability is the mean per-token log-likelihood of the teacher's
answers under the student (the artifact's score), and optionally exact match of the
student's greedy answer against the teacher's.  Tokenisation happens once, at
construction; scoring is one jitted forward over a fixed-shape batch per chunk, so
re-probing after every interval costs a few forward passes and never recompiles.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from read_jax.capabilities.chain import reference_step_examples
from read_jax.capabilities.registry import Example, exact_match
from read_jax.distributed import to_host
from read_jax.errors import ReadJaxError
from read_jax.distill.batching import TokenExample, bucket_length, collate

EncodePrompt = Callable[[str], list[int]]


def answer_tokens(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]


def decode_answer(tokenizer, tokens: Sequence[int]) -> str:
    return tokenizer.decode(list(tokens), skip_special_tokens=True)


def greedy_answers(model, tokenizer, encode_prompt: EncodePrompt, prompts: Sequence[str], *,
                   max_new_tokens: int = 32, batch_size: int = 128, mesh=None) -> list[str]:
    """The model's greedy answers (decoded, eos stripped), through the KV-cache sampler in
    length-sorted chunks of at most ``batch_size`` prompts (`read_jax.generation_batches`)."""
    from read_jax.generation_batches import generate_in_chunks
    from read_jax.sampling import Sampler

    if not prompts:
        return []
    sampler = model if isinstance(model, Sampler) else Sampler(model, mesh)  # split and laid out once
    out = generate_in_chunks(sampler, [encode_prompt(p) for p in prompts], max_rows=batch_size, one_bucket=True,
                             max_new_tokens=max_new_tokens, eos_id=tokenizer.eos_token_id)
    return [decode_answer(tokenizer, t) for t in out.tokens]


@functools.partial(jax.jit, static_argnums=0)
def _token_loglik_sums(graphdef: nnx.GraphDef, params: Any, batch: Mapping[str, jax.Array]
                       ) -> tuple[jax.Array, jax.Array]:
    """Per-row summed log-likelihood of the masked (answer) tokens, and how many there are."""
    model = nnx.merge(graphdef, params)
    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"])
    logp = jax.nn.log_softmax(logits, axis=-1)
    labels = jnp.maximum(batch["labels"], 0)
    tok = jnp.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
    mask = batch["loss_mask"].astype(jnp.float32)
    return jnp.sum(tok * mask, axis=1), jnp.sum(mask, axis=1)


def _answer_batches(examples: Sequence[TokenExample], rows: int, pad_id: int) -> list[dict[str, np.ndarray]]:
    """(prompt, answer) examples in fixed-shape batches of at most ``rows`` rows; each batch's
    ``index`` names its examples (-1: a padding row).

    When ``rows`` rows of the longest example fit the attention bound (`MAX_PREFILL_ROWS_X_T2`),
    examples keep their order in batches of one length bucket (one compiled program); otherwise
    they are grouped by length so a few long ones do not pad every batch to their length."""
    from read_jax.generation_batches import MAX_PREFILL_ROWS_X_T2, length_chunks

    lengths = [e.num_tokens for e in examples]
    length = bucket_length(max(lengths))
    if rows * length * length <= MAX_PREFILL_ROWS_X_T2:
        chunks = [list(range(i, min(i + rows, len(examples)))) for i in range(0, len(examples), rows)]
        shapes = [(length, rows)] * len(chunks)
    else:
        chunks = length_chunks(lengths, rows)
        shapes = [(bucket_length(max(lengths[i] for i in c)), min(rows, bucket_length(len(c), min_length=1)))
                  for c in chunks]
    batches = []
    for chunk, (length, n_rows) in zip(chunks, shapes):
        arrays = dict(collate([examples[i] for i in chunk], length, n_rows, pad_id=pad_id).arrays)
        arrays["index"] = np.asarray(chunk + [-1] * (n_rows - len(chunk)), np.int64)
        batches.append(arrays)
    return batches


def _answer_loglik_sums(model, batches: Iterable[Mapping[str, np.ndarray]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-example summed answer log-likelihood [n] and answer token counts [n] over
    `_answer_batches` (padding rows dropped); multiple-choice scoring needs both."""
    graphdef, params = nnx.split(model)
    sums, counts = np.zeros(n), np.zeros(n)
    for b in batches:
        index = b["index"]
        arrays = {k: v for k, v in b.items() if k != "index"}
        s, c = (np.asarray(x) for x in to_host(_token_loglik_sums(graphdef, params, arrays)))
        real = index >= 0
        sums[index[real]], counts[index[real]] = s[real], c[real]
    return sums, counts


def _answer_logliks(model, batches: Sequence[Mapping[str, np.ndarray]], n: int) -> np.ndarray:
    """Per-example mean answer log-likelihood [n] over `_answer_batches` (padding rows dropped)."""
    sums, counts = _answer_loglik_sums(model, batches, n)
    return sums / np.maximum(counts, 1.0)


def fitting_probes(source, n_per_capability: int, seed: int, encode_prompt: EncodePrompt,
                   max_prompt_tokens: int = 0, oversample: int = 16) -> dict[str, list[Example]]:
    """``n_per_capability`` probes per capability from ``source.probe_suite``, keeping only prompts of
    at most ``max_prompt_tokens`` tokens (0: all): with a limit, ``oversample`` times as many are
    drawn and the first that fit are kept (so long-context probes lean to their shorter tiers)."""
    if not max_prompt_tokens:
        return source.probe_suite(n_per_capability, seed=seed)
    drawn = source.probe_suite(n_per_capability * oversample, seed=seed)
    return {c: [ex for ex in exs if len(encode_prompt(ex.prompt)) <= max_prompt_tokens][:n_per_capability]
            for c, exs in drawn.items()}


def _check_probe_context(teacher, encode_prompt: EncodePrompt, prompts: Sequence[str], owner: Sequence[int],
                         capabilities: Sequence[str], max_new_tokens: int) -> None:
    """A probe prompt plus its answer must fit the teacher's context (``max_position_embeddings``)."""
    config = getattr(teacher, "config", None) or getattr(getattr(teacher, "model", None), "config", None)
    context = getattr(config, "max_position_embeddings", None)
    if not context:
        return
    for prompt, ci in zip(prompts, owner):
        n = len(encode_prompt(prompt))
        if n + max_new_tokens > context:
            raise ReadJaxError(f"teacher: a probe prompt of capability {capabilities[ci]!r} has {n} tokens, with "
                               f"{max_new_tokens} answer tokens longer than the teacher's context of {context} "
                               f"(max_position_embeddings); set loop.max_prompt_tokens <= "
                               f"{max(context - max_new_tokens, 1)} to leave such prompts out")


class ProbeSuite:
    """Fixed teacher-answered probes per capability; ``profile(student)`` -> scores [C]."""

    def __init__(self, capabilities: Sequence[str], probes: Mapping[str, Sequence[Example]], teacher,
                 tokenizer, encode_prompt: EncodePrompt, *, max_new_tokens: int = 32, rows: int = 128,
                 mesh=None, max_prompt_tokens: int = 0):
        self.capabilities = tuple(capabilities)
        self.tokenizer, self.encode_prompt, self.mesh = tokenizer, encode_prompt, mesh
        self.prompts: list[str] = []
        self.owner: list[int] = []
        for ci, c in enumerate(self.capabilities):
            kept = [ex for ex in probes[c] if not max_prompt_tokens or len(encode_prompt(ex.prompt)) <= max_prompt_tokens]
            if not kept:
                raise ReadJaxError(f"loop.max_prompt_tokens={max_prompt_tokens}: no probe prompt of capability "
                                   f"{c!r} fits; raise it")
            for ex in kept:
                self.prompts.append(ex.prompt)
                self.owner.append(ci)
        self.owner_arr = np.asarray(self.owner)
        _check_probe_context(teacher, encode_prompt, self.prompts, self.owner, self.capabilities, max_new_tokens)
        self.teacher_answers = greedy_answers(teacher, tokenizer, encode_prompt, self.prompts,
                                              max_new_tokens=max_new_tokens, mesh=mesh)
        if self.teacher_answers and not any(self.teacher_answers):
            raise ReadJaxError(f"teacher: all {len(self.prompts)} probe answers are empty (the teacher stops at once "
                               "or emits only special tokens); check the teacher checkpoint, its eos_token_id and "
                               "the chat template")
        examples = [TokenExample(encode_prompt(p), answer_tokens(tokenizer, a))
                    for p, a in zip(self.prompts, self.teacher_answers)]
        self.rows = rows
        self.batches = _answer_batches(examples, rows, tokenizer.pad_token_id)
        self.max_new_tokens = max_new_tokens

    def loglik(self, model) -> np.ndarray:
        """Mean per-token log-likelihood of the teacher's answers, per capability [C]."""
        scores = _answer_logliks(model, self.batches, len(self.prompts))
        return np.asarray([scores[self.owner_arr == c].mean() for c in range(len(self.capabilities))])

    def exact_match(self, model) -> np.ndarray:
        """Exact match of the model's greedy answers against the teacher's, per capability [C]."""
        preds = greedy_answers(model, self.tokenizer, self.encode_prompt, self.prompts,
                               max_new_tokens=self.max_new_tokens, mesh=self.mesh)
        hits = np.asarray([exact_match(p, t) for p, t in zip(preds, self.teacher_answers)])
        return np.asarray([hits[self.owner_arr == c].mean() for c in range(len(self.capabilities))])

    def as_dict(self, scores: np.ndarray) -> dict[str, float]:
        return {c: float(s) for c, s in zip(self.capabilities, scores)}


def task_utility(model, task, tokenizer, encode_prompt: EncodePrompt, split: str = "dev", *,
                 max_new_tokens: int = 32, mesh=None) -> float:
    """U_τ: the task's mean score on a split, of the model's greedy answers or, for a task whose
    metric scores choices, of its choice log-likelihoods (`read_jax.evals.evaluate`)."""
    from read_jax.evals.evaluate import evaluate_model

    return evaluate_model(model, tokenizer, encode_prompt, task, split, max_new_tokens=max_new_tokens,
                          batch_size=128, mesh=mesh, progress=False).score


def task_loglik(model, task, tokenizer, encode_prompt: EncodePrompt, split: str = "dev", rows: int = 128) -> float:
    """Mean per-token log-likelihood of a split's reference answers under ``model``: a smooth
    stand-in for U_τ where exact match moves in steps of 1/len(split) (requirement interventions); of a
    chained task, of every step's reference answer after its reference prompt."""
    split_examples = task.split(split)
    if task.chain is not None:  # every step of the exact chain, teacher-forced
        split_examples = reference_step_examples(task.chain, split_examples)
    examples = [TokenExample(encode_prompt(e.prompt), answer_tokens(tokenizer, e.answer)) for e in split_examples]
    return float(_answer_logliks(model, _answer_batches(examples, rows, tokenizer.pad_token_id), len(examples)).mean())
