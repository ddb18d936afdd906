"""Task metrics, by name (a task card's ``eval_type``).

A `Metric` scores one item in [0, 1], in one of two ways (``kind``):

- ``"generate"``: ``score(completion, example)`` scores the model's greedy completion;
- ``"choice"``: ``score_choices(logliks, n_tokens, example)`` scores the summed log-likelihood
  the model gives each of ``example.choices`` (and their token counts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from read_jax.capabilities.registry import Example, exact_match
from read_jax.errors import ReadJaxError


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Literal["generate", "choice"]
    fn: Callable[..., float]

    def score(self, completion: str, example: Example) -> float:
        if self.kind != "generate":
            raise ReadJaxError(f"metric {self.name!r} scores choices, not a completion")
        return float(self.fn(completion, example))

    def score_choices(self, logliks: Sequence[float], n_tokens: Sequence[int], example: Example) -> float:
        if self.kind != "choice":
            raise ReadJaxError(f"metric {self.name!r} scores a completion, not choices")
        return float(self.fn(logliks, n_tokens, example))


METRICS: dict[str, Metric] = {
    "exact_match": Metric("exact_match", "generate", lambda c, ex: exact_match(c, ex.answer)),
}

# the official artifact's eval_type names
ALIASES: dict[str, str] = {}


def get_metric(name: str) -> Metric:
    key = ALIASES.get(name, name)
    if key not in METRICS:
        known = sorted(set(METRICS) | set(ALIASES))
        raise ReadJaxError(f"unknown eval_type {name!r}; known: {', '.join(known)}")
    return METRICS[key]
