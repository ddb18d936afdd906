"""Score a model, or a file of predictions, on a task split with the task's metric.

- generate-kind metrics: the model's greedy completions (read_jax's own jitted KV-cache
  sampler, `read_jax.capabilities.probes.greedy_answers`), each scored by ``task.score``;
- chained tasks (`Task.chain`): each step's greedy completions, fed forward, assemble the answer
  that ``task.score`` scores;
- choice-kind metrics: the summed log-likelihood of each choice's tokens after the encoded
  prompt, from one jitted forward over fixed-shape batches (every (item, choice) pair is a
  row; one length bucket, so one compiled program), scored by ``metric.score_choices``.

Choice tokens are the choice text tokenised on its own (no special tokens, no eos): with a
chat template the assistant turn starts right after the prompt, so no leading space is added.
Progress goes to stderr (tqdm).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from read_jax.capabilities.chain import chain_completions
from read_jax.capabilities.probes import EncodePrompt, _answer_batches, _answer_loglik_sums, greedy_answers
from read_jax.capabilities.registry import Example, Task
from read_jax.distill.batching import TokenExample
from read_jax.errors import ReadJaxError

DEFAULT_MAX_NEW_TOKENS = 256


@dataclass(frozen=True)
class EvalResult:
    """A split's mean score and every item's score (and completion, when one was generated)."""

    task: str
    metric: str
    split: str
    n: int
    score: float
    results: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "results": list(self.results)}

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)


def metric_name(task: Task) -> str:
    return task.metric.name if task.metric is not None else task.card.eval_type


def split_examples(task: Task, split: str, limit: int | None) -> tuple[Example, ...]:
    """The first ``limit`` items of a split (all with None)."""
    if limit is not None and limit < 1:
        raise ReadJaxError(f"limit must be >= 1, got {limit}")
    return task.split(split)[:limit]


def _result(task: Task, split: str, examples: Sequence[Example], scores: Sequence[float],
            completions: Sequence[str] | None = None) -> EvalResult:
    rows = []
    for i, (ex, s) in enumerate(zip(examples, scores)):
        row: dict[str, Any] = {"id": ex.id or str(i), "score": float(s)}
        if completions is not None:
            row["completion"] = completions[i]
        rows.append(row)
    mean = float(np.mean(scores)) if len(scores) else 0.0
    return EvalResult(task.name, metric_name(task), split, len(rows), mean, tuple(rows))


def _progress(total: int, desc: str, unit: str, enabled: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enabled, leave=False)


def generate_completions(model, tokenizer, encode_prompt: EncodePrompt, prompts: Sequence[str], *,
                         max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, batch_size: int = 32, mesh=None,
                         progress: bool = True, desc: str = "generate") -> list[str]:
    """Greedy completions, ``batch_size`` prompts per sampler call."""
    from read_jax.sampling import Sampler

    # split and laid out once, not once per batch (on CPU a Sampler copies the weights into its layout)
    sampler = model if isinstance(model, Sampler) else Sampler(model, mesh)
    out: list[str] = []
    with _progress(len(prompts), desc, "item", progress) as bar:
        for i in range(0, len(prompts), batch_size):
            chunk = list(prompts[i:i + batch_size])
            out.extend(greedy_answers(sampler, tokenizer, encode_prompt, chunk, max_new_tokens=max_new_tokens,
                                      batch_size=batch_size))
            bar.update(len(chunk))
    return out


def chained_completions(model, tokenizer, encode_prompt: EncodePrompt, task: Task, examples: Sequence[Example], *,
                        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, batch_size: int = 32, mesh=None,
                        progress: bool = True, desc: str = "chain") -> list[str]:
    """The answers a chained task's requests assemble from the model's greedy answer to each step
    (`read_jax.capabilities.chain`: the chain decides what of an answer feeds the next step)."""
    from read_jax.sampling import Sampler

    sampler = model if isinstance(model, Sampler) else Sampler(model, mesh)
    step = 0

    def answer(prompts: Sequence[str]) -> list[str]:
        nonlocal step
        step += 1
        return generate_completions(sampler, tokenizer, encode_prompt, prompts, max_new_tokens=max_new_tokens,
                                    batch_size=batch_size, progress=progress, desc=f"{desc} step {step}")

    return chain_completions(task.chain, examples, answer)


def choice_logliks(model, tokenizer, encode_prompt: EncodePrompt, examples: Sequence[Example], *,
                   batch_size: int = 32, progress: bool = True, desc: str = "choices"
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per item: (summed log-likelihood of each choice [k], token count of each choice [k])."""
    rows: list[TokenExample] = []
    owner: list[int] = []
    for i, ex in enumerate(examples):
        if not ex.choices:
            raise ReadJaxError(f"item {ex.id!r} has no choices to score")
        prompt = encode_prompt(ex.prompt)
        for choice in ex.choices:
            rows.append(TokenExample(prompt, list(tokenizer(choice, add_special_tokens=False)["input_ids"])))
            owner.append(i)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batches = _answer_batches(rows, batch_size, pad_id or 0)
    sums, counts = _answer_loglik_sums(model, tqdm(batches, desc=desc, unit="batch", file=sys.stderr,
                                                   disable=not progress, leave=False), len(rows))
    owner_arr = np.asarray(owner)
    return [(sums[owner_arr == i], counts[owner_arr == i].astype(np.int64)) for i in range(len(examples))]


