"""`ChainPlan`: how a composed request of the world decomposes into capability requests.

A plan's steps build each capability prompt from the example's slots and the answers of the
steps before; its ``combine`` assembles the request's answer.  Answered by the world's exact
solvers it is the task's oracle; answered by a model it is how a chained task is evaluated
(`read_jax.worlds.composite_chain`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from read_jax.worlds.world import World

Slots = dict[str, str]
Step = Callable[["World", Slots, list[str]], str]


@dataclass(frozen=True)
class ChainPlan:
    steps: tuple[Step, ...]
    combine: Step

    def run(self, w: "World", slots: Slots, answer: Callable[[str], str]) -> tuple[list[tuple[str, str]], str]:
        """Every step's (prompt, answer) and the assembled answer, one ``answer(prompt)`` per step."""
        done: list[tuple[str, str]] = []
        for step in self.steps:
            prompt = step(w, slots, [a for _, a in done])
            done.append((prompt, answer(prompt)))
        return done, self.combine(w, slots, [a for _, a in done])


def last_answer(w: "World", s: Slots, a: list[str]) -> str:
    """The last step's answer is the request's (a tool call built from an earlier result)."""
    return a[-1]


def scratched(w: "World", s: Slots, a: list[str]) -> str:
    """``first>second`` with the world's scratchpad (the intermediate result shown), else ``second``."""
    return f"{a[0]}>{a[1]}" if w.config.scratchpad else a[1]
