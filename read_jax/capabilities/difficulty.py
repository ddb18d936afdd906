"""Difficulty d_c(x) in [0, 1], tertile tiers and the budget curriculum (method.md §3).

Each capability scores an example with a raw, capability-specific difficulty (a
sum of factors such as digits, list length, hops).  A `DifficultyScale` fitted on
a calibration pool min-max normalises the raw score onto [0, 1] (clipped for
out-of-pool values) and cuts it into tertiles: easy / medium / hard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from read_jax.capabilities.registry import TIERS
from read_jax.errors import ReadJaxError

# (progress upper bound, (easy, medium, hard)) -- method.md §3
CURRICULUM: tuple[tuple[float, tuple[float, float, float]], ...] = (
    (0.3, (0.10, 0.80, 0.10)),
    (0.7, (0.10, 0.50, 0.40)),
    (float("inf"), (0.05, 0.20, 0.75)),
)


def curriculum_mix(progress: float) -> tuple[float, float, float]:
    """Tier proportions (easy, medium, hard) at budget progress p in [0, 1]."""
    if not np.isfinite(progress) or progress < 0:
        raise ReadJaxError(f"budget progress must be a finite number >= 0, got {progress}")
    for bound, mix in CURRICULUM:
        if progress <= bound:
            return mix
    raise AssertionError("unreachable")


def sample_tier(progress: float, rng: np.random.Generator) -> str:
    mix = curriculum_mix(progress)
    return TIERS[int(rng.choice(3, p=np.asarray(mix) / sum(mix)))]


def raw_difficulty(factors: Mapping[str, float], weights: Mapping[str, float] | None = None) -> float:
    """Σ_k weights[k] · factors[k] (weights default to 1)."""
    weights = weights or {}
    return float(sum(float(v) * float(weights.get(k, 1.0)) for k, v in factors.items()))


@dataclass(frozen=True)
class DifficultyScale:
    """Min-max normaliser plus tertile cut points (in normalised units) for one capability."""

    lo: float
    hi: float
    cut1: float
    cut2: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.lo) and np.isfinite(self.hi)) or self.hi < self.lo:
            raise ReadJaxError(f"difficulty scale needs finite lo <= hi, got {self.lo}, {self.hi}")
        if not (0.0 <= self.cut1 <= self.cut2 <= 1.0):
            raise ReadJaxError(f"tertile cuts must satisfy 0 <= cut1 <= cut2 <= 1, got {self.cut1}, {self.cut2}")

    @classmethod
    def fit(cls, raw: Sequence[float]) -> "DifficultyScale":
        raw = np.asarray(raw, dtype=np.float64)
        if raw.size < 3 or not np.all(np.isfinite(raw)):
            raise ReadJaxError("a calibration pool needs at least 3 finite raw difficulties")
        lo, hi = float(raw.min()), float(raw.max())
        d = (raw - lo) / (hi - lo) if hi > lo else np.zeros_like(raw)
        cut1, cut2 = (float(x) for x in np.quantile(d, [1 / 3, 2 / 3], method="lower"))
        return cls(lo=lo, hi=hi, cut1=cut1, cut2=cut2)

    def normalise(self, raw: float) -> float:
        if self.hi <= self.lo:
            return 0.0
        return float(np.clip((raw - self.lo) / (self.hi - self.lo), 0.0, 1.0))

    def tier(self, d: float) -> str:
        """easy: d <= cut1, medium: cut1 < d <= cut2, hard: d > cut2."""
        if d <= self.cut1:
            return "easy"
        if d <= self.cut2:
            return "medium"
        return "hard"

    def __call__(self, raw: float) -> tuple[float, str]:
        d = self.normalise(raw)
        return d, self.tier(d)

    def to_dict(self) -> dict[str, float]:
        return {"lo": self.lo, "hi": self.hi, "cut1": self.cut1, "cut2": self.cut2}


def fit_scales(raw_by_capability: Mapping[str, Sequence[float]]) -> dict[str, DifficultyScale]:
    return {c: DifficultyScale.fit(v) for c, v in raw_by_capability.items()}


def tier_distance(a: str, b: str) -> int:
    return abs(TIERS.index(a) - TIERS.index(b))
