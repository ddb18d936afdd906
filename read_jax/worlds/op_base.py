"""The `Op` record (one capability family's sample / solve / factors) and the drawing helpers
every op module shares; kept apart so `ops`, `code_lang` and `record_ops` share them without a cycle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from read_jax.worlds.data import WorldData

Slots = dict[str, str]


@dataclass(frozen=True)
class Op:
    name: str
    capability: str
    sample: Callable[[WorldData, np.random.Generator, Mapping[str, str]], Slots]
    solve: Callable[[WorldData, Mapping[str, str]], str]
    factors: Callable[[WorldData, Mapping[str, str]], dict[str, float]]


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _span(lo: int, hi: int, x: int) -> float:
    return 0.0 if hi == lo else (x - lo) / (hi - lo)


def _number(rng: np.random.Generator, digits: int) -> int:
    return int(rng.integers(0, 10)) if digits == 1 else int(rng.integers(10 ** (digits - 1), 10**digits))

