"""`WorldChain`: the world's chained tasks as `read_jax.capabilities.chain.TaskChain`.

A task template's `ChainPlan` (`World.plan`) builds each step from the world's capability
templates; the exact solvers answering every step give the reference chain (and the oracle), a
model answering every step is how a chained task is evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from read_jax.capabilities.chain import ChainBroken
from read_jax.capabilities.registry import Example
from read_jax.errors import ReadJaxError
from read_jax.worlds.rationales import final_answer
from read_jax.worlds.chain_plan import ChainPlan

if TYPE_CHECKING:  # pragma: no cover
    from read_jax.worlds.world import World


class WorldChain:
    """`TaskChain` of a world's chained-task examples: a step sees the earlier steps' final answers (a
    rationale before one is dropped, as the scorer drops it)."""

    def __init__(self, world: "World"):
        self.world = world
        self._reference: dict[str, list[tuple[str, str]]] = {}

    def _plan(self, example: Example) -> ChainPlan:
        return self.world.plan(example.template_id)

    def n_steps(self, example: Example) -> int:
        return len(self._plan(example).steps)

    def step_prompt(self, example: Example, answers: Sequence[str]) -> str:
        step = self._plan(example).steps[len(answers)]
        return self._guarded(step, example, answers)

    def combine(self, example: Example, answers: Sequence[str]) -> str:
        return self._guarded(self._plan(example).combine, example, answers)

    def _guarded(self, fn, example: Example, answers: Sequence[str]) -> str:
        try:
            return fn(self.world, dict(example.slots), [final_answer(a) for a in answers])
        except ChainBroken:
            raise
        except (ReadJaxError, KeyError, ValueError, IndexError) as err:  # an answer the next step cannot use
            raise ChainBroken(f"{example.template_id}: {err}") from err

    def reference_steps(self, example: Example) -> list[tuple[str, str]]:
        if example.prompt not in self._reference:
            steps, answer = self._plan(example).run(self.world, dict(example.slots), self.world.solve)
            if answer != example.answer:
                raise ReadJaxError(f"{example.template_id}: the exact chain answers {answer!r}, "
                                   f"the example {example.answer!r}")
            self._reference[example.prompt] = steps
        return self._reference[example.prompt]