def evaluate_model(model, tokenizer, encode_prompt: EncodePrompt, task: Task, split: str = "test", *,
                   limit: int | None = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, batch_size: int = 32,
                   mesh=None, progress: bool = True) -> EvalResult:
    """Score ``model`` on a task split (the first ``limit`` items) with the task's metric."""
    examples = split_examples(task, split, limit)
    desc = f"{task.name} {split}"
    if task.metric_kind == "choice":
        scored = choice_logliks(model, tokenizer, encode_prompt, examples, batch_size=batch_size,
                                progress=progress, desc=desc)
        scores = [task.metric.score_choices(ll.tolist(), nt.tolist(), ex) for (ll, nt), ex in zip(scored, examples)]
        return _result(task, split, examples, scores)
    if task.metric_kind == "chain":
        completions = chained_completions(model, tokenizer, encode_prompt, task, examples,
                                          max_new_tokens=max_new_tokens, batch_size=batch_size, mesh=mesh,
                                          progress=progress, desc=desc)
    else:
        completions = generate_completions(model, tokenizer, encode_prompt, [e.prompt for e in examples],
                                           max_new_tokens=max_new_tokens, batch_size=batch_size, mesh=mesh,
                                           progress=progress, desc=desc)
    return _result(task, split, examples, [task.score(c, e) for c, e in zip(completions, examples)], completions)


def evaluate_predictions(task: Task, split: str, completions: Mapping[str, str], limit: int | None = None, *,
                         source: str = "predictions") -> EvalResult:
    """Score given completions (by item id) on a task split; ``source`` names them in errors.

    Every item of the (limited) split needs a completion; an id outside the split is an error
    (ids of the split beyond ``limit`` are ignored)."""
    if task.metric_kind == "choice":
        raise ReadJaxError(f"{source}: task {task.name!r} is scored by choice log-likelihood "
                           f"({metric_name(task)}); only a model can be scored on it")
    examples = split_examples(task, split, limit)
    known = {e.id for e in task.split(split)}
    for key in completions:
        if key not in known:
            raise ReadJaxError(f"{source}: id {key!r} is not in the {split} split of task {task.name!r}")
    missing = [e.id for e in examples if e.id not in completions]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ReadJaxError(f"{source}: no completion for id {missing[0]!r}{more} of the {split} split "
                           f"of task {task.name!r}")
    texts = [completions[e.id] for e in examples]
    return _result(task, split, examples, [task.score(c, e) for c, e in zip(texts, examples)], texts)
