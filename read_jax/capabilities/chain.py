"""Chained tasks: a downstream request answered as a chain of capability requests.

A composite task needs several capabilities inside one request (translate, then compute).
Answered in one pass, a small student must also keep the composite's own format, which
capability-only distillation wears away faster than it improves the skills. Answered as a
chain, each step is an ordinary request of one capability (its prompt built from the task's
slots and the answers of the steps before), and the final answer is assembled from the step
answers. The task's utility then rests on each component skill (a step that fails fails the
request, so returns saturate in every skill) while the model, not the harness, decides how
distilling one capability moves the others.

`TaskChain` is what a task provides; `chain_completions` runs it with any batch answerer (a
model's greedy sampler, or an exact solver for the oracle), one batched call per step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from read_jax.capabilities.registry import Example
from read_jax.errors import ReadJaxError


class ChainBroken(ReadJaxError):
    """A step's answer cannot feed the next step (a malformed intermediate answer)."""


@runtime_checkable
class TaskChain(Protocol):
    """How a task's examples are answered as a chain of capability requests."""

    def n_steps(self, example: Example) -> int:
        """How many capability requests answer ``example``."""

    def step_prompt(self, example: Example, answers: Sequence[str]) -> str:
        """The next step's prompt, given the answers of the steps before (raises `ChainBroken` when
        an answer cannot feed it)."""

    def combine(self, example: Example, answers: Sequence[str]) -> str:
        """The request's final answer from every step's answer (raises `ChainBroken` likewise)."""

    def reference_steps(self, example: Example) -> list[tuple[str, str]]:
        """(prompt, reference answer) of every step of the exactly answered chain."""


BatchAnswerer = Callable[[Sequence[str]], Sequence[str]]


def chain_completions(chain: TaskChain, examples: Sequence[Example], answer: BatchAnswerer) -> list[str]:
    """Every example's final answer: step k of all examples still running in one ``answer`` call.

    An example whose chain breaks (an intermediate answer the next step cannot use) gets the empty
    answer, which no scorer accepts, and takes no further steps."""
    answers: list[list[str]] = [[] for _ in examples]
    broken = [False] * len(examples)
    step = 0
    while True:
        live, prompts = [], []
        for i, ex in enumerate(examples):
            if broken[i] or step >= chain.n_steps(ex):
                continue
            try:
                prompts.append(chain.step_prompt(ex, answers[i]))
                live.append(i)
            except ChainBroken:
                broken[i] = True
        if not live:
            break
        outs = list(answer(prompts))
        if len(outs) != len(prompts):
            raise ReadJaxError(f"chain step {step}: {len(outs)} answers for {len(prompts)} prompts")
        for i, out in zip(live, outs):
            answers[i].append(out)
        step += 1
    finals = []
    for i, ex in enumerate(examples):
        try:
            finals.append("" if broken[i] else chain.combine(ex, answers[i]))
        except ChainBroken:
            finals.append("")
    return finals


def reference_step_examples(chain: TaskChain, examples: Sequence[Example]) -> list[Example]:
    """Every step of every example's exact chain as a (prompt, answer) example: what a smooth,
    teacher-forced stand-in for a chained task's utility scores."""
    return [Example(p, a) for ex in examples for p, a in chain.reference_steps(ex)]


__all__ = ["BatchAnswerer", "ChainBroken", "TaskChain", "chain_completions", "reference_step_examples"]
